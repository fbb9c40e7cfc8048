"""A real PostgreSQL server for the tests: one temporary cluster per test session (per xdist worker).

The cluster is :class:`runpoint._devtools.pg_cluster.TempCluster` (shared with the
benchmarks): initdb'd into a temp dir on a free 127.0.0.1 port, trust auth, durability off. Each
test asking for ``postgres_url`` gets a database of its own, dropped after it, copied from a
template that the store's migrations ran on once (``postgres_empty_url``: one without them). The
server is stopped (``pg_ctl stop -m immediate``) and its dir removed at the end of the
session, and by an ``atexit`` hook if the session is interrupted before its teardown.
Tests skip only when PostgreSQL is not installed.
"""

from __future__ import annotations

import atexit
import itertools
import os
from typing import Iterator

import pytest

from runpoint._devtools.pg_cluster import ROLE, TempCluster
from runpoint._devtools.pg_cluster import binaries as _binaries

TEMPLATE = "runpoint_template"  # migrated once per session; each test's database is a copy
_databases = itertools.count()


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """The URL of a running throwaway PostgreSQL (role and database ``runpoint``) for the session."""
    bin_dir = _binaries()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql/*/bin)")
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'runpoint[server]')")
    cluster = TempCluster(bin_dir)
    atexit.register(cluster.stop)  # an interrupted session that skips the teardown
    try:
        cluster.start()
        from runpoint.store.postgres import PostgresStore

        cluster.admin(f"CREATE DATABASE {TEMPLATE} OWNER {ROLE}")
        PostgresStore(cluster.url(TEMPLATE)).close()
        yield cluster.url()
    finally:
        cluster.stop()


def _database_of_its_own(postgres_dsn: str, template: str) -> Iterator[str]:
    import psycopg

    name = f"test_{os.getpid()}_{next(_databases)}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY")
    yield postgres_dsn.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def postgres_url(postgres_dsn: str) -> Iterator[str]:
    """The URL of a database of this test's own with an empty runpoint store in it, dropped afterwards."""
    yield from _database_of_its_own(postgres_dsn, TEMPLATE)


@pytest.fixture
def postgres_empty_url(postgres_dsn: str) -> Iterator[str]:
    """The URL of an empty database of this test's own (no tables), dropped afterwards."""
    yield from _database_of_its_own(postgres_dsn, "template0")
