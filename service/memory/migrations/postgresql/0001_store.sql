-- The memory in PostgreSQL: the same tables as SQLite's, JSON kept as text (what the store
-- writes is what it reads back, and a move from SQLite copies rows as they are).
CREATE TABLE unit (
    id BIGINT PRIMARY KEY,
    hash TEXT NOT NULL,
    source_key TEXT NOT NULL,
    zh TEXT NOT NULL,
    en TEXT NOT NULL,
    zh_fold TEXT NOT NULL,
    en_fold TEXT NOT NULL,
    zh_runs TEXT,
    en_runs TEXT,
    source_lang TEXT NOT NULL,
    target_lang TEXT NOT NULL,
    props TEXT NOT NULL DEFAULT '{}',
    tmx TEXT,
    document TEXT NOT NULL DEFAULT '',
    speaker TEXT NOT NULL DEFAULT '',
    tuid TEXT NOT NULL DEFAULT '',
    creationdate TEXT NOT NULL DEFAULT '',
    creationid TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    origin TEXT NOT NULL DEFAULT '',
    import_id BIGINT NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 1
);
-- Unit ids are never reused (a tombstone names them): taken from this sequence only.
CREATE SEQUENCE unit_id_seq OWNED BY unit.id;
CREATE INDEX unit_hash ON unit(hash);
CREATE INDEX unit_source_key ON unit(source_key);
CREATE INDEX unit_tuid ON unit(tuid) WHERE tuid != '';
CREATE INDEX unit_document ON unit(document);
CREATE INDEX unit_speaker ON unit(speaker);
CREATE INDEX unit_import ON unit(import_id);
CREATE TABLE tombstone (
    unit_id BIGINT PRIMARY KEY,
    generation BIGINT NOT NULL,
    replaced_by BIGINT
);
CREATE INDEX tombstone_generation ON tombstone(generation);
CREATE TABLE import_log (
    id BIGSERIAL PRIMARY KEY,
    source TEXT NOT NULL,
    rule TEXT NOT NULL,
    started TEXT NOT NULL,
    finished TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    result TEXT NOT NULL DEFAULT '{}',
    header TEXT,
    error TEXT NOT NULL DEFAULT '',
    job TEXT,
    runner TEXT NOT NULL DEFAULT ''
);
-- At most one import of a job commits: a job run again after a crash finds its import in.
CREATE UNIQUE INDEX import_log_job ON import_log(job) WHERE job IS NOT NULL AND state = 'done';
CREATE INDEX import_log_running ON import_log(state) WHERE state = 'running';
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('generation', '0');
CREATE TABLE review (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    origin TEXT NOT NULL DEFAULT '',
    min_score DOUBLE PRECISION NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version INTEGER NOT NULL,
    state TEXT NOT NULL,
    snapshot_version INTEGER NOT NULL DEFAULT 0,
    finished_at TEXT NOT NULL DEFAULT '',
    finished_by TEXT NOT NULL DEFAULT ''
);
CREATE TABLE review_journal (
    review_id TEXT NOT NULL REFERENCES review(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    start INTEGER NOT NULL,
    removed INTEGER NOT NULL,
    added TEXT NOT NULL,
    next_id INTEGER NOT NULL,
    PRIMARY KEY (review_id, version)
);
CREATE TABLE review_edit (
    review_id TEXT NOT NULL REFERENCES review(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    op TEXT NOT NULL,
    start INTEGER NOT NULL,
    removed TEXT NOT NULL,
    added TEXT NOT NULL,
    undone INTEGER NOT NULL DEFAULT 0,
    at TEXT NOT NULL,
    by TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (review_id, seq)
);
CREATE TABLE job (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    options TEXT NOT NULL,
    total INTEGER NOT NULL DEFAULT 0,
    done INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    results TEXT,
    error TEXT,
    memory TEXT,
    owner TEXT NOT NULL DEFAULT '',
    worker TEXT NOT NULL DEFAULT '',
    lease_until DOUBLE PRECISION NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    cancel_requested BOOLEAN NOT NULL DEFAULT false,
    seq BIGSERIAL
);
CREATE INDEX job_active ON job(created, seq) WHERE state IN ('queued', 'running');
CREATE TABLE job_pair (
    job TEXT NOT NULL,
    seq INTEGER NOT NULL,
    report TEXT NOT NULL,
    PRIMARY KEY (job, seq)
);
