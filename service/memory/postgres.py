"""The PostgreSQL implementation of the store: one memory shared by several service replicas.

The tables are SQLite's (``migrations/postgresql``), reached through a connection pool
(psycopg 3). Every change to units takes one transaction-scoped advisory lock first, so
changes commit one at a time, in the order their unit ids were taken: an index that has read
up to id N never sees a smaller id appear later. New units are written with ``COPY``. Every
committed change bumps ``generation`` and sends ``NOTIFY concordia_memory`` with it, which
wakes the other replicas' index syncs (``wait_for_change``).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from aligner.errors import InputError
from aligner.models import Run, TranslationUnit
from service.config import StorePool
from service.memory.matching import fold_case
from service.memory.migrations import VERSION_TABLE, pending
from service.memory.postgres_jobs import PostgresJobTable
from service.memory.postgres_reviews import PostgresReviewTable
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
from service.memory.store import (
    AlreadyImported,
    EditConflict,
    ImportRecord,
    ImportResult,
    JobTable,
    MergeRule,
    ReviewTable,
    StoredUnit,
    StoreError,
    TMStore,
    UnitGone,
    UnitQuery,
)

CHANNEL = "concordia_memory"
# Advisory lock keys (any two numbers no other application on the database uses).
_WRITE_LOCK = 0x434F4E01
_MIGRATE_LOCK = 0x434F4E02

_MERGE = """
UPDATE unit SET
    props = (%s::jsonb || props::jsonb)::text,
    document = CASE WHEN document = '' THEN %s ELSE document END,
    speaker = CASE WHEN speaker = '' THEN %s ELSE speaker END,
    creationdate = CASE
        WHEN creationdate = '' OR (%s != '' AND %s < creationdate) THEN %s ELSE creationdate END
WHERE id = %s
"""
_LOG_COLUMNS = "id, source, rule, started, finished, state, result, header, error, job"


def shown_url(url: str) -> str:
    """The URL without its password, for messages."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    host, port, name = info.get("host", ""), info.get("port", ""), info.get("dbname", "")
    user = info.get("user", "")
    return f"postgresql://{user + '@' if user else ''}{host}{':' + port if port else ''}/{name}"


class PostgresStore(TMStore):
    """The memory in the PostgreSQL database at ``url``; safe to share between threads and
    between processes (replicas)."""

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

    def _read(self, sql: str, params: Sequence | None = None) -> list[tuple]:
        with self._connection() as conn:
            return conn.execute(sql, params).fetchall()

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

    # -- writes ----------------------------------------------------------------------------
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
        seen = 0
        with self._connection() as conn:
            # The audit row names the server connection that imports: when it is gone from
            # the server and the row still says running, the import was cut off.
            result.import_id = import_id = self._read(
                "INSERT INTO import_log (source, rule, started, state, job, runner) "
                "VALUES (%s, %s, %s, 'running', %s, %s) RETURNING id",
                (source, rule.value, created_at, job or None, f"pg:{conn.info.backend_pid}"),
            )[0][0]
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
                    if job and (done := self._job_import(conn, job)) is not None:
                        raise AlreadyImported(done)  # committed meanwhile, by another process
                    batch: list[list] = []
                    for unit in units:
                        seen += 1
                        row = unit_row(unit, created_at, source, import_id,
                                       self.max_segment_chars)
                        if isinstance(row, str):
                            result.skip(row)
                            continue
                        row.append(unit_date(unit.attrs or {}, row[DATE]))
                        batch.append(row)
                        if len(batch) >= chunk:
                            apply_chunk(self._ops(conn), batch, rule, result)
                            batch.clear()
                            if progress is not None:
                                progress(seen)
                    if batch:
                        apply_chunk(self._ops(conn), batch, rule, result)
                    for reason, count in (skipped or {}).items():
                        result.skipped += count
                        result.skipped_reasons[reason] = (
                            result.skipped_reasons.get(reason, 0) + count
                        )
                    result.generation = self._bump(conn)
                    result.seconds = time.perf_counter() - started
                    conn.execute(
                        "UPDATE import_log SET state = 'done', finished = %s, result = %s, "
                        "header = %s WHERE id = %s",
                        (now_tmx(), to_json(result.as_dict()),
                         to_json(header) if header else None, import_id),
                    )
            except BaseException as exc:
                reason = (str(exc) if isinstance(exc, InputError)
                          else f"{type(exc).__name__}: {exc}")
                self._read(
                    "UPDATE import_log SET state = 'failed', finished = %s, error = %s "
                    "WHERE id = %s RETURNING id",
                    (now_tmx(), reason[:2000], import_id),
                )
                raise
        if progress is not None:
            progress(seen)
        return result

    @staticmethod
    def _job_import(conn: psycopg.Connection, job_id: str) -> ImportRecord | None:
        row = conn.execute(
            f"SELECT {_LOG_COLUMNS} FROM import_log WHERE job = %s AND state = 'done'",
            (job_id,),
        ).fetchone()
        return record_from_row(row) if row else None

    def job_import(self, job_id: str) -> ImportRecord | None:
        with self._connection() as conn:
            return self._job_import(conn, job_id)

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

    def _ops(self, conn: psycopg.Connection) -> ImportOps:
        def existing(column: str, values: list[str], with_date: bool) -> dict:
            found: dict = {}
            what = "id, creationdate, tmx" if with_date else "id"
            rows = conn.execute(
                f"SELECT {column}, {what} FROM unit WHERE {column} = ANY(%s) ORDER BY id",
                (list(dict.fromkeys(values)),),
            )
            for row in rows:
                if with_date:
                    attrs = (json.loads(row[3]) if row[3] else {}).get("attrs", {})
                    found[row[0]] = (row[1], unit_date(attrs, row[2]))
                else:
                    found.setdefault(row[0], row[1])
            return found

        def merge(row: list, unit_id: int) -> None:
            date = row[DATE]
            conn.execute(_MERGE, (row[PROPS], row[DOC], row[SPEAKER], date, date, date, unit_id))

        return ImportOps(
            existing=existing,
            insert=lambda rows: self._insert(conn, rows),
            merge=merge,
            retire=lambda ids: self._tombstone(conn, ids, None),
            stored=lambda unit_id: conn.execute(
                "SELECT hash, props, tmx FROM unit WHERE id = %s", (unit_id,)
            ).fetchone(),
        )

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

    def delete(self, ids: Iterable[int] = (), *, document: str | None = None) -> list[int]:
        ids = [int(i) for i in ids]

        def select(conn: psycopg.Connection) -> list[int]:
            found = [r[0] for r in conn.execute("SELECT id FROM unit WHERE id = ANY(%s)", (ids,))]
            if document is not None:
                found += [
                    r[0] for r in conn.execute("SELECT id FROM unit WHERE document = %s",
                                               (document,))
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
                where.append(f"{column} = %s")
                params.append(value)
        if query.created_since is not None:
            where.append("created_at >= %s")
            params.append(query.created_since)
        if query.created_before is not None:
            where.append("created_at < %s")
            params.append(query.created_before)
        if query.contains is not None:
            where.append("(strpos(zh_fold, %s) > 0 OR strpos(en_fold, %s) > 0)")
            params += [fold_case(query.contains)] * 2
        return where, params

    def delete_where(self, query: UnitQuery) -> list[int]:
        if query.is_empty():
            raise StoreError("empty_query", "a deletion needs at least one condition")
        where, params = self._where(query)
        sql = f"SELECT id FROM unit WHERE {' AND '.join(where)} ORDER BY id"
        return self._retire(lambda conn: [r[0] for r in conn.execute(sql, params)])

    def _retire(self, select: Callable[[psycopg.Connection], list[int]]) -> list[int]:
        """Tombstone the units ``select`` finds, in one write transaction; their ids."""
        with self._write() as conn:
            found = select(conn)
            if found:
                self._tombstone(conn, found, None)
                self._bump(conn)
        return found

    def _current(self, conn, unit_id: int, version: int | None) -> StoredUnit:
        row = conn.execute(f"SELECT {COLUMNS} FROM unit WHERE id = %s", (unit_id,)).fetchone()
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
                "SELECT replaced_by FROM tombstone WHERE unit_id = %s", (current,)
            ).fetchone()
            if row is None:
                return current if current != unit_id else None
            if row[0] is None:
                return None
            current = row[0]
        return None

    def replaced_by(self, unit_id: int) -> int | None:
        with self._connection() as conn:
            return self._follow(conn, unit_id)

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
        with self._write() as conn:
            unit = self._current(conn, unit_id, version)
            row, text_changed = edited_row(unit, zh, en, props, changeid, self.max_segment_chars)
            if text_changed:
                (new_id,) = self._insert(conn, [row])
                conn.execute(
                    "UPDATE unit SET version = %s WHERE id = %s", (unit.version + 1, new_id)
                )
                self._tombstone(conn, [unit_id], new_id)
            else:
                new_id = unit_id
                conn.execute(
                    "UPDATE unit SET hash = %s, zh_runs = %s, en_runs = %s, props = %s, "
                    "tmx = %s, document = %s, speaker = %s, version = version + 1 WHERE id = %s",
                    (row[HASH], row[ZH_RUNS], row[EN_RUNS], row[PROPS], row[TMX], row[DOC],
                     row[SPEAKER], unit_id),
                )
            self._bump(conn)
            return self._current(conn, new_id, None)

    def record_usage(self, unit_id: int, when: str | None = None) -> StoredUnit:
        when = when or now_tmx()
        with self._write() as conn:
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
            conn.execute("UPDATE unit SET tmx = %s WHERE id = %s", (to_json(tmx), unit_id))
            return self._current(conn, unit_id, None)

    # -- reads -----------------------------------------------------------------------------
    @property
    def generation(self) -> int:
        return int(self._read("SELECT value FROM meta WHERE key = 'generation'")[0][0])

    def count(self) -> int:
        return self._read("SELECT COUNT(*) FROM unit")[0][0]

    def max_id(self) -> int:
        return self._read("SELECT COALESCE(MAX(id), 0) FROM unit")[0][0]

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

    def get(self, ids: Iterable[int]) -> dict[int, StoredUnit]:
        ids = [int(i) for i in ids]
        if not ids:
            return {}
        rows = self._read(f"SELECT {COLUMNS} FROM unit WHERE id = ANY(%s)", (ids,))
        return {row[0]: row_to_unit(row) for row in rows}

    def iter_segment_batches(
        self, after_id: int = 0, batch: int = 5000
    ) -> Iterator[list[tuple[int, str, str]]]:
        last = after_id
        while True:
            rows = self._read(
                "SELECT id, zh, en FROM unit WHERE id > %s ORDER BY id LIMIT %s", (last, batch)
            )
            if not rows:
                return
            yield rows
            last = rows[-1][0]

    def deleted_since(self, generation: int) -> list[int]:
        rows = self._read("SELECT unit_id FROM tombstone WHERE generation > %s", (generation,))
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
        where.insert(0, "id > %s")
        params.insert(0, 0)
        sql = f"SELECT {COLUMNS} FROM unit WHERE {' AND '.join(where)} ORDER BY id LIMIT %s"
        while True:
            rows = self._read(sql, (*params, batch))
            if not rows:
                return
            for row in rows:
                yield row_to_unit(row)
            params[0] = rows[-1][0]

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
        checks = " OR ".join(f"strpos({side}_fold, %s) > 0" for side in sides)
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

        sql = f"SELECT {COLUMNS} FROM unit WHERE ({checks}){filters}"
        args = [folded] * len(sides) + params
        if among is not None:
            for start in range(0, len(among), 500):
                part = [int(i) for i in among[start : start + 500]]
                rows = self._read(f"{sql} AND id = ANY(%s) ORDER BY id", [*args, part])
                if not take(rows):
                    return page, total
        last = after if among is not None else 0
        while True:  # pages in id order, read until the answer is complete
            rows = self._read(f"{sql} AND id > %s ORDER BY id LIMIT 1000", [*args, last])
            if not rows or not take(rows):
                return page, total
            last = rows[-1][0]

    def imports(self, limit: int = 50) -> list[ImportRecord]:
        rows = self._read(
            f"SELECT {_LOG_COLUMNS} FROM import_log ORDER BY id DESC LIMIT %s", (limit,)
        )
        return [record_from_row(r) for r in rows]

    def import_record(self, import_id: int) -> ImportRecord | None:
        rows = self._read(f"SELECT {_LOG_COLUMNS} FROM import_log WHERE id = %s", (import_id,))
        return record_from_row(rows[0]) if rows else None

    def stats(self) -> dict:
        with self._connection() as conn:
            total = conn.execute("SELECT COUNT(*) FROM unit").fetchone()[0]
            directions = {
                f"{s}>{t}": n
                for s, t, n in conn.execute(
                    "SELECT source_lang, target_lang, COUNT(*) FROM unit GROUP BY 1, 2 "
                    "ORDER BY 3 DESC"
                )
            }
            documents, speakers, last = conn.execute(
                "SELECT COUNT(DISTINCT document) FILTER (WHERE document != ''), "
                "COUNT(DISTINCT speaker) FILTER (WHERE speaker != ''), MAX(created_at) FROM unit"
            ).fetchone()
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        return {
            "units": total,
            "directions": directions,
            "documents": documents,
            "speakers": speakers,
            "last_import": last or "",
            "generation": self.generation,
            "database_bytes": size,
        }
