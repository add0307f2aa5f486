-- The memory's SQLite database as Concordia wrote it before versioned migrations (store
-- format 2, import_log with its job and runner): every statement keeps what exists, so a data
-- folder of that time is adopted as version 1 (an import_log without job and runner gets them
-- first: service/memory/sqlite.py).
CREATE TABLE IF NOT EXISTS unit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
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
    import_id INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS unit_hash ON unit(hash);
CREATE INDEX IF NOT EXISTS unit_source_key ON unit(source_key);
CREATE INDEX IF NOT EXISTS unit_tuid ON unit(tuid) WHERE tuid != '';
CREATE INDEX IF NOT EXISTS unit_document ON unit(document);
CREATE INDEX IF NOT EXISTS unit_speaker ON unit(speaker);
CREATE INDEX IF NOT EXISTS unit_import ON unit(import_id);
CREATE TABLE IF NOT EXISTS tombstone (
    unit_id INTEGER PRIMARY KEY,
    generation INTEGER NOT NULL,
    replaced_by INTEGER
);
CREATE TABLE IF NOT EXISTS import_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
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
CREATE UNIQUE INDEX IF NOT EXISTS import_log_job ON import_log(job)
    WHERE job IS NOT NULL AND state = 'done';
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('generation', '0');
INSERT OR IGNORE INTO meta VALUES ('schema', '2');
CREATE TABLE IF NOT EXISTS review (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    origin TEXT NOT NULL DEFAULT '',
    min_score REAL NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version INTEGER NOT NULL,
    state TEXT NOT NULL,
    snapshot_version INTEGER NOT NULL DEFAULT 0,
    finished_at TEXT NOT NULL DEFAULT '',
    finished_by TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS review_journal (
    review_id TEXT NOT NULL REFERENCES review(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    start INTEGER NOT NULL,
    removed INTEGER NOT NULL,
    added TEXT NOT NULL,
    next_id INTEGER NOT NULL,
    PRIMARY KEY (review_id, version)
);
CREATE TABLE IF NOT EXISTS review_edit (
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
