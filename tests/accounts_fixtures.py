"""The team server's database for accounts tests: a SQLite store's root, or a PostgreSQL store database."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from runpoint.store import open_store


@pytest.fixture(params=["sqlite", "postgres"])
def server_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The ``--db`` of a team server with an (empty) store: ``sqlite:///<tmp>/runpoint.db`` or a PostgreSQL URL."""
    if request.param == "postgres":
        yield request.getfixturevalue("postgres_url")
        return
    url = f"sqlite:///{tmp_path / 'runpoint.db'}"
    open_store(url).close()
    yield url


# for a test whose PostgreSQL run adds little to its SQLite one: that run goes to the slow suite
SQLITE_NOW_POSTGRES_SLOW = pytest.mark.parametrize(
    "server_db", ["sqlite", pytest.param("postgres", marks=pytest.mark.slow)], indirect=True)
