"""The starter set ``runpoint config init`` writes: a documented base file and three profiles."""

from __future__ import annotations

from pydantic import BaseModel

from ._docs import commented_yaml

BASE_HEADER = """\
{title}: every field at its default, with what it means.
Written by `runpoint config init`; delete the lines you do not change.
Later wins: defaults < this file < profiles/<name>.yaml < RUNPOINT__SECTION__FIELD
environment variables < section.field=value overrides.
Values may refer to other fields, ${{training.batch_size}}, or to the environment,
${{env:DATA_DIR}} (${{env:DATA_DIR,/default}} with a fallback).

  runpoint config show {path} --profile dev --sources
  cfg = rp.load_config("{path}", profile="dev")
"""

PROJECT_PROFILES = {
    "dev": """\
# dev: quick iterations on a laptop; merged over base.yaml.
training:
  epochs: 1
  max_steps: 50
data:
  num_workers: 0
experiment:
  preset: basic
  tags: [dev]
""",
    "prod": """\
# prod: full training runs; merged over base.yaml.
training:
  checkpoint:
    save_steps: 500
    keep_last: 3
    keep_best: 1
    monitor: val/loss
    mode: min
data:
  num_workers: 4
  pin_memory: true
experiment:
  preset: full
  tags: [prod]
optimization:
  cudnn_benchmark: true
""",
    "test": """\
# test: tiny, reproducible runs for CI; merged over base.yaml.
training:
  epochs: 1
  max_steps: 5
  seed: 0
experiment:
  preset: basic
  log_system_metrics: false
  tags: [test]
optimization:
  deterministic: true
""",
}


def starter_files(schema: type[BaseModel], base_path: str) -> dict[str, str]:
    """File name (relative to the config directory) -> text."""
    from .schema import ProjectConfig

    title = schema.model_config.get("title") or schema.__name__
    files = {"base.yaml": commented_yaml(schema, BASE_HEADER.format(title=title, path=base_path))}
    for name, text in PROJECT_PROFILES.items():
        if issubclass(schema, ProjectConfig):
            files[f"profiles/{name}.yaml"] = text
        else:
            files[f"profiles/{name}.yaml"] = f"# {name}: values here are merged over base.yaml.\n{{}}\n"
    return files
