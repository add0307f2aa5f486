"""The store's schema and where it lives: versioned migrations (SQLite data folders written
before them still open), change notices between PostgreSQL stores, and moving a memory from a
data folder into PostgreSQL with ``concordia-tm migrate``."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from aligner.models import Tag, TranslationUnit
from aligner.tmx import write_tmx
from service.cli import main as tm_main
from service.config import ConfigError, Settings, StorePool
from service.memory.factory import open_store
from service.memory.migrations import latest
from service.memory.store import StoreError
from tests.test_store_contract import tmx_unit

ROOT = Path(__file__).resolve().parents[1]


def test_missing_postgresql_skips_here_and_fails_under_ci(monkeypatch):
    from tests.pg import INSTALL, missing

    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=INSTALL):
        missing("PostgreSQL")
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y postgresql"):
        missing("PostgreSQL")


def test_a_data_folder_from_before_migrations_is_adopted(tmp_path):
    store = open_store(tmp_path)
    store.import_units([tmx_unit("你好。", "Hello.")])
    store.close()
    with sqlite3.connect(tmp_path / "tm.sqlite") as conn:  # as Concordia wrote it before
        conn.execute("DROP TABLE schema_version")
        conn.execute("ALTER TABLE review DROP COLUMN owner")  # came with migration 0002
    store = open_store(tmp_path)
    try:
        assert store.count() == 1 and store.get([1])[1].en == "Hello."
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "tm.sqlite") as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [
            (latest("sqlite"),)]


def test_a_newer_schema_is_refused(tmp_path):
    open_store(tmp_path).close()
    with sqlite3.connect(tmp_path / "tm.sqlite") as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StoreError) as refused:
        open_store(tmp_path)
    assert refused.value.code == "newer_store"


def test_postgres_schema_is_versioned_and_opened_twice(pg_url, tmp_path):
    import psycopg

    open_store(tmp_path, store=pg_url).close()
    open_store(tmp_path, store=pg_url).close()  # a second start applies nothing again
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT version FROM schema_version").fetchall()
    assert rows == [(latest("postgresql"),)]


def test_a_write_on_one_store_wakes_the_other(pg_url, tmp_path):
    writer, reader = open_store(tmp_path, store=pg_url), open_store(tmp_path, store=pg_url)
    try:
        reader.wait_for_change(0.1, threading.Event())  # listening from here on
        woke: list[tuple[bool, float]] = []

        def wait() -> None:
            started = time.monotonic()
            noticed = reader.wait_for_change(10.0, threading.Event())
            woke.append((noticed, time.monotonic() - started))

        thread = threading.Thread(target=wait)
        thread.start()
        time.sleep(0.2)
        writer.import_units([tmx_unit("一。", "One.")])
        thread.join(15)
        assert woke and woke[0][0] and woke[0][1] < 1.0  # the notice, not the 10 s timeout
        assert reader.generation == writer.generation == 1
    finally:
        writer.close()
        reader.close()


def test_unreachable_store_is_one_clear_error(tmp_path):
    """Refused after the start timeout set (CONCORDIA_STORE_START_TIMEOUT, 15 s unset)."""
    from tests.pg import _free_port

    started = time.monotonic()
    with pytest.raises(StoreError) as refused:
        open_store(tmp_path, store=f"postgresql://nobody:secret@127.0.0.1:{_free_port()}/x",
                   pool=StorePool(start_timeout_s=1))
    assert refused.value.code == "store_unreachable" and "secret" not in str(refused.value)
    assert time.monotonic() - started < 10


def test_the_pool_is_as_set(pg_url, tmp_path):
    """CONCORDIA_STORE_POOL_SIZE and CONCORDIA_STORE_POOL_TIMEOUT reach the pool: with its
    two connections busy, a third request waits the timeout set (not 10 s) and is a 503."""
    store = open_store(tmp_path, store=pg_url, pool=StorePool(size=2, wait_s=0.5))
    try:
        with store._connection(), store._connection():
            started = time.monotonic()
            with pytest.raises(StoreError) as busy:
                store.count()
            waited = time.monotonic() - started
        assert (busy.value.code, busy.value.status) == ("store_unavailable", 503)
        assert 0.5 <= waited < 5
        assert store.count() == 0  # a connection is free again
    finally:
        store.close()


def test_store_settings_are_read_and_bad_values_are_one_line(tmp_path, capsys, monkeypatch):
    env = {"CONCORDIA_STORE_POOL_SIZE": "4", "CONCORDIA_STORE_POOL_TIMEOUT": "2.5",
           "CONCORDIA_STORE_CONNECT_TIMEOUT": "3", "CONCORDIA_STORE_START_TIMEOUT": "30"}
    assert Settings.from_env(env).store_pool == StorePool(4, 2.5, 3, 30.0)
    # the command-line tools read these alone: another setting's bad value is not theirs
    assert StorePool.from_env({**env, "CONCORDIA_MAX_HEAVY": "0"}) == StorePool(4, 2.5, 3, 30.0)
    assert Settings().store_pool == StorePool() == StorePool.from_env({})
    for name, value, says in (
        ("CONCORDIA_STORE_POOL_SIZE", "1", "at least 2, got 1"),
        ("CONCORDIA_STORE_POOL_SIZE", "ten", "an integer, got 'ten'"),
        ("CONCORDIA_STORE_POOL_TIMEOUT", "0", "at least 0.1, got 0"),
        ("CONCORDIA_STORE_CONNECT_TIMEOUT", "1.5", "an integer, got '1.5'"),
        ("CONCORDIA_STORE_CONNECT_TIMEOUT", "1", "at least 2, got 1"),
        ("CONCORDIA_STORE_START_TIMEOUT", "nan", "at least 1, got nan"),
    ):
        with pytest.raises(ConfigError) as refused:
            StorePool.from_env({name: value})
        assert str(refused.value) == f"{name} must be {says}"
    monkeypatch.setenv("CONCORDIA_STORE_POOL_SIZE", "1")
    done = subprocess.run(
        [sys.executable, "-m", "service.web.app", "--data", str(tmp_path / "d"), "--port", "0"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    line = "CONCORDIA_STORE_POOL_SIZE must be at least 2, got 1"
    assert (done.returncode, done.stderr) == (1, f"concordia: {line}\n")
    assert tm_main(["--data", str(tmp_path / "d"), "imports"]) == 2
    assert capsys.readouterr().err == f"concordia-tm: {line}\n"


def _memory(folder):
    """A data folder with what a memory holds: markup, merges, an edit, a deletion, a failed
    import, a review."""
    store = open_store(folder)
    bold, end = Tag("bpt", {"i": "1"}, ["<b>"]), Tag("ept", {"i": "1"}, ["</b>"])
    marked = tmx_unit("安理会。", "The Council", **{"x-document": "S/1"})
    marked.target_runs = ["The ", bold, "Council", end]
    store.import_units([marked, tmx_unit("你好。", "Hello.", tuid="t1", date="20170101T000000Z"),
                        tmx_unit("再见。", "Goodbye.")], source="a.tmx")
    store.import_units([tmx_unit("你好。", "Hello.", **{"x-speaker": "主席"})], source="b.tmx")
    store.edit(3, 1, en=["Bye."])
    store.delete([1])
    def broken():
        yield tmx_unit("三。", "Three.")
        raise ValueError("the file broke off")

    with pytest.raises(ValueError):
        store.import_units(broken(), source="c.tmx")
    store.reviews().create("r1", "S/PV.1", "upload", 0.5, json.dumps({"beads": []}), "t0")
    store.close()
    with sqlite3.connect(folder / "tm.sqlite") as conn:  # an import cut off by a crash
        conn.execute("INSERT INTO import_log (source, rule, started, state) "
                     "VALUES ('d.tmx', 'merge', '20200101T000000Z', 'running')")


def test_migrate_moves_a_memory_and_checks_it(tmp_path, pg_url, capsys):
    folder = tmp_path / "data"
    _memory(folder)
    assert tm_main(["migrate", "--from", str(folder), "--to", pg_url]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["counts_match"] and report["tmx_identical"]
    assert report["copied"]["unit"] == 2 and report["copied"]["tombstone"] == 2
    assert report["copied"]["import_log"] == 4
    assert report["tmx_units_compared"] == 2
    moved = open_store(tmp_path, store=pg_url)
    try:
        assert moved.get([2])[2].props == {"x-speaker": "主席"}
        assert moved.replaced_by(3) == 4 and moved.get([4])[4].en == "Bye."
        assert [r.state for r in moved.imports()] == ["failed", "failed", "done", "done"]
        assert "moved" in moved.imports()[0].error
        assert [r.id for r in moved.reviews().list(10)] == ["r1"]
        new = moved.import_units([tmx_unit("新的。", "New.")])  # ids go on after the moved ones
        assert [u.id for u in moved.iter_units()][-1] == 5 and new.import_id == 5
    finally:
        moved.close()
    assert tm_main(["migrate", "--from", str(folder), "--to", pg_url]) == 2  # not empty now
    assert "already holds a memory" in capsys.readouterr().err


def test_the_export_check_sees_a_difference(tmp_path, pg_url):
    from service.memory.move import same_export

    folder = tmp_path / "data"
    _memory(folder)
    tm_main(["migrate", "--from", str(folder), "--to", pg_url])
    source, moved = open_store(folder), open_store(tmp_path, store=pg_url)
    try:
        assert same_export(source, moved) == (2, True)
        moved.record_usage(2)  # one attribute more on one unit
        assert same_export(source, moved)[1] is False
    finally:
        source.close()
        moved.close()


def test_concordia_tm_works_on_the_shared_store(tmp_path, pg_url, capsys, monkeypatch):
    monkeypatch.setenv("CONCORDIA_STORE", pg_url)
    tmx = tmp_path / "in.tmx"
    write_tmx(tmx, [TranslationUnit("你好。", "Hello.", "zh-CN", "en-GB")])
    assert tm_main(["--data", str(tmp_path / "d"), "import", str(tmx)]) == 0
    assert json.loads(capsys.readouterr().out)["imported"] == 1
    assert not (tmp_path / "d" / "tm.sqlite").exists()  # nothing went to the data folder
    store = open_store(tmp_path, store=pg_url)
    try:
        assert store.count() == 1
    finally:
        store.close()


def test_a_store_that_goes_away_is_a_503_not_a_stack_trace(tmp_path):
    from fastapi.testclient import TestClient

    from service.web.app import create_app
    from tests.pg import start_server

    server = start_server()  # one of its own, to stop
    try:
        url = server.database()
        store = open_store(tmp_path, store=url)
        store.import_units([tmx_unit("你好。", "Hello.")])
        store.close()
        settings = Settings(data_dir=tmp_path / "d", store=url, encoder="none", api_key="k")
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            assert client.get("/tm/stats").json()["units"] == 1
            server.halt()
            answer = client.get("/tm/stats")
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"]["code"] == "store_unavailable"
            lookup = client.post("/tm/lookup", json={"text": "Hello.", "source_lang": "en"})
            assert lookup.status_code == 503  # the index names the unit; the store must say
    finally:
        server.stop()


def test_a_claim_skips_a_job_another_replica_is_claiming(pg_url, tmp_path):
    """SELECT … FOR UPDATE SKIP LOCKED: a row locked by another claim in flight is neither
    waited for nor taken; the next job is."""
    import psycopg

    from service.memory.store import Job

    store = open_store(tmp_path, store=pg_url)
    try:
        jobs = store.jobs()
        for number, name in enumerate("ab"):
            jobs.insert(Job(name * 32, "queued", f"t{number}", f"t{number}", {}))
        with psycopg.connect(pg_url) as other:  # a claim of "a" not yet committed
            other.execute("SELECT id FROM job WHERE id = %s FOR UPDATE", ("a" * 32,))
            got: list = []
            claim = threading.Thread(target=lambda: got.append(jobs.claim("w2", 30)))
            claim.start()
            claim.join(5)
            assert not claim.is_alive(), "the claim waited for the other one"
            other.rollback()
        assert got[0].id == "b" * 32
    finally:
        store.close()


def test_a_job_database_from_before_migrations_gains_the_claim_columns(tmp_path):
    with sqlite3.connect(tmp_path / "jobs.sqlite") as conn:  # as Concordia wrote it before
        conn.executescript(
            "CREATE TABLE job (id TEXT PRIMARY KEY, state TEXT NOT NULL, created TEXT NOT NULL,"
            " updated TEXT NOT NULL, options TEXT NOT NULL, total INTEGER NOT NULL DEFAULT 0,"
            " done INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0, results TEXT,"
            " error TEXT, memory TEXT);"
            "CREATE TABLE job_pair (job TEXT NOT NULL, seq INTEGER NOT NULL,"
            " report TEXT NOT NULL, PRIMARY KEY (job, seq));"
            "INSERT INTO job (id, state, created, updated, options) VALUES"
            " ('aaaa', 'queued', 't0', 't0', '{}');"
        )
    store = open_store(tmp_path)
    try:
        claimed = store.jobs().claim("w1", 30)
        assert (claimed.id, claimed.worker, claimed.attempts) == ("aaaa", "w1", 1)
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "jobs.sqlite") as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [
            (latest("sqlite-jobs"),)]


def test_identity_and_last_id_on_postgres(tmp_path, pg_url, postgres_server):
    store = open_store(tmp_path, store=pg_url)
    other = open_store(tmp_path, store=postgres_server.database())
    try:
        assert store.last_id() == 0
        store.import_units([tmx_unit("一。", "One."), tmx_unit("二。", "Two.")])
        store.delete([2])
        assert (store.max_id(), store.last_id()) == (1, 2)
        assert store.identity == store.identity != other.identity
    finally:
        store.close()
        other.close()


def test_a_moved_memory_keeps_its_identity(tmp_path, pg_url):
    folder = tmp_path / "data"
    _memory(folder)
    source = open_store(folder)
    with sqlite3.connect(folder / "tm.sqlite") as conn:
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('identity', 'memory-1')")
    source.close()
    assert tm_main(["migrate", "--from", str(folder), "--to", pg_url]) == 0
    moved = open_store(tmp_path, store=pg_url)
    try:
        assert moved.identity == "memory-1" and moved.last_id() == 4
    finally:
        moved.close()
