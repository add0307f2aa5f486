"""The HTTP service end to end: the real app over a real store, on real UNPC pairs."""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from translate.search.lshtein import LevenshteinComparer

from aligner.models import TranslationUnit
from aligner.tmx import read_tmx, write_tmx
from service.config import Settings
from service.web.app import create_app
from tests.test_store import unpc_units

KEY = "test-key-123"
AUTH = {"X-API-Key": KEY}


def tmx_file(path: Path, units: list[TranslationUnit]) -> Path:
    write_tmx(path, units)
    return path


def upload(path: Path) -> dict:
    return {"file": (path.name, path.read_bytes(), "application/x-tmx+xml")}


def finished(client, answer, timeout: float = 120) -> dict:
    """The job an import answered with (202, at once), once it has finished."""
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert job["kind"] == "import" and job["state"] == "queued"
    deadline = time.monotonic() + timeout
    while job["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
        job = client.get(f"/jobs/{job['id']}").json()
    return job


def import_file(client, files: dict, **data) -> dict:
    """Import through the job path and return what the import did."""
    job = finished(client, client.post("/tm/import", files=files, data=data, headers=AUTH))
    assert job["state"] == "done", job
    return job["memory"]


@pytest.fixture(scope="module")
def memory(tmp_path_factory, shared_data):
    """A semantic service holding 300 UNPC pairs (IVF-PQ from 200); (client, units, data dir)."""
    base = tmp_path_factory.mktemp("api")
    units = unpc_units(shared_data, 300)
    tmx = tmx_file(base / "unpc.tmx", units)
    settings = Settings(
        data_dir=base / "data", api_key=KEY, encoder="use-m3", semantic_exact_below=200
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert import_file(client, upload(tmx))["imported"] == 300
        yield client, units, base


def fuzzy_only(tmp_path: Path, **kw) -> TestClient:
    settings = Settings(data_dir=tmp_path / "data", api_key=KEY, encoder="none", **kw)
    return TestClient(create_app(settings), raise_server_exceptions=False)


def test_exact_match_is_100_with_both_segments(memory):
    client, units, _ = memory
    unit = units[7]
    answer = client.post(
        "/tm/lookup", json={"text": unit.target, "source_lang": "en", "limit": 3, "min_fuzzy": 70}
    )
    assert answer.status_code == 200
    best = answer.json()["matches"][0]
    assert (best["source"], best["target"], best["fuzzy"]) == (unit.target, unit.source, 100)
    assert best["kind"] == "fuzzy"
    assert best["semantic"] == pytest.approx(1.0, abs=1e-3)
    assert best["document"] == unit.props["x-document"]
    assert best["source_lang"] == "en-US" and best["target_lang"] == "zh-CN"


def test_fuzzy_percentages_and_order(memory):
    client, units, _ = memory
    # English: token edit distance. Two words changed in a segment of n tokens.
    text = units[2].target  # "No reform of the United Nations can redefine ..."
    edited = text.replace("redefine", "rewrite").replace("undermine", "weaken")
    tokens = len(text.split()) + 1  # 17 words and the final full stop
    answer = client.post(
        "/tm/lookup", json={"text": edited, "source_lang": "en", "limit": 5, "min_fuzzy": 50}
    ).json()["matches"]
    assert answer[0]["source"] == text
    assert answer[0]["fuzzy"] == math.floor(100 * (1 - 2 / tokens))
    fuzzy = [m["fuzzy"] for m in answer if m["kind"] == "fuzzy"]
    assert fuzzy == sorted(fuzzy, reverse=True) and all(f >= 50 for f in fuzzy)
    # Chinese: character edit distance, as translate-toolkit computes it.
    zh = units[4].source
    query = zh[:10] + "某些" + zh[12:-4]
    best = client.post(
        "/tm/lookup", json={"text": query, "source_lang": "zh", "min_fuzzy": 60}
    ).json()["matches"][0]
    expected = LevenshteinComparer(max_len=10_000).similarity(query, zh, 0)
    assert best["source"] == zh
    assert best["fuzzy"] == math.floor(expected)


def test_paraphrase_found_by_meaning(memory):
    client, units, _ = memory
    original = units[2]  # No reform of the United Nations can redefine the principles ...
    paraphrase = "Any reform of the Organization must not redefine the principles of the Charter."
    matches = client.post(
        "/tm/lookup", json={"text": paraphrase, "source_lang": "en", "limit": 3, "min_fuzzy": 75}
    ).json()["matches"]
    assert matches, "the paraphrase found nothing"
    assert matches[0]["source"] == original.target
    assert matches[0]["kind"] == "semantic"
    assert matches[0]["fuzzy"] < 75
    assert 0.5 < matches[0]["semantic"] <= 1


def test_lookup_filters_by_document(memory):
    client, units, _ = memory
    unit = units[150]
    body = {"text": unit.target, "source_lang": "en", "document": "UNPC/0", "min_fuzzy": 90}
    matches = client.post("/tm/lookup", json=body).json()["matches"]
    assert all(m["document"] == "UNPC/0" for m in matches)
    assert unit.target not in [m["source"] for m in matches]
    body["document"] = unit.props["x-document"]
    assert client.post("/tm/lookup", json=body).json()["matches"][0]["source"] == unit.target


def test_concordance_marks_hits(memory):
    client, _, _ = memory
    found = client.get("/tm/concordance", params={"term": "security council"}).json()["units"]
    assert found
    for unit in found:
        assert unit["target_hits"]
        for start, end in unit["target_hits"]:
            assert unit["target"][start:end].lower() == "security council"
        assert "<mark>" in unit["target_marked"]
    zh = client.get("/tm/concordance", params={"term": "安理会", "lang": "zh"}).json()["units"]
    assert zh and all("<mark>安理会</mark>" in u["source_marked"] for u in zh)


def test_export_round_trips(memory, tmp_path):
    client, units, _ = memory
    answer = client.get("/tm/export")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/x-tmx+xml")
    path = tmp_path / "export.tmx"
    path.write_bytes(answer.content)
    back = list(read_tmx(path))
    assert [(u.source, u.target) for u in back] == [(u.source, u.target) for u in units]
    one_doc = client.get("/tm/export", params={"document": "UNPC/1"})
    path.write_bytes(one_doc.content)
    assert {u.props["x-document"] for u in read_tmx(path)} == {"UNPC/1"}
    with fuzzy_only(tmp_path) as fresh:
        again = import_file(fresh, {"file": ("e.tmx", answer.content)})
        assert again["imported"] == len(units)


def test_writes_need_the_key(memory, tmp_path):
    client, _, base = memory
    tmx = tmx_file(tmp_path / "one.tmx", [TranslationUnit("你好。", "Hello.")])
    missing = client.post("/tm/import", files=upload(tmx))
    wrong = client.post("/tm/import", files=upload(tmx), headers={"X-API-Key": "nope"})
    assert (missing.status_code, missing.json()["error"]["code"]) == (401, "missing_api_key")
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (403, "invalid_api_key")
    assert client.delete("/tm/units/1").status_code == 401
    assert client.get("/tm/stats").json()["units"] == 300
    settings = Settings(data_dir=tmp_path / "d", api_key=None, encoder="none")
    with TestClient(create_app(settings)) as keyless:
        refused = keyless.post("/tm/import", files=upload(tmx), headers=AUTH)
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "writes_disabled"
        assert "CONCORDIA_API_KEY" in refused.json()["error"]["message"]
    closed = Settings(data_dir=tmp_path / "c", api_key=KEY, open_reads=False, encoder="none")
    with TestClient(create_app(closed)) as private:
        body = {"text": "Hello.", "source_lang": "en"}
        assert private.post("/tm/lookup", json=body).status_code == 401
        assert private.post("/tm/lookup", json=body, headers=AUTH).status_code == 200


def test_upload_over_the_limit_is_413(tmp_path, shared_data):
    tmx = tmx_file(tmp_path / "big.tmx", unpc_units(shared_data, 400))
    with fuzzy_only(tmp_path, max_upload_bytes=tmx.stat().st_size // 2) as client:
        answer = client.post("/tm/import", files=upload(tmx), headers=AUTH)
        assert answer.status_code == 413
        assert answer.json()["error"]["code"] == "payload_too_large"
        # Streamed without a declared length, the body is cut off all the same.
        streamed = client.post(
            "/tm/import",
            content=iter([b"x" * 4096] * (tmx.stat().st_size // 4096)),
            headers={**AUTH, "content-type": "multipart/form-data; boundary=b"},
        )
        assert streamed.status_code == 413
        assert client.get("/tm/stats").json()["units"] == 0
        too_long = {"text": "x" * 5000, "source_lang": "en"}
        assert client.post("/tm/lookup", json=too_long).json()["error"]["code"] == (
            "segment_too_long"
        )


def test_errors_are_json_without_traces(tmp_path):
    with fuzzy_only(tmp_path) as client:
        client.app.add_api_route("/boom", lambda: 1 / 0)  # an unexpected bug in a handler
        broken = tmp_path / "broken.tmx"
        broken.write_bytes(b"<tmx version='1.4'><body><tu><tuv xml:lang='zh'><seg>")
        answers = {
            "bad json": client.post(
                "/tm/lookup", content=b"{", headers={"content-type": "application/json"}
            ),
            "bad field": client.post("/tm/lookup", json={"text": "x", "source_lang": "fr"}),
            "no route": client.get("/nowhere"),
            "bug": client.get("/boom"),
            "no unit": client.delete("/tm/units/99", headers=AUTH),
        }
        codes = {name: (a.status_code, a.json()["error"]["code"]) for name, a in answers.items()}
        assert codes == {
            "bad json": (422, "invalid_request"),
            "bad field": (422, "invalid_request"),
            "no route": (404, "not_found"),
            "bug": (500, "internal_error"),
            "no unit": (404, "not_found"),
        }
        for answer in answers.values():
            assert "Traceback" not in answer.text and "ZeroDivision" not in answer.text
            assert set(answer.json()) == {"error"}
            assert set(answer.json()["error"]) == {"code", "message"}


def test_restart_keeps_data_and_semantic_index(memory, tmp_path):
    _, units, base = memory
    data = base / "data"
    manifest = data / "semantic" / "manifest.json"
    codes = data / "semantic" / json.loads(manifest.read_text())["files"]["en.codes"]
    saved = (manifest.stat().st_mtime_ns, codes.stat().st_mtime_ns)
    settings = Settings(data_dir=data, api_key=KEY, encoder="use-m3", semantic_exact_below=200)
    with TestClient(create_app(settings)) as again:
        stats = again.get("/tm/stats").json()
        assert stats["units"] == 300
        assert stats["semantic_index"]["indexed"] == 300
        assert stats["semantic_index"]["index"] == "ivfpq"
        best = again.post("/tm/lookup", json={"text": units[9].source, "source_lang": "zh"})
        assert best.json()["matches"][0]["fuzzy"] == 100
    assert (manifest.stat().st_mtime_ns, codes.stat().st_mtime_ns) == saved  # not rebuilt


def test_delete_removes_from_lookups(tmp_path, shared_data):
    units = unpc_units(shared_data, 40)
    with fuzzy_only(tmp_path) as client:
        import_file(client, upload(tmx_file(tmp_path / "a.tmx", units)))
        body = {"text": units[5].target, "source_lang": "en"}
        uid = client.post("/tm/lookup", json=body).json()["matches"][0]["id"]
        assert client.delete(f"/tm/units/{uid}", headers=AUTH).json()["deleted"] == 1
        left = client.post("/tm/lookup", json=body).json()["matches"]
        assert uid not in [m["id"] for m in left]
        gone = client.delete("/tm/units", params={"document": "UNPC/0"}, headers=AUTH).json()
        assert gone["deleted"] == 39
        assert client.get("/tm/stats").json()["units"] == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_concurrent_import_and_lookups_over_http(tmp_path, shared_data):
    """uvicorn on a loopback port: lookups answer while a big import runs (how fast:
    ``bench/tm_bench.py``)."""
    units = unpc_units(shared_data, 3000)
    small = tmx_file(tmp_path / "small.tmx", units[:200])
    # The big import: the UNPC pairs, each also with a numbered variant, 6,000 units in all.
    variants = units + [
        TranslationUnit(u.source + f"（{i}）", u.target + f" ({i})", props=u.props)
        for i, u in enumerate(units)
    ]
    big = tmx_file(tmp_path / "big.tmx", variants)
    settings = Settings(data_dir=tmp_path / "data", api_key=KEY, encoder="none")
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.1)
        with httpx.Client(base_url=base, timeout=30) as http:
            assert import_file(http, upload(small))["imported"] == 200
            submitted = http.post("/tm/import", files=upload(big), headers=AUTH)
            assert submitted.json()["state"] == "queued"  # answered at once, with the job
            job_id = submitted.json()["id"]
            lookups = during = 0

            def state() -> str:
                return http.get(f"/jobs/{job_id}").json()["state"]

            while state() in ("queued", "running") or lookups < 5:
                before = state()
                answer = http.post(
                    "/tm/lookup", json={"text": units[lookups % 200].target, "source_lang": "en"}
                )
                assert answer.status_code == 200
                assert answer.json()["matches"][0]["fuzzy"] == 100
                during += before == "running" and state() == "running"  # inside the import
                lookups += 1
            job = finished(http, submitted)
            assert job["memory"]["imported"] == 6000 - 200
            assert job["memory"]["total_seconds"] >= job["memory"]["seconds"] > 0
            assert job["progress"]["done"] == job["progress"]["total"] == 6000
            assert during >= 1, "no lookup was answered while the import ran"
            stats = http.get("/tm/stats").json()
            assert stats["units"] == 6000 and stats["fuzzy_index"]["units"] == 6000
    finally:
        server.should_exit = True
        thread.join(10)


def test_docs_and_health(memory):
    client, _, _ = memory
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/tm/lookup", "/tm/import", "/tm/export", "/tm/stats", "/align"} <= set(paths)
    assert client.get("/health").json()["status"] == "ok"


def test_align_two_documents_into_the_memory(tmp_path, shared_data):
    zh = "\n".join((shared_data / "mac-dev" / "zh" / "001").read_text().splitlines()[:12])
    en = "\n".join((shared_data / "mac-dev" / "en" / "001").read_text().splitlines()[:12])
    files = {"zh": ("novel.zh.txt", zh.encode()), "en": ("novel.en.txt", en.encode())}
    with fuzzy_only(tmp_path) as client:
        _align_checks(client, files)


def _align_checks(client: TestClient, files: dict) -> None:
    refused = client.post("/align", files=files, data={"add_to_memory": "true"})
    assert refused.status_code == 401
    assert client.post("/align", files=files).status_code == 401  # alignment costs: keyed
    answer = client.post("/align", files=files, data={"document": "MAC/001"}, headers=AUTH)
    assert answer.status_code == 200, answer.text
    pairs = answer.json()["pairs"]
    assert len(pairs) >= 8 and all(p["zh"] and p["en"] for p in pairs)
    assert answer.json()["imported"] is None
    below = answer.json()["pairs_below_threshold"]  # listed with turn, speaker, text, score
    keys = ("zh", "en", "score", "speaker", "turn")
    low = [p for p in pairs if p["score"] < answer.json()["min_score"]]
    assert [{k: b[k] for k in keys} for b in below] == [{k: p[k] for k in keys} for p in low]
    unmatched = answer.json()["unmatched_sentences"]
    assert [u["text"] for u in unmatched if u["lang"] == "zh"] == answer.json()["unmatched_zh"]
    tmx = client.post("/align", files=files, data={"format": "tmx"}, headers=AUTH)
    assert tmx.headers["content-type"].startswith("application/x-tmx+xml")
    added = client.post(
        "/align", files=files, data={"add_to_memory": "true", "document": "MAC/001"}, headers=AUTH
    ).json()["imported"]
    below = sum(1 for p in pairs if p["score"] < 0.5)
    assert (added["imported"], added["kept_out"], added["min_score"]) == (
        len(pairs) - below, below, 0.5
    )
    found = client.post(
        "/tm/lookup", json={"text": pairs[0]["en"], "source_lang": "en", "document": "MAC/001"}
    ).json()["matches"]
    assert found[0]["fuzzy"] == 100 and found[0]["target"] == pairs[0]["zh"]


def test_align_of_unrelated_texts_keeps_them_out_of_the_memory(tmp_path, shared_data):
    """Two unrelated texts (the first lines of two different novels): as the command line
    does, nothing below the threshold goes in, and the answer says how many were kept out
    and why."""
    mac = shared_data / "mac-dev"
    zh = "\n".join((mac / "zh" / "001").read_text().splitlines()[:12])
    en = "\n".join((mac / "en" / "003").read_text().splitlines()[:12])
    files = {"zh": ("a.zh.txt", zh.encode()), "en": ("b.en.txt", en.encode())}
    with fuzzy_only(tmp_path) as client:
        answer = client.post(
            "/align", files=files, data={"add_to_memory": "true"}, headers=AUTH
        ).json()
        assert answer["pairs"] and max(p["score"] for p in answer["pairs"]) < 0.5
        memory = answer["imported"]
        assert (memory["imported"], memory["kept_out"]) == (0, len(answer["pairs"]))
        assert memory["kept_out_reason"] == "score below 0.5"
        assert any("translations of each other" in w for w in answer["warnings"])
        assert client.get("/tm/stats").json()["units"] == 0


def test_two_workers_share_one_memory(tmp_path, shared_data):
    """``python -m service.web.app --workers 2``: an import through one worker reaches the other."""
    import os
    import subprocess
    import sys

    port = _free_port()
    env = dict(os.environ, CONCORDIA_DATA_DIR=str(tmp_path / "data"), CONCORDIA_API_KEY=KEY,
               CONCORDIA_ENCODER="none")
    server = subprocess.Popen(
        [sys.executable, "-m", "service.web.app", "--port", str(port), "--workers", "2",
         "--log-level", "warning"],
        env=env, cwd=Path(__file__).resolve().parents[1],
    )
    base = f"http://127.0.0.1:{port}"
    try:
        units = unpc_units(shared_data, 50)
        with httpx.Client(base_url=base, timeout=30) as http:
            for _ in range(300):
                try:
                    if http.get("/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            assert import_file(http, upload(tmx_file(tmp_path / "a.tmx", units)))["imported"] == 50
            seen: dict[int, int] = {}
            deadline = time.monotonic() + 60
            while (len(seen) < 2 or min(seen.values()) < 50) and time.monotonic() < deadline:
                health = httpx.get(base + "/health").json()  # a new connection: any worker
                seen[health["worker"]] = health["units"]
            assert len(seen) == 2 and min(seen.values()) == 50, seen
    finally:
        server.terminate()
        server.wait(60)
