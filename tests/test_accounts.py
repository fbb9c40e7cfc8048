"""Accounts of the team server on real SQLite and PostgreSQL: users, hashed tokens, revocation, the audit log, the CLI."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from runpoint.cli import server_admin
from runpoint.errors import InvalidArgumentError, SchemaVersionError, StoreError
from runpoint.server.accounts import Accounts
from runpoint.server.accounts_db import accounts_location
from runpoint.server.audit_log import AuditBuffer, AuditEntry
from runpoint.server.auth import Principal

from .accounts_fixtures import SQLITE_NOW_POSTGRES_SLOW


def test_tokens_are_stored_hashed_and_verified_until_revoked(server_db: str) -> None:
    with Accounts(server_db) as accounts:
        accounts.add_user("ada")
        accounts.add_user("bob")
        created = accounts.create_token("ada", "write", project="A", label="laptop")
        other = accounts.create_token("bob", "read")
        token_id, secret = created.text.split("_", 2)[1:]
        assert created.text.startswith(f"rp_{created.info.id}_") and token_id == created.info.id
        assert secret not in repr(created) and secret not in repr(created.info)

        rows = accounts.db.query("SELECT * FROM accounts_tokens WHERE id = ?", (token_id,))
        stored = " ".join(str(value) for value in rows[0].values())
        assert secret not in stored and created.text not in stored
        assert rows[0]["hash"] == hashlib.sha256(f"{token_id}:{secret}".encode()).hexdigest()

        assert accounts.verify(created.text) == Principal("ada", "write", "A", token_id)
        assert accounts.verify(other.text) == Principal("bob", "read", None, other.info.id)
        wrong_secret = created.text[:-1] + ("x" if created.text[-1] != "x" else "y")
        swapped = f"rp_{other.info.id}_{secret}"  # ada's secret under bob's id
        for bad in (wrong_secret, swapped, "rp_000000000000_" + secret, "garbage", "", created.text + "x"):
            assert accounts.verify(bad) is None, bad

        # the first use is noted; uses within the touch interval do not write again
        used = accounts.token(token_id).last_used_at
        assert used is not None
        accounts.verify(created.text)
        assert accounts.token(token_id).last_used_at == used

        accounts.set_disabled("bob")
        assert accounts.verify(other.text) is None
        accounts.set_disabled("bob", False)
        assert accounts.verify(other.text) is not None

        revoked = accounts.revoke_token(token_id)
        assert revoked.revoked_at is not None and not revoked.active()
        assert accounts.verify(created.text) is None
        assert accounts.revoke_token(token_id).revoked_at == revoked.revoked_at  # the first time stays
        assert [t.id for t in accounts.tokens(include_revoked=False)] == [other.info.id]

        expiring = accounts.create_token("ada", "admin", expires_in_s=3600)
        assert accounts.verify(expiring.text) is not None
        accounts.db.execute("UPDATE accounts_tokens SET expires_at = 1 WHERE id = ?", (expiring.info.id,))
        assert accounts.verify(expiring.text) is None

        with pytest.raises(InvalidArgumentError, match="exists already"):
            accounts.add_user("ada")
        with pytest.raises(InvalidArgumentError, match="not a scope"):
            accounts.create_token("ada", "root")
        with pytest.raises(InvalidArgumentError, match="no user 'carol'"):
            accounts.create_token("carol", "read")
        with pytest.raises(InvalidArgumentError, match="not a user name"):
            accounts.add_user("a b")
        with pytest.raises(InvalidArgumentError, match="no token"):
            accounts.revoke_token("nope")


def test_audit_log_records_and_filters(server_db: str) -> None:
    with Accounts(server_db) as accounts:
        accounts.record_audit([
            AuditEntry(100.0, "ada", "run.create", token_id="aaaaaaaaaaaa", project="A", run_id="r1",
                       detail={"name": "x", "n": 1}, remote="10.0.0.1"),
            AuditEntry(200.0, "ada", "run.get", project="A", run_id="r1"),
            AuditEntry(300.0, "bob", "run.get", project="B", run_id="r2", target="summary"),
            AuditEntry(400.0, "bob", "run.delete", project="B", run_id="r2"),
        ])
        everything = accounts.query_audit()
        assert [e.time for e in everything] == [400.0, 300.0, 200.0, 100.0]
        assert everything[-1] == AuditEntry(100.0, "ada", "run.create", token_id="aaaaaaaaaaaa", project="A",
                                            run_id="r1", detail={"name": "x", "n": 1}, remote="10.0.0.1")
        assert [e.action for e in accounts.query_audit(user="ada")] == ["run.get", "run.create"]
        assert [e.user for e in accounts.query_audit(run_id="r2", action="run.get")] == ["bob"]
        assert [e.time for e in accounts.query_audit(since=200.0, limit=2)] == [400.0, 300.0]
        assert [e.time for e in accounts.query_audit(project="B", since=350)] == [400.0]
        with pytest.raises(InvalidArgumentError, match="limit"):
            accounts.query_audit(limit=0)

        # the buffered sink: nothing written until a flush, then one transaction for the lot
        buffer = AuditBuffer(accounts.record_audit, interval_s=3600)
        who = Principal("carol", "write", None, "cccccccccccc")
        for i in range(3):
            buffer.sink(who, "run.get", "C", f"c{i}", None, {"i": i})
        assert accounts.query_audit(user="carol") == []
        assert buffer.flush() == 3
        buffer.sink(who, "run.delete", "C", "c0", None, None)
        buffer.close()  # writes what is pending
        carol = accounts.query_audit(user="carol")
        assert [(e.action, e.run_id, e.token_id) for e in carol] == [
            ("run.delete", "c0", "cccccccccccc"), ("run.get", "c2", "cccccccccccc"),
            ("run.get", "c1", "cccccccccccc"), ("run.get", "c0", "cccccccccccc")]
        assert carol[1].detail == {"i": 2}


def test_accounts_tables_are_their_own(server_db: str, tmp_path: Path) -> None:
    """The store's tables and version are untouched; reopening and concurrent first opens migrate once."""
    errors: list[BaseException] = []

    def open_once() -> None:
        try:
            Accounts(server_db).close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_once) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with Accounts(server_db) as accounts:
        assert accounts.db.query("SELECT version FROM accounts_schema_version") == [{"version": 1}]
        accounts.db.execute("UPDATE accounts_schema_version SET version = 99")
    with pytest.raises(SchemaVersionError):
        Accounts(server_db)

    if server_db.startswith("sqlite"):
        store_file = Path(server_db[len("sqlite:///"):])
        assert accounts_location(server_db) == str(store_file.with_name("accounts.db"))
        with sqlite3.connect(store_file) as conn:  # the store's file has no account tables
            names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert "runs" in names and not {n for n in names if "account" in n or "audit" in n}
        assert accounts_location(tmp_path) == str(tmp_path / "accounts.db")
        assert accounts_location("sqlite:////x/y/team.db") == "/x/y/team.accounts.db"
        with pytest.raises(StoreError, match="no directory"):
            Accounts(tmp_path / "missing" / "root")
    else:
        import psycopg

        from runpoint.store.postgres.schema import SCHEMA_VERSION

        with psycopg.connect(server_db) as conn:  # the store's version, not the accounts'
            assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


def _cli() -> typer.Typer:
    """A stand-in for the `runpoint server` group (its real callback serves when no subcommand is given)."""
    app = typer.Typer()

    @app.callback(invoke_without_command=True)
    def server(ctx: typer.Context) -> None:
        if ctx.invoked_subcommand is None:
            raise AssertionError("would serve")

    server_admin.register(app)
    return app


@SQLITE_NOW_POSTGRES_SLOW
def test_cli_manages_users_tokens_and_shows_the_audit_log(server_db: str) -> None:
    app, runner = _cli(), CliRunner()
    env = {"RUNPOINT_SERVER_DB": server_db, "COLUMNS": "200"}

    def cli(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == code, result.output
        return result.output

    assert "Added user ada" in cli("user", "add", "ada")
    assert "exists already" in cli("user", "add", "ada", code=1)
    out = cli("token", "create", "--user", "ada", "--scope", "write", "--project", "A", "--name", "laptop")
    text = next(line for line in out.splitlines() if line.startswith("rp_"))
    token_id = text.split("_")[1]
    assert "not shown again" in out
    assert "not a scope" in cli("token", "create", "--user", "ada", "--scope", "root", code=1)
    with Accounts(server_db) as accounts:
        assert accounts.verify(text) == Principal("ada", "write", "A", token_id)
        accounts.record_audit([AuditEntry(1e9, "ada", "run.delete", token_id=token_id, project="A", run_id="r9",
                                          detail={"why": "cleanup"}, remote="10.1.2.3")])

    listing = cli("token", "ls")
    assert token_id in listing and "laptop" in listing and "active" in listing and text not in listing
    [row] = json.loads(cli("token", "ls", "--json"))
    assert row["id"] == token_id and row["status"] == "active" and text.split("_")[2] not in json.dumps(row)
    assert "ada" in cli("user", "ls")

    assert f"Revoked token {token_id}" in cli("token", "revoke", token_id)
    assert json.loads(cli("token", "ls", "--json"))[0]["status"] == "revoked"
    assert cli("token", "ls", "--active").count(token_id) == 0
    cli("user", "disable", "ada")
    assert json.loads(cli("user", "ls", "--json"))[0]["disabled"] is True

    table = cli("audit", "--user", "ada", "--since", "2001-01-01")
    assert "run.delete" in table and "r9" in table and "10.1.2.3" in table and "cleanup" in table
    [entry] = json.loads(cli("audit", "--run", "r9", "--json"))
    assert entry["action"] == "run.delete" and entry["detail"] == {"why": "cleanup"}
    assert json.loads(cli("audit", "--since", "1d", "--json")) == []  # 1e9 is 2001
    assert "neither a date" in cli("audit", "--since", "soon", code=1)
