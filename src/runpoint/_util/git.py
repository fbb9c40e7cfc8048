"""What git says about the code a run started from: commit, branch, remote, local changes."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from .uri import without_credentials

MAX_DIFF_BYTES = 10 * 1024 * 1024
_TIMEOUT_S = 10


def _git(cwd: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, timeout=_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.decode("utf-8", errors="replace")


def git_state(cwd: Path) -> tuple[dict[str, Any] | None, bytes]:
    """``(info, diff)`` for the repository containing ``cwd``; ``(None, b"")`` outside one.

    ``info`` holds commit, branch, remote, dirty and the untracked files; ``diff`` is
    ``git diff HEAD`` (binary-safe, cut at 10 MiB with a note).
    """
    top = _git(cwd, "rev-parse", "--show-toplevel")
    if top is None:
        return None, b""
    commit = (_git(cwd, "rev-parse", "HEAD") or "").strip() or None
    branch = (_git(cwd, "rev-parse", "--abbrev-ref", "HEAD") or "").strip() or None
    remote = (_git(cwd, "config", "--get", "remote.origin.url") or "").strip()
    status = _git(cwd, "status", "--porcelain", "--untracked-files=normal") or ""
    untracked = [line[3:] for line in status.splitlines() if line.startswith("?? ")]
    diff = b""
    if commit is not None:
        try:
            diff = subprocess.run(
                ["git", "diff", "HEAD", "--no-color", "--no-ext-diff"],
                cwd=cwd, capture_output=True, timeout=_TIMEOUT_S, check=False,
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            diff = b""
    truncated = len(diff) > MAX_DIFF_BYTES
    if truncated:
        diff = diff[:MAX_DIFF_BYTES] + b"\n# runpoint: diff cut at 10 MiB\n"
    info = {
        "root": top.strip(),
        "commit": commit,
        "branch": None if branch == "HEAD" else branch,
        "remote": without_credentials(remote) or None,
        "dirty": bool(status.strip()),
        "untracked": untracked[:1000],
        "diff_bytes": len(diff),
        "diff_truncated": truncated,
    }
    return info, diff


def changes_note(info: dict[str, Any]) -> str:
    """What differed from the commit, for a one-line summary: ``"uncommitted changes (git.diff)"``,
    ``"3 untracked files"``, both, or ``""`` for a clean tree."""
    parts = []
    if info.get("diff_file"):
        parts.append(f"uncommitted changes ({info['diff_file']})")
    elif info.get("dirty") and info.get("diff_bytes"):  # dirty with a diff that was not kept
        parts.append("uncommitted changes")
    untracked = info.get("untracked") or []
    if untracked:
        parts.append(f"{len(untracked)} untracked file{'s' if len(untracked) != 1 else ''}")
    if not parts and info.get("dirty"):
        parts.append("uncommitted changes")
    return ", ".join(parts)
