"""``runpoint server token|user|audit``: the team server's accounts, from the command line.

They work on the database directly (``--db``, or ``$RUNPOINT_SERVER_DB``), the same one
``runpoint server --db`` serves, so they need no running server and no admin token:
whoever can reach the database administers the server. A revocation or a disabled user
takes effect on running servers within their token cache time (5 s).

    runpoint server user add ada
    runpoint server token create --user ada --scope write --project digits --name laptop
    runpoint server token ls
    runpoint server token revoke 3f9a0c1b22de
    runpoint server audit --user ada --since 1d

:func:`register` attaches them to the ``runpoint server`` typer group.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import InvalidArgumentError
from ._output import (
    JsonOption,
    console,
    err_console,
    fmt_time,
    friendly_errors,
    print_json,
)
from ._tables import print_table

DB_ENV = "RUNPOINT_SERVER_DB"

DbOption = Annotated[str, typer.Option(
    "--db", envvar=DB_ENV, show_default=False,
    help=f"The server's database: postgresql://..., sqlite:///path/runpoint.db or a root directory (${DB_ENV}).")]

_CONTEXT = {"help_option_names": ["-h", "--help"]}
token_app = typer.Typer(name="token", help="Create, list and revoke API tokens.", no_args_is_help=True,
                        context_settings=_CONTEXT)
user_app = typer.Typer(name="user", help="Add, list, disable and enable users.", no_args_is_help=True,
                       context_settings=_CONTEXT)

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str, option: str) -> float:
    """Seconds of ``90s``, ``30m``, ``12h``, ``7d``, ``2w``."""
    match = _DURATION.fullmatch(text.strip().lower())
    if not match:
        raise InvalidArgumentError(option, f"{text!r} is not a duration such as 30m, 12h, 7d or 2w")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def parse_since(text: str) -> float:
    """A Unix time from ``2026-12-01``, ``2026-12-01T09:30`` (local time) or a duration ago (``1h``, ``7d``)."""
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        pass
    try:
        return time.time() - parse_duration(text, "--since")
    except InvalidArgumentError:
        raise InvalidArgumentError("--since", f"{text!r} is neither a date (2026-12-01, 2026-12-01T09:30) "
                                              "nor a duration ago (30m, 12h, 7d)") from None


def _open(db: str) -> Any:
    from ..server.accounts import Accounts

    return Accounts(db)


# -- tokens ------------------------------------------------------------------------------


@token_app.command("create")
@friendly_errors
def token_create(
    db: DbOption,
    user: Annotated[str, typer.Option("--user", help="Whose token (a new name adds the user).", show_default=False)],
    scope: Annotated[str, typer.Option("--scope", help="read, write (also read) or admin (everything).", show_default=False)],
    project: Annotated[Optional[str], typer.Option("--project", help="Limit the token to this project's runs.", show_default=False)] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="A label to recognise the token by (a machine, a job).", show_default=False)] = None,
    expires: Annotated[Optional[str], typer.Option("--expires", help="Stop working after this long: 12h, 30d, 2w (default: never).", show_default=False)] = None,
) -> None:
    """Create a token and print it, once: it is stored only as a hash."""
    expires_in = parse_duration(expires, "--expires") if expires is not None else None
    with _open(db) as accounts:
        if user not in {u.name for u in accounts.users()}:  # the first token of a new user adds the user
            accounts.add_user(user)
            err_console.print(f"Added user {user}.", markup=False)
        created = accounts.create_token(user, scope, project=project, label=name, expires_in_s=expires_in)
    reach = f"project {created.info.project}" if created.info.project else "every project"
    err_console.print(f"Token {created.info.id} of {user}: {scope} on {reach}"
                      f"{', expires ' + fmt_time(created.info.expires_at) if created.info.expires_at else ''}. "
                      "Copy it now: it is not shown again.", markup=False)
    typer.echo(created.text)


def _token_status(info: Any) -> str:
    if info.revoked_at is not None:
        return "revoked"
    return "active" if info.active() else "expired"


@token_app.command("ls")
@friendly_errors
def token_ls(
    db: DbOption,
    user: Annotated[Optional[str], typer.Option("--user", help="Only this user's tokens.", show_default=False)] = None,
    active: Annotated[bool, typer.Option("--active", help="Only tokens that still work.")] = False,
    as_json: JsonOption = False,
) -> None:
    """List tokens (never their secrets)."""
    with _open(db) as accounts:
        tokens = [t for t in accounts.tokens(user=user) if not active or t.active()]
    if as_json:
        print_json([{**vars(t), "status": _token_status(t)} for t in tokens])
        return
    table = Table(box=None, header_style="bold")
    for heading in ("ID", "USER", "SCOPE", "PROJECT", "NAME", "CREATED", "LAST USED", "EXPIRES", "STATUS"):
        table.add_column(heading, no_wrap=heading in ("ID", "USER"))
    for t in tokens:
        table.add_row(t.id, escape(t.user), t.scope, escape(t.project or "*"), escape(t.label or ""),
                      fmt_time(t.created_at), fmt_time(t.last_used_at), fmt_time(t.expires_at), _token_status(t))
    print_table(console, table)


@token_app.command("revoke")
@friendly_errors
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (the 12 hex digits after rp_; see `token ls`).", show_default=False)],
    db: DbOption,
) -> None:
    """Revoke a token: servers refuse it within seconds."""
    with _open(db) as accounts:
        info = accounts.revoke_token(token_id)
    console.print(f"Revoked token {info.id} of {info.user} ({fmt_time(info.revoked_at)}).", markup=False)


# -- users -------------------------------------------------------------------------------


@user_app.command("add")
@friendly_errors
def user_add(
    name: Annotated[str, typer.Argument(help="The user's name (letters, digits, . _ @ + -).", show_default=False)],
    db: DbOption,
) -> None:
    """Add a user; then give them a token with `runpoint server token create`."""
    with _open(db) as accounts:
        accounts.add_user(name)
    console.print(f"Added user {name}.", markup=False)


@user_app.command("ls")
@friendly_errors
def user_ls(db: DbOption, as_json: JsonOption = False) -> None:
    """List users and how many working tokens each has."""
    with _open(db) as accounts:
        users = accounts.users()
        working: dict[str, int] = {}
        for t in accounts.tokens(include_revoked=False):
            working[t.user] = working.get(t.user, 0) + int(t.active())
    if as_json:
        print_json([{**vars(u), "active_tokens": working.get(u.name, 0)} for u in users])
        return
    table = Table(box=None, header_style="bold")
    for heading in ("USER", "CREATED", "STATUS", "TOKENS"):
        table.add_column(heading, no_wrap=heading == "USER")
    for u in users:
        table.add_row(escape(u.name), fmt_time(u.created_at), "disabled" if u.disabled else "active",
                      str(working.get(u.name, 0)))
    print_table(console, table)


@user_app.command("disable")
@friendly_errors
def user_disable(name: Annotated[str, typer.Argument(help="The user.", show_default=False)], db: DbOption) -> None:
    """Disable a user: every token of theirs stops working (until `user enable`)."""
    with _open(db) as accounts:
        accounts.set_disabled(name, True)
    console.print(f"Disabled user {name}: their tokens are refused within seconds.", markup=False)


@user_app.command("enable")
@friendly_errors
def user_enable(name: Annotated[str, typer.Argument(help="The user.", show_default=False)], db: DbOption) -> None:
    """Enable a disabled user again (their revoked tokens stay revoked)."""
    with _open(db) as accounts:
        accounts.set_disabled(name, False)
    console.print(f"Enabled user {name}.", markup=False)


# -- audit -------------------------------------------------------------------------------


@friendly_errors
def audit(
    db: DbOption,
    user: Annotated[Optional[str], typer.Option("--user", help="Only this user's actions.", show_default=False)] = None,
    run: Annotated[Optional[str], typer.Option("--run", help="Only actions on this run id.", show_default=False)] = None,
    action: Annotated[Optional[str], typer.Option("--action", help="Only this action (run.create, run.get, ...).", show_default=False)] = None,
    project: Annotated[Optional[str], typer.Option("--project", help="Only this project.", show_default=False)] = None,
    since: Annotated[Optional[str], typer.Option("--since", help="From this time on: 2026-12-01, 2026-12-01T09:30, or ago: 30m, 12h, 7d.", show_default=False)] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000, help="At most this many entries, newest first.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Show the audit log: who did what to which run, from where, newest first."""
    start = parse_since(since) if since is not None else None
    with _open(db) as accounts:
        entries = accounts.query_audit(user=user, run_id=run, action=action, project=project, since=start, limit=limit)
    if as_json:
        print_json([vars(e) for e in entries])
        return
    table = Table(box=None, header_style="bold")
    for heading in ("TIME", "USER", "ACTION", "PROJECT", "RUN", "TARGET", "TOKEN", "FROM", "DETAIL"):
        table.add_column(heading, no_wrap=heading in ("TIME", "RUN", "TOKEN"))
    from .._util.jsonable import dumps

    for e in entries:
        table.add_row(fmt_time(e.time), escape(e.user), escape(e.action), escape(e.project or ""), escape(e.run_id or ""),
                      escape(e.target or ""), e.token_id or "", escape(e.remote or ""),
                      escape(dumps(e.detail)) if e.detail is not None else "")
    print_table(console, table)


def register(server: typer.Typer) -> None:
    """Attach ``token``, ``user`` and ``audit`` to the ``runpoint server`` group."""
    server.add_typer(token_app, name="token")
    server.add_typer(user_app, name="user")
    server.command("audit")(audit)
