"""The tables of the team server's accounts and their migrations, for PostgreSQL and SQLite.

A migration set of its own, beside the store's: ``MIGRATIONS[n]`` takes the accounts
tables from version ``n`` to ``n + 1`` and the version is the row of
``accounts_schema_version``, so the store's ``schema_version`` and its migrations are
never touched. On PostgreSQL the migrations run in one transaction under an advisory lock
of their own (several server workers starting on a new database migrate it once); on
SQLite under ``BEGIN IMMEDIATE``. A database of a newer runpoint is refused.

Times are Unix seconds (``double precision`` / ``REAL``), as in the store.
"""

from __future__ import annotations

from ..errors import SchemaVersionError
from .accounts_db import AccountsDB

# {bool} is the engine's boolean type, {bytes} its binary type: the rest is the same SQL on both
_V1 = """
CREATE TABLE accounts_users (
    name        text PRIMARY KEY,
    created_at  double precision NOT NULL,
    disabled    {bool} NOT NULL DEFAULT {false}
);

CREATE TABLE accounts_tokens (
    id            text PRIMARY KEY,
    user_name     text NOT NULL REFERENCES accounts_users (name),
    hash          text NOT NULL,
    scope         text NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    project       text,
    label         text,
    created_at    double precision NOT NULL,
    expires_at    double precision,
    last_used_at  double precision,
    revoked_at    double precision
);
CREATE INDEX accounts_tokens_by_user ON accounts_tokens (user_name);

CREATE TABLE audit_log (
    id        {serial} PRIMARY KEY,
    time      double precision NOT NULL,
    user_name text NOT NULL,
    token_id  text,
    action    text NOT NULL,
    project   text,
    run_id    text,
    target    text,
    detail    text,
    remote    text
);
CREATE INDEX audit_log_by_time ON audit_log (time);
CREATE INDEX audit_log_by_user ON audit_log (user_name, time);
CREATE INDEX audit_log_by_run ON audit_log (run_id, time);
"""

_POSTGRES = {"bool": "boolean", "false": "false", "serial": "bigint GENERATED ALWAYS AS IDENTITY"}
_SQLITE = {"bool": "INTEGER", "false": "0", "serial": "INTEGER"}

MIGRATIONS: tuple[str, ...] = (_V1,)
SCHEMA_VERSION = len(MIGRATIONS)

# pg_advisory_xact_lock key of "migrating the accounts tables": "rpaccnts", not the store's "rpschema"
_MIGRATION_LOCK = 0x72706163636E7473


def _found_version(db: AccountsDB) -> int:
    if db.is_postgres:
        exists = db.query(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relname = 'accounts_schema_version' AND n.nspname = current_schema()) AS found")
    else:
        exists = db.query("SELECT count(*) AS found FROM sqlite_master WHERE name = 'accounts_schema_version'")
    if not exists[0]["found"]:
        return 0
    row = db.query("SELECT max(version) AS version FROM accounts_schema_version")
    return int(row[0]["version"] or 0)


def ensure_accounts_schema(db: AccountsDB) -> int:
    """Bring the accounts tables of ``db`` to :data:`SCHEMA_VERSION`; returns the version found.

    Example::

        ensure_accounts_schema(AccountsDB("postgresql://db.lan/runpoint"))
    """
    found = _found_version(db)
    if found == SCHEMA_VERSION:
        return found
    if found > SCHEMA_VERSION:
        raise SchemaVersionError(db.location, found, SCHEMA_VERSION)
    words = _POSTGRES if db.is_postgres else _SQLITE
    with db.transaction() as conn:
        if db.is_postgres:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        found = _found_version(db)  # another process may have migrated while this one waited
        if found > SCHEMA_VERSION:
            raise SchemaVersionError(db.location, found, SCHEMA_VERSION)
        if found == 0:
            conn.execute("CREATE TABLE IF NOT EXISTS accounts_schema_version (version integer NOT NULL)")
        for version in range(found, SCHEMA_VERSION):
            db.run_script(conn, MIGRATIONS[version].format(**words))
        conn.execute("DELETE FROM accounts_schema_version")
        conn.execute(db.sql("INSERT INTO accounts_schema_version (version) VALUES (?)"), (SCHEMA_VERSION,))
    return found
