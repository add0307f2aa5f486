"""The review tables in the memory's SQLite database (``review``, its journal and its edits;
created by the store's migrations).

Each thread keeps one connection; every change is one ``BEGIN IMMEDIATE`` transaction, so
SQLite serialises writers across threads and worker processes.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from service.memory.store import ReviewEdit, ReviewNotFound, ReviewRow, ReviewTable

_ROW = (
    "SELECT id, name, origin, min_score, created_at, updated_at, version, finished_at, "
    "finished_by, snapshot_version, owner FROM review"
)


class _Edit(ReviewEdit):
    def __init__(self, conn: sqlite3.Connection, row: ReviewRow):
        self._conn = conn
        self.row = row

    def snapshot(self) -> str:
        return self._conn.execute(
            "SELECT state FROM review WHERE id = ?", (self.row.id,)
        ).fetchone()[0]

    def journal(self) -> list[tuple[int, int, str, int]]:
        return self._conn.execute(
            "SELECT start, removed, added, next_id FROM review_journal "
            "WHERE review_id = ? AND version > ? ORDER BY version",
            (self.row.id, self.row.snapshot_version),
        ).fetchall()

    def add_journal(self, version: int, start: int, removed: int, added: str, next_id: int):
        self._conn.execute(
            "INSERT INTO review_journal (review_id, version, start, removed, added, next_id) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (self.row.id, version, start, removed, added, next_id),
        )

    def write_snapshot(self, state: str, version: int) -> None:
        self._conn.execute(
            "UPDATE review SET state = ?, snapshot_version = ? WHERE id = ?",
            (state, version, self.row.id),
        )
        self._conn.execute("DELETE FROM review_journal WHERE review_id = ?", (self.row.id,))

    def set_version(self, version: int, updated_at: str) -> None:
        self._conn.execute(
            "UPDATE review SET version = ?, updated_at = ? WHERE id = ?",
            (version, updated_at, self.row.id),
        )

    def log_edit(self, op: str, start: int, removed: str, added: str, at: str, by: str,
                 keep: int | None = None):
        conn, review_id = self._conn, self.row.id
        conn.execute("DELETE FROM review_edit WHERE review_id = ? AND undone = 1", (review_id,))
        seq = conn.execute(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM review_edit WHERE review_id = ?",
            (review_id,),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO review_edit (review_id, seq, op, start, removed, added, at, by)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (review_id, seq, op, start, removed, added, at, by),
        )
        if keep is not None:
            conn.execute("DELETE FROM review_edit WHERE review_id = ? AND seq <= ?",
                         (review_id, seq - keep))

    def history_step(self, which: str) -> tuple[int, str, str] | None:
        undo = which == "undo"
        row = self._conn.execute(
            "SELECT seq, start, removed, added FROM review_edit WHERE review_id = ? AND undone = ?"
            f" ORDER BY seq {'DESC' if undo else 'ASC'} LIMIT 1",
            (self.row.id, 0 if undo else 1),
        ).fetchone()
        if row is None:
            return None
        seq, start, removed, added = row
        self._conn.execute(
            "UPDATE review_edit SET undone = ? WHERE review_id = ? AND seq = ?",
            (1 if undo else 0, self.row.id, seq),
        )
        return start, removed, added

    def finish(self, at: str, by: str) -> None:
        self._conn.execute(
            "UPDATE review SET finished_at = ?, finished_by = ? WHERE id = ?",
            (at, by, self.row.id),
        )


class SQLiteReviewTable(ReviewTable):
    """The review tables, reached through connections that ``connect`` opens."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]):
        self._connect = connect
        self._local = threading.local()
        conn = self._conn()  # the tables come from the store's migrations
        columns = {r[1] for r in conn.execute("PRAGMA table_info(review)")}
        if "snapshot_version" not in columns:  # a review table of the first format
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "ALTER TABLE review ADD COLUMN snapshot_version INTEGER NOT NULL DEFAULT 0"
            )
            conn.execute("UPDATE review SET snapshot_version = version")
            conn.execute("COMMIT")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    @contextmanager
    def _transaction(self, kind: str) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute(f"BEGIN {kind}")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _row(conn: sqlite3.Connection, review_id: str) -> ReviewRow:
        row = conn.execute(_ROW + " WHERE id = ?", (review_id,)).fetchone()
        if row is None:
            raise ReviewNotFound(review_id)
        return ReviewRow(*row)

    def create(self, review_id: str, name: str, origin: str, min_score: float, state: str,
               now: str, owner: str = "") -> None:
        with self._transaction("IMMEDIATE") as conn:
            conn.execute(
                "INSERT INTO review (id, name, origin, min_score, created_at, updated_at, "
                "version, state, owner) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)",
                (review_id, name, origin, min_score, now, now, state, owner),
            )

    def list(self, limit: int) -> list[ReviewRow]:
        rows = self._conn().execute(
            _ROW + " ORDER BY updated_at DESC LIMIT ?", (limit,)
        ).fetchall()
        return [ReviewRow(*row) for row in rows]

    def delete(self, review_id: str) -> None:
        with self._transaction("IMMEDIATE") as conn:
            self._row(conn, review_id)
            for table, column in (("review_edit", "review_id"), ("review_journal", "review_id"),
                                  ("review", "id")):
                conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (review_id,))

    def history(self, review_id: str) -> tuple[int, int]:
        counts = dict(self._conn().execute(
            "SELECT undone, COUNT(*) FROM review_edit WHERE review_id = ? GROUP BY undone",
            (review_id,),
        ).fetchall())
        return counts.get(0, 0), counts.get(1, 0)

    @contextmanager
    def reading(self, review_id: str) -> Iterator[ReviewEdit]:
        with self._transaction("") as conn:  # the row and its journal as of one moment
            yield _Edit(conn, self._row(conn, review_id))

    @contextmanager
    def editing(self, review_id: str) -> Iterator[ReviewEdit]:
        with self._transaction("IMMEDIATE") as conn:
            yield _Edit(conn, self._row(conn, review_id))
