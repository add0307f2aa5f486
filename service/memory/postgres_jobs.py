"""The job table in the store's PostgreSQL database (``job`` and one ``job_pair`` row per
aligned pair; created by the store's migrations), seen alike by every replica."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime

import psycopg

from service.memory.rows import to_json
from service.memory.store import Job, JobTable

_FIELDS = {"state", "total", "done", "failed", "results", "error", "memory", "options"}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PostgresJobTable(JobTable):
    """Jobs through the store's connection pool; each call is its own transaction."""

    def __init__(self, connect: Callable[[], AbstractContextManager[psycopg.Connection]]):
        self._connect = connect

    def insert(self, job: Job) -> None:
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO job (id, state, created, updated, options, total) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (job.id, job.state, job.created, job.updated, to_json(job.options), job.total),
            )

    def update(self, job_id: str, **fields) -> None:
        unknown = set(fields) - _FIELDS
        if unknown:
            raise ValueError(f"no job fields {sorted(unknown)}")
        for name in ("results", "memory", "options"):
            if name in fields and fields[name] is not None:
                fields[name] = to_json(fields[name])
        fields["updated"] = _now()
        names = ", ".join(f"{name} = %s" for name in fields)
        with self._connect() as conn:
            conn.execute(f"UPDATE job SET {names} WHERE id = %s", (*fields.values(), job_id))

    def report(self, job_id: str, seq: int, report: dict, done: int, failed: int) -> None:
        with self._connect() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO job_pair VALUES (%s, %s, %s) "
                "ON CONFLICT (job, seq) DO UPDATE SET report = EXCLUDED.report",
                (job_id, seq, to_json(report)),
            )
            conn.execute(
                "UPDATE job SET done = %s, failed = %s, updated = %s WHERE id = %s",
                (done, failed, _now(), job_id),
            )

    def get(self, job_id: str, offset: int = 0, limit: int = 1000) -> Job | None:
        with self._connect() as conn, conn.transaction():
            row = conn.execute(
                "SELECT id, state, created, updated, options, total, done, failed, results, "
                "error, memory FROM job WHERE id = %s",
                (job_id,),
            ).fetchone()
            reports = conn.execute(
                "SELECT report FROM job_pair WHERE job = %s ORDER BY seq LIMIT %s OFFSET %s",
                (job_id, limit, offset),
            ).fetchall()
        if row is None:
            return None
        if reports:
            results = [json.loads(r[0]) for r in reports]
        else:
            results = json.loads(row[8])[offset : offset + limit] if row[8] else None
        return Job(
            *row[:4],
            json.loads(row[4]),
            *row[5:8],
            results,
            row[9] or "",
            json.loads(row[10]) if row[10] else None,
        )

    def finished_before(self, stamp: str) -> list[str]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT id FROM job WHERE state NOT IN ('queued', 'running') AND updated < %s",
                (stamp,),
            ).fetchall()
        return [row[0] for row in rows]

    def delete(self, job_id: str) -> None:
        with self._connect() as conn:
            conn.execute("DELETE FROM job WHERE id = %s", (job_id,))  # its pairs cascade

    def active(self) -> list[str]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT id FROM job WHERE state IN ('queued', 'running') ORDER BY created, seq"
            ).fetchall()
        return [row[0] for row in rows]

    def close(self) -> None:
        """Nothing of its own to close: the store closes the pool."""
