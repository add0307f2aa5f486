"""What the SQLite and the PostgreSQL stores share: the store's logic over SQL written once,
with ``?`` placeholders, and a review's edit over either database.

``SQLStore`` holds everything the two dialects do alike. An implementation gives the
differences as small hooks: its placeholder, reads (``_read``, and ``_pages`` for a long
iteration), a write transaction on units (``_write``) and an import's (``_importing``, which
writes the audit row), how rows are inserted and units tombstoned, the generation bump, a
list of values in a condition (``_any``) and the substring function (``_FIND``).
"""

from __future__ import annotations

import json
import time
from abc import abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager

from aligner.errors import InputError
from aligner.models import Run, TranslationUnit
from service.memory.matching import fold_case
from service.memory.rows import (
    COLUMNS,
    DATE,
    DOC,
    EN_RUNS,
    HASH,
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
    MergeRule,
    ReviewEdit,
    ReviewRow,
    StoredUnit,
    StoreError,
    TMStore,
    UnitGone,
    UnitQuery,
)

# The columns of an ``import_log`` row that ``record_from_row`` reads.
LOG_COLUMNS = "id, source, rule, started, finished, state, result, header, error, job"


def in_dialect(sql: str, placeholder: str) -> str:
    """``sql``, written with ``?`` placeholders, with the dialect's."""
    return sql if placeholder == "?" else sql.replace("?", placeholder)


def failure(exc: BaseException) -> str:
    """What an import's audit row says about the error that ended it."""
    return str(exc) if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"


class SQLStore(TMStore):
    """The store over a SQL database; see the module's docstring for the hooks."""

    max_segment_chars: int
    PLACEHOLDER = "?"
    _FIND = "instr"  # the position of a substring, 0 when absent
    _MERGE = ""  # UPDATE a stored unit with what an identical imported one adds (7 values)
    # The statements giving the documents, speakers and last import of ``stats`` (one row
    # each, in that order), as each dialect's planner does them best.
    _SUMMARY: tuple[str, ...] = (
        "SELECT COUNT(DISTINCT document) FROM unit WHERE document != ''",
        "SELECT COUNT(DISTINCT speaker) FROM unit WHERE speaker != ''",
        "SELECT MAX(created_at) FROM unit",
    )

    # -- the dialect's hooks ----------------------------------------------------------------
    @abstractmethod
    def _read(self, sql: str, params: Sequence = ()) -> list[tuple]:
        """The rows of one statement, on a connection of the store's own."""

    @abstractmethod
    def _pages(self) -> AbstractContextManager[Callable[[str, Sequence], list[tuple]]]:
        """A reader for the statements of one long iteration (page after page)."""

    @abstractmethod
    def _write(self) -> AbstractContextManager:
        """A write transaction on units: its connection; committed at the end, rolled back
        on an error."""

    @abstractmethod
    def _importing(
        self, source: str, rule: MergeRule, created_at: str, job: str
    ) -> AbstractContextManager[tuple]:
        """An import's audit row written (``running``), then its write transaction: (its
        connection, the import's id). An error marks the audit row failed."""

    @abstractmethod
    def _insert(self, conn, rows: list[list]) -> list[int]:
        """Insert rows (``INSERT_COLUMNS``); their new ids, in order."""

    @abstractmethod
    def _tombstone(self, conn, ids: list[int], replaced_by: int | None) -> None:
        """Delete units, leaving tombstones of the next generation."""

    @abstractmethod
    def _bump(self, conn) -> int:
        """Count a committed change: the new generation."""

    @staticmethod
    @abstractmethod
    def _any(column: str, values: list) -> Iterator[tuple[str, list]]:
        """Conditions "``column`` is one of ``values``" with their parameters, in the pieces
        the dialect takes; none for no values."""

    @abstractmethod
    def _database_bytes(self) -> int: ...

    # -- helpers -----------------------------------------------------------------------------
    def _exec(self, conn, sql: str, params: Sequence = ()):
        """Run ``sql`` (``?`` placeholders) on ``conn``; its cursor."""
        return conn.execute(in_dialect(sql, self.PLACEHOLDER), params)

    def _row(self, unit: TranslationUnit, created_at: str, origin: str, import_id: int):
        """The insert row for ``unit``, or the reason it is skipped."""
        return unit_row(unit, created_at, origin, import_id, self.max_segment_chars)

    # -- imports -------------------------------------------------------------------------------
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
        with self._importing(source, rule, created_at, job) as (conn, import_id):
            result.import_id = import_id
            if job and (done := self._job_import(conn, job)) is not None:
                raise AlreadyImported(done)  # committed meanwhile, by another process
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
                result.skipped_reasons[reason] = result.skipped_reasons.get(reason, 0) + count
            result.generation = self._bump(conn)
            result.seconds = time.perf_counter() - started
            self._log_end(conn, import_id, result.as_dict(), header)
        if progress is not None:
            progress(seen)
        return result

    def _log_end(self, conn, import_id: int, result: dict, header: dict | None) -> None:
        """The import's figures, and its TMX header (read as the units were)."""
        self._exec(
            conn,
            "UPDATE import_log SET state = 'done', finished = ?, result = ?, header = ? "
            "WHERE id = ?",
            (now_tmx(), to_json(result), to_json(header) if header else None, import_id),
        )

    def _apply(self, conn, rows: list[list], rule: MergeRule, result: ImportResult) -> None:
        """Store one chunk of rows under ``rule``."""

        def merge(row: list, unit_id: int) -> None:
            date = row[DATE]
            self._exec(conn, self._MERGE,
                    (row[PROPS], row[DOC], row[SPEAKER], date, date, date, unit_id))

        ops = ImportOps(
            existing=lambda column, values, with_date: self._existing(
                conn, column, values, with_date
            ),
            insert=lambda rows: self._insert(conn, rows),
            merge=merge,
            retire=lambda ids: self._tombstone(conn, ids, None),
            stored=lambda unit_id: self._exec(
                conn, "SELECT hash, props, tmx FROM unit WHERE id = ?", (unit_id,)
            ).fetchone(),
        )
        apply_chunk(ops, rows, rule, result)

    def _existing(self, conn, column: str, values: list[str], with_date: bool) -> dict:
        found: dict = {}
        what = "id, creationdate, tmx" if with_date else "id"
        for condition, params in self._any(column, list(dict.fromkeys(values))):
            for row in self._exec(
                conn, f"SELECT {column}, {what} FROM unit WHERE {condition} ORDER BY id", params
            ):
                if with_date:
                    attrs = (json.loads(row[3]) if row[3] else {}).get("attrs", {})
                    found[row[0]] = (row[1], unit_date(attrs, row[2]))
                else:
                    found.setdefault(row[0], row[1])
        return found

    def _job_import(self, conn, job_id: str) -> ImportRecord | None:
        row = self._exec(
            conn, f"SELECT {LOG_COLUMNS} FROM import_log WHERE job = ? AND state = 'done'",
            (job_id,),
        ).fetchone()
        return record_from_row(row) if row else None

    def job_import(self, job_id: str) -> ImportRecord | None:
        rows = self._read(
            f"SELECT {LOG_COLUMNS} FROM import_log WHERE job = ? AND state = 'done'", (job_id,)
        )
        return record_from_row(rows[0]) if rows else None

    def imports(self, limit: int = 50) -> list[ImportRecord]:
        rows = self._read(f"SELECT {LOG_COLUMNS} FROM import_log ORDER BY id DESC LIMIT ?",
                          (limit,))
        return [record_from_row(r) for r in rows]

    def import_record(self, import_id: int) -> ImportRecord | None:
        rows = self._read(f"SELECT {LOG_COLUMNS} FROM import_log WHERE id = ?", (import_id,))
        return record_from_row(rows[0]) if rows else None

    # -- deletions and edits -------------------------------------------------------------------
    def delete(self, ids: Iterable[int] = (), *, document: str | None = None) -> list[int]:
        ids = [int(i) for i in ids]

        def select(conn) -> list[int]:
            found: list[int] = []
            for condition, params in self._any("id", ids):
                found += [r[0] for r in self._exec(conn, f"SELECT id FROM unit WHERE {condition}",
                                                params)]
            if document is not None:
                found += [r[0] for r in self._exec(conn, "SELECT id FROM unit WHERE document = ?",
                                                (document,))]
            return sorted(set(found))

        return self._retire(select)

    def _where(self, query: UnitQuery) -> tuple[list[str], list]:
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
            where.append(f"({self._FIND}(zh_fold, ?) > 0 OR {self._FIND}(en_fold, ?) > 0)")
            params += [fold_case(query.contains)] * 2
        return where, params

    def delete_where(self, query: UnitQuery) -> list[int]:
        if query.is_empty():
            raise StoreError("empty_query", "a deletion needs at least one condition")
        where, params = self._where(query)
        sql = f"SELECT id FROM unit WHERE {' AND '.join(where)} ORDER BY id"
        return self._retire(lambda conn: [r[0] for r in self._exec(conn, sql, params)])

    def _retire(self, select: Callable[..., list[int]]) -> list[int]:
        """Tombstone the units ``select(conn)`` finds, in one write transaction; their ids."""
        with self._write() as conn:
            found = select(conn)
            if found:
                self._tombstone(conn, found, None)
                self._bump(conn)
        return found

    def _current(self, conn, unit_id: int, version: int | None) -> StoredUnit:
        row = self._exec(conn, f"SELECT {COLUMNS} FROM unit WHERE id = ?", (unit_id,)).fetchone()
        if row is None:
            raise UnitGone(
                unit_id, self._follow(lambda sql, p: self._exec(conn, sql, p).fetchall(), unit_id)
            )
        unit = row_to_unit(row)
        if version is not None and unit.version != version:
            raise EditConflict(unit_id, version, unit.version)
        return unit

    @staticmethod
    def _follow(read: Callable[[str, Sequence], list[tuple]], unit_id: int) -> int | None:
        """The id a tombstoned unit lives on as (``read`` runs the queries), or None."""
        current, seen = unit_id, set()
        while current not in seen:
            seen.add(current)
            rows = read("SELECT replaced_by FROM tombstone WHERE unit_id = ?", (current,))
            if not rows:
                return current if current != unit_id else None
            if rows[0][0] is None:
                return None
            current = rows[0][0]
        return None

    def replaced_by(self, unit_id: int) -> int | None:
        return self._follow(self._read, unit_id)

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
                self._exec(conn, "UPDATE unit SET version = ? WHERE id = ?",
                        (unit.version + 1, new_id))
                self._tombstone(conn, [unit_id], new_id)
            else:
                new_id = unit_id
                self._exec(
                    conn,
                    "UPDATE unit SET hash = ?, zh_runs = ?, en_runs = ?, props = ?, tmx = ?, "
                    "document = ?, speaker = ?, version = version + 1 WHERE id = ?",
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
            self._exec(conn, "UPDATE unit SET tmx = ? WHERE id = ?", (to_json(tmx), unit_id))
            return self._current(conn, unit_id, None)

    # -- reads -----------------------------------------------------------------------------------
    @property
    def generation(self) -> int:
        return int(self._read("SELECT value FROM meta WHERE key = 'generation'")[0][0])

    def count(self) -> int:
        return self._read("SELECT COUNT(*) FROM unit")[0][0]

    def max_id(self) -> int:
        return self._read("SELECT COALESCE(MAX(id), 0) FROM unit")[0][0]

    def get(self, ids: Iterable[int]) -> dict[int, StoredUnit]:
        found: dict[int, StoredUnit] = {}
        for condition, params in self._any("id", [int(i) for i in ids]):
            for row in self._read(f"SELECT {COLUMNS} FROM unit WHERE {condition}", params):
                found[row[0]] = row_to_unit(row)
        return found

    def iter_segment_batches(
        self, after_id: int = 0, batch: int = 5000
    ) -> Iterator[list[tuple[int, str, str]]]:
        with self._pages() as read:
            last = after_id
            while True:
                rows = read("SELECT id, zh, en FROM unit WHERE id > ? ORDER BY id LIMIT ?",
                            (last, batch))
                if not rows:
                    return
                yield rows
                last = rows[-1][0]

    def deleted_since(self, generation: int) -> list[int]:
        rows = self._read("SELECT unit_id FROM tombstone WHERE generation > ?", (generation,))
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
        with self._pages() as read:
            while True:
                rows = read(sql, (*params, batch))
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
        checks = " OR ".join(f"{self._FIND}({side}_fold, ?) > 0" for side in sides)
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
                for condition, ids in self._any("id", part):
                    rows = self._read(f"{sql} AND {condition} ORDER BY id", [*args, *ids])
                    if not take(rows):
                        return page, total
        last = after if among is not None else 0
        while True:  # pages in id order, read until the answer is complete
            rows = self._read(f"{sql} AND id > ? ORDER BY id LIMIT 1000", [*args, last])
            if not rows or not take(rows):
                return page, total
            last = rows[-1][0]

    def stats(self) -> dict:
        total = self.count()
        directions = {
            f"{s}>{t}": n
            for s, t, n in self._read(
                "SELECT source_lang, target_lang, COUNT(*) FROM unit GROUP BY 1, 2 "
                "ORDER BY 3 DESC"
            )
        }
        documents, speakers, last = [v for sql in self._SUMMARY for v in self._read(sql)[0]]
        return {
            "units": total,
            "directions": directions,
            "documents": documents,
            "speakers": speakers,
            "last_import": last or "",
            "generation": self.generation,
            "database_bytes": self._database_bytes(),
        }


# -- reviews ------------------------------------------------------------------------------------
REVIEW_ROW = (
    "SELECT id, name, origin, min_score, created_at, updated_at, version, finished_at, "
    "finished_by, snapshot_version, owner FROM review"
)


class SQLReviewEdit(ReviewEdit):
    """One review read or edited inside its transaction on ``conn`` (either database)."""

    def __init__(self, conn, row: ReviewRow, placeholder: str = "?"):
        self._conn = conn
        self.row = row
        self._placeholder = placeholder

    def _exec(self, sql: str, params: Sequence = ()):
        return self._conn.execute(in_dialect(sql, self._placeholder), params)

    def snapshot(self) -> str:
        return self._exec("SELECT state FROM review WHERE id = ?", (self.row.id,)).fetchone()[0]

    def journal(self) -> list[tuple[int, int, str, int]]:
        return self._exec(
            "SELECT start, removed, added, next_id FROM review_journal "
            "WHERE review_id = ? AND version > ? ORDER BY version",
            (self.row.id, self.row.snapshot_version),
        ).fetchall()

    def add_journal(self, version: int, start: int, removed: int, added: str, next_id: int):
        self._exec(
            "INSERT INTO review_journal (review_id, version, start, removed, added, next_id) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (self.row.id, version, start, removed, added, next_id),
        )

    def write_snapshot(self, state: str, version: int) -> None:
        self._exec("UPDATE review SET state = ?, snapshot_version = ? WHERE id = ?",
                (state, version, self.row.id))
        self._exec("DELETE FROM review_journal WHERE review_id = ?", (self.row.id,))

    def set_version(self, version: int, updated_at: str) -> None:
        self._exec("UPDATE review SET version = ?, updated_at = ? WHERE id = ?",
                (version, updated_at, self.row.id))

    def log_edit(self, op: str, start: int, removed: str, added: str, at: str, by: str,
                 keep: int | None = None):
        review_id = self.row.id
        self._exec("DELETE FROM review_edit WHERE review_id = ? AND undone = 1", (review_id,))
        seq = self._exec(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM review_edit WHERE review_id = ?", (review_id,)
        ).fetchone()[0]
        self._exec(
            "INSERT INTO review_edit (review_id, seq, op, start, removed, added, at, by)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (review_id, seq, op, start, removed, added, at, by),
        )
        if keep is not None:
            self._exec("DELETE FROM review_edit WHERE review_id = ? AND seq <= ?",
                    (review_id, seq - keep))

    def history_step(self, which: str) -> tuple[int, str, str] | None:
        undo = which == "undo"
        row = self._exec(
            "SELECT seq, start, removed, added FROM review_edit WHERE review_id = ? AND undone = ?"
            f" ORDER BY seq {'DESC' if undo else 'ASC'} LIMIT 1",
            (self.row.id, 0 if undo else 1),
        ).fetchone()
        if row is None:
            return None
        seq, start, removed, added = row
        self._exec("UPDATE review_edit SET undone = ? WHERE review_id = ? AND seq = ?",
                (1 if undo else 0, self.row.id, seq))
        return start, removed, added

    def finish(self, at: str, by: str) -> None:
        self._exec("UPDATE review SET finished_at = ?, finished_by = ? WHERE id = ?",
                (at, by, self.row.id))
