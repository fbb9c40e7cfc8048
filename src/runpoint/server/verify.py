"""The dashboard's Verify button: re-hash a checkpoint in a child process, with a time limit.

Hashing reads every byte of the checkpoint; a huge checkpoint, a slow disk or a file that
never ends (a FIFO, a hung network mount) would hold a server thread for as long as it
lasts. A child process can be killed when the time is up, a thread cannot: the request
answers 504 and nothing keeps running. ``RUNPOINT_UI_VERIFY_TIMEOUT`` sets the limit in
seconds (default :data:`DEFAULT_TIMEOUT_S`); at most :data:`MAX_CONCURRENT` run at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from fastapi import HTTPException

TIMEOUT_ENV = "RUNPOINT_UI_VERIFY_TIMEOUT"
DEFAULT_TIMEOUT_S = 300.0
MAX_CONCURRENT = 2

_slots = threading.BoundedSemaphore(MAX_CONCURRENT)

_CHILD = """
import json, sys
from runpoint.checkpoint import verify_checkpoint
print(json.dumps([problem for result in verify_checkpoint(sys.argv[1]) for problem in result.problems]))
"""


def verify_timeout() -> float:
    """Seconds a verification may take (``$RUNPOINT_UI_VERIFY_TIMEOUT``, else the default)."""
    try:
        value = float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S))
    except ValueError:
        return DEFAULT_TIMEOUT_S
    return value if value > 0 else DEFAULT_TIMEOUT_S


def verify_in_child(folder: str | os.PathLike[str], timeout: float | None = None) -> list[str]:
    """The problems :func:`runpoint.checkpoint.verify_checkpoint` finds in ``folder``; [] when it is intact.

    Raises HTTPException 504 when it takes longer than ``timeout`` (the child is killed),
    503 when :data:`MAX_CONCURRENT` verifications are already running.
    """
    timeout = verify_timeout() if timeout is None else timeout
    if not _slots.acquire(blocking=False):
        raise HTTPException(503, f"{MAX_CONCURRENT} checkpoints are being verified already; try again when they finish")
    package_parent = str(Path(__file__).resolve().parents[2])  # the child imports this same runpoint
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))}
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, os.fspath(folder)], capture_output=True, text=True, timeout=timeout,
            env=env, stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:  # subprocess.run has killed and reaped the child
        raise HTTPException(
            504, f"verifying {os.path.basename(os.fspath(folder).rstrip('/'))} took longer than {timeout:g} s and was stopped; run "
            f"`runpoint ckpt verify` on it in a terminal, or raise ${TIMEOUT_ENV}",
        ) from None
    finally:
        _slots.release()
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return [f"verification failed: {lines[-1] if lines else f'exit code {done.returncode}'}"]
    try:
        problems = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return [f"verification printed no result: {done.stdout[-200:]!r}"]
    return [str(problem) for problem in problems]
