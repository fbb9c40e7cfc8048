"""Secrets are redacted from console output (split across writes too), rp.Text and run notes before
anything is written; user patterns come from the config or rp.init; text without secrets is untouched."""

from __future__ import annotations

import json
import re
import sqlite3
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import runpoint as rp
from runpoint.errors import InvalidArgumentError
from runpoint.logs.redact import BUILTIN_PATTERNS, EMAIL_PATTERN, Redactor
from runpoint.run.console import ConsoleCapture

SECRETS = {  # one of each well-known format, as it would appear in a line
    "aws-access-key": ("key id AKIAIOSFODNN7EXAMPLE here", "AKIAIOSFODNN7EXAMPLE"),
    "aws-secret-key": ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    "openai-key": ("OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwx123456", "sk-proj-abcdefghijklmnopqrstuvwx123456"),
    "github-token": ("token ghp_" + "a1B2" * 9 + " and github_pat_11ABCDEFG0123456789_abcdefXYZ", "ghp_" + "a1B2" * 9),
    "slack-token": ("slack xoxb-123456789012-abcdefABCDEF", "xoxb-123456789012-abcdefABCDEF"),
    "google-api-key": ("maps AIzaSyA-1234567890abcdefghijklmnopqrstu ok", "AIzaSyA-1234567890abcdefghijklmnopqrstu"),
    "jwt": ("auth eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
    "runpoint-token": ("RUNPOINT_TOKEN=rp_3f9a0c1b22de_" + "Ab1" * 14 + "C", "rp_3f9a0c1b22de_" + "Ab1" * 14 + "C"),
    "bearer-token": ("Authorization: Bearer abc.DEF-123_xyz~987", "abc.DEF-123_xyz~987"),
    "url-token": ("GET https://api.example.com/v1?user=1&access_token=s3cr3tvalue&x=2", "s3cr3tvalue"),
    "url-password": ("postgresql://runpoint:hunter2pass@db.example.com/runs", "hunter2pass"),
}
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1c7+9z5Pad7OejecsQ0bu3aumQ\nZmFrZWtleW1hdGVyaWFs\n-----END RSA PRIVATE KEY-----\n"


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_each_known_format_is_redacted_and_the_rest_of_the_line_kept(kind: str) -> None:
    line, secret = SECRETS[kind]
    redacted = Redactor.from_settings().redact(line)
    assert secret not in redacted and f"[REDACTED:{kind}]" in redacted
    assert redacted.split("[REDACTED")[0] == line.split(secret)[0]  # what comes before the secret is kept


def test_every_builtin_pattern_has_a_sample() -> None:
    assert set(BUILTIN_PATTERNS) == set(SECRETS) | {"private-key"}


def _capture(tmp_path, chunks: list[str], redactor: Redactor, flush_every: int = 1) -> str:
    path = tmp_path / "console.log"
    capture = ConsoleCapture(path, redactor=redactor)
    capture.start()
    try:
        for i, chunk in enumerate(chunks):
            sys.stdout.write(chunk)
            if i % flush_every == 0:
                capture.flush()
    finally:
        capture.stop()
    return path.read_text()


def test_console_secrets_split_across_writes_and_flushes_are_redacted(tmp_path, capsys) -> None:
    text = "".join(f"{line}\n" for line, _ in SECRETS.values()) + "before\n" + PEM + "after\n"
    chunks = [text[i:i + 5] for i in range(0, len(text), 5)]  # every secret is cut into pieces
    written = _capture(tmp_path, chunks, Redactor.from_settings())
    capsys.readouterr()
    for kind, (_, secret) in SECRETS.items():
        assert secret not in written and f"[REDACTED:{kind}]" in written
    assert "MIIEpAIBAAKCAQEA" not in written and "ZmFrZWtleW1hdGVyaWFs" not in written
    assert written.endswith("before\n[REDACTED:private-key]\nafter\n")
    assert len(written.splitlines()) == len(SECRETS) + 3


def test_an_unterminated_key_block_is_never_written(tmp_path, capsys) -> None:
    written = _capture(tmp_path, ["x\n-----BEGIN PRIVATE KEY-----\nAAAA", "BBBB\nCCCC"], Redactor.from_settings())
    capsys.readouterr()
    assert written == "x\n[REDACTED:private-key]\n"


def test_text_media_notes_and_config_patterns_are_redacted_before_they_are_stored(root, capsys) -> None:
    config = {"experiment": {"redact": {"emails": True, "patterns": {"employee": r"EMP-\d{6}"}}}}
    with rp.init(project="p", id="r1", root=root, config=config, notes="ask bob@corp.example about EMP-123456",
                 redact=[r"project-\w+-secret"]) as run:
        run.log({"sample": rp.Text("call with sk-abcdefghijklmnopqrstuvwxyz0 for project-x-secret",
                                   caption="by alice@corp.example")}, step=0)
        print("employee EMP-654321 mailed carol@corp.example with AKIAIOSFODNN7EXAMPLE")
        run.alert("leaked EMP-777777", "the job printed sk-abcdefghijklmnopqrstuvwxyz0")
    capsys.readouterr()
    with sqlite3.connect(root / "runpoint.db") as db:
        stored = json.dumps(db.execute("SELECT * FROM media").fetchall()) + json.dumps(db.execute("SELECT notes FROM runs").fetchall())
        stored += json.dumps(db.execute("SELECT title, text FROM alerts").fetchall())
    assert "EMP-777777" not in stored and "[REDACTED:employee]" in stored
    files = "".join(path.read_text(errors="replace") for path in (run.dir).rglob("*") if path.is_file())
    for secret in ("sk-abcdefghij", "project-x-secret", "alice@corp", "bob@corp", "EMP-123456", "EMP-654321",
                   "carol@corp", "AKIAIOSFODNN7EXAMPLE"):
        assert secret not in stored and secret not in files, secret
    console = (run.dir / "logs" / "console.log").read_text()
    assert console == "employee [REDACTED:employee] mailed [REDACTED:email] with [REDACTED:aws-access-key]\n"
    assert "[REDACTED:openai-key]" in stored and "[REDACTED:custom]" in stored and "[REDACTED:email]" in stored


def test_redaction_can_be_turned_off_and_bad_patterns_are_refused(root, capsys) -> None:
    with rp.init(project="p", id="off", root=root, redact=False) as run:
        print("AKIAIOSFODNN7EXAMPLE")
    capsys.readouterr()
    assert (run.dir / "logs" / "console.log").read_text() == "AKIAIOSFODNN7EXAMPLE\n"
    with pytest.raises(InvalidArgumentError, match="not a regular expression"):
        rp.init(project="p", root=root, redact=["(unclosed"])
    with pytest.raises(InvalidArgumentError, match="matches empty text"):
        rp.init(project="p", root=root, config={"experiment": {"redact": {"patterns": ["x*"]}}})
    with pytest.raises(ValidationError, match="redact"):
        rp.ProjectConfig.model_validate({"experiment": {"redact": {"patterns": ["[a-"]}}})


_EVERY_PATTERN = [re.compile(p) for p in [*BUILTIN_PATTERNS.values(), EMAIL_PATTERN]]
_FRAGMENTS = st.sampled_from(["sk-", "AKIA", "token=", "Bearer ", "://", "eyJ", "rp_", "ghp_", "xoxb-", "AIza", "@", ".",
                              "secret", "password=", "-----BEGIN PRIVATE KEY-----", "?", "&", " ", "\n"])
_TEXT = st.lists(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=12) | _FRAGMENTS,
                 max_size=40).map("".join)


@settings(max_examples=400, deadline=None)
@given(_TEXT)
def test_text_without_a_secret_comes_back_identical(text: str) -> None:
    redacted = Redactor.from_settings(emails=True).redact(text)
    if not any(pattern.search(text) for pattern in _EVERY_PATTERN):
        assert redacted == text
    else:
        assert "[REDACTED:" in redacted
