"""Batch jobs through the real service: zip and manifest uploads, progress, merged TMX, memory
feeding, cancelling, unsafe uploads refused before writing, and jobs surviving a restart.

Document pairs are a few consecutive lines of the UN Parallel Corpus dev set.
"""

from __future__ import annotations

import io
import stat
import threading
import time
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from aligner.tmx import read_tmx
from service.config import Settings
from service.errors import ServiceError
from service.jobs import PAUSE_ENV, JobManager
from service.memory.factory import open_store
from service.web.app import create_app
from tests.test_import_rules import tmx, tu

KEY = {"X-API-Key": "jobs-test-key"}
FINISHED = ("done", "failed", "cancelled")


def unpc(shared_data: Path, lang: str, start: int, count: int) -> bytes:
    lines = (shared_data / "unpc-dev" / f"{lang}.txt").read_text(encoding="utf-8").splitlines()
    return ("\n\n".join(lines[start : start + count]) + "\n").encode()


def pair_entries(shared_data: Path, prefix: str, starts, count: int = 5) -> dict[str, bytes]:
    entries = {}
    for number, start in enumerate(starts, start=1):
        for lang in ("zh", "en"):
            entries[f"{prefix}doc{number}.{lang}.txt"] = unpc(shared_data, lang, start, count)
    return entries


def make_zip(entries: dict[str, bytes], links: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "data", api_key=KEY["X-API-Key"])


def wait(client: TestClient, job_id: str, until=FINISHED, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if until(job) if callable(until) else job["state"] in until:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {job['state']} after {timeout}s: {job}")


def test_zip_job_aligns_every_pair_and_feeds_the_memory(shared_data, settings):
    entries = pair_entries(shared_data, "session/", (300, 310))
    entries["session/lonely.zh.txt"] = unpc(shared_data, "zh", 320, 3)  # no English side
    with TestClient(create_app(settings)) as client:
        answer = client.post(
            "/jobs",
            files={"file": ("session.zip", make_zip(entries), "application/zip")},
            data={"add_to_memory": "true"},
            headers=KEY,
        )
        assert answer.status_code == 202, answer.text
        assert answer.json()["pairs"] == 3
        job = wait(client, answer.json()["id"])
        assert job["state"] == "done", job
        assert job["progress"] == {"total": 3, "done": 3, "failed": 1}
        reports = {r["id"]: r for r in job["pairs"]}
        assert reports["lonely"]["status"] == "failed"
        assert reports["lonely"]["reason"] == "no English file lonely.en.*"
        assert reports["doc1"]["zh"] == "session/doc1.zh.txt"  # no server paths
        written = sum(r["pairs_written"] for r in job["pairs"] if r["status"] == "ok")
        assert written >= 6
        tmx = client.get(f"/jobs/{job['id']}/tmx")
        assert tmx.status_code == 200
        merged = list(read_tmx(io.BytesIO(tmx.content)))
        assert len(merged) == written
        assert job["memory"]["imported"] + job["memory"]["merged"] == written
        # the service's indexes pick the new units up: lookups find them
        deadline, matches = time.monotonic() + 30, []
        while time.monotonic() < deadline and not matches:
            answer = client.post("/tm/lookup", json={"text": merged[0].source, "source_lang": "zh"})
            matches = [m for m in answer.json()["matches"] if m["fuzzy"] == 100]
            time.sleep(0.2)
        assert matches and matches[0]["target"] == merged[0].target
    store = open_store(settings.data_dir)
    assert store.count() == job["memory"]["imported"] >= 1
    zh_segments = {u.source for u in merged}
    assert {u.zh for u in store.iter_units()} == zh_segments
    store.close()


def test_manifest_job_from_uploaded_files(shared_data, settings):
    entries = pair_entries(shared_data, "", (330,))
    manifest = "id,zh,en,symbol\nfirst,doc1.zh.txt,doc1.en.txt,A/70/1\n"
    with TestClient(create_app(settings)) as client:
        answer = client.post(
            "/jobs",
            files=[("manifest", ("m.csv", manifest.encode(), "text/csv"))]
            + [("files", (name, data, "text/plain")) for name, data in entries.items()],
            headers=KEY,
        )
        assert answer.status_code == 202, answer.text
        job = wait(client, answer.json()["id"])
        assert job["state"] == "done" and job["memory"] is None
        (report,) = job["pairs"]
        assert report["id"] == "first" and report["status"] == "ok"
        assert report["symbol"] == "A/70/1" and report["pairs_written"] >= 3
        units = list(read_tmx(io.BytesIO(client.get(f"/jobs/{job['id']}/tmx").content)))
        assert {u.props["x-document"] for u in units} == {"A/70/1"}

        missing = client.post(
            "/jobs",
            files=[
                ("manifest", ("m.csv", b"id,zh,en\nx,../../etc/passwd,doc1.en.txt\n")),
                ("files", ("doc1.en.txt", entries["doc1.en.txt"])),
            ],
            headers=KEY,
        )
        assert missing.status_code == 400
        assert "not a file of the upload" in missing.json()["error"]["message"]
    store = open_store(settings.data_dir)
    assert store.count() == 0  # not asked to feed the memory
    store.close()


def test_writes_need_the_key_and_unknown_jobs_are_404(settings, shared_data):
    body = make_zip(pair_entries(shared_data, "", (340,)))
    with TestClient(create_app(settings)) as client:
        refused = client.post("/jobs", files={"file": ("a.zip", body)})
        assert refused.status_code == 401
        assert client.delete("/jobs/0123456789abcdef0123456789abcdef").status_code == 401
        unknown = client.get("/jobs/0123456789abcdef0123456789abcdef")
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "job_not_found"
        assert client.get("/jobs/nope/tmx").status_code == 404
    assert not (settings.data_dir / "jobs").exists() or not any(
        (settings.data_dir / "jobs").iterdir()
    )


@pytest.fixture(scope="module")
def refusing(tmp_path_factory):
    """One service for every unsafe upload (each is refused before anything is written, so
    they cannot see each other); no encoder: nothing here aligns."""
    tmp_path = tmp_path_factory.mktemp("unsafe")
    settings = Settings(
        data_dir=tmp_path / "data", api_key=KEY["X-API-Key"], max_upload_bytes=256 * 1024,
        max_expanded_bytes=1024 * 1024, encoder="none",
    )
    with TestClient(create_app(settings)) as client:
        yield client, settings, tmp_path


def _bomb() -> bytes:
    return make_zip({"a.zh.txt": b"\0" * (3 << 20), "a.en.txt": b"x"})


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"PK\x03\x04 this is no zip", 400, "not_a_zip"),
        (make_zip({"ok.zh.txt": "中文".encode(), "../evil.en.txt": b"x"}), 400, "zip_unsafe_path"),
        (make_zip({"/tmp/evil.en.txt": b"x"}), 400, "zip_unsafe_path"),
        (make_zip({"ok.zh.txt": b"x"}, links=("ok.en.txt",)), 400, "zip_unsafe_path"),
        (_bomb(), 413, "zip_too_large"),
    ],
    ids=["not-a-zip", "zip-slip", "absolute-path", "symlink", "zip-bomb"],
)
def test_unsafe_uploads_are_refused_before_anything_is_written(refusing, body, status, code):
    client, settings, tmp_path = refusing
    answer = client.post("/jobs", files={"file": ("up.zip", body)}, headers=KEY)
    assert answer.status_code == status
    assert answer.json()["error"]["code"] == code
    assert "Traceback" not in answer.text
    jobs = settings.data_dir / "jobs"
    assert not jobs.exists() or not any(jobs.iterdir())
    assert not (tmp_path / "evil.en.txt").exists() and not Path("/tmp/evil.en.txt").exists()


def test_cancel_a_queued_job(shared_data, settings):
    store = open_store(settings.data_dir)
    manager = JobManager(settings, store)  # not started: the job waits in the queue
    body = make_zip(pair_entries(shared_data, "", (350,)))
    job = manager.submit_archive(io.BytesIO(body), {}, owner="alice")
    assert manager.get(job.id).state == "queued"
    assert manager.cancel(job.id, "alice").state == "cancelled"
    with pytest.raises(ServiceError) as again:
        manager.cancel(job.id, "alice")
    assert again.value.status == 409
    # A job submitted after it: once that one has run, the runner has passed the cancelled one.
    later = manager.submit_import(io.BytesIO(tmx(tu("你好。", "Hello."))), "later.tmx", "merge")
    manager.start()
    deadline = time.monotonic() + 120
    while manager.get(later.id).state not in FINISHED:
        assert time.monotonic() < deadline, manager.get(later.id)
        time.sleep(0.05)
    manager.stop()
    assert manager.get(later.id).state == "done"
    after = JobManager(settings, store).get(job.id)
    assert (after.state, after.done) == ("cancelled", 0)
    with pytest.raises(ServiceError, match="not done"):
        JobManager(settings, store).tmx_path(job.id)
    store.close()


def test_running_job_resumes_after_a_restart(shared_data, settings):
    """Stop the service while a job runs; the next start finishes it, skipping done pairs."""
    starts = range(2000, 2000 + 8 * 12, 12)
    body = make_zip(pair_entries(shared_data, "", starts, count=12))
    with TestClient(create_app(settings)) as client:
        job_id = client.post("/jobs", files={"file": ("s.zip", body)}, headers=KEY).json()["id"]
        wait(client, job_id, until=lambda job: job["progress"]["done"] >= 1)
    store = open_store(settings.data_dir)
    stopped = JobManager(settings, store).get(job_id)
    store.close()
    # a clean stop gives the job back to the queue, for another process or the next start
    assert stopped.state == "queued" and not stopped.worker and 1 <= stopped.done < 8
    with TestClient(create_app(settings)) as client:
        job = wait(client, job_id)
        assert job["state"] == "done" and job["progress"] == {"total": 8, "done": 8, "failed": 0}
        resumed = [r for r in job["pairs"] if r.get("resumed")]
        assert len(resumed) >= stopped.done
        merged = list(read_tmx(io.BytesIO(client.get(f"/jobs/{job_id}/tmx").content)))
        assert len(merged) == sum(r["pairs_written"] for r in job["pairs"])


def test_a_cancel_sent_to_another_process_stops_the_running_job(
    shared_data, settings, tmp_path, monkeypatch
):
    """The job is accepted and cancelled by one manager (as one server process) and run by
    another: the cancel goes through the job row and the runner stops after its pair. The
    runner is held after its first pair until it has seen the cancel, so that the pairs
    aligned meanwhile do not depend on the machine's speed."""
    pause = tmp_path / "pause"
    pause.mkdir()
    monkeypatch.setenv(PAUSE_ENV, str(pause))
    starts = range(2100, 2100 + 8 * 12, 12)
    body = make_zip(pair_entries(shared_data, "", starts, count=12))
    runner_store, other_store = open_store(settings.data_dir), open_store(settings.data_dir)
    runner, other = JobManager(settings, runner_store), JobManager(settings, other_store)
    job = other.submit_archive(io.BytesIO(body), {}, owner="alice")  # never started: no runner
    runner.start()
    answer: dict = {}
    canceller = threading.Thread(target=lambda: answer.update(job=other.cancel(job.id, "alice")))
    try:
        deadline = time.monotonic() + 120
        while not list(pause.glob("pair.*")):  # the runner has reported its first pair
            assert time.monotonic() < deadline
            time.sleep(0.02)
        canceller.start()
        while not runner._held[job.id].event.is_set():  # the cancel reached the runner
            assert time.monotonic() < deadline
            time.sleep(0.02)
        (pause / "pair.go").touch()
        canceller.join(60)
        cancelled = answer["job"]
        assert cancelled.state == "cancelled" and cancelled.done == 1
    finally:
        (pause / "pair.go").touch()
        runner.stop()
    assert other.get(job.id).done == cancelled.done  # nothing aligned after the answer
    other.stop()
    runner_store.close()
    other_store.close()
