"""Soak test: the real server under mixed and hostile load for a fixed time.

Starts ``python -m service.web.app`` on 127.0.0.1 (a fresh data folder, the default encoder,
named keys from a keys file), imports a first memory of UNPC pairs, measures a baseline
(lookups one at a time on the idle server), then runs for --duration seconds:

  lookup clients (--lookup-clients)  fuzzy + semantic lookups and concordance (read key)
  importer                           TMX imports of 40-120 UNPC pairs, half already stored
  aligner                            /align of small MAC-Dev / UNPC pairs, now and then one
                                     large enough to become a job, and zip jobs
  hostile client                     .docx and zip bombs, a zip listing 850,000 entries,
                                     damaged zips, billion-laughs and broken TMX, integers
                                     too big for SQLite, missing and wrong keys, oversized
                                     and slow bodies, slow headers, unsafe zip paths
  reviewer                           opens reviews of UNPC excerpts, edits them (status,
                                     text, confirm_turn, undo), sends their sheets back
                                     (XLSX and TSV, unchanged and changed), and hostile
                                     sheets (a 2 KB XLSX declaring 1,048,576 rows, damaged
                                     XML, a TSV field over 131,072 characters)

A disk-full episode: the data folder is a tmpfs of its own (--data-mib; the embedding cache
lies outside it); from 40 % to 50 % of the run a filler file takes all its free space, then
goes. Writes meanwhile answer 507 ``disk_full`` (counted apart, not as failures); afterwards
an import must be accepted and done (the job runner survived). Without the privilege to
mount a tmpfs the episode is skipped, and the report says so.

Every loop stops by itself at the deadline (and after --max-requests per client). Reported:
5xx answers other than the episode's 507s and connection errors (the run fails if there is
any), answers by kind and
status, latency percentiles per minute, and the server's memory (RSS of the server process
and its children, sampled every 5 s) per minute, with the change over the second half of
the run (flat once warm) and its least-squares trend. Timings on a shared machine are noisy;
the baseline comes from the same run.

    python bench/soak_bench.py                   # 10 minutes
    python bench/soak_bench.py --duration 120    # a quick run
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections import Counter, defaultdict
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aligner.models import TranslationUnit  # noqa: E402
from aligner.tmx import write_tmx  # noqa: E402
from service.security.keys import hash_key  # noqa: E402

SHARED = Path(os.environ.get("CONCORDIA_SHARED_DATA", ROOT.parent / "shared" / "data"))
KEYS = {"reader": "soak-read-key", "importer": "soak-write-key", "aligner": "soak-align-key",
        "intruder": "soak-intruder-key", "reviewer": "soak-review-key"}
SCOPES = {"reader": "read", "importer": "write", "aligner": "align", "intruder": "write",
          "reviewer": "write"}
W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


class Log:
    """Every answer: (time since start, client kind, request kind, status, seconds)."""

    def __init__(self, start: float):
        self.start = start
        self.rows: list[tuple[float, str, str, int, float]] = []
        self.lock = threading.Lock()

    def add(self, client: str, kind: str, status: int, seconds: float) -> None:
        with self.lock:
            self.rows.append((time.monotonic() - self.start, client, kind, status, seconds))


# ------------------------------------------------------------------------------ inputs


def unpc_pairs() -> list[tuple[str, str]]:
    zh = (SHARED / "unpc-dev" / "zh.txt").read_text(encoding="utf-8").splitlines()
    en = (SHARED / "unpc-dev" / "en.txt").read_text(encoding="utf-8").splitlines()
    return [(z.strip(), e.strip()) for z, e in zip(zh, en, strict=True) if z.strip() and e.strip()]


def tmx_bytes(pairs: list[tuple[str, str]], document: str) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.tmx"
        write_tmx(path, [TranslationUnit(z, e, props={"x-document": document}) for z, e in pairs])
        return path.read_bytes()


def text(lines: list[str]) -> bytes:
    return ("\n\n".join(lines) + "\n").encode()


def docx_bomb(paragraphs: int) -> bytes:
    document = (
        f'<?xml version="1.0"?><w:document xmlns:w="{W}"><w:body>'.encode()
        + b"<w:p/>" * paragraphs
        + b"</w:body></w:document>"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", document)
    return buffer.getvalue()


def zip_of(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def many_entries_zip(entries: int) -> bytes:
    """Central-directory records only, with a zip64 end: what a listing bomb looks like."""
    record = struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0,
                         1, 0, 0, 0, 0, 0, 0) + b"x"
    directory = record * entries
    end64 = struct.pack("<4sQ2H2I4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, entries, entries,
                        len(directory), 0)
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, len(directory), 1)
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF,
                      0xFFFFFFFF, 0)
    return directory + end64 + locator + end


def damaged(zipped: bytes) -> bytes:
    info = zipfile.ZipFile(io.BytesIO(zipped)).infolist()[0]
    data = bytearray(zipped)
    data[info.header_offset + 30 + len(info.filename) + 5] ^= 0xFF
    return bytes(data)


# ------------------------------------------------------------------------------ server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(work: Path, port: int, workers: int) -> subprocess.Popen:
    keys = work / "keys.toml"
    keys.write_text("".join(
        f'[keys.{name}]\nscopes = ["{SCOPES[name]}"]\nsha256 = "{hash_key(key)}"\n\n'
        for name, key in KEYS.items()
    ))
    env = dict(
        os.environ,
        CONCORDIA_DATA_DIR=str(work / "data"),
        CONCORDIA_CACHE_DIR=str(work / "cache"),  # outside the data folder's own tmpfs
        CONCORDIA_KEYS_FILE=str(keys),
        CONCORDIA_HEADER_TIMEOUT="5",
        CONCORDIA_BODY_TIMEOUT="10",
        CONCORDIA_TRUSTED_PROXIES="127.0.0.1",
        PYTHONPATH=str(ROOT),
    )
    env.pop("CONCORDIA_API_KEY", None)
    env.setdefault("MALLOC_ARENA_MAX", "2")  # as `aligner serve` sets it
    process = subprocess.Popen(
        [sys.executable, "-P", "-m", "service.web.app", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers), "--log-level", "warning"],
        env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=open(work / "server.log", "w"),  # noqa: SIM115
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(1200):
        try:
            if httpx.get(base + "/health", timeout=2).json().get("semantic") == "ready":
                return process
        except (httpx.HTTPError, ValueError):
            pass
        if process.poll() is not None:
            raise SystemExit(f"the server stopped: see {work / 'server.log'}")
        time.sleep(0.25)
    raise SystemExit("the server did not start")


def rss_mib(process: psutil.Process) -> float:
    total = 0
    for proc in [process, *process.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


# ------------------------------------------------------------------------------ clients


def from_address(address: str) -> dict:
    """Each client its own address, as a reverse proxy on 127.0.0.1 (trusted) tells it: the
    hostile client's wrong keys slow down that client only."""
    return {"X-Forwarded-For": address}


def timed(log: Log, client: str, kind: str, send) -> httpx.Response | None:
    started = time.perf_counter()
    try:
        answer = send()
    except httpx.HTTPError as exc:
        log.add(client, f"{kind} ({type(exc).__name__})", 0, time.perf_counter() - started)
        return None
    log.add(client, kind, answer.status_code, time.perf_counter() - started)
    return answer


def lookup_client(base, log, deadline, cap, pairs, seed) -> None:
    rng = random.Random(seed)
    headers = {"X-API-Key": KEYS["reader"], **from_address(f"10.0.0.{seed + 1}")}
    with httpx.Client(base_url=base, timeout=60, headers=headers) as http:
        for n in range(cap):
            if time.monotonic() > deadline:
                return
            zh, en = rng.choice(pairs)
            if n % 5 == 4:
                term = rng.choice(en.split()[:6] or ["the"])
                timed(log, "lookup", "concordance",
                      lambda t=term: http.get("/tm/concordance", params={"term": t}))
                continue
            text, lang = (zh, "zh") if rng.random() < 0.5 else (en, "en")
            if rng.random() < 0.5:  # an edited segment
                words = text.split() if lang == "en" else list(text)
                if len(words) > 4:
                    del words[rng.randrange(len(words))]
                text = (" " if lang == "en" else "").join(words)
            timed(log, "lookup", "lookup",
                  lambda t=text, la=lang: http.post("/tm/lookup",
                                                    json={"text": t, "source_lang": la}))


def import_client(base, log, deadline, cap, pairs, seed) -> None:
    rng = random.Random(seed)
    headers = {"X-API-Key": KEYS["importer"], **from_address("10.0.1.1")}
    with httpx.Client(base_url=base, timeout=120, headers=headers) as http:
        for n in range(cap):
            if time.monotonic() > deadline:
                return
            size = rng.randrange(40, 120)
            start = rng.randrange(0, len(pairs) - size)
            body = tmx_bytes(pairs[start : start + size], f"SOAK/{n % 20}")
            timed(log, "import", "import",
                  lambda b=body: http.post("/tm/import", files={"file": ("s.tmx", b)}))
            if n % 10 == 9:  # a document deleted now and then: the memory stays bounded
                gone = f"SOAK/{rng.randrange(20)}"
                timed(log, "import", "delete",
                      lambda d=gone: http.delete("/tm/units", params={"document": d}))
            time.sleep(rng.uniform(1, 3))


def align_client(base, log, deadline, cap, seed) -> None:
    rng = random.Random(seed)
    headers = {"X-API-Key": KEYS["aligner"], **from_address("10.0.2.1")}
    zh_lines = (SHARED / "unpc-dev" / "zh.txt").read_text(encoding="utf-8").splitlines()
    en_lines = (SHARED / "unpc-dev" / "en.txt").read_text(encoding="utf-8").splitlines()
    mac = sorted(p.name for p in (SHARED / "mac-dev" / "zh").iterdir())
    jobs: list[str] = []
    with httpx.Client(base_url=base, timeout=180, headers=headers) as http:
        for n in range(cap):
            if time.monotonic() > deadline:
                break
            if n % 6 == 5:  # a zip of pairs as a job
                start = rng.randrange(0, 3900)
                entries = {f"p{i}.{lang}.txt": text(lines[start + 10 * i : start + 10 * i + 5])
                           for i in range(3) for lang, lines in (("zh", zh_lines),
                                                                  ("en", en_lines))}
                answer = timed(log, "align", "job", lambda e=entries: http.post(
                    "/jobs", files={"file": ("j.zip", zip_of(e))}))
                if answer is not None and answer.status_code == 202:
                    jobs.append(answer.json()["id"])
            elif n % 12 == 2:  # 1,100 UNPC lines (230,000 characters): becomes a job
                start = rng.randrange(0, 2900)
                files = {"zh": ("l.zh.txt", text(zh_lines[start : start + 1100])),
                         "en": ("l.en.txt", text(en_lines[start : start + 1100]))}
                answer = timed(log, "align", "align-large", lambda f=files: http.post(
                    "/align", files=f))
                if answer is not None and answer.status_code == 202:
                    jobs.append(answer.json()["job"])
            elif n % 6 == 4:  # a MAC-Dev chapter (27,000-43,000 characters)
                name = rng.choice(mac)
                files = {"zh": ("m.zh.txt", (SHARED / "mac-dev" / "zh" / name).read_bytes()),
                         "en": ("m.en.txt", (SHARED / "mac-dev" / "en" / name).read_bytes())}
                timed(log, "align", "align-chapter", lambda f=files: http.post(
                    "/align", files=f))
            else:
                start = rng.randrange(0, 3990)
                files = {"zh": ("a.zh.txt", text(zh_lines[start : start + 6])),
                         "en": ("a.en.txt", text(en_lines[start : start + 6]))}
                timed(log, "align", "align", lambda f=files: http.post("/align", files=f))
            for job in list(jobs):
                answer = timed(log, "align", "job-status", lambda j=job: http.get(f"/jobs/{j}"))
                if answer is not None and answer.json().get("state") in (
                        "done", "failed", "cancelled"):
                    jobs.remove(job)
            time.sleep(rng.uniform(0.5, 2))


def slow_headers(port: int) -> int:
    """Send half a request line and wait: the server must close within its header timeout."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        try:
            closed = sock.recv(1024) == b""
        except TimeoutError:
            return 0
        return 408 if closed and time.monotonic() - started < 20 else 0


def slow_body(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"POST /tm/import HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
                     + f"X-API-Key: {KEYS['intruder']}\r\n".encode()
                     + b"Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n")
        try:
            reply = sock.recv(4096)
        except TimeoutError:
            return 0
        return int(reply.split()[1]) if reply else 0


def declared_huge(port: int) -> int:
    """A body declared as 1 TB: refused from the header alone."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"POST /tm/import HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n"
                     + f"X-API-Key: {KEYS['intruder']}\r\n\r\n".encode())
        reply = sock.recv(4096)
        return int(reply.split()[1]) if reply else 0


def hostile_client(base, port, log, deadline, cap, pairs, seed) -> None:
    rng = random.Random(seed)
    writer = aligner = {"X-API-Key": KEYS["intruder"]}  # a key of its own: its own slots
    small_zh = text([z for z, _ in pairs[:5]])
    bomb = docx_bomb(17_000_000)  # 100 MB of <w:p/>
    tag_bomb = docx_bomb(1_000_000)
    listing = many_entries_zip(850_000)
    good_zip = zip_of({"a.zh.txt": small_zh, "a.en.txt": text([e for _, e in pairs[:5]])})
    laughs = (ROOT / "tests" / "data" / "tmx_billion_laughs.tmx").read_bytes()
    broken = (ROOT / "tests" / "data" / "tmx_malformed.tmx").read_bytes()
    attacks = {
        "docx-bomb": lambda h: h.post("/align", headers=aligner, files={
            "zh": ("a.zh.txt", small_zh), "en": ("b.docx", bomb)}),
        "docx-tags": lambda h: h.post("/align", headers=aligner, files={
            "zh": ("a.zh.txt", small_zh), "en": ("b.docx", tag_bomb)}),
        "zip-listing": lambda h: h.post("/jobs", headers=aligner,
                                        files={"file": ("l.zip", listing)}),
        "zip-damaged": lambda h: h.post("/jobs", headers=aligner,
                                        files={"file": ("d.zip", damaged(good_zip))}),
        "zip-traversal": lambda h: h.post("/jobs", headers=aligner, files={
            "file": ("t.zip", zip_of({"../../evil.zh.txt": small_zh}))}),
        "tmx-laughs": lambda h: h.post("/tm/import", headers=writer,
                                       files={"file": ("l.tmx", laughs)}),
        "tmx-broken": lambda h: h.post("/tm/import", headers=writer,
                                       files={"file": ("b.tmx", broken)}),
        "big-offset": lambda h: h.get("/tm/concordance",
                                      params={"term": "the", "offset": "1" + "0" * 19}),
        "big-id": lambda h: h.delete("/tm/units/9223372036854775808", headers=writer),
        "no-key-align": lambda h: h.post("/align", files={
            "zh": ("a.zh.txt", small_zh), "en": ("a.en.txt", small_zh)}),
        "wrong-key": lambda h: h.post("/tm/import", headers={"X-API-Key": "nope"},
                                      files={"file": ("s.tmx", b"<tmx/>")}),
        "read-key-writes": lambda h: h.delete("/tm/units/1",
                                              headers={"X-API-Key": KEYS["reader"]}),
        "long-segment": lambda h: h.post("/tm/lookup",
                                         json={"text": "x" * 50_000, "source_lang": "en"}),
        "bad-json": lambda h: h.post("/tm/lookup", content=b"{",
                                     headers={"content-type": "application/json"}),
    }
    raw = {"slow-headers": slow_headers, "slow-body": slow_body, "declared-huge": declared_huge}
    names = list(attacks) + list(raw)
    with httpx.Client(base_url=base, timeout=120, headers=from_address("10.0.3.1")) as http:
        for n in range(cap):
            if time.monotonic() > deadline:
                return
            name = names[n % len(names)] if n < len(names) else rng.choice(names)
            if name in raw:
                started = time.perf_counter()
                try:
                    status = raw[name](port)
                except OSError:
                    status = 0
                log.add("hostile", name, status, time.perf_counter() - started)
            else:
                try:
                    timed(log, "hostile", name, lambda a=attacks[name]: a(http))
                except Exception as exc:  # noqa: BLE001 - the client's fault, logged apart
                    log.add("hostile", f"{name} (client {type(exc).__name__})", -1, 0.0)
            time.sleep(rng.uniform(0.5, 1.5))


def rezip(xlsx: bytes, replace: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(xlsx)) as src, zipfile.ZipFile(
        out, "w", zipfile.ZIP_DEFLATED
    ) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, replace.get(info.filename, src.read(info)))
    return out.getvalue()


def hostile_sheets(xlsx: bytes, tsv: str) -> dict[str, tuple[str, bytes]]:
    """A 2 KB sheet declaring 1,048,576 rows, damaged XML, a TSV field over 131,072 chars."""
    with zipfile.ZipFile(io.BytesIO(xlsx)) as z:
        part = z.read("xl/worksheets/sheet1.xml").decode()
    huge = re.sub(r'<dimension ref="[^"]*"/>', '<dimension ref="A1:XFD1048576"/>', part)
    huge = huge.replace("</sheetData>", '<row r="1048576"><c r="XFD1048576" t="inlineStr">'
                        "<is><t>x</t></is></c></row></sheetData>")
    lines = tsv.split("\n")
    cells = lines[2].split("\t")
    cells[4] = '"' + "x" * 140_000
    lines[2] = "\t".join(cells)
    return {
        "sheet-huge-dimension": ("h.xlsx", rezip(xlsx, {"xl/worksheets/sheet1.xml":
                                                        huge.encode()})),
        "sheet-bad-xml": ("b.xlsx", rezip(xlsx, {"xl/worksheets/sheet1.xml": b"<worksheet><r"})),
        "sheet-long-field": ("l.tsv", "\n".join(lines).encode()),
    }


def review_client(base, log, deadline, cap, seed) -> None:
    """Open reviews, edit them, send their sheets back (and hostile ones)."""
    from openpyxl import load_workbook

    rng = random.Random(seed)
    headers = {"X-API-Key": KEYS["reviewer"], **from_address("10.0.4.1")}
    zh_lines = (SHARED / "unpc-dev" / "zh.txt").read_text(encoding="utf-8").splitlines()
    en_lines = (SHARED / "unpc-dev" / "en.txt").read_text(encoding="utf-8").splitlines()
    review, version, beads = None, 0, []
    with httpx.Client(base_url=base, timeout=120, headers=headers) as http:

        def state() -> None:
            nonlocal version, beads
            answer = timed(log, "review", "review-read", lambda: http.get(f"/reviews/{review}"))
            if answer is not None and answer.status_code == 200:
                version, beads = answer.json()["version"], answer.json()["beads"]

        for n in range(cap):
            if time.monotonic() > deadline:
                return
            if review is None or n % 40 == 0:
                if review is not None:
                    timed(log, "review", "review-delete",
                          lambda r=review: http.delete(f"/reviews/{r}"))
                start = rng.randrange(0, 3900)
                files = {"zh": ("r.zh.txt", text(zh_lines[start : start + 25])),
                         "en": ("r.en.txt", text(en_lines[start : start + 25]))}
                answer = timed(log, "review", "review-open",
                               lambda f=files: http.post("/reviews", files=f))
                review = answer.json()["id"] if answer is not None and answer.status_code \
                    == 201 else None
                if review is None:
                    time.sleep(1)
                    continue
                state()
            paired = [b for b in beads if b["zh"] and b["en"]]
            if n % 5 == 4:  # the sheets: out and back, unchanged and changed, and hostile ones
                xlsx = http.get(f"/reviews/{review}/sheet").content
                tsv = http.get(f"/reviews/{review}/sheet", params={"format": "tsv"}).text
                book = load_workbook(io.BytesIO(xlsx))
                book["review"].cell(row=2, column=5, value=f"=Edited in Excel {n}.")
                changed = io.BytesIO()
                book.save(changed)
                for kind, (name, body) in {
                    **hostile_sheets(xlsx, tsv),
                    "sheet-tsv-same": ("s.tsv", tsv.encode()),
                    "sheet-xlsx-changed": ("c.xlsx", changed.getvalue()),
                }.items():
                    timed(log, "review", kind, lambda nm=name, b=body, r=review: http.post(
                        f"/reviews/{r}/sheet", files={"file": (nm, b)}))
                state()
            elif paired:
                bead = rng.choice(paired)
                op = rng.choice(["status", "status", "edit", "confirm_turn", "undo"])
                body = {"version": version, "op": op}
                if op == "status":
                    body |= {"bead": bead["id"], "status": rng.choice(["confirmed", "rejected"])}
                elif op == "edit":
                    body |= {"bead": bead["id"], "side": "en",
                             "text": f"{' '.join(bead['en'])} (checked {n})"}
                elif op == "confirm_turn":
                    body |= {"section": bead["section"]}
                answer = timed(log, "review", f"review-{op}", lambda b=body, r=review: http.post(
                    f"/reviews/{r}/changes", json=b))
                if answer is None or answer.status_code != 200:
                    state()
                else:
                    done = answer.json()
                    version = done["version"]
                    beads[done["start"] : done["start"] + done["removed"]] = done["beads"]
            time.sleep(rng.uniform(0.3, 1.0))


# ------------------------------------------------------------------------------ disk full


def mount_tmpfs(folder: Path, mib: int) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(folder)],
                          capture_output=True)
    return done.returncode == 0


def disk_full_episode(data: Path, base: str, start: float, duration: float,
                      notes: dict) -> None:
    """Fill the data folder's file system from 40 % to 50 % of the run, then free it; then
    check that an import is accepted and done (the job runner is alive)."""
    time.sleep(max(0.0, start + 0.4 * duration - time.monotonic()))
    filler = data / "filler.bin"
    with open(filler, "wb", buffering=0) as sink:
        free = os.statvfs(data).f_bavail * os.statvfs(data).f_frsize
        try:
            os.posix_fallocate(sink.fileno(), 0, free)
        except OSError:
            pass
        try:  # what fallocate left, a page at a time
            while True:
                sink.write(b"\0" * 4096)
                sink.flush()
        except OSError:
            pass
    notes["filled_mib"] = round(filler.stat().st_size / 2**20, 1)
    notes["free_bytes_left"] = os.statvfs(data).f_bavail * os.statvfs(data).f_frsize
    notes["full_from_s"] = round(time.monotonic() - start, 1)
    time.sleep(max(0.0, start + 0.5 * duration - time.monotonic()))
    filler.unlink()
    notes["freed_at_s"] = round(time.monotonic() - start, 1)
    body = tmx_bytes([("磁盘已满之后的导入。", "An import after the disk was full.")], "SOAK/after")
    headers = {"X-API-Key": KEYS["importer"], **from_address("10.0.5.1")}
    with httpx.Client(base_url=base, timeout=60, headers=headers) as http:
        began = time.monotonic()
        while True:  # the importer's key may be busy (429): wait as told
            answer = http.post("/tm/import", files={"file": ("a.tmx", body)})
            if answer.status_code != 429 or time.monotonic() - began > 120:
                break
            time.sleep(float(answer.headers.get("Retry-After", "1")))
        job = answer.json()
        while answer.status_code == 202 and job.get("state") in ("queued", "running") \
                and time.monotonic() - began < 120:
            time.sleep(0.5)
            job = http.get(f"/jobs/{job['id']}").json()
        notes["import_after"] = {"status": answer.status_code, "state": job.get("state"),
                                 "seconds": round(time.monotonic() - began, 1)}
        notes["health_after"] = http.get("/health").json()


# ------------------------------------------------------------------------------ report


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def trend_mib_per_hour(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB) samples, in MiB an hour."""
    if len(samples) < 2:
        return 0.0
    seconds, mib = zip(*samples, strict=True)
    return 3600 * statistics.linear_regression(seconds, mib).slope


def report(log: Log, memory: list[tuple[float, float]], baseline: list[float], args,
           episode: dict) -> dict:
    rows = log.rows
    full = (args.duration * 0.4 - 5, args.duration * 0.5 + 15) if episode.get(
        "full_from_s") is not None else (0.0, -1.0)

    def failed(row) -> bool:  # a 5xx, except the disk-full episode's 507s
        return row[3] >= 500 and not (row[3] == 507 and full[0] <= row[0] <= full[1])

    minutes = int(args.duration // 60) + (1 if args.duration % 60 else 0)
    print(f"\nbaseline (idle server, one lookup at a time, {len(baseline)} lookups): "
          f"p50 {1000 * pct(baseline, .5):.1f} ms, p95 {1000 * pct(baseline, .95):.1f} ms")
    print("\nminute  requests  5xx  507  conn-err  429  lookup p50 / p95 / p99 ms   "
          "align p50 ms  import p50 ms  server RSS MiB")
    per_minute = []
    for m in range(minutes):
        window = [r for r in rows if m * 60 <= r[0] < (m + 1) * 60]
        lookups = [r[4] for r in window if r[2] == "lookup" and r[3] == 200]
        aligns = [r[4] for r in window if r[2] == "align" and r[3] == 200]
        imports = [r[4] for r in window if r[2] == "import" and r[3] == 202]  # accepted as jobs
        rss = [v for t, v in memory if m * 60 <= t < (m + 1) * 60]
        entry = {
            "minute": m + 1,
            "requests": len(window),
            "5xx": sum(1 for r in window if failed(r)),
            "507": sum(1 for r in window if r[3] == 507),
            "connection_errors": sum(1 for r in window if r[3] == 0),
            "429": sum(1 for r in window if r[3] == 429),
            "lookup_ms": [round(1000 * pct(lookups, q), 1) for q in (.5, .95, .99)],
            "align_p50_ms": round(1000 * pct(aligns, .5), 1),
            "import_p50_ms": round(1000 * pct(imports, .5), 1),
            "rss_mib": round(rss[-1], 1) if rss else None,
        }
        per_minute.append(entry)
        print(f"{m + 1:>6}  {entry['requests']:>8}  {entry['5xx']:>3}  {entry['507']:>3}  "
              f"{entry['connection_errors']:>8}  {entry['429']:>3}  "
              f"{' / '.join(f'{v:.1f}' for v in entry['lookup_ms']):>26}   "
              f"{entry['align_p50_ms']:>12.1f}  {entry['import_p50_ms']:>13.1f}  "
              f"{entry['rss_mib']}")
    by_kind: dict[str, Counter] = defaultdict(Counter)
    for _, _, kind, status, _ in rows:
        by_kind[kind][status] += 1
    print("\nanswers by kind (status: count; 0 = no answer / closed by the server):")
    for kind in sorted(by_kind):
        print(f"  {kind:<22} " + ", ".join(f"{s}: {c}" for s, c in sorted(by_kind[kind].items())))
    half = args.duration / 2
    warm = [v for t, v in memory if t >= half]
    first = [v for t, v in memory if t < half]
    growth = (statistics.mean(warm[-6:]) - statistics.mean(warm[:6])) if len(warm) >= 12 else 0
    trend = trend_mib_per_hour([(t, v) for t, v in memory if t >= half])
    errors_5xx = sum(1 for r in rows if failed(r))
    disk_full = sum(1 for r in rows if r[3] == 507)
    dropped = sum(1 for r in rows if r[3] == 0 and r[2] not in ("slow-headers", "slow-body"))
    lookups = [r[4] for r in rows if r[2] == "lookup" and r[3] == 200]
    summary = {
        "duration_s": args.duration,
        "requests": len(rows),
        "5xx": errors_5xx,
        "507_disk_full": disk_full,
        "disk_full_episode": episode,
        "connection_errors": dropped,
        "lookup_ms": {q: round(1000 * pct(lookups, v), 1)
                      for q, v in (("p50", .5), ("p95", .95), ("p99", .99))},
        "baseline_lookup_ms": {"p50": round(1000 * pct(baseline, .5), 1),
                               "p95": round(1000 * pct(baseline, .95), 1)},
        "rss_mib": {"start": round(memory[0][1], 1) if memory else None,
                    "end_of_first_half": round(first[-1], 1) if first else None,
                    "end": round(memory[-1][1], 1) if memory else None,
                    "max": round(max(v for _, v in memory), 1) if memory else None,
                    "second_half_growth": round(growth, 1),
                    "second_half_trend_mib_per_hour": round(trend, 1)},
        "per_minute": per_minute,
        "by_kind": {k: dict(v) for k, v in by_kind.items()},
    }
    print(f"\n5xx answers (besides the disk-full episode's 507s): {errors_5xx}; 507 disk_full: "
          f"{disk_full}; connection errors (not counting the slow-connection probes): {dropped}")
    print(f"disk-full episode: {episode}")
    print(f"server RSS: {summary['rss_mib']['start']} MiB at start, "
          f"{summary['rss_mib']['end_of_first_half']} at half time, "
          f"{summary['rss_mib']['end']} at the end (max {summary['rss_mib']['max']}); "
          f"second half: {growth:+.1f} MiB (mean of the first and last 30 s), "
          f"trend {trend:+.1f} MiB an hour (least squares over its samples)")
    return summary


# ------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600, help="seconds of load")
    parser.add_argument("--lookup-clients", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--memory", type=int, default=2000, help="units imported first")
    parser.add_argument("--max-requests", type=int, default=100_000, help="per client")
    parser.add_argument("--work", type=Path, help="folder for the server (default: a temp one)")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("--data-mib", type=int, default=1024,
                        help="size of the data folder's tmpfs (the disk-full episode)")
    args = parser.parse_args(argv)

    pairs = unpc_pairs()
    work = args.work or Path(tempfile.mkdtemp(prefix="concordia-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    print(f"server on {base}, data in {work}", flush=True)
    episode: dict = {}
    mounted = mount_tmpfs(work / "data", args.data_mib)
    if not mounted:
        episode["skipped"] = "no privilege to mount a tmpfs for the data folder"
    server = start_server(work, port, args.workers)
    process = psutil.Process(server.pid)
    try:
        writer = {"X-API-Key": KEYS["importer"]}
        body = tmx_bytes(pairs[: args.memory], "SOAK/base")
        first = httpx.post(base + "/tm/import", files={"file": ("m.tmx", body)},
                           headers=writer, timeout=600)
        print(f"first memory: {first.json()}", flush=True)
        while httpx.get(base + "/tm/stats").json()["semantic_index"]["indexed"] < args.memory:
            time.sleep(1)
        baseline = []
        with httpx.Client(base_url=base, timeout=30) as http:
            for _, e in pairs[:100]:
                started = time.perf_counter()
                http.post("/tm/lookup", json={"text": e, "source_lang": "en"})
                baseline.append(time.perf_counter() - started)
        start = time.monotonic()
        deadline = start + args.duration
        log = Log(start)
        memory: list[tuple[float, float]] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                memory.append((time.monotonic() - start, rss_mib(process)))
                stop.wait(5)

        cap = args.max_requests
        threads = [threading.Thread(target=sample, daemon=True)]
        threads += [threading.Thread(target=lookup_client, args=(base, log, deadline, cap,
                                                                 pairs, i))
                    for i in range(args.lookup_clients)]
        threads += [
            threading.Thread(target=import_client, args=(base, log, deadline, cap, pairs, 91)),
            threading.Thread(target=align_client, args=(base, log, deadline, cap, 92)),
            threading.Thread(target=hostile_client,
                             args=(base, port, log, deadline, cap, pairs, 93)),
            threading.Thread(target=review_client, args=(base, log, deadline, cap, 94)),
        ]
        if mounted:
            threads.append(threading.Thread(target=disk_full_episode, args=(
                work / "data", base, start, args.duration, episode)))
        print(f"load for {args.duration:g} s: {args.lookup_clients} lookup clients, an "
              "importer, an aligner, a hostile client, a reviewer"
              + (", a disk-full episode" if mounted else ""), flush=True)
        for thread in threads:
            thread.start()
        for thread in threads[1:]:
            thread.join(args.duration + 300)
        stop.set()
        threads[0].join(10)
        summary = report(log, memory, baseline, args, episode)
    finally:
        stopping = time.monotonic()
        server.terminate()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
        stopped_s = round(time.monotonic() - stopping, 1)
        print(f"server stopped {stopped_s} s after SIGTERM (Docker allows 10 s by default)")
        if mounted:
            subprocess.run(["umount", str(work / "data")], check=False)
    summary["stop_s"] = stopped_s
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    runner_ok = not mounted or episode.get("import_after", {}).get("state") == "done"
    return 1 if summary["5xx"] or summary["connection_errors"] or not runner_ok else 0


if __name__ == "__main__":
    raise SystemExit(main())
