"""The `runpoint` command as a user runs it: real processes, output read back."""

from __future__ import annotations

import csv
import io
import json
import math

import pyarrow.parquet as pq
import pytest

import runpoint as rp

from .conftest import cli


@pytest.fixture
def two_runs(root):
    with rp.init(project="p", id="aaa1", name="alpha", config={"training": {"lr": 0.1}, "opt": "adam"},
                 tags=["cnn"], root=root, console=False) as run:
        for step in range(30):
            run.log({"train/loss": 1.0 / (step + 1), "val/acc": step / 30}, step=step)
        run.log({"weird": math.nan}, step=30)
        run.summary["best/acc"] = 0.9
    with rp.init(project="p", id="bbb2", name="beta", config={"training": {"lr": 0.01}, "opt": "adam"},
                 root=root, console=False) as run:
        run.log({"train/loss": 0.25}, step=0)
    return root


def test_ls_lists_runs_as_table_and_json(two_runs) -> None:
    table = cli(two_runs, "ls")
    assert table.returncode == 0, table.stderr
    assert "aaa1" in table.stdout and "beta" in table.stdout and "completed" in table.stdout
    listed = json.loads(cli(two_runs, "ls", "--json").stdout)
    assert [r["id"] for r in listed] == ["bbb2", "aaa1"]
    assert listed[1]["tags"] == ["cnn"] and listed[1]["status"] == "completed"
    filtered = json.loads(cli(two_runs, "ls", "--json", "--where", "params.training.lr > 0.05").stdout)
    assert [r["id"] for r in filtered] == ["aaa1"]
    with_columns = json.loads(cli(two_runs, "ls", "--json", "-c", "params.training.lr,metrics.train/loss").stdout)
    assert with_columns[0]["params.training.lr"] == "0.01" and with_columns[0]["metrics.train/loss"] == "0.25"
    assert json.loads(cli(two_runs, "ls", "--json", "--tag", "nope").stdout) == []


def test_show_prints_config_summary_and_metrics(two_runs) -> None:
    shown = cli(two_runs, "show", "alpha")
    assert shown.returncode == 0, shown.stderr
    for fragment in ("aaa1", "training.lr", "best/acc", "train/loss", "val/acc", "completed"):
        assert fragment in shown.stdout
    details = json.loads(cli(two_runs, "show", "aaa1", "--json").stdout)
    assert details["params"] == {"opt": "adam", "training.lr": 0.1}
    assert details["summary"] == {"best/acc": 0.9}
    assert details["metrics"]["train/loss"]["count"] == 30
    assert details["metrics"]["weird"]["last"] == "NaN"  # strict JSON
    assert details["meta"]["host"]


def test_metrics_prints_history_and_keys(two_runs) -> None:
    history = json.loads(cli(two_runs, "metrics", "aaa1", "train/loss", "--json").stdout)
    assert history["steps"] == list(range(30))
    assert history["values"][-1] == pytest.approx(1 / 30)
    table = cli(two_runs, "metrics", "aaa1", "train/loss", "--limit", "5")
    assert table.returncode == 0
    assert "29" in table.stdout and " 24 " not in table.stdout and "last 5 of 30" in table.stderr
    keys = json.loads(cli(two_runs, "metrics", "aaa1", "--json").stdout)
    assert sorted(keys) == ["train/loss", "val/acc", "weird"]


def test_metrics_json_honours_limit_and_all(two_runs) -> None:
    last_two = json.loads(cli(two_runs, "metrics", "aaa1", "train/loss", "--json", "--limit", "2").stdout)
    assert last_two["steps"] == [28, 29] and last_two["values"] == [pytest.approx(1 / 29), pytest.approx(1 / 30)]
    assert len(last_two["times"]) == 2
    every = json.loads(cli(two_runs, "metrics", "aaa1", "train/loss", "--json", "--limit", "2", "--all").stdout)
    assert every["steps"] == list(range(30))


def test_compare_shows_differences_and_final_metrics(two_runs) -> None:
    result = json.loads(cli(two_runs, "compare", "aaa1", "bbb2", "--json").stdout)
    assert result["params_differing"] == {"training.lr": [0.1, 0.01]}
    assert result["params_same"] == {"opt": "adam"}
    assert result["metrics_last"]["train/loss"] == [pytest.approx(1 / 30), 0.25]
    assert result["metrics_last"]["val/acc"][1] is None
    table = cli(two_runs, "compare", "aaa1", "bbb2")
    assert "training.lr" in table.stdout and "0.01" in table.stdout


def test_export_csv_json_and_parquet(two_runs, tmp_path) -> None:
    out = cli(two_runs, "export", "aaa1", "--format", "csv", "--out", "-")
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert len(rows) == 61 and rows[0].keys() == {"run_id", "key", "step", "value", "time"}
    assert [r["value"] for r in rows if r["key"] == "weird"] == ["nan"]
    cli(two_runs, "export", "aaa1", "--format", "json", "--out", str(tmp_path / "run.json"))
    document = json.loads((tmp_path / "run.json").read_text())
    assert document["series"]["train/loss"]["steps"] == list(range(30))
    assert document["run"]["id"] == "aaa1"
    done = cli(two_runs, "export", "aaa1", "-f", "parquet", "-o", str(tmp_path))
    assert done.returncode == 0 and "wrote 61 points" in done.stderr
    table = pq.read_table(tmp_path / "aaa1.parquet").to_pydict()
    assert table["step"][:3] == [0, 1, 2] and set(table["key"]) == {"train/loss", "val/acc", "weird"}


def test_rm_asks_first_and_deletes_files_and_records(two_runs) -> None:
    run_dir = two_runs / "p" / "bbb2"
    assert run_dir.exists()
    declined = cli(two_runs, "rm", "bbb2", input="n\n")
    assert declined.returncode == 1 and "nothing deleted" in declined.stderr and run_dir.exists()
    accepted = cli(two_runs, "rm", "bbb2", input="y\n")
    assert accepted.returncode == 0, accepted.stderr
    assert not run_dir.exists()
    assert [r["id"] for r in json.loads(cli(two_runs, "ls", "--json").stdout)] == ["aaa1"]
    twice = cli(two_runs, "rm", "aaa1", "aaa1", "--yes")  # named twice: deleted once, no error
    assert twice.returncode == 0 and "deleted 1 run(s)" in twice.stderr
    assert not (two_runs / "p" / "aaa1").exists()


@pytest.mark.parametrize(
    "args, code, fragment",
    [
        (("show", "zzz"), 1, "no run matches 'zzz'"),
        (("metrics", "aaa1", "nope"), 1, "has no metric 'nope'"),
        (("ls", "--status", "finished"), 1, "not one of"),
        (("ls", "--where", "lr>1"), 1, "expected <params|metrics|summary>"),
        (("ls", "--columns", "lr"), 2, "must start with"),
        (("export", "aaa1", "--format", "xml"), 1, "not one of csv, json, parquet"),
        (("export", "aaa1", "--out", "/no/such/dir/x.csv"), 1, "does not exist"),
        (("compare", "aaa1"), 2, "at least two"),
        (("ls", "--limit", "0"), 2, "--limit"),
        (("frobnicate",), 2, "No such command"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line(two_runs, args, code, fragment) -> None:
    result = cli(two_runs, *args)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert fragment in result.stderr
    if code == 1:
        assert result.stderr.startswith("runpoint: ") and result.stderr.count("\n") == 1
        assert "Traceback" not in result.stderr


@pytest.mark.slow  # over 3 s of subprocesses on 2 cores: CI runs it after the default run
def test_an_empty_or_missing_root_is_an_error(tmp_path) -> None:
    missing = cli(tmp_path / "none", "ls")
    assert missing.returncode == 1 and "no runpoint store at" in missing.stderr
    assert not (tmp_path / "none").exists()  # reading never creates a root
    rp.store.open_store(tmp_path / "empty").close()
    empty = cli(tmp_path / "empty", "ls")
    assert empty.returncode == 1 and "holds no runs yet" in empty.stderr
    empty_json = cli(tmp_path / "empty", "ls", "--json")
    assert empty_json.returncode == 0 and json.loads(empty_json.stdout) == [], empty_json.stderr


@pytest.mark.parametrize("command", ["demo", "ls", "show", "metrics", "compare", "export", "rm"])
def test_every_command_has_help(command) -> None:
    result = cli(None, command, "--help")
    assert result.returncode == 0 and "Usage:" in result.stdout


def test_version_and_bare_invocation() -> None:
    assert cli(None, "--version").stdout.startswith("runpoint ")
    bare = cli(None)
    assert "Usage" in bare.stdout + bare.stderr
