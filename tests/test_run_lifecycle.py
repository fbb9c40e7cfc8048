"""running -> completed | failed | killed | crashed, with real processes and signals."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from runpoint import query
from runpoint.store import RunStatus

from .conftest import (
    child_env,
    cli,
    run_script,
    start_script,
    wait_for_line,
    write_script,
)

LOOP = """
import time, runpoint as rp
run = rp.init(project="p", id="r1")
print("ready", flush=True)
step = 0
while True:
    run.log({"x": float(step)}, step=step)
    step += 1
    time.sleep(0.001)
"""


def _status(store_at, run_id: str = "r1"):
    store = store_at()
    return query.resolve_run(store, run_id)


def test_with_block_completes(tmp_path, root, store_at) -> None:
    result = run_script(tmp_path, root, """
        import runpoint as rp
        with rp.init(project="p", id="r1") as run:
            run.log({"x": 1.0})
    """)
    assert result.returncode == 0, result.stderr
    run = _status(store_at)
    assert run.status is RunStatus.COMPLETED and run.ended_at is not None and run.error is None
    meta = json.loads((root / "p" / "r1" / "meta.json").read_text())
    assert meta["status"] == "completed" and meta["ended_at"] >= meta["started_at"]


def test_script_ending_without_finish_completes_at_exit(tmp_path, root, store_at) -> None:
    result = run_script(tmp_path, root, """
        import runpoint as rp
        run = rp.init(project="p", id="r1")
        run.log({"x": 1.0})
    """)
    assert result.returncode == 0, result.stderr
    assert _status(store_at).status is RunStatus.COMPLETED
    assert store_at().read_metric("r1", "x").values.tolist() == [1.0]


def test_exception_in_with_block_fails_with_traceback(tmp_path, root, store_at) -> None:
    result = run_script(tmp_path, root, """
        import runpoint as rp
        with rp.init(project="p", id="r1") as run:
            run.log({"x": 1.0})
            raise ValueError("boom at step 1")
    """)
    assert result.returncode == 1
    run = _status(store_at)
    assert run.status is RunStatus.FAILED
    assert "Traceback" in run.error and "ValueError: boom at step 1" in run.error
    assert store_at().read_metric("r1", "x").values.tolist() == [1.0]


def test_uncaught_exception_without_with_block_fails(tmp_path, root, store_at) -> None:
    result = run_script(tmp_path, root, """
        import runpoint as rp
        run = rp.init(project="p", id="r1")
        run.log({"x": 1.0})
        1 / 0
    """)
    assert result.returncode == 1
    assert "ZeroDivisionError" in result.stderr  # the user's traceback still prints
    run = _status(store_at)
    assert run.status is RunStatus.FAILED and "ZeroDivisionError" in run.error


@pytest.mark.slow  # over 3 s of subprocesses on 2 cores: CI runs it after the default run
def test_a_forked_child_that_starts_its_own_run_and_raises_fails_only_that_run(tmp_path, root, store_at) -> None:
    result = run_script(tmp_path, root, """
        import atexit, os, runpoint as rp
        parent = rp.init(project="p", id="parent")
        parent.log({"x": 1.0})
        pid = os.fork()
        if pid == 0:
            os.dup2(os.open("child_stderr.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
            hooks_before = atexit._ncallbacks()
            child = rp.init(project="p", id="child")
            with open("child_hooks.txt", "w") as out:
                out.write(f"{hooks_before} {atexit._ncallbacks()}")
            child.log({"y": 1.0})
            raise ValueError("boom in the child")
        _, status = os.waitpid(pid, 0)
        print("child exit code", os.waitstatus_to_exitcode(status))
        parent.log({"x": 2.0})
    """)
    assert result.returncode == 0, result.stderr
    assert "child exit code 1" in result.stdout
    child_stderr = (tmp_path / "child_stderr.txt").read_text()
    assert "RecursionError" not in child_stderr and "maximum recursion" not in child_stderr
    assert child_stderr.count("Traceback (most recent call last)") == 1, child_stderr
    assert child_stderr.count("ValueError: boom in the child") == 1
    before, after = (tmp_path / "child_hooks.txt").read_text().split()
    assert before == after  # the exit hook the parent installed serves the child too; none added
    child = _status(store_at, "child")
    assert child.status is RunStatus.FAILED and "ValueError: boom in the child" in child.error
    assert child.error.count("Traceback (most recent call last)") == 1
    parent = _status(store_at, "parent")
    assert parent.status is RunStatus.COMPLETED and not parent.error
    assert store_at().read_metric("parent", "x").values.tolist() == [1.0, 2.0]
    assert store_at().read_metric("child", "y").values.tolist() == [1.0]


@pytest.mark.slow  # over 3 s of subprocesses on 2 cores: CI runs it after the default run
def test_sigterm_in_a_forked_child_with_its_own_run_kills_that_run_once(tmp_path, root, store_at) -> None:
    result = run_script(tmp_path, root, """
        import os, signal, runpoint as rp
        parent = rp.init(project="p", id="parent")
        pid = os.fork()
        if pid == 0:
            child = rp.init(project="p", id="child")
            child.add_signal_hook(lambda signum: print("hook", signum, flush=True))
            os.kill(os.getpid(), signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        print("child exit code", os.waitstatus_to_exitcode(status))
        parent.log({"x": 1.0})
    """)
    assert result.returncode == 0, result.stderr
    assert f"child exit code {128 + signal.SIGTERM}" in result.stdout
    assert result.stdout.count(f"hook {int(signal.SIGTERM)}") == 1, result.stdout
    assert _status(store_at, "child").status is RunStatus.KILLED
    assert _status(store_at, "parent").status is RunStatus.COMPLETED


def test_sys_exit_zero_completes_and_nonzero_fails(tmp_path, root, store_at) -> None:
    for code, expected in ((0, RunStatus.COMPLETED), (3, RunStatus.FAILED)):
        result = run_script(tmp_path, root, f"""
            import sys, runpoint as rp
            with rp.init(project="p", id="r{code}") as run:
                sys.exit({code})
        """)
        assert result.returncode == code
        assert _status(store_at, f"r{code}").status is expected


def test_sigterm_marks_killed_and_keeps_logged_points(tmp_path, root, store_at) -> None:
    proc = start_script(tmp_path, root, LOOP)
    wait_for_line(proc, "ready")
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 128 + signal.SIGTERM
    run = _status(store_at)
    assert run.status is RunStatus.KILLED and "signal 15" in run.error
    steps = store_at().read_metric("r1", "x").steps.tolist()
    assert len(steps) > 10 and steps == list(range(len(steps)))  # flushed on the way out


def test_sigterm_inside_with_block_marks_killed(tmp_path, root, store_at) -> None:
    proc = start_script(tmp_path, root, """
        import time, runpoint as rp
        with rp.init(project="p", id="r1") as run:
            try:
                print("ready", flush=True)
                while True:
                    run.log({"x": 1.0}); time.sleep(0.01)
            finally:
                print("cleanup ran", flush=True)
    """)
    wait_for_line(proc, "ready")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert "cleanup ran" in out, (proc.returncode, err)  # finally blocks run: the signal became SystemExit
    assert _status(store_at).status is RunStatus.KILLED


def test_ctrl_c_marks_killed(tmp_path, root, store_at) -> None:
    proc = start_script(tmp_path, root, LOOP)
    wait_for_line(proc, "ready")
    proc.send_signal(signal.SIGINT)
    proc.wait(30)
    run = _status(store_at)
    assert run.status is RunStatus.KILLED and run.error == "KeyboardInterrupt"


def test_a_users_own_sigterm_handler_still_runs(tmp_path, root, store_at) -> None:
    proc = start_script(tmp_path, root, """
        import signal, time, runpoint as rp
        stop = []
        signal.signal(signal.SIGTERM, lambda *a: stop.append(True))
        with rp.init(project="p", id="r1") as run:
            print("ready", flush=True)
            while not stop:
                run.log({"x": 1.0}); time.sleep(0.01)
            print("graceful", flush=True)
    """)
    wait_for_line(proc, "ready")
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "graceful" in out
    assert _status(store_at).status is RunStatus.KILLED


def test_sigkill_is_detected_as_crashed_on_the_next_read(tmp_path, root, store_at) -> None:
    proc = start_script(tmp_path, root, LOOP)
    wait_for_line(proc, "ready")
    time.sleep(0.8)
    proc.kill()
    proc.wait(10)
    raw = store_at().get_run("r1")
    assert raw.status is RunStatus.RUNNING  # nobody has looked yet
    listed = cli(root, "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)[0]["status"] == "crashed"
    run = store_at().get_run("r1")
    assert run.status is RunStatus.CRASHED and run.ended_at == pytest.approx(run.heartbeat_at)


def test_a_hung_process_is_crashed_by_stale_heartbeat_and_recovers_when_it_resumes(
    tmp_path, root, store_at, monkeypatch
) -> None:
    script = write_script(tmp_path, """
        import sys, time, runpoint as rp
        run = rp.init(project="p", id="r2")
        run.flush()  # its first write (a heartbeat) is done: SIGSTOP will not freeze it holding the lock
        print("ready", flush=True)
        sys.stdin.readline()
        for step in range(5):
            run.log({"x": float(step)}, step=step)
        run.finish()
        print("finished", flush=True)
    """, "hang.py")
    child = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=child_env(root),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_line(child, "ready")
        child.send_signal(signal.SIGSTOP)
        monkeypatch.setenv("RUNPOINT_HEARTBEAT_TIMEOUT", "1")
        time.sleep(1.5)
        assert query.resolve_run(store_at(), "r2").status is RunStatus.CRASHED
        child.send_signal(signal.SIGCONT)
        child.stdin.write("go\n")
        child.stdin.flush()
        wait_for_line(child, "finished")
        child.wait(30)
    finally:
        child.kill()
    monkeypatch.delenv("RUNPOINT_HEARTBEAT_TIMEOUT")
    run = query.resolve_run(store_at(), "r2")
    assert run.status is RunStatus.COMPLETED  # alive after all: its own finish wins
    assert store_at().read_metric("r2", "x").steps.tolist() == [0, 1, 2, 3, 4]


def _open_store_files(root) -> list[str]:
    """Paths of this process's open file descriptors onto the root's runpoint.db* files."""
    import os

    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(root / "runpoint.db")):
            found.append(target)
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/fd")
def test_finished_runs_hold_no_store_file_descriptors(root) -> None:
    import runpoint as rp

    runs = []
    for i in range(30):
        run = rp.init(project="p", root=root, console=False, system_metrics=False)
        run.log({"x": float(i)})
        run.summary["note"] = f"run {i}"
        run.finish()
        runs.append(run)
    assert _open_store_files(root) == []
    # reads after finish open a connection again and see everything
    assert runs[0].summary["x"] == 0.0 and runs[29].summary["note"] == "run 29"
    assert runs[5].store.read_metric(runs[5].id, "x").values.tolist() == [5.0]
    assert runs[29].store.get_run(runs[29].id).status is RunStatus.COMPLETED
