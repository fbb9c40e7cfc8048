"""The PostgreSQL store: a team's shared database, the same :class:`~runpoint.store.base.Store` as the embedded one.

Needs the ``server`` extra (``pip install 'runpoint[server]'``: psycopg 3).
"""

from .store import PostgresStore

__all__ = ["PostgresStore"]
