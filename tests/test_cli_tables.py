"""`ls` and `compare` tables in narrow terminals and pipes: ids whole, headers told apart."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import runpoint as rp
from runpoint.cli._tables import short_headers


def _cli(root: Path, *args: str, columns: int | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RUNPOINT_ROOT", "COLUMNS")}
    if columns is not None:
        env["COLUMNS"] = str(columns)
    result = subprocess.run([sys.executable, "-m", "runpoint", *args, "--root", str(root)],
                            capture_output=True, text=True, env=env, timeout=120)  # stdout is a pipe: no TTY
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def study(root: Path) -> list[str]:
    ids = []
    for i in range(10):
        config = {"training": {"learning_rate": 10.0 ** -(i % 4 + 2), "weight_decay": 1e-4 * i, "batch_size": 32 * (i % 3 + 1)},
                  "model": {"dropout": 0.1 * i, "hidden_sizes": [128, 64 + i]}}
        with rp.init(project="study", group="optuna-1", name=f"trial-number-{i}", config=config, root=root,
                     console=False) as run:
            run.log({"val/loss": 1 / (i + 1), "val/accuracy": 0.5 + i / 30, "train/loss": 2 / (i + 1)}, step=0)
            ids.append(run.id)
    return ids


COLUMNS = "params.training.learning_rate,params.training.weight_decay,params.model.dropout,metrics.val/accuracy"


@pytest.mark.parametrize("width", [80, 120, None])
def test_ls_keeps_ids_names_and_values_whole(study: list[str], root: Path, width: int | None) -> None:
    out = _cli(root, "ls", "--columns", COLUMNS, columns=width).stdout
    assert "…" not in out, out
    for run_id in study:
        assert run_id in out
    assert "trial-number-7" in out and "0.766667" in out
    head = " ".join(line for line in out.splitlines()[:3])  # a header may break over lines
    assert "learning_" in head and "weight_" in head and "dropout" in head and "accuracy" in head


def test_compare_of_a_study_is_one_row_per_run_at_80_columns(study: list[str], root: Path) -> None:
    out = _cli(root, "compare", "--group", "optuna-1", columns=80).stdout
    assert "…" not in out, out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split() and line.split()[0] in study}
    assert list(rows) == study  # oldest first, one row each, the id whole
    assert rows[study[8]][1:3] == ["trial-number-8", "completed"] and "0.766667" in rows[study[8]]


def test_compare_of_two_runs_stays_side_by_side(study: list[str], root: Path) -> None:
    out = _cli(root, "compare", study[0], study[1], columns=80).stdout
    assert f"{study[0]}" in out and "training.learning_rate" in out and "…" not in out


def test_short_headers_are_unambiguous() -> None:
    assert short_headers(["params.training.learning_rate", "params.model.dropout", "metrics.val/accuracy"]) == {
        "params.training.learning_rate": "learning_rate", "params.model.dropout": "dropout",
        "metrics.val/accuracy": "val/accuracy",
    }
    assert short_headers(["params.a.lr", "params.b.lr", "params.lr"]) == {
        "params.a.lr": "a.lr", "params.b.lr": "b.lr", "params.lr": "params.lr",
    }


@pytest.mark.parametrize("width", [30, 50, 80])
def test_a_wrapping_column_is_never_squeezed_out_of_a_table_too_wide_for_the_terminal(width: int) -> None:
    """The whole columns alone overflow a narrow terminal: the wrapping one (an alert's title) still shows."""
    from rich.console import Console
    from rich.table import Table

    from runpoint.cli._tables import print_table

    console = Console(width=width, force_terminal=False, record=True)
    table = Table(box=None)
    for heading in ("TIME", "RUN", "LEVEL", "KIND", "STEP"):
        table.add_column(heading, no_wrap=True)
    table.add_column("TITLE", overflow="fold")
    table.add_row("2026-12-07 09:08:42", "2p6q2fqrwjk2", "error", "nonfinite", "50", "train/loss became NaN at step 50")
    print_table(console, table)
    text = console.export_text()
    assert "TITLE" in text and "2p6q2fqrwjk2" in text
    assert all(word in text for word in "train/loss became NaN at step 50".split())
    assert console.width == width  # the console is left as it was
