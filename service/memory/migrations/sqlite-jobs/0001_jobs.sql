-- The job database beside the memory (jobs.sqlite) as Concordia wrote it before versioned
-- migrations: every statement keeps what exists, so such a file is adopted as version 1 (a job
-- table without the claim columns gets them first: service/memory/sqlite.py).
CREATE TABLE IF NOT EXISTS job (
    id TEXT PRIMARY KEY, state TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL,
    options TEXT NOT NULL, total INTEGER NOT NULL DEFAULT 0, done INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0, results TEXT, error TEXT, memory TEXT,
    owner TEXT NOT NULL DEFAULT '', worker TEXT NOT NULL DEFAULT '',
    lease_until REAL NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS job_pair (
    job TEXT NOT NULL, seq INTEGER NOT NULL, report TEXT NOT NULL, PRIMARY KEY (job, seq)
);
