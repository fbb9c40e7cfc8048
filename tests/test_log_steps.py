"""The step rule: negative steps raise, backward steps warn, a resumed run restarted lower rewinds."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import runpoint as rp
from runpoint.errors import InvalidArgumentError

from .conftest import start_script, wait_for_line


def _init(root, **kwargs):
    return rp.init(project="p", root=root, console=False, system_metrics=False, **kwargs)


def _backward_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "steps should increase" in r.getMessage()]


@pytest.mark.parametrize("bad", [-1, np.int64(-5)])
def test_a_negative_step_raises_at_the_call_and_records_nothing(root, bad) -> None:
    with _init(root) as run:
        run.log({"x": 0.0}, step=0)
        with pytest.raises(InvalidArgumentError, match="step") as raised:
            run.log({"x": 1.0, "y": 2.0}, step=bad)
        assert isinstance(raised.value, ValueError)
        assert run.step == 1  # the failed call did not move the step either
        run.flush()
        assert run.store.read_metric(run.id, "x").steps.tolist() == [0]
        assert run.store.metric_keys(run.id) == ["x"]


def test_backward_and_repeated_steps_are_kept_and_warned_once_per_key(root, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="runpoint")
    with _init(root) as run:
        for step in range(10):
            run.log({"x": float(step)}, step=step)
        run.log({"x": -1.0}, step=3)         # backward
        run.log({"x": -2.0}, step=2)         # backward again: no second warning for x
        run.log({"y": 1.0}, step=5)
        run.log({"y": 2.0}, step=5)          # the same step twice
        run.log({"z": 1.0}, step=1)          # a new key below the run's step: fine
        run.flush()
        assert run.store.read_metric(run.id, "x").steps.tolist() == [*range(10), 3, 2]
        assert run.store.read_metric(run.id, "y").values.tolist() == [1.0, 2.0]
    warned = _backward_warnings(caplog)
    assert len(warned) == 2, warned
    assert "'x' at step 3 after step 9" in warned[0] and "'y' at step 5 after step 5" in warned[1]


KILLED_AT_STEP_9 = """
import runpoint as rp
run = rp.init(project="p", id="r1", console=False, system_metrics=False)
for step in range(10):
    run.log({"loss": float(step), "acc": 0.5}, step=step)
run.flush()
print("logged", flush=True)
import time; time.sleep(60)
"""


def test_a_run_resumed_without_a_checkpoint_and_logged_from_zero_again_holds_one_line(tmp_path, root, caplog) -> None:
    proc = start_script(tmp_path, root, KILLED_AT_STEP_9)
    wait_for_line(proc, "logged")
    proc.kill()
    proc.wait(10)
    caplog.set_level(logging.WARNING, logger="runpoint")
    with _init(root, resume="latest") as run:
        assert run.id == "r1" and run.step == 10
        for step in range(10):
            run.log({"loss": 100.0 + step}, step=step)
        run.log({"loss": 0.0}, step=9)  # after the rewind, a backward step is a backward step again
        run.flush()
        loss = run.store.read_metric("r1", "loss")
        assert loss.steps.tolist() == [*range(10), 9]
        assert loss.values.tolist()[:10] == [100.0 + s for s in range(10)]
        assert run.store.read_metric("r1", "acc").steps.tolist() == []  # rewound with the run
        assert run.summary["loss.max"] == 109.0
    messages = [r.getMessage() for r in caplog.records]
    assert any("resumed at step 0" in m and "dropped the 20 points" in m for m in messages), messages
    assert len(_backward_warnings(caplog)) == 1


def test_a_resumed_run_that_continues_or_restores_a_checkpoint_does_not_rewind_again(root) -> None:
    with _init(root, id="r1") as run:
        for step in range(10):
            run.log({"x": float(step)}, step=step)
    with _init(root, resume="r1") as run:
        run.log({"x": 10.0})                  # continues at step 10: nothing dropped
    with _init(root, resume="r1") as run:
        assert run.rewind(4) == 6             # what a checkpoint restore of step 4 does
        for step in range(5, 8):
            run.log({"x": float(step)}, step=step)
        run.flush()
        assert run.store.read_metric("r1", "x").steps.tolist() == list(range(8))


def test_resume_allow_resumes_a_run_or_starts_one(root) -> None:
    with _init(root, resume="allow") as first:  # nothing to resume: a new run
        assert not first.resumed
        first.log({"x": 1.0})
    with _init(root, resume="allow") as again:  # the project's latest run
        assert again.id == first.id and again.resume_count == 1 and again.step == 1
    with _init(root, resume="allow", id="mine") as named:  # that id does not exist: created with it
        assert named.id == "mine" and not named.resumed
    with _init(root, resume="allow", id="mine") as named_again:
        assert named_again.id == "mine" and named_again.resume_count == 1
    with pytest.raises(InvalidArgumentError, match="id"):
        _init(root, resume="allow", id="not valid!")


def test_what_runpoint_logs_at_steps_it_picks_is_not_warned_about(root, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="runpoint")
    with _init(root) as run:
        run.log({"loss": 1.0}, step=0)
        timer = run.step_timer()
        timer.tick()
        timer.tick()  # the same step again: the run's step did not move
        run.flush()
        assert len(run.store.read_metric(run.id, "perf/step_time_s").steps) == 2
    assert _backward_warnings(caplog) == []


def test_a_resumed_run_logging_only_new_keys_at_an_old_step_drops_nothing(root) -> None:
    with rp.init(project="p", console=False) as run:
        for step in range(10):
            run.log({"loss": float(step)}, step=step)
    with rp.init(project="p", resume=run.id, console=False) as resumed:
        resumed.log({"eval/sample": 1.0}, step=3)  # a new key at an old step: supersedes nothing
        resumed.log({"loss": 10.0}, step=10)
    assert list(resumed.store.read_metric(run.id, "loss").steps) == list(range(11))
    assert list(resumed.store.read_metric(run.id, "eval/sample").steps) == [3]
