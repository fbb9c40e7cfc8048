"""Crafted checkpoints (13.3, 13.5): each is refused like a damaged one, within seconds.

Every case keeps its manifest consistent with its files (sizes and hashes recomputed),
as someone crafting a checkpoint would, so only the new bounds can catch it. For each:
``restore()`` falls back to the previous intact checkpoint with a warning, ``verify``
reports it corrupt, ``ckpt ls`` and ``ckpt verify`` answer in one line per problem, and
nothing outside the checkpoints directory is read.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from pathlib import Path
from typing import Callable

import pytest
import torch
import xxhash
import zstandard

import runpoint as rp
from runpoint.checkpoint import verify_checkpoint

from ..conftest import cli

pytestmark = pytest.mark.timeout(20)

DEEP = 200_000  # far deeper than Python's recursion limit


def _saved(directory: Path, compress: str | None = None, steps=(1, 2, 3)) -> None:
    ckpt = rp.CheckpointManager(directory, rng=False, compress=compress)
    for step in steps:
        ckpt.save(step, {"w": torch.full((64,), float(step)), "step": step})
    ckpt.close()


def _manifest(step_dir: Path) -> dict:
    return json.loads((step_dir / "manifest.json").read_text())


def _craft(step_dir: Path, name: str, data: bytes, raw_bytes: int | None = None) -> None:
    """Replace one file and make the manifest agree with it (size, hash, uncompressed size)."""
    path = step_dir / name
    path.unlink()
    path.write_bytes(data)
    manifest = _manifest(step_dir)
    entry = manifest["files"][name]
    entry["bytes"], entry["hash"] = len(data), xxhash.xxh3_128_hexdigest(data)
    if raw_bytes is not None:
        entry["raw_bytes"] = raw_bytes
    (step_dir / "manifest.json").write_text(json.dumps(manifest))


def _safetensors(header: bytes, data: bytes = b"") -> bytes:
    header += b" " * (-(len(header) + 8) % 8)
    return struct.pack("<Q", len(header)) + header + data


def _zstd_bomb(uncompressed: int) -> bytes:
    """A zstd frame of RLE blocks of zeros: 4 bytes per 128 KiB, built without inflating anything."""
    frame = bytearray(b"\x28\xb5\x2f\xfd")  # magic
    frame += bytes([0x00, 0x70])  # no content size, no checksum; window 128 KiB
    block = 128 * 1024
    count = uncompressed // block
    for index in range(count):
        last = 1 if index == count - 1 else 0
        header = (block << 3) | (1 << 1) | last  # type 1: RLE
        frame += header.to_bytes(3, "little") + b"\x00"
    return bytes(frame)


# -- the crafted cases: each damages step 3 of a directory of steps 1..3 ----------------------

def deep_manifest(directory: Path, outside: Path) -> None:
    (directory / "step-000003" / "manifest.json").write_text("[" * DEEP)


def deep_manifest_object(directory: Path, outside: Path) -> None:
    step_dir = directory / "step-000003"
    manifest = _manifest(step_dir)
    text = json.dumps(manifest)
    (step_dir / "manifest.json").write_text(text[:-1] + ', "x": ' + "[" * DEEP + "]" * DEEP + "}")


def deep_tensor_header(directory: Path, outside: Path) -> None:
    _craft(directory / "step-000003", "tensors.safetensors", _safetensors(b'{"a":' + b"[" * DEEP + b"]" * DEEP + b"}"))


def zstd_claims_4tb_tensor(directory: Path, outside: Path) -> None:
    size = 4 * 2**40
    header = json.dumps({"w": {"dtype": "U8", "shape": [size], "data_offsets": [0, size]}}).encode()
    prefix = _safetensors(header)
    _craft(directory / "step-000003", "tensors.safetensors.zst",
           zstandard.ZstdCompressor().compress(prefix), raw_bytes=len(prefix) + size)


def zstd_bomb_state(directory: Path, outside: Path) -> None:
    step_dir = directory / "step-000003"
    claimed = _manifest(step_dir)["files"]["state.msgpack.zst"]["raw_bytes"]  # what it was: small
    _craft(step_dir, "state.msgpack.zst", _zstd_bomb(8 * 2**30), raw_bytes=claimed)


def links_to_outside_files(directory: Path, outside: Path) -> None:
    """Every file a link to a copy of a valid checkpoint kept outside (as good as /etc/passwd)."""
    step_dir = directory / "step-000003"
    for path in step_dir.iterdir():
        copy = outside / path.name
        copy.write_bytes(path.read_bytes())
        path.unlink()
        path.symlink_to(copy)


def linked_step_directory(directory: Path, outside: Path) -> None:
    step_dir = directory / "step-000003"
    step_dir.rename(outside / "step-000003")
    step_dir.symlink_to(outside / "step-000003")


def dev_zero_link(directory: Path, outside: Path) -> None:
    path = directory / "step-000003" / "tensors.safetensors"
    path.unlink()
    path.symlink_to("/dev/zero")


def fifo_tensors(directory: Path, outside: Path) -> None:
    path = directory / "step-000003" / "tensors.safetensors"
    path.unlink()
    os.mkfifo(path)


def fifo_manifest(directory: Path, outside: Path) -> None:
    path = directory / "step-000003" / "manifest.json"
    path.unlink()
    os.mkfifo(path)


CASES: dict[str, tuple[Callable[[Path, Path], None], str | None]] = {
    "deep_manifest": (deep_manifest, None),
    "deep_manifest_object": (deep_manifest_object, None),
    "deep_tensor_header": (deep_tensor_header, None),
    "zstd_claims_4tb_tensor": (zstd_claims_4tb_tensor, "zstd"),
    "zstd_bomb_state": (zstd_bomb_state, "zstd"),
    "links_to_outside_files": (links_to_outside_files, None),
    "linked_step_directory": (linked_step_directory, None),
    "dev_zero_link": (dev_zero_link, None),
    "fifo_tensors": (fifo_tensors, None),
    "fifo_manifest": (fifo_manifest, None),
}


def _crafted(tmp_path: Path, case: str) -> tuple[Path, Path]:
    craft, compress = CASES[case]
    directory, outside = tmp_path / "checkpoints", tmp_path / "outside"
    outside.mkdir()
    _saved(directory, compress)
    craft(directory, outside)
    return directory, outside


@pytest.mark.parametrize("case", sorted(CASES))
def test_restore_falls_back_from_a_crafted_latest(tmp_path, caplog, case) -> None:
    directory, _ = _crafted(tmp_path, case)
    state = {"w": torch.zeros(64), "step": 0}
    with caplog.at_level(logging.WARNING, logger="runpoint"):
        ckpt = rp.CheckpointManager(directory, rng=False)
        assert ckpt.restore(state) == 3
    assert state["step"] == 2 and torch.equal(state["w"], torch.full((64,), 2.0))
    assert "falling back" in caplog.text and "step-000003" in caplog.text


@pytest.mark.parametrize("case", sorted(CASES))
def test_verify_reports_a_crafted_checkpoint_corrupt_in_one_line(tmp_path, case) -> None:
    directory, _ = _crafted(tmp_path, case)
    results = {r.path.rsplit("/", 1)[1]: r for r in verify_checkpoint(directory)}
    assert results["step-000001"].ok and results["step-000002"].ok
    assert not results["step-000003"].ok
    assert len(results["step-000003"].problems) == 1, results["step-000003"].problems


@pytest.mark.parametrize("case", ["deep_manifest", "zstd_claims_4tb_tensor", "fifo_tensors"])
def test_no_intact_checkpoint_left_raises_the_usual_error(tmp_path, case) -> None:
    craft, compress = CASES[case]
    directory, outside = tmp_path / "checkpoints", tmp_path / "outside"
    outside.mkdir()
    _saved(directory, compress, steps=(3,))
    craft(directory, outside)
    with pytest.raises(rp.CheckpointError, match="no intact checkpoint"):
        rp.CheckpointManager(directory, rng=False).restore({"w": torch.zeros(64), "step": 0})


def test_a_linked_latest_pointer_is_not_followed(tmp_path) -> None:
    directory = tmp_path / "checkpoints"
    _saved(directory)
    secret = tmp_path / "secret.txt"
    secret.write_text("step-000001\n")
    (directory / "latest").unlink()
    (directory / "latest").symlink_to(secret)
    from runpoint.artifacts.storage import open_artifacts
    from runpoint.checkpoint import atomic as _atomic

    assert _atomic.read_pointer(open_artifacts(directory), "latest") is None
    # a new manager replaces the link by a real pointer (and leaves the linked file alone)
    rp.CheckpointManager(directory, rng=False)
    assert not (directory / "latest").is_symlink()
    assert (directory / "latest").read_text() == "step-000003\n" and secret.read_text() == "step-000001\n"


def test_the_cli_lists_and_verifies_crafted_checkpoints_without_tracebacks(tmp_path) -> None:
    """All the crafted cases in one directory: `ckpt ls` and `ckpt verify` answer, one line each."""
    directory, outside = tmp_path / "checkpoints", tmp_path / "outside"
    outside.mkdir()
    _saved(directory, steps=(1,))
    crafted = []
    for index, case in enumerate(["deep_manifest", "deep_tensor_header", "links_to_outside_files",
                                  "fifo_tensors", "fifo_manifest", "dev_zero_link"]):
        scratch, scratch_outside = tmp_path / f"s{index}", outside / str(index)
        scratch_outside.mkdir()
        _saved(scratch, steps=(3,))
        CASES[case][0](scratch, scratch_outside)
        step = 10 + index
        manifest_path = scratch / "step-000003" / "manifest.json"
        if manifest_path.is_file() and not manifest_path.is_symlink() and case != "deep_manifest":
            manifest = _manifest(scratch / "step-000003")
            manifest["step"] = step
            manifest_path.write_text(json.dumps(manifest))
        (scratch / "step-000003").rename(directory / f"step-{step:06d}")
        crafted.append(step)
    listed = cli(None, "ckpt", "ls", str(directory))
    assert listed.returncode == 0, listed.stderr
    assert "Traceback" not in listed.stderr + listed.stdout
    verified = cli(None, "ckpt", "verify", str(directory))
    assert verified.returncode == 1 and "Traceback" not in verified.stderr + verified.stdout
    lines = verified.stdout.splitlines()
    for step in crafted:
        at = next(i for i, line in enumerate(lines) if line.startswith("corrupt") and f"step-{step:06d}" in line)
        assert not lines[at + 1].startswith(("ok", "corrupt")) and (
            at + 2 >= len(lines) or lines[at + 2].startswith(("ok", "corrupt"))), lines
    assert f"{len(crafted)} of {len(crafted) + 1} checkpoint(s) are corrupt" in verified.stderr


def test_verify_with_a_timeout_stops_and_says_so(tmp_path) -> None:
    directory = tmp_path / "checkpoints"
    _saved(directory, steps=(1,))
    [result] = verify_checkpoint(directory, timeout=0)
    assert not result.ok and result.problems == ["tensors.safetensors: not verified: the check ran out of time"]
    [result] = verify_checkpoint(directory, timeout=30)
    assert result.ok


def test_a_link_the_caller_names_is_followed_links_below_it_are_not(tmp_path) -> None:
    directory = tmp_path / "checkpoints"
    _saved(directory, steps=(1,))
    (tmp_path / "final").symlink_to(directory / "step-000001")
    assert rp.load_checkpoint(tmp_path / "final")["step"] == 1
    (directory / "step-000002").symlink_to(directory / "step-000001")  # inside: still refused
    [_, linked] = verify_checkpoint(directory)
    assert not linked.ok and "symbolic link" in linked.problems[0]
