"""`runpoint ckpt rekey` keeps registered model versions loadable: they are re-pinned to the new manifests.

One run with two encrypted checkpoints and three versions (two on one checkpoint) serves:
rekey by run and by path, load_model with the new key bit for bit, the lineage's record
of each re-pin, the old key refused naming both key ids, a rerun changing nothing, a bare
directory rekeyed without a registry, and a root whose registry cannot be read refusing
before anything changes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

import runpoint as rp
from runpoint.artifacts.paths import DB_NAME
from runpoint.errors import CheckpointKeyError

pytest.importorskip("cryptography")

KEYS = {name: rp.EncryptionKey.from_bytes(bytes([seed]) * 32) for seed, name in enumerate(("old", "new", "third"))}


def _key_files(tmp_path: Path) -> dict[str, str]:
    files = {}
    for name, key in KEYS.items():
        path = tmp_path / f"{name}.key"
        path.write_text(key.material().hex())
        path.chmod(0o600)
        files[name] = str(path)
    return files


def _rekey(root: Path, target: str, files: dict[str, str], old: str, new: str):
    from typer.testing import CliRunner

    from runpoint.cli.main import app

    return CliRunner().invoke(app, ["ckpt", "rekey", target, "--old-key-file", files[old], "--new-key-file",
                                    files[new], "--root", str(root)])


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))


def test_rekey_repins_registered_versions_and_they_load_with_the_new_key(root: Path, tmp_path: Path) -> None:
    files = _key_files(tmp_path)
    saved = {}
    with rp.init(project="vision", root=root) as run:
        ckpt = rp.CheckpointManager(run, encrypt=KEYS["old"], rng=False)
        for step in (100, 200):
            model = _model(step)
            ckpt.save(step, {"model": model})
            saved[step] = {k: v.clone() for k, v in model.state_dict().items()}
        run_id = run.id
    first = rp.register_model("digits", f"{run_id}:step=100", root=root, alias="champion")
    rp.register_model("digits", f"{run_id}:step=200", root=root)
    rp.register_model("other", f"{run_id}:step=200", root=root)
    directory = next(root.rglob("step-000100")).parent
    bare = tmp_path / "bare"
    shutil.copytree(directory, bare)  # the same checkpoints outside the root: no registry to consult

    result = _rekey(root, run_id[:8], files, "old", "new")
    assert result.exit_code == 0, result.output
    assert "2 rekeyed" in result.output and "re-pinned digits:1 to" in result.output
    assert "re-pinned digits:2, other:1 to" in result.output

    model = _model(0)
    rp.load_model("digits@champion", {"model": model}, root=root, key=KEYS["new"])
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved[100].items())
    loaded = rp.load_model("other:1", root=root, key=KEYS["new"])["model"]
    assert all(torch.equal(loaded[k], v) for k, v in saved[200].items())
    repinned = rp.model_version("digits:1", root=root)
    (entry,) = repinned.lineage["repinned"]
    new_hash = repinned.manifest_hash
    assert (entry["from"], entry["to"], entry["why"]) == (first.manifest_hash, new_hash, "rekey")
    assert new_hash != first.manifest_hash and entry["at"] > 0
    with pytest.raises(CheckpointKeyError) as wrong:
        rp.load_model("digits:1", root=root, key=KEYS["old"])
    assert KEYS["old"].key_id in str(wrong.value) and KEYS["new"].key_id in str(wrong.value)

    again = _rekey(root, run_id[:8], files, "old", "new")  # a rerun: all already under the new key
    assert again.exit_code == 0 and "2 already" in again.output and "re-pinned" not in again.output
    by_path = _rekey(root, str(directory), files, "new", "third")  # a directory inside the root: same registry
    assert by_path.exit_code == 0 and "re-pinned digits:1 to" in by_path.output, by_path.output
    assert len(rp.model_version("digits:1", root=root).lineage["repinned"]) == 2
    assert rp.load_model("digits:2", root=root, key=KEYS["third"])["model"].keys() == saved[200].keys()

    alone = _rekey(root, str(bare), files, "old", "new")
    assert alone.exit_code == 0 and "2 rekeyed" in alone.output and "re-pinned" not in alone.output, alone.output
    assert rp.load_checkpoint(bare / "step-000100", key=KEYS["new"])["model"].keys() == saved[100].keys()

    broken = tmp_path / "broken-root"
    shutil.copytree(directory, broken / "run" / "checkpoints")
    (broken / DB_NAME).write_bytes(b"not a database")
    before = (broken / "run" / "checkpoints" / "step-000200" / "manifest.json").read_bytes()
    refused = _rekey(root, str(broken / "run" / "checkpoints"), files, "third", "new")
    assert refused.exit_code != 0 and "nothing was rekeyed" in refused.output, refused.output
    assert (broken / "run" / "checkpoints" / "step-000200" / "manifest.json").read_bytes() == before
