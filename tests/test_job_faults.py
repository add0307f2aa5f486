"""Jobs under faults, in one process: an import whose indexing fails or is cancelled after its
commit, a full disk under the runner, a dead runner, jobs that belong to their key, uploads
of failed imports, and import audit rows left by a killed process.

Units are lines of the UN Parallel Corpus dev set.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from aligner.tmx import write_tmx
from service.config import Settings
from service.jobs import JobManager
from service.memory.factory import open_store
from service.memory.sqlite import SQLiteJobTable
from service.web.app import create_app
from service.web.state import ServiceState
from tests.test_security import keys_file
from tests.test_store import unpc_units

ROOT = Path(__file__).resolve().parents[1]
KEY = "faults-key"
AUTH = {"X-API-Key": KEY}
FINISHED = ("done", "failed", "cancelled")
FRENCH_TMX = b"""<?xml version="1.0" encoding="UTF-8"?>
<tmx version="1.4"><header srclang="zh-CN" datatype="plaintext" segtype="sentence"
 adminlang="en" creationtool="test" creationtoolversion="1" o-tmf="test"/><body>
<tu><tuv xml:lang="zh-CN"><seg>\xe4\xbd\xa0\xe5\xa5\xbd\xe3\x80\x82</seg></tuv>
<tuv xml:lang="fr"><seg>Bonjour.</seg></tuv></tu>
</body></tmx>
"""


def settings_for(tmp_path: Path, **changes) -> Settings:
    return Settings(data_dir=tmp_path / "data", api_key=KEY, encoder="none", **changes)


def tmx_body(tmp_path: Path, shared_data: Path, count: int) -> bytes:
    path = tmp_path / f"unpc-{count}.tmx"
    write_tmx(path, unpc_units(shared_data, count))
    return path.read_bytes()


def submit(client: TestClient, body: bytes, rule: str = "keep_both", headers=AUTH) -> str:
    answer = client.post(
        "/tm/import", files={"file": ("u.tmx", body)}, data={"rule": rule}, headers=headers
    )
    assert answer.status_code == 202, answer.text
    return answer.json()["id"]


def wait(client: TestClient, job_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    job = client.get(f"/jobs/{job_id}").json()
    while job["state"] not in FINISHED:
        assert time.monotonic() < deadline, f"job still {job['state']}: {job}"
        time.sleep(0.05)
        job = client.get(f"/jobs/{job_id}").json()
    return job


def test_an_import_whose_indexing_fails_says_its_units_are_in(tmp_path, shared_data, monkeypatch):
    def full_disk(self):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ServiceState, "sync", full_disk)  # what the runner calls after import
    with TestClient(create_app(settings_for(tmp_path))) as client:
        job = wait(client, submit(client, tmx_body(tmp_path, shared_data, 300)))
    assert job["state"] == "done", job  # not "failed": that invites a second import
    assert job["memory"]["imported"] == 300 and job["memory"]["indexing"] == "failed"
    assert "its units are in the memory" in job["error"]
    assert "No space left on device" in job["error"]
    store = open_store(tmp_path / "data")
    assert store.count() == 300 and store.imports()[0].state == "done"
    store.close()


def test_cancel_during_indexing_answers_that_the_import_committed(
    tmp_path, shared_data, monkeypatch
):
    reached, go = threading.Event(), threading.Event()
    real = ServiceState.sync

    def slow_indexing(self):
        reached.set()
        go.wait(30)
        real(self)

    monkeypatch.setattr(ServiceState, "sync", slow_indexing)
    with TestClient(create_app(settings_for(tmp_path))) as client:
        job_id = submit(client, tmx_body(tmp_path, shared_data, 300))
        assert reached.wait(30)
        answer = client.delete(f"/jobs/{job_id}", headers=AUTH)
        assert answer.status_code == 409, answer.text  # not "cancelled" while its units stay
        assert answer.json()["error"]["code"] == "import_committed"
        assert "import_id=1" in answer.json()["error"]["message"]
        go.set()
        job = wait(client, job_id)
        assert job["state"] == "done" and job["memory"]["imported"] == 300
        assert client.get("/tm/stats").json()["units"] == 300


class FullDisk:
    """A job database connection whose writes of a failed state hit a full disk, twice."""

    def __init__(self, conn: sqlite3.Connection, left: list[int]):
        self._conn, self._left = conn, left

    def execute(self, sql: str, params=()):
        if sql.startswith("UPDATE job SET") and "failed" in params and self._left[0] > 0:
            self._left[0] -= 1
            raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(sql, params)

    def __getattr__(self, name: str):
        return getattr(self._conn, name)


def test_the_runner_survives_a_full_disk_when_a_job_fails(tmp_path, shared_data, monkeypatch):
    real = SQLiteJobTable._db
    left = [2]
    monkeypatch.setattr(SQLiteJobTable, "_db", property(lambda t: FullDisk(real.fget(t), left)))
    with TestClient(create_app(settings_for(tmp_path, job_lease_s=1.0))) as client:
        broken = submit(client, FRENCH_TMX)  # fails; writing that it failed fails too
        deadline = time.monotonic() + 30
        while left[0] == 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        good = wait(client, submit(client, tmx_body(tmp_path, shared_data, 50)))
        assert good["state"] == "done" and good["memory"]["imported"] == 50
        failed = wait(client, broken)  # taken over once its lease ran out, and ended
        assert failed["state"] == "failed" and "fr" in failed["error"], failed
        health = client.get("/health")
        assert health.status_code == 200 and health.json()["jobs"] == "running"
    assert left == [0]


def test_health_reports_a_dead_job_runner(tmp_path, monkeypatch):
    def fatal(self):
        raise SystemExit("the runner's thread ends")

    monkeypatch.setattr(JobManager, "_round", fatal, raising=False)
    monkeypatch.setattr(threading, "excepthook", lambda args: None)  # no noise from it
    with TestClient(create_app(settings_for(tmp_path))) as client:
        deadline = time.monotonic() + 10
        health = client.get("/health")
        while health.status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.05)
            health = client.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] == "error" and health.json()["jobs"] == "stopped"


def test_jobs_belong_to_the_key_that_made_them(tmp_path, shared_data):
    keys = keys_file(
        tmp_path / "keys.toml",
        {"maker": ("m-key", ["write"]), "other": ("o-key", ["write"]),
         "aligner": ("a-key", ["align"]), "boss": ("b-key", ["admin"])},
    )
    settings = Settings(data_dir=tmp_path / "data", keys_file=keys, encoder="none")
    client = TestClient(create_app(settings))  # no lifespan: no runner, jobs stay queued
    maker, other = {"X-API-Key": "m-key"}, {"X-API-Key": "o-key"}
    aligner, boss = {"X-API-Key": "a-key"}, {"X-API-Key": "b-key"}
    body = tmx_body(tmp_path, shared_data, 20)
    first = submit(client, body, headers=maker)
    for stranger in (aligner, other):
        refused = client.delete(f"/jobs/{first}", headers=stranger)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "not_your_job"
    seen = client.get(f"/jobs/{first}", headers=other).json()  # reading: by its id
    assert (seen["state"], seen["owner"]) == ("queued", "maker")
    assert client.delete(f"/jobs/{first}", headers=maker).json()["state"] == "cancelled"
    second = submit(client, body, headers=maker)
    assert client.delete(f"/jobs/{second}", headers=boss).json()["state"] == "cancelled"


def test_a_failed_import_removes_its_upload(tmp_path):
    with TestClient(create_app(settings_for(tmp_path))) as client:
        job = wait(client, submit(client, FRENCH_TMX))
    assert job["state"] == "failed"
    assert not (tmp_path / "data" / "jobs" / job["id"] / "input" / "import.tmx").exists()


_KILLED_IMPORT = """
import sys, time
from pathlib import Path
from aligner.models import TranslationUnit
from service.memory.factory import open_store

def units():
    yield TranslationUnit("你好。", "Hello.")
    Path(sys.argv[2]).touch()  # inside the import's transaction
    time.sleep(600)

open_store(sys.argv[1]).import_units(units())
"""


def test_an_import_killed_midway_is_marked_failed_at_the_next_start(tmp_path):
    data, inside = tmp_path / "data", tmp_path / "inside"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-c", _KILLED_IMPORT, str(data), str(inside)],
                               env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while not inside.exists():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    store = open_store(data)
    assert [r.state for r in store.imports()] == ["running"]  # as kill -9 left it
    store.close()
    with TestClient(create_app(settings_for(tmp_path))) as client:
        (audit,) = client.get("/tm/imports").json()["imports"]
        assert client.get("/tm/stats").json()["units"] == 0
    assert audit["state"] == "failed" and "interrupted" in audit["error"]


def test_an_audit_row_of_a_reused_pid_counts_as_cut_off():
    """After a container restart the new server may have the old one's pid: the start time
    tells them apart."""
    from service.memory.sqlite import _gone, this_process

    me = this_process()
    host, pid, started = me.split(":")
    assert started and not _gone(me)
    assert _gone(f"{host}:{pid}:{int(started) - 1}")  # this pid, an earlier process
    assert not _gone(f"another-host:{pid}:{started}")  # not ours to judge


@pytest.fixture(autouse=True)
def _no_pause(monkeypatch):
    monkeypatch.delenv("CONCORDIA_TEST_PAUSE_DIR", raising=False)
