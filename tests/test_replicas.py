"""Two replicas (two ``python -m service.web.app`` processes on 127.0.0.1, each with its own
data folder) sharing one PostgreSQL memory: what one writes, the other's lookups see within a
second; jobs and reviews are the same on both; a replica killed mid-import leaves the memory
as it was, and the other takes the job over once its lease runs out and imports it once; a
replica killed mid-way through a batch alignment leaves it to the other, which ends it once.
The replicas share one job folder (``DATA/jobs``, a link here, a volume in compose.yaml).
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from aligner.models import TranslationUnit
from aligner.tmx import read_tmx, write_tmx
from tests.pg import _free_port

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
KEY = "replica-key-1"
AUTH = {"X-API-Key": KEY}
SEEN_WITHIN_S = 1.0
LEASE_S = 2.0


class Replica:
    """One service process over the shared store."""

    def __init__(self, folder: Path, url: str, env: dict[str, str] | None = None):
        self.folder, self.url, self.port = folder, url, _free_port()
        self.env = env or {}
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "CONCORDIA_API_KEY": KEY,
            "CONCORDIA_ENCODER": "none",
            "CONCORDIA_JOB_LEASE_S": str(LEASE_S),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            **self.env,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service.web.app", "--host", "127.0.0.1", "--port",
             str(self.port), "--data", str(self.folder), "--store", self.url,
             "--log-level", "warning"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(self.proc.stderr.read().decode())
            try:
                if httpx.get(self.base + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("replica did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def get(self, path: str, **kw) -> httpx.Response:
        return httpx.get(self.base + path, headers=AUTH, timeout=30, **kw)

    def send(self, method: str, path: str, **kw) -> httpx.Response:
        return httpx.request(method, self.base + path, headers=AUTH, timeout=60, **kw)

    def lookup(self, text: str, lang: str = "en") -> list[dict]:
        answer = self.send("POST", "/tm/lookup", json={"text": text, "source_lang": lang})
        assert answer.status_code == 200, answer.text
        return answer.json()["matches"]


def _replicas(pg_url: str, tmp_path: Path, env: dict[str, str] | None = None):
    """Two started replicas over ``pg_url``, stopped at the end."""
    pair = [Replica(tmp_path / name, pg_url, env) for name in ("a", "b")]
    (tmp_path / "jobs").mkdir()
    for replica in pair:
        replica.folder.mkdir()
        (replica.folder / "jobs").symlink_to(tmp_path / "jobs")
    try:
        for replica in pair:
            replica.start()
        yield pair
    finally:
        for replica in pair:
            replica.stop()


@pytest.fixture
def replicas(pg_url, tmp_path):
    yield from _replicas(pg_url, tmp_path)


def _tmx(path: Path, units: list[tuple[str, str]]) -> Path:
    write_tmx(path, [TranslationUnit(zh, en, "zh-CN", "en-GB") for zh, en in units])
    return path


def _import(replica: Replica, path: Path) -> str:
    with path.open("rb") as handle:
        answer = replica.send("POST", "/tm/import", files={"file": (path.name, handle)})
    assert answer.status_code == 202, answer.text
    return answer.json()["id"]


def _wait_job(replica: Replica, job_id: str, states=("done", "failed"), limit=120.0) -> dict:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        job = replica.get(f"/jobs/{job_id}").json()
        if job["state"] in states:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {job['state']}")


def _seen(check, limit: float = 10.0) -> float:
    """Seconds until ``check()`` holds (polled every 20 ms); fails past ``limit``."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < limit, "never seen"
        time.sleep(0.02)
    return time.monotonic() - started


def _ids(matches: list[dict], text: str) -> list[int]:
    return [m["id"] for m in matches if m["source_plain"] == text]


def test_writes_on_one_replica_are_seen_by_the_other(replicas, tmp_path):
    a, b = replicas
    units = [(f"第{i}段：安全理事会审议了该项目。", f"Paragraph {i}: the Security Council "
              f"considered the item.") for i in range(40)]
    job_id = _import(a, _tmx(tmp_path / "in.tmx", units))
    assert b.get(f"/jobs/{job_id}").status_code == 200  # one job table
    job = _wait_job(b, job_id)
    assert job["state"] == "done" and job["memory"]["imported"] == 40, job
    text = "Paragraph 7: the Security Council considered the item."
    assert _seen(lambda: _ids(b.lookup(text), text)) < SEEN_WITHIN_S
    (unit_id,) = _ids(b.lookup(text), text)

    unit = a.get(f"/tm/units/{unit_id}").json()
    edited = a.send("PATCH", f"/tm/units/{unit_id}",
                    json={"version": unit["version"], "en": "Paragraph 7: revised."})
    assert edited.status_code == 200, edited.text
    new_id = edited.json()["unit"]["id"]
    assert _seen(lambda: _ids(b.lookup("Paragraph 7: revised."), "Paragraph 7: revised.")
                 == [new_id]) < SEEN_WITHIN_S
    stale = b.send("PATCH", f"/tm/units/{unit_id}", json={"version": unit["version"], "en": "x"})
    assert stale.status_code == 409  # the same answer as on the replica that edited it

    other = "Paragraph 8: the Security Council considered the item."
    (other_id,) = _ids(a.lookup(other), other)
    assert b.send("DELETE", f"/tm/units/{other_id}").status_code == 200
    assert _seen(lambda: not _ids(a.lookup(other), other)) < SEEN_WITHIN_S
    assert a.get("/tm/stats").json()["units"] == b.get("/tm/stats").json()["units"] == 39


def test_two_people_on_two_replicas_get_the_same_409(replicas):
    a, b = replicas
    files = {name: (path.name, path.read_bytes(), "text/plain") for name, path in
             (("zh", DATA / "record_8017_excerpt.zh.txt"),
              ("en", DATA / "record_8017_excerpt.en.txt"))}
    created = a.send("POST", "/reviews", files=files, data={"name": "S/PV.8017"})
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    state = b.get(f"/reviews/{rid}").json()  # the review is in the shared store
    bead = state["beads"][0]["id"]
    body = {"version": state["version"], "op": "status", "bead": bead, "status": "rejected"}
    answers: list[httpx.Response] = []

    def send(replica: Replica) -> None:
        answers.append(replica.send("POST", f"/reviews/{rid}/changes", json=body))

    threads = [threading.Thread(target=send, args=(r,)) for r in (a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    codes = sorted(r.status_code for r in answers)
    assert codes == [200, 409], [r.text for r in answers]
    refused = next(r for r in answers if r.status_code == 409)
    assert refused.json()["error"]["code"] == "review_changed"
    assert a.get(f"/reviews/{rid}").json()["version"] == b.get(f"/reviews/{rid}").json()[
        "version"] == state["version"] + 1


def test_a_replica_killed_mid_import_leaves_the_memory_as_it_was(replicas, tmp_path):
    a, b = replicas
    _wait_job(a, _import(a, _tmx(tmp_path / "small.tmx", [("一。", "One.")])))
    big = _tmx(tmp_path / "big.tmx", [(f"第{i}号决议。", f"Resolution {i}.")
                                      for i in range(60_000)])
    job_id = _import(a, big)
    _seen(lambda: b.get(f"/jobs/{job_id}").json()["progress"]["done"] > 0, limit=60)
    assert b.get(f"/jobs/{job_id}").json()["state"] == "running"
    a.kill()
    assert b.get("/tm/stats").json()["units"] == 1  # nothing of the killed import
    assert b.lookup("One.")  # the other replica serves on
    assert not _ids(b.lookup("Resolution 17."), "Resolution 17.")
    # The lease (2 s here) runs out: the other replica takes the job over and imports it once.
    job = _wait_job(b, job_id, limit=300)
    assert job["state"] == "done" and job["memory"]["imported"] == 60_000, job
    assert b.get("/tm/stats").json()["units"] == 60_001
    audit = b.get("/tm/imports").json()["imports"]
    mine = [r for r in audit if r["job"] == job_id]
    assert sorted(r["state"] for r in mine) == ["done", "failed"]  # the cut-off run, then one
    text = "Resolution 17."
    assert _seen(lambda: _ids(b.lookup(text), text)) < SEEN_WITHIN_S
    a.start()  # back: it finds the job done and the memory whole
    assert _seen(lambda: _ids(a.lookup(text), text), limit=60) < 60
    assert a.get(f"/jobs/{job_id}").json()["state"] == "done"


def _paused(pause: Path, pids: set[int], limit: float = 120.0) -> int:
    """The pid among ``pids`` that reached the job hook's ``pair`` step, once one has."""
    deadline = time.monotonic() + limit
    while True:
        reached = {int(p.suffix[1:]) for p in pause.glob("pair.[0-9]*")} & pids
        if reached:
            (pid,) = reached
            return pid
        assert time.monotonic() < deadline, "no replica reached the pair step"
        time.sleep(0.02)


def test_a_replica_killed_mid_job_leaves_the_job_to_the_other_once(
    pg_url, tmp_path, shared_data
):
    """kill -9 the replica running a batch alignment after its first pair (held there by the
    test hook): while it lives the other never takes the job; once its lease runs out the
    other does, resumes after the pair already aligned and ends the job once, complete."""
    from service.memory.factory import open_store
    from tests.test_jobs import make_zip, pair_entries

    pause = tmp_path / "pause"
    pause.mkdir()
    pairs = 4
    body = make_zip(pair_entries(shared_data, "", range(2400, 2400 + pairs * 6, 6)))
    store = open_store(tmp_path / "reader", store=pg_url)
    replicas = _replicas(pg_url, tmp_path, {"CONCORDIA_TEST_PAUSE_DIR": str(pause)})
    try:
        a, b = next(replicas)
        by_pid = {r.proc.pid: r for r in (a, b)}
        answer = a.send("POST", "/jobs", files={"file": ("s.zip", body)},
                        data={"add_to_memory": "true"})
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["id"]
        runner = by_pid.pop(_paused(pause, set(by_pid)))
        (other,) = by_pid.values()
        # Alive, the runner keeps its lease: past two leases the job is still its own.
        time.sleep(2 * LEASE_S + 0.5)
        row = store.jobs().get(job_id)
        assert (row.state, row.attempts, row.done) == ("running", 1, 1), row
        assert f":{runner.proc.pid}:" in row.worker
        assert not list(pause.glob(f"pair.{other.proc.pid}"))
        runner.kill()
        lapses = store.jobs().get(job_id).lease_until
        assert _paused(pause, {other.proc.pid}, limit=60) == other.proc.pid
        taken = time.time()
        row = store.jobs().get(job_id)
        assert taken >= lapses and row.attempts == 2 and f":{other.proc.pid}:" in row.worker
        (pause / "pair.go").touch()
        job = _wait_job(other, job_id, limit=300)
        assert job["state"] == "done", job
        assert job["progress"] == {"total": pairs, "done": pairs, "failed": 0}
        reports = job["pairs"]
        assert sorted(r["id"] for r in reports) == [f"doc{n}" for n in range(1, pairs + 1)]
        # the pair the killed replica aligned is resumed, not aligned again; the rest once
        assert [r["id"] for r in reports if r.get("resumed")] == [reports[0]["id"]]
        written = sum(r["pairs_written"] for r in reports)
        merged = other.get(f"/jobs/{job_id}/tmx")
        assert merged.status_code == 200
        assert len(list(read_tmx(io.BytesIO(merged.content)))) == written > 0
        assert job["memory"]["imported"] + job["memory"]["merged"] == written
        assert store.count() == job["memory"]["imported"]  # fed to the memory once
        assert [(r.state, r.job) for r in store.imports()] == [("done", job_id)]
        assert store.jobs().get(job_id).attempts == 2
    finally:
        (pause / "pair.go").touch()
        replicas.close()
        store.close()
