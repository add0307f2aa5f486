"""The job table is the one truth for every process on a data folder: real servers
(``python -m service.web.app``) on 127.0.0.1, killed with SIGKILL at known steps of a job.

The steps are made to wait by the test hook ``CONCORDIA_TEST_PAUSE_DIR`` (``service.jobs``):
a process reaching step S writes ``S.PID`` there and goes on once ``S.go`` exists, so each
kill lands inside the import's transaction or between its commit and the job's end, never
by timing. Leases are 2 s, so a takeover comes within seconds. Each test runs on SQLite (the
servers share one data folder) and on PostgreSQL (replicas, each with its own data folder,
sharing the store and one job folder).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from aligner.tmx import write_tmx
from service.memory.factory import open_store
from tests.test_store import unpc_units

ROOT = Path(__file__).resolve().parents[1]
KEY = "processes-key"
AUTH = {"X-API-Key": KEY}
LEASE_S = 2.0
UNITS = 3000  # two chunks of the import: the first progress call comes inside it


class Server:
    """``python -m service.web.app`` on a free port of 127.0.0.1 over ``data``."""

    def __init__(self, data: Path, pause: Path, log: Path, workers: int = 1,
                 store: str | None = None):
        self.data, self.pause, self.log, self.workers = data, pause, log, workers
        self.store = store
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "CONCORDIA_API_KEY": KEY,
            "CONCORDIA_ENCODER": "none",
            "CONCORDIA_JOB_LEASE_S": str(LEASE_S),
            "CONCORDIA_TEST_PAUSE_DIR": str(self.pause),
            "CONCORDIA_STORE": self.store or "",
        }
        command = [
            sys.executable, "-m", "service.web.app", "--host", "127.0.0.1",
            "--port", str(self.port), "--workers", str(self.workers), "--data", str(self.data),
            "--log-level", "warning",
        ]
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 90
        while True:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the server did not start"
            try:
                if httpx.get(self.base + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)

    def pid(self) -> int:
        """The pid of the process answering (one worker: the server's own)."""
        return httpx.get(self.base + "/health", timeout=10).json()["worker"]

    def stop(self) -> None:
        """SIGTERM, then SIGKILL to what is left of this server's process group."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


@pytest.fixture(params=["sqlite", "postgresql"])
def setup(request, tmp_path, shared_data):
    pause = tmp_path / "pause"
    pause.mkdir()
    tmx = tmp_path / "unpc.tmx"
    write_tmx(tmx, unpc_units(shared_data, UNITS))
    servers: list[Server] = []
    store = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    (tmp_path / "jobs").mkdir()

    def server(workers: int = 1) -> Server:
        data = tmp_path / "data"
        if store is not None:  # a replica: its own data folder, the job folder shared
            data = tmp_path / f"data{len(servers)}"
            data.mkdir()
            (data / "jobs").symlink_to(tmp_path / "jobs")
        made = Server(data, pause, tmp_path / f"server{len(servers)}.log", workers, store)
        servers.append(made)
        return made

    yield server, pause, tmx.read_bytes()
    for made in servers:
        made.stop()


def submit(server: Server, body: bytes) -> str:
    answer = httpx.post(
        server.base + "/tm/import", files={"file": ("unpc.tmx", body)},
        data={"rule": "keep_both"}, headers=AUTH, timeout=60,
    )
    assert answer.status_code == 202, answer.text
    return answer.json()["id"]


def reached(pause: Path, step: str, timeout: float = 60) -> list[int]:
    """The pids that reached ``step``, once one has."""
    deadline = time.monotonic() + timeout
    while not (pids := [int(p.suffix[1:]) for p in pause.glob(f"{step}.[0-9]*")]):
        assert time.monotonic() < deadline, f"no process reached {step}"
        time.sleep(0.02)
    return pids


def go(pause: Path, step: str) -> None:
    (pause / f"{step}.go").touch()


def finished(server: Server, job_id: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            job = httpx.get(f"{server.base}/jobs/{job_id}", timeout=10).json()
            if job["state"] in ("done", "failed", "cancelled"):
                return job
        except httpx.HTTPError:  # a worker being replaced
            pass
        assert time.monotonic() < deadline, f"job {job_id} did not finish"
        time.sleep(0.1)


def table_row(server: Server, job_id: str):
    store = open_store(server.data, store=server.store)
    try:
        return store.jobs().get(job_id), store.imports(), store.count()
    finally:
        store.close()


def test_a_worker_killed_after_the_commit_does_not_import_twice(setup):
    """kill -9 while the job brings the indexes up to date: its import committed; the job
    is taken over when its lease runs out and finds the import in (was 3,000 → 6,000)."""
    server, pause, body = setup
    serving = server(workers=2)
    go(pause, "import")
    job_id = submit(serving, body)
    (runner,) = reached(pause, "indexing")
    assert table_row(serving, job_id)[2] == UNITS  # committed
    os.kill(runner, signal.SIGKILL)
    go(pause, "indexing")
    job = finished(serving, job_id)
    row, imports, count = table_row(serving, job_id)
    assert count == UNITS and job["state"] == "done", job
    assert job["memory"]["imported"] == UNITS
    assert row.attempts == 2 and f":{runner}:" not in row.worker  # taken over
    assert [(r.state, r.job) for r in imports] == [("done", job_id)]


def test_a_worker_killed_inside_the_import_is_taken_over_once(setup):
    server, pause, body = setup
    serving = server(workers=2)
    go(pause, "indexing")
    job_id = submit(serving, body)
    (runner,) = reached(pause, "import")
    os.kill(runner, signal.SIGKILL)
    go(pause, "import")
    job = finished(serving, job_id)
    assert job["state"] == "done" and job["memory"]["imported"] == UNITS, job
    row, imports, count = table_row(serving, job_id)
    assert count == UNITS
    # the killed run's audit row says it was cut off; the run that took over committed
    assert [r.state for r in imports] == ["done", "failed"]
    assert "interrupted" in imports[1].error
    assert [r.job for r in imports] == [job_id, job_id]
    assert row.attempts == 2
    assert not (serving.data / "jobs" / job_id / "input" / "import.tmx").exists()


def test_a_restarted_server_leaves_the_running_job_alone_and_cancels_reach_it(setup):
    """Two servers on one data folder: restarting the one not running the job does not run
    it again (it re-queued every active job); a cancel sent to it stops the other's import."""
    server, pause, body = setup
    first, second = server(), server()
    go(pause, "indexing")
    job_id = submit(second, body)
    (runner,) = reached(pause, "import")
    idle = first if second.pid() == runner else second
    idle.stop()
    idle.start()
    deadline = time.monotonic() + 2 * LEASE_S  # past a lease: the runner keeps renewing it
    while time.monotonic() < deadline:
        assert reached(pause, "import") == [runner], "the job ran in a second process"
        time.sleep(0.1)
    answers: list[httpx.Response] = []
    cancel = threading.Thread(
        target=lambda: answers.append(
            httpx.delete(f"{idle.base}/jobs/{job_id}", headers=AUTH, timeout=60)
        )
    )
    cancel.start()
    deadline = time.monotonic() + 30
    while True:  # the cancel is in the row before the import goes on
        job = httpx.get(f"{idle.base}/jobs/{job_id}", timeout=10).json()
        if job.get("cancel_requested") or job["state"] == "cancelled":
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    go(pause, "import")
    cancel.join(60)
    assert answers[0].status_code == 200, answers[0].text
    assert answers[0].json()["state"] == "cancelled"
    deadline = time.monotonic() + 30
    while (imports := table_row(idle, job_id)[1])[0].state == "running":  # still going
        assert time.monotonic() < deadline
        time.sleep(0.05)
    row, imports, count = table_row(idle, job_id)
    assert (row.state, count) == ("cancelled", 0)  # the import in the other process stopped
    assert imports[0].state == "failed" and "cancelled" in imports[0].error
    assert reached(pause, "import") == [runner]
    assert not (idle.data / "jobs" / job_id / "input" / "import.tmx").exists()


def test_jobs_accepted_by_a_server_that_died_still_run(setup):
    server, pause, body = setup
    survivor, doomed = server(), server()
    go(pause, "indexing")
    first = submit(doomed, body)
    reached(pause, "import")
    second = submit(doomed, body)  # waits behind the first where it was accepted
    doomed.kill()
    go(pause, "import")
    for job_id in (first, second):
        job = finished(survivor, job_id)
        assert job["state"] == "done" and job["memory"]["imported"] == UNITS, job
    assert table_row(survivor, first)[2] == 2 * UNITS
