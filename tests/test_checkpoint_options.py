"""CheckpointOptions (one frozen value for every setting) and CheckpointProcess (the per-process seam)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import runpoint as rp
from runpoint.checkpoint import (
    AnyOf,
    BestN,
    CheckpointOptions,
    LatestN,
    LocalProcess,
    SafetensorsIO,
    SaveEveryNSteps,
)


def test_the_options_are_frozen_and_the_manager_exposes_them(tmp_path) -> None:
    options = CheckpointOptions(retention=LatestN(2))
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.rng = False  # type: ignore[misc]
    ckpt = rp.CheckpointManager(tmp_path, options)
    assert ckpt.options is options and ckpt.retention == LatestN(2)
    with pytest.raises(AttributeError):
        ckpt.retention = LatestN(5)  # type: ignore[misc]


def test_keywords_and_options_describe_the_same_manager(tmp_path) -> None:
    by_keywords = rp.CheckpointManager(tmp_path / "a", keep_last=3, keep_best=1, monitor="val/loss",
                                       save_every_n_steps=5, compress="zstd", rng=False).options
    by_options = CheckpointOptions(
        retention=AnyOf((LatestN(3), BestN(1, "val/loss", "min"))), triggers=(SaveEveryNSteps(5),),
        io=SafetensorsIO("zstd"), rng=False,
    )
    assert (by_keywords.retention, by_keywords.monitor, by_keywords.mode, by_keywords.triggers, by_keywords.rng) == (
        by_options.retention, by_options.monitor, by_options.mode, by_options.triggers, by_options.rng)
    assert by_keywords.io.compress == by_options.io.compress == "zstd"  # type: ignore[attr-defined]


def test_the_best_pointer_follows_a_best_n_inside_the_retention() -> None:
    options = CheckpointOptions(retention=AnyOf((LatestN(2), BestN(1, "val/acc", "max"))))
    assert (options.monitor, options.mode, options.needs_monitor) == ("val/acc", "max", True)


def test_options_and_keywords_together_or_an_unknown_keyword_are_refused(tmp_path) -> None:
    with pytest.raises(rp.InvalidArgumentError, match="not both"):
        rp.CheckpointManager(tmp_path, CheckpointOptions(), keep_last=2)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="keep_lst"):
        rp.CheckpointManager(tmp_path, keep_lst=2)  # type: ignore[call-arg]
    with pytest.raises(rp.InvalidArgumentError, match="retention"):
        CheckpointOptions(retention="latest")  # type: ignore[arg-type]
    with pytest.raises(rp.InvalidArgumentError, match="mode"):
        CheckpointOptions(monitor="val/loss", mode="lowest")  # type: ignore[arg-type]


def test_a_manager_built_from_options_saves_retains_and_restores(tmp_path) -> None:
    options = CheckpointOptions(retention=LatestN(2), triggers=(SaveEveryNSteps(2),), rng=False)
    ckpt = rp.CheckpointManager(tmp_path, options)
    for step in range(7):
        if ckpt.should_save(step):
            ckpt.save(step, {"w": torch.full((3,), float(step))})
    assert [info.step for info in ckpt.list()] == [4, 6]
    state = {"w": torch.zeros(3)}
    assert rp.CheckpointManager(tmp_path, options).restore(state) == 7
    assert torch.equal(state["w"], torch.full((3,), 6.0))


class _Follower(LocalProcess):
    """A process that is not the coordinator: it writes its checkpoint, nothing shared."""

    rank = 1

    @property
    def coordinates(self) -> bool:
        return False


def test_a_process_that_does_not_coordinate_moves_no_pointer_and_deletes_nothing(tmp_path) -> None:
    leader = rp.CheckpointManager(tmp_path, keep_last=1, rng=False)
    leader.save(1, {"w": torch.ones(2)})
    follower = rp.CheckpointManager(tmp_path, keep_last=1, rng=False, process=_Follower())
    follower.save(2, {"w": torch.ones(2) * 2})
    assert (tmp_path / "latest").read_text().strip() == "step-000001"  # only the leader moves pointers
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("step-")) == ["step-000001", "step-000002"]
