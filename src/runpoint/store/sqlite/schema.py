"""The SQLite schema of a root's ``runpoint.db`` and its migrations.

The version lives in ``PRAGMA user_version``. :func:`ensure_schema` creates a new
database at :data:`SCHEMA_VERSION`, applies the migrations an older one needs, and
refuses one written by a newer runpoint. Migration ``n`` takes a database from version
``n - 1`` to ``n``; add new ones at the end and never edit a released one.

Metric points are not one row each: each row of ``metric_chunks`` packs up to a few
thousand points of one (run, key) as little-endian int64 steps, float64 values and
float64 wall times, with the chunk's count, step range and value range beside the blobs
so that charts can be downsampled without a full scan.
"""

from __future__ import annotations

import sqlite3
from typing import Callable

from ...errors import SchemaVersionError

SCHEMA_VERSION = 4

_V1 = """
CREATE TABLE runs (
    id            TEXT PRIMARY KEY,
    project       TEXT NOT NULL,
    name          TEXT NOT NULL,
    status        TEXT NOT NULL,
    notes         TEXT NOT NULL DEFAULT '',
    grp           TEXT,
    config_hash   TEXT,
    dir           TEXT NOT NULL,
    host          TEXT,
    pid           INTEGER,
    created_at    REAL NOT NULL,
    heartbeat_at  REAL NOT NULL,
    ended_at      REAL,
    resume_count  INTEGER NOT NULL DEFAULT 0,
    error         TEXT,
    meta          TEXT
);
CREATE INDEX runs_by_project ON runs(project, created_at);
CREATE INDEX runs_by_status ON runs(status);
CREATE INDEX runs_by_config_hash ON runs(config_hash);

CREATE TABLE tags (
    run_id  TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    tag     TEXT NOT NULL,
    PRIMARY KEY (run_id, tag)
) WITHOUT ROWID;
CREATE INDEX tags_by_tag ON tags(tag);

CREATE TABLE params (
    run_id  TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,   -- JSON
    num     REAL,            -- the value as a number, when it is one
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE INDEX params_by_key ON params(key, num);

CREATE TABLE summary (
    run_id  TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,   -- JSON
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;

CREATE TABLE metric_chunks (
    run_id    TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key       TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    n         INTEGER NOT NULL,
    step_min  INTEGER NOT NULL,
    step_max  INTEGER NOT NULL,
    vmin      REAL,            -- NULL when every value in the chunk is NaN
    vmax      REAL,
    t_min     REAL NOT NULL,   -- wall time of the first and last point
    t_max     REAL NOT NULL,
    steps     BLOB NOT NULL,   -- n little-endian int64
    vals      BLOB NOT NULL,   -- n little-endian float64
    times     BLOB NOT NULL    -- n little-endian float64, Unix seconds
);
CREATE UNIQUE INDEX metric_chunks_by_key ON metric_chunks(run_id, key, seq);

CREATE TABLE metric_stats (
    run_id     TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    count      INTEGER NOT NULL,
    vlast      REAL,           -- NULL stands for NaN (SQLite stores NaN as NULL)
    last_step  INTEGER NOT NULL,
    last_time  REAL NOT NULL,
    vmin       REAL,
    min_step   INTEGER,
    vmax       REAL,
    max_step   INTEGER,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE INDEX metric_stats_by_key ON metric_stats(key, vlast);

-- the checkpoint registry (a protocol of its own beside Store)
CREATE TABLE checkpoints (
    run_id      TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step        INTEGER NOT NULL,
    path        TEXT NOT NULL,   -- relative to the run directory, or a URL for remote storage
    bytes       INTEGER NOT NULL,
    metrics     TEXT,            -- JSON
    is_best     INTEGER NOT NULL DEFAULT 0,
    hash        TEXT,            -- digest of the manifest
    created_at  REAL NOT NULL,
    deleted_at  REAL,            -- set when retention removed the files
    PRIMARY KEY (run_id, step)
) WITHOUT ROWID;

-- logged media: images, histograms, text, tables
CREATE TABLE media (
    run_id  TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key     TEXT NOT NULL,
    step    INTEGER NOT NULL,
    kind    TEXT NOT NULL,       -- image | histogram | text | table
    path    TEXT,                -- file relative to the run directory, when there is one
    data    TEXT,                -- JSON: bins and counts, text, rows, image size
    time    REAL NOT NULL,
    PRIMARY KEY (run_id, key, step)
) WITHOUT ROWID;
"""

# Version 2: the idempotency keys of write batches (see WriteBatch.sequence): which
# (run, sequence) pairs a store has applied, so that a batch written again is skipped.
_V2 = """
CREATE TABLE applied_batches (
    run_id    TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    sequence  INTEGER NOT NULL,
    PRIMARY KEY (run_id, sequence)
) WITHOUT ROWID;
"""

# Version 3: the ranks of a multi-rank job's run, one row each: how each process is doing
# (heartbeat) and how it ended, so that the run is completed only when every rank is and a
# rank that died is named. A single-process run has no rows here.
_V3 = """
CREATE TABLE run_ranks (
    run_id        TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    rank          INTEGER NOT NULL,
    host          TEXT,
    pid           INTEGER,
    job           TEXT,            -- torchrun's job id and restart count: which attempt
    started_at    REAL NOT NULL,
    heartbeat_at  REAL NOT NULL,
    status        TEXT NOT NULL,   -- the rank's own outcome: running, completed, failed, killed
    error         TEXT,
    ended_at      REAL,
    PRIMARY KEY (run_id, rank)
) WITHOUT ROWID;
"""

# Version 4: the model registry and alerts.
# A model is a name; each registration adds a version (1, 2, ...) pointing at one saved
# checkpoint, with its lineage. Versions keep no foreign key to ``runs``: a version outlives
# the run row it came from. Aliases (champion, staging, ...) name one version each and move
# by compare-and-set; every attempt, won or lost, is a row of ``model_alias_events``.
# Alerts are a run's anomaly-detector findings and ``run.alert`` calls.
_V4 = """
CREATE TABLE models (
    name         TEXT PRIMARY KEY,
    project      TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    created_at   REAL NOT NULL,
    created_by   TEXT
) WITHOUT ROWID;
CREATE INDEX models_by_project ON models(project);

CREATE TABLE model_versions (
    name           TEXT NOT NULL REFERENCES models(name) ON DELETE CASCADE,
    version        INTEGER NOT NULL,
    run_id         TEXT,             -- the run it came from; NULL for a path registered by hand
    step           INTEGER,          -- the checkpoint's step
    checkpoint     TEXT NOT NULL,    -- where the checkpoint lives (directory or URL)
    manifest_hash  TEXT,             -- xxh3 of the checkpoint's manifest as registered
    lineage        TEXT NOT NULL,    -- JSON: config hash, git commit and dirty flag, metric, summary...
    description    TEXT NOT NULL DEFAULT '',
    tags           TEXT NOT NULL DEFAULT '[]',  -- JSON list
    registered_at  REAL NOT NULL,
    registered_by  TEXT,
    deleted_at     REAL,
    PRIMARY KEY (name, version)
) WITHOUT ROWID;
CREATE INDEX model_versions_by_run ON model_versions(run_id, step);

CREATE TABLE model_aliases (
    name      TEXT NOT NULL REFERENCES models(name) ON DELETE CASCADE,
    alias     TEXT NOT NULL,
    version   INTEGER NOT NULL,
    moved_at  REAL NOT NULL,
    moved_by  TEXT,
    PRIMARY KEY (name, alias)
) WITHOUT ROWID;

CREATE TABLE model_alias_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL REFERENCES models(name) ON DELETE CASCADE,
    alias         TEXT NOT NULL,
    from_version  INTEGER,          -- what the alias named before (NULL: nothing)
    to_version    INTEGER,          -- what it was asked to name (NULL: removal)
    expected      INTEGER,          -- the version the mover believed it named, when it said
    outcome       TEXT NOT NULL,    -- moved | conflict | removed
    at            REAL NOT NULL,
    by            TEXT
);
CREATE INDEX model_alias_events_by_alias ON model_alias_events(name, alias, id);

CREATE TABLE alerts (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id   TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    time     REAL NOT NULL,
    step     INTEGER,
    level    TEXT NOT NULL,          -- info | warning | error
    kind     TEXT NOT NULL,          -- user, or the detector: nonfinite, spike, divergence, ...
    key      TEXT,                   -- the metric it is about, when there is one
    title    TEXT NOT NULL,
    text     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX alerts_by_run ON alerts(run_id, id);
"""


def _execute_all(conn: sqlite3.Connection, script: str) -> None:
    """Run a script statement by statement (``executescript`` would COMMIT first)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    for statement in "\n".join(lines).split(";"):
        if statement.strip():
            conn.execute(statement)


# MIGRATIONS[n] turns version n - 1 into version n, inside the caller's transaction.
# Version 1 is the first release.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: lambda conn: _execute_all(conn, _V1),
    2: lambda conn: _execute_all(conn, _V2),
    3: lambda conn: _execute_all(conn, _V3),
    4: lambda conn: _execute_all(conn, _V4),
}


def ensure_schema(conn: sqlite3.Connection, location: str) -> None:
    """Bring the database behind ``conn`` to :data:`SCHEMA_VERSION`, or refuse a newer one."""
    found = conn.execute("PRAGMA user_version").fetchone()[0]
    if found == SCHEMA_VERSION:
        return
    if found > SCHEMA_VERSION:
        raise SchemaVersionError(location, found, SCHEMA_VERSION)
    conn.execute("BEGIN IMMEDIATE")
    try:
        # another process may have migrated while this one waited for the write lock
        found = conn.execute("PRAGMA user_version").fetchone()[0]
        if found > SCHEMA_VERSION:
            raise SchemaVersionError(location, found, SCHEMA_VERSION)
        for version in range(found + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[version](conn)
            conn.execute(f"PRAGMA user_version = {version}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # SQLite may have rolled back already; report the original error
            conn.execute("ROLLBACK")
        raise
