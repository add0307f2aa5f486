"""Batch alignment jobs: upload document pairs, align them in the background, fetch the TMX.

A job is a folder ``DATA/jobs/ID`` (``input/`` with the documents, ``pairs.jsonl`` listing
them, ``out/`` with what :func:`aligner.batch.run_batch` writes) and a row in the store's job
table (:class:`service.memory.store.JobTable`), which is the queue and the one truth about
the job for every process serving the data folder. Each process runs one job at a time in a
background thread, claimed from the table with a lease it renews while it works; a job whose
process died is taken over by another process (or the next start) once its lease runs out,
and resumes: pairs already aligned are skipped (the batch resumes by content hash), and an
import that committed is not imported again (its audit row carries the job's id, written in
the import's own transaction). A job is owned by the key that made it: only that key or an
admin key may cancel it.

Uploads are checked in full before anything is written: a zip's entries are counted from its
end record before its directory is read; it must be a zip, hold no absolute paths, no ``..``
components, no links, nothing encrypted, and must not expand beyond the configured limit; a
damaged one (false sizes, bad checksums) is a 400.

Each document is read within the operator's limits (``Settings.align_limits``, as for
``/align``): a pair over one fails with the reason and the others go on. An ``/align`` past
its request timeout becomes a job "handed over": it is not queued, and the request's running
work ends it with its result (``finish_handed_over``).

At most ``max_queued_jobs`` jobs wait or run at once (429 beyond); finished jobs are deleted
``job_retention_hours`` after they end. Each pair's report is a row of ``job_pair``, so a
progress update writes one row, not the whole list. Messages never show server paths.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import stat
import threading
import time
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from aligner.align.embed import DEFAULT_ENCODER
from aligner.batch import (
    MERGED_TMX,
    BatchSettings,
    PairSpec,
    error_reason,
    failed_report,
    merge_tmx,
    pair_outputs,
    read_manifest,
    run_batch,
)
from aligner.errors import InputError, InputTooLarge
from aligner.models import AlignmentResult
from aligner.read.archive import BrokenArchive, check_zip
from aligner.tmx import TMXError, check_tmx
from service.errors import ServiceError, too_busy, without_paths
from service.memory.store import AlreadyImported, Job

log = logging.getLogger(__name__)

STATES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE = ("queued", "running")
MANIFEST_NAMES = ("manifest.csv", "manifest.jsonl")
PAIRS_FILE = "pairs.jsonl"
IMPORT_FILE = "import.tmx"
MAX_ARCHIVE_FILES = 10_000
_COPY_BLOCK = 1 << 20
_CLEANUP_EVERY_S = 600.0
PAIRS_SHOWN = 1000  # pair reports in a status answer unless asked for others
MAX_ATTEMPTS = 3  # runs of one job cut off by its process dying before it fails for good
CANCEL_WAIT_S = 10.0  # how long a cancel waits for the process running the job to stop it
STALE_UPLOAD_S = 3600.0  # an upload still being unpacked after this was cut off by a crash
PAUSE_ENV = "CONCORDIA_TEST_PAUSE_DIR"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- safe unpacking


def _member_path(info: zipfile.ZipInfo) -> PurePosixPath | None:
    """The relative path of a zip member, or None for entries to ignore; raises when unsafe."""
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ServiceError(
            400, "zip_unsafe_path", f"the zip holds an absolute path: {info.filename}"
        )
    path = PurePosixPath(name)
    if ".." in path.parts:
        raise ServiceError(
            400, "zip_unsafe_path", f"the zip holds a path leaving its folder: {info.filename}"
        )
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise ServiceError(
            400, "zip_unsafe_path", f"the zip holds a symbolic link: {info.filename}"
        )
    if info.flag_bits & 0x1:
        raise ServiceError(
            400, "zip_encrypted", f"the zip holds an encrypted file: {info.filename}"
        )
    if info.is_dir() or not path.parts or path.parts[0] == "__MACOSX":
        return None
    return path


def check_archive(
    upload: BinaryIO, max_bytes: int, max_entries: int = MAX_ARCHIVE_FILES
) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Vet a zip before anything is written: entries counted from its end record, then its
    central directory; returns its files. Real sizes are counted as it is extracted."""
    try:
        infos = check_zip(upload, max_entries=max_entries, max_bytes=max_bytes, stream=False)
    except InputTooLarge as exc:
        raise ServiceError(413, "zip_too_large", str(exc)) from None
    except BrokenArchive:
        raise ServiceError(400, "not_a_zip", "the upload is not a readable zip file") from None
    members, total = [], 0
    for info in infos:
        path = _member_path(info)
        if path is None:
            continue
        total += info.file_size
        if total > max_bytes:
            raise ServiceError(
                413, "zip_too_large", f"the zip expands to more than {max_bytes} bytes"
            )
        members.append((info, path))
    if not members:
        raise ServiceError(400, "no_pairs", "the zip holds no files")
    return members


def extract_archive(upload: BinaryIO, dest: Path, max_bytes: int) -> None:
    """Unpack a vetted zip into ``dest``, counting real bytes (headers can lie)."""
    members = check_archive(upload, max_bytes)
    upload.seek(0)
    written = 0
    try:
        with zipfile.ZipFile(upload) as archive:
            for info, path in members:
                target = dest.joinpath(*path.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as source, target.open("wb") as sink:
                    for block in iter(lambda: source.read(_COPY_BLOCK), b""):
                        written += len(block)
                        if written > max_bytes:
                            raise ServiceError(
                                413,
                                "zip_too_large",
                                f"the zip expands to more than {max_bytes} bytes",
                            )
                        sink.write(block)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:  # false sizes, bad checksums
        raise ServiceError(400, "damaged_zip", f"the zip is damaged: {exc}") from None


def _pairs_root(folder: Path) -> Path:
    """Descend through a single wrapping folder, as zips made from a folder have."""
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    while len(entries) == 1 and entries[0].is_dir():
        folder = entries[0]
        entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    return folder


def _pairs_inside(pairs: list[PairSpec], folder: Path) -> list[PairSpec]:
    """A manifest that came with the upload may only name files of the upload."""
    root = folder.resolve()
    for pair in pairs:
        for path in (pair.zh, pair.en):
            if path and not Path(path).resolve().is_relative_to(root):
                raise InputError(f"pair {pair.id!r}: {path} is not a file of the upload")
    return pairs


def discover_pairs(folder: Path) -> list[PairSpec]:
    """Pairs of an unpacked upload: its manifest.csv / manifest.jsonl, or NAME.zh/en files."""
    root = _pairs_root(folder)
    for name in MANIFEST_NAMES:
        if (root / name).is_file():
            return _pairs_inside(read_manifest(root / name), folder)
    return read_manifest(root)


def _relative(path: str, folder: Path) -> str:
    return str(Path(path).relative_to(folder)) if path else ""


def _write_pairs(pairs: Iterable[PairSpec], job_dir: Path) -> None:
    """The job's pairs, paths relative to ``job_dir/input``, so a restart finds them."""
    input_dir = job_dir / "input"
    lines = [
        json.dumps(
            {
                "id": pair.id,
                "zh": _relative(pair.zh, input_dir),
                "en": _relative(pair.en, input_dir),
                "symbol": pair.symbol,
                "error": pair.error,
            },
            ensure_ascii=False,
        )
        for pair in pairs
    ]
    (job_dir / PAIRS_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")


def _read_pairs(job_dir: Path) -> list[PairSpec]:
    input_dir = job_dir / "input"
    pairs = []
    for line in (job_dir / PAIRS_FILE).read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        pairs.append(
            PairSpec(
                row["id"],
                str(input_dir / row["zh"]) if row["zh"] else "",
                str(input_dir / row["en"]) if row["en"] else "",
                row["symbol"],
                row["error"],
            )
        )
    return pairs


# ---------------------------------------------------------------- the manager


def _pause(point: str) -> None:
    """A test hook, off unless ``CONCORDIA_TEST_PAUSE_DIR`` is set (tests only): announce
    reaching ``point`` with a file ``POINT.PID`` there and wait for a file ``POINT.go``, so
    that a test can kill or cancel the process at a known step of a job."""
    folder = os.environ.get(PAUSE_ENV)
    if not folder:
        return
    (Path(folder) / f"{point}.{os.getpid()}").touch()
    while not (Path(folder) / f"{point}.go").exists():
        time.sleep(0.02)


class _Held:
    """A job this process holds, and why it should stop: ``cancel`` (asked through the job
    row), ``lost`` (the row no longer says this process holds it) or ``stop`` (the process
    stops; the job goes back to the queue)."""

    _RANK = {"": 0, "stop": 1, "cancel": 2, "lost": 3}

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason = ""

    def stop(self, reason: str) -> None:
        if self._RANK[reason] > self._RANK[self.reason]:
            self.reason = reason
        self.event.set()


class JobManager:
    """Accepts jobs into the store's job table and runs what it claims from it.

    The table is the queue: every process serving the data folder runs a runner thread that
    claims the oldest waiting job (or one whose lease ran out: its process died), runs it,
    and ends it; a lease thread renews the leases of the jobs this process holds and passes
    on cancels asked through the row. Nothing lives only in one process's memory, so a job
    accepted by a process that dies is run by another, and no job runs twice at once.
    """

    def __init__(
        self,
        settings,
        store,
        *,
        max_expanded_bytes: int | None = None,
        on_memory_change: Callable[[], None] | None = None,
    ):
        self.settings = settings
        self.store = store
        self.on_memory_change = on_memory_change  # brings the indexes up to date
        self.root = Path(settings.data_dir) / "jobs"
        self.max_expanded_bytes = max_expanded_bytes or settings.max_expanded_bytes
        self.table = store.jobs()
        self.lease_s = float(settings.job_lease_s)
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._poll_s = min(1.0, self.lease_s / 4)
        self._submit_lock = threading.Lock()
        self._cleaned = 0.0
        self._stop = threading.Event()
        self._stop_leases = threading.Event()
        self._wake = threading.Event()
        self._held: dict[str, _Held] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._leases: threading.Thread | None = None

    # -- life cycle

    def start(self) -> None:
        """Start the runner and the lease threads; audit rows of imports cut off by a crash
        of this host's processes are marked failed."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._stop_leases.clear()
        self._remove_stale_uploads()
        try:
            self.store.abandon_imports()
        except Exception:  # logged; the rows stay as they are
            log.exception("marking interrupted imports failed")
        self._thread = threading.Thread(target=self._run, name="concordia-jobs", daemon=True)
        self._leases = threading.Thread(
            target=self._keep_leases, name="concordia-job-leases", daemon=True
        )
        self._thread.start()
        self._leases.start()

    def _remove_stale_uploads(self) -> None:
        """Uploads cut off by a crash (other processes may be receiving theirs now)."""
        cutoff = time.time() - STALE_UPLOAD_S
        for leftover in self.root.glob(".incoming-*"):
            try:
                if leftover.stat().st_mtime < cutoff:
                    shutil.rmtree(leftover, ignore_errors=True)
            except OSError:
                continue

    def alive(self) -> bool:
        """Whether the runner and the lease threads run (``/health`` reports it)."""
        return all(t is not None and t.is_alive() for t in (self._thread, self._leases))

    def stop(self, timeout: float | None = 60) -> None:
        """Stop after the pair in progress (an import rolls back); the jobs this process held
        go back to the queue, for another process or the next start."""
        self._stop.set()
        self._wake.set()
        with self._lock:
            for held in self._held.values():
                held.stop("stop")
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._stop_leases.set()
        if self._leases is not None:
            self._leases.join(timeout)
            self._leases = None
        with self._lock:
            held_ids, self._held = list(self._held), {}
        for job_id in held_ids:  # handed over, still in their requests
            try:
                self.table.release(job_id, self.worker)
            except Exception:  # its lease runs out instead
                log.exception("giving job %s back failed", job_id)
        self.table.close()

    def _hold(self, job_id: str) -> _Held:
        held = _Held()
        if self._stop.is_set():
            held.stop("stop")
        with self._lock:
            self._held[job_id] = held
        return held

    def _let_go(self, job_id: str) -> None:
        with self._lock:
            self._held.pop(job_id, None)

    # -- requests

    def submit_archive(self, upload: BinaryIO, options: dict, owner: str = "") -> Job:
        """A job from a zip of pairs (NAME.zh.* / NAME.en.*, or with a manifest); ``owner``:
        the name of the key asking."""
        self._check_queue()
        # refuse before anything is written
        check_archive(upload, self.max_expanded_bytes, self.settings.max_archive_entries)
        upload.seek(0)
        return self._create(
            lambda folder: extract_archive(upload, folder, self.max_expanded_bytes), options,
            owner=owner,
        )

    def submit_files(
        self,
        manifest: tuple[str, bytes],
        files: list[tuple[str, BinaryIO]],
        options: dict,
        *,
        handed_over: bool = False,
        owner: str = "",
    ) -> Job:
        """A job from uploaded documents and a manifest (CSV / JSONL) naming them.

        ``handed_over``: the request that made it is still aligning its one pair; the job is
        'running', held by this process, and not counted against the queue limit (the work
        already runs, in a heavy slot); ``finish_handed_over`` or ``enqueue`` ends it. If this
        process dies first, another takes it over and aligns it from its inputs.
        """
        manifest_name, manifest_bytes = manifest
        suffix = Path(manifest_name).suffix.lower()
        if suffix not in (".csv", ".jsonl"):
            raise ServiceError(400, "bad_manifest", "the manifest must be a .csv or .jsonl file")
        names = set()
        for name, _ in files:
            if (
                not name
                or name != PurePosixPath(name).name
                or name.startswith(".")
                or name.lower() in MANIFEST_NAMES
            ):
                raise ServiceError(400, "bad_upload", f"bad upload file name: {name!r}")
            if name in names:
                raise ServiceError(400, "bad_upload", f"two uploads are named {name!r}")
            names.add(name)

        def write(folder: Path) -> None:
            folder.mkdir(parents=True, exist_ok=True)
            for name, handle in files:
                with (folder / name).open("wb") as sink:
                    shutil.copyfileobj(handle, sink, _COPY_BLOCK)
            (folder / f"manifest{suffix}").write_bytes(manifest_bytes)

        return self._create(write, options, handed_over, owner=owner)

    def _check_queue(self) -> None:
        """429 when ``max_queued_jobs`` jobs are waiting or running already."""
        limit = self.settings.max_queued_jobs
        if len(self.table.active()) >= limit:
            raise too_busy(
                f"{limit} jobs are queued or running; try again later",
                self.settings.retry_after_s,
            )

    def _new_job(self, job_id: str, options: dict, total: int, owner: str, running: bool) -> Job:
        now = _now()
        if not running:
            return Job(job_id, "queued", now, now, options, total=total, owner=owner)
        return Job(
            job_id, "running", now, now, options, total=total, owner=owner,
            worker=self.worker, lease_until=time.time() + self.lease_s, attempts=1,
        )

    def _create(self, write, options: dict, handed_over: bool = False, owner: str = "") -> Job:
        if not handed_over:
            self._check_queue()
        job_id = uuid.uuid4().hex
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".incoming-{job_id}"
        try:
            try:
                write(staging / "input")
                pairs = discover_pairs(staging / "input")
            except InputError as exc:
                message = without_paths(str(exc), staging / "input", self.settings.data_dir)
                raise ServiceError(400, "bad_pairs", message) from None
            except OSError as exc:  # e.g. a file name this file system refuses
                reason = exc.strerror or type(exc).__name__
                name = Path(exc.filename).name if exc.filename else ""
                message = f"cannot store the upload: {reason}" + (f": {name}" if name else "")
                raise ServiceError(400, "bad_upload", message) from None
            _write_pairs(pairs, staging)
            with self._submit_lock:
                if not handed_over:
                    self._check_queue()
                staging.rename(self.root / job_id)
                job = self._new_job(job_id, options, len(pairs), owner, handed_over)
                self.table.insert(job)
                if handed_over:  # its lease is renewed from now on
                    self._hold(job_id)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self._wake.set()
        return job

    def enqueue(self, job_id: str) -> None:
        """Queue a handed-over job after all (its pair turned out too large for a request)."""
        self._let_go(job_id)
        self.table.release(job_id, self.worker)
        self._wake.set()

    def finish_handed_over(
        self,
        job_id: str,
        result: AlignmentResult | None,
        error: Exception | None,
        memory: dict | None,
        seconds: float,
    ) -> None:
        """End a handed-over job with its request's outcome: ``result`` written as the batch
        writes a pair (its TMX, report and the merged TMX), or ``error`` as the pair's failure;
        ``memory`` is what the alignment added to the memory. Nothing is aligned again."""
        with self._lock:
            held = self._held.get(job_id)
        try:
            job = self.table.get(job_id)
            if job is None or held is None:  # deleted meanwhile, or given back at a stop
                return
            folder = self.root / job_id
            (pair,) = _read_pairs(folder)
            settings = self._batch_settings(job.options)
            started = time.perf_counter() - seconds
            if error is None and result is not None:
                try:
                    report = pair_outputs(pair, folder / "out", settings, result, started)
                except Exception as exc:  # noqa: BLE001 - reported as the pair's failure
                    error = exc
            if error is not None or result is None:
                reason = error_reason(error or RuntimeError("no result"), pair.id)
                report = failed_report(pair, reason, started)
            public = _public_report(report, folder / "input")
            self.table.report(job_id, 0, public, 1, int(public["status"] == "failed"))
            merge_tmx(folder / "out", [report], settings)
            cancelled = held.reason == "cancel" and memory is None
            self.table.finish(
                job_id, self.worker, "cancelled" if cancelled else "done", memory=memory
            )
        finally:
            self._let_go(job_id)

    def submit_import(self, upload: BinaryIO, filename: str, rule: str, owner: str = "") -> Job:
        """A job importing an uploaded TMX into the memory under merge ``rule``.

        The file is checked first (``check_tmx``: a ``<tmx>`` root, no entity declarations,
        well-formed to its end): one that fails is a 400 naming the line, and no job."""
        self._check_queue()
        job_id = uuid.uuid4().hex
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".incoming-{job_id}"
        name = PurePosixPath(filename.replace("\\", "/")).name or "upload.tmx"
        options = {"kind": "import", "rule": rule, "file": name}
        try:
            (staging / "input").mkdir(parents=True)
            with (staging / "input" / IMPORT_FILE).open("wb") as sink:
                shutil.copyfileobj(upload, sink, _COPY_BLOCK)
            try:
                check_tmx(staging / "input" / IMPORT_FILE, name)
            except TMXError as exc:
                raise ServiceError(400, "bad_tmx", str(exc)) from None
            total = _count_units(staging / "input" / IMPORT_FILE)
            with self._submit_lock:
                self._check_queue()
                staging.rename(self.root / job_id)
                job = self._new_job(job_id, options, total, owner, running=False)
                self.table.insert(job)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self._wake.set()
        return job

    def get(self, job_id: str, offset: int = 0, limit: int = PAIRS_SHOWN) -> Job:
        job = self.table.get(job_id, offset, limit) if _is_job_id(job_id) else None
        if job is None:
            raise ServiceError(404, "job_not_found", f"no job {job_id}")
        return job

    def cancel(
        self, job_id: str, by: str, *, admin: bool = False, wait_s: float = CANCEL_WAIT_S
    ) -> Job:
        """Cancel a job of key ``by`` (an ``admin`` key: anyone's) through its row.

        A queued job is cancelled at once. A running one is asked to stop, and this waits
        up to ``wait_s`` for the process running it to end it: ``cancelled`` (an import rolled
        back), or a 409 ``import_committed`` when its import had committed before the cancel
        came; still ``running`` with ``cancel_requested`` after that time."""
        job = self.get(job_id)
        if not admin and job.owner != by:
            raise ServiceError(
                403, "not_your_job",
                f"job {job_id} was made by another key; only that key or an admin key may "
                "cancel it",
            )
        if job.state not in ACTIVE:
            raise ServiceError(409, "job_finished", f"job {job_id} is already {job.state}")
        if job.memory is None:
            job = self.table.request_cancel(job_id) or job
        with self._lock:
            held = self._held.get(job_id)
        if held is not None:
            held.stop("cancel")
        deadline = time.monotonic() + wait_s
        while job.state == "running" and job.memory is None and time.monotonic() < deadline:
            time.sleep(0.05)
            job = self.table.get(job_id, 0, 0) or job
        if job.memory is not None:  # its import committed (the job is done, or indexing)
            import_id = job.memory.get("import_id")
            raise ServiceError(
                409, "import_committed",
                f"job {job_id} had put its units in the memory before the cancel came "
                f"(import {import_id}); DELETE /tm/units?import_id={import_id} removes them",
            )
        if job.state == "done":
            raise ServiceError(409, "job_finished", f"job {job_id} is already done")
        return self.get(job_id)

    def tmx_path(self, job_id: str) -> Path:
        job = self.get(job_id)
        if job.state != "done":
            raise ServiceError(409, "job_not_done", f"job {job_id} is {job.state}, not done")
        return self.root / job_id / "out" / MERGED_TMX

    def pair_inputs(self, job_id: str, pair_id: str) -> tuple[Path, Path, str]:
        """The two input documents of one pair of a finished job and its symbol (for a review)."""
        job = self.get(job_id)
        if job.state != "done":
            raise ServiceError(409, "job_not_done", f"job {job_id} is {job.state}, not done")
        for pair in _read_pairs(self.root / job_id):
            if pair.id == pair_id and not pair.error:
                return Path(pair.zh), Path(pair.en), pair.symbol
        raise ServiceError(404, "pair_not_found", f"job {job_id} has no aligned pair {pair_id!r}")

    # -- the runner

    def cleanup(self) -> int:
        """Delete the jobs that ended more than the retention time ago; returns how many."""
        hours = self.settings.job_retention_hours
        stamp = datetime.fromtimestamp(time.time() - hours * 3600, UTC)
        old = self.table.finished_before(stamp.strftime("%Y-%m-%dT%H:%M:%SZ"))
        for job_id in old:
            shutil.rmtree(self.root / job_id, ignore_errors=True)
            self.table.delete(job_id)
        if old:
            log.info("deleted %d jobs finished over %g hours ago", len(old), hours)
        return len(old)

    def _run(self) -> None:
        """Claim and run jobs until stopped; an error of one job or one round is logged and
        the runner goes on (a job whose end could not be written is taken over when its
        lease runs out, and fails after ``MAX_ATTEMPTS``)."""
        while not self._stop.is_set():
            try:
                self._round()
            except Exception:  # noqa: BLE001 - e.g. a full disk: try again after a pause
                log.exception("the job runner's round failed; trying again")
                self._stop.wait(self._poll_s)

    def _round(self) -> None:
        if time.monotonic() - self._cleaned > _CLEANUP_EVERY_S:
            self._cleaned = time.monotonic()
            try:
                self.cleanup()
            except Exception:  # logged; tried again later
                log.exception("job cleanup failed")
        self._wake.clear()
        job = self.table.claim(self.worker, self.lease_s)
        if job is None:
            self._wake.wait(self._poll_s)
            return
        held = self._hold(job.id)
        try:
            if job.cancel_requested:
                held.stop("cancel")
            self._run_job(job, held)
        except Exception as exc:  # noqa: BLE001 - one broken job must not stop the runner
            log.exception("job %s failed", job.id)
            message = without_paths(f"{type(exc).__name__}: {exc}", self.settings.data_dir)
            self.table.finish(job.id, self.worker, "failed", error=message)
        finally:
            self._let_go(job.id)

    def _keep_leases(self) -> None:
        """Renew the leases of the jobs this process holds; pass on cancels and losses."""
        interval = min(1.0, self.lease_s / 3)
        while not self._stop_leases.wait(interval):
            with self._lock:
                held = dict(self._held)
            for job_id, mine in held.items():
                try:
                    row = self.table.renew(job_id, self.worker, self.lease_s)
                except Exception:  # noqa: BLE001 - logged; renewed at the next round
                    log.exception("renewing the lease of job %s failed", job_id)
                    continue
                if row is None:
                    mine.stop("lost")
                elif row.cancel_requested:
                    mine.stop("cancel")

    def _stopped(self, job: Job, held: _Held) -> None:
        """End a job whose run stopped before its end: back to the queue when this process
        stops, cancelled when asked, nothing when another process has it now."""
        if held.reason == "stop":
            self.table.release(job.id, self.worker)
        elif held.reason == "cancel":
            self.table.finish(job.id, self.worker, "cancelled")

    def _run_job(self, job: Job, held: _Held) -> None:
        if job.options.get("kind") == "import":
            self._run_import(job, held)
            return
        if job.attempts > MAX_ATTEMPTS:
            self.table.finish(job.id, self.worker, "failed", error=_gave_up(job))
            return
        if held.event.is_set():  # cancelled while its process was gone
            self._stopped(job, held)
            return
        folder = self.root / job.id
        pairs = _read_pairs(folder)
        options = job.options
        settings = self._batch_settings(options)
        order = {pair.id: seq for seq, pair in enumerate(pairs)}
        statuses: dict[str, str] = {}

        def progress(report: dict, done: int, total: int) -> None:
            public = _public_report(report, folder / "input")
            statuses[report["id"]] = public["status"]
            failed = sum(1 for status in statuses.values() if status == "failed")
            self.table.report(job.id, order.get(report["id"], len(order)), public, done, failed)
            _pause("pair")

        summary = run_batch(
            pairs, folder / "out", settings, progress=progress, cancel=held.event,
            limits=self.settings.align_limits,
        )
        if summary.cancelled:
            self._stopped(job, held)
            return
        memory = None
        if options.get("add_to_memory") and any(r["status"] == "ok" for r in summary.reports):
            memory = self._feed_memory(folder / "out" / MERGED_TMX, job.id)
        self.table.finish(job.id, self.worker, "done", memory=memory)

    def _batch_settings(self, options: dict) -> BatchSettings:
        return BatchSettings.create(
            min_score=options.get("min_score"),
            encoder=self.settings.encoder if self.settings.semantic_enabled else DEFAULT_ENCODER,
            mode=options.get("mode", "auto"),
        )

    def _feed_memory(self, tmx: Path, job_id: str) -> dict:
        try:
            result = self.store.import_tmx(tmx, job=job_id).as_dict()
        except AlreadyImported as exc:  # a run cut off after its import
            result = exc.record.result
        memory = {key: result.get(key, 0) for key in ("import_id", "imported", "merged", "skipped")}
        self.table.renew(job_id, self.worker, self.lease_s, memory=memory)
        self._index()
        return memory

    def _index(self) -> str:
        """Bring the indexes up to date; the error, or "" (they catch up at their next sync)."""
        if self.on_memory_change is None:
            return ""
        try:
            self.on_memory_change()
        except Exception as exc:  # noqa: BLE001 - the units are in; reported with the job
            log.exception("updating the indexes after a job's import failed")
            return without_paths(f"{type(exc).__name__}: {exc}", self.settings.data_dir)
        return ""

    def _run_import(self, job: Job, held: _Held) -> None:
        """Import the job's TMX in one transaction that records the job, then bring the
        indexes up to date; its figures are the real durations of both.

        A job run again (its process died) whose import committed is not imported again: it
        ends ``done`` with that import's figures. A bad file fails the job with the reader's
        message and leaves the memory as it was; a cancel rolls it back too. Once the import
        committed the job is done, and says so even if the indexes could not follow. The
        upload is removed when the job ends, whatever the end."""
        started = time.perf_counter()
        path = self.root / job.id / "input" / IMPORT_FILE
        committed = self.store.job_import(job.id)
        if committed is None:
            if job.attempts > 1:  # taken over: the audit rows its last run left are not running
                self.store.abandon_imports(job.id)
            if job.attempts > MAX_ATTEMPTS:
                if self.table.finish(job.id, self.worker, "failed", error=_gave_up(job)):
                    path.unlink(missing_ok=True)
                return
            result = self._import(job, held, path)
            if result is None:
                return
        else:
            result = committed.result
        # The row says the units are in before the indexes follow: a cancel now is refused.
        self.table.renew(job.id, self.worker, self.lease_s, memory=result)
        indexing = time.perf_counter()
        _pause("indexing")
        problem = self._index()
        memory = {
            **result,
            "indexing_seconds": round(time.perf_counter() - indexing, 3),
            "total_seconds": round(time.perf_counter() - started, 3),
        }
        error = None
        if problem:
            memory["indexing"] = "failed"
            error = (
                f"the import committed (import {result.get('import_id')}): its units are in "
                f"the memory, but updating the indexes failed ({problem}); lookups find them "
                "once the indexes catch up"
            )
        if self.table.finish(job.id, self.worker, "done", memory=memory, error=error):
            path.unlink(missing_ok=True)

    def _import(self, job: Job, held: _Held, path: Path) -> dict | None:
        """Run the import of ``job``: its figures, or None when it ended otherwise (failed,
        cancelled, or stopped: then the row says so)."""

        def progress(read: int) -> None:
            _pause("import")
            try:
                row = self.table.renew(job.id, self.worker, self.lease_s, done=read)
            except Exception:  # noqa: BLE001 - progress is shown, not needed: go on
                log.exception("writing the progress of job %s failed", job.id)
            else:
                if row is None:
                    held.stop("lost")
                elif row.cancel_requested:
                    held.stop("cancel")
            if held.event.is_set():
                raise _Cancelled("the import was cancelled")

        try:
            if held.event.is_set():
                raise _Cancelled("the import was cancelled")
            return self.store.import_tmx(
                path, source=job.options.get("file", ""), rule=job.options.get("rule", "merge"),
                progress=progress, job=job.id,
            ).as_dict()
        except AlreadyImported as exc:  # another run's import committed meanwhile
            return exc.record.result
        except _Cancelled:
            committed = self.store.job_import(job.id)
            if committed is not None:  # the cancel came after the commit
                return committed.result
            self._stopped(job, held)
            if held.reason == "cancel":
                path.unlink(missing_ok=True)
            return None
        except InputError as exc:
            message = without_paths(str(exc).replace(f"{path}: ", ""), self.settings.data_dir)
            if self.table.finish(job.id, self.worker, "failed", error=message):
                path.unlink(missing_ok=True)
            return None


def _gave_up(job: Job) -> str:
    return (
        f"the process running this job stopped {job.attempts - 1} times before it ended; "
        "it is not tried again"
    )


class _Cancelled(Exception):
    """Raised from an import's progress callback to roll it back."""


_TU_START = re.compile(rb"<tu[\s>]")


def _count_units(path: Path) -> int:
    """How many ``tu`` a TMX holds, counted in its bytes (0 when it is not UTF-8 or ASCII)."""
    count, tail = 0, b""
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_COPY_BLOCK), b""):
            data = tail + block
            count += len(_TU_START.findall(data))
            tail = data[-4:]
            count -= len(_TU_START.findall(tail))
    return count


def _is_job_id(value: str) -> bool:
    return len(value) == 32 and all(c in "0123456789abcdef" for c in value)


def _public_report(report: dict, input_dir: Path) -> dict:
    """A pair report without server paths and internals."""
    hidden = {"key", "tmx", "zh", "en"}
    public = {k: v for k, v in report.items() if k not in hidden}
    for side in ("zh", "en"):
        public[side] = _relative(report.get(side) or "", input_dir)
    if "reason" in public:
        public["reason"] = without_paths(public["reason"], input_dir, input_dir.parent.parent)
    return public
