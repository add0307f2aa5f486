"""The review tables in the store's PostgreSQL database (``review``, its journal and its edits;
created by the store's migrations).

An edit locks the review's row (``SELECT … FOR UPDATE``) for its transaction, so two people
editing one review through two replicas take turns as they would on one server, and the second
gets the same 409 when the first changed what it edited.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import psycopg

from service.memory.sql import REVIEW_ROW, SQLReviewEdit
from service.memory.store import ReviewEdit, ReviewNotFound, ReviewRow, ReviewTable


class PostgresReviewTable(ReviewTable):
    """The review tables, reached through the store's connection pool."""

    def __init__(self, connect: Callable[[], AbstractContextManager[psycopg.Connection]]):
        self._connect = connect

    @staticmethod
    def _row(conn: psycopg.Connection, review_id: str, lock: bool = False) -> ReviewRow:
        sql = REVIEW_ROW + " WHERE id = %s" + (" FOR UPDATE" if lock else "")
        row = conn.execute(sql, (review_id,)).fetchone()
        if row is None:
            raise ReviewNotFound(review_id)
        return ReviewRow(*row)

    def create(self, review_id: str, name: str, origin: str, min_score: float, state: str,
               now: str, owner: str = "") -> None:
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO review (id, name, origin, min_score, created_at, updated_at, "
                "version, state, owner) VALUES (%s, %s, %s, %s, %s, %s, 0, %s, %s)",
                (review_id, name, origin, min_score, now, now, state, owner),
            )

    def list(self, limit: int) -> list[ReviewRow]:
        with self._connect() as conn:
            rows = conn.execute(
                REVIEW_ROW + " ORDER BY updated_at DESC LIMIT %s", (limit,)
            ).fetchall()
        return [ReviewRow(*row) for row in rows]

    def delete(self, review_id: str) -> None:
        with self._connect() as conn, conn.transaction():
            self._row(conn, review_id, lock=True)
            # The journal and the edits go with it (ON DELETE CASCADE).
            conn.execute("DELETE FROM review WHERE id = %s", (review_id,))

    def history(self, review_id: str) -> tuple[int, int]:
        with self._connect() as conn:
            counts = dict(conn.execute(
                "SELECT undone, COUNT(*) FROM review_edit WHERE review_id = %s GROUP BY undone",
                (review_id,),
            ).fetchall())
        return counts.get(0, 0), counts.get(1, 0)

    @contextmanager
    def reading(self, review_id: str) -> Iterator[ReviewEdit]:
        with self._connect() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield SQLReviewEdit(conn, self._row(conn, review_id), "%s")

    @contextmanager
    def editing(self, review_id: str) -> Iterator[ReviewEdit]:
        """The review's row locked (FOR UPDATE) until the transaction ends: editors on every
        replica take turns, and the second sees the first's version."""
        with self._connect() as conn, conn.transaction():
            yield SQLReviewEdit(conn, self._row(conn, review_id, lock=True), "%s")
