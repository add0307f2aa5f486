"""Batch alignment jobs: upload document pairs, align them in the background, fetch the TMX.

A job is a folder ``DATA/jobs/ID`` (``input/`` with the documents, ``pairs.jsonl`` listing
them, ``out/`` with what :func:`aligner.batch.run_batch` writes) and a row in the ``job`` table
of the store's SQLite file.
Jobs run one at a time in a background thread. A job that was queued or running when the
service stopped runs again at the next start; pairs already aligned are skipped (the batch
resumes by content hash).

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

import fcntl
import json
import logging
import queue
import re
import shutil
import stat
import threading
import time
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import BinaryIO, TextIO

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
from service.memory.store import Job

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


# ---------------------------------------------------------------- the job table


# ---------------------------------------------------------------- the manager


class JobManager:
    """Accepts jobs, runs them one after another in a background thread, survives restarts."""

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
        self._submit_lock = threading.Lock()
        self._cleaned = 0.0
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stop = threading.Event()
        self._cancel: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._resume_lock: TextIO | None = None

    # -- life cycle

    def start(self) -> None:
        """Queue the jobs left unfinished by the last run, then start the runner thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        if self._take_resume_lock():
            for leftover in self.root.glob(".incoming-*"):  # uploads cut off by a crash
                shutil.rmtree(leftover, ignore_errors=True)
            for job_id in self.table.active():
                self._queue.put(job_id)
        self._thread = threading.Thread(target=self._run, name="concordia-jobs", daemon=True)
        self._thread.start()

    def _take_resume_lock(self) -> bool:
        """Whether this process resumes unfinished jobs.

        With several server workers on one data folder, only the one holding this lock
        resumes them, so no job runs twice after a restart; every worker runs what it accepts.
        """
        handle = open(Path(self.settings.data_dir) / "jobs-resume.lock", "a")  # noqa: SIM115 - held until stop()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._resume_lock = handle
        return True

    def stop(self, timeout: float | None = 60) -> None:
        """Stop after the pair in progress; an interrupted job stays 'running' and resumes."""
        self._stop.set()
        with self._lock:
            for event in self._cancel.values():
                event.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._queue = queue.Queue()
        if self._resume_lock is not None:
            self._resume_lock.close()
            self._resume_lock = None
        self.table.close()

    # -- requests

    def submit_archive(self, upload: BinaryIO, options: dict) -> Job:
        """A job from a zip of pairs (NAME.zh.* / NAME.en.*, or with a manifest)."""
        self._check_queue()
        # refuse before anything is written
        check_archive(upload, self.max_expanded_bytes, self.settings.max_archive_entries)
        upload.seek(0)
        return self._create(
            lambda folder: extract_archive(upload, folder, self.max_expanded_bytes), options
        )

    def submit_files(
        self,
        manifest: tuple[str, bytes],
        files: list[tuple[str, BinaryIO]],
        options: dict,
        *,
        handed_over: bool = False,
    ) -> Job:
        """A job from uploaded documents and a manifest (CSV / JSONL) naming them.

        ``handed_over``: the request that made it is still aligning its one pair; the job is
        'running' and not queued (nor counted against the queue limit: the work already
        runs, in a heavy slot), and ``finish_handed_over`` or ``enqueue`` ends it. After a
        restart it runs from its inputs like any other job.
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

        return self._create(write, options, handed_over)

    def _check_queue(self) -> None:
        """429 when ``max_queued_jobs`` jobs are waiting or running already."""
        limit = self.settings.max_queued_jobs
        if len(self.table.active()) >= limit:
            raise too_busy(
                f"{limit} jobs are queued or running; try again later",
                self.settings.retry_after_s,
            )

    def _create(self, write, options: dict, handed_over: bool = False) -> Job:
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
                now = _now()
                state = "running" if handed_over else "queued"
                job = Job(job_id, state, now, now, options, total=len(pairs))
                self.table.insert(job)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if not handed_over:
            self._queue.put(job_id)
        return job

    def enqueue(self, job_id: str) -> None:
        """Queue a handed-over job after all (its pair turned out too large for a request)."""
        with self._lock:
            job = self.table.get(job_id)
            if job is None or job.state != "running":
                return
            self.table.update(job_id, state="queued")
        self._queue.put(job_id)

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
        job = self.table.get(job_id)
        if job is None:  # deleted meanwhile
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
        with self._lock:
            if self.table.get(job_id).state == "running":
                self.table.update(job_id, state="done", memory=memory)

    def submit_import(self, upload: BinaryIO, filename: str, rule: str) -> Job:
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
                now = _now()
                job = Job(job_id, "queued", now, now, options, total=total)
                self.table.insert(job)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self._queue.put(job_id)
        return job

    def get(self, job_id: str, offset: int = 0, limit: int = PAIRS_SHOWN) -> Job:
        job = self.table.get(job_id, offset, limit) if _is_job_id(job_id) else None
        if job is None:
            raise ServiceError(404, "job_not_found", f"no job {job_id}")
        return job

    def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job.state not in ACTIVE:
            raise ServiceError(409, "job_finished", f"job {job_id} is already {job.state}")
        with self._lock:
            self.table.update(job_id, state="cancelled")
            event = self._cancel.get(job_id)
            if event is not None:
                event.set()
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
        while not self._stop.is_set():
            if time.monotonic() - self._cleaned > _CLEANUP_EVERY_S:
                self._cleaned = time.monotonic()
                try:
                    self.cleanup()
                except Exception:  # logged; tried again later
                    log.exception("job cleanup failed")
            try:
                job_id = self._queue.get(timeout=_CLEANUP_EVERY_S)
            except queue.Empty:
                continue
            if job_id is None or self._stop.is_set():
                return
            try:
                self._run_job(job_id)
            except Exception as exc:  # noqa: BLE001 - one broken job must not stop the runner
                log.exception("job %s failed", job_id)
                message = without_paths(f"{type(exc).__name__}: {exc}", self.settings.data_dir)
                self.table.update(job_id, state="failed", error=message)

    def _run_job(self, job_id: str) -> None:
        with self._lock:
            job = self.table.get(job_id)
            if job is None or job.state not in ACTIVE:
                return
            cancel = threading.Event()
            if self._stop.is_set():  # stop() came before this job registered its event
                cancel.set()
            self._cancel[job_id] = cancel
            self.table.update(job_id, state="running")
        if job.options.get("kind") == "import":
            self._run_import(job, cancel)
            return
        folder = self.root / job_id
        pairs = _read_pairs(folder)
        options = job.options
        settings = self._batch_settings(options)
        order = {pair.id: seq for seq, pair in enumerate(pairs)}
        statuses: dict[str, str] = {}

        def progress(report: dict, done: int, total: int) -> None:
            public = _public_report(report, folder / "input")
            statuses[report["id"]] = public["status"]
            failed = sum(1 for status in statuses.values() if status == "failed")
            self.table.report(job_id, order.get(report["id"], len(order)), public, done, failed)

        try:
            summary = run_batch(
                pairs, folder / "out", settings, progress=progress, cancel=cancel,
                limits=self.settings.align_limits,
            )
        finally:
            with self._lock:
                self._cancel.pop(job_id, None)
        if summary.cancelled:
            return  # cancelled by request (state already set) or stopping: resumes at start
        memory = None
        if options.get("add_to_memory") and any(r["status"] == "ok" for r in summary.reports):
            memory = self._feed_memory(folder / "out" / MERGED_TMX)
        with self._lock:
            if self.table.get(job_id).state == "running":
                self.table.update(job_id, state="done", memory=memory)

    def _batch_settings(self, options: dict) -> BatchSettings:
        return BatchSettings.create(
            min_score=options.get("min_score"),
            encoder=self.settings.encoder if self.settings.semantic_enabled else DEFAULT_ENCODER,
            mode=options.get("mode", "auto"),
        )

    def _feed_memory(self, tmx: Path) -> dict:
        result = self.store.import_tmx(tmx)
        if self.on_memory_change is not None:
            self.on_memory_change()
        return {"imported": result.imported, "merged": result.merged, "skipped": result.skipped}

    def _run_import(self, job: Job, cancel: threading.Event) -> None:
        """Import the job's TMX in one transaction, then bring the indexes up to date; its
        figures are the real durations of both. A bad file fails the job with the reader's
        message and leaves the memory as it was; a cancel rolls it back too."""
        started = time.perf_counter()

        def progress(read: int) -> None:
            if cancel.is_set():
                raise _Cancelled("the import was cancelled")
            self.table.update(job.id, done=read)

        path = self.root / job.id / "input" / IMPORT_FILE
        try:
            result = self.store.import_tmx(
                path, source=job.options.get("file", ""), rule=job.options.get("rule", "merge"),
                progress=progress,
            )
        except _Cancelled:
            return
        except InputError as exc:
            message = without_paths(str(exc).replace(f"{path}: ", ""), self.settings.data_dir)
            self.table.update(job.id, state="failed", error=message)
            return
        finally:
            with self._lock:
                self._cancel.pop(job.id, None)
        imported = time.perf_counter()
        if self.on_memory_change is not None:
            self.on_memory_change()
        memory = {
            **result.as_dict(),
            "indexing_seconds": round(time.perf_counter() - imported, 3),
            "total_seconds": round(time.perf_counter() - started, 3),
        }
        path.unlink(missing_ok=True)
        with self._lock:
            if self.table.get(job.id).state == "running":
                self.table.update(job.id, state="done", memory=memory)


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
