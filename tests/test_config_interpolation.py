"""${section.field} and ${env:NAME} references: types kept, chains followed, cycles and gaps reported."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pydantic
import pytest

import runpoint as rp
from runpoint.config import dump_config, resolve_config


def config_file(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def issues_of(path: Path, **kwargs) -> list[str]:
    with pytest.raises(rp.ConfigError) as caught:
        rp.load_config(path, **kwargs)
    return caught.value.issues


def test_a_whole_value_reference_keeps_the_referenced_type(tmp_path: Path) -> None:
    path = config_file(tmp_path, """\
        training: {batch_size: 48}
        data:
          eval_batch_size: ${training.batch_size}
          preprocessing: {mean: [0.5, 0.25], std: "${data.preprocessing.mean}"}
        """)
    resolved = resolve_config(path, env={})
    assert resolved.config.data.eval_batch_size == 48
    assert resolved.config.data.preprocessing.std == [0.5, 0.25]
    assert resolved.sources["data.eval_batch_size"] == f"{path}:3 (${{training.batch_size}})"


def test_references_see_defaults_and_values_of_later_layers(tmp_path: Path) -> None:
    path = config_file(tmp_path, "data: {eval_batch_size: '${training.batch_size}'}\n")
    assert rp.load_config(path, env={}).data.eval_batch_size == 32  # the schema default
    assert rp.load_config(path, overrides=["training.batch_size=16"], env={}).data.eval_batch_size == 16
    env = {"RUNPOINT__TRAINING__BATCH_SIZE": "8"}
    assert rp.load_config(path, env=env).data.eval_batch_size == 8


def test_references_inside_text_and_chains(tmp_path: Path) -> None:
    path = config_file(tmp_path, """\
        experiment: {project: digits, name: "${experiment.project}-${training.seed}", notes: "run ${experiment.name}"}
        training: {seed: 3}
        data: {data_dir: "/data/${experiment.project}/v${training.seed}", shuffle: true, train_path: "shuffled=${data.shuffle}"}
        """)
    cfg = rp.load_config(path, env={})
    assert cfg.experiment.name == "digits-3"
    assert cfg.experiment.notes == "run digits-3"
    assert cfg.data.data_dir == "/data/digits/v3"
    assert cfg.data.train_path == "shuffled=true"


def test_environment_references_with_defaults_and_types(tmp_path: Path) -> None:
    path = config_file(tmp_path, """\
        data: {data_dir: "${env:DATA_DIR}/digits", train_path: "${env:TRAIN_FILE,train.csv}", val_path: "${env:EMPTY,x}"}
        training: {batch_size: "${env:BATCH}"}
        model: {hidden_sizes: "${env:SIZES}"}
        """)
    env = {"DATA_DIR": "/mnt/data", "BATCH": "128", "SIZES": "[64, 32]", "EMPTY": ""}
    cfg = rp.load_config(path, env=env)
    assert cfg.data.data_dir == "/mnt/data/digits"
    assert cfg.data.train_path == "train.csv"  # not set: the default after the comma
    assert cfg.data.val_path == ""  # set but empty: the empty value, not the default
    assert cfg.training.batch_size == 128
    assert cfg.model.hidden_sizes == [64, 32]


def test_references_in_overrides_and_env_values_resolve_too(tmp_path: Path) -> None:
    cfg = rp.load_config(
        overrides=["data.data_dir=${env:ROOT_DIR}/d", "data.eval_batch_size=${training.batch_size}"],
        env={"ROOT_DIR": "/r", "RUNPOINT__TRAINING__BATCH_SIZE": "4"},
    )
    assert cfg.data.data_dir == "/r/d" and cfg.data.eval_batch_size == 4


def test_a_whole_section_can_be_referenced() -> None:
    class Section(pydantic.BaseModel):
        size: int = 1
        name: str = "a"

    class Schema(pydantic.BaseModel):
        encoder: Section = Section()
        decoder: Section = Section()

    cfg = rp.load_config(overrides=["encoder.size=5", "decoder=${encoder}"], schema=Schema, env={})
    assert cfg.decoder == Section(size=5, name="a")


def test_double_dollar_escapes_a_literal_reference(tmp_path: Path) -> None:
    path = config_file(tmp_path, "experiment: {notes: 'costs $${price} and $$5'}\n")
    cfg = rp.load_config(path, env={})
    assert cfg.experiment.notes == "costs ${price} and $$5"
    dumped = tmp_path / "dumped.yaml"
    dump_config(cfg, dumped)
    assert "$${price}" in dumped.read_text()
    assert rp.load_config(dumped, env={}) == cfg


def test_a_missing_key_is_an_error_with_a_suggestion_and_the_line(tmp_path: Path) -> None:
    path = config_file(tmp_path, "training: {seed: 1}\ndata:\n  eval_batch_size: ${training.batch_sise}\n")
    assert issues_of(path, env={}) == [
        "data.eval_batch_size: ${training.batch_sise} refers to a key that does not exist; "
        f"did you mean ${{training.batch_size}}?  [{path}:3]"
    ]


def test_an_unset_environment_variable_without_default_is_an_error(tmp_path: Path) -> None:
    path = config_file(tmp_path, "data:\n  data_dir: ${env:DATA_DIR}/x\n")
    (issue,) = issues_of(path, env={})
    assert issue == (
        "data.data_dir: got '${env:DATA_DIR}/x', environment variable DATA_DIR is not set (referenced as "
        f"${{env:DATA_DIR}}); set it, or give a default: ${{env:DATA_DIR,<default>}}  [{path}:2]"
    )


def test_a_cycle_is_reported_once_with_its_chain(tmp_path: Path) -> None:
    path = config_file(tmp_path, """\
        data:
          train_path: ${data.val_path}
          val_path: ${data.test_path}
          test_path: ${data.train_path}
          data_dir: ${data.data_dir}
        """)
    issues = issues_of(path, env={})
    assert issues == [
        f"data.train_path: interpolation cycle: data.train_path -> data.val_path -> data.test_path -> data.train_path  [{path}:2]",
        f"data.data_dir: interpolation cycle: data.data_dir -> data.data_dir  [{path}:5]",
    ]


def test_a_broken_link_in_a_chain_is_named(tmp_path: Path) -> None:
    path = config_file(tmp_path, "data:\n  train_path: ${data.val_path}\n  val_path: ${env:NOPE}\n")
    issues = issues_of(path, env={})
    assert issues[0].startswith("data.train_path: in ${data.val_path}: environment variable NOPE is not set")
    assert issues[1].startswith("data.val_path: environment variable NOPE is not set")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("x ${model.hidden_sizes}", "${model.hidden_sizes} is a list: only a whole value can refer to it, not text around it"),
        ("${data.data_dir", "'${' without a closing '}' (write $${ for a literal ${)"),
        ("${oc.env:HOME}", "${oc.env:HOME} is not a field path like training.batch_size"),
        ("${resolver:x}", "unknown resolver in ${resolver:x}: only ${env:NAME} and ${section.field} exist"),
        ("${env:${x}}", "nested references are not supported: ${env:${x}"),
    ],
)
def test_malformed_references_are_errors(tmp_path: Path, value: str, message: str) -> None:
    path = config_file(tmp_path, f"data:\n  train_path: '{value}'\n")
    (issue,) = issues_of(path, env={})
    assert issue.startswith("data.train_path: ") and message in issue and issue.endswith(f"[{path}:2]")


def test_interpolation_problems_come_with_the_other_problems(tmp_path: Path) -> None:
    path = config_file(tmp_path, "data: {train_path: '${nope.x}'}\ntraining: {learning_rate: -1}\nmodle: {}\n")
    issues = issues_of(path, env={})
    assert len(issues) == 3
    assert any(i.startswith("data.train_path: ${nope.x} refers to a key that does not exist") for i in issues)
    assert any(i.startswith("training.learning_rate: got -1") for i in issues)
    assert any(i.startswith("modle: unknown key; did you mean 'model'?") for i in issues)
