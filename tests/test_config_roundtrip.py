"""dump -> load gives back any valid config, in YAML and JSON, with the same hash."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import runpoint as rp
from runpoint.config import MASK, config_hash, dump_config, load_config

from .config_strategies import tree_strategy

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _valid(tree: dict) -> rp.ProjectConfig:
    try:
        return rp.ProjectConfig.model_validate(tree)
    except pydantic.ValidationError:
        assume(False)  # a cross-field rule (keep_best without monitor...) rejects this draw
        raise


@SETTINGS
@given(tree=tree_strategy(rp.ProjectConfig), suffix=st.sampled_from([".yaml", ".json"]))
def test_any_valid_config_survives_dump_and_load(tmp_path: Path, tree: dict, suffix: str) -> None:
    config = _valid(tree)
    path = tmp_path / f"config{suffix}"
    dump_config(config, path, reveal_secrets=True)
    loaded = load_config(path, env={})
    assert loaded == config
    assert config_hash(loaded) == config_hash(config)


@SETTINGS
@given(tree=tree_strategy(rp.ProjectConfig))
def test_a_masked_dump_loads_back_with_only_the_secrets_masked(tmp_path: Path, tree: dict) -> None:
    config = _valid(tree)
    path = tmp_path / "config.yaml"
    text = dump_config(config, path)
    loaded = load_config(path, env={})
    secret = config.deployment.api_key
    if secret is not None and secret.get_secret_value() and secret.get_secret_value() != MASK:
        assert secret.get_secret_value() not in text.split("api_key:", 1)[1].splitlines()[0]
        assert loaded.deployment.api_key.get_secret_value() == MASK
    assert loaded.model_dump(exclude={"deployment": {"api_key"}}) == config.model_dump(exclude={"deployment": {"api_key"}})
    assert config_hash(loaded) == config_hash(config)  # the hash is over masked values


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_hash_ignores_key_order_formatting_and_spelled_out_defaults(tmp_path: Path, suffix: str) -> None:
    short = tmp_path / f"short{suffix}"
    short.write_text("training: {learning_rate: 0.01}\n" if suffix == ".yaml" else '{"training": {"learning_rate": 1e-2}}')
    full = tmp_path / "full.yaml"
    dump_config(load_config(short, env={}), full)
    reordered = tmp_path / "reordered.yaml"
    reordered.write_text("# comments and order do not matter\ndeployment: {port: 8000}\ntraining:\n  seed: 0\n  learning_rate: 1.0e-2\n")
    hashes = {config_hash(load_config(p, env={})) for p in (short, full, reordered)}
    assert len(hashes) == 1
    other = tmp_path / "other.yaml"
    other.write_text("training: {learning_rate: 0.02}\n")
    assert config_hash(load_config(other, env={})) not in hashes
