"""Config loading: what rp.load_config costs against OmegaConf (Hydra's loader) and a plain floor.

All three load the same base file and profile, apply the same two overrides, resolve the
same ``${training.batch_size}`` reference and validate into ``rp.ProjectConfig``:

- plain floor: ``yaml.safe_load`` twice, a hand-written deep merge, ``model_validate``
  (no overrides typing, no references, no sources, no located errors);
- OmegaConf: ``OmegaConf.load`` + ``merge`` + ``from_dotlist`` + ``to_container(resolve=True)``
  + ``model_validate``;
- runpoint: ``rp.config.resolve_config`` (which also records the source of every value
  and checks unknown keys) and ``rp.load_config``.

Warm timings in one process (median), and a cold start (fresh interpreter: imports plus
one load) for each.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from ._harness import Context, Section, Table, package_version, python_in_subprocess

TITLE = "Config loading: rp.load_config vs OmegaConf and a plain yaml + pydantic floor"

BASE = """\
model: {name: digits-mlp, input_size: 64, output_size: 10, hidden_sizes: [128, 64], dropout_rate: 0.1}
training:
  epochs: 12
  batch_size: 64
  learning_rate: 3.0e-3
  weight_decay: 1.0e-4
  checkpoint: {keep_last: 3, keep_best: 1, monitor: val/loss}
data: {dataset: sklearn-digits, eval_batch_size: "${training.batch_size}", val_fraction: 0.2}
experiment: {project: digits, tags: [mlp]}
"""
PROFILE = "training: {epochs: 2}\nexperiment: {tags: [mlp, dev]}\n"
OVERRIDES = ["training.learning_rate=0.01", "training.seed=3"]

LOADERS = {
    "plain yaml + pydantic (floor)": ("yaml", """
import yaml
from runpoint.config.schema import ProjectConfig
def merge(a, b):
    for k, v in b.items():
        a[k] = merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
    return a
def load():
    tree = merge(yaml.safe_load(open(BASE)), yaml.safe_load(open(PROFILE)))
    tree["training"].update(learning_rate=0.01, seed=3)
    tree["data"]["eval_batch_size"] = tree["training"]["batch_size"]
    return ProjectConfig.model_validate(tree)
"""),
    "OmegaConf + pydantic": ("omegaconf", """
from omegaconf import OmegaConf
from runpoint.config.schema import ProjectConfig
def load():
    merged = OmegaConf.merge(OmegaConf.load(BASE), OmegaConf.load(PROFILE), OmegaConf.from_dotlist(OVERRIDES))
    return ProjectConfig.model_validate(OmegaConf.to_container(merged, resolve=True))
"""),
    "runpoint load_config": ("runpoint", """
import runpoint as rp
def load():
    return rp.load_config(BASE, profile=PROFILE, overrides=OVERRIDES, env={})
"""),
    "runpoint resolve_config (+ sources)": ("runpoint", """
import runpoint as rp
def load():
    return rp.config.resolve_config(BASE, profile=PROFILE, overrides=OVERRIDES, env={}).config
"""),
}


def _program(setup: str, base: Path, profile: Path, repeats: int) -> str:
    return textwrap.dedent(f"""
        import json, statistics, time
        started = time.perf_counter()
        BASE, PROFILE, OVERRIDES = {str(base)!r}, {str(profile)!r}, {OVERRIDES!r}
        """) + textwrap.dedent(setup) + textwrap.dedent(f"""
        first = load()
        cold = time.perf_counter() - started
        assert first.training.learning_rate == 0.01 and first.data.eval_batch_size == 64, first
        assert first.training.epochs == 2 and first.experiment.tags == ["mlp", "dev"], first
        times = []
        for _ in range({repeats}):
            t = time.perf_counter(); load(); times.append(time.perf_counter() - t)
        print(json.dumps({{"cold_s": cold, "warm_s": statistics.median(times)}}))
        """)


def run(ctx: Context) -> Section:
    scratch = ctx.scratch("config")
    base, profile = scratch / "base.yaml", scratch / "dev.yaml"
    base.write_text(BASE)
    profile.write_text(PROFILE)
    repeats = 50 if ctx.quick else 300
    results: dict[str, dict[str, float]] = {}
    for name, (package, setup) in LOADERS.items():
        if package == "omegaconf" and package_version("omegaconf") is None:
            continue
        results[name] = json.loads(python_in_subprocess(_program(setup, base, profile, repeats)).strip().splitlines()[-1])
    ours = results["runpoint load_config"]["warm_s"]
    rows = [
        [name, r["warm_s"] * 1000, r["warm_s"] / ours, r["cold_s"] * 1000]
        for name, r in results.items()
    ]
    table = Table(
        ["loader", "warm load (ms, median)", "x runpoint load_config", "cold: imports + first load (ms)"], rows,
        note=f"median of {repeats} loads in one process; cold is one fresh interpreter; "
             f"omegaconf {package_version('omegaconf')}, pydantic {package_version('pydantic')}",
    )
    return Section(TITLE, __doc__ or "", [table], numbers=results)
