"""runpoint gc's promises on real roots: it deletes exactly the selected runs (rows and files),
never a running, registered or kept-tag run, and a gc killed halfway leaves a root that
readers use and the next gc finishes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runpoint import retention
from runpoint.errors import InvalidArgumentError, RunNotFoundError
from runpoint.store import RunStatus
from runpoint.store.sqlite import SQLiteStore

from .retention_runs import DAY, Spec, files_of, make_run, run_cli

PROJECTS = ("a", "b")
STATUSES = ("completed", "failed", "killed", "crashed", "live", "dead")
AGES = (0.2, 3.0, 20.0, 50.0, 400.0)  # days; far from every cutoff below

specs = st.builds(
    Spec,
    project=st.sampled_from(PROJECTS),
    status=st.sampled_from(STATUSES),
    age_days=st.sampled_from(AGES),
    tags=st.lists(st.sampled_from(["keep", "paper", "x"]), max_size=2, unique=True).map(tuple),
    registered=st.sampled_from([(), (), (1,), (2,), (1, 2)]),
)
rules = st.fixed_dictionaries({
    "older_than": st.sampled_from(["1d", "10d", "30d", "8w"]),
    "statuses": st.sampled_from([None, "failed,crashed,killed", "completed", "crashed"]),
    "keep_tags": st.sampled_from([("keep",), ("keep", "paper"), ()]),
    "keep_last": st.sampled_from([None, 1, 2]),
    "project": st.sampled_from([None, "a"]),
})


def expected_deletions(runs: dict[str, Spec], rule: retention.GcRule) -> set[str]:
    """The oracle: what the rules in docs/retention.md select, computed from the specs."""
    in_scope = {run_id: spec for run_id, spec in runs.items() if rule.project in (None, spec.project)}
    newest: set[str] = set()
    if rule.keep_last is not None:
        for project in PROJECTS:
            mine = sorted((rid for rid, s in in_scope.items() if s.project == project), reverse=True,  # newest first,
                          key=lambda rid: (-in_scope[rid].age_days * DAY - (in_scope[rid].status != "live") * 3600, rid))
            newest.update(mine[:rule.keep_last])
    chosen = set()
    for run_id, spec in in_scope.items():
        status = "crashed" if spec.status == "dead" else spec.status  # a gone process is reaped as crashed
        if status == "live" or RunStatus(status) not in rule.statuses or spec.age_days * DAY <= rule.older_than_s:
            continue
        if set(spec.tags) & set(rule.keep_tags) or spec.registered or run_id in newest:
            continue
        chosen.add(run_id)
    return chosen


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs=st.lists(specs, min_size=1, max_size=8), rule_args=rules)
def test_gc_deletes_exactly_the_selected_runs_and_never_a_protected_one(runs: list[Spec], rule_args: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "runpoint"
        root.mkdir()
        now = time.time()
        store = SQLiteStore(root / "runpoint.db")
        try:
            by_id = {f"r{index:02d}": spec for index, spec in enumerate(runs)}
            files = {run_id: files_of(make_run(store, root, run_id, spec, now)) for run_id, spec in by_id.items()}
            rule = retention.GcRule.parse(**rule_args)
            expected = expected_deletions(by_id, rule)

            plan = retention.plan_gc(store, rule)
            assert {e.run.id for e in plan.to_delete} == expected
            for run_id in by_id:  # planning (a dry run) deleted nothing
                assert files_of(root / by_id[run_id].project / run_id) == files[run_id]
            result = retention.delete_runs(store, plan.to_delete)

            assert set(result.deleted) == expected and not result.skipped and not result.left
            for run_id, spec in by_id.items():
                directory = root / spec.project / run_id
                if run_id in expected:
                    with pytest.raises(RunNotFoundError):
                        store.get_run(run_id)
                    assert not directory.exists() and store.metric_keys(run_id) == []
                else:  # kept whole: row, metrics and every file
                    assert store.get_run(run_id).id == run_id and store.metric_keys(run_id) == ["loss"]
                    assert files_of(directory) == files[run_id]
                    assert not (spec.status == "live" and store.get_run(run_id).status is not RunStatus.RUNNING)
            assert not (root / retention.TRASH_DIR).exists()
            for entry in plan.kept:  # every kept run says why
                assert entry.reason
                if by_id[entry.run.id].registered and entry.reason.startswith("registered"):
                    assert "m:" in entry.reason
        finally:
            store.close()


def test_durations_and_statuses_are_checked_with_clear_errors() -> None:
    assert retention.GcRule.parse("30d").older_than_s == 30 * DAY
    assert retention.GcRule.parse("12h").older_than_s == 12 * 3600
    assert retention.GcRule.parse("90m").older_than_s == 90 * 60
    assert retention.GcRule.parse("2w").older_than_s == 14 * DAY
    assert retention.GcRule.parse("1d12h").older_than_s == 1.5 * DAY
    for bad, words in (("30", "no unit"), ("30x", "not a duration"), ("", "empty"), ("-3d", "not a duration"),
                       ("d", "not a duration")):
        with pytest.raises(InvalidArgumentError, match=words) as caught:
            retention.GcRule.parse(bad)
        assert caught.value.argument == "older-than"
    with pytest.raises(InvalidArgumentError, match="never deletes running"):
        retention.GcRule.parse("1d", statuses="failed,running")
    with pytest.raises(InvalidArgumentError, match="'sucess' is not a status: use completed"):
        retention.GcRule.parse("1d", statuses="sucess")
    assert retention.GcRule.parse("1d", statuses=" Failed, crashed ,").statuses == (RunStatus.FAILED, RunStatus.CRASHED)


KILL_AT_SECOND_ROW = """
import os, signal, sys
from runpoint import query, retention
store = query.open_root(sys.argv[1])
plan = retention.plan_gc(store, retention.GcRule.parse("1d"))
real_delete = store.delete_run
calls = []
def delete_then_die(run_id):
    calls.append(run_id)
    if len(calls) == 2:  # the second run's directory is in the trash, its rows are not deleted yet
        os.kill(os.getpid(), signal.SIGKILL)
    real_delete(run_id)
store.delete_run = delete_then_die
print(",".join(e.run.id for e in plan.to_delete), flush=True)
retention.delete_runs(store, plan.to_delete)
"""


def test_a_gc_killed_between_moving_a_directory_and_deleting_its_rows_is_finished_by_the_next(root: Path) -> None:
    root.mkdir()
    now = time.time()
    with SQLiteStore(root / "runpoint.db") as store:
        for index in range(3):
            make_run(store, root, f"old{index}", Spec("a", "failed", 10.0), now)
        make_run(store, root, "kept", Spec("a", "failed", 10.0, tags=("keep",)), now)
    child = subprocess.run([sys.executable, "-c", KILL_AT_SECOND_ROW, str(root)], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr
    order = child.stdout.strip().split(",")
    first, second, third = order

    # what the kill left: the first run gone, the second in the trash with its rows, the third untouched
    trash = retention.trash_entries(root)
    assert [entry.name.rpartition(".")[0] for entry in trash] == [second]
    assert files_of(trash[0])["checkpoints/step-000002/model.safetensors"] == 2000
    with SQLiteStore(root / "runpoint.db") as store:
        assert {run.id for run in store.list_runs()} == {second, third, "kept"}
        assert not (root / "a" / second).exists() and (root / "a" / third).is_dir()
    # readers meet the run without files, not half of them
    shown = run_cli(root, "show", second, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["run"]["id"] == second
    assert run_cli(root, "ckpt", "ls", second).returncode in (0, 1)  # no traceback either way
    listed = run_cli(root, "du", "--json")
    assert {row["id"]: row["total"] for row in json.loads(listed.stdout)["rows"]}[second] == 0

    dry = json.loads(run_cli(root, "gc", "--older-than", "1d", "--dry-run", "--json").stdout)
    assert dry["leftovers"] == 1 and retention.trash_entries(root)  # a dry run finishes nothing
    done = json.loads(run_cli(root, "gc", "--older-than", "1d", "--yes", "--json").stdout)
    assert done["finished"] == [second] and done["deleted"] == [third]
    assert not (root / retention.TRASH_DIR).exists()
    with SQLiteStore(root / "runpoint.db") as store:
        assert [run.id for run in store.list_runs()] == ["kept"]
        assert [entry.name for entry in (root / "a").iterdir()] == ["kept"]
    assert first not in {row["id"] for row in json.loads(run_cli(root, "ls", "--json").stdout)}


def test_a_half_removed_trash_entry_without_rows_is_removed_and_a_resumed_run_comes_back(root: Path) -> None:
    root.mkdir()
    now = time.time()
    with SQLiteStore(root / "runpoint.db") as store:
        make_run(store, root, "back", Spec("a", "live", 10.0), now)
        trash = root / retention.TRASH_DIR
        trash.mkdir()
        os.rename(root / "a" / "back", trash / "back.0a1b2c3d")  # moved, then the run was resumed
        half = trash / "gone.deadbeef" / "checkpoints" / "step-000001"  # rows deleted, rmtree cut short
        half.mkdir(parents=True)
        (half / "model.safetensors").write_bytes(b"x" * 10)
        result = retention.finish_interrupted(store)
        assert result.finished == ["gone"]
        assert retention.trash_entries(root) == []
        assert (root / "a" / "back" / "checkpoints" / "step-000002" / "model.safetensors").stat().st_size == 2000
        assert store.get_run("back").status is RunStatus.RUNNING


def test_gc_and_du_refuse_a_store_url_with_the_reason(root: Path) -> None:
    for command in (["gc", "--older-than", "1d", "--dry-run"], ["du"]):
        refused = run_cli(None, *command, "--root", "https://runpoint.example.com")
        assert refused.returncode == 1
        assert "not a local root" in refused.stderr and "docs/retention.md" in refused.stderr
        assert "Traceback" not in refused.stderr


def test_the_oracle_agrees_with_a_hand_made_case() -> None:
    rule = retention.GcRule.parse("1d", keep_last=1)
    runs = {"n": Spec("a", "failed", 3.0), "o": Spec("a", "failed", 20.0), "t": Spec("a", "failed", 20.0, tags=("keep",)),
            "r": Spec("a", "crashed", 20.0, registered=(2,)), "l": Spec("b", "live", 20.0), "d": Spec("b", "dead", 20.0),
            "y": Spec("b", "completed", 0.2)}
    assert expected_deletions(runs, rule) == {"o", "d"}  # n and y are their project's newest, d was reaped
