"""Users and API tokens of the team server (``runpoint server``), and the door to its audit log.

A user is a name that tokens belong to; disabling a user stops all their tokens at once.
A token has a scope (``read`` < ``write`` < ``admin``), optionally one project it is limited
to, a label, and created/last-used/expiry/revoked times. Tokens are stored hashed (see
:mod:`runpoint.server.tokens`); the full token is returned once, by :meth:`Accounts.create_token`.

The tables live in the store's database on PostgreSQL and in ``accounts.db`` beside the
store on SQLite (see :mod:`runpoint.server.accounts_db`).

Example::

    accounts = Accounts("postgresql://db.lan/runpoint")
    accounts.add_user("ada")
    created = accounts.create_token("ada", "write", project="digits", label="laptop")
    print(created.text)                       # rp_3f9a0c1b22de_... (shown once)
    accounts.verify(created.text)             # Principal(user='ada', scope='write', project='digits', ...)
    accounts.revoke_token(created.info.id)
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import InvalidArgumentError
from . import audit_log
from .accounts_db import AccountsDB
from .accounts_schema import ensure_accounts_schema
from .audit_log import AuditEntry
from .auth import SCOPES, Principal, Scope
from .tokens import hash_matches, new_token, parse_token

TOUCH_INTERVAL_S = 60.0  # last_used_at is written at most this often per token
_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")
_TOKEN_ID = re.compile(r"[0-9a-f]{12}")


@dataclass(frozen=True)
class User:
    name: str
    created_at: float
    disabled: bool


@dataclass(frozen=True)
class TokenInfo:
    """What is known about a token, without its secret."""

    id: str
    user: str
    scope: Scope
    project: str | None
    label: str | None
    created_at: float
    expires_at: float | None
    last_used_at: float | None
    revoked_at: float | None

    def active(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True)
class CreatedToken:
    """A new token: its description and the full text, to be shown once."""

    info: TokenInfo
    text: str

    def __repr__(self) -> str:
        return f"CreatedToken(info={self.info!r}, text='***')"


def _token_info(row: dict[str, Any]) -> TokenInfo:
    return TokenInfo(id=row["id"], user=row["user_name"], scope=row["scope"], project=row["project"],
                     label=row["label"], created_at=row["created_at"], expires_at=row["expires_at"],
                     last_used_at=row["last_used_at"], revoked_at=row["revoked_at"])


def check_user_name(name: str) -> str:
    if not _USER_NAME.fullmatch(name):
        raise InvalidArgumentError("user", f"{name!r} is not a user name: 1-64 of letters, digits and . _ @ + -, "
                                           "starting with a letter or digit")
    return name


def check_scope(scope: str) -> Scope:
    if scope not in SCOPES:
        raise InvalidArgumentError("scope", f"{scope!r} is not a scope: one of {', '.join(SCOPES)}")
    return scope  # type: ignore[return-value]


class Accounts:
    """Users, tokens and the audit log of one team server database (see the module docstring)."""

    def __init__(self, db: str | os.PathLike[str], *, touch_interval_s: float = TOUCH_INTERVAL_S) -> None:
        self.db = AccountsDB(db)
        self.touch_interval_s = touch_interval_s
        try:
            ensure_accounts_schema(self.db)
        except BaseException:
            self.db.close()
            raise

    @property
    def location(self) -> str:
        return self.db.location

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Accounts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- users ---------------------------------------------------------------------------

    def add_user(self, name: str) -> User:
        """A new user; InvalidArgumentError if the name is taken or malformed."""
        check_user_name(name)
        now = time.time()
        with self.db.transaction() as conn:
            if self.db.query("SELECT 1 AS x FROM accounts_users WHERE name = ?", (name,)):
                raise InvalidArgumentError("user", f"user {name!r} exists already")
            conn.execute(self.db.sql("INSERT INTO accounts_users (name, created_at, disabled) VALUES (?, ?, ?)"),
                         (name, now, False))
        return User(name, now, False)

    def users(self) -> list[User]:
        rows = self.db.query("SELECT name, created_at, disabled FROM accounts_users ORDER BY name")
        return [User(row["name"], row["created_at"], bool(row["disabled"])) for row in rows]

    def user(self, name: str) -> User:
        rows = self.db.query("SELECT name, created_at, disabled FROM accounts_users WHERE name = ?", (name,))
        if not rows:
            raise InvalidArgumentError("user", f"no user {name!r} (add one with `runpoint server user add {name}`)")
        return User(rows[0]["name"], rows[0]["created_at"], bool(rows[0]["disabled"]))

    def set_disabled(self, name: str, disabled: bool = True) -> User:
        """Disable (or enable again) a user: every token of theirs stops (or starts) working."""
        self.user(name)
        self.db.execute("UPDATE accounts_users SET disabled = ? WHERE name = ?", (disabled, name))
        return self.user(name)

    # -- tokens --------------------------------------------------------------------------

    def create_token(self, user: str, scope: str, *, project: str | None = None, label: str | None = None,
                     expires_in_s: float | None = None) -> CreatedToken:
        """A new token of ``user``; its full text is in the result and nowhere else."""
        check_scope(scope)
        if project is not None and not project.strip():
            raise InvalidArgumentError("project", "must not be empty (leave it out for every project)")
        if expires_in_s is not None and expires_in_s <= 0:
            raise InvalidArgumentError("expires", "must be a positive duration")
        if self.user(user).disabled:
            raise InvalidArgumentError("user", f"user {user!r} is disabled")
        token, now = new_token(), time.time()
        expires_at = now + expires_in_s if expires_in_s is not None else None
        self.db.execute(
            "INSERT INTO accounts_tokens (id, user_name, hash, scope, project, label, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (token.id, user, token.hash, scope, project, label, now, expires_at))
        info = TokenInfo(token.id, user, check_scope(scope), project, label, now, expires_at, None, None)
        return CreatedToken(info, token.text)

    def tokens(self, *, user: str | None = None, include_revoked: bool = True) -> list[TokenInfo]:
        """Every token (of ``user``), oldest first."""
        where, params = [], []
        if user is not None:
            where.append("user_name = ?")
            params.append(user)
        if not include_revoked:
            where.append("revoked_at IS NULL")
        sql = "SELECT * FROM accounts_tokens" + (f" WHERE {' AND '.join(where)}" if where else "")
        return [_token_info(row) for row in self.db.query(sql + " ORDER BY created_at, id", params)]

    def token(self, token_id: str) -> TokenInfo:
        rows = self.db.query("SELECT * FROM accounts_tokens WHERE id = ?", (token_id,)) if _TOKEN_ID.fullmatch(
            token_id) else []
        if not rows:
            raise InvalidArgumentError("token", f"no token with id {token_id!r} (ids are the 12 hex digits after rp_; "
                                                "`runpoint server token ls` lists them)")
        return _token_info(rows[0])

    def revoke_token(self, token_id: str) -> TokenInfo:
        """Revoke a token for good (revoking it again keeps the first time); servers stop it within their cache time."""
        self.token(token_id)
        self.db.execute("UPDATE accounts_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                        (time.time(), token_id))
        return self.token(token_id)

    def verify(self, text: str) -> Principal | None:
        """The principal ``text`` authenticates, or None: malformed, unknown, wrong, revoked, expired, user disabled.

        Also notes the use in ``last_used_at``, at most every ``touch_interval_s``.
        """
        token = parse_token(text)
        if token is None:
            return None
        rows = self.db.query(
            "SELECT t.hash, t.scope, t.project, t.expires_at, t.last_used_at, t.revoked_at, u.name, u.disabled"
            " FROM accounts_tokens t JOIN accounts_users u ON u.name = t.user_name WHERE t.id = ?", (token.id,))
        if not rows or not hash_matches(rows[0]["hash"], token):
            return None
        row, now = rows[0], time.time()
        if row["revoked_at"] is not None or row["disabled"] or (row["expires_at"] is not None and now >= row["expires_at"]):
            return None
        if row["last_used_at"] is None or now - row["last_used_at"] >= self.touch_interval_s:
            self.db.execute("UPDATE accounts_tokens SET last_used_at = ? WHERE id = ?"
                            " AND (last_used_at IS NULL OR last_used_at < ?)",
                            (now, token.id, now - self.touch_interval_s))
        return Principal(user=row["name"], scope=row["scope"], project=row["project"], token_id=token.id)

    # -- audit log -----------------------------------------------------------------------

    def record_audit(self, entries: Sequence[AuditEntry]) -> None:
        """Append ``entries`` to the audit log (one transaction)."""
        audit_log.record(self.db, entries)

    def query_audit(self, *, user: str | None = None, run_id: str | None = None, action: str | None = None,
                    project: str | None = None, since: float | None = None, limit: int = 100) -> list[AuditEntry]:
        """The newest audit entries matching every filter given, newest first."""
        return audit_log.query(self.db, user=user, run_id=run_id, action=action, project=project, since=since,
                               limit=limit)
