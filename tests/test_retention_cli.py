"""runpoint gc and du as a user runs them: dry runs, questions, a policy from a YAML config,
and du's numbers against the real files of a real run."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

import runpoint as rp
from runpoint.store.sqlite import SQLiteStore

from .retention_runs import Spec, files_of, make_run, register_versions, run_cli


def _root_with_runs(root: Path) -> dict[str, Path]:
    root.mkdir()
    now = time.time()
    with SQLiteStore(root / "runpoint.db") as store:
        return {
            "oldfail": make_run(store, root, "oldfail", Spec("a", "failed", 40.0), now),
            "olddone": make_run(store, root, "olddone", Spec("a", "completed", 40.0), now),
            "kept": make_run(store, root, "kept", Spec("a", "failed", 40.0, tags=("keep",)), now),
            "champ": make_run(store, root, "champ", Spec("b", "completed", 40.0, registered=(2,)), now),
            "fresh": make_run(store, root, "fresh", Spec("b", "failed", 2.0), now),
            "live": make_run(store, root, "live", Spec("b", "live", 40.0), now),
        }


def _snapshot(root: Path) -> tuple[dict[str, int], list[str]]:
    """Every run file, and the ids the store lists (the database's own files change as it checkpoints)."""
    with SQLiteStore(root / "runpoint.db") as store:
        rows = sorted(run.id for run in store.list_runs())
    return {path: size for path, size in files_of(root).items() if not path.startswith("runpoint.db")}, rows


def test_dry_run_and_a_declined_question_delete_nothing_then_yes_deletes(root: Path) -> None:
    dirs = _root_with_runs(root)
    before = _snapshot(root)
    dry = run_cli(root, "gc", "--older-than", "30d", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    lines = {line.split()[0]: line for line in dry.stdout.splitlines()[1:]}
    assert "delete" in lines["oldfail"] and "delete" in lines["olddone"]
    assert "tagged keep" in lines["kept"] and "registered model m:1" in lines["champ"]
    assert "still running" in lines["live"] and "fresh" not in lines
    assert "2 run(s) to delete" in dry.stderr and "dry run: nothing deleted" in dry.stderr
    declined = run_cli(root, "gc", "--older-than", "30d", input="n\n")
    assert declined.returncode == 1 and "nothing deleted" in declined.stderr
    assert _snapshot(root) == before

    plan = json.loads(run_cli(root, "gc", "--older-than", "30d", "--status", "failed", "--dry-run", "--json").stdout)
    assert plan["to_delete"] == ["oldfail"] and plan["dry_run"] is True
    entry = next(run for run in plan["runs"] if run["id"] == "oldfail")
    assert entry["points"] == 3 and entry["bytes"]["total"] == sum(files_of(dirs["oldfail"]).values())
    assert entry["bytes"]["checkpoints"] == 3004  # two committed checkpoints; the latest pointer is "other"
    assert run_cli(root, "gc", "--older-than", "30d", "--json").returncode == 2  # a question would spoil the JSON

    done = run_cli(root, "gc", "--older-than", "30d", input="y\n")
    assert done.returncode == 0 and "deleted 2 run(s)" in done.stderr
    assert not dirs["oldfail"].exists() and not dirs["olddone"].exists()
    left = {run["id"] for run in json.loads(run_cli(root, "ls", "--json").stdout)}
    assert left == {"kept", "champ", "fresh", "live"}
    assert all(dirs[run_id].is_dir() for run_id in left)


def test_policy_from_a_yaml_config_and_its_errors_name_the_field(root: Path, tmp_path: Path) -> None:
    _root_with_runs(root)
    config = tmp_path / "configs" / "base.yaml"
    config.parent.mkdir()
    config.write_text(f"experiment:\n  root: {root}\n  project: b\n  retention:\n    older_than: 1d\n"
                      "    statuses: [failed]\n    keep_tags: []\n")
    plan = json.loads(run_cli(None, "gc", "--policy", "--dry-run", "--json").stdout)
    assert plan["rule"] == {"older_than_s": 86400.0, "statuses": ["failed"], "keep_tags": [], "keep_last": None,
                            "project": "b"}
    assert plan["to_delete"] == ["fresh"]  # project b's policy: a's old failures are not its business
    everywhere = json.loads(run_cli(None, "gc", "--policy", "--config", str(config), "--project", "a", "--dry-run",
                                "--json").stdout)
    assert sorted(everywhere["to_delete"]) == ["kept", "oldfail"]  # keep_tags: [] keeps no tag

    config.write_text("experiment:\n  retention:\n    older_than: 30x\n    statuses: [failed, running]\n")
    bad = run_cli(None, "gc", "--policy", "--dry-run")
    assert bad.returncode == 1
    assert "experiment.retention.older_than" in bad.stderr and "'30x' is not a duration" in bad.stderr
    assert "experiment.retention.statuses" in bad.stderr and "Traceback" not in bad.stderr
    config.write_text("experiment:\n  retention:\n    keep_last: 3\n")
    unset = run_cli(root, "gc", "--policy", "--dry-run")
    assert unset.returncode == 1 and "experiment.retention.older_than is not set" in unset.stderr
    both = run_cli(root, "gc", "--policy", "--older-than", "2d")
    assert both.returncode == 2 and "drop --older-than" in both.stderr
    assert "no such file" in run_cli(root, "gc", "--policy", "--config", "nope.yaml").stderr


def test_du_equals_the_real_file_sizes_of_a_real_run(root: Path) -> None:
    with rp.init(project="digits", name="real", root=root) as run:
        print("hello from the run")
        run.log({"loss": 0.5}, step=1)
        manager = rp.CheckpointManager(run, keep_last=3)
        for step in (1, 2):
            manager.save(step, {"w": torch.arange(4096, dtype=torch.float32) * step})
    directory = root / "digits" / run.id
    register_versions(root, run.id, (2,), directory)
    files = files_of(directory)
    committed = {path: size for path, size in files.items()
                 if path.startswith("checkpoints/step-") and path.count("/") >= 2}
    expected = {
        "checkpoints": sum(committed.values()),
        "registered": sum(size for path, size in committed.items() if path.startswith("checkpoints/step-000002/")),
        "media": sum(size for path, size in files.items() if path.startswith("media/")),
        "logs": sum(size for path, size in files.items() if path.startswith("logs/")),
        "files": len(files),
    }
    expected["other"] = sum(files.values()) - expected["checkpoints"] - expected["media"] - expected["logs"]
    assert expected["registered"] > 16384 and expected["logs"] > 0

    du = json.loads(run_cli(root, "du", "--json").stdout)
    (row,) = du["rows"]
    assert {key: row[key] for key in expected} == expected and row["total"] == sum(files.values())
    assert du["total"]["total"] == row["total"]
    by_project = json.loads(run_cli(root, "du", "--by", "project", "--json").stdout)
    assert by_project["rows"] == [{"project": "digits", "runs": 1, **du["total"]}]
    table = run_cli(root, "du")
    assert table.returncode == 0 and run.id in table.stdout and "total" in table.stderr
    assert "use run or project" in run_cli(root, "du", "--by", "host").stderr
