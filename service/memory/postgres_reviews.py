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

from service.memory.store import ReviewEdit, ReviewNotFound, ReviewRow, ReviewTable

_ROW = (
    "SELECT id, name, origin, min_score, created_at, updated_at, version, finished_at, "
    "finished_by, snapshot_version, owner FROM review"
)


class _Edit(ReviewEdit):
    def __init__(self, conn: psycopg.Connection, row: ReviewRow):
        self._conn = conn
        self.row = row

    def snapshot(self) -> str:
        return self._conn.execute(
            "SELECT state FROM review WHERE id = %s", (self.row.id,)
        ).fetchone()[0]

    def journal(self) -> list[tuple[int, int, str, int]]:
        return self._conn.execute(
            "SELECT start, removed, added, next_id FROM review_journal "
            "WHERE review_id = %s AND version > %s ORDER BY version",
            (self.row.id, self.row.snapshot_version),
        ).fetchall()

    def add_journal(self, version: int, start: int, removed: int, added: str, next_id: int):
        self._conn.execute(
            "INSERT INTO review_journal (review_id, version, start, removed, added, next_id) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (self.row.id, version, start, removed, added, next_id),
        )

    def write_snapshot(self, state: str, version: int) -> None:
        self._conn.execute(
            "UPDATE review SET state = %s, snapshot_version = %s WHERE id = %s",
            (state, version, self.row.id),
        )
        self._conn.execute("DELETE FROM review_journal WHERE review_id = %s", (self.row.id,))

    def set_version(self, version: int, updated_at: str) -> None:
        self._conn.execute(
            "UPDATE review SET version = %s, updated_at = %s WHERE id = %s",
            (version, updated_at, self.row.id),
        )

    def log_edit(self, op: str, start: int, removed: str, added: str, at: str, by: str,
                 keep: int | None = None):
        conn, review_id = self._conn, self.row.id
        conn.execute("DELETE FROM review_edit WHERE review_id = %s AND undone = 1", (review_id,))
        seq = conn.execute(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM review_edit WHERE review_id = %s",
            (review_id,),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO review_edit (review_id, seq, op, start, removed, added, at, by)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (review_id, seq, op, start, removed, added, at, by),
        )
        if keep is not None:
            conn.execute("DELETE FROM review_edit WHERE review_id = %s AND seq <= %s",
                         (review_id, seq - keep))

    def history_step(self, which: str) -> tuple[int, str, str] | None:
        undo = which == "undo"
        row = self._conn.execute(
            "SELECT seq, start, removed, added FROM review_edit "
            "WHERE review_id = %s AND undone = %s"
            f" ORDER BY seq {'DESC' if undo else 'ASC'} LIMIT 1",
            (self.row.id, 0 if undo else 1),
        ).fetchone()
        if row is None:
            return None
        seq, start, removed, added = row
        self._conn.execute(
            "UPDATE review_edit SET undone = %s WHERE review_id = %s AND seq = %s",
            (1 if undo else 0, self.row.id, seq),
        )
        return start, removed, added

    def finish(self, at: str, by: str) -> None:
        self._conn.execute(
            "UPDATE review SET finished_at = %s, finished_by = %s WHERE id = %s",
            (at, by, self.row.id),
        )


class PostgresReviewTable(ReviewTable):
    """The review tables, reached through the store's connection pool."""

    def __init__(self, connect: Callable[[], AbstractContextManager[psycopg.Connection]]):
        self._connect = connect

    @staticmethod
    def _row(conn: psycopg.Connection, review_id: str, lock: bool = False) -> ReviewRow:
        sql = _ROW + " WHERE id = %s" + (" FOR UPDATE" if lock else "")
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
            rows = conn.execute(_ROW + " ORDER BY updated_at DESC LIMIT %s", (limit,)).fetchall()
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
            yield _Edit(conn, self._row(conn, review_id))

    @contextmanager
    def editing(self, review_id: str) -> Iterator[ReviewEdit]:
        """The review's row locked (FOR UPDATE) until the transaction ends: editors on every
        replica take turns, and the second sees the first's version."""
        with self._connect() as conn, conn.transaction():
            yield _Edit(conn, self._row(conn, review_id, lock=True))
