"""rp.register_model / rp.load_model on real runs with real checkpoints, and what protects a registered checkpoint.

One run with three checkpoints (and a monitored metric) serves several checks: lineage,
loading by alias and by version bit for bit, a tampered checkpoint refused, retention with
keep_last=1 and `runpoint ckpt gc` keeping the registered step, `runpoint rm` asking first.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import runpoint as rp
from runpoint.checkpoint import LatestN
from runpoint.checkpoint.gc import apply_retention
from runpoint.errors import (
    CheckpointCorruptError,
    CheckpointNotFoundError,
    InvalidArgumentError,
    ModelNotFoundError,
)
from runpoint.models import open_registry, parse_model_ref
from runpoint.models.runs import registered_steps_in


def cli(root: Path, *args: str, input: str | None = None):
    """``runpoint ARGS --root ROOT`` in this process (stdout and stderr together in ``.output``)."""
    from typer.testing import CliRunner

    from runpoint.cli.main import app

    return CliRunner().invoke(app, [*args, "--root", str(root)], input=input)


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))


def _train(root: Path, steps=(100, 200, 300), keep_last: int | None = None) -> tuple[str, dict[int, dict]]:
    """A finished run saving a checkpoint at each step (weights differ per step); step -> the saved weights."""
    saved = {}
    with rp.init(project="vision", root=root, config={"lr": 0.1}) as run:
        kwargs = {"keep_last": keep_last} if keep_last else {}
        ckpt = rp.CheckpointManager(run, monitor="val/loss", **kwargs)
        for i, step in enumerate(steps):
            model = _model(step)
            run.log({"val/loss": 1.0 / (i + 1) if step != 200 else 0.01, "acc": 0.5 + i / 10}, step=step)
            ckpt.save(step, {"model": model}, metrics={"val/loss": 1.0 / (i + 1) if step != 200 else 0.01})
            saved[step] = {k: v.clone() for k, v in model.state_dict().items()}
        ckpt.wait()
        run_id = run.id
    return run_id, saved


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_register_records_lineage_and_loads_bit_for_bit(root) -> None:
    run_id, saved = _train(root)
    best = rp.register_model("digits", run_id, root=root, alias="champion", description="first", tags=["cnn"])
    assert (best.ref, best.run_id, best.step) == ("digits:1", run_id, 200)  # the best checkpoint by val/loss
    third = rp.register_model("digits", f"{run_id[:8]}:step=300", root=root)
    assert (third.version, third.step) == (2, 300)

    version = rp.model_version("digits@champion", root=root)
    store, registry = open_registry(root)
    run = store.get_run(run_id)
    record = next(r for r in rp.store.checkpoint_registry(store).list_checkpoints(run_id) if r.step == 200)
    lineage = version.lineage
    assert version.manifest_hash == record.hash and version.checkpoint == "checkpoints/step-000200"
    assert (lineage["config_hash"], lineage["project"], lineage["metric"], lineage["metric_value"]) == (
        run.config_hash, "vision", "val/loss", 0.01)
    assert lineage["summary"] == {"val/loss": 0.01, "acc": pytest.approx(0.6)}  # the run as it was at step 200
    assert "git_commit" in lineage and "git_dirty" in lineage  # None outside a repository
    assert version.registered_by and version.registered_at > 0 and version.tags == ("cnn",)

    into = {"model": _model(0)}
    assert rp.load_model("digits@champion", into, root=root) is into
    assert _same(into["model"].state_dict(), saved[200])
    assert _same(rp.load_model("digits:2", root=root)["model"], saved[300])
    assert _same(rp.load_model("digits", root=root)["model"], saved[300])  # the latest version

    registry.move_alias("digits", "champion", 2, expected=1)
    rp.load_model("digits@champion", into, root=root)
    assert _same(into["model"].state_dict(), saved[300])
    store.close()


def test_a_tampered_or_replaced_checkpoint_is_refused(root) -> None:
    run_id, saved = _train(root, steps=(100, 200))
    rp.register_model("m", run_id, step=100, root=root)
    rp.register_model("m", run_id, step=200, root=root)
    run_dir = next(root.glob(f"vision/{run_id}"))
    weights = next((run_dir / "checkpoints/step-000100").glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointCorruptError):
        rp.load_model("m:1", root=root)
    manifest = run_dir / "checkpoints/step-000200/manifest.json"  # a manifest rewritten after registration
    document = json.loads(manifest.read_text())
    document["metrics"] = {"val/loss": 123.0}
    manifest.write_text(json.dumps(document))
    with pytest.raises(CheckpointCorruptError, match="changed since the model version was registered"):
        rp.load_model("m:2", root=root)
    with pytest.raises(CheckpointCorruptError):  # and registering a corrupt checkpoint is refused
        rp.register_model("m", run_id, step=100, root=root)


def test_bad_references_are_clear_errors(root) -> None:
    run_id, _ = _train(root, steps=(100,))
    rp.register_model("a", run_id, root=root, alias="champion")
    rp.register_model("b", str(next(root.glob(f"vision/{run_id}/checkpoints/step-000100"))), root=root)
    assert rp.model_version("b", root=root).run_id == run_id  # a path inside a run is linked to the run
    with pytest.raises(ModelNotFoundError, match=r"no model 'x'; models: a, b"):
        rp.load_model("x@champion", root=root)
    with pytest.raises(ModelNotFoundError, match=r"no alias 'prod' on model 'a' \(aliases: champion\)"):
        rp.load_model("a@prod", root=root)
    with pytest.raises(ModelNotFoundError, match=r"model 'a' has no version 5; versions: 1"):
        rp.load_model("a:5", root=root)
    for bad in ("a:x", "a:0", "a@", "a:1@b", "", "a/b", "a@7"):
        with pytest.raises(InvalidArgumentError, match="model"):
            parse_model_ref(bad)
    with pytest.raises(CheckpointNotFoundError, match="steps 100"):
        rp.register_model("a", f"{run_id}:step=999", root=root)
    with pytest.raises(InvalidArgumentError, match="RUN:step=N"):
        rp.register_model("a", f"{run_id}:stp=1", root=root)
    with pytest.raises(rp.RunNotFoundError):
        rp.register_model("a", "nosuchrun", root=root)
    with pytest.raises(InvalidArgumentError, match="model name"):
        rp.register_model("bad name", run_id, root=root)


def test_retention_and_gc_keep_a_registered_checkpoint(root) -> None:
    with rp.init(project="vision", root=root) as run:
        ckpt = rp.CheckpointManager(run, keep_last=1)
        ckpt.save(100, {"model": _model(1)})
        rp.register_model("kept", run, step=100)  # while training: from the run itself
        for step in (200, 300):
            ckpt.save(step, {"model": _model(step)})
        ckpt.wait()
        run_id = run.id
    checkpoints = next(root.glob(f"vision/{run_id}/checkpoints"))
    assert sorted(p.name for p in checkpoints.glob("step-*")) == ["step-000100", "step-000300"]
    gc = cli(root, "ckpt", "gc", run_id, "--keep-last", "1", "--yes")
    assert gc.exit_code == 0, gc.output
    assert (checkpoints / "step-000100").is_dir()  # registered: kept by gc too
    by_path = cli(root, "ckpt", "gc", str(checkpoints), "--keep-last", "1", "--yes")
    assert by_path.exit_code == 0 and (checkpoints / "step-000100").is_dir(), by_path.output
    store, registry = open_registry(root)
    registry.delete_version("kept", 1)
    deleted = apply_retention(checkpoints, LatestN(1), registered=lambda: registered_steps_in(store, checkpoints))
    assert [c.step for c in deleted.deleted] == [100]  # no longer registered: gc may take it
    store.close()


def test_deleting_a_run_with_registered_versions_asks_and_explains(root) -> None:
    run_id, _ = _train(root, steps=(100, 200))
    rp.register_model("m", run_id, step=100, root=root, alias="champion")
    rp.register_model("m", run_id, step=200, root=root)
    declined = cli(root, "rm", run_id, input="n\n")
    assert declined.exit_code == 1 and "nothing deleted" in declined.output
    assert f"run {run_id} has registered model versions m:1 (champion), m:2; deleting it deletes their " \
           "checkpoints" in " ".join(declined.output.split())
    unattended = cli(root, "rm", run_id, "--yes")
    assert unattended.exit_code == 1 and "--force" in unattended.output
    assert rp.model_version("m:1", root=root).deleted_at is None
    forced = cli(root, "rm", run_id, "--yes", "--force")
    assert forced.exit_code == 0, forced.output
    assert not any(root.glob(f"vision/{run_id}"))
    _, registry = open_registry(root)
    assert registry.list_versions("m") == [] and registry.list_aliases("m") == []
    assert [e.outcome for e in registry.alias_history("m")] == ["moved", "removed"]
    with pytest.raises(ModelNotFoundError, match="no alias 'champion'"):
        rp.load_model("m@champion", root=root)
    shutil.rmtree(root, ignore_errors=True)
