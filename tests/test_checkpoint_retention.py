"""Retention after each save: last N, best K by a metric, every Nth step; never the latest,
the best, or a checkpoint someone is reading."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import runpoint as rp
from runpoint.artifacts.storage import open_artifacts
from runpoint.checkpoint import AnyOf, BestN, EveryNSteps, LatestN
from runpoint.checkpoint import atomic as _atomic


def _on_disk(directory) -> list[int]:
    return sorted(int(name[5:]) for name in os.listdir(directory) if name.startswith("step-"))


def _expected_after(kept: list[tuple[int, float]], keep_last, keep_best, mode, every) -> list[tuple[int, float]]:
    """An independent model of the rules: ``kept`` is (step, metric) in save order."""
    keep = {kept[-1][0]}  # the latest
    scored = [(m, i, s) for i, (s, m) in enumerate(kept) if not math.isnan(m)]
    ranked = sorted(scored, key=lambda t: ((t[0] if mode == "min" else -t[0]), t[1]))
    if ranked:
        keep.add(ranked[0][2])  # the best
    if keep_last:
        keep |= {s for s, _ in kept[-keep_last:]}
    if keep_best:
        keep |= {s for _, _, s in ranked[:keep_best]}
    if every:
        keep |= {s for s, _ in kept if s % every == 0}
    if not (keep_last or keep_best or every):
        keep = {s for s, _ in kept}
    return [(s, m) for s, m in kept if s in keep]


saves = st.lists(
    st.tuples(st.integers(1, 4), st.one_of(st.floats(0, 10, allow_nan=False), st.just(math.nan))),
    min_size=1, max_size=9,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    plan=saves,
    keep_last=st.sampled_from([None, 1, 2, 3]),
    keep_best=st.sampled_from([None, 1, 2]),
    mode=st.sampled_from(["min", "max"]),
    every=st.sampled_from([None, 2, 3]),
)
def test_retention_keeps_exactly_what_the_rules_say(tmp_path_factory, plan, keep_last, keep_best, mode, every):
    directory = tmp_path_factory.mktemp("ret")
    ckpt = rp.CheckpointManager(directory, keep_last=keep_last, keep_best=keep_best, monitor="loss", mode=mode,
                                keep_every_n_steps=every, rng=False)
    kept: list[tuple[int, float]] = []
    step = 0
    for gap, metric in plan:
        step += gap
        ckpt.save(step, {"step": step}, metrics={"loss": metric})
        kept = _expected_after(kept + [(step, metric)], keep_last, keep_best, mode, every)
        assert _on_disk(directory) == [s for s, _ in kept]
        assert [c.step for c in ckpt.list()] == [s for s, _ in kept]
        assert ckpt.latest is not None and ckpt.latest.step == step
        best = ckpt.best
        scored = [(m, s) for s, m in kept if not math.isnan(m)]
        if scored:
            assert best is not None and best.metrics["loss"] == (min if mode == "min" else max)(m for m, _ in scored)
            assert (directory / "best").read_text().strip() == best.name
        else:
            assert best is None


def test_policy_objects_combine() -> None:
    from runpoint.artifacts.manifest import CheckpointInfo, FileEntry, Manifest

    def info(step: int, loss: float) -> CheckpointInfo:
        manifest = Manifest(step=step, sequence=step, created_at=0.0, files={"f": FileEntry(1, "x")}, metrics={"loss": loss})
        return CheckpointInfo(step, f"step-{step}", 0.0, 1, {"loss": loss}, manifest)

    checkpoints = [info(s, loss) for s, loss in ((1, 0.9), (2, 0.1), (3, 0.5), (4, 0.7), (5, 0.8), (6, 0.6))]
    assert LatestN(2).keep(checkpoints) == {5, 6}
    assert BestN(2, "loss").keep(checkpoints) == {2, 3}
    assert BestN(1, "loss", mode="max").keep(checkpoints) == {1}
    assert EveryNSteps(3).keep(checkpoints) == {3, 6}
    assert AnyOf((LatestN(1), BestN(1, "loss"), EveryNSteps(4))).keep(checkpoints) == {6, 2, 4}
    ckpt_keywords = rp.checkpoint.retention_from_keywords(keep_last=1, keep_best=1, monitor="loss")
    assert ckpt_keywords.keep(checkpoints) == {6, 2}
    with pytest.raises(rp.InvalidArgumentError, match="keep_last"):
        LatestN(0)
    with pytest.raises(rp.InvalidArgumentError, match="monitor"):
        rp.checkpoint.retention_from_keywords(keep_best=1)


def test_a_save_without_the_monitored_metric_is_refused(tmp_path) -> None:
    ckpt = rp.CheckpointManager(tmp_path, keep_best=1, monitor="val/loss")
    with pytest.raises(rp.InvalidArgumentError, match=r"metrics\['val/loss'\]"):
        ckpt.save(1, {"x": 1}, metrics={"train/loss": 0.5})
    with pytest.raises(rp.InvalidArgumentError, match="must be a number"):
        ckpt.save(1, {"x": 1}, metrics={"val/loss": "low"})
    assert os.listdir(tmp_path) == []
    with pytest.raises(rp.InvalidArgumentError, match="keep_best"):
        rp.CheckpointManager(tmp_path, keep_best=1)
    with pytest.raises(rp.InvalidArgumentError, match="mode"):
        rp.CheckpointManager(tmp_path, keep_last=1, mode="lowest")
    with pytest.raises(rp.InvalidArgumentError, match="not both"):
        rp.CheckpointManager(tmp_path, keep_last=1, retention=LatestN(2))
    with pytest.raises(rp.InvalidArgumentError, match="step"):
        ckpt.save(-1, {"x": 1}, metrics={"val/loss": 1.0})


def test_a_checkpoint_being_read_by_another_process_is_not_deleted(tmp_path) -> None:
    ckpt = rp.CheckpointManager(tmp_path, keep_last=1, rng=False)
    ckpt.save(1, {"x": 1})
    reader = subprocess.Popen(
        [sys.executable, "-c", (
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(tmp_path / 'step-000001' / 'manifest.json')!r}, os.O_RDONLY)\n"
            "fcntl.flock(fd, fcntl.LOCK_SH)\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n"
        )],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert reader.stdout is not None and reader.stdout.readline().strip() == "locked"
        ckpt.save(2, {"x": 2})
        assert _on_disk(tmp_path) == [1, 2]  # retention skipped the one being read
    finally:
        reader.communicate("")
    ckpt.save(3, {"x": 3})
    assert _on_disk(tmp_path) == [3]


def test_a_checkpoint_being_restored_in_this_process_is_not_deleted(tmp_path) -> None:
    ckpt = rp.CheckpointManager(tmp_path, keep_last=1, rng=False)
    ckpt.save(1, {"x": 1})
    with _atomic.reading(open_artifacts(tmp_path), "step-000001") as present:
        assert present
        ckpt.save(2, {"x": 2})
        assert _on_disk(tmp_path) == [1, 2]
    ckpt.save(3, {"x": 3})
    assert _on_disk(tmp_path) == [3]


def test_the_best_survives_keep_last_and_a_resave_replaces_a_step(tmp_path) -> None:
    ckpt = rp.CheckpointManager(tmp_path, keep_last=1, monitor="acc", mode="max", rng=False)
    for step, acc in ((1, 0.2), (2, 0.9), (3, 0.5), (4, 0.4)):
        ckpt.save(step, {"v": step}, metrics={"acc": acc})
    assert _on_disk(tmp_path) == [2, 4]
    ckpt.save(4, {"v": 40}, metrics={"acc": 0.1})  # the same step again: replaced as one unit
    state = {"v": 0}
    assert ckpt.restore(state) == 5 and state == {"v": 40}
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []


def test_should_save_triggers(tmp_path, monkeypatch) -> None:
    ckpt = rp.CheckpointManager(tmp_path, save_every_n_steps=5)
    assert [s for s in range(12) if ckpt.should_save(s)] == [0, 5, 10]
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    timed = rp.CheckpointManager(tmp_path / "t", save_every_seconds=60, rng=False)
    assert not timed.should_save(1)
    clock[0] += 61
    assert timed.should_save(2)
    timed.save(2, {"x": 1})
    assert not timed.should_save(3)
    with pytest.raises(rp.InvalidArgumentError, match="no trigger"):
        rp.CheckpointManager(tmp_path / "u").should_save(1)
