"""save() then restore() gives back every kind of state bit for bit, and refuses what it cannot store."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import safetensors.torch
import torch

import runpoint as rp
from runpoint.checkpoint import ResumableSampler

from .conftest import REPO


def _trained(seed: int = 0) -> tuple[torch.nn.Module, torch.optim.Optimizer, object, torch.amp.GradScaler]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=50)
    scaler = torch.amp.GradScaler("cpu", init_scale=128.0)
    for _ in range(3):
        loss = model(torch.randn(5, 6)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    return model, optimizer, scheduler, scaler


def _fresh() -> dict:
    model, optimizer, scheduler, scaler = _trained(seed=1)  # different values everywhere
    return {"model": model, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}


def _assert_tensors_equal(a, b) -> None:
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _assert_tensors_equal(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            _assert_tensors_equal(x, y)
    else:
        assert a == b or (a != a and b != b), (a, b)


def test_training_state_round_trips_bit_for_bit(tmp_path) -> None:
    model, optimizer, scheduler, scaler = _trained()
    generator = torch.Generator().manual_seed(7)
    sampler = ResumableSampler(100, seed=3)
    iter_ = iter(sampler)
    [next(iter_) for _ in range(17)]
    extras = {
        "epoch": 4, "history": [1.5, float("nan"), float("inf")], "pair": (1, "a"), "nested": {3: {"x": None}},
        "big": 2**100, "blob": b"\x00\xff", "dtype": torch.bfloat16, "array": np.arange(6, dtype=np.float32).reshape(2, 3),
        "scalar": np.float64(0.25), "bf16": torch.randn(4, dtype=torch.bfloat16), "mask": torch.tensor([True, False]),
        "zero_d": torch.tensor(3.5), "empty": torch.empty(0, 4), "noncontig": torch.arange(12.0).reshape(3, 4).t(),
    }
    state = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler,
             "generator": generator, "sampler": sampler, "extras": extras, "py_rng": random.Random(5)}
    ckpt = rp.CheckpointManager(tmp_path / "ckpts")
    info = ckpt.save(12, state, metrics={"val/loss": np.float32(0.5)})
    assert info is not None and info.step == 12 and info.metrics == {"val/loss": 0.5}

    target = _fresh()
    target.update(generator=torch.Generator(), sampler=ResumableSampler(100), extras={}, py_rng=random.Random())
    assert ckpt.restore(target) == 13 and ckpt.restored_step == 12
    _assert_tensors_equal(target["model"].state_dict(), model.state_dict())
    _assert_tensors_equal(target["optimizer"].state_dict(), optimizer.state_dict())
    assert target["scheduler"].state_dict() == scheduler.state_dict()
    assert target["scaler"].state_dict() == scaler.state_dict()
    assert torch.equal(target["generator"].get_state(), generator.get_state())
    assert target["sampler"].state_dict() == sampler.state_dict() and list(target["sampler"]) == list(iter_)
    assert target["py_rng"].random() == random.Random(5).random()
    restored = target["extras"]
    assert restored["noncontig"].is_contiguous() and torch.equal(restored["noncontig"], extras["noncontig"])
    assert isinstance(restored["array"], np.ndarray) and np.array_equal(restored["array"], extras["array"])
    assert restored["scalar"] == 0.25 and restored["dtype"] is torch.bfloat16
    _assert_tensors_equal({k: v for k, v in restored.items() if k not in ("array", "noncontig")},
                          {k: (v.item() if isinstance(v, np.generic) else v) for k, v in extras.items()
                           if k not in ("array", "noncontig")})


def test_rng_states_are_restored_unless_disabled(tmp_path) -> None:
    ckpt = rp.CheckpointManager(tmp_path / "a")
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    ckpt.save(0, {"x": 1})
    expected = (random.random(), np.random.rand(), torch.rand(2))
    ckpt.restore({"x": 0})
    assert (random.random(), np.random.rand()) == expected[:2] and torch.equal(torch.rand(2), expected[2])

    plain = rp.CheckpointManager(tmp_path / "b", rng=False)
    plain.save(0, {"x": 1})
    assert plain.latest is not None and plain.latest.manifest.rng == ()
    random.seed(2), np.random.seed(2), torch.manual_seed(2)  # the generators move on after the save
    before = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state())
    plain.restore({"x": 0})
    assert random.getstate() == before[0] and np.array_equal(np.random.get_state()[1], before[1])
    assert torch.equal(torch.get_rng_state(), before[2])  # rng=False: restore left them where they were


def test_tied_weights_are_stored_once_and_stay_tied(tmp_path) -> None:
    embed = torch.nn.Embedding(10, 4)
    head = torch.nn.Linear(4, 10, bias=False)
    head.weight = embed.weight
    model = torch.nn.ModuleDict({"embed": embed, "head": head})
    ckpt = rp.CheckpointManager(tmp_path)
    ckpt.save(1, {"model": model})
    stored = safetensors.torch.load_file(tmp_path / "step-000001" / "tensors.safetensors")
    assert list(stored) == ["model/embed.weight"]
    other = torch.nn.ModuleDict({"embed": torch.nn.Embedding(10, 4), "head": torch.nn.Linear(4, 10, bias=False)})
    other["head"].weight = other["embed"].weight
    ckpt.restore({"model": other})
    assert torch.equal(other["head"].weight, embed.weight) and other["head"].weight is other["embed"].weight


def test_files_are_standard_safetensors_and_msgpack_with_a_json_manifest(tmp_path) -> None:
    model, optimizer, _, _ = _trained()
    ckpt = rp.CheckpointManager(tmp_path)
    ckpt.save(3, {"model": model, "optimizer": optimizer}, metrics={"val/loss": float("nan")})
    directory = tmp_path / "step-000003"
    assert sorted(os.listdir(directory)) == ["manifest.json", "state.msgpack", "tensors.safetensors"]
    tensors = safetensors.torch.load_file(directory / "tensors.safetensors")
    for key, value in model.state_dict().items():
        assert torch.equal(tensors[f"model/{key}"], value)
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["step"] == 3 and manifest["metrics"] == {"val/loss": "NaN"}
    assert manifest["keys"] == {"model": "module", "optimizer": "optimizer"}
    assert set(manifest["files"]) == {"state.msgpack", "tensors.safetensors"}
    for name, entry in manifest["files"].items():
        assert entry["bytes"] == (directory / name).stat().st_size and len(entry["hash"]) == 32
    assert manifest["versions"]["torch"] == torch.__version__
    assert (tmp_path / "latest").read_text() == "step-000003\n"
    assert b"pickle" not in (directory / "state.msgpack").read_bytes()


def test_the_manifest_reads_without_torch(tmp_path) -> None:
    rp.CheckpointManager(tmp_path).save(5, {"w": torch.ones(2)}, metrics={"acc": 0.5})
    code = (
        "import sys, pathlib\n"
        "from runpoint.artifacts.manifest import Manifest\n"
        f"m = Manifest.from_json(pathlib.Path({str(tmp_path / 'step-000005' / 'manifest.json')!r}).read_text())\n"
        "assert m.step == 5 and m.metrics == {'acc': 0.5}, m\n"
        "assert 'torch' not in sys.modules and 'numpy' not in sys.modules, 'imported something heavy'\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


@pytest.mark.parametrize("bad, where", [
    (lambda: 1, "state['extras']['fn']"),
    ({1, 2}, "state['extras']['fn']"),
    (object(), "state['extras']['fn']"),
    (np.array([object()]), "state['extras']['fn']"),
    (torch.ones(2).to_sparse(), "state['extras']['fn']"),
])
def test_unstorable_values_raise_naming_their_key_and_write_nothing(tmp_path, bad, where) -> None:
    ckpt = rp.CheckpointManager(tmp_path)
    with pytest.raises(rp.CheckpointError) as caught:
        ckpt.save(1, {"model": torch.nn.Linear(2, 2), "extras": {"ok": 1, "fn": bad}})
    assert where in str(caught.value)
    assert os.listdir(tmp_path) == [] and ckpt.latest is None


def test_restore_lists_every_mismatch_before_touching_anything(tmp_path) -> None:
    ckpt = rp.CheckpointManager(tmp_path)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
    ckpt.save(1, {"model": model, "optimizer": torch.optim.SGD(model.parameters(), lr=0.1), "w": torch.zeros(3)})
    wrong = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Linear(5, 2), torch.nn.Linear(2, 2))
    before = {k: v.clone() for k, v in wrong.state_dict().items()}
    w = torch.ones(4)
    with pytest.raises(rp.CheckpointError) as caught:
        ckpt.restore({"model": wrong, "optimizer": torch.optim.SGD([torch.zeros(1)], lr=0.1), "w": w, "more": 1})
    message = str(caught.value)
    for expected in ("0.weight: shape (5, 4) here, (8, 4)", "parameters missing from the checkpoint: 2.weight, 2.bias",
                     "1 parameters here, 4 in the checkpoint", "state['w']: shape (4,) here, (3,)",
                     "not in the checkpoint: 'more'"):
        assert expected in message, message
    _assert_tensors_equal(wrong.state_dict(), before)
    assert torch.equal(w, torch.ones(4))


def test_non_strict_restore_loads_what_matches(tmp_path) -> None:
    ckpt = rp.CheckpointManager(tmp_path)
    saved = torch.nn.Linear(3, 3)
    ckpt.save(1, {"model": saved, "old": 5})
    loaded = torch.nn.Linear(3, 3)
    state = {"model": loaded, "new": 7}
    assert ckpt.restore(state, strict=False) == 2
    assert torch.equal(loaded.weight, saved.weight) and state == {"model": loaded, "new": 7}


def test_restore_of_nothing_returns_none_and_missing_steps_raise(tmp_path) -> None:
    ckpt = rp.CheckpointManager(tmp_path, monitor="loss")
    assert ckpt.restore({"x": 1}) is None and ckpt.restore({"x": 1}, which="best") is None
    ckpt.save(2, {"x": 1}, metrics={"loss": 1.0})
    with pytest.raises(rp.CheckpointNotFoundError) as caught:
        ckpt.restore({"x": 1}, which=3)
    assert caught.value.step == 3 and isinstance(caught.value, FileNotFoundError)
    with pytest.raises(rp.InvalidArgumentError):
        ckpt.restore({"x": 1}, which="newest")


def test_load_checkpoint_returns_plain_values_and_export_writes_deployable_weights(tmp_path) -> None:
    model, optimizer, scheduler, _ = _trained()
    ckpt = rp.CheckpointManager(tmp_path / "ckpts", keep_best=1, monitor="val/acc", mode="max")
    for step, acc in ((1, 0.5), (2, 0.9), (3, 0.7)):
        with torch.no_grad():
            model[0].weight.add_(1.0)
        ckpt.save(step, {"model": model, "optimizer": optimizer, "scheduler": scheduler, "epoch": step},
                  metrics={"val/acc": acc})
    best = rp.load_checkpoint(tmp_path / "ckpts", which="best")
    assert best["epoch"] == 2 and set(best) == {"model", "optimizer", "scheduler", "epoch"}
    one = rp.load_checkpoint(tmp_path / "ckpts" / "step-000003")
    _assert_tensors_equal(one["model"], model.state_dict())
    assert one["scheduler"] == scheduler.state_dict()
    fresh = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    fresh.load_state_dict(rp.load_checkpoint(tmp_path / "ckpts", which=2)["model"])

    written = ckpt.export(tmp_path / "model.safetensors")
    weights = safetensors.torch.load_file(written)
    _assert_tensors_equal(weights, fresh.state_dict())
    with safetensors.safe_open(written, "pt") as handle:
        assert handle.metadata()["step"] == "2"
    with pytest.raises(rp.InvalidArgumentError, match="no 'net'"):
        ckpt.export(tmp_path / "x.safetensors", key="net")


def test_no_restored_tensor_keeps_the_checkpoint_file_mapped(tmp_path) -> None:
    """Restore maps the file; whatever the caller keeps must not (retention could not free the disk)."""
    import gc

    model, optimizer, _, _ = _trained()
    ckpt = rp.CheckpointManager(tmp_path / "ckpts")
    ckpt.save(1, {"model": model, "optimizer": optimizer, "extra": {"w": torch.ones(4)}})
    target = _fresh()
    state = {"model": target["model"], "optimizer": target["optimizer"], "extra": {}}
    ckpt.restore(state)
    plain = rp.load_checkpoint(tmp_path / "ckpts")
    gc.collect()
    mapped = [line for line in open("/proc/self/maps") if str(tmp_path) in line]
    assert mapped == [], mapped
    _assert_tensors_equal(state["optimizer"].state_dict(), optimizer.state_dict())
    assert torch.equal(state["extra"]["w"], torch.ones(4)) and torch.equal(plain["extra"]["w"], torch.ones(4))


def test_a_resave_whose_final_rename_fails_keeps_the_old_checkpoint(tmp_path, monkeypatch) -> None:
    import errno

    from runpoint.artifacts.storage import LocalArtifacts
    from runpoint.checkpoint import atomic as _atomic

    ckpt = rp.CheckpointManager(tmp_path, rng=False)
    ckpt.save(1, {"w": torch.full((8,), 1.0), "step": 1})
    ckpt.save(2, {"w": torch.full((8,), 2.0), "step": 2})
    rename = LocalArtifacts.rename

    def failing_rename(self, source: str, target: str) -> None:
        if source.startswith(_atomic.STAGING):  # moving the new checkpoint in, after the old one went aside
            raise OSError(errno.EIO, "injected I/O error", source)
        rename(self, source, target)

    monkeypatch.setattr(LocalArtifacts, "rename", failing_rename)
    with pytest.raises(rp.CheckpointError, match="step 2.*untouched"):
        ckpt.save(2, {"w": torch.full((8,), 20.0), "step": 20})
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["latest", "step-000001", "step-000002"]  # nothing left aside
    state = {"w": torch.zeros(8), "step": 0}
    assert rp.CheckpointManager(tmp_path, rng=False).restore(state) == 3  # in a new manager, as after a restart
    assert state["step"] == 2 and torch.equal(state["w"], torch.full((8,), 2.0))
    assert ckpt.restore(state, which=2) == 3 and state["step"] == 2
    ckpt.save(2, {"w": torch.full((8,), 20.0), "step": 20})  # once renames work again, the re-save goes through
    assert rp.load_checkpoint(tmp_path, which=2)["step"] == 20
