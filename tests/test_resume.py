"""resume="<id>" / "latest" continues the same run: same id, appended metrics, new console log."""

from __future__ import annotations

import json

import pytest

import runpoint as rp
from runpoint.store import RunStatus

from .conftest import run_script, start_script, wait_for_line


def test_resume_appends_to_the_same_run(tmp_path, root, store_at) -> None:
    first = run_script(tmp_path, root, """
        import runpoint as rp
        with rp.init(project="p", id="r1", config={"lr": 0.1}, tags=["a"]) as run:
            for step in range(5):
                run.log({"x": float(step)})
            run.summary["note"] = "first"
            print("first attempt output")
    """)
    assert first.returncode == 0, first.stderr
    second = run_script(tmp_path, root, """
        import runpoint as rp
        with rp.init(project="p", resume="r1", tags=["b"]) as run:
            assert run.id == "r1" and run.resumed and run.resume_count == 1
            assert run.step == 5, run.step
            assert run.summary["note"] == "first"
            assert run.config == {"lr": 0.1}, run.config
            for _ in range(3):
                run.log({"x": 10.0})
            print("second attempt output")
    """)
    assert second.returncode == 0, second.stderr
    store = store_at()
    run = store.get_run("r1")
    assert run.status is RunStatus.COMPLETED and run.resume_count == 1
    assert run.tags == ("a", "b")
    x = store.read_metric("r1", "x")
    assert x.steps.tolist() == [0, 1, 2, 3, 4, 5, 6, 7]
    assert x.values.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 10.0, 10.0, 10.0]
    logs = root / "p" / "r1" / "logs"
    assert (logs / "console.log").read_text() == "first attempt output\n"
    assert (logs / "console_resume_1.log").read_text() == "second attempt output\n"
    meta = json.loads((root / "p" / "r1" / "meta.json").read_text())
    assert len(meta["resumes"]) == 1 and meta["status"] == "completed"


def test_resume_latest_picks_the_newest_run_of_the_project(root) -> None:
    for run_id in ("old", "new"):
        rp.init(project="p", id=run_id, root=root, console=False).finish()
    rp.init(project="other", id="elsewhere", root=root, console=False).finish()
    with rp.init(project="p", resume="latest", root=root, console=False) as run:
        assert run.id == "new"


def test_resume_of_a_crashed_run_after_sigkill(tmp_path, root, store_at) -> None:
    proc = start_script(tmp_path, root, """
        import time, runpoint as rp
        run = rp.init(project="p", id="r1")
        for step in range(3):
            run.log({"x": float(step)})
        run.flush()
        print("ready", flush=True)
        time.sleep(60)
    """)
    wait_for_line(proc, "ready")
    proc.kill()
    proc.wait()
    with rp.init(project="p", resume="r1", root=root, console=False) as run:
        assert run.step == 3
        run.log({"x": 3.0})
    store = store_at()
    assert store.read_metric("r1", "x").steps.tolist() == [0, 1, 2, 3]
    assert store.get_run("r1").status is RunStatus.COMPLETED


def test_resuming_a_run_that_is_still_alive_is_refused(tmp_path, root) -> None:
    proc = start_script(tmp_path, root, """
        import time, runpoint as rp
        run = rp.init(project="p", id="r1")
        print("ready", flush=True)
        time.sleep(60)
    """)
    try:
        wait_for_line(proc, "ready")
        with pytest.raises(rp.RunpointError, match="still running"):
            rp.init(project="p", resume="r1", root=root, console=False)
    finally:
        proc.kill()
        proc.wait()


def test_resume_errors(root) -> None:
    with pytest.raises(rp.RunNotFoundError, match="no runs to resume"):
        rp.init(project="p", resume="latest", root=root, console=False)
    rp.init(project="p", id="r1", root=root, console=False).finish()
    with pytest.raises(rp.RunNotFoundError, match="'nope'"):
        rp.init(project="p", resume="nope", root=root, console=False)
    with pytest.raises(rp.InvalidArgumentError, match="belongs to project 'p'"):
        rp.init(project="q", resume="r1", root=root, console=False)
    with pytest.raises(rp.InvalidArgumentError, match="conflicts"):
        rp.init(project="p", resume="r1", id="r2", root=root, console=False)


def test_resume_with_a_changed_config_keeps_both(root, store_at) -> None:
    rp.init(project="p", id="r1", config={"lr": 0.1}, root=root, console=False).finish()
    with rp.init(project="p", resume="r1", config={"lr": 0.2}, root=root, console=False):
        pass
    assert store_at().get_params("r1") == {"lr": 0.1}
    assert "lr: 0.2" in (root / "p" / "r1" / "config_resume_1.yaml").read_text()
