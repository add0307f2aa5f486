"""The translation memory on disk: one SQLite database (WAL) in the data folder.

Units keep both segments (stored as the Chinese and the English side, with the language codes
and direction they came in), provenance properties, creation date and a content hash of the
two segments: importing a pair that is already there merges its properties into the stored
unit instead of storing it twice.

An import is one transaction fed from an iterator (``read_tmx`` parses lazily), so a file
that fails halfway, or a crash, leaves the memory as it was, and memory use stays flat however
many units come in. Every committed change bumps a ``generation`` counter, and deletions leave
tombstones, so derived indexes (fuzzy n-grams, FAISS) can tell that they are stale and catch up.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import re
import sqlite3
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from aligner.models import TranslationUnit

DB_NAME = "tm.sqlite"
_TMX_DATE = re.compile(r"\d{8}T\d{6}Z")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS unit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hash TEXT NOT NULL UNIQUE,
    zh TEXT NOT NULL,
    en TEXT NOT NULL,
    source_lang TEXT NOT NULL,
    target_lang TEXT NOT NULL,
    props TEXT NOT NULL DEFAULT '{}',
    document TEXT NOT NULL DEFAULT '',
    speaker TEXT NOT NULL DEFAULT '',
    creationdate TEXT NOT NULL DEFAULT '',
    creationid TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    origin TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS unit_document ON unit(document);
CREATE INDEX IF NOT EXISTS unit_speaker ON unit(speaker);
CREATE TABLE IF NOT EXISTS tombstone (
    unit_id INTEGER PRIMARY KEY,
    generation INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('generation', '0');
"""

_UPSERT = """
INSERT INTO unit (hash, zh, en, source_lang, target_lang, props, document, speaker,
                  creationdate, creationid, created_at, origin)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(hash) DO UPDATE SET
    props = json_patch(excluded.props, unit.props),
    document = CASE WHEN unit.document = '' THEN excluded.document ELSE unit.document END,
    speaker = CASE WHEN unit.speaker = '' THEN excluded.speaker ELSE unit.speaker END,
    creationdate = CASE
        WHEN unit.creationdate = '' OR
             (excluded.creationdate != '' AND excluded.creationdate < unit.creationdate)
        THEN excluded.creationdate ELSE unit.creationdate END
"""

_COLUMNS = (
    "id, hash, zh, en, source_lang, target_lang, props, document, speaker, "
    "creationdate, creationid, created_at, origin"
)

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


def lang_family(code: str) -> str:
    """"zh-CN" → "zh", "en_US" → "en"."""
    return code.strip().lower().replace("_", "-").split("-")[0]


def normalise_text(text: str) -> str:
    """NFC with runs of whitespace collapsed: the form segments are compared and hashed in."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def content_hash(zh: str, en: str) -> str:
    """The identity of a unit: both segments, whitespace-normalised."""
    return hashlib.sha256(f"{normalise_text(zh)}\x00{normalise_text(en)}".encode()).hexdigest()


def _first_prop(props: dict[str, str], names: tuple[str, ...]) -> str:
    for name in names:
        if props.get(name):
            return props[name]
    return ""


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

    @property
    def source(self) -> str:
        return self.side(lang_family(self.source_lang))

    @property
    def target(self) -> str:
        return self.side(lang_family(self.target_lang))

    def side(self, lang: str) -> str:
        """The segment in ``lang`` ("zh" or "en")."""
        return self.zh if lang == "zh" else self.en

    def to_translation_unit(self) -> TranslationUnit:
        return TranslationUnit(
            source=self.source,
            target=self.target,
            source_lang=self.source_lang,
            target_lang=self.target_lang,
            props=dict(self.props),
            creationdate=self.creationdate,
            creationid=self.creationid,
        )


@dataclass
class ImportResult:
    """What one import did: new units, duplicates merged into existing ones, units skipped."""

    imported: int = 0
    merged: int = 0
    skipped: int = 0
    skipped_reasons: dict[str, int] = field(default_factory=dict)
    generation: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            "imported": self.imported,
            "merged": self.merged,
            "skipped": self.skipped,
            "skipped_reasons": dict(self.skipped_reasons),
            "seconds": round(self.seconds, 3),
        }

    def keys(self) -> list[str]:
        """With ``__getitem__``, lets ``dict(result)`` give ``as_dict()``."""
        return list(self.as_dict())

    def __getitem__(self, key: str):
        return self.as_dict()[key]


def _row_to_unit(row: tuple) -> StoredUnit:
    return StoredUnit(
        id=row[0],
        hash=row[1],
        zh=row[2],
        en=row[3],
        source_lang=row[4],
        target_lang=row[5],
        props=json.loads(row[6]),
        document=row[7],
        speaker=row[8],
        creationdate=row[9],
        creationid=row[10],
        created_at=row[11],
        origin=row[12],
    )


def _now_tmx() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


class TMStore:
    """Translation memory in ``<data_dir>/tm.sqlite``; safe to share between threads.

    Reads use one connection per thread; writes are serialised by a lock and SQLite's own
    locking (other processes or modules writing the same file wait up to 30 s).
    """

    def __init__(self, data_dir: Path | str, *, max_segment_chars: int = 2000):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.data_dir / DB_NAME
        self.max_segment_chars = max_segment_chars
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        # WAL is a property of the file, set once; workers starting together take turns.
        with process_lock(self.data_dir / "tm.lock"):
            conn = self.connect()
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            conn.close()

    # -- connections -------------------------------------------------------------------
    def connect(self) -> sqlite3.Connection:
        """A new connection to the store's database (in WAL mode, 30 s busy timeout).

        For modules that keep their own tables beside the units (e.g. jobs); the caller
        closes it.
        """
        conn = sqlite3.connect(
            str(self.path), timeout=30, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.connect()
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    # -- writes ------------------------------------------------------------------------
    def _row(self, unit: TranslationUnit, created_at: str, origin: str) -> tuple | str:
        """The insert row for ``unit``, or the reason it is skipped."""
        src, tgt = lang_family(unit.source_lang), lang_family(unit.target_lang)
        if {src, tgt} != {"zh", "en"}:
            return "not_zh_en"
        zh, en = (unit.source, unit.target) if src == "zh" else (unit.target, unit.source)
        zh, en = zh.strip(), en.strip()
        if not zh or not en:
            return "empty_segment"
        if len(zh) > self.max_segment_chars or len(en) > self.max_segment_chars:
            return "segment_too_long"
        props = {str(k): str(v) for k, v in (unit.props or {}).items()}
        return (
            content_hash(zh, en),
            zh,
            en,
            unit.source_lang,
            unit.target_lang,
            json.dumps(props, ensure_ascii=False, sort_keys=True),
            _first_prop(props, DOCUMENT_PROPS),
            _first_prop(props, SPEAKER_PROPS),
            unit.creationdate if _TMX_DATE.fullmatch(unit.creationdate or "") else "",
            unit.creationid or "",
            created_at,
            origin,
        )

    def import_units(
        self, units: Iterable[TranslationUnit], *, source: str = "", chunk: int = 2000
    ) -> ImportResult:
        """Add ``units`` in one transaction; any exception from the iterator rolls it all back.

        ``source`` says where they came from (an upload's name, "job:<id>"); it is kept
        with each new unit as its ``origin``.

        Units that are not Chinese↔English, have an empty side or a side longer than the
        segment limit are skipped and counted by reason.
        """
        started = time.perf_counter()
        result = ImportResult()
        created_at = _now_tmx()
        with self._write_lock:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                before = conn.execute("SELECT COALESCE(MAX(id), 0) FROM unit").fetchone()[0]
                accepted = 0
                batch: list[tuple] = []
                for unit in units:
                    row = self._row(unit, created_at, source)
                    if isinstance(row, str):
                        result.skipped += 1
                        result.skipped_reasons[row] = result.skipped_reasons.get(row, 0) + 1
                        continue
                    batch.append(row)
                    accepted += 1
                    if len(batch) >= chunk:
                        conn.executemany(_UPSERT, batch)
                        batch.clear()
                if batch:
                    conn.executemany(_UPSERT, batch)
                result.imported = conn.execute(
                    "SELECT COUNT(*) FROM unit WHERE id > ?", (before,)
                ).fetchone()[0]
                result.merged = accepted - result.imported
                result.generation = self._bump(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        result.seconds = time.perf_counter() - started
        return result

    def import_tmx(self, tmx: str | Path | BinaryIO, *, source: str = "") -> ImportResult:
        """Parse a TMX (path or binary file) with ``aligner.tmx.read_tmx`` and import it.

        A ``TMXError`` anywhere in the file rolls the whole import back.
        """
        from aligner.tmx import read_tmx

        if not source and isinstance(tmx, str | Path):
            source = Path(tmx).name
        left_out: Counter[str] = Counter()  # tu the reader skips, counted as it logs them
        result = self.import_units(read_tmx(tmx, skipped=left_out), source=source)
        for reason, count in left_out.items():
            result.skipped += count
            result.skipped_reasons[reason] = result.skipped_reasons.get(reason, 0) + count
        return result

    def delete(self, ids: Iterable[int] = (), *, document: str | None = None) -> list[int]:
        """Delete units by id and/or by document; returns the ids actually deleted."""
        ids = [int(i) for i in ids]
        with self._write_lock:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                found: list[int] = []
                for start in range(0, len(ids), 500):
                    part = ids[start : start + 500]
                    marks = ",".join("?" * len(part))
                    found += [
                        r[0]
                        for r in conn.execute(f"SELECT id FROM unit WHERE id IN ({marks})", part)
                    ]
                if document is not None:
                    found += [
                        r[0]
                        for r in conn.execute("SELECT id FROM unit WHERE document = ?", (document,))
                    ]
                found = sorted(set(found))
                if not found:
                    conn.execute("ROLLBACK")
                    return []
                generation = self._bump(conn)
                conn.executemany("DELETE FROM unit WHERE id = ?", [(i,) for i in found])
                conn.executemany(
                    "INSERT OR REPLACE INTO tombstone VALUES (?, ?)",
                    [(i, generation) for i in found],
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return found

    @staticmethod
    def _bump(conn: sqlite3.Connection) -> int:
        conn.execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"
        )
        return int(conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])

    # -- reads -------------------------------------------------------------------------
    @property
    def generation(self) -> int:
        """Bumped by every committed import or delete."""
        row = self._conn().execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0])

    def count(self) -> int:
        return self._conn().execute("SELECT COUNT(*) FROM unit").fetchone()[0]

    def max_id(self) -> int:
        return self._conn().execute("SELECT COALESCE(MAX(id), 0) FROM unit").fetchone()[0]

    def get(self, ids: Iterable[int]) -> dict[int, StoredUnit]:
        """The units with these ids that exist, by id."""
        ids = [int(i) for i in ids]
        found: dict[int, StoredUnit] = {}
        conn = self._conn()
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ",".join("?" * len(part))
            for row in conn.execute(f"SELECT {_COLUMNS} FROM unit WHERE id IN ({marks})", part):
                found[row[0]] = _row_to_unit(row)
        return found

    def iter_segment_batches(
        self, after_id: int = 0, batch: int = 5000
    ) -> Iterator[list[tuple[int, str, str]]]:
        """(id, zh, en) of units with id > ``after_id`` in id order, streamed in lists of
        at most ``batch`` rows."""
        conn = self.connect()
        try:
            last = after_id
            while True:
                rows = conn.execute(
                    "SELECT id, zh, en FROM unit WHERE id > ? ORDER BY id LIMIT ?", (last, batch)
                ).fetchall()
                if not rows:
                    return
                yield rows
                last = rows[-1][0]
        finally:
            conn.close()

    def deleted_since(self, generation: int) -> list[int]:
        """Ids of units deleted by changes after ``generation``."""
        rows = self._conn().execute(
            "SELECT unit_id FROM tombstone WHERE generation > ?", (generation,)
        )
        return [r[0] for r in rows]

    def iter_units(
        self,
        *,
        document: str | None = None,
        speaker: str | None = None,
        created_since: str | None = None,
        batch: int = 2000,
    ) -> Iterator[StoredUnit]:
        """Units in id order, optionally filtered, streamed in batches from the database."""
        where, params = ["id > ?"], [0]
        if document is not None:
            where.append("document = ?")
            params.append(document)
        if speaker is not None:
            where.append("speaker = ?")
            params.append(speaker)
        if created_since is not None:
            where.append("created_at >= ?")
            params.append(created_since)
        sql = f"SELECT {_COLUMNS} FROM unit WHERE {' AND '.join(where)} ORDER BY id LIMIT ?"
        conn = self.connect()
        try:
            while True:
                rows = conn.execute(sql, (*params, batch)).fetchall()
                if not rows:
                    return
                for row in rows:
                    yield _row_to_unit(row)
                params[0] = rows[-1][0]
        finally:
            conn.close()

    def concordance(
        self,
        term: str,
        lang: str | None = None,
        *,
        limit: int = 20,
        offset: int = 0,
        among: Sequence[int] | None = None,
        after: int = 0,
    ) -> list[StoredUnit]:
        """Units whose zh or en side (or only ``lang``'s side) contains ``term``, in id order.

        English is matched case-insensitively, Chinese exactly. ``among``: ids (ascending,
        none above ``after``) that an index found may contain it; then only those are read,
        and of the units above ``after`` (not indexed yet) those that contain it.
        """
        checks = []
        params: list = []
        if lang in (None, "zh"):
            checks.append("instr(zh, ?) > 0")
            params.append(term)
        if lang in (None, "en"):
            checks.append("instr(lower(en), ?) > 0")
            params.append(term.lower())
        sql = f"SELECT {_COLUMNS} FROM unit WHERE id > ? AND ({' OR '.join(checks)}) ORDER BY id"
        if among is None:
            rows = self._conn().execute(sql + " LIMIT ? OFFSET ?", (0, *params, limit, offset))
            return [_row_to_unit(r) for r in rows]
        wanted, found = offset + limit, []
        folded = term.lower()
        for start in range(0, len(among), 500):
            part = [int(i) for i in among[start : start + 500]]
            units = self.get(part)
            for uid in part:
                unit = units.get(uid)
                if unit is not None and (
                    (lang in (None, "zh") and term in unit.zh)
                    or (lang in (None, "en") and folded in unit.en.lower())
                ):
                    found.append(unit)
            if len(found) >= wanted:
                return found[offset:wanted]
        rows = self._conn().execute(sql + " LIMIT ?", (after, *params, wanted - len(found)))
        found += [_row_to_unit(r) for r in rows]
        return found[offset:wanted]

    def stats(self) -> dict:
        conn = self._conn()
        total = conn.execute("SELECT COUNT(*) FROM unit").fetchone()[0]
        directions = {
            f"{s}>{t}": n
            for s, t, n in conn.execute(
                "SELECT source_lang, target_lang, COUNT(*) FROM unit GROUP BY 1, 2 ORDER BY 3 DESC"
            )
        }
        documents = conn.execute(
            "SELECT COUNT(DISTINCT document) FROM unit WHERE document != ''"
        ).fetchone()[0]
        speakers = conn.execute(
            "SELECT COUNT(DISTINCT speaker) FROM unit WHERE speaker != ''"
        ).fetchone()[0]
        last = conn.execute("SELECT MAX(created_at) FROM unit").fetchone()[0]
        size = sum(
            p.stat().st_size
            for p in self.data_dir.glob(DB_NAME + "*")
            if p.is_file()
        )
        return {
            "units": total,
            "directions": directions,
            "documents": documents,
            "speakers": speakers,
            "last_import": last or "",
            "generation": self.generation,
            "database_bytes": size,
        }
