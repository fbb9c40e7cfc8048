"""The PostgreSQL schema of a runpoint store and its migrations: versioned SQL run at open.

Why plain SQL migrations over psycopg 3, not SQLAlchemy with Alembic: the store speaks
to the database through the narrow :class:`~runpoint.store.base.Store` protocol, and each
of its methods is one or a few statements of the same shape as the embedded SQLite
store's (the same tables, columns and chunked metric layout), so an ORM would be a
layer between the protocol and SQL that maps nothing. Alembic would add a second schema
language (Python operations plus autogenerate) beside the SQL the SQLite backend
already uses, and a dependency tree the training client does not need. A migration here
is a SQL string; ``MIGRATIONS[n]`` takes a database from version ``n`` to ``n + 1``,
new ones go at the end, a released one is never edited.

The version is the single row of ``schema_version``. :func:`ensure_schema` runs every
pending migration and the version bump in one transaction (PostgreSQL's DDL is
transactional) under an advisory lock, so several processes (server workers, training
ranks) opening one new database migrate it once, and a failed migration leaves nothing.
A database written by a newer runpoint is refused.

Differences from the SQLite schema, each for PostgreSQL's sake: text keys and ids use
``COLLATE "C"`` (byte order, as SQLite compares and as Python sorts), metric blobs are
``bytea``, times ``double precision``, and the media table keeps the bytes of a
record's file (``file``), since a PostgreSQL store has no run directory to write it to.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import tuple_row

from ...errors import SchemaVersionError

_V1 = """
CREATE TABLE runs (
    id            text COLLATE "C" PRIMARY KEY,
    project       text COLLATE "C" NOT NULL,
    name          text COLLATE "C" NOT NULL,
    status        text NOT NULL,
    notes         text NOT NULL DEFAULT '',
    grp           text COLLATE "C",
    config_hash   text COLLATE "C",
    dir           text NOT NULL,
    host          text,
    pid           bigint,
    created_at    double precision NOT NULL,
    heartbeat_at  double precision NOT NULL,
    ended_at      double precision,
    resume_count  integer NOT NULL DEFAULT 0,
    error         text,
    meta          text
);
CREATE INDEX runs_by_project ON runs (project, created_at);
CREATE INDEX runs_by_created ON runs (created_at, id);
CREATE INDEX runs_by_status ON runs (status);
CREATE INDEX runs_by_config_hash ON runs (config_hash);
CREATE INDEX runs_by_name ON runs (name);

CREATE TABLE tags (
    run_id  text COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    tag     text COLLATE "C" NOT NULL,
    PRIMARY KEY (run_id, tag)
);
CREATE INDEX tags_by_tag ON tags (tag);

CREATE TABLE params (
    run_id  text COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key     text COLLATE "C" NOT NULL,
    value   text COLLATE "C" NOT NULL,   -- JSON
    num     double precision,            -- the value as a number, when it is one
    PRIMARY KEY (run_id, key)
);
CREATE INDEX params_by_key ON params (key, num);

CREATE TABLE summary (
    run_id  text COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key     text COLLATE "C" NOT NULL,
    value   text COLLATE "C" NOT NULL,   -- JSON (Python's: NaN and Infinity allowed)
    PRIMARY KEY (run_id, key)
);

CREATE TABLE metric_chunks (
    run_id    text COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key       text COLLATE "C" NOT NULL,
    seq       bigint NOT NULL,
    n         integer NOT NULL,
    step_min  bigint NOT NULL,
    step_max  bigint NOT NULL,
    vmin      double precision,          -- NULL when every value in the chunk is NaN
    vmax      double precision,
    t_min     double precision NOT NULL, -- wall time of the first and last point
    t_max     double precision NOT NULL,
    steps     bytea NOT NULL,            -- n little-endian int64
    vals      bytea NOT NULL,            -- n little-endian float64
    times     bytea NOT NULL,            -- n little-endian float64, Unix seconds
    PRIMARY KEY (run_id, key, seq)
);
-- packed floats barely compress: TOAST's pglz on them made ingest ~3x slower; keep them plain, out of line
ALTER TABLE metric_chunks ALTER COLUMN steps SET STORAGE EXTERNAL, ALTER COLUMN vals SET STORAGE EXTERNAL,
    ALTER COLUMN times SET STORAGE EXTERNAL;

CREATE TABLE metric_stats (
    run_id     text COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key        text COLLATE "C" NOT NULL,
    count      bigint NOT NULL,
    vlast      double precision,         -- NULL stands for NaN, as in the SQLite store
    last_step  bigint NOT NULL,
    last_time  double precision NOT NULL,
    vmin       double precision,
    min_step   bigint,
    vmax       double precision,
    max_step   bigint,
    PRIMARY KEY (run_id, key)
);
CREATE INDEX metric_stats_by_key ON metric_stats (key, vlast);

CREATE TABLE checkpoints (
    run_id      text COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step        bigint NOT NULL,
    path        text NOT NULL,
    bytes       bigint NOT NULL,
    metrics     text,                    -- JSON
    is_best     boolean NOT NULL DEFAULT false,
    hash        text,
    created_at  double precision NOT NULL,
    deleted_at  double precision,
    PRIMARY KEY (run_id, step)
);

CREATE TABLE media (
    run_id  text COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key     text COLLATE "C" NOT NULL,
    step    bigint NOT NULL,
    kind    text NOT NULL,
    path    text,
    data    text,                        -- JSON
    time    double precision NOT NULL,
    file    bytea,                       -- the file's bytes (an image), when it has one
    PRIMARY KEY (run_id, key, step)
);
ALTER TABLE media ALTER COLUMN file SET STORAGE EXTERNAL;  -- PNGs are compressed already

CREATE TABLE applied_batches (
    run_id    text COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    sequence  bigint NOT NULL,
    PRIMARY KEY (run_id, sequence)
);

CREATE TABLE run_ranks (
    run_id        text COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    rank          integer NOT NULL,
    host          text,
    pid           bigint,
    job           text,
    started_at    double precision NOT NULL,
    heartbeat_at  double precision NOT NULL,
    status        text NOT NULL,
    error         text,
    ended_at      double precision,
    PRIMARY KEY (run_id, rank)
);
"""

# Version 2: the model registry and alerts (the SQLite store's version 4; see there).
_V2 = """
CREATE TABLE models (
    name         text COLLATE "C" PRIMARY KEY,
    project      text COLLATE "C" NOT NULL,
    description  text NOT NULL DEFAULT '',
    created_at   double precision NOT NULL,
    created_by   text
);
CREATE INDEX models_by_project ON models (project);

CREATE TABLE model_versions (
    name           text COLLATE "C" NOT NULL REFERENCES models (name) ON DELETE CASCADE,
    version        integer NOT NULL,
    run_id         text COLLATE "C",
    step           bigint,
    checkpoint     text NOT NULL,
    manifest_hash  text,
    lineage        text NOT NULL,          -- JSON
    description    text NOT NULL DEFAULT '',
    tags           text NOT NULL DEFAULT '[]',
    registered_at  double precision NOT NULL,
    registered_by  text,
    deleted_at     double precision,
    PRIMARY KEY (name, version)
);
CREATE INDEX model_versions_by_run ON model_versions (run_id, step);

CREATE TABLE model_aliases (
    name      text COLLATE "C" NOT NULL REFERENCES models (name) ON DELETE CASCADE,
    alias     text COLLATE "C" NOT NULL,
    version   integer NOT NULL,
    moved_at  double precision NOT NULL,
    moved_by  text,
    PRIMARY KEY (name, alias)
);

CREATE TABLE model_alias_events (
    id            bigserial PRIMARY KEY,
    name          text COLLATE "C" NOT NULL REFERENCES models (name) ON DELETE CASCADE,
    alias         text COLLATE "C" NOT NULL,
    from_version  integer,
    to_version    integer,
    expected      integer,
    outcome       text NOT NULL,
    at            double precision NOT NULL,
    by            text
);
CREATE INDEX model_alias_events_by_alias ON model_alias_events (name, alias, id);

CREATE TABLE alerts (
    id      bigserial PRIMARY KEY,
    run_id  text COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    time    double precision NOT NULL,
    step    bigint,
    level   text NOT NULL,
    kind    text NOT NULL,
    key     text COLLATE "C",
    title   text NOT NULL,
    text    text NOT NULL DEFAULT ''
);
CREATE INDEX alerts_by_run ON alerts (run_id, id);
"""

# MIGRATIONS[n] takes version n to n + 1. Version 1 is the SQLite store's version 3, whole.
MIGRATIONS: tuple[str, ...] = (_V1, _V2)
SCHEMA_VERSION = len(MIGRATIONS)

# pg_advisory_xact_lock key of "migrating a runpoint schema" (any bigint; this spells "rpschema")
_MIGRATION_LOCK = 0x7270736368656D61


def _found_version(conn: psycopg.Connection[Any]) -> int:
    with conn.cursor(row_factory=tuple_row) as cursor:
        # pg_class read with a fresh snapshot, not to_regclass: its catalog cache may not have seen
        # the table that a process migrating meanwhile committed (an advisory lock does not refresh it)
        exists = cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relname = 'schema_version' AND n.nspname = current_schema())"
        ).fetchone()
        if not exists or not exists[0]:
            return 0
        row = cursor.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def ensure_schema(conn: psycopg.Connection[Any], location: str) -> int:
    """Bring the database behind ``conn`` (autocommit) to :data:`SCHEMA_VERSION`; returns the version found.

    Raises :class:`~runpoint.errors.SchemaVersionError` for a database of a newer runpoint.
    """
    found = _found_version(conn)
    if found == SCHEMA_VERSION:
        return found
    if found > SCHEMA_VERSION:
        raise SchemaVersionError(location, found, SCHEMA_VERSION)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        found = _found_version(conn)  # another process may have migrated while this one waited
        if found > SCHEMA_VERSION:
            raise SchemaVersionError(location, found, SCHEMA_VERSION)
        if found == 0:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
        for version in range(found, SCHEMA_VERSION):
            conn.execute(MIGRATIONS[version].encode())  # several statements: sent as one simple query
        conn.execute("DELETE FROM schema_version")
        conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (SCHEMA_VERSION,))
    return found
