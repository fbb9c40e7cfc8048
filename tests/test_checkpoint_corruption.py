"""Damaged checkpoint files are caught by their hashes: restore falls back, verify names the file."""

from __future__ import annotations

import json
import logging
import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

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


def _rewrite_tensor_header(directory, change) -> None:
    """Give the tensors file the header ``change(header)`` returns, and the manifest matching hashes.

    Only parsing the header can tell then (with compression it is parsed before the hash
    is checked anyway: the hash covers the compressed bytes, read as the tensors are).
    """
    import struct

    import xxhash
    import zstandard

    manifest = json.loads((directory / "manifest.json").read_text())
    compressed = manifest["compression"] == "zstd"
    name = "tensors.safetensors" + (".zst" if compressed else "")
    data = (directory / name).read_bytes()
    if compressed:
        data = zstandard.ZstdDecompressor().stream_reader(data).read()  # streamed: no size in the frame
    (length,) = struct.unpack("<Q", data[:8])
    header = json.dumps(change(json.loads(data[8:8 + length]))).encode()
    header += b" " * (-len(header) % 8)
    raw = struct.pack("<Q", len(header)) + header + data[8 + length:]
    stored = zstandard.ZstdCompressor().compress(raw) if compressed else raw
    (directory / name).write_bytes(stored)
    manifest["files"][name] = {"bytes": len(stored), "hash": xxhash.xxh3_128_hexdigest(stored),
                               **({"raw_bytes": len(raw)} if compressed else {})}
    (directory / "manifest.json").write_text(json.dumps(manifest))


_DAMAGED_HEADERS = {
    "huge shape": lambda w: {**w, "shape": [2**40, 64]},
    "negative shape": lambda w: {**w, "shape": [-1, -64]},  # 64 elements, as the byte range says
    "beyond the file": lambda w: {**w, "shape": [2**40], "data_offsets": [0, 2**42]},
    "shape of floats": lambda w: {**w, "shape": [64.5]},
    "no offsets": lambda w: {key: value for key, value in w.items() if key != "data_offsets"},
    "not an object": lambda w: [w],
}


@pytest.mark.parametrize("compress", [None, "zstd"])
@pytest.mark.parametrize("damage", list(_DAMAGED_HEADERS))
def test_a_damaged_tensor_header_falls_back_to_the_previous_checkpoint(tmp_path, caplog, compress, damage) -> None:
    ckpt = rp.CheckpointManager(tmp_path, rng=False, compress=compress)
    for step in (1, 2, 3):
        ckpt.save(step, {"w": torch.full((64,), float(step)), "step": step})
    _rewrite_tensor_header(tmp_path / "step-000003",
                           lambda header: {**header, "w": _DAMAGED_HEADERS[damage](header["w"])})
    state = {"w": torch.zeros(64), "step": 0}
    with caplog.at_level(logging.WARNING, logger="runpoint"):
        assert rp.CheckpointManager(tmp_path).restore(state) == 3
    assert state["step"] == 2 and torch.equal(state["w"], torch.full((64,), 2.0))
    assert "falling back" in caplog.text and "step-000003" in caplog.text and "tensors.safetensors" in caplog.text
    with pytest.raises(rp.CheckpointCorruptError):
        rp.load_checkpoint(tmp_path / "step-000003")


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_tensor_entries = st.fixed_dictionaries(
    {}, optional={"dtype": st.sampled_from(["F32", "I8", "BOOL", "F99"]) | _json_values,
                  "shape": st.lists(st.integers(-3, 2**50), max_size=3) | _json_values,
                  "data_offsets": st.lists(st.integers(-3, 2**50), max_size=3) | _json_values},
)


@settings(max_examples=300, deadline=None)
@given(header=st.dictionaries(st.sampled_from(["a", "b", "__metadata__"]), _tensor_entries | _json_values, max_size=3),
       data=st.binary(max_size=24))
def test_any_header_reads_as_tensors_or_raises_value_error(header, data) -> None:
    """Whatever a damaged header says, reading gives tensors or a ValueError (a corrupt file), never more."""
    import io
    import struct

    from runpoint.checkpoint import _safetensors

    text = json.dumps(header).encode()
    blob = struct.pack("<Q", len(text)) + text + data
    for read in (lambda: _safetensors.read(io.BytesIO(blob), len(blob))[0],
                 lambda: _safetensors.read(io.BytesIO(blob))[0],
                 lambda: _safetensors.from_buffer(bytearray(blob))):
        try:
            tensors = read()
        except ValueError:
            continue
        assert sum(t.numel() * t.element_size() for t in tensors.values()) == len(data)
