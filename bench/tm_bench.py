"""Translation-memory lookup benchmark: latency through HTTP, against a brute-force baseline.

Memories are grown from the 4,000 real pairs of ../shared/data/unpc-dev: every pair whose
Chinese has a "，" and whose English has a ", " is cut at the clause break nearest its middle
(1,980 pairs), and new units join the first half of one pair to the second half of another,
on both sides at once (zh head + zh tail, en head + en tail; 3.9 million combinations). The
original pairs come first, then distinct random combinations, the same sequence for every
size, so the 200,000-unit memory is a prefix of the 1,000,000-unit one.

Queries (default 1,000, half English, half Chinese, fixed seed): 20 % exact units of the
memory, 60 % units with 1-3 tokens replaced or deleted (characters for Chinese), 20 % new
combinations not in the memory. Lookups go through the HTTP API (uvicorn on 127.0.0.1,
--workers processes, one per CPU by default) from 8 concurrent clients. The baseline is a
brute-force rapidfuzz scan of every unit with the same fuzzy score, timed one query at a
time and under the same load as the service (the 8 clients' queries answered by as many
scanning processes as server workers), over the first 200 queries; agreement is the share
of those whose top-5 matches (>= 70 %) are the same units in the same order. Each query is
sent once by default (--rounds), so every semantic lookup embeds its query afresh.

Phases, in one run:
  fuzzy    --fuzzy-size units, fuzzy only (CONCORDIA_ENCODER=none): latency, baseline,
           agreement, concordance against reading the store, export (first byte against
           writing a file first), import throughput (without embedding), server peak memory.
  semantic --semantic-size units with use-m3 embeddings: fuzzy + semantic latency, recall@10
           of the semantic index against exact search, import throughput with embedding,
           server peak memory.
Built memories stay in --work (default data/tm-bench); --reuse serves them again instead of
re-importing, which spares the ~20 minutes of embedding a 200,000-unit memory on 2 cores;
import throughput with embedding is then measured on a fresh --import-sample units.

    python bench/tm_bench.py                       # 1,000,000 fuzzy, 200,000 semantic
    python bench/tm_bench.py --fuzzy-size 100000 --semantic-size 20000   # a quick run
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import re
import resource
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import psutil
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aligner.models import TranslationUnit  # noqa: E402
from aligner.tmx import write_tmx  # noqa: E402
from service.memory.fuzzy import SideEncoder  # noqa: E402

SHARED = Path(os.environ.get("CONCORDIA_SHARED_DATA", ROOT.parent / "shared" / "data"))
KEY = "bench-key"
MIN_FUZZY = 70


# ------------------------------------------------------------------------------ memories


def load_pairs() -> list[tuple[str, str]]:
    zh = (SHARED / "unpc-dev" / "zh.txt").read_text(encoding="utf-8").splitlines()
    en = (SHARED / "unpc-dev" / "en.txt").read_text(encoding="utf-8").splitlines()
    return [(z.strip(), e.strip()) for z, e in zip(zh, en, strict=True) if z.strip() and e.strip()]


def _cut(text: str, marks: list[int]) -> int | None:
    if not marks:
        return None
    middle = len(text) / 2
    return min(marks, key=lambda m: abs(m - middle))


def halves(pairs: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(zh, en) heads and tails: each pair cut at its clause break nearest the middle."""
    heads, tails = [], []
    for zh, en in pairs:
        zi = _cut(zh, [m.end() for m in re.finditer("，", zh)])
        ei = _cut(en, [m.end() for m in re.finditer(", ", en)])
        if zi is None or ei is None or zi >= len(zh) or ei >= len(en):
            continue
        heads.append((zh[:zi], en[:ei].rstrip()))
        tails.append((zh[zi:], en[ei:].lstrip()))
    return heads, tails


def grow(pairs, heads, tails, size: int, seed: int = 7) -> list[tuple[str, str]]:
    """``size`` distinct (zh, en) units: the real pairs, then head+tail combinations."""
    rng = random.Random(seed)
    seen = set(pairs)
    units = list(dict.fromkeys(pairs))[:size]
    while len(units) < size:
        h, t = heads[rng.randrange(len(heads))], tails[rng.randrange(len(tails))]
        unit = (h[0] + t[0], h[1] + " " + t[1])
        if unit not in seen:
            seen.add(unit)
            units.append(unit)
    return units


def _edit(text: str, lang: str, rng: random.Random, donor: str) -> str:
    tokens = list(text.replace(" ", "")) if lang == "zh" else text.split()
    spare = list(donor.replace(" ", "")) if lang == "zh" else donor.split()
    for _ in range(rng.randint(1, 3)):
        if len(tokens) < 3:
            break
        i = rng.randrange(len(tokens))
        if rng.random() < 0.3:
            del tokens[i]
        else:
            tokens[i] = rng.choice(spare)
    return "".join(tokens) if lang == "zh" else " ".join(tokens)


def make_queries(units, heads, tails, n: int, seed: int = 11) -> list[tuple[str, str]]:
    """(text, lang): exact units, edited units, and unseen combinations."""
    rng = random.Random(seed)
    present = set(units)
    queries = []
    for i in range(n):
        lang = "en" if i % 2 == 0 else "zh"
        side = 1 if lang == "en" else 0
        kind = rng.random()
        if kind < 0.2:
            text = units[rng.randrange(len(units))][side]
        elif kind < 0.8:
            donor = units[rng.randrange(len(units))][side]
            text = _edit(units[rng.randrange(len(units))][side], lang, rng, donor)
        else:
            while True:
                h, t = heads[rng.randrange(len(heads))], tails[rng.randrange(len(tails))]
                unit = (h[0] + t[0], h[1] + " " + t[1])
                if unit not in present:
                    break
            text = unit[side]
        queries.append((text, lang))
    return queries


def query_sets(units, heads, tails, n: int):
    """The measured queries, and as many others (another seed) to warm the server up with."""
    queries = make_queries(units, heads, tails, n)
    measured = {text for text, _ in queries}
    warmup = [q for q in make_queries(units, heads, tails, n, seed=12) if q[0] not in measured]
    return queries, warmup


# ------------------------------------------------------------------------------- server


class Server:
    """``python -m service.web.app`` (uvicorn, ``workers`` processes) on 127.0.0.1."""

    def __init__(self, data: Path, encoder: str, workers: int = 1):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        env = dict(
            os.environ,
            CONCORDIA_DATA_DIR=str(data),
            CONCORDIA_API_KEY=KEY,
            CONCORDIA_ENCODER=encoder,
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service.web.app", "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", str(workers), "--log-level", "warning"],
            cwd=ROOT, env=env,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        started = time.perf_counter()
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited with {self.proc.returncode}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.workers = workers
        self.wait_indexed(0)
        self.start_s = time.perf_counter() - started

    def wait_indexed(self, units: int) -> None:
        """Until every worker answers with at least ``units`` indexed (workers catch up with
        an import made through another one on their own, within seconds)."""
        seen: dict[int, int] = {}
        while len(seen) < self.workers or min(seen.values()) < units:
            health = httpx.get(self.url + "/health", timeout=600).json()
            seen[health["worker"]] = health["units"]
            time.sleep(0.05)

    def wait_semantic(self) -> None:
        while httpx.get(self.url + "/health", timeout=30).json()["semantic"] != "ready":
            time.sleep(1)

    def peak_rss(self) -> int:
        """Sum of the peak resident memory of the server's processes."""
        total = 0
        root = psutil.Process(self.proc.pid)
        for proc in [root, *root.children(recursive=True)]:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) * 1024
        return total

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server's processes have used so far."""
        root = psutil.Process(self.proc.pid)
        return sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(120)


def import_units(server: Server, units, work: Path, chunk: int) -> tuple[int, float]:
    """POST the units as TMX files of ``chunk`` units through the job path (``/tm/import``
    answers at once with a job; its end is polled): (units imported, seconds from each post
    to its job being done, indexing included)."""
    imported, seconds = 0, 0.0
    tmx = work / "chunk.tmx"
    with httpx.Client(base_url=server.url, timeout=None) as http:
        for start in range(0, len(units), chunk):
            write_tmx(tmx, (TranslationUnit(z, e) for z, e in units[start : start + chunk]))
            with tmx.open("rb") as handle:
                began = time.perf_counter()
                answer = http.post(
                    "/tm/import", files={"file": ("chunk.tmx", handle)}, headers={"X-API-Key": KEY}
                )
                answered = time.perf_counter() - began
                answer.raise_for_status()
                job = answer.json()
                while job["state"] in ("queued", "running"):
                    time.sleep(0.05)
                    job = http.get(f"/jobs/{job['id']}").json()
                seconds += time.perf_counter() - began
            if job["state"] != "done":
                raise SystemExit(f"import job {job['id']} {job['state']}: {job['error']}")
            memory = job["memory"]
            imported += memory["imported"]
            done = min(start + chunk, len(units))
            print(
                f"  imported {done:,}: answered in {answered * 1000:.0f} ms, job "
                f"{memory['total_seconds']:.1f} s ({memory['seconds']:.1f} s store, "
                f"{memory['indexing_seconds']:.1f} s indexing)",
                flush=True,
            )
    tmx.unlink(missing_ok=True)
    return imported, seconds


class _Client:
    """A kept-alive HTTP/1.1 connection (http.client: far less client CPU than httpx)."""

    def __init__(self, server: Server):
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json"} if data else {}
        self.conn.request(method, path, body=data, headers=headers)
        answer = self.conn.getresponse()
        payload = answer.read()
        if answer.status != 200:
            raise SystemExit(f"{method} {path}: {answer.status} {payload[:300]!r}")
        return json.loads(payload)


def measure_clients(server: Server, queries, warmup, clients: int, rounds: int,
                    semantic: bool) -> dict:
    """``run_clients`` after a round of other queries (``warmup``, not measured: a freshly
    started server answers its first few hundred lookups up to 1.5x slower), with the
    server's CPU time per lookup."""
    run_clients(server, warmup, clients, 1, semantic)
    cpu = server.cpu_seconds()
    latencies, first, top = run_clients(server, queries, clients, rounds, semantic)
    return {
        "latencies": latencies,
        "first": first,
        "top": top,
        "cpu_per_lookup": (server.cpu_seconds() - cpu) / len(latencies),
    }


def run_clients(server: Server, queries, clients: int, rounds: int, semantic: bool):
    """Latencies (s) of every query through HTTP from ``clients`` threads, those of each
    query's first sending (which the service cannot have cached), and top-5 ids each."""
    latencies: list[float] = []
    first: list[float] = []
    results: dict[int, list[int]] = {}
    lock = threading.Lock()
    work = [(r, i, q) for r in range(rounds) for i, q in enumerate(queries)]
    barrier = threading.Barrier(clients)

    def client(k: int) -> None:
        mine = work[k::clients]
        http_client = _Client(server)
        barrier.wait()
        for r, i, (text, lang) in mine:
            body = {"text": text, "source_lang": lang, "limit": 5, "min_fuzzy": MIN_FUZZY,
                    "semantic": semantic}
            began = time.perf_counter()
            answer = http_client.call("POST", "/tm/lookup", body)
            took = time.perf_counter() - began
            ids = [m["id"] for m in answer["matches"] if m["kind"] == "fuzzy"]
            with lock:
                latencies.append(took)
                if r == 0:
                    first.append(took)
                results[i] = ids

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, first, results


def http_floor(server: Server, clients: int, per_client: int = 25) -> list[float]:
    """Latencies of GET /health from the same clients: the cost of HTTP alone, for reference."""
    latencies: list[float] = []
    lock = threading.Lock()

    def client() -> None:
        http_client = _Client(server)
        for _ in range(per_client):
            began = time.perf_counter()
            http_client.call("GET", "/health")
            with lock:
                latencies.append(time.perf_counter() - began)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies


def pct(values, q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


# ------------------------------------------------------------------------------- phases


_SCAN: dict = {}  # what the scanning processes inherit (fork): unit ids and encoded strings


def _scan(text: str, lang: str) -> tuple[list[int], float]:
    """Top-5 unit ids (>= MIN_FUZZY) of one query by scoring every unit; and its seconds."""
    began = time.perf_counter()
    ids, strings, encoders = _SCAN["ids"], _SCAN["strings"], _SCAN["encoders"]
    query = encoders[lang].encode(text)
    scores = process.cdist(
        [query], strings[lang], scorer=Levenshtein.normalized_similarity,
        score_cutoff=MIN_FUZZY / 100 - 1e-6, dtype=np.float64, workers=1,  # see lookup._cutoff
    )[0]
    hit = np.flatnonzero(scores >= MIN_FUZZY / 100 - 1e-9)
    order = np.lexsort((ids[hit], -scores[hit]))[:5]
    return [int(ids[hit][j]) for j in order], time.perf_counter() - began


def brute_force(data: Path, queries, server_top: dict[int, list[int]], clients: int,
                workers: int):
    """Scan every unit with rapidfuzz, one query at a time and then as a service would:
    ``workers`` processes answering ``clients`` concurrent clients, like the HTTP run.
    Returns (seconds one at a time, latencies under load, share agreeing on top 5,
    disagreements)."""
    conn = sqlite3.connect(data / "tm.sqlite")
    rows = conn.execute("SELECT id, zh, en FROM unit ORDER BY id").fetchall()
    conn.close()
    encoders = {"zh": SideEncoder("zh"), "en": SideEncoder("en")}
    _SCAN.update(
        ids=np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)),
        encoders=encoders,
        strings={
            "zh": [encoders["zh"].encode(r[1], grow=True) for r in rows],
            "en": [encoders["en"].encode(r[2], grow=True) for r in rows],
        },
    )
    del rows
    times, agree, disagreements = [], 0, []
    for i, (text, lang) in enumerate(queries):
        top, seconds = _scan(text, lang)
        times.append(seconds)
        if top == server_top.get(i, [])[:5]:
            agree += 1
        else:
            disagreements.append((i, top, server_top.get(i)))

    loaded: list[float] = []
    lock = threading.Lock()
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        list(pool.map(_scan, ["warm-up"] * workers, ["en"] * workers))

        def client(k: int) -> None:
            for text, lang in queries[k::clients]:
                began = time.perf_counter()
                pool.submit(_scan, text, lang).result()
                with lock:
                    loaded.append(time.perf_counter() - began)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    _SCAN.clear()
    return times, loaded, agree / len(queries), disagreements


def concordance_terms(units, n: int = 100, seed: int = 13) -> list[tuple[str, str]]:
    """(term, lang): Chinese 4-character pieces and English words of 9+ letters from the
    memory (mostly rare in it), and as many that are nowhere in it (reversed)."""
    rng = random.Random(seed)
    terms: list[tuple[str, str]] = []
    while len(terms) < n:
        zh, en = units[rng.randrange(len(units))]
        if len(terms) % 2 == 0:
            if len(zh) < 8:
                continue
            start = rng.randrange(len(zh) - 4)
            term, lang = zh[start : start + 4], "zh"
        else:
            words = re.findall(r"[A-Za-z]{9,}", en)
            if not words:
                continue
            term, lang = rng.choice(words), "en"
        terms.append((term if len(terms) % 4 < 2 else term[::-1], lang))
    return terms


def concordance_times(server: Server, terms) -> list[float]:
    """Seconds of each GET /tm/concordance, one at a time (first page, 20 units)."""
    client, times = _Client(server), []
    for term, lang in terms:
        query = urllib.parse.urlencode({"term": term, "lang": lang})
        began = time.perf_counter()
        client.call("GET", f"/tm/concordance?{query}")
        times.append(time.perf_counter() - began)
    return times


def concordance_scan_times(data: Path, terms) -> list[float]:
    """The same first pages read from the store without the index (every unit checked)."""
    from service.memory.factory import open_store

    store, times = open_store(data), []
    for term, lang in terms:
        began = time.perf_counter()
        store.concordance(term, lang, limit=20)
        times.append(time.perf_counter() - began)
    store.close()
    return times


def export_timing(server: Server) -> tuple[float, float, int]:
    """GET /tm/export of the whole memory: (seconds to the first byte, seconds, bytes)."""
    began, first, size = time.perf_counter(), None, 0
    with httpx.stream("GET", server.url + "/tm/export", timeout=60) as answer:
        answer.raise_for_status()
        for chunk in answer.iter_bytes():
            first = first or time.perf_counter() - began
            size += len(chunk)
    return first or 0.0, time.perf_counter() - began, size


def export_file_seconds(data: Path, work: Path) -> float:
    """The baseline: the same TMX written to a file first, as a server would before sending."""
    from service.memory.factory import open_store

    store, path = open_store(data), work / "export.tmx"
    began = time.perf_counter()
    write_tmx(path, (u.to_translation_unit() for u in store.iter_units()))
    seconds = time.perf_counter() - began
    store.close()
    path.unlink()
    return seconds


def fuzzy_phase(args, units, queries, warmup) -> dict:
    size = args.fuzzy_size
    data = args.work / f"fuzzy-{size}"
    reuse = args.reuse and (data / "tm.sqlite").exists()
    if not reuse:
        shutil.rmtree(data, ignore_errors=True)
    server = Server(data, "none", args.workers)
    out: dict = {"size": size, "server_start_s": server.start_s}
    try:
        if not reuse:
            print(f"fuzzy: importing {size:,} units", flush=True)
            n, seconds = import_units(server, units[:size], args.work, 50_000)
            out["import_units_per_s"] = n / seconds
        server.wait_indexed(size)
        loaded = measure_clients(server, queries, warmup, args.clients, args.rounds, False)
        latencies, top = loaded["latencies"], loaded["top"]
        out["cpu_per_lookup"] = loaded["cpu_per_lookup"]
        # One at a time, the queries the scan answers too.
        out["single"], _, _ = run_clients(server, queries[: args.scan_queries], 1, 1, False)
        out["floor"] = http_floor(server, args.clients)
        terms = concordance_terms(units[:size])
        out["concordance"] = concordance_times(server, terms)
        out["export"] = export_timing(server)
        out["peak_rss"] = server.peak_rss()
    finally:
        server.stop()
    out["concordance_scan"] = concordance_scan_times(data, terms)
    out["export_file_s"] = export_file_seconds(data, args.work)
    out["latencies"] = latencies
    print(f"fuzzy: brute-force baseline over {size:,} units", flush=True)
    scanned = queries[: args.scan_queries]
    times, loaded, agreement, wrong = brute_force(data, scanned, top, args.clients, args.workers)
    out.update(brute=times, brute_loaded=loaded, agreement=agreement, wrong=wrong[:3])
    return out


def recall_at_10(data: Path, queries) -> tuple[float, str]:
    """Recall@10 of the saved semantic index, searched as the service searches it, against
    exact search over the same vectors."""
    import faiss

    from service.memory.factory import open_store
    from service.memory.semantic import SemanticIndex

    store = open_store(data)
    index = SemanticIndex(data, "use-m3")
    index.load(store)
    files = index._files
    keep = ~np.isin(np.asarray(files.ids), list(files.deleted))
    ids = np.asarray(files.ids)[keep]
    found, total = 0, 0
    for lang in ("zh", "en"):
        vectors = np.asarray(files.vectors[lang], dtype=np.float32)[keep]
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        exact = faiss.IndexFlatIP(vectors.shape[1])
        exact.add(vectors)
        del vectors
        texts = [t for t, q_lang in queries if q_lang == lang]
        for vector in np.asarray(index._encode["query"](texts), dtype=np.float32):
            approx = [i for i, _ in index.search(vector, lang, 10)]
            _, rows = exact.search(vector.reshape(1, -1), 10)
            found += len(set(approx) & set(ids[rows[0]].tolist()))
            total += 10
    kind = index.stats()["index"]
    index.close()
    store.close()
    return found / total, kind


def semantic_phase(args, units, queries, warmup) -> dict:
    size = args.semantic_size
    data = args.work / f"semantic-{size}"
    reuse = args.reuse and any(
        (data / name).exists() for name in ("semantic/manifest.json", "semantic/CURRENT")
    )
    if not reuse:
        shutil.rmtree(data, ignore_errors=True)
    server = Server(data, "use-m3", args.workers)
    out: dict = {"size": size, "server_start_s": server.start_s}
    try:
        if not reuse:
            print(f"semantic: importing {size:,} units with embeddings", flush=True)
            n, seconds = import_units(server, units[:size], args.work, 20_000)
            out["import_units_per_s"] = n / seconds
            out["import_sample"] = n
        server.wait_indexed(size)
        server.wait_semantic()
        out.update(measure_clients(server, queries, warmup, args.clients, args.rounds, True))
        out["single"], _, _ = run_clients(server, queries, 1, 1, True)
        out["floor"] = http_floor(server, args.clients)
        out["peak_rss"] = server.peak_rss()
    finally:
        server.stop()
    if reuse:
        sample = args.work / "import-sample"
        shutil.rmtree(sample, ignore_errors=True)
        server = Server(sample, "use-m3")
        try:
            # Units the big memory does not hold, so nothing is embedded twice by chance.
            fresh = units[size : size + args.import_sample]
            n, seconds = import_units(server, fresh, args.work, 20_000)
            out["import_units_per_s"] = n / seconds
            out["import_sample"] = n
        finally:
            server.stop()
        shutil.rmtree(sample, ignore_errors=True)
    out["recall"], out["index"] = recall_at_10(data, queries)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fuzzy-size", type=int, default=1_000_000, help="0 skips the phase")
    parser.add_argument("--semantic-size", type=int, default=200_000, help="0 skips the phase")
    parser.add_argument("--queries", type=int, default=1000, help="queries sent to the service")
    parser.add_argument("--scan-queries", type=int, default=200,
                        help="the first N of them also answered by the brute-force scan")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1, help="times each query is sent")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="uvicorn worker processes (default: one per CPU)")
    parser.add_argument("--import-sample", type=int, default=20_000,
                        help="units imported fresh to time embedding when --reuse skips it")
    parser.add_argument("--work", type=Path, default=ROOT / "data" / "tm-bench")
    parser.add_argument("--reuse", action="store_true", help="serve memories built before")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    pairs = load_pairs()
    heads, tails = halves(pairs)
    biggest = max(args.fuzzy_size, args.semantic_size + args.import_sample)
    began = time.perf_counter()
    units = grow(pairs, heads, tails, biggest)
    print(f"{len(pairs):,} UNPC pairs, {len(heads):,} cut into clause halves; "
          f"{len(units):,} units grown in {time.perf_counter() - began:.1f} s; "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}", flush=True)

    report = []
    if args.fuzzy_size:
        queries, warmup = query_sets(units[: args.fuzzy_size], heads, tails, args.queries)
        f = fuzzy_phase(args, units, queries, warmup)
        brute_p50, http_p50, http_p95 = pct(f["brute"], 50), pct(f["latencies"], 50), pct(
            f["latencies"], 95)
        report += [
            f"== fuzzy lookup, {f['size']:,} units, {args.clients} clients, "
            f"{len(f['latencies'])} requests, {args.workers} server worker(s)",
            f"  HTTP latency        p50 {ms(http_p50)}  p95 {ms(http_p95)}   (target p95 <= 50 ms)",
            f"  server CPU per lookup {ms(f['cpu_per_lookup'])} (all workers)",
            f"  HTTP floor (GET /health, same clients) p50 {ms(pct(f['floor'], 50))}  "
            f"p95 {ms(pct(f['floor'], 95))}",
            f"  one client at a time p50 {ms(pct(f['single'], 50))}  "
            f"p95 {ms(pct(f['single'], 95))}",
            f"  brute-force scan, one query at a time (in process) p50 {ms(brute_p50)}  "
            f"p95 {ms(pct(f['brute'], 95))}",
            f"  brute-force scan, {args.clients} clients on {args.workers} processes  "
            f"p50 {ms(pct(f['brute_loaded'], 50))}  p95 {ms(pct(f['brute_loaded'], 95))}",
            "  speed-up over the scan (target >= 10x):",
            f"    both under {args.clients} clients        "
            f"{pct(f['brute_loaded'], 50) / http_p50:5.1f}x at p50 "
            f"{pct(f['brute_loaded'], 95) / http_p95:5.1f}x at p95",
            f"    both one query at a time   {brute_p50 / pct(f['single'], 50):5.1f}x at p50 "
            f"{pct(f['brute'], 95) / pct(f['single'], 95):5.1f}x at p95",
            f"    service under {args.clients} clients, scan alone "
            f"{brute_p50 / http_p50:5.1f}x at p50 {pct(f['brute'], 95) / http_p95:5.1f}x at p95",
            f"  top-5 (>= 70 %) agreement with the scan: {f['agreement']:.1%} "
            f"of {min(len(queries), args.scan_queries)} queries   (target >= 99 %)",
            f"  concordance, {len(f['concordance'])} terms (half in the memory, half nowhere), "
            f"one at a time: p50 {ms(pct(f['concordance'], 50))}  "
            f"p95 {ms(pct(f['concordance'], 95))}; reading the store without the index "
            f"p50 {ms(pct(f['concordance_scan'], 50))}  p95 {ms(pct(f['concordance_scan'], 95))}",
            f"  export of the whole memory: first byte after {ms(f['export'][0])}, "
            f"{f['export'][2] / 2**20:,.0f} MiB in {f['export'][1]:.1f} s; "
            f"writing it to a file first takes {f['export_file_s']:.1f} s before any byte",
            f"  server peak memory  {gib(f['peak_rss'])}; start-up {f['server_start_s']:.1f} s",
        ]
        if "import_units_per_s" in f:
            report.append(
                f"  import through the job path (no embedding, until indexed) "
                f"{f['import_units_per_s']:,.0f} units/s"
            )
        for wrong in f["wrong"]:
            report.append(f"  disagreement: query {wrong[0]} scan {wrong[1]} service {wrong[2]}")
    if args.semantic_size:
        queries, warmup = query_sets(units[: args.semantic_size], heads, tails, args.queries)
        s = semantic_phase(args, units, queries, warmup)
        report += [
            f"== fuzzy + semantic lookup, {s['size']:,} units, {args.clients} clients, "
            f"{len(s['latencies'])} requests, {args.workers} server worker(s)",
            f"  HTTP latency        p50 {ms(pct(s['latencies'], 50))}  "
            f"p95 {ms(pct(s['latencies'], 95))}   (target p95 <= 50 ms)",
            f"  server CPU per lookup {ms(s['cpu_per_lookup'])} (all workers)",
            f"  HTTP floor (GET /health, same clients) p50 {ms(pct(s['floor'], 50))}  "
            f"p95 {ms(pct(s['floor'], 95))}",
            f"  one client at a time (embeddings cached by then) p50 {ms(pct(s['single'], 50))}  "
            f"p95 {ms(pct(s['single'], 95))}",
            f"  recall@10 of the {s['index']} index vs exact search: {s['recall']:.3f}   "
            "(target >= 0.95)",
            f"  import with embedding (both sides, use-m3): {s['import_units_per_s']:,.1f} "
            f"units/s over {s['import_sample']:,} units",
            f"  server peak memory  {gib(s['peak_rss'])}; start-up {s['server_start_s']:.1f} s",
        ]
        if args.rounds > 1:
            report.append(
                f"  first sending of each query (query embedding not cached yet) "
                f"p50 {ms(pct(s['first'], 50))}  p95 {ms(pct(s['first'], 95))}"
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    report.append(f"bench process peak memory {gib(peak)}; load now {os.getloadavg()[0]:.1f}")
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
