"""A resumed run that rewinds to its checkpoint shows each step once in TensorBoard and MLflow."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

import runpoint as rp
from runpoint.sinks import MLflowSink, read_external

from .conftest import start_script, wait_for_line


def _tensorboard_steps(logdir: str, key: str) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    if not Path(logdir).is_dir():  # the sink has not started yet
        return []
    accumulator = EventAccumulator(logdir, size_guidance={"scalars": 0})
    accumulator.Reload()
    if key not in accumulator.Tags()["scalars"]:
        return []
    return [event.step for event in accumulator.Scalars(key)]


@pytest.mark.slow
def test_tensorboard_shows_each_step_once_after_sigkill_and_resume(tmp_path: Path, root: Path) -> None:
    pytest.importorskip("tensorboard")
    proc = start_script(tmp_path, root, """
        import time, runpoint as rp
        run = rp.init(project="tb", id="r1", sinks=["tensorboard"], console=False)
        ckpt = rp.CheckpointManager(run)
        for step in range(100):
            run.log({"loss": float(step)}, step=step)
            if step == 49:
                ckpt.save(step, {"step": step})
        run.flush()
        print("ready", flush=True)
        time.sleep(600)
    """)
    try:
        wait_for_line(proc, "ready")
        logdir = str(root / "tb" / "r1" / "tensorboard")
        deadline = time.monotonic() + 30
        while _tensorboard_steps(logdir, "loss")[-1:] != [99]:  # the killed attempt reached TensorBoard
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    with rp.init(project="tb", resume="r1", root=root, sinks=["tensorboard"], console=False) as run:
        state: dict[str, Any] = {"step": None}
        assert rp.CheckpointManager(run).restore(state) == 50
        for step in range(50, 150):
            run.log({"loss": float(step) + 0.5}, step=step)
    assert read_external(run.dir)["tensorboard"]["status"] == "finished"

    assert _tensorboard_steps(logdir, "loss") == list(range(150))  # not 50..99 twice

    from tensorboard import context
    from tensorboard.backend.event_processing import (
        data_provider,
        plugin_event_multiplexer,
    )

    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, logdir)
    scalars = provider.read_scalars(
        ctx=context.RequestContext(), experiment_id="", plugin_name="scalars", downsample=1000,
        run_tag_filter=data_provider.provider.RunTagFilter(tags=["loss"]),
    )
    points = next(iter(scalars.values()))["loss"]
    assert [p.step for p in points] == list(range(150))
    assert [p.value for p in points[50:]] == [step + 0.5 for step in range(50, 150)]  # the resumed attempt's


@pytest.mark.slow
def test_mlflow_goes_on_in_a_new_run_holding_each_step_once(root: Path, mlflow_sqlite: str) -> None:
    from mlflow import MlflowClient

    with rp.init(project="ml", id="r1", root=root, config={"lr": 0.1}, console=False,
                 sinks=[MLflowSink(tracking_uri=mlflow_sqlite)]) as run:
        ckpt = rp.CheckpointManager(run)
        for step in range(10):
            run.log({"loss": float(step)}, step=step)
            if step == 5:
                ckpt.save(step, {"step": step})
    first = read_external(run.dir)["mlflow"]["external"]["run_id"]

    with rp.init(project="ml", resume="r1", root=root, console=False,
                 sinks=[MLflowSink(tracking_uri=mlflow_sqlite)]) as run:
        assert rp.CheckpointManager(run).restore({"step": None}) == 6
        for step in range(6, 12):
            run.log({"loss": step + 0.5}, step=step)
    record = read_external(run.dir)["mlflow"]
    assert record["status"] == "finished", record
    second = record["external"]["run_id"]
    assert second != first

    client = MlflowClient(tracking_uri=mlflow_sqlite)
    new, old = client.get_run(second), client.get_run(first)
    history = sorted((m.step, m.value) for m in client.get_metric_history(second, "loss"))
    assert history == [(s, float(s)) for s in range(6)] + [(s, s + 0.5) for s in range(6, 12)]
    assert new.info.status == "FINISHED" and new.data.params == {"lr": "0.1"}
    assert new.data.tags["runpoint.rewound_from"] == first and new.data.tags["runpoint.run_id"] == "r1"
    assert old.info.status == "KILLED" and old.data.tags["runpoint.superseded_by"] == second
    assert new.info.run_name == old.info.run_name
