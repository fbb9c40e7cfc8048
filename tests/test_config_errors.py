"""Every kind of config error, with its message read back: field, source, bad value, expectation."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pydantic
import pytest

import runpoint as rp
from runpoint.errors import ConfigIssue


def config_file(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def error_of(*args, **kwargs) -> rp.ConfigError:
    kwargs.setdefault("env", {})
    with pytest.raises(rp.ConfigError) as caught:
        rp.load_config(*args, **kwargs)
    return caught.value


def test_malformed_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    path = config_file(tmp_path, "model:\n  name: x\n  hidden_sizes: [1, 2\ntraining:\n  epochs: 3\n")
    error = error_of(path)
    (problem,) = error.problems
    assert problem.source == f"{path}:4"
    assert problem.message == (
        "malformed YAML at column 9: expected ',' or ']', but got ':' (while parsing a flow sequence started on line 3)"
    )
    assert str(error).startswith(f"invalid config {path}: malformed YAML")
    assert error.path == str(path)


def test_bad_indentation_and_tabs_are_malformed_yaml_with_their_line(tmp_path: Path) -> None:
    path = config_file(tmp_path, "model:\n  name: x\n   type: mlp\n")
    assert error_of(path).problems[0].source == f"{path}:3"
    path = config_file(tmp_path, "model:\n\tname: x\n", "tabs.yaml")
    (problem,) = error_of(path).problems
    assert problem.source == f"{path}:2" and "malformed YAML" in problem.message


def test_a_key_given_twice_is_an_error_with_both_lines(tmp_path: Path) -> None:
    path = config_file(tmp_path, "training:\n  epochs: 3\n  batch_size: 8\n  epochs: 5\n")
    assert error_of(path).issues == [
        f"training.epochs: given twice in one mapping (lines 2 and 4); keep one  [{path}:4]"
    ]


def test_yaml_anchors_and_merge_keys_work_and_keep_lines(tmp_path: Path) -> None:
    path = config_file(tmp_path, """\
        _shared: &shared {batch_size: 16}
        training:
          <<: *shared
          epochs: 2
        """)
    error = error_of(path)  # _shared itself is not a field
    assert error.issues == [f"_shared: unknown key; known keys here: model, training, data, experiment, optimization, deployment  [{path}:1]"]
    good = config_file(tmp_path, "training:\n  <<: {batch_size: 16}\n  epochs: 2\n", "good.yaml")
    resolved = rp.config.resolve_config(good, env={})
    assert resolved.config.training.batch_size == 16 and resolved.sources["training.batch_size"] == f"{good}:2"


def test_malformed_json_names_the_line(tmp_path: Path) -> None:
    path = config_file(tmp_path, '{\n  "training": {\n    "epochs": 3,\n  }\n}\n', "c.json")
    (problem,) = error_of(path).problems
    assert problem.source == f"{path}:4" and problem.message.startswith("malformed JSON at column 3")
    duplicate = config_file(tmp_path, '{"training": {"epochs": 3, "epochs": 4}}', "dup.json")
    assert error_of(duplicate).problems[0] == ConfigIssue("epochs", "given twice in one object; keep one", str(duplicate))


def test_a_file_that_is_not_a_mapping_missing_or_a_directory(tmp_path: Path) -> None:
    listed = config_file(tmp_path, "- a\n- b\n")
    assert error_of(listed).issues == [f"the top level must be a mapping of sections, not a list  [{listed}]"]
    assert error_of(tmp_path / "nope.yaml").issues == [f"file not found  [{tmp_path / 'nope.yaml'}]"]
    (tmp_path / "empty").mkdir()
    assert "holds none of base.yaml" in str(error_of(tmp_path / "empty"))


def test_a_profile_name_needs_a_base_file_but_runpoint_profile_alone_is_ignored(tmp_path: Path) -> None:
    assert error_of(profile="dev").issues == [
        "profile 'dev' needs a base config file to sit beside; give a path, or a profile file path"
    ]
    assert rp.load_config(env={"RUNPOINT_PROFILE": "dev"}) == rp.ProjectConfig()


def test_an_unknown_profile_lists_the_profiles_and_suggests_one(tmp_path: Path) -> None:
    base = config_file(tmp_path, "training: {epochs: 3}\n", "configs/base.yaml")
    for name in ("dev", "prod", "test"):
        config_file(tmp_path, "{}\n", f"configs/profiles/{name}.yaml")
    (issue,) = error_of(base, profile="prdo").issues
    assert issue == f"no profile 'prdo': did you mean 'prod'? profiles in {base.parent / 'profiles'}: dev, prod, test  [{base}]"
    (issue,) = error_of(base, profile="staging").issues
    assert "no profile 'staging': profiles in" in issue and "did you mean" not in issue


def test_unknown_keys_suggest_the_near_name_or_the_section_that_has_it(tmp_path: Path) -> None:
    path = config_file(tmp_path, """\
        trainig: {epochs: 3}
        model:
          learning_rate: 0.1
          hiden_sizes: [4]
          colour: red
        """)
    assert error_of(path).issues == [
        f"trainig: unknown key; did you mean 'training'?  [{path}:1]",
        f"model.learning_rate: unknown key; did you mean 'training.learning_rate'?  [{path}:3]",
        f"model.hiden_sizes: unknown key; did you mean 'model.hidden_sizes'?  [{path}:4]",
        f"model.colour: unknown key; known keys here: name, type, architecture, input_size, output_size, "
        f"hidden_sizes, dropout_rate, activation, batch_norm, pretrained  [{path}:5]",
    ]


def test_a_bad_value_names_its_file_and_line_value_and_expectation(tmp_path: Path) -> None:
    base = config_file(tmp_path, "training:\n  batch_size: 64\n  learning_rate: -0.1\n", "configs/base.yaml")
    config_file(tmp_path, "model:\n  dropout_rate: 1.0\n  activation: rleu\n", "configs/profiles/dev.yaml")
    error = error_of(base, profile="dev")
    assert error.issues == [
        f"training.learning_rate: got -0.1, expected a value greater than 0  [{base}:3]",
        f"model.dropout_rate: got 1.0, expected a value less than 1  [{base.parent / 'profiles' / 'dev.yaml'}:2]",
        "model.activation: got 'rleu', expected 'relu', 'gelu', 'silu', 'tanh', 'sigmoid', 'leaky_relu' or 'elu'; "
        f"did you mean 'relu'?  [{base.parent / 'profiles' / 'dev.yaml'}:3]",
    ]
    problem = error.problems[0]
    assert (problem.path, problem.value, problem.source) == ("training.learning_rate", "-0.1", f"{base}:3")
    assert str(error).startswith(f"3 problems in config {base}:\n  - training.learning_rate")


def test_a_bad_value_from_the_environment_names_the_variable() -> None:
    error = error_of(env={"RUNPOINT__TRAINING__EPOCHS": "many", "RUNPOINT__EXPERIMENT__SINKS": "tensorboard"})
    assert error.issues == [
        "training.epochs: got 'many', expected a valid integer, unable to parse string as an integer  "
        "[env RUNPOINT__TRAINING__EPOCHS]",
        "experiment.sinks: got 'tensorboard', expected a valid list (write a list as [a, b])  [env RUNPOINT__EXPERIMENT__SINKS]",
    ]


def test_environment_variable_names_that_do_not_parse() -> None:
    error = error_of(env={"RUNPOINT__TRAINING___EPOCHS": "3", "RUNPOINT__TRAINIG__EPOCHS": "3"})
    assert error.issues == [
        "cannot read a field path from this name: separate sections and fields with a double underscore, "
        "e.g. RUNPOINT__TRAINING__LEARNING_RATE  [env RUNPOINT__TRAINING___EPOCHS]",
    ]  # a name that does not parse stops loading; the typo would be reported next
    error = error_of(env={"RUNPOINT__TRAINIG__EPOCHS": "3"})
    assert error.issues == ["trainig: unknown key; did you mean 'training'?  [env RUNPOINT__TRAINIG__EPOCHS]"]


def test_bad_overrides_name_the_override() -> None:
    error = error_of(overrides=["training.batch_size=0", "model.hidden_sizes=[64, -1]", "training.epochs"])
    assert error.issues == [
        "an override looks like section.field=value, e.g. training.learning_rate=3e-4  [override training.epochs]"
    ]
    error = error_of(overrides=["training.batch_size=0", "model.hidden_sizes=[64, -1]", "model.hidden_sizes[0]=3"])
    assert error.issues == [
        "model.hidden_sizes[0]: cannot read this field path: use dotted names, and set a list whole "
        "(model.hidden_sizes=[256,128])  [override model.hidden_sizes[0]=3]"
    ]
    error = error_of(overrides=["training.batch_size=0", "model.hidden_sizes=[64, -1]"])
    assert error.issues == [
        "model.hidden_sizes[1]: got -1, expected a value greater than 0  [override model.hidden_sizes=[64, -1]]",
        "training.batch_size: got 0, expected a value greater than 0  [override training.batch_size=0]",
    ]


def test_cross_field_rules_point_at_the_values_involved(tmp_path: Path) -> None:
    path = config_file(tmp_path, "training:\n  epochs: null\ndata:\n  val_fraction: 0.6\n  test_fraction: 0.5\n")
    error = error_of(path, overrides=["optimization.deterministic=true", "optimization.cudnn_benchmark=true"])
    assert error.issues == [
        f"training: epochs and max_steps are both null: set at least one, or training never ends  [{path}:2]",
        "data: val_fraction 0.6 + test_fraction 0.5 leave no training data; keep the sum below 1  "
        f"[{path}:4, {path}:5]",
        "optimization: deterministic and cudnn_benchmark are both true: cuDNN's benchmark picks kernels "
        "nondeterministically; turn one of them off  [override optimization.cudnn_benchmark=true, "
        "override optimization.deterministic=true]",
    ]
    checkpoint = config_file(tmp_path, "training:\n  checkpoint:\n    keep_best: 2\n", "ckpt.yaml")
    assert error_of(checkpoint).issues == [
        f"training.checkpoint: keep_best=2 needs monitor, the metric to rank checkpoints by (e.g. 'val/loss')  [{checkpoint}:3]"
    ]


def test_a_section_given_as_a_plain_value(tmp_path: Path) -> None:
    path = config_file(tmp_path, "training: 5\n")
    assert error_of(path).issues == [f"training: got 5, expected a mapping of fields  [{path}:1]"]


def test_all_problems_of_all_sources_come_at_once(tmp_path: Path) -> None:
    path = config_file(tmp_path, "model: {dropout_rate: 2}\nexperiment: {sinks: [tensorbord]}\n")
    error = error_of(path, overrides=["training.seed=-1"], env={"RUNPOINT__DEPLOYMENT__PORT": "70000"})
    assert [p.path for p in error.problems] == [
        "model.dropout_rate", "experiment.sinks[0]", "training.seed", "deployment.port",
    ]
    assert "did you mean 'tensorboard'?" in error.issues[1]
    assert isinstance(error, ValueError) and isinstance(error, rp.RunpointError)


def test_secret_values_are_masked_in_errors() -> None:
    class Db(pydantic.BaseModel):
        password: int = 0
        host: str = "x"

    class Schema(pydantic.BaseModel):
        db: Db = Db()

    error = error_of(schema=Schema, overrides=["db.password=hunter2"])
    assert error.issues == [
        "db.password: got '********', expected a valid integer, unable to parse string as an integer  "
        "[override db.password=********]",
    ]
    error = error_of(overrides=["deployment.api_key=${env:UNSET}-hunter2"])
    assert error.issues == [
        "deployment.api_key: got '********', environment variable UNSET is not set (referenced as ${env:UNSET}); "
        "set it, or give a default: ${env:UNSET,<default>}  [override deployment.api_key=********]",
    ]


def test_a_secret_typed_field_with_an_ordinary_name_is_masked_in_errors() -> None:
    from typing import Annotated

    class Db(pydantic.BaseModel):
        dsn: Annotated[pydantic.SecretStr, pydantic.Field(min_length=40)] = pydantic.SecretStr("x" * 40)

    class Schema(pydantic.BaseModel):
        db: Db = Db()

    for error in (error_of(schema=Schema, overrides=["db.dsn=postgres://u:hunter2@h/db"]),
                  error_of(schema=Schema, env={"RUNPOINT__DB__DSN": "postgres://u:hunter2@h/db"})):
        assert len(error.issues) == 1 and error.issues[0].startswith("db.dsn: got '********'"), error.issues
        assert "hunter2" not in str(error)


def test_a_required_field_of_a_custom_schema_says_how_to_set_it() -> None:
    class Schema(pydantic.BaseModel):
        class Data(pydantic.BaseModel):
            path: str

        data: Data

    assert error_of(schema=Schema).issues == [
        "data: required: set it in a config file, with RUNPOINT__DATA, or with data=..."
    ]
    assert error_of(schema=Schema, overrides=["data.other=1"]).issues == [
        "data.other: unknown key; known keys here: path  [override data.other=1]",
        "data.path: required: set it in a config file, with RUNPOINT__DATA__PATH, or with data.path=...",
    ]


def test_unknown_keys_are_errors_even_where_the_model_ignores_extras_but_not_where_it_allows_them() -> None:
    class Ignoring(pydantic.BaseModel):
        lr: float = 0.1

    class Allowing(pydantic.BaseModel, extra="allow"):
        lr: float = 0.1

    assert error_of(schema=Ignoring, overrides=["lrr=1"]).issues == [
        "lrr: unknown key; did you mean 'lr'?  [override lrr=1]"
    ]
    assert rp.load_config(schema=Allowing, overrides=["lrr=1"], env={}).lrr == 1


def test_schema_must_be_a_pydantic_model() -> None:
    with pytest.raises(rp.InvalidArgumentError, match="schema: expected a pydantic model class"):
        rp.load_config(schema=dict)  # type: ignore[arg-type]
