"""The job table in the store's PostgreSQL database (``job`` and one ``job_pair`` row per
aligned pair; created by the store's migrations): the one queue of every replica.

A claim takes the oldest claimable row with ``SELECT … FOR UPDATE SKIP LOCKED``, so two
processes claiming at once never wait for each other nor get the same job. Leases are read
and written on the database's clock (``clock_timestamp()``), the one clock of all replicas.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import psycopg

from service.memory.rows import (
    JOB_COLUMNS,
    job_assignments,
    job_from_row,
    job_results,
    job_stamp,
    to_json,
)
from service.memory.store import Job, JobTable

_NOW = "extract(epoch FROM clock_timestamp())"
_CLAIMABLE = f"(state = 'queued' OR (state = 'running' AND lease_until < {_NOW}))"
_HELD = "state = 'running' AND worker = %s"


class PostgresJobTable(JobTable):
    """Jobs through the store's connections; each call is its own transaction."""

    def __init__(self, connect: Callable[[], AbstractContextManager[psycopg.Connection]]):
        self._connect = connect

    def insert(self, job: Job) -> None:
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO job (id, state, created, updated, options, total, owner, worker, "
                "lease_until, attempts) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (job.id, job.state, job.created, job.updated, to_json(job.options), job.total,
                 job.owner, job.worker, job.lease_until, job.attempts),
            )

    def update(self, job_id: str, **fields) -> None:
        names, values = job_assignments(fields, "%s")
        with self._connect() as conn:
            conn.execute(f"UPDATE job SET {names} WHERE id = %s", (*values, job_id))

    def report(self, job_id: str, seq: int, report: dict, done: int, failed: int) -> None:
        with self._connect() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO job_pair VALUES (%s, %s, %s) "
                "ON CONFLICT (job, seq) DO UPDATE SET report = EXCLUDED.report",
                (job_id, seq, to_json(report)),
            )
            conn.execute(
                "UPDATE job SET done = %s, failed = %s, updated = %s WHERE id = %s",
                (done, failed, job_stamp(), job_id),
            )

    def get(self, job_id: str, offset: int = 0, limit: int = 1000) -> Job | None:
        with self._connect() as conn, conn.transaction():
            row = conn.execute(f"SELECT {JOB_COLUMNS} FROM job WHERE id = %s", (job_id,)).fetchone()
            reports = conn.execute(
                "SELECT report FROM job_pair WHERE job = %s ORDER BY seq LIMIT %s OFFSET %s",
                (job_id, limit, offset),
            ).fetchall()
        if row is None:
            return None
        return job_from_row(row, job_results(row, reports, offset, limit))

    def finished_before(self, stamp: str) -> list[str]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT id FROM job WHERE state NOT IN ('queued', 'running') AND updated < %s",
                (stamp,),
            ).fetchall()
        return [row[0] for row in rows]

    def delete(self, job_id: str) -> None:
        with self._connect() as conn, conn.transaction():
            conn.execute("DELETE FROM job_pair WHERE job = %s", (job_id,))
            conn.execute("DELETE FROM job WHERE id = %s", (job_id,))

    def active(self) -> list[str]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT id FROM job WHERE state IN ('queued', 'running') ORDER BY created, seq"
            ).fetchall()
        return [row[0] for row in rows]

    def claim(self, worker: str, lease_s: float) -> Job | None:
        with self._connect() as conn:
            row = conn.execute(
                f"UPDATE job SET state = 'running', worker = %s, lease_until = {_NOW} + %s, "
                "attempts = attempts + 1, updated = %s "
                f"WHERE id = (SELECT id FROM job WHERE {_CLAIMABLE} ORDER BY created, seq "
                f"LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING {JOB_COLUMNS}",
                (worker, lease_s, job_stamp()),
            ).fetchone()
        return job_from_row(row, None) if row else None

    def renew(self, job_id: str, worker: str, lease_s: float, **fields) -> Job | None:
        names, values = job_assignments(fields, "%s")
        with self._connect() as conn:
            row = conn.execute(
                f"UPDATE job SET {names}, lease_until = {_NOW} + %s "
                f"WHERE id = %s AND {_HELD} RETURNING {JOB_COLUMNS}",
                (*values, lease_s, job_id, worker),
            ).fetchone()
        return job_from_row(row, None) if row else None

    def finish(self, job_id: str, worker: str, state: str, **fields) -> bool:
        names, values = job_assignments({"state": state, **fields}, "%s")
        with self._connect() as conn:
            changed = conn.execute(
                f"UPDATE job SET {names} WHERE id = %s AND {_HELD}", (*values, job_id, worker)
            ).rowcount
        return bool(changed)

    def release(self, job_id: str, worker: str) -> bool:
        with self._connect() as conn:
            changed = conn.execute(
                "UPDATE job SET state = 'queued', worker = '', lease_until = 0, updated = %s "
                f"WHERE id = %s AND {_HELD}",
                (job_stamp(), job_id, worker),
            ).rowcount
        return bool(changed)

    def request_cancel(self, job_id: str) -> Job | None:
        with self._connect() as conn, conn.transaction():
            conn.execute(
                "UPDATE job SET "
                "state = CASE state WHEN 'queued' THEN 'cancelled' ELSE state END, "
                "cancel_requested = (cancel_requested OR state = 'running'), updated = %s "
                "WHERE id = %s AND state IN ('queued', 'running')",
                (job_stamp(), job_id),
            )
            row = conn.execute(f"SELECT {JOB_COLUMNS} FROM job WHERE id = %s", (job_id,)).fetchone()
        return job_from_row(row, None) if row else None

    def close(self) -> None:
        """Nothing of its own to close: the store closes the pool."""
