"""The SQLite implementation of the store: one database (WAL) in the data folder.

Units keep both segments as plain text (``zh``, ``en``: what indexes read), their runs when
they have markup (``zh_runs``, ``en_runs``, JSON), what their TMX said beyond that (``tmx``,
JSON), languages as written (``en-GB`` stays), provenance, a content hash (identity for
``merge``) and a source key (identity for ``keep_newest``). Imports are one transaction fed
from an iterator (``read_tmx`` parses lazily), so a file that fails halfway, or a crash,
leaves the memory as it was, and memory use stays flat however many units come in; each one
is logged in ``import_log``. Deletions and text edits leave tombstones.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from aligner.errors import InputError
from aligner.models import Run, TranslationUnit
from service.memory.matching import fold_case
from service.memory.migrations import VERSION_TABLE, pending
from service.memory.rows import (
    COLUMNS,
    DATE,
    DOC,
    EN_RUNS,
    HASH,
    INSERT_COLUMNS,
    PROPS,
    SPEAKER,
    TMX,
    ZH_RUNS,
    ImportOps,
    apply_chunk,
    edited_row,
    now_tmx,
    record_from_row,
    row_to_unit,
    to_json,
    unit_date,
    unit_row,
)
from service.memory.sqlite_reviews import SQLiteReviewTable
from service.memory.store import (
    AlreadyImported,
    EditConflict,
    ImportRecord,
    ImportResult,
    Job,
    JobTable,
    MergeRule,
    ReviewTable,
    StoredUnit,
    StoreError,
    TMStore,
    UnitGone,
    UnitQuery,
    process_lock,
)

DB_NAME = "tm.sqlite"
# Columns import_log gained before migrations were versioned, added to such files first.
_IMPORT_LOG_ADDED = (("job", "TEXT"), ("runner", "TEXT NOT NULL DEFAULT ''"))

# Jobs live in a database of their own (its schema: migrations/sqlite-jobs): an import job
# writes its progress, and its runner renews its lease, while its import holds the memory's
# write transaction.
JOBS_DB_NAME = "jobs.sqlite"
_JOB_ADDED = (
    ("owner", "TEXT NOT NULL DEFAULT ''"),
    ("worker", "TEXT NOT NULL DEFAULT ''"),
    ("lease_until", "REAL NOT NULL DEFAULT 0"),
    ("attempts", "INTEGER NOT NULL DEFAULT 0"),
    ("cancel_requested", "INTEGER NOT NULL DEFAULT 0"),
)
_JOB_FIELDS = (
    "id, state, created, updated, options, total, done, failed, results, error, memory, "
    "owner, worker, lease_until, attempts, cancel_requested"
)
_CLAIMABLE = "(state = 'queued' OR (state = 'running' AND lease_until < ?))"
_HELD = "state = 'running' AND worker = ?"


def _add_columns(conn: sqlite3.Connection, table: str, added) -> None:
    """Add the columns a file written by an earlier version lacks."""
    have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
    for name, declaration in added:
        if name not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {declaration}")


def _started(pid: int) -> str:
    """When process ``pid`` started (clock ticks after boot, from /proc); "" where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def this_process() -> str:
    """Who runs an import: ``host:pid:start``, so that a SQLite store (one host) can tell
    whether that process still runs, even where a restart reuses its pid (a container)."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_started(pid)}"


def _gone(runner: str) -> bool:
    """Whether the process ``runner`` names ran on this host and has ended."""
    host, pid, started = (runner.split(":") + ["", "", ""])[:3]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, but another user's
        pass
    return bool(started) and _started(int(pid)) != started
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, but another user's
        return False
    return False

_INSERT = (
    f"INSERT INTO unit ({', '.join(INSERT_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(INSERT_COLUMNS))})"
)
_MERGE = """
UPDATE unit SET
    props = json_patch(?, props),
    document = CASE WHEN document = '' THEN ? ELSE document END,
    speaker = CASE WHEN speaker = '' THEN ? ELSE speaker END,
    creationdate = CASE
        WHEN creationdate = '' OR (? != '' AND ? < creationdate) THEN ? ELSE creationdate END
WHERE id = ?
"""
def _migrate(conn: sqlite3.Connection, kind: str, adopt: dict[str, tuple]) -> None:
    """Apply the ``kind`` migrations this database lacks, all in one transaction; a file from
    before versioned migrations first gets the columns ``adopt`` names for its tables.
    Nothing is written when none is lacking: a server starting while another process holds
    the write transaction (a long import) must not wait for it."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    current = 0
    if "schema_version" in tables:
        current = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
    todo = pending(kind, current)
    if not todo:
        return
    conn.execute(VERSION_TABLE)
    if current == 0:
        for table, added in adopt.items():
            if table in tables:
                _add_columns(conn, table, added)
    script = "\n".join(m.sql for m in todo)
    try:
        conn.executescript(
            f"BEGIN IMMEDIATE;\n{script}\nDELETE FROM schema_version;\n"
            f"INSERT INTO schema_version VALUES ({todo[-1].version});\nCOMMIT;"
        )
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


class SQLiteStore(TMStore):
    """Translation memory in ``<data_dir>/tm.sqlite``; safe to share between threads.

    Reads use one connection per thread; writes are serialised by a lock and SQLite's own
    locking (other processes writing the same file wait up to 30 s). A thread's connection is
    closed once the thread has ended: the server's thread pool retires idle threads and starts
    new ones, and each connection keeps its own page cache.
    """

    def __init__(self, data_dir: Path | str, *, max_segment_chars: int = 2000):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.data_dir / DB_NAME
        self.max_segment_chars = max_segment_chars
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._all: dict[threading.Thread, sqlite3.Connection] = {}
        self._all_lock = threading.Lock()
        # WAL is a property of the file, set once; workers starting together take turns.
        with process_lock(self.data_dir / "tm.lock"):
            conn = self._connect()
            conn.execute("PRAGMA journal_mode=WAL")
            columns = {r[1] for r in conn.execute("PRAGMA table_info(unit)")}
            if columns and "zh_fold" not in columns:
                conn.close()
                raise StoreError(
                    "old_store",
                    f"{self.path} was written by an older Concordia (store format 1); "
                    "export it with that version and import the TMX into a new data folder",
                )
            try:
                _migrate(conn, "sqlite", {"import_log": _IMPORT_LOG_ADDED})
            finally:
                conn.close()
        self._jobs: SQLiteJobTable | None = None
        self._reviews: SQLiteReviewTable | None = None

    # -- connections -------------------------------------------------------------------
    def _connect(self, path: Path | None = None) -> sqlite3.Connection:
        conn = sqlite3.connect(
            str(path or self.path), timeout=30, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._all_lock:
                for thread in [t for t in self._all if not t.is_alive()]:
                    self._all.pop(thread).close()
                self._all[threading.current_thread()] = conn
        return conn

    def close(self) -> None:
        if self._jobs is not None:
            self._jobs.close()
        with self._all_lock:
            for conn in self._all.values():
                conn.close()
            self._all.clear()
        self._local = threading.local()

    def jobs(self) -> JobTable:
        if self._jobs is None:
            self._jobs = SQLiteJobTable(lambda: self._connect(self.data_dir / JOBS_DB_NAME))
        return self._jobs

    def reviews(self) -> ReviewTable:
        if self._reviews is None:
            self._reviews = SQLiteReviewTable(self._connect)
        return self._reviews

    # -- writes ------------------------------------------------------------------------
    def _row(self, unit: TranslationUnit, created_at: str, origin: str, import_id: int):
        """The insert row for ``unit``, or the reason it is skipped."""
        return unit_row(unit, created_at, origin, import_id, self.max_segment_chars)

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
        started = time.perf_counter()
        rule = MergeRule(rule)
        result = ImportResult(rule=rule.value)
        created_at = now_tmx()
        if job and (done := self.job_import(job)) is not None:
            raise AlreadyImported(done)
        import_id = self._log_start(source, rule, created_at, job)
        result.import_id = import_id
        try:
            with self._write_lock:
                conn = self._conn()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if job and (done := self._job_import(conn, job)) is not None:
                        raise AlreadyImported(done)  # committed meanwhile, by another process
                    seen = 0
                    batch: list[list] = []
                    for unit in units:
                        seen += 1
                        row = self._row(unit, created_at, source, import_id)
                        if isinstance(row, str):
                            result.skip(row)
                            continue
                        row.append(unit_date(unit.attrs or {}, row[DATE]))
                        batch.append(row)
                        if len(batch) >= chunk:
                            self._apply(conn, batch, rule, result)
                            batch.clear()
                            if progress is not None:
                                progress(seen)
                    if batch:
                        self._apply(conn, batch, rule, result)
                    for reason, count in (skipped or {}).items():
                        result.skipped += count
                        result.skipped_reasons[reason] = (
                            result.skipped_reasons.get(reason, 0) + count
                        )
                    result.generation = self._bump(conn)
                    result.seconds = time.perf_counter() - started
                    self._log_end(conn, import_id, result.as_dict(), header)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:  # a failed COMMIT (full disk) rolled back already
                        conn.execute("ROLLBACK")
                    raise
        except BaseException as exc:
            result.seconds = time.perf_counter() - started
            reason = str(exc) if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
            self._log_failed(import_id, reason)
            raise
        if progress is not None:
            progress(seen)
        return result

    def _apply(self, conn: sqlite3.Connection, rows: list[list], rule: MergeRule, result) -> None:
        """Store one chunk of rows under ``rule``."""

        def insert(rows: list[list]) -> list[int]:
            conn.executemany(_INSERT, rows)
            # One writer (BEGIN IMMEDIATE): the rows got the ids up to the largest, in order.
            last = conn.execute("SELECT MAX(id) FROM unit").fetchone()[0]
            return list(range(last - len(rows) + 1, last + 1))

        def merge(row: list, unit_id: int) -> None:
            date = row[DATE]
            conn.execute(_MERGE, (row[PROPS], row[DOC], row[SPEAKER], date, date, date, unit_id))

        ops = ImportOps(
            existing=lambda column, values, with_date: self._existing(
                conn, column, values, with_date=with_date
            ),
            insert=insert,
            merge=merge,
            retire=lambda ids: self._tombstone(conn, ids, None),
            stored=lambda unit_id: conn.execute(
                "SELECT hash, props, tmx FROM unit WHERE id = ?", (unit_id,)
            ).fetchone(),
        )
        apply_chunk(ops, rows, rule, result)

    @staticmethod
    def _existing(conn, column: str, values: list[str], *, with_date: bool = False) -> dict:
        found: dict = {}
        values = list(dict.fromkeys(values))
        what = "id, creationdate, tmx" if with_date else "id"
        for start in range(0, len(values), 500):
            part = values[start : start + 500]
            marks = ",".join("?" * len(part))
            for row in conn.execute(
                f"SELECT {column}, {what} FROM unit WHERE {column} IN ({marks}) ORDER BY id", part
            ):
                if with_date:
                    attrs = (json.loads(row[3]) if row[3] else {}).get("attrs", {})
                    found[row[0]] = (row[1], unit_date(attrs, row[2]))
                else:
                    found.setdefault(row[0], row[1])
        return found

    def _tombstone(self, conn, ids: list[int], replaced_by: int | None) -> None:
        row = conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        generation = int(row[0])
        conn.executemany("DELETE FROM unit WHERE id = ?", [(i,) for i in ids])
        conn.executemany(
            "INSERT OR REPLACE INTO tombstone VALUES (?, ?, ?)",
            [(i, generation + 1, replaced_by) for i in ids],
        )

    def _log_start(self, source: str, rule: MergeRule, now: str, job: str) -> int:
        with self._write_lock:
            cur = self._conn().execute(
                "INSERT INTO import_log (source, rule, started, state, job, runner) "
                "VALUES (?, ?, ?, 'running', ?, ?)",
                (source, rule.value, now, job or None, this_process()),
            )
            return int(cur.lastrowid)

    @staticmethod
    def _log_end(conn, import_id: int, result: dict, header: dict | None) -> None:
        """The import's figures, and its TMX header (read as the units were)."""
        conn.execute(
            "UPDATE import_log SET state = 'done', finished = ?, result = ?, header = ? "
            "WHERE id = ?",
            (now_tmx(), to_json(result), to_json(header) if header else None, import_id),
        )

    def _log_failed(self, import_id: int, error: str) -> None:
        with self._write_lock:
            self._conn().execute(
                "UPDATE import_log SET state = 'failed', finished = ?, error = ? WHERE id = ?",
                (now_tmx(), error[:2000], import_id),
            )

    @staticmethod
    def _job_import(conn: sqlite3.Connection, job_id: str) -> ImportRecord | None:
        row = conn.execute(
            f"SELECT {_RECORD_COLUMNS} FROM import_log WHERE job = ? AND state = 'done'",
            (job_id,),
        ).fetchone()
        return record_from_row(row) if row else None

    def job_import(self, job_id: str) -> ImportRecord | None:
        return self._job_import(self._conn(), job_id)

    def abandon_imports(self, job_id: str | None = None) -> int:
        with self._write_lock:
            conn = self._conn()
            if job_id is not None:
                rows = conn.execute(
                    "SELECT id FROM import_log WHERE state = 'running' AND job = ?", (job_id,)
                ).fetchall()
            else:
                rows = [
                    (import_id,)
                    for import_id, runner in conn.execute(
                        "SELECT id, runner FROM import_log WHERE state = 'running'"
                    )
                    if _gone(runner)
                ]
            conn.executemany(
                "UPDATE import_log SET state = 'failed', finished = ?, "
                "error = 'interrupted: the process running it stopped' "
                "WHERE id = ? AND state = 'running'",
                [(now_tmx(), row[0]) for row in rows],
            )
        return len(rows)

    def delete(self, ids: Iterable[int] = (), *, document: str | None = None) -> list[int]:
        ids = [int(i) for i in ids]

        def select(conn) -> list[int]:
            found: list[int] = []
            for start in range(0, len(ids), 500):
                part = ids[start : start + 500]
                marks = ",".join("?" * len(part))
                found += [
                    r[0] for r in conn.execute(f"SELECT id FROM unit WHERE id IN ({marks})", part)
                ]
            if document is not None:
                found += [
                    r[0]
                    for r in conn.execute("SELECT id FROM unit WHERE document = ?", (document,))
                ]
            return sorted(set(found))

        return self._retire(select)

    @staticmethod
    def _where(query: UnitQuery) -> tuple[list[str], list]:
        where, params = [], []
        for column, value in (
            ("document", query.document),
            ("speaker", query.speaker),
            ("origin", query.origin),
            ("import_id", query.import_id),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if query.created_since is not None:
            where.append("created_at >= ?")
            params.append(query.created_since)
        if query.created_before is not None:
            where.append("created_at < ?")
            params.append(query.created_before)
        if query.contains is not None:
            where.append("(instr(zh_fold, ?) > 0 OR instr(en_fold, ?) > 0)")
            params += [fold_case(query.contains)] * 2
        return where, params

    def delete_where(self, query: UnitQuery) -> list[int]:
        if query.is_empty():
            raise StoreError("empty_query", "a deletion needs at least one condition")
        where, params = self._where(query)
        sql = f"SELECT id FROM unit WHERE {' AND '.join(where)} ORDER BY id"
        return self._retire(lambda conn: [r[0] for r in conn.execute(sql, params)])

    def _retire(self, select: Callable[[sqlite3.Connection], list[int]]) -> list[int]:
        """Tombstone the units ``select`` finds, in one write transaction; their ids."""
        with self._write_lock:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                found = select(conn)
                if not found:
                    conn.execute("ROLLBACK")
                    return []
                self._tombstone(conn, found, None)
                self._bump(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # a failed COMMIT (full disk) rolled back already
                    conn.execute("ROLLBACK")
                raise
        return found

    def _current(self, conn, unit_id: int, version: int | None) -> StoredUnit:
        row = conn.execute(f"SELECT {COLUMNS} FROM unit WHERE id = ?", (unit_id,)).fetchone()
        if row is None:
            raise UnitGone(unit_id, self._follow(conn, unit_id))
        unit = row_to_unit(row)
        if version is not None and unit.version != version:
            raise EditConflict(unit_id, version, unit.version)
        return unit

    @staticmethod
    def _follow(conn, unit_id: int) -> int | None:
        current, seen = unit_id, set()
        while current not in seen:
            seen.add(current)
            row = conn.execute(
                "SELECT replaced_by FROM tombstone WHERE unit_id = ?", (current,)
            ).fetchone()
            if row is None:
                return current if current != unit_id else None
            if row[0] is None:
                return None
            current = row[0]
        return None

    def replaced_by(self, unit_id: int) -> int | None:
        return self._follow(self._conn(), unit_id)

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
        with self._write_lock:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                unit = self._current(conn, unit_id, version)
                row, text_changed = edited_row(
                    unit, zh, en, props, changeid, self.max_segment_chars
                )
                tmx_json = row[TMX]
                if text_changed:
                    cur = conn.execute(_INSERT, row)
                    new_id = int(cur.lastrowid)
                    conn.execute(
                        "UPDATE unit SET version = ? WHERE id = ?", (unit.version + 1, new_id)
                    )
                    self._tombstone(conn, [unit_id], new_id)
                else:
                    new_id = unit_id
                    conn.execute(
                        "UPDATE unit SET hash = ?, zh_runs = ?, en_runs = ?, props = ?, tmx = ?, "
                        "document = ?, speaker = ?, version = version + 1 WHERE id = ?",
                        (row[HASH], row[ZH_RUNS], row[EN_RUNS], row[PROPS], tmx_json, row[DOC],
                         row[SPEAKER], unit_id),
                    )
                self._bump(conn)
                edited = self._current(conn, new_id, None)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # a failed COMMIT (full disk) rolled back already
                    conn.execute("ROLLBACK")
                raise
        return edited

    def record_usage(self, unit_id: int, when: str | None = None) -> StoredUnit:
        when = when or now_tmx()
        with self._write_lock:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                unit = self._current(conn, unit_id, None)
                tmx = dict(unit.tmx) if unit.tmx is not None else {}
                attrs = dict(tmx.get("attrs", {}))
                try:
                    count = int(attrs.get("usagecount", "0"))
                except ValueError:
                    count = 0
                attrs["usagecount"] = str(count + 1)
                attrs["lastusagedate"] = when
                tmx["attrs"] = attrs
                conn.execute("UPDATE unit SET tmx = ? WHERE id = ?", (to_json(tmx), unit_id))
                used = self._current(conn, unit_id, None)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # a failed COMMIT (full disk) rolled back already
                    conn.execute("ROLLBACK")
                raise
        return used

    @staticmethod
    def _bump(conn: sqlite3.Connection) -> int:
        conn.execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"
        )
        return int(conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])

    # -- reads -------------------------------------------------------------------------
    @property
    def generation(self) -> int:
        row = self._conn().execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0])

    def count(self) -> int:
        return self._conn().execute("SELECT COUNT(*) FROM unit").fetchone()[0]

    def max_id(self) -> int:
        return self._conn().execute("SELECT COALESCE(MAX(id), 0) FROM unit").fetchone()[0]

    @property
    def identity(self) -> str:
        conn = self._conn()
        row = conn.execute("SELECT value FROM meta WHERE key = 'identity'").fetchone()
        if row is None:  # made once, by the first process that asks
            conn.execute(
                "INSERT OR IGNORE INTO meta VALUES ('identity', lower(hex(randomblob(16))))"
            )
            row = conn.execute("SELECT value FROM meta WHERE key = 'identity'").fetchone()
        return row[0]

    def last_id(self) -> int:
        row = self._conn().execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'unit'"
        ).fetchone()
        return int(row[0]) if row else 0

    def bulk_import_tmx(
        self, path: Path, *, rule: MergeRule | str = MergeRule.MERGE, progress=None
    ) -> ImportResult:
        from service.memory.sqlite_bulk import bulk_import_tmx

        return bulk_import_tmx(self, Path(path), rule=rule, progress=progress)

    def get(self, ids: Iterable[int]) -> dict[int, StoredUnit]:
        ids = [int(i) for i in ids]
        found: dict[int, StoredUnit] = {}
        conn = self._conn()
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ",".join("?" * len(part))
            for row in conn.execute(f"SELECT {COLUMNS} FROM unit WHERE id IN ({marks})", part):
                found[row[0]] = row_to_unit(row)
        return found

    def iter_segment_batches(
        self, after_id: int = 0, batch: int = 5000
    ) -> Iterator[list[tuple[int, str, str]]]:
        conn = self._connect()
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
        import_id: int | None = None,
        batch: int = 2000,
    ) -> Iterator[StoredUnit]:
        query = UnitQuery(
            document=document, speaker=speaker, created_since=created_since, import_id=import_id
        )
        where, params = self._where(query)
        where.insert(0, "id > ?")
        params.insert(0, 0)
        sql = f"SELECT {COLUMNS} FROM unit WHERE {' AND '.join(where)} ORDER BY id LIMIT ?"
        conn = self._connect()
        try:
            while True:
                rows = conn.execute(sql, (*params, batch)).fetchall()
                if not rows:
                    return
                for row in rows:
                    yield row_to_unit(row)
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
        match=None,
        document: str | None = None,
        speaker: str | None = None,
        count: int = 0,
    ) -> tuple[list[StoredUnit], int]:
        folded = fold_case(term)
        sides = (lang,) if lang else ("zh", "en")
        checks = " OR ".join(f"instr({side}_fold, ?) > 0" for side in sides)
        where, params = self._where(UnitQuery(document=document, speaker=speaker))
        filters = "".join(f" AND {w}" for w in where)
        page: list[StoredUnit] = []
        total = 0
        stop = max(offset + limit, count + 1)

        def take(rows) -> bool:
            nonlocal total
            for row in rows:
                if match is not None and not any(
                    match(row[2] if s == "zh" else row[3], s) for s in sides
                ):
                    continue
                if offset <= total < offset + limit:
                    page.append(row_to_unit(row))
                total += 1
                if total >= stop:
                    return False
            return True

        conn = self._conn()
        sql = f"SELECT {COLUMNS} FROM unit WHERE ({checks}){filters}"
        args = [folded] * len(sides) + params
        if among is None:
            take(conn.execute(sql + " ORDER BY id", args))
            return page, total
        for start in range(0, len(among), 500):
            part = [int(i) for i in among[start : start + 500]]
            marks = ",".join("?" * len(part))
            if not take(conn.execute(f"{sql} AND id IN ({marks}) ORDER BY id", [*args, *part])):
                return page, total
        take(conn.execute(f"{sql} AND id > ? ORDER BY id", [*args, after]))
        return page, total

    def imports(self, limit: int = 50) -> list[ImportRecord]:
        rows = self._conn().execute(
            f"SELECT {_RECORD_COLUMNS} FROM import_log ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [record_from_row(r) for r in rows]

    def import_record(self, import_id: int) -> ImportRecord | None:
        row = self._conn().execute(
            f"SELECT {_RECORD_COLUMNS} FROM import_log WHERE id = ?",
            (import_id,),
        ).fetchone()
        return record_from_row(row) if row else None

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
        size = sum(p.stat().st_size for p in self.data_dir.glob(DB_NAME + "*") if p.is_file())
        return {
            "units": total,
            "directions": directions,
            "documents": documents,
            "speakers": speakers,
            "last_import": last or "",
            "generation": self.generation,
            "database_bytes": size,
        }


_RECORD_COLUMNS = "id, source, rule, started, finished, state, result, header, error, job"


def _job_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SQLiteJobTable(JobTable):
    """The ``job`` table in ``jobs.sqlite`` beside the store, shared by every process serving
    the data folder. A claim is one ``UPDATE`` of the oldest claimable row (SQLite runs one
    writer at a time, so two claims never take the same job); leases use this host's clock,
    the one clock of a data folder."""

    def __init__(self, connect):
        self._connect = connect
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = self._connect()
            conn.execute("PRAGMA journal_mode=WAL")
            _migrate(conn, "sqlite-jobs", {"job": _JOB_ADDED})
            self._conn = conn
        return self._conn

    def insert(self, job: Job) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO job (id, state, created, updated, options, total, owner, worker, "
                "lease_until, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job.id, job.state, job.created, job.updated, to_json(job.options), job.total,
                 job.owner, job.worker, job.lease_until, job.attempts),
            )

    @staticmethod
    def _assignments(fields: dict) -> tuple[str, list]:
        for name in ("results", "memory", "options"):
            if name in fields and fields[name] is not None:
                fields[name] = to_json(fields[name])
        fields["updated"] = _job_now()
        return ", ".join(f"{name} = ?" for name in fields), list(fields.values())

    def update(self, job_id: str, **fields) -> None:
        names, values = self._assignments(fields)
        with self._lock:
            self._db.execute(f"UPDATE job SET {names} WHERE id = ?", (*values, job_id))

    def report(self, job_id: str, seq: int, report: dict, done: int, failed: int) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO job_pair VALUES (?, ?, ?)", (job_id, seq, to_json(report))
            )
            self._db.execute(
                "UPDATE job SET done = ?, failed = ?, updated = ? WHERE id = ?",
                (done, failed, _job_now(), job_id),
            )

    def _row(self, job_id: str) -> tuple | None:
        return self._db.execute(
            f"SELECT {_JOB_FIELDS} FROM job WHERE id = ?", (job_id,)
        ).fetchone()

    def get(self, job_id: str, offset: int = 0, limit: int = 1000) -> Job | None:
        with self._lock:
            row = self._row(job_id)
            reports = self._db.execute(
                "SELECT report FROM job_pair WHERE job = ? ORDER BY seq LIMIT ? OFFSET ?",
                (job_id, limit, offset),
            ).fetchall()
        if row is None:
            return None
        if reports:
            results = [json.loads(r[0]) for r in reports]
        else:  # jobs of earlier versions kept the list whole
            results = json.loads(row[8])[offset : offset + limit] if row[8] else None
        return _job(row, results)

    def finished_before(self, stamp: str) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM job WHERE state NOT IN ('queued', 'running') AND updated < ?",
                (stamp,),
            ).fetchall()
        return [row[0] for row in rows]

    def delete(self, job_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM job_pair WHERE job = ?", (job_id,))
            self._db.execute("DELETE FROM job WHERE id = ?", (job_id,))

    def active(self) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM job WHERE state IN ('queued', 'running') ORDER BY created, rowid"
            ).fetchall()
        return [row[0] for row in rows]

    def claim(self, worker: str, lease_s: float) -> Job | None:
        now = time.time()
        with self._lock:
            row = self._db.execute(
                "UPDATE job SET state = 'running', worker = ?, lease_until = ?, "
                "attempts = attempts + 1, updated = ? "
                f"WHERE id = (SELECT id FROM job WHERE {_CLAIMABLE} ORDER BY created, rowid "
                f"LIMIT 1) AND {_CLAIMABLE} RETURNING id",
                (worker, now + lease_s, _job_now(), now, now),
            ).fetchone()
            found = self._row(row[0]) if row else None
        return _job(found, None) if found else None

    def renew(self, job_id: str, worker: str, lease_s: float, **fields) -> Job | None:
        fields["lease_until"] = time.time() + lease_s
        names, values = self._assignments(fields)
        with self._lock:
            changed = self._db.execute(
                f"UPDATE job SET {names} WHERE id = ? AND {_HELD}", (*values, job_id, worker)
            ).rowcount
            row = self._row(job_id) if changed else None
        return _job(row, None) if row else None

    def finish(self, job_id: str, worker: str, state: str, **fields) -> bool:
        names, values = self._assignments({"state": state, **fields})
        with self._lock:
            return bool(
                self._db.execute(
                    f"UPDATE job SET {names} WHERE id = ? AND {_HELD}", (*values, job_id, worker)
                ).rowcount
            )

    def release(self, job_id: str, worker: str) -> bool:
        with self._lock:
            return bool(
                self._db.execute(
                    "UPDATE job SET state = 'queued', worker = '', lease_until = 0, updated = ? "
                    f"WHERE id = ? AND {_HELD}",
                    (_job_now(), job_id, worker),
                ).rowcount
            )

    def request_cancel(self, job_id: str) -> Job | None:
        with self._lock:
            self._db.execute(
                "UPDATE job SET state = CASE state WHEN 'queued' THEN 'cancelled' ELSE state END, "
                "cancel_requested = CASE state WHEN 'running' THEN 1 ELSE cancel_requested END, "
                "updated = ? WHERE id = ? AND state IN ('queued', 'running')",
                (_job_now(), job_id),
            )
            row = self._row(job_id)
        return _job(row, None) if row else None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _job(row: tuple, results: list | None) -> Job:
    return Job(
        *row[:4],
        json.loads(row[4]),
        *row[5:8],
        results,
        row[9] or "",
        json.loads(row[10]) if row[10] else None,
        owner=row[11],
        worker=row[12],
        lease_until=row[13],
        attempts=row[14],
        cancel_requested=bool(row[15]),
    )
