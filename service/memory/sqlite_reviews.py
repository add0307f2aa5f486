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

from service.memory.sql import REVIEW_ROW, SQLReviewEdit
from service.memory.store import ReviewEdit, ReviewNotFound, ReviewRow, ReviewTable


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
        row = conn.execute(REVIEW_ROW + " WHERE id = ?", (review_id,)).fetchone()
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
            REVIEW_ROW + " ORDER BY updated_at DESC LIMIT ?", (limit,)
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
            yield SQLReviewEdit(conn, self._row(conn, review_id))

    @contextmanager
    def editing(self, review_id: str) -> Iterator[ReviewEdit]:
        with self._transaction("IMMEDIATE") as conn:
            yield SQLReviewEdit(conn, self._row(conn, review_id))
