"""The README's diagnostics example runs as written, and what it promises is on disk afterwards."""

from __future__ import annotations

import re

import pytest

from runpoint import query
from runpoint.store.sqlite import SQLiteStore

from .conftest import REPO, cli, run_script

EXAMPLE = REPO / "examples" / "diagnostics.py"


def test_the_readme_shows_the_example_verbatim() -> None:
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    assert EXAMPLE.read_text() in blocks


@pytest.mark.slow  # the whole example plus a report, ~10 s
def test_the_example_records_diagnostics_media_and_reports(tmp_path) -> None:
    root = tmp_path / "runpoint"
    result = run_script(tmp_path, root, EXAMPLE.read_text())
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.strip().splitlines()[-1]
    with SQLiteStore(root / "runpoint.db") as store:
        keys = set(store.metric_keys(run_id))
        assert {"train/loss", "val/loss", "val/acc", "watch/grad_norm", "watch/update_ratio", "watch/clip_events",
                "perf/step_time_s", "perf/samples_per_s"} <= keys
        assert [k.key for k in query.media_keys(store, run_id)] == ["val/inputs", "val/logits", "val/predictions"]
        summary = store.get_summary(run_id)
        assert summary["best/val/acc"] > 0.5 and summary["best/val/acc.step"] % 50 == 49
        assert store.get_params(run_id)["model.params_total"] == 16 * 32 + 32 + 32 * 4 + 4
    assert (root / "diagnostics" / run_id / "model_summary.txt").is_file()
    report = cli(root, "report", run_id, "--out", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "report" / f"report-{run_id}.html").stat().st_size > 50_000
