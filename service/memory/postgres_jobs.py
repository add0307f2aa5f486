"""The job table in the store's PostgreSQL database (``job`` and one ``job_pair`` row per
aligned pair; created by the store's migrations): the one queue of every replica.

A claim takes the oldest claimable row with ``SELECT … FOR UPDATE SKIP LOCKED``, so two
processes claiming at once never wait for each other nor get the same job. Leases are read
and written on the database's clock (``clock_timestamp()``), the one clock of all replicas.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime

import psycopg

from service.memory.rows import to_json
from service.memory.store import Job, JobTable

_FIELDS = {"state", "total", "done", "failed", "results", "error", "memory", "options",
           "owner", "worker", "lease_until", "attempts", "cancel_requested"}
_COLUMNS = (
    "id, state, created, updated, options, total, done, failed, results, error, memory, "
    "owner, worker, lease_until, attempts, cancel_requested"
)
_NOW = "extract(epoch FROM clock_timestamp())"
_CLAIMABLE = f"(state = 'queued' OR (state = 'running' AND lease_until < {_NOW}))"
_HELD = "state = 'running' AND worker = %s"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _job(row: tuple, results: list | None) -> Job:
    return Job(
        *row[:4],
        json.loads(row[4]),
        *row[5:8],
        results,
        row[9] or "",
        json.loads(row[10]) if row[10] else None,
        owner=row[11],
        worker=row[12],
        lease_until=row[13],
        attempts=row[14],
        cancel_requested=row[15],
    )


def _assignments(fields: dict) -> tuple[str, list]:
    unknown = set(fields) - _FIELDS
    if unknown:
        raise ValueError(f"no job fields {sorted(unknown)}")
    for name in ("results", "memory", "options"):
        if name in fields and fields[name] is not None:
            fields[name] = to_json(fields[name])
    fields["updated"] = _now()
    return ", ".join(f"{name} = %s" for name in fields), list(fields.values())


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
        names, values = _assignments(fields)
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
                (done, failed, _now(), job_id),
            )

    def get(self, job_id: str, offset: int = 0, limit: int = 1000) -> Job | None:
        with self._connect() as conn, conn.transaction():
            row = conn.execute(f"SELECT {_COLUMNS} FROM job WHERE id = %s", (job_id,)).fetchone()
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
        return _job(row, results)

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
                f"LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING {_COLUMNS}",
                (worker, lease_s, _now()),
            ).fetchone()
        return _job(row, None) if row else None

    def renew(self, job_id: str, worker: str, lease_s: float, **fields) -> Job | None:
        names, values = _assignments(fields)
        with self._connect() as conn:
            row = conn.execute(
                f"UPDATE job SET {names}, lease_until = {_NOW} + %s "
                f"WHERE id = %s AND {_HELD} RETURNING {_COLUMNS}",
                (*values, lease_s, job_id, worker),
            ).fetchone()
        return _job(row, None) if row else None

    def finish(self, job_id: str, worker: str, state: str, **fields) -> bool:
        names, values = _assignments({"state": state, **fields})
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
                (_now(), job_id, worker),
            ).rowcount
        return bool(changed)

    def request_cancel(self, job_id: str) -> Job | None:
        with self._connect() as conn, conn.transaction():
            conn.execute(
                "UPDATE job SET "
                "state = CASE state WHEN 'queued' THEN 'cancelled' ELSE state END, "
                "cancel_requested = (cancel_requested OR state = 'running'), updated = %s "
                "WHERE id = %s AND state IN ('queued', 'running')",
                (_now(), job_id),
            )
            row = conn.execute(f"SELECT {_COLUMNS} FROM job WHERE id = %s", (job_id,)).fetchone()
        return _job(row, None) if row else None

    def close(self) -> None:
        """Nothing of its own to close: the store closes the pool."""
