"""rp.init(config=...) accepts dicts, pydantic models, dataclasses and Namespaces; secrets masked."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pydantic
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import runpoint as rp
from runpoint.config import config_hash, flatten, mask_secrets

EXPECTED_PARAMS = {
    "model.hidden_sizes": [128, 64],
    "model.name": "mlp",
    "training.batch_size": 64,
    "training.learning_rate": 0.0003,
    "training.wandb_api_key": "********",
}


class Model(pydantic.BaseModel):
    name: str = "mlp"
    hidden_sizes: list[int] = [128, 64]


class Training(pydantic.BaseModel):
    learning_rate: float = 3e-4
    batch_size: int = 64
    wandb_api_key: pydantic.SecretStr = pydantic.SecretStr("sk-live-123")


class Config(pydantic.BaseModel):
    model: Model = Model()
    training: Training = Training()


@dataclasses.dataclass
class ModelDC:
    name: str = "mlp"
    hidden_sizes: tuple[int, ...] = (128, 64)


@dataclasses.dataclass
class TrainingDC:
    learning_rate: float = 3e-4
    batch_size: int = 64
    wandb_api_key: str = "sk-live-123"


@dataclasses.dataclass
class ConfigDC:
    model: ModelDC = dataclasses.field(default_factory=ModelDC)
    training: TrainingDC = dataclasses.field(default_factory=TrainingDC)


AS_DICT = {
    "training": {"batch_size": 64, "wandb_api_key": "sk-live-123", "learning_rate": 3e-4},
    "model": {"hidden_sizes": [128, 64], "name": "mlp"},
}


@pytest.mark.parametrize(
    "config",
    [AS_DICT, Config(), ConfigDC(), argparse.Namespace(**AS_DICT)],
    ids=["dict", "pydantic", "dataclass", "namespace"],
)
def test_every_config_kind_is_flattened_masked_and_hashed_alike(root, store_at, config) -> None:
    with rp.init(project="p", id="r1", config=config, root=root, console=False) as run:
        pass
    store = store_at()
    assert store.get_params("r1") == EXPECTED_PARAMS
    written = (run.dir / "config.yaml").read_text()
    assert "sk-live-123" not in written
    assert yaml.safe_load(written) == {
        "model": {"name": "mlp", "hidden_sizes": [128, 64]},
        "training": {"learning_rate": 3e-4, "batch_size": 64, "wandb_api_key": "********"},
    }
    assert store.get_run("r1").config_hash == config_hash(mask_secrets(AS_DICT))
    assert "sk-live-123" not in (run.dir / "meta.json").read_text()
    assert "sk-live-123" not in (root / "runpoint.db").read_bytes().decode("latin-1")


@pytest.mark.parametrize(
    "key", ["token", "hf_token", "password", "db_passwd", "client_secret", "api_key", "apiKey", "API-KEY", "aws_access_key"]
)
def test_secret_looking_keys_are_masked(key) -> None:
    assert mask_secrets({"section": {key: "value", "plain": "x"}}) == {"section": {key: "********", "plain": "x"}}


def test_masking_leaves_ordinary_keys_and_none_alone() -> None:
    tree = {"tokenizer": "gpt2", "max_tokens": 5, "num_tokens": 7, "passes": 2, "password": None, "keys": ["a"],
            "credentials": {"aws": "AKIA123", "gcp": ["k1"]}, "auth": {"bearer_token": "b"}}
    masked = mask_secrets(tree)
    assert masked["tokenizer"] == "gpt2" and masked["max_tokens"] == 5 and masked["num_tokens"] == 7
    assert masked["passes"] == 2 and masked["password"] is None and masked["keys"] == ["a"]
    assert masked["credentials"] == {"aws": "********", "gcp": ["********"]}  # everything under a secret key
    assert masked["auth"] == {"bearer_token": "********"}


def test_configs_differing_in_ordinary_token_fields_hash_differently() -> None:
    assert config_hash({"m": {"max_new_tokens": 512}}) != config_hash({"m": {"max_new_tokens": 64}})


def test_hash_ignores_key_order_and_int_float_spelling() -> None:
    a = {"b": {"y": 1, "x": 2.0}, "a": [1, 2]}
    b = {"a": [1, 2], "b": {"x": 2, "y": 1.0}}
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash({"a": [2, 1], "b": {"x": 2, "y": 1}})


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False), st.text(max_size=8))
json_tree = st.recursive(
    json_leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(min_size=1, max_size=6), inner, max_size=4)),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=6), json_tree, max_size=6))
def test_hash_is_invariant_under_key_order(tree) -> None:
    def reorder(value):
        if isinstance(value, dict):
            return {k: reorder(value[k]) for k in reversed(list(value))}
        if isinstance(value, list):
            return [reorder(v) for v in value]
        return value

    assert config_hash(tree) == config_hash(reorder(tree))
    assert config_hash(json.loads(json.dumps(tree))) == config_hash(tree)


def test_flatten_keeps_lists_and_empty_sections() -> None:
    assert flatten({"a": {"b": [1, {"c": 2}], "e": {}}, "f": 1}) == {"a.b": [1, {"c": 2}], "a.e": {}, "f": 1}


def test_webhook_urls_are_masked_but_webhook_settings_are_not() -> None:
    from runpoint._util.secrets import MASK, mask_secrets

    tree = {"experiment": {"alerts": {
        "webhooks": [{"url": "https://hooks.slack.com/services/T0/B0/secret", "format": "slack", "min_level": "error"},
                     "https://example.com/hook?token=abc"],
        "webhook_timeout_s": 5.0, "webhook_retries": 3, "webhook_queue": 100,
    }}, "notify": {"slack_webhook": "https://hooks.slack.com/services/T1/B1/secret"}}
    masked = mask_secrets(tree)
    alerts = masked["experiment"]["alerts"]
    assert alerts["webhooks"] == [{"url": MASK, "format": "slack", "min_level": "error"}, MASK]
    assert (alerts["webhook_timeout_s"], alerts["webhook_retries"], alerts["webhook_queue"]) == (5.0, 3, 100)
    assert masked["notify"]["slack_webhook"] == MASK
    assert "secret" not in repr(masked)
