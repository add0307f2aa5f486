"""The PostgreSQL implementation of the store: one memory shared by several service replicas.

The tables are SQLite's (``migrations/postgresql``), reached through a connection pool
(psycopg 3). Every change to units takes one transaction-scoped advisory lock first, so
changes commit one at a time, in the order their unit ids were taken: an index that has read
up to id N never sees a smaller id appear later. New units are written with ``COPY``. Every
committed change bumps ``generation`` and sends ``NOTIFY concordia_memory`` with it, which
wakes the other replicas' index syncs (``wait_for_change``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from service.config import StorePool
from service.memory.migrations import VERSION_TABLE, pending
from service.memory.postgres_jobs import PostgresJobTable
from service.memory.postgres_reviews import PostgresReviewTable
from service.memory.rows import INSERT_COLUMNS, now_tmx
from service.memory.sql import SQLStore, failure, in_dialect
from service.memory.store import JobTable, MergeRule, ReviewTable, StoreError

CHANNEL = "concordia_memory"
# Advisory lock keys (any two numbers no other application on the database uses).
_WRITE_LOCK = 0x434F4E01
_MIGRATE_LOCK = 0x434F4E02

_MERGE = """
UPDATE unit SET
    props = (?::jsonb || props::jsonb)::text,
    document = CASE WHEN document = '' THEN ? ELSE document END,
    speaker = CASE WHEN speaker = '' THEN ? ELSE speaker END,
    creationdate = CASE
        WHEN creationdate = '' OR (? != '' AND ? < creationdate) THEN ? ELSE creationdate END
WHERE id = ?
"""


def shown_url(url: str) -> str:
    """The URL without its password, for messages."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    host, port, name = info.get("host", ""), info.get("port", ""), info.get("dbname", "")
    user = info.get("user", "")
    return f"postgresql://{user + '@' if user else ''}{host}{':' + port if port else ''}/{name}"


class PostgresStore(SQLStore):
    """The memory in the PostgreSQL database at ``url``; safe to share between threads and
    between processes (replicas)."""

    PLACEHOLDER = "%s"
    _FIND = "strpos"
    _MERGE = _MERGE
    _SUMMARY = (  # one scan of the table
        "SELECT COUNT(DISTINCT document) FILTER (WHERE document != ''), "
        "COUNT(DISTINCT speaker) FILTER (WHERE speaker != ''), MAX(created_at) FROM unit",
    )

    def __init__(
        self, url: str, *, max_segment_chars: int = 2000, pool: StorePool | None = None
    ):
        self.url = url
        self.max_segment_chars = max_segment_chars
        self._reach = pool = pool or StorePool()
        self._pool = ConnectionPool(
            url, min_size=1, max_size=pool.size, open=False, timeout=pool.wait_s,
            kwargs={"autocommit": True, "connect_timeout": pool.connect_timeout_s},
            name="concordia",
        )
        try:
            self._pool.open(wait=True, timeout=pool.start_timeout_s)
        except PoolTimeout:
            self._pool.close()
            raise StoreError(
                "store_unreachable", f"cannot connect to the store {shown_url(url)}", 503
            ) from None
        try:
            self._migrate()
        except BaseException:
            self._pool.close()
            raise
        self._listener: psycopg.Connection | None = None
        self._listen_lock = threading.Lock()
        self._jobs = PostgresJobTable(self._connection)
        self._reviews = PostgresReviewTable(self._connection)

    def _migrate(self) -> None:
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
            conn.execute(VERSION_TABLE)
            current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")
            todo = pending("postgresql", current.fetchone()[0])
            for migration in todo:
                conn.execute(migration.sql.encode())
            if todo:
                conn.execute("DELETE FROM schema_version")
                conn.execute("INSERT INTO schema_version VALUES (%s)", (todo[-1].version,))

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        """A connection of the pool; a store that cannot be reached (down, restarting, every
        connection busy past the pool's timeout) is a 503 ``store_unavailable``."""
        try:
            with self._pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise StoreError(
                "store_unavailable", f"the store cannot be reached ({type(exc).__name__}); "
                "try again shortly", 503,
            ) from exc

    @contextmanager
    def _write(self) -> Iterator[psycopg.Connection]:
        """A write transaction on units, after the writers before it have committed."""
        with self._connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
            yield conn

    def writing(self) -> AbstractContextManager[psycopg.Connection]:
        """A write transaction of one's own (a memory moved in uses it)."""
        return self._write()

    def _read(self, sql: str, params: Sequence = ()) -> list[tuple]:
        """The rows of ``sql`` (``?`` or ``%s`` placeholders) on a connection of the pool."""
        with self._connection() as conn:
            return conn.execute(in_dialect(sql, "%s"), params or None).fetchall()

    @contextmanager
    def _pages(self) -> Iterator[Callable[[str, Sequence], list[tuple]]]:
        """Each page on a connection of the pool: a slow reader holds none between pages."""
        yield self._read

    def close(self) -> None:
        with self._listen_lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
        self._pool.close()

    def jobs(self) -> JobTable:
        return self._jobs

    def reviews(self) -> ReviewTable:
        return self._reviews

    # -- change notices ------------------------------------------------------------------
    change_notices = True

    def wait_for_change(self, timeout: float, stop: threading.Event) -> bool:
        """True at the first change notice (from any replica), False after ``timeout`` or
        once ``stop`` is set."""
        deadline = time.monotonic() + timeout
        try:
            with self._listen_lock:
                if self._listener is None or self._listener.closed:
                    self._listener = psycopg.connect(
                        self.url, autocommit=True,
                        connect_timeout=self._reach.connect_timeout_s,
                    )
                    self._listener.execute(f"LISTEN {CHANNEL}")
                listener = self._listener
            while not stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                for _ in listener.notifies(timeout=min(left, 0.25), stop_after=1):
                    return True
        except psycopg.Error:  # the store went away: wait as a poll would, then try again
            with self._listen_lock:
                if self._listener is not None:
                    self._listener.close()
                self._listener = None
            stop.wait(max(0.0, deadline - time.monotonic()))
        return False

    # -- the dialect's writes --------------------------------------------------------------
    @contextmanager
    def _importing(
        self, source: str, rule: MergeRule, created_at: str, job: str
    ) -> Iterator[tuple[psycopg.Connection, int]]:
        with self._connection() as conn:
            # The audit row names the server connection that imports: when it is gone from
            # the server and the row still says running, the import was cut off.
            import_id = self._read(
                "INSERT INTO import_log (source, rule, started, state, job, runner) "
                "VALUES (%s, %s, %s, 'running', %s, %s) RETURNING id",
                (source, rule.value, created_at, job or None, f"pg:{conn.info.backend_pid}"),
            )[0][0]
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
                    yield conn, import_id
            except BaseException as exc:
                self._read(
                    "UPDATE import_log SET state = 'failed', finished = %s, error = %s "
                    "WHERE id = %s RETURNING id",
                    (now_tmx(), failure(exc)[:2000], import_id),
                )
                raise

    def abandon_imports(self, job_id: str | None = None) -> int:
        """Job given: its rows still running. Else: rows still running whose importing
        connection the server no longer has (its process died, on whatever host)."""
        sql = (
            "UPDATE import_log SET state = 'failed', finished = %s, "
            "error = 'interrupted: the process running it stopped' WHERE state = 'running' "
        )
        if job_id is not None:
            rows = self._read(sql + "AND job = %s RETURNING id", (now_tmx(), job_id))
        else:
            rows = self._read(
                sql + "AND runner LIKE 'pg:%%' AND substr(runner, 4)::int NOT IN "
                "(SELECT pid FROM pg_stat_activity) RETURNING id",
                (now_tmx(),),
            )
        return len(rows)

    @staticmethod
    def _insert(conn: psycopg.Connection, rows: list[list]) -> list[int]:
        """COPY the rows in under ids from the sequence, in order; their ids."""
        ids = sorted(
            r[0]
            for r in conn.execute(
                "SELECT nextval('unit_id_seq') FROM generate_series(1, %s)", (len(rows),)
            )
        )
        with conn.cursor() as cur, cur.copy(
            f"COPY unit (id, {', '.join(INSERT_COLUMNS)}) FROM STDIN"
        ) as copy:
            for uid, row in zip(ids, rows, strict=True):
                copy.write_row([uid, *row])
        return ids

    @staticmethod
    def _bump(conn: psycopg.Connection) -> int:
        generation = conn.execute(
            "UPDATE meta SET value = (value::bigint + 1)::text WHERE key = 'generation' "
            "RETURNING value"
        ).fetchone()[0]
        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, generation))
        return int(generation)

    @staticmethod
    def _tombstone(conn: psycopg.Connection, ids: list[int], replaced_by: int | None) -> None:
        generation = int(
            conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0]
        )
        conn.execute("DELETE FROM unit WHERE id = ANY(%s)", (ids,))
        conn.execute(
            "INSERT INTO tombstone SELECT unnest(%s::bigint[]), %s, %s "
            "ON CONFLICT (unit_id) DO UPDATE SET generation = EXCLUDED.generation, "
            "replaced_by = EXCLUDED.replaced_by",
            (ids, generation + 1, replaced_by),
        )

    @staticmethod
    def _any(column: str, values: list) -> Iterator[tuple[str, list]]:
        if values:
            yield f"{column} = ANY(?)", [values]

    def _database_bytes(self) -> int:
        return self._read("SELECT pg_database_size(current_database())")[0][0]

    # -- what only PostgreSQL has ------------------------------------------------------------
    @property
    def identity(self) -> str:
        """What tells this memory from any other, made with it (a moved memory keeps its
        own): indexes saved for one are never served for another."""
        with self._connection() as conn:
            conn.execute(
                "INSERT INTO meta VALUES ('identity', md5(random()::text || "
                "clock_timestamp()::text)) ON CONFLICT (key) DO NOTHING"
            )
            return conn.execute("SELECT value FROM meta WHERE key = 'identity'").fetchone()[0]

    def last_id(self) -> int:
        """The largest id ever given to a unit (the sequence's), deleted ones included."""
        value, called = self._read("SELECT last_value, is_called FROM unit_id_seq")[0]
        return int(value) if called else 0
