"""One test (or more) per finding of the service probe (issue 13), on the real service.

1 .docx bomb to /align · 2 /align filling the embedding cache · 3 semantic index crash between
files · 4 integers too big for SQLite · 5 corrupt zip · 6 zip of 850,000 entries · 7 server
paths in job errors · 8 job queue, retention, progress writes · 9 skipped count of an import ·
10 `aligner serve` import path, key with a trailing space (tests/test_security.py).
Plus the limits the issue asks for: alignment size, heavy work at once, slow alignments as
jobs (taking over the running work), header and body timeouts, jobs reading documents within
the operator's limits, a TMX upload checked before its import is accepted.
"""

from __future__ import annotations

import io
import os
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from aligner.align.embed import CachedEncoder, UseM3Encoder
from aligner.errors import InputTooLarge
from aligner.models import TranslationUnit
from aligner.read.ingest import ReadLimits, read_bytes
from aligner.tmx import write_tmx
from service.config import Settings
from service.jobs import JobManager, check_archive
from service.memory.factory import open_store
from service.memory.semantic import SemanticIndex
from service.web.app import create_app
from tests.test_jobs import make_zip, pair_entries, unpc, wait
from tests.test_store import unpc_units

ROOT = Path(__file__).resolve().parents[1]
KEY = "hardening-key"
AUTH = {"X-API-Key": KEY}
W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def settings_for(tmp_path: Path, **kw) -> Settings:
    kw.setdefault("encoder", "none")
    return Settings(data_dir=tmp_path / "data", api_key=KEY, **kw)


def docx_bomb(paragraphs: int) -> bytes:
    """A valid .docx whose document.xml is ``paragraphs`` empty paragraphs (compresses ~1000x)."""
    body = b"<w:p/>" * paragraphs
    document = (
        f'<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="{W}"><w:body>'.encode()
        + b"<w:p><w:r><w:t>Hello world.</w:t></w:r></w:p>"
        + body
        + b"</w:body></w:document>"
    )
    types = (
        '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
        'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-'
        'package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-'
        'officedocument.wordprocessingml.document.main+xml"/></Types>'
    )
    rels = (
        '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/'
        '2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/'
        'officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/>'
        "</Relationships>"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", types)
        archive.writestr("_rels/.rels", rels)
        archive.writestr("word/document.xml", document)
    return buffer.getvalue()


def text_pair(shared_data: Path, start: int, count: int) -> dict:
    return {
        "zh": ("a.zh.txt", unpc(shared_data, "zh", start, count)),
        "en": ("a.en.txt", unpc(shared_data, "en", start, count)),
    }


# 1 ---------------------------------------------------------------- .docx bomb


def test_1_docx_bomb_is_refused_before_parsing(tmp_path, shared_data, monkeypatch):
    import docx

    def never(*args, **kwargs):
        raise AssertionError("python-docx was given the bomb")  # the probe's took 105 s there

    monkeypatch.setattr(docx, "Document", never)
    bomb = docx_bomb(17_000_000)  # 100 MB of <w:p/> in ~100 KB, as the probe sent
    assert len(bomb) < 200_000
    small_bomb = docx_bomb(1_000_000)  # 6 MB, under the size limit: too many tags
    with TestClient(create_app(settings_for(tmp_path)), raise_server_exceptions=False) as client:
        for doc in (bomb, small_bomb):
            files = {"zh": ("a.zh.txt", unpc(shared_data, "zh", 0, 3)),
                     "en": ("bomb.docx", doc)}
            answer = client.post("/align", files=files, headers=AUTH)
            assert (answer.status_code, answer.json()["error"]["code"]) == (
                413, "input_too_large"), answer.text
    with pytest.raises(InputTooLarge, match="pages|tags|bytes"):
        read_bytes(small_bomb, "x.docx", "en", ReadLimits())


# 2 ---------------------------------------------------------------- embedding cache


def test_2_align_needs_a_key_and_caches_in_the_data_folder(tmp_path, shared_data):
    settings = settings_for(tmp_path)
    with TestClient(create_app(settings)) as client:
        pair = text_pair(shared_data, 40, 4)
        assert client.post("/align", files=pair).status_code == 401
        assert client.post("/align", files=pair, headers=AUTH).status_code == 200
    cache = settings.data_dir / "cache" / "embeddings.sqlite"
    with sqlite3.connect(cache) as db:
        assert db.execute("SELECT COUNT(*) FROM embedding").fetchone()[0] >= 8


def test_2_embedding_cache_is_bounded(tmp_path, shared_data):
    path = tmp_path / "cache.sqlite"
    row = 512 * 4 + 96
    cache = CachedEncoder(UseM3Encoder(), path, max_bytes=50 * row)
    lines = (shared_data / "unpc-dev" / "en.txt").read_text().splitlines()[:200]
    for start in range(0, 200, 40):
        cache.encode(lines[start : start + 40])
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT COUNT(*) FROM embedding").fetchone()[0]
    assert 0 < rows <= 50
    again = cache.encode(lines[190:200])  # the newest stay cached, still right
    assert np.allclose(again, UseM3Encoder().encode(lines[190:200]), atol=1e-5)


# 3 ---------------------------------------------------------------- semantic index crash


@pytest.mark.parametrize("crash_at", [0, 1, 2])
def test_3_crash_while_saving_the_semantic_index(tmp_path, shared_data, monkeypatch, crash_at):
    """A crash at any rename of a save leaves one consistent index: no unit twice."""
    store = open_store(tmp_path / "data")
    units = unpc_units(shared_data, 90)
    store.import_units(units[:60])
    index = SemanticIndex(tmp_path / "data", "use-m3")
    index.load(store)
    index.sync(store)
    index.close()
    store.import_units(units[60:])
    calls = {"n": 0}
    real_replace = os.replace

    def crashing_replace(src, dst):
        if calls["n"] == crash_at:
            raise KeyboardInterrupt("simulated crash")
        calls["n"] += 1
        return real_replace(src, dst)

    monkeypatch.setattr("service.memory.semantic.os.replace", crashing_replace)
    crashed = SemanticIndex(tmp_path / "data", "use-m3")
    crashed.load(store)
    try:
        crashed.sync(store)
    except KeyboardInterrupt:
        pass
    crashed.close()
    monkeypatch.setattr("service.memory.semantic.os.replace", real_replace)
    again = SemanticIndex(tmp_path / "data", "use-m3")
    again.load(store)
    again.sync(store)
    assert len(again) == 90
    hits = again.search(again.embed_query(units[70].target), "en", 90)
    ids = [i for i, _ in hits]
    assert len(ids) == len(set(ids)) == 90 and ids[0] == 71
    again.close()
    store.close()


# 4 ---------------------------------------------------------------- big integers


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """``python -m service.web.app`` on a loopback port, short header and body timeouts, and the
    key configured with a trailing space (as pasted into an environment file)."""
    port = _free_port()
    env = dict(
        os.environ, CONCORDIA_DATA_DIR=str(tmp_path / "data"), CONCORDIA_API_KEY=KEY + " ",
        CONCORDIA_ENCODER="none", CONCORDIA_HEADER_TIMEOUT="1", CONCORDIA_BODY_TIMEOUT="2",
        PYTHONPATH=str(ROOT),
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "service.web.app", "--port", str(port), "--log-level", "warning"],
        env=env, cwd=ROOT,
    )
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(30)


def _exchange(sock: socket.socket, request: bytes) -> tuple[int, bytes]:
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by the server")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split()[1]), body


def test_4_big_integers_are_4xx_and_keep_the_connection(server):
    with socket.create_connection(("127.0.0.1", server)) as sock:
        host = f"Host: 127.0.0.1:{server}\r\n".encode()
        status, body = _exchange(
            sock, b"GET /tm/concordance?term=the&offset=10000000000000000000 HTTP/1.1\r\n"
            + host + b"\r\n")
        assert status == 422 and b"offset" in body
        status, _ = _exchange(
            sock, b"DELETE /tm/units/9223372036854775808 HTTP/1.1\r\n" + host
            + f"X-API-Key: {KEY}\r\n\r\n".encode())
        assert status == 422
        status, _ = _exchange(sock, b"GET /health HTTP/1.1\r\n" + host + b"\r\n")
        assert status == 200  # the same kept-alive connection still answers


def test_server_times_out_slow_headers_and_bodies(server):
    with socket.create_connection(("127.0.0.1", server)) as idle:
        idle.settimeout(30)  # the header timeout is 1 s: closed long before (recv raises else)
        idle.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # and no more
        assert idle.recv(1024) == b""  # closed
    with socket.create_connection(("127.0.0.1", server)) as slow:
        slow.settimeout(10)
        slow.sendall(b"POST /tm/import HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
                     + f"X-API-Key: {KEY}\r\n".encode()
                     + b"Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n")
        assert slow.recv(4096).split()[1] == b"408"
    with socket.create_connection(("127.0.0.1", server)) as big:
        big.settimeout(5)
        big.sendall(b"GET /health HTTP/1.1\r\n" + b"X-Filler: " + b"a" * 40_000 + b"\r\n")
        reply = big.recv(4096)
        assert reply == b"" or reply.split()[1] == b"431"


def test_10_key_with_a_trailing_space_over_http(server):
    """The key is configured with a trailing space; sent with or without one, it works."""
    with socket.create_connection(("127.0.0.1", server)) as sock:
        for sent in (KEY, KEY + "  "):
            status, _ = _exchange(sock, b"DELETE /tm/units/1 HTTP/1.1\r\nHost: x\r\n"
                                  + f"X-API-Key: {sent}\r\n\r\n".encode())
            assert status == 404  # past the key check: there is no unit 1


# 5, 6 ---------------------------------------------------------------- broken and huge zips


def test_5_corrupt_zip_is_400(tmp_path, shared_data):
    good = make_zip(pair_entries(shared_data, "", (500,)))
    entries = zipfile.ZipFile(io.BytesIO(good)).infolist()
    bad_crc = bytearray(good)
    start = entries[0].header_offset + 30 + len(entries[0].filename)
    bad_crc[start + 5] ^= 0xFF  # damage the compressed data of the first member
    false_size = bytearray(good)
    directory = good.rfind(b"PK\x01\x02", 0, good.rfind(b"PK\x05\x06"))
    struct.pack_into("<I", false_size, directory + 24, 3)  # last member "expands to 3 bytes"
    with TestClient(create_app(settings_for(tmp_path)), raise_server_exceptions=False) as client:
        for body in (bytes(bad_crc), bytes(false_size)):
            answer = client.post("/jobs", files={"file": ("x.zip", body)}, headers=AUTH)
            assert answer.status_code == 400, answer.text
            assert answer.json()["error"]["code"] in ("damaged_zip", "not_a_zip", "bad_pairs")
        assert not list((tmp_path / "data" / "jobs").glob("*"))


def directory_only_zip(entries: int) -> bytes:
    """A zip of ``entries`` central-directory records (what the probe sent: 40 MB)."""
    record = struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0,
                         1, 0, 0, 0, 0, 0, 0) + b"x"
    directory = record * entries
    end64 = struct.pack("<4sQ2H2I4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, entries, entries,
                        len(directory), 0)
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, len(directory), 1)
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF,
                      0xFFFFFFFF, 0)
    return directory + end64 + locator + end


def test_6_entry_count_is_checked_before_the_directory_is_read(monkeypatch):
    data = directory_only_zip(850_000)

    def no_directory_reading(*args, **kwargs):
        raise AssertionError("the central directory was read")

    monkeypatch.setattr(zipfile, "ZipFile", no_directory_reading)  # the probe's took 13 s
    with pytest.raises(Exception) as refused:
        check_archive(io.BytesIO(data), 200 * 2**20, 10_000)
    assert getattr(refused.value, "status", None) == 413, refused.value


# 7, 8 ---------------------------------------------------------------- jobs


def test_7_job_errors_show_no_server_paths(tmp_path, shared_data):
    settings = settings_for(tmp_path)
    lonely = make_zip({"notes/readme.txt": unpc(shared_data, "en", 0, 3)})  # no pairs
    with TestClient(create_app(settings)) as client:
        answer = client.post("/jobs", files={"file": ("x.zip", lonely)}, headers=AUTH)
        assert answer.status_code == 400
        message = answer.json()["error"]["message"]
        assert str(tmp_path) not in message and ".incoming" not in message
        assert "/data" not in message, message


def test_8_job_queue_is_bounded(tmp_path, shared_data, monkeypatch):
    release = threading.Event()
    real_run = JobManager._run_job

    def held(self, *job):
        release.wait(60)
        real_run(self, *job)

    monkeypatch.setattr(JobManager, "_run_job", held)
    body = make_zip(pair_entries(shared_data, "", (600,), count=3))
    with TestClient(create_app(settings_for(tmp_path, max_queued_jobs=2))) as client:
        codes = [client.post("/jobs", files={"file": ("x.zip", body)}, headers=AUTH)
                 for _ in range(3)]
        assert [c.status_code for c in codes] == [202, 202, 429]
        assert codes[2].headers["Retry-After"] == "5"
        release.set()
        for answer in codes[:2]:
            assert wait(client, answer.json()["id"])["state"] == "done"
        assert client.post("/jobs", files={"file": ("x.zip", body)},
                           headers=AUTH).status_code == 202


def test_8_finished_jobs_are_deleted_after_retention(tmp_path, shared_data):
    settings = settings_for(tmp_path, job_retention_hours=0)
    body = make_zip(pair_entries(shared_data, "", (700, 710, 720), count=3))
    with TestClient(create_app(settings)) as client:
        job_id = client.post("/jobs", files={"file": ("x.zip", body)}, headers=AUTH).json()["id"]
        job = wait(client, job_id)
        assert job["state"] == "done" and len(job["pairs"]) == 3
        page = client.get(f"/jobs/{job_id}", params={"offset": 1, "limit": 1}).json()["pairs"]
        assert [p["id"] for p in page] == [job["pairs"][1]["id"]]
        db = sqlite3.connect(settings.data_dir / "jobs.sqlite")  # the store keeps jobs there
        # progress wrote one row per pair, never the whole list again
        assert db.execute("SELECT results FROM job WHERE id = ?", (job_id,)).fetchone() == (None,)
        assert db.execute("SELECT COUNT(*) FROM job_pair WHERE job = ?",
                          (job_id,)).fetchone() == (3,)
        assert client.app.state.jobs.cleanup() == 0  # ended this second, not before it
        # "updated" has one-second resolution: the job ended a while ago
        db.execute("UPDATE job SET updated = '2026-01-01T00:00:00Z' WHERE id = ?", (job_id,))
        db.commit()
        assert client.app.state.jobs.cleanup() == 1
        assert client.get(f"/jobs/{job_id}").status_code == 404
        assert not (settings.data_dir / "jobs" / job_id).exists()
        assert db.execute("SELECT COUNT(*) FROM job_pair").fetchone() == (0,)
        db.close()


# 9 ---------------------------------------------------------------- import counts


def test_9_import_answer_counts_what_the_reader_skipped(tmp_path):
    tmx = tmp_path / "two.tmx"
    write_tmx(tmx, [TranslationUnit("你好。", "Hello."), TranslationUnit("再见。", "Goodbye.")])
    text = tmx.read_text(encoding="utf-8")
    cut = text.rindex('<tuv xml:lang="en-US">')
    text = text[:cut] + text[text.index("</tuv>", cut) + len("</tuv>"):]  # drop one English side
    tmx.write_text(text, encoding="utf-8")
    with TestClient(create_app(settings_for(tmp_path))) as client:
        job = client.post("/tm/import", files={"file": ("two.tmx", tmx.read_bytes())},
                          headers=AUTH).json()  # an import job
        answer = wait(client, job["id"])["memory"]
        assert (answer["imported"], answer["skipped"]) == (1, 1)
        assert sum(answer["skipped_reasons"].values()) == 1


# 10 ---------------------------------------------------------------- aligner serve


def test_10_serve_ignores_modules_in_the_working_folder(tmp_path):
    import argparse

    from aligner.commands import serve_command

    (tmp_path / "concurrent.py").write_text("raise SystemExit('stray module imported')\n")
    args = argparse.Namespace(host="127.0.0.1", port=1, workers=1, data=None)
    argv, env = serve_command(args)
    done = subprocess.run(argv[1:] and [sys.executable, *argv[1:], "--help"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--workers" in done.stdout


def test_serve_limits_malloc_arenas_unless_the_operator_chose(monkeypatch):
    import argparse

    from aligner.commands import serve_command

    args = argparse.Namespace(host="127.0.0.1", port=1, workers=1, data=None)
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert serve_command(args)[1]["MALLOC_ARENA_MAX"] == "2"
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    assert serve_command(args)[1]["MALLOC_ARENA_MAX"] == "8"


# limits the issue asks for ---------------------------------------------------------------


def test_alignment_size_limits_and_large_pairs_become_jobs(tmp_path, shared_data):
    settings = settings_for(tmp_path, max_align_sentences=20, align_sync_chars=1500)
    with TestClient(create_app(settings)) as client:
        too_many = client.post("/align", files=text_pair(shared_data, 0, 30), headers=AUTH)
        assert (too_many.status_code, too_many.json()["error"]["code"]) == (
            413, "input_too_large")
        assert "sentences" in too_many.json()["error"]["message"]
        large = client.post("/align", files=text_pair(shared_data, 100, 12), headers=AUTH)
        assert large.status_code == 202, large.text
        assert large.headers["Location"] == f"/jobs/{large.json()['job']}"
        job = wait(client, large.json()["job"])
        assert job["state"] == "done" and job["pairs"][0]["status"] == "ok"
        assert client.get(f"/jobs/{job['id']}/tmx").status_code == 200
        small = client.post("/align", files=text_pair(shared_data, 200, 3), headers=AUTH)
        assert small.status_code == 200 and small.json()["pairs"]


def test_heavy_work_at_once_is_limited_per_key_and_in_total(tmp_path, shared_data):
    settings = settings_for(tmp_path, max_heavy=2, max_heavy_per_key=1, retry_after_s=7)
    with TestClient(create_app(settings)) as client:
        heavy = client.app.state.service.heavy
        pair = text_pair(shared_data, 300, 3)
        held = heavy.acquire("env")  # as if this key's alignment were still running
        busy = client.post("/align", files=pair, headers=AUTH)
        assert busy.status_code == 429 and busy.headers["Retry-After"] == "7"
        assert busy.json()["error"]["code"] == "too_busy"
        other = heavy.acquire("someone-else")  # the total is reached too
        export = client.get("/tm/export")
        assert export.status_code == 429
        held.release()
        other.release()
        assert client.post("/align", files=pair, headers=AUTH).status_code == 200
        assert heavy.running() == 0  # every slot given back


def test_slow_alignment_becomes_a_job_with_its_result(tmp_path, shared_data, monkeypatch):
    """Past the request timeout, /align answers 202 and the job ends with the alignment the
    request started: aligned once, never queued, in the request's heavy slot until done."""
    queued = []
    real_run = JobManager._run_job
    monkeypatch.setattr(JobManager, "_run_job",
                        lambda self, job_id: (queued.append(job_id), real_run(self, job_id)))
    settings = settings_for(tmp_path, request_timeout_s=0.001)  # every alignment is slower
    with TestClient(create_app(settings)) as client:
        answer = client.post("/align", files=text_pair(shared_data, 400, 6), headers=AUTH,
                             data={"add_to_memory": "true"})
        assert answer.status_code == 202, answer.text
        body = answer.json()
        assert answer.headers["Location"] == body["status"] == f"/jobs/{body['job']}"
        assert "took longer than 0.001 s" in body["message"]
        job = wait(client, body["job"])
        assert job["state"] == "done" and job["progress"] == {"total": 1, "done": 1, "failed": 0}
        report = job["pairs"][0]
        assert report["status"] == "ok" and report["pairs_written"] >= 5, report
        assert job["memory"]["imported"] == report["pairs_written"]
        tmx = client.get(f"/jobs/{body['job']}/tmx")
        assert tmx.status_code == 200 and tmx.text.count("<tu>") + tmx.text.count("<tu ") == (
            report["pairs_written"])
        assert client.get("/tm/stats").json()["units"] == report["pairs_written"]
        assert queued == []  # the job runner never aligned it again
        assert client.app.state.service.heavy.running() == 0


def held_back(monkeypatch, name: str) -> threading.Event:
    """``service.web.routes.align.<name>`` waits, when called, until the event returned is set."""
    from service.web.routes import align as align_routes

    release = threading.Event()
    real = getattr(align_routes, name)

    def waiting(*args):
        release.wait(60)
        return real(*args)

    monkeypatch.setattr(align_routes, name, waiting)
    return release


def test_handed_over_alignment_keeps_its_heavy_slot(tmp_path, shared_data, monkeypatch):
    release = held_back(monkeypatch, "_align")
    settings = settings_for(tmp_path, request_timeout_s=0.2)
    with TestClient(create_app(settings)) as client:
        answer = client.post("/align", files=text_pair(shared_data, 420, 4), headers=AUTH)
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["job"]
        assert client.get(f"/jobs/{job_id}").json()["state"] == "running"
        assert client.app.state.service.heavy.running() == 1  # the work still counts
        busy = client.post("/align", files=text_pair(shared_data, 430, 4), headers=AUTH)
        assert busy.status_code == 429
        release.set()
        job = wait(client, job_id)
        assert job["state"] == "done" and job["pairs"][0]["status"] == "ok", job
        assert client.app.state.service.heavy.running() == 0


def test_tmx_answer_written_past_the_timeout_becomes_the_job(tmp_path, shared_data, monkeypatch):
    """With format=tmx the TMX is written within the request's time too: past it, the job
    takes the alignment over, and the half-made answer's file is removed."""
    release = held_back(monkeypatch, "_tmx_file")
    settings = settings_for(tmp_path, request_timeout_s=0.5)
    with TestClient(create_app(settings)) as client:
        answer = client.post("/align", files=text_pair(shared_data, 440, 6), headers=AUTH,
                             data={"format": "tmx"})
        assert answer.status_code == 202, answer.text
        release.set()
        job = wait(client, answer.json()["job"])
        assert job["state"] == "done" and job["pairs"][0]["status"] == "ok", job
        tmx = client.get(f"/jobs/{answer.json()['job']}/tmx")
        assert tmx.status_code == 200 and "<tu" in tmx.text
        assert client.app.state.service.heavy.running() == 0
        assert list((settings.data_dir / "tmp").glob("align-*")) == []
        quick = client.post("/align", files=text_pair(shared_data, 440, 6), headers=AUTH,
                            data={"format": "tmx"})
        assert quick.status_code == 200 and quick.text.count("</tu>") >= 5, quick.text[:200]


def test_handed_over_pair_that_is_large_goes_to_the_queue(tmp_path, shared_data, monkeypatch):
    from service.web.routes import align as align_routes

    real_read = align_routes.read_pair
    released = threading.Event()

    def slow_read(*args):
        released.wait(60)  # reading lasts until the request has timed out and answered
        return real_read(*args)

    monkeypatch.setattr(align_routes, "read_pair", slow_read)
    settings = settings_for(tmp_path, request_timeout_s=0.1, align_sync_chars=1500)
    with TestClient(create_app(settings)) as client:
        answer = client.post("/align", files=text_pair(shared_data, 100, 12), headers=AUTH)
        released.set()
        assert answer.status_code == 202, answer.text
        assert "took longer than 0.1 s" in answer.json()["message"]
        job = wait(client, answer.json()["job"])
        assert job["state"] == "done" and job["pairs"][0]["status"] == "ok", job


def test_jobs_read_documents_within_the_operators_limits(tmp_path, shared_data):
    settings = settings_for(tmp_path, max_document_bytes=4000, max_align_sentences=10)
    entries = {}
    for name, start, count in (("fits", 500, 4), ("long", 510, 14), ("big", 530, 60)):
        for lang in ("zh", "en"):
            entries[f"{name}.{lang}.txt"] = unpc(shared_data, lang, start, count)
    with TestClient(create_app(settings)) as client:
        answer = client.post("/jobs", files={"file": ("x.zip", make_zip(entries))}, headers=AUTH)
        assert answer.status_code == 202, answer.text
        job = wait(client, answer.json()["id"])
        assert job["state"] == "done", job
        reports = {p["id"]: p for p in job["pairs"]}
        assert reports["fits"]["status"] == "ok" and reports["fits"]["pairs_written"] >= 3
        assert reports["long"]["status"] == "failed"
        assert reports["long"]["reason"] == (
            "long.zh.txt: 14 sentences; an alignment takes at most 10 a side")
        assert reports["big"]["status"] == "failed"
        assert reports["big"]["reason"] == "big.zh.txt: larger than 4000 bytes"
        assert job["progress"] == {"total": 3, "done": 3, "failed": 2}


def test_tmx_upload_is_checked_before_it_is_accepted(tmp_path):
    data = ROOT / "tests" / "data"
    good = tmp_path / "good.tmx"
    write_tmx(good, [TranslationUnit(f"第{i}段。", f"Paragraph {i}.") for i in range(3000)])
    text = good.read_text(encoding="utf-8")
    cut = text.rindex("</seg>")  # the last unit's segment left open: well-formed until then
    late_error = (text[:cut] + text[cut + len("</seg>"):]).encode()
    broken_line = text[:cut].count("\n") + 1
    with TestClient(create_app(settings_for(tmp_path))) as client:
        for name, body, code, message in (
            ("malformed.tmx", (data / "tmx_malformed.tmx").read_bytes(), "bad_tmx",
             "malformed.tmx: malformed TMX at line 6, column 45: Opening and ending tag "
             "mismatch: seg line 6 and tuv"),
            ("laughs.tmx", (data / "tmx_billion_laughs.tmx").read_bytes(), "bad_tmx",
             "laughs.tmx: refused: the file declares XML entities or a DTD of its own (unsafe, "
             "not TMX)"),
            ("late.tmx", late_error, "bad_tmx",
             f"late.tmx: malformed TMX at line {broken_line + 1}, column 9: Opening and ending "
             f"tag mismatch: seg line {broken_line} and tuv"),
        ):
            answer = client.post("/tm/import", files={"file": (name, body)}, headers=AUTH)
            assert answer.status_code == 400, answer.text
            error = answer.json()["error"]
            assert error["code"] == code and error["message"].startswith(message), error
            assert str(tmp_path) not in error["message"] and "import.tmx" not in error["message"]
        assert client.get("/tm/imports").json()["imports"] == []  # no job, no import begun
        assert not list((tmp_path / "data" / "jobs").glob("*/input/*"))  # nothing kept
        accepted = client.post("/tm/import", files={"file": ("good.tmx", good.read_bytes())},
                               headers=AUTH)
        assert accepted.status_code == 202, accepted.text
        job = wait(client, accepted.json()["id"])
        assert job["state"] == "done" and job["memory"]["imported"] == 3000, job
