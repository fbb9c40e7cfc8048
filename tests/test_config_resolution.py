"""Each layer of the resolution order, later wins: defaults < base < profile < env < overrides."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pydantic
import pytest

import runpoint as rp
from runpoint.config import resolve_config, with_overrides


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    write(tmp_path / "configs" / "base.yaml", """\
        model:
          name: base-model
          hidden_sizes: [128, 64, 32]
        training:
          batch_size: 64
          learning_rate: 3e-3
          checkpoint:
            keep_last: 5
        experiment:
          project: digits
          tags: [mlp]
        """)
    write(tmp_path / "configs" / "profiles" / "dev.yaml", """\
        training:
          learning_rate: 1e-2
          checkpoint:
            keep_best: 2
            monitor: val/loss
        model:
          hidden_sizes: [16]
        """)
    return tmp_path / "configs"


def test_defaults_alone_are_a_valid_config() -> None:
    cfg = rp.load_config(env={})
    assert cfg == rp.ProjectConfig()
    assert cfg.training.learning_rate == 1e-3 and cfg.model.hidden_sizes == [128, 64]


def test_base_file_sets_values_and_defaults_fill_the_rest(configs: Path) -> None:
    resolved = resolve_config(configs / "base.yaml", env={})
    cfg = resolved.config
    assert cfg.training.learning_rate == 3e-3 and isinstance(cfg.training.learning_rate, float)
    assert cfg.training.checkpoint.keep_last == 5
    assert cfg.training.epochs == 10  # default
    assert resolved.sources["training.learning_rate"].endswith("base.yaml:6")
    assert resolved.sources["training.checkpoint.keep_last"].endswith("base.yaml:8")
    assert resolved.sources["training.epochs"] == "default"


def test_profile_deep_merges_over_the_base_and_lists_replace(configs: Path) -> None:
    resolved = resolve_config(configs / "base.yaml", profile="dev", env={})
    cfg = resolved.config
    assert cfg.training.learning_rate == 1e-2  # profile wins
    assert cfg.training.batch_size == 64  # sibling from the base survives the merge
    assert cfg.training.checkpoint.keep_last == 5 and cfg.training.checkpoint.keep_best == 2
    assert cfg.model.hidden_sizes == [16]  # a list is replaced, not merged
    assert cfg.model.name == "base-model"
    assert resolved.sources["training.learning_rate"].endswith("profiles/dev.yaml:2")
    assert resolved.sources["model.hidden_sizes"].endswith("profiles/dev.yaml:7")
    assert resolved.sources["training.batch_size"].endswith("base.yaml:5")
    assert [p.name for p in resolved.files] == ["base.yaml", "dev.yaml"]


def test_environment_variables_win_over_files_and_are_typed_by_the_schema(configs: Path) -> None:
    env = {
        "RUNPOINT__TRAINING__LEARNING_RATE": "3e-4",
        "RUNPOINT__MODEL__HIDDEN_SIZES": "[256, 128]",
        "RUNPOINT__TRAINING__CHECKPOINT__KEEP_LAST": "7",
        "runpoint__model__batch_norm": "true",  # any case
        "RUNPOINT__MODEL__NAME": "123",  # a text field keeps the text
        "RUNPOINT_ROOT": "/elsewhere",  # not a field: single underscore
    }
    resolved = resolve_config(configs / "base.yaml", profile="dev", env=env)
    cfg = resolved.config
    assert cfg.training.learning_rate == 3e-4
    assert cfg.model.hidden_sizes == [256, 128]
    assert cfg.training.checkpoint.keep_last == 7
    assert cfg.model.batch_norm is True
    assert cfg.model.name == "123"
    assert resolved.sources["training.learning_rate"] == "env RUNPOINT__TRAINING__LEARNING_RATE"
    assert resolved.sources["model.batch_norm"] == "env runpoint__model__batch_norm"


def test_overrides_win_over_everything(configs: Path) -> None:
    env = {"RUNPOINT__TRAINING__LEARNING_RATE": "3e-4"}
    resolved = resolve_config(
        configs / "base.yaml", "dev",
        ["training.learning_rate=5e-5", "model.hidden_sizes=[8,4]", "experiment.tags=[a, b]", "data.data_dir=null"],
        env=env,
    )
    cfg = resolved.config
    assert cfg.training.learning_rate == 5e-5
    assert cfg.model.hidden_sizes == [8, 4]
    assert cfg.experiment.tags == ["a", "b"]
    assert cfg.data.data_dir is None
    assert resolved.sources["training.learning_rate"] == "override training.learning_rate=5e-5"


def test_text_fields_keep_yes_no_and_number_like_text(tmp_path: Path) -> None:
    base = write(tmp_path / "c.yaml", """\
        model: {name: no, architecture: 0123}
        optimization: {mixed_precision: none}
        data: {dataset: yes}
        """)
    cfg = rp.load_config(base, overrides=["deployment.host=on", "experiment.notes=1e5"], env={})
    assert cfg.model.name == "no" and cfg.model.architecture == "0123"
    assert cfg.data.dataset == "yes" and cfg.deployment.host == "on" and cfg.experiment.notes == "1e5"
    bools = rp.load_config(overrides=["model.batch_norm=yes", "data.shuffle=off"], env={})
    assert bools.model.batch_norm is True and bools.data.shuffle is False


def test_profile_from_runpoint_profile_env_var_and_profile_given_as_a_path(configs: Path, tmp_path: Path) -> None:
    assert rp.load_config(configs / "base.yaml", env={"RUNPOINT_PROFILE": "dev"}).training.learning_rate == 1e-2
    other = write(tmp_path / "elsewhere" / "fast.yml", "training: {epochs: 1}\n")
    assert rp.load_config(configs / "base.yaml", profile=str(other), env={}).training.epochs == 1


def test_a_directory_means_its_base_file(configs: Path) -> None:
    assert rp.load_config(configs, profile="dev", env={}) == rp.load_config(configs / "base.yaml", profile="dev", env={})


def test_json_files_load_like_yaml(configs: Path, tmp_path: Path) -> None:
    as_yaml = rp.load_config(configs / "base.yaml", env={})
    as_json = write(tmp_path / "base.json", json.dumps({
        "model": {"name": "base-model", "hidden_sizes": [128, 64, 32]},
        "training": {"batch_size": 64, "learning_rate": 0.003, "checkpoint": {"keep_last": 5}},
        "experiment": {"project": "digits", "tags": ["mlp"]},
    }, indent=2))
    resolved = resolve_config(as_json, env={})
    assert resolved.config == as_yaml
    assert resolved.sources["training.checkpoint.keep_last"].endswith("base.json:14")


def test_a_section_whose_lines_are_all_commented_out_is_empty(tmp_path: Path) -> None:
    base = write(tmp_path / "c.yaml", "training:\n  # learning_rate: 0.1\nmodel:\n  name: m\n")
    cfg = rp.load_config(base, env={})
    assert cfg.training == rp.ProjectConfig().training and cfg.model.name == "m"


def test_presets_fill_only_what_no_layer_sets(configs: Path, tmp_path: Path) -> None:
    write(configs / "profiles" / "loud.yaml", "experiment:\n  preset: numerical-stability\n")
    base = write(configs / "base.yaml", (configs / "base.yaml").read_text() + "  log_histograms: false\n")
    resolved = resolve_config(base, "loud", ["experiment.watch_interval=50"], env={})
    experiment = resolved.config.experiment
    assert experiment.log_gradients is True and experiment.nan_guard is True and experiment.log_interval == 1
    assert experiment.log_histograms is False  # set in the base file: wins over the preset
    assert experiment.watch_interval == 50  # override wins over the preset
    assert resolved.sources["experiment.log_gradients"] == "preset 'numerical-stability'"
    assert resolved.sources["experiment.log_histograms"].endswith("base.yaml:12")


def test_presets_also_apply_when_building_the_section_in_code() -> None:
    from runpoint.config.presets import experiment_preset

    full = experiment_preset("full", project="p", log_images=False)
    assert full.log_histograms is True and full.log_interval == 1 and full.log_images is False
    assert rp.ProjectConfig(experiment={"preset": "basic"}).experiment.log_interval == 10


def test_with_overrides_revalidates_and_keeps_what_was_set(configs: Path) -> None:
    cfg = rp.load_config(configs / "base.yaml", env={})
    changed = with_overrides(cfg, ["training.epochs=2", "experiment.preset=full"])
    assert changed.training.epochs == 2 and changed.training.learning_rate == 3e-3
    assert changed.experiment.log_histograms is True  # the preset fills what nobody set
    assert cfg.training.epochs == 10  # the original is untouched
    with pytest.raises(rp.ConfigError, match="training.epochs: got 0"):
        with_overrides(cfg, ["training.epochs=0"])


def test_any_pydantic_model_is_a_schema(tmp_path: Path) -> None:
    class Optim(pydantic.BaseModel):
        lr: float = 0.1
        betas: list[float] = [0.9, 0.999]

    class MyConfig(pydantic.BaseModel):
        name: str
        optim: Optim = Optim()
        layers: dict[str, int] = {}

    base = write(tmp_path / "mine.yaml", "name: run-a\noptim: {lr: 0.5}\nlayers: {enc: 2}\n")
    cfg = rp.load_config(base, overrides=["optim.betas=[0.8, 0.9]"], schema=MyConfig,
                         env={"RUNPOINT__NAME": "from-env"})
    assert cfg == MyConfig(name="from-env", optim=Optim(lr=0.5, betas=[0.8, 0.9]), layers={"enc": 2})


def test_subclassed_project_config_adds_fields(tmp_path: Path) -> None:
    class MyModel(rp.config.schema.ModelConfig):
        num_heads: int = 4

    class MyProject(rp.ProjectConfig):
        model: MyModel = MyModel()

    base = write(tmp_path / "c.yaml", "model: {num_heads: 8, dropout_rate: 0.2}\n")
    cfg = rp.load_config(base, schema=MyProject, env={})
    assert cfg.model.num_heads == 8 and cfg.model.dropout_rate == 0.2


def test_a_scripts_own_defaults_sit_between_the_schema_and_the_files(configs: Path) -> None:
    mine = rp.ProjectConfig(training={"epochs": 3, "batch_size": 8}, experiment={"project": "own", "preset": "full"})
    resolved = resolve_config(configs / "base.yaml", overrides=["training.seed=2"], defaults=mine, env={})
    cfg = resolved.config
    assert cfg.training.epochs == 3  # from the script's defaults: the file does not set it
    assert cfg.training.batch_size == 64  # the file wins over the script's defaults
    assert cfg.experiment.project == "digits" and cfg.experiment.log_histograms is True  # preset kept, project from file
    assert cfg.training.seed == 2 and cfg.training.learning_rate == 3e-3
    assert resolved.sources["training.epochs"] == "default" and resolved.sources["experiment.log_histograms"] == "preset 'full'"
    switched = with_overrides(cfg, ["experiment.preset=basic"])  # what the old preset filled follows the new one
    assert switched.experiment.log_histograms is False and switched.experiment.log_interval == 10
    partial = rp.load_config(defaults={"model": {"hidden_sizes": [3]}}, overrides=["model.name=x"], env={})
    assert partial.model.hidden_sizes == [3] and partial.model.name == "x"
    with pytest.raises(rp.ConfigError, match=r"model.hidden_sizes\[0\]: got 0"):
        rp.load_config(defaults={"model": {"hidden_sizes": [0]}}, env={})
