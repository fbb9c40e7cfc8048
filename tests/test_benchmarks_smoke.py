"""Every benchmark still runs: `python -m benchmarks.run --smoke` at tiny sizes.

A benchmark that breaks (an API it calls changed, the dashboard started requiring a token)
must fail here, not months later when someone re-measures. The smoke run leaves out peers
that are not installed (the bench extra is not part of the test install); any other failure,
runpoint's own rows above all, fails it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import REPO


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_benchmark_runs_in_smoke_mode(tmp_path):
    out = tmp_path / "benchmarks.md"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--out", str(out), "--workdir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=880,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = out.read_text()
    assert "**failed:**" not in text
    sections = json.loads(out.with_suffix(".json").read_text())["sections"]
    modules = sorted(p.stem for p in (REPO / "benchmarks").glob("bench_*.py"))
    assert len(sections) == len(modules), (sorted(sections), modules)
    logging = next(numbers for title, numbers in sections.items() if title.startswith("Logging"))
    ours = logging["trackers"]["runpoint"]
    assert ours["mean_us"] > 0 and ours["cpu_us"] > 0 and ours["read_points"] == logging["steps"]
