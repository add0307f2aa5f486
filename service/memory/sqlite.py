"""The SQLite implementation of the store: one database (WAL) in the data folder.

Units keep both segments as plain text (``zh``, ``en``: what indexes read), their runs when
they have markup (``zh_runs``, ``en_runs``, JSON), what their TMX said beyond that (``tmx``,
JSON), languages as written (``en-GB`` stays), provenance, a content hash (identity for
``merge``) and a source key (identity for ``keep_newest``). Imports are one transaction fed
from an iterator (``read_tmx`` parses lazily), so a file that fails halfway, or a crash,
leaves the memory as it was, and memory use stays flat however many units come in; each one
is logged in ``import_log``. Deletions and text edits leave tombstones. What it does as the
PostgreSQL store does is ``service.memory.sql``'s; here are SQLite's connections, transactions
and statements of its own, and the job table.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from service.memory.migrations import VERSION_TABLE, pending
from service.memory.rows import (
    INSERT_COLUMNS,
    JOB_COLUMNS,
    job_assignments,
    job_from_row,
    job_results,
    job_stamp,
    now_tmx,
    to_json,
)
from service.memory.sql import SQLStore, failure
from service.memory.sqlite_reviews import SQLiteReviewTable
from service.memory.store import (
    ImportResult,
    Job,
    JobTable,
    MergeRule,
    ReviewTable,
    StoreError,
    process_lock,
)

DB_NAME = "tm.sqlite"
# Held by a running bulk import (``sqlite_bulk``), which checkpoints the WAL itself: a write
# meanwhile leaves checkpoints to it (SQLite's commit that finds the WAL over 1,000 pages
# copies it into the database and syncs, tens of milliseconds with an import's pages in it).
BULK_LOCK = "bulk-import.lock"
# Held shared by every write while it waits and runs; a bulk import takes it exclusively
# between its transactions, so that a write waits for one of them at most.
WRITES_LOCK = "writes.lock"
# Held by a bulk import's transaction: a write waits on it rather than in SQLite's busy
# retries (sleeps of up to 100 ms), and goes the moment the transaction ends.
IMPORT_LOCK = "import-transaction.lock"
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


@contextmanager
def writes_waiting(data_dir: Path) -> Iterator[bool]:
    """A write, said to wait until it is done (``import_transaction`` lets it go first),
    begun once a bulk import's transaction under way has ended; yields whether a bulk
    import runs.

    SQLite's busy wait is not a queue: a writer retrying every few milliseconds would find
    the lock taken again by a bulk import that begins its next transaction at once."""
    with open(data_dir / WRITES_LOCK, "a+b") as waiting:
        fcntl.flock(waiting, fcntl.LOCK_SH)
        with open(data_dir / IMPORT_LOCK, "a+b") as importing:
            fcntl.flock(importing, fcntl.LOCK_SH)
        with open(data_dir / BULK_LOCK, "a+b") as bulk:
            try:
                fcntl.flock(bulk, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                running = True
            else:
                running = False
                fcntl.flock(bulk, fcntl.LOCK_UN)
        yield running


@contextmanager
def import_transaction(data_dir: Path) -> Iterator[None]:
    """A bulk import's transaction, begun when no write waits or runs."""
    with open(data_dir / WRITES_LOCK, "a+b") as waiting:
        fcntl.flock(waiting, fcntl.LOCK_EX)
    with open(data_dir / IMPORT_LOCK, "a+b") as importing:
        fcntl.flock(importing, fcntl.LOCK_EX)
        yield


class SQLiteStore(SQLStore):
    """Translation memory in ``<data_dir>/tm.sqlite``; safe to share between threads.

    Reads use one connection per thread; writes are serialised by a lock and SQLite's own
    locking (other processes writing the same file wait up to 30 s). A thread's connection is
    closed once the thread has ended: the server's thread pool retires idle threads and starts
    new ones, and each connection keeps its own page cache.
    """

    _MERGE = _MERGE

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

    def _read(self, sql: str, params: Sequence = ()) -> list[tuple]:
        return self._conn().execute(sql, params).fetchall()

    @contextmanager
    def _pages(self) -> Iterator[Callable[[str, Sequence], list[tuple]]]:
        """A connection of the iteration's own (its consumer may move between threads)."""
        conn = self._connect()
        try:
            yield lambda sql, params: conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with writes_waiting(self.data_dir) as importing, self._write_lock:
            conn = self._conn()
            conn.execute(f"PRAGMA wal_autocheckpoint = {0 if importing else 1000}")
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # a failed COMMIT (full disk) rolled back already
                    conn.execute("ROLLBACK")
                raise

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

    # -- the dialect's writes --------------------------------------------------------------
    @contextmanager
    def _importing(
        self, source: str, rule: MergeRule, created_at: str, job: str
    ) -> Iterator[tuple[sqlite3.Connection, int]]:
        import_id = self._log_start(source, rule, created_at, job)
        try:
            with self._write() as conn:
                yield conn, import_id
        except BaseException as exc:
            self._log_failed(import_id, failure(exc))
            raise

    @staticmethod
    def _insert(conn: sqlite3.Connection, rows: list[list]) -> list[int]:
        conn.executemany(_INSERT, rows)
        # One writer (BEGIN IMMEDIATE): the rows got the ids up to the largest, in order.
        last = conn.execute("SELECT MAX(id) FROM unit").fetchone()[0]
        return list(range(last - len(rows) + 1, last + 1))

    def _tombstone(self, conn, ids: list[int], replaced_by: int | None) -> None:
        row = conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        generation = int(row[0])
        conn.executemany("DELETE FROM unit WHERE id = ?", [(i,) for i in ids])
        conn.executemany(
            "INSERT OR REPLACE INTO tombstone VALUES (?, ?, ?)",
            [(i, generation + 1, replaced_by) for i in ids],
        )

    @staticmethod
    def _bump(conn: sqlite3.Connection) -> int:
        conn.execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"
        )
        return int(conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])

    @staticmethod
    def _any(column: str, values: list) -> Iterator[tuple[str, list]]:
        for start in range(0, len(values), 500):  # well within SQLite's bound on parameters
            part = values[start : start + 500]
            yield f"{column} IN ({','.join('?' * len(part))})", part

    def _database_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.data_dir.glob(DB_NAME + "*") if p.is_file())

    # -- the import audit (``sqlite_bulk`` writes it too) -------------------------------------
    def _log_start(self, source: str, rule: MergeRule, now: str, job: str) -> int:
        with self._write_lock:
            cur = self._conn().execute(
                "INSERT INTO import_log (source, rule, started, state, job, runner) "
                "VALUES (?, ?, ?, 'running', ?, ?)",
                (source, rule.value, now, job or None, this_process()),
            )
            return int(cur.lastrowid)

    def _log_failed(self, import_id: int, error: str) -> None:
        with self._write_lock:
            self._conn().execute(
                "UPDATE import_log SET state = 'failed', finished = ?, error = ? WHERE id = ?",
                (now_tmx(), error[:2000], import_id),
            )

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

    # -- what only SQLite has --------------------------------------------------------------
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

    def update(self, job_id: str, **fields) -> None:
        names, values = job_assignments(fields, "?")
        with self._lock:
            self._db.execute(f"UPDATE job SET {names} WHERE id = ?", (*values, job_id))

    def report(self, job_id: str, seq: int, report: dict, done: int, failed: int) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO job_pair VALUES (?, ?, ?)", (job_id, seq, to_json(report))
            )
            self._db.execute(
                "UPDATE job SET done = ?, failed = ?, updated = ? WHERE id = ?",
                (done, failed, job_stamp(), job_id),
            )

    def _row(self, job_id: str) -> tuple | None:
        return self._db.execute(
            f"SELECT {JOB_COLUMNS} FROM job WHERE id = ?", (job_id,)
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
        return job_from_row(row, job_results(row, reports, offset, limit))

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
                (worker, now + lease_s, job_stamp(), now, now),
            ).fetchone()
            found = self._row(row[0]) if row else None
        return job_from_row(found, None) if found else None

    def renew(self, job_id: str, worker: str, lease_s: float, **fields) -> Job | None:
        fields["lease_until"] = time.time() + lease_s
        names, values = job_assignments(fields, "?")
        with self._lock:
            changed = self._db.execute(
                f"UPDATE job SET {names} WHERE id = ? AND {_HELD}", (*values, job_id, worker)
            ).rowcount
            row = self._row(job_id) if changed else None
        return job_from_row(row, None) if row else None

    def finish(self, job_id: str, worker: str, state: str, **fields) -> bool:
        names, values = job_assignments({"state": state, **fields}, "?")
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
                    (job_stamp(), job_id, worker),
                ).rowcount
            )

    def request_cancel(self, job_id: str) -> Job | None:
        with self._lock:
            self._db.execute(
                "UPDATE job SET state = CASE state WHEN 'queued' THEN 'cancelled' ELSE state END, "
                "cancel_requested = CASE state WHEN 'running' THEN 1 ELSE cancel_requested END, "
                "updated = ? WHERE id = ? AND state IN ('queued', 'running')",
                (job_stamp(), job_id),
            )
            row = self._row(job_id)
        return job_from_row(row, None) if row else None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
