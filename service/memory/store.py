"""The translation memory's store: the interface every implementation offers, and the plain
data that crosses it.

``TMStore`` is what the service, its indexes and its jobs use; ``SQLiteStore``
(``service/memory/sqlite.py``, embedded, the default) and ``PostgresStore``
(``service/memory/postgres.py``, shared by several service replicas) implement it, and
``open_store`` (``service/memory/factory.py``) picks one. One contract test class
(``tests/test_store_contract.py``) runs against both.

Invariants every implementation keeps:

- a unit keeps its segments as runs of text and inline tags (``zh_runs``/``en_runs``, None
  for plain text) and everything its TMX said (``tmx``); ``zh``/``en`` are the plain text,
  derived from the runs, and are what indexes and hashes see;
- an import is all or nothing: an error anywhere (a broken file, a crash) leaves the memory
  as it was; each import is logged with what it added, merged, replaced and skipped;
- every committed change bumps ``generation``; a unit whose text changes gets a new id and its
  old id a tombstone (as a deleted one), so indexes built from ids and text (fuzzy q-grams,
  FAISS) catch up by reading new ids and tombstones only. Metadata edits keep the id;
  ``version`` counts every edit and makes concurrent edits fail instead of overwriting.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import unicodedata
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

from aligner.errors import InputError
from aligner.markup import runs_from_data, runs_to_data
from aligner.models import Run, Tag, TranslationUnit, Tuv

XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
# Property names (with and without TMX's customary "x-" prefix) that carry provenance.
DOCUMENT_PROPS = ("document", "x-document", "doc", "x-doc")
SPEAKER_PROPS = ("speaker", "x-speaker")


@contextmanager
def process_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes (uvicorn workers) sharing a data folder."""
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def fsync_folder(folder: Path) -> None:
    """Flush a folder's files to disk, before a rename or a pointer makes them current."""
    for path in folder.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())


def lang_family(code: str) -> str:
    """"zh-CN" → "zh", "en_US" → "en"."""
    return code.strip().lower().replace("_", "-").split("-")[0]


def normalise_text(text: str) -> str:
    """NFC with runs of whitespace collapsed: the form segments are compared and hashed in."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def content_hash(zh: str, en: str, markup: str = "") -> str:
    """The identity of a unit: both segments, whitespace-normalised, and their markup (the
    JSON of their runs) when they have any."""
    key = f"{normalise_text(zh)}\x00{normalise_text(en)}"
    if markup:
        key += f"\x00{markup}"
    return hashlib.sha256(key.encode()).hexdigest()


def source_key(text: str, lang: str) -> str:
    """What makes two units duplicates under ``keep_newest``: the same source segment."""
    return hashlib.sha256(f"{lang_family(lang)}\x00{normalise_text(text)}".encode()).hexdigest()


class MergeRule(StrEnum):
    """What an import does with a unit the memory already has.

    - ``merge``: the same source and target (and markup) are one unit; the stored one keeps
      its values and gains the properties it lacked. A different translation is a new unit.
    - ``keep_both``: every imported unit is stored, identical ones too.
    - ``keep_newest``: a unit with the same source segment as a stored one replaces it when
      it is newer (``changedate``, else ``creationdate``) and is skipped when it is not.
    - ``by_tuid``: a unit whose ``tuid`` a stored unit has replaces it; others merge.
    """

    MERGE = "merge"
    KEEP_BOTH = "keep_both"
    KEEP_NEWEST = "keep_newest"
    BY_TUID = "by_tuid"


class StoreError(InputError):
    """A request the store refuses; ``code`` is stable for API clients."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.status = code, status


class UnitGone(StoreError):
    def __init__(self, unit_id: int, replaced_by: int | None = None):
        if replaced_by:
            message = f"unit {unit_id} was changed meanwhile; it is now unit {replaced_by}"
            super().__init__("edit_conflict", message, 409)
        else:
            super().__init__("unit_not_found", f"no unit {unit_id} (deleted or never stored)", 404)
        self.replaced_by = replaced_by


class AlreadyImported(StoreError):
    """The job's import committed before (a run cut off after its commit, run again)."""

    def __init__(self, record: ImportRecord):
        super().__init__(
            "already_imported",
            f"job {record.job} was imported already (import {record.id})",
            409,
        )
        self.record = record


class EditConflict(StoreError):
    def __init__(self, unit_id: int, expected: int, actual: int):
        super().__init__(
            "edit_conflict",
            f"unit {unit_id} is at version {actual}, not {expected}: it was edited meanwhile; "
            "read it again and redo the edit",
            409,
        )


@dataclass
class StoredUnit:
    """A unit as stored, with its id; ``source``/``target`` follow its original direction."""

    id: int
    zh: str
    en: str
    source_lang: str
    target_lang: str
    props: dict[str, str] = field(default_factory=dict)
    document: str = ""
    speaker: str = ""
    creationdate: str = ""
    creationid: str = ""
    created_at: str = ""
    origin: str = ""
    hash: str = ""
    zh_runs: list[Run] | None = None
    en_runs: list[Run] | None = None
    tmx: dict | None = None  # what its TMX said beyond the segments; None: made by Concordia
    version: int = 1
    import_id: int = 0
    tuid: str = ""

    @property
    def source(self) -> str:
        return self.side(lang_family(self.source_lang))

    @property
    def target(self) -> str:
        return self.side(lang_family(self.target_lang))

    @property
    def attrs(self) -> dict[str, str]:
        """The ``tu`` attributes besides creationdate and creationid (changedate, tuid,
        usagecount, …)."""
        return dict((self.tmx or {}).get("attrs", {}))

    def side(self, lang: str) -> str:
        """The segment in ``lang`` ("zh" or "en")."""
        return self.zh if lang == "zh" else self.en

    def runs(self, lang: str) -> list[Run]:
        """The segment in ``lang`` as runs (one text run when it has no markup)."""
        runs = self.zh_runs if lang == "zh" else self.en_runs
        return runs if runs is not None else [self.side(lang)]

    def to_translation_unit(self) -> TranslationUnit:
        src, tgt = lang_family(self.source_lang), lang_family(self.target_lang)
        tmx = self.tmx
        unit = TranslationUnit(
            source=self.side(src),
            target=self.side(tgt),
            source_lang=self.source_lang,
            target_lang=self.target_lang,
            props=dict(self.props),
            creationdate=self.creationdate,
            creationid=self.creationid,
            source_runs=self.zh_runs if src == "zh" else self.en_runs,
            target_runs=self.zh_runs if tgt == "zh" else self.en_runs,
        )
        if tmx is not None:
            tuvs = tmx.get("tuvs") or [None, None]
            unit.attrs = dict(tmx.get("attrs", {}))
            unit.extras = tags_from_data(tmx.get("extras", []))
            unit.source_tuv = tuv_from_data(tuvs[0], self.source_lang)
            unit.target_tuv = tuv_from_data(tuvs[1], self.target_lang)
            unit.target_first = bool(tmx.get("target_first"))
        return unit


def tags_from_data(data: list) -> list[Tag]:
    return [t for t in runs_from_data(data) if isinstance(t, Tag)]


def tuv_to_data(tuv: Tuv | None, lang: str) -> dict | None:
    """A tuv's attributes and extras, None when it is only ``xml:lang`` = ``lang``."""
    if tuv is None or (tuv.attrs == {XML_LANG: lang} and not tuv.extras):
        return None
    return {"attrs": tuv.attrs, "extras": runs_to_data(tuv.extras)}


def tuv_from_data(data: dict | None, lang: str) -> Tuv:
    if data is None:
        return Tuv({XML_LANG: lang})
    return Tuv(dict(data["attrs"]), tags_from_data(data.get("extras", [])))


def tmx_data(unit: TranslationUnit) -> dict | None:
    """What a unit read from a TMX says beyond its segments, compactly; None for a unit
    Concordia made."""
    if unit.source_tuv is None:
        return None
    data: dict = {}
    if unit.attrs:
        data["attrs"] = dict(unit.attrs)
    if unit.extras:
        data["extras"] = runs_to_data(unit.extras)
    tuvs = [
        tuv_to_data(unit.source_tuv, unit.source_lang),
        tuv_to_data(unit.target_tuv, unit.target_lang),
    ]
    if tuvs != [None, None]:
        data["tuvs"] = tuvs
    if unit.target_first:
        data["target_first"] = True
    return data


@dataclass
class ImportResult:
    """What one import did: new units, duplicates merged into stored ones, stored units
    replaced (``keep_newest``, ``by_tuid``), units skipped and why."""

    imported: int = 0
    merged: int = 0
    skipped: int = 0
    skipped_reasons: dict[str, int] = field(default_factory=dict)
    replaced: int = 0
    generation: int = 0
    seconds: float = 0.0
    import_id: int = 0
    rule: str = MergeRule.MERGE.value

    def skip(self, reason: str, count: int = 1) -> None:
        self.skipped += count
        self.skipped_reasons[reason] = self.skipped_reasons.get(reason, 0) + count

    def as_dict(self) -> dict:
        return {
            "import_id": self.import_id,
            "rule": self.rule,
            "imported": self.imported,
            "merged": self.merged,
            "replaced": self.replaced,
            "skipped": self.skipped,
            "skipped_reasons": dict(self.skipped_reasons),
            "seconds": round(self.seconds, 3),
        }

    def keys(self) -> list[str]:
        """With ``__getitem__``, lets ``dict(result)`` give ``as_dict()``."""
        return list(self.as_dict())

    def __getitem__(self, key: str):
        return self.as_dict()[key]


@dataclass
class ImportRecord:
    """The audit of one import, as kept by the store."""

    id: int
    source: str
    rule: str
    started: str
    finished: str = ""
    state: str = "running"  # running, done, failed
    result: dict = field(default_factory=dict)
    header: dict | None = None  # the TMX header (attrs, extras, version), when there was one
    error: str = ""
    job: str = ""  # the job that made it, if a job did

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "source": self.source,
            "rule": self.rule,
            "started": self.started,
            "finished": self.finished,
            "state": self.state,
            **self.result,
            "error": self.error or None,
            "job": self.job or None,
        }


@dataclass
class UnitQuery:
    """Which units a deletion (or an export) takes; every given field must hold."""

    document: str | None = None
    speaker: str | None = None
    origin: str | None = None
    import_id: int | None = None
    created_since: str | None = None  # TMX date: imported at or after
    created_before: str | None = None
    contains: str | None = None  # text in either segment

    def is_empty(self) -> bool:
        return all(v is None for v in vars(self).values())


@dataclass
class Job:
    """A background job (batch alignment or import) as kept in the job table.

    ``owner``: the name of the key that made it. ``worker``, ``lease_until`` (seconds since
    the epoch) and ``attempts``: which process holds it, until when, and how many times it was
    claimed; ``cancel_requested``: someone asked to cancel it while it ran."""

    id: str
    state: str
    created: str
    updated: str
    options: dict
    total: int = 0
    done: int = 0
    failed: int = 0
    results: list | None = None
    error: str = ""
    memory: dict | None = None
    owner: str = ""
    worker: str = ""
    lease_until: float = 0.0
    attempts: int = 0
    cancel_requested: bool = False

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "kind": self.options.get("kind", "align"),
            "state": self.state,
            "created": self.created,
            "updated": self.updated,
            "owner": self.owner or None,
            "options": self.options,
            "progress": {"total": self.total, "done": self.done, "failed": self.failed},
            "pairs": self.results or [],
            "error": self.error or None,
            "memory": self.memory,
            "cancel_requested": self.cancel_requested,
        }


class JobTable(ABC):
    """The jobs of one memory, and their queue: the one truth about them for every process
    that serves the memory (no process keeps a queue of its own).

    A job goes ``queued`` → ``running`` → ``done`` / ``failed`` / ``cancelled``. A process runs
    a job only once ``claim`` gave it the job: the claim sets ``worker`` and a lease
    atomically, so exactly one process holds a job at a time. The holder ``renew``s the lease
    while it works and ends the job with ``finish``, which only the holder can do. A running
    job whose lease ran out (its process died, or hangs) is claimed again by the next
    ``claim``, ``attempts`` + 1; a holder that lost its job learns it from ``renew`` and
    ``finish`` and stops. Cancelling goes through the row (``request_cancel``): a queued job is
    cancelled at once, a running one is marked ``cancel_requested`` and its holder, seeing it
    in ``renew``, stops and ends it. Times are seconds since the epoch; implementations may
    use their database's clock for leases, as long as one clock decides them all.
    """

    @abstractmethod
    def insert(self, job: Job) -> None:
        """A new job as given: ``queued``, or ``running`` held by ``job.worker`` until
        ``job.lease_until`` (a job whose work already runs in a request)."""

    @abstractmethod
    def update(self, job_id: str, **fields) -> None:
        """Set these fields (``results``, ``memory``, ``options`` as JSON-able values)."""

    @abstractmethod
    def report(self, job_id: str, seq: int, report: dict, done: int, failed: int) -> None:
        """One pair's report (the ``seq``-th) and the job's counts."""

    @abstractmethod
    def get(self, job_id: str, offset: int = 0, limit: int = 1000) -> Job | None:
        """A job with its pair reports from ``offset`` (at most ``limit``)."""

    @abstractmethod
    def finished_before(self, stamp: str) -> list[str]:
        """Jobs done, failed or cancelled before ``stamp`` (``YYYY-MM-DDThh:mm:ssZ``)."""

    @abstractmethod
    def delete(self, job_id: str) -> None: ...

    @abstractmethod
    def active(self) -> list[str]:
        """Ids of queued and running jobs, oldest first."""

    @abstractmethod
    def claim(self, worker: str, lease_s: float) -> Job | None:
        """Give ``worker`` the oldest job that is queued, or running with its lease run out:
        it becomes ``running``, held by ``worker`` for ``lease_s`` seconds, ``attempts`` + 1
        (its pair reports are not read). None when there is none. Two processes claiming at
        once never get the same job (SQLite: one claiming ``UPDATE … WHERE state =
        'queued' …``; PostgreSQL: ``SELECT … FOR UPDATE SKIP LOCKED``)."""

    @abstractmethod
    def renew(self, job_id: str, worker: str, lease_s: float, **fields) -> Job | None:
        """Extend ``worker``'s lease on a running job to ``lease_s`` seconds from now and set
        ``fields`` (progress counts) with it; the job (without pair reports, its
        ``cancel_requested`` current), or None when ``worker`` no longer holds it (it ended,
        was deleted or was taken over)."""

    @abstractmethod
    def finish(self, job_id: str, worker: str, state: str, **fields) -> bool:
        """End a running job held by ``worker`` in ``state`` (done, failed, cancelled) with
        ``fields``; False, and nothing written, when ``worker`` no longer holds it."""

    @abstractmethod
    def release(self, job_id: str, worker: str) -> bool:
        """Give a running job held by ``worker`` back to the queue (``queued``, no holder),
        as a process stopping cleanly does; False when it does not hold it."""

    @abstractmethod
    def request_cancel(self, job_id: str) -> Job | None:
        """Cancel a job: a queued one becomes ``cancelled`` at once; a running one gets
        ``cancel_requested`` (its holder stops it). The job as it then is (without pair
        reports), None when there is none; a finished job is left as it is."""

    @abstractmethod
    def close(self) -> None: ...


class ReviewNotFound(StoreError):
    def __init__(self, review_id: str):
        super().__init__("review_not_found", f"no review {review_id}", 404)


@dataclass
class ReviewRow:
    """A review's row: what it is and its version; ``snapshot_version``: the version its
    stored state was written at (the journal holds the changes since)."""

    id: str
    name: str
    origin: str
    min_score: float
    created_at: str
    updated_at: str
    version: int
    finished_at: str
    finished_by: str
    snapshot_version: int
    owner: str = ""  # the name of the key that opened it ("" for reviews from before owners)


class ReviewEdit(ABC):
    """One review inside one transaction: what a change reads and writes, all or nothing.

    The review's state and its journal entries are opaque JSON to the store; the review
    model (:mod:`service.review.model`) gives them meaning."""

    row: ReviewRow

    @abstractmethod
    def snapshot(self) -> str:
        """The state stored at ``row.snapshot_version``."""

    @abstractmethod
    def journal(self) -> list[tuple[int, int, str, int]]:
        """(start, removed, added, next_id) of each change since the snapshot, in order."""

    @abstractmethod
    def add_journal(self, version: int, start: int, removed: int, added: str, next_id: int):
        ...

    @abstractmethod
    def write_snapshot(self, state: str, version: int) -> None:
        """Store the whole state at ``version``; the journal before it is dropped."""

    @abstractmethod
    def set_version(self, version: int, updated_at: str) -> None: ...

    @abstractmethod
    def log_edit(self, op: str, start: int, removed: str, added: str, at: str, by: str,
                 keep: int | None = None):
        """A new edit in the history; edits undone before it can no longer be redone, and only
        the last ``keep`` edits are kept (all when None)."""

    @abstractmethod
    def history_step(self, which: str) -> tuple[int, str, str] | None:
        """Mark the last edit undone (``undo``) or the first undone one redone (``redo``);
        its (start, removed, added), or None when there is none."""

    @abstractmethod
    def finish(self, at: str, by: str) -> None: ...


class ReviewTable(ABC):
    """Where the alignment editor's reviews are kept, beside the units."""

    @abstractmethod
    def create(self, review_id: str, name: str, origin: str, min_score: float, state: str,
               now: str, owner: str = "") -> None: ...

    @abstractmethod
    def list(self, limit: int) -> list[ReviewRow]:
        """The reviews, most recently changed first."""

    @abstractmethod
    def delete(self, review_id: str) -> None:
        """Raises ``ReviewNotFound``."""

    @abstractmethod
    def history(self, review_id: str) -> tuple[int, int]:
        """How many edits are done and how many undone."""

    @abstractmethod
    def reading(self, review_id: str) -> AbstractContextManager[ReviewEdit]:
        """The review as of one moment (nothing may be written); raises ``ReviewNotFound``."""

    @abstractmethod
    def editing(self, review_id: str) -> AbstractContextManager[ReviewEdit]:
        """The review in a write transaction that other writers wait for; committed when the
        block ends, rolled back when it raises. Raises ``ReviewNotFound``."""


class TMStore(ABC):
    """The translation memory: units, their import audit, tombstones, generation, jobs."""

    max_segment_chars: int

    # -- writes
    @abstractmethod
    def import_units(
        self,
        units: Iterable[TranslationUnit],
        *,
        source: str = "",
        rule: MergeRule | str = MergeRule.MERGE,
        header: dict | None = None,
        progress=None,
        skipped: Counter[str] | None = None,
        chunk: int = 2000,
        job: str = "",
    ) -> ImportResult:
        """Add ``units`` in one transaction under ``rule``; any exception from the iterator
        rolls it all back (the audit then records the failure). Units that are not
        Chinese↔English, have an empty side or a side over the segment limit are skipped and
        counted by reason, with those in ``skipped`` (what the reader left out, filled as it
        reads). ``progress(units_read)`` is called between chunks.

        ``job``: the job this import is; its audit row records it in the import's own
        transaction, and at most one import of a job ever commits: raises ``AlreadyImported``
        (nothing changed) when one has, so a job run again after a crash sees its import in."""

    def import_tmx(
        self,
        tmx: str | Path | BinaryIO,
        *,
        source: str = "",
        rule: MergeRule | str = MergeRule.MERGE,
        progress=None,
        job: str = "",
    ) -> ImportResult:
        """Parse a TMX with ``aligner.tmx.read_tmx`` and import it, keeping its header in the
        audit. A ``TMXError`` anywhere in the file (a tuv in a language other than Chinese or
        English included) rolls the whole import back."""
        from aligner.tmx import read_tmx

        if not source and isinstance(tmx, str | Path):
            source = Path(tmx).name
        header: dict = {}
        left_out: Counter[str] = Counter()  # tu the reader skips, counted as it logs them

        def keep(h) -> None:
            header.update(attrs=h.attrs, extras=runs_to_data(h.extras), version=h.version)

        units = read_tmx(tmx, on_header=keep, only_langs=("zh", "en"), skipped=left_out)
        return self.import_units(
            units, source=source, rule=rule, header=header, progress=progress, skipped=left_out,
            job=job,
        )

    def bulk_import_tmx(
        self, path: Path, *, rule: MergeRule | str = MergeRule.MERGE, progress=None
    ) -> ImportResult:
        """Import a TMX of any size without holding the write lock throughout: committed in
        chunks, resumed after a crash where it stopped (no unit twice, none lost), taken
        back whole on bad input. A store that cannot do better imports it in one
        transaction (``import_tmx``)."""
        return self.import_tmx(path, rule=rule, progress=progress)

    @abstractmethod
    def delete(self, ids: Iterable[int] = (), *, document: str | None = None) -> list[int]:
        """Delete units by id and/or by document; returns the ids actually deleted."""

    @abstractmethod
    def delete_where(self, query: UnitQuery) -> list[int]:
        """Delete the units ``query`` selects (refused when it selects everything)."""

    @abstractmethod
    def edit(
        self,
        unit_id: int,
        version: int,
        *,
        zh: list[Run] | None = None,
        en: list[Run] | None = None,
        props: dict[str, str] | None = None,
        changeid: str = "",
    ) -> StoredUnit:
        """Change a unit's segments (as runs) and/or properties if it is still at
        ``version``; sets ``changedate`` (now) and ``changeid``. A text change gives the
        unit a new id (the old one is tombstoned, replaced by it). Raises UnitGone (deleted,
        or changed into another id) or EditConflict (edited meanwhile)."""

    @abstractmethod
    def record_usage(self, unit_id: int, when: str | None = None) -> StoredUnit:
        """Count one use of a unit's match: ``usagecount`` + 1, ``lastusagedate``."""

    # -- reads
    @property
    @abstractmethod
    def generation(self) -> int:
        """Bumped by every committed change."""

    @abstractmethod
    def count(self) -> int: ...

    @abstractmethod
    def max_id(self) -> int: ...

    @property
    @abstractmethod
    def identity(self) -> str:
        """What tells this memory from any other (made once, with the memory): indexes saved
        for one memory are never served for another put in its place."""

    @abstractmethod
    def last_id(self) -> int:
        """The largest id ever given to a unit, deleted ones included (ids are never
        reused): indexes that hold units up to it hold everything but tombstones."""

    @abstractmethod
    def get(self, ids: Iterable[int]) -> dict[int, StoredUnit]:
        """The units with these ids that exist, by id."""

    @abstractmethod
    def iter_segment_batches(
        self, after_id: int = 0, batch: int = 5000
    ) -> Iterator[list[tuple[int, str, str]]]:
        """(id, zh, en) plain text of units with id > ``after_id`` in id order, in lists."""

    @abstractmethod
    def deleted_since(self, generation: int) -> list[int]:
        """Ids of units deleted (or replaced) by changes after ``generation``."""

    @abstractmethod
    def replaced_by(self, unit_id: int) -> int | None:
        """The id a changed unit now has, following chains of edits; None if deleted."""

    @abstractmethod
    def iter_units(
        self,
        *,
        document: str | None = None,
        speaker: str | None = None,
        created_since: str | None = None,
        import_id: int | None = None,
        batch: int = 2000,
    ) -> Iterator[StoredUnit]:
        """Units in id order, optionally filtered, streamed."""

    @abstractmethod
    def concordance(
        self,
        term: str,
        lang: str | None = None,
        *,
        limit: int = 20,
        offset: int = 0,
        among: Sequence[int] | None = None,
        after: int = 0,
        match=None,
        document: str | None = None,
        speaker: str | None = None,
        count: int = 0,
    ) -> tuple[list[StoredUnit], int]:
        """(one page of units whose zh or en side, or ``lang``'s, holds ``term``, in id
        order; how many there are, counting up to ``count`` + 1: 0 stops at the page).

        Width, punctuation variants and case are ignored (``service.memory.matching.fold_case``);
        ``match(text, lang) -> bool`` narrows further (whole words). ``among``: ids an index
        says may hold it (none above ``after``); units above ``after`` are not indexed yet
        and are read too."""

    @abstractmethod
    def imports(self, limit: int = 50) -> list[ImportRecord]:
        """The latest imports, newest first."""

    @abstractmethod
    def import_record(self, import_id: int) -> ImportRecord | None: ...

    @abstractmethod
    def job_import(self, job_id: str) -> ImportRecord | None:
        """The committed import of job ``job_id``, if one committed."""

    @abstractmethod
    def abandon_imports(self, job_id: str | None = None) -> int:
        """Mark as failed the audit rows of imports cut off before they ended (their process
        was killed): the rows of job ``job_id`` still ``running`` (its lease ran out: nobody
        runs it), or, without one, the rows still ``running`` whose process is known to be
        gone. How many rows changed."""

    @abstractmethod
    def stats(self) -> dict: ...

    @abstractmethod
    def jobs(self) -> JobTable:
        """The job table kept with this memory."""

    @abstractmethod
    def reviews(self) -> ReviewTable:
        """The review table kept with this memory."""

    # Whether ``wait_for_change`` is woken by writes of other processes (PostgreSQL's
    # NOTIFY); without, readers poll.
    change_notices = False

    def wait_for_change(self, timeout: float, stop: threading.Event) -> bool:
        """Return when the memory may have been changed by another process (True), at the
        latest after ``timeout`` s or once ``stop`` is set (False). A store without change
        notices (SQLite) waits the whole time."""
        stop.wait(timeout)
        return False

    @abstractmethod
    def close(self) -> None: ...
