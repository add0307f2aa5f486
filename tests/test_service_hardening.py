"""The service's smaller defects of issue 20, each on the real service: security headers, a
full disk during an edit, unit properties too large, a read-only data folder, concordance
case folding once indexed, TMX dates with a time-zone offset, an identical re-import by tuid,
and the work a filtered lookup may cost."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from aligner.models import TranslationUnit
from aligner.tmx import write_tmx
from service.config import Settings
from service.memory import lookup as lookup_module
from service.web.app import create_app
from tests.test_api import AUTH, KEY, import_file, upload
from tests.test_store import unpc_units

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
STRASSE = TranslationUnit("他住在Straße区。", "The Straße district was closed.",
                          props={"x-document": "streets"})


@pytest.fixture(scope="module")
def service(tmp_path_factory, shared_data):
    base = tmp_path_factory.mktemp("svchard")
    tmx = base / "units.tmx"
    write_tmx(tmx, unpc_units(shared_data, 400) + [STRASSE])
    settings = Settings(data_dir=base / "data", api_key=KEY, encoder="none")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert import_file(client, upload(tmx))["imported"] == 401
        yield client


def test_security_headers_on_every_answer(service):
    answers = [
        service.get("/search"),
        service.get("/tm/stats"),
        service.get("/no/such/route"),
        service.post("/tm/import", headers={**AUTH, "Content-Length": str(1 << 40)}),
        service.get("/static/common.js"),
    ]
    for answer in answers:
        assert "default-src 'self'" in answer.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["Referrer-Policy"] == "same-origin"
    docs = service.get("/docs").headers["Content-Security-Policy"]
    assert "'sha256-" in docs and "'unsafe-inline'" not in docs.split("script-src")[1].split(";")[0]


def test_a_full_disk_during_a_review_edit_is_a_clear_507(service):
    files = {"zh": ("zh.txt", (DATA / "record_8017_excerpt.zh.txt").read_bytes()),
             "en": ("en.txt", (DATA / "record_8017_excerpt.en.txt").read_bytes())}
    rid = service.post("/reviews", files=files, headers=AUTH).json()["id"]
    state = service.get(f"/reviews/{rid}").json()
    bead = next(b for b in state["beads"] if b["zh"] and b["en"])
    table = service.app.state.service.reviews.table
    connect = table._connect

    def full() -> sqlite3.Connection:  # the database may not grow by a page: SQLITE_FULL
        conn = connect()
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        return conn

    table._connect, table._local = full, threading.local()
    try:
        answer = service.post(f"/reviews/{rid}/changes", headers=AUTH, json={
            "version": state["version"], "op": "edit", "bead": bead["id"], "side": "en",
            "text": "A long corrected sentence. " * 70})
    finally:
        table._connect, table._local = connect, threading.local()
    assert answer.status_code == 507, answer.text
    assert answer.json()["error"]["code"] == "disk_full"
    after = service.get(f"/reviews/{rid}").json()
    assert after["version"] == state["version"]  # nothing half-saved
    assert after["beads"] == state["beads"]


def test_unit_properties_are_bounded_in_total(service):
    unit = service.get("/tm/units/1").json()
    props = {f"x-p{n}": "v" * 100_000 for n in range(100)}  # 10 MB, each prop allowed alone
    answer = service.patch("/tm/units/1", headers=AUTH,
                           json={"version": unit["version"], "props": props})
    assert answer.status_code == 422, answer.text[:200]
    assert "characters" in answer.json()["error"]["message"]
    fine = service.patch("/tm/units/1", headers=AUTH,
                         json={"version": unit["version"], "props": {"x-note": "checked"}})
    assert fine.status_code == 200, fine.text


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_concordance_folds_case_as_the_store_does_once_indexed(service, lang):
    """"STRASSE" is in "Straße" for the store (casefold): the index must not rule it out."""
    found = service.get("/tm/concordance", params={"term": "STRASSE", "lang": lang,
                                                   "total": True}).json()
    assert found["total"] == 1, found
    assert "Straße" in found["units"][0]["source" if lang == "zh" else "target"]


def _tmx(path: Path, units: list[tuple[str, str, str, str]]) -> Path:
    """A TMX written by hand: (tuid, creationdate, zh, en) per unit."""
    body = "".join(
        f'<tu tuid="{tuid}" creationdate="{date}"><tuv xml:lang="zh-CN"><seg>{zh}</seg></tuv>'
        f'<tuv xml:lang="en-US"><seg>{en}</seg></tuv></tu>'
        for tuid, date, zh, en in units
    )
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?><tmx version="1.4"><header creationtool="t" '
        'creationtoolversion="1" segtype="sentence" o-tmf="t" adminlang="en" srclang="zh-CN" '
        f'datatype="plaintext"/><body>{body}</body></tmx>', encoding="utf-8")
    return path


def test_tmx_dates_with_an_offset_are_kept_in_utc(tmp_path):
    with TestClient(create_app(Settings(data_dir=tmp_path / "d", api_key=KEY, encoder="none"))
                    ) as client:
        tmx = _tmx(tmp_path / "dates.tmx", [
            ("d1", "20240105T101500+0200", "日期一。", "Date one."),
            ("d2", "2024-01-05T01:15:00-05:30", "日期二。", "Date two."),
        ])
        assert import_file(client, upload(tmx))["imported"] == 2
        dates = {u["en"]: u["creationdate"] for u in
                 (client.get(f"/tm/units/{i}").json() for i in (1, 2))}
        assert dates == {"Date one.": "20240105T081500Z", "Date two.": "20240105T064500Z"}


def test_reimporting_an_identical_tmx_by_tuid_keeps_the_units(tmp_path):
    with TestClient(create_app(Settings(data_dir=tmp_path / "d", api_key=KEY, encoder="none"))
                    ) as client:
        units = [(f"t{n}", "20240105T101500Z", f"第{n}句。", f"Sentence {n}.") for n in range(5)]
        tmx = _tmx(tmp_path / "a.tmx", units)
        assert import_file(client, upload(tmx), rule="by_tuid")["imported"] == 5
        again = import_file(client, upload(tmx), rule="by_tuid")
        assert again["replaced"] == 0 and again["imported"] == 0, again
        assert [client.get(f"/tm/units/{i}").status_code for i in range(1, 6)] == [200] * 5
        units[2] = ("t2", "20240105T101500Z", "第2句。", "Sentence two, corrected.")
        changed = import_file(client, upload(_tmx(tmp_path / "b.tmx", units)), rule="by_tuid")
        assert changed["replaced"] == 1  # a changed unit with that tuid still replaces it


def test_a_filtered_lookup_looks_at_a_bounded_number_of_units(service, monkeypatch):
    store = service.app.state.service.memory.store
    fetched = []
    real_get = store.get

    def counting_get(ids):
        ids = list(ids)
        fetched.extend(ids)
        return real_get(ids)

    monkeypatch.setattr(store, "get", counting_get)
    monkeypatch.setattr(lookup_module, "MAX_FILTERED_CANDIDATES", 50, raising=False)
    answer = service.post("/tm/lookup", json={
        "text": "The Security Council decided to remain seized of the matter.",
        "source_lang": "en", "min_fuzzy": 0, "document": "no such document"})
    assert answer.status_code == 200 and answer.json()["matches"] == []
    assert len(fetched) <= 50, len(fetched)  # not the memory's 401 units


def _read_only_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "ro"
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a read-only file system here: {done.stderr.decode()}")
    return folder


@pytest.mark.skipif(not shutil.which("mount") or os.geteuid() != 0, reason="needs root")
def test_a_read_only_data_folder_is_one_clear_line(tmp_path):
    folder = _read_only_folder(tmp_path)
    try:
        run = subprocess.run(
            [sys.executable, "-m", "service.web.app", "--data", str(folder), "--port", "1"],
            capture_output=True, text=True, timeout=120, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "CONCORDIA_ENCODER": "none"},
        )
    finally:
        subprocess.run(["umount", str(folder)], check=False)
    assert run.returncode != 0
    assert "Traceback" not in run.stderr, run.stderr[-1500:]
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot write the data folder" in lines[0], run.stderr
    assert "Read-only file system" in lines[0]


def test_the_fuzzy_index_reaches_its_files_while_the_service_runs(tmp_path, monkeypatch):
    """A stop cut short (Docker's 10 s) must not mean a full rebuild at the next start: the
    indexer writes new units to the files as they arrive (here a flush every 2 units), so a
    process killed without stopping leaves files that a new start maps."""
    import time

    from service.memory import fuzzy, fuzzy_files

    monkeypatch.setattr(fuzzy, "_FLUSH", 2)
    settings = Settings(data_dir=tmp_path / "d", api_key=KEY, encoder="none")
    folder = tmp_path / "d" / "fuzzy-index"
    with TestClient(create_app(settings)) as client:
        units = [(f"s{n}", "20240105T101500Z", f"保存{n}。", f"Saved {n}.") for n in range(3)]
        assert import_file(client, upload(_tmx(tmp_path / "s.tmx", units)))["imported"] == 3
        memory = client.app.state.service.memory
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            manifest = fuzzy_files.read_manifest(folder)
            if manifest is not None and manifest.seq == memory.store.last_id() == 3:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the indexer did not write the new units to the files while it ran")
        assert manifest.live == 3


def test_a_committed_change_is_answered_even_if_saving_an_index_fails(service, monkeypatch):
    """The soak's one 500: a deletion committed, then saving an index hit the full disk.
    The change is answered as done; the background sync tries again."""
    memory = service.app.state.service.memory
    calls = []

    def full_disk_sync(*args, **kwargs):
        calls.append(1)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(memory.fuzzy, "sync", full_disk_sync)
    answer = service.delete("/tm/units/2", headers=AUTH)
    monkeypatch.undo()
    assert calls and answer.status_code == 200, answer.text
    assert answer.json()["ids"] == [2]
    assert service.get("/tm/units/2").status_code == 404


def test_a_failed_semantic_save_is_retried(tmp_path, shared_data, monkeypatch):
    from service.memory.factory import open_store
    from service.memory.semantic import SemanticIndex

    store = open_store(tmp_path / "data")
    store.import_units(unpc_units(shared_data, 20))
    index = SemanticIndex(tmp_path / "data", "use-m3")
    index.load(store)
    real_save = SemanticIndex.save

    def full(self):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(SemanticIndex, "save", full)
    with pytest.raises(OSError):
        index.sync(store)
    monkeypatch.setattr(SemanticIndex, "save", real_save)
    index.sync(store)  # nothing new in the store, but the save is still owed
    again = SemanticIndex(tmp_path / "data", "use-m3")
    assert again.load(store) and len(again) == 20
    index.close()
    again.close()
    store.close()


@pytest.mark.skipif(not shutil.which("mount") or os.geteuid() != 0, reason="needs root")
def test_a_really_full_disk_answers_507_for_unit_changes(tmp_path):
    """The data folder on a small tmpfs, filled: a failed COMMIT rolls back by itself, and the
    service answers 507, not 500 ('cannot rollback - no transaction is active')."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode()}")
    try:
        settings = Settings(data_dir=folder / "d", api_key=KEY, encoder="none")
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            units = [(f"f{n}", "20240105T101500Z", f"满{n}。", f"Full {n}.") for n in range(20)]
            assert import_file(client, upload(_tmx(tmp_path / "f.tmx", units)))["imported"] == 20
            filler = folder / "filler.bin"
            with open(filler, "wb", buffering=0) as sink:
                stat = os.statvfs(folder)
                os.posix_fallocate(sink.fileno(), 0, stat.f_bavail * stat.f_frsize)
                try:
                    while True:
                        sink.write(b"\0" * 4096)
                except OSError:
                    pass
            answers = [client.delete(f"/tm/units/{n}", headers=AUTH) for n in range(1, 6)]
            answers.append(client.patch("/tm/units/6", headers=AUTH, json={
                "version": 1, "props": {"x-note": "n" * 50_000}}))
            assert {a.status_code for a in answers} <= {200, 507}, [a.text for a in answers]
            assert any(a.status_code == 507 for a in answers)
            filler.unlink()
            assert client.delete("/tm/units/7", headers=AUTH).status_code == 200
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
