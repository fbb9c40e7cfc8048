"""mypy passes on src/ (STYLE: types that run)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import REPO


@pytest.mark.slow  # ~25 s of mypy; CI runs it
def test_mypy_finds_no_errors() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", str(REPO / "src" / "runpoint")],
        capture_output=True, text=True, cwd=REPO, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-5000:]
