"""One definition of "is step N due for a save?": the config's policy and the manager agree."""

from __future__ import annotations

import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import runpoint as rp
from runpoint.config import load_config
from runpoint.config.schema import CheckpointPolicy

policies = st.builds(
    CheckpointPolicy,
    save_steps=st.none() | st.integers(1, 10_000),
    keep_last=st.none() | st.integers(1, 10),
    keep_every_n_steps=st.none() | st.integers(1, 10_000),
)


def _answer(should_save, step: int) -> bool | str:
    try:
        return should_save(step)
    except rp.InvalidArgumentError as exc:
        return f"error: {exc}"


@settings(max_examples=60, deadline=None)
@given(policy=policies, steps=st.lists(st.integers(0, 10**7), min_size=1, max_size=20))
def test_config_and_manager_give_one_answer(policy: CheckpointPolicy, steps: list[int]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        manager = rp.CheckpointManager(directory, rng=False, **policy.manager_kwargs())
        for step in steps:
            assert _answer(policy.should_save, step) == _answer(manager.should_save, step), (policy, step)


def test_save_steps_from_yaml_reaches_the_manager(tmp_path) -> None:
    (tmp_path / "base.yaml").write_text("training:\n  checkpoint:\n    save_steps: 50\n")
    policy = load_config(tmp_path / "base.yaml").training.checkpoint
    manager = rp.CheckpointManager(tmp_path / "ckpts", rng=False, **policy.manager_kwargs())
    expected = [0, 50, 100, 150]
    assert [step for step in range(151) if manager.should_save(step)] == expected
    assert [step for step in range(151) if policy.should_save(step)] == expected


def test_without_save_steps_both_refuse_to_answer(tmp_path) -> None:
    policy = CheckpointPolicy()
    with pytest.raises(rp.InvalidArgumentError, match="no trigger is set.*save_steps"):
        policy.should_save(0)
    with pytest.raises(rp.InvalidArgumentError, match="no trigger is set.*save_steps"):
        rp.CheckpointManager(tmp_path, rng=False, **policy.manager_kwargs()).should_save(0)
