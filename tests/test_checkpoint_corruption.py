"""Damaged checkpoint files are caught by their hashes: restore falls back, verify names the file."""

from __future__ import annotations

import json
import logging
import os

import pytest
import torch

import runpoint as rp
from runpoint.checkpoint import verify_checkpoint

from .conftest import cli


def _saved(directory, steps=(1, 2, 3)) -> rp.CheckpointManager:
    ckpt = rp.CheckpointManager(directory, monitor="loss", rng=False)
    for step in steps:
        ckpt.save(step, {"w": torch.full((64,), float(step)), "step": step}, metrics={"loss": 1.0 / step})
    return ckpt


def _flip_byte(path, offset: int = -10) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "extra", "manifest"])
def test_a_corrupt_latest_falls_back_to_the_newest_intact_checkpoint(tmp_path, caplog, damage) -> None:
    ckpt = _saved(tmp_path)
    latest = tmp_path / "step-000003"
    tensors = latest / "tensors.safetensors"
    if damage == "flip":
        _flip_byte(tensors)
    elif damage == "truncate":
        tensors.write_bytes(tensors.read_bytes()[:-7])
    elif damage == "delete":
        (latest / "state.msgpack").unlink()
    elif damage == "extra":
        with open(tensors, "ab") as handle:
            handle.write(b"junk")
    else:
        (latest / "manifest.json").write_text('{"format": "runpoint-checkpoint", "step": ')
    state = {"w": torch.zeros(64), "step": 0}
    with caplog.at_level(logging.WARNING, logger="runpoint"):
        assert rp.CheckpointManager(tmp_path).restore(state) == 3
    assert state["step"] == 2 and torch.equal(state["w"], torch.full((64,), 2.0))
    assert "falling back" in caplog.text and "step-000003" in caplog.text
    results = {r.path.rsplit("/", 1)[1]: r for r in verify_checkpoint(tmp_path)}
    assert results["step-000001"].ok and results["step-000002"].ok and not results["step-000003"].ok
    assert ckpt.latest is not None and ckpt.latest.step == 3  # what the manager saved, before the damage


def test_an_only_checkpoint_with_a_damaged_manifest_raises_instead_of_starting_over(tmp_path) -> None:
    _saved(tmp_path, steps=(1,))
    (tmp_path / "step-000001" / "manifest.json").write_text('{"format": "runpoint-checkpoint", "step": ')
    with pytest.raises(rp.CheckpointError, match="no intact checkpoint"):
        rp.CheckpointManager(tmp_path).restore({"w": torch.zeros(64), "step": 0})


def test_nothing_intact_raises_instead_of_starting_over(tmp_path) -> None:
    _saved(tmp_path, steps=(1, 2))
    for step in (1, 2):
        _flip_byte(tmp_path / f"step-00000{step}" / "tensors.safetensors")
    with pytest.raises(rp.CheckpointError, match="no intact checkpoint"):
        rp.CheckpointManager(tmp_path).restore({"w": torch.zeros(64), "step": 0})


def test_a_corrupt_best_or_named_step_raises(tmp_path) -> None:
    ckpt = _saved(tmp_path)
    _flip_byte(tmp_path / "step-000003" / "state.msgpack", offset=-1)  # the last byte: the value of "step"
    with pytest.raises(rp.CheckpointCorruptError) as caught:
        ckpt.restore({"w": torch.zeros(64), "step": 0}, which="best")
    assert caught.value.file == "state.msgpack" and "hash" in caught.value.reason
    with pytest.raises(rp.CheckpointCorruptError):
        ckpt.restore({"w": torch.zeros(64), "step": 0}, which=3)
    with pytest.raises(rp.CheckpointCorruptError):
        rp.load_checkpoint(tmp_path / "step-000003")
    assert rp.load_checkpoint(tmp_path / "step-000003", verify=False)["step"] == 2  # 3 with a bit flipped


def test_a_crafted_state_file_cannot_make_loading_run_code(tmp_path) -> None:
    """Even with a matching hash (an attacker can rewrite the manifest), only data comes back."""
    import msgpack
    import xxhash

    _saved(tmp_path, steps=(1,))
    directory = tmp_path / "step-000001"
    evil = msgpack.packb({"version": 1, "state": {"x": msgpack.ExtType(99, b"os.system('touch pwned')")}})
    (directory / "state.msgpack").write_bytes(evil)
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["files"]["state.msgpack"] = {"bytes": len(evil), "hash": xxhash.xxh3_128_hexdigest(evil)}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(rp.CheckpointCorruptError, match="unknown msgpack extension type 99"):
        rp.load_checkpoint(tmp_path)
    for bad in (msgpack.ExtType(3, msgpack.packb(["|O", [1], b"\0" * 8])),  # an object array
                msgpack.ExtType(6, b"save")):                               # torch.save is no dtype
        evil = msgpack.packb({"version": 1, "state": {"x": bad}})
        (directory / "state.msgpack").write_bytes(evil)
        manifest["files"]["state.msgpack"] = {"bytes": len(evil), "hash": xxhash.xxh3_128_hexdigest(evil)}
        (directory / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(rp.CheckpointCorruptError):
            rp.load_checkpoint(tmp_path)
    assert not os.path.exists("pwned")


def test_ckpt_verify_reports_the_damaged_file_and_exits_1(tmp_path) -> None:
    _saved(tmp_path / "ckpts")
    ok = cli(None, "ckpt", "verify", str(tmp_path / "ckpts"))
    assert ok.returncode == 0 and ok.stdout.count("ok ") == 3, ok.stdout + ok.stderr
    _flip_byte(tmp_path / "ckpts" / "step-000002" / "tensors.safetensors")
    bad = cli(None, "ckpt", "verify", str(tmp_path / "ckpts"), "--json")
    assert bad.returncode == 1
    report = json.loads(bad.stdout)
    assert [r["ok"] for r in report] == [True, False, True]
    assert report[1]["problems"] == ["tensors.safetensors: content hash differs from the manifest"]
    assert "1 of 3 checkpoint(s) are corrupt" in bad.stderr
