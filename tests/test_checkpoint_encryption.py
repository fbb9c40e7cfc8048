"""Encrypted checkpoints: bit-exact round trips, and every way a key or a file can be wrong."""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

import runpoint as rp
from runpoint.checkpoint import SafetensorsIO, verify_checkpoint
from runpoint.checkpoint._sealing import (
    HEADER_BYTES,
    SEGMENT_BYTES,
    SealingWriter,
    sealed_size,
)
from runpoint.errors import (
    CheckpointCorruptError,
    CheckpointError,
    CheckpointKeyError,
    InvalidArgumentError,
)

from .conftest import cli

pytest.importorskip("cryptography")

KEY = rp.EncryptionKey.from_bytes(bytes(range(32)))
OTHER = rp.EncryptionKey.from_bytes(bytes(range(1, 33)))


def _state() -> dict:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(5, 16)).sum().backward()
    optimizer.step()
    tensors = {
        "f16": torch.randn(7, 3).half(), "bf16": torch.randn(5).bfloat16(), "f64": torch.randn(4, 4, dtype=torch.float64),
        "i8": torch.randint(-128, 127, (33,), dtype=torch.int8), "bool": torch.rand(9) > 0.5,
        "empty": torch.empty(0, 3), "big": torch.randn(SEGMENT_BYTES // 4 + 17),  # crosses a segment boundary
    }
    return {"model": model, "optimizer": optimizer, "tensors": tensors, "epoch": 3, "array": np.arange(5)}


def _fresh() -> dict:
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    return {"model": model, "optimizer": torch.optim.AdamW(model.parameters(), lr=1e-3), "tensors": {}, "epoch": 0,
            "array": None}


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same dtype, shape and bytes (NaN payloads and -0.0 included)."""
    same_kind = a.dtype == b.dtype and a.shape == b.shape
    return same_kind and a.reshape(-1).view(torch.uint8).equal(b.reshape(-1).view(torch.uint8))


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_round_trip_is_bit_exact_with_rng_and_the_files_hold_no_plaintext(tmp_path: Path) -> None:
    state = _state()
    ckpt = rp.CheckpointManager(tmp_path, encrypt=KEY)
    torch.manual_seed(1234)
    ckpt.save(5, state)
    expected_draw = torch.rand(3)
    written = (tmp_path / "step-000005" / "tensors.safetensors").read_bytes()
    assert b"model/0.weight" not in written and b"data_offsets" not in written  # the header is sealed too
    assert state["tensors"]["big"].numpy().tobytes()[:64] not in written

    manifest = json.loads((tmp_path / "step-000005" / "manifest.json").read_text())
    assert manifest["encryption"]["key_id"] == KEY.key_id and manifest["encryption"]["cipher"] == "aes-256-gcm-segmented-v1"
    assert KEY.key_id not in repr(bytes(range(32))) and len(KEY.key_id) == 16
    assert all(entry["file_id"] for entry in manifest["files"].values())

    fresh = _fresh()
    torch.manual_seed(99)
    assert rp.CheckpointManager(tmp_path, encrypt=KEY).restore(fresh) == 6
    assert torch.equal(torch.rand(3), expected_draw)  # the RNG state came back
    for (name, a), b in zip(state["model"].state_dict().items(), fresh["model"].state_dict().values()):
        assert _same(a, b), name
    saved_opt, loaded_opt = state["optimizer"].state_dict(), fresh["optimizer"].state_dict()
    for index in saved_opt["state"]:
        for key, value in saved_opt["state"][index].items():
            assert _same(value, loaded_opt["state"][index][key]), (index, key)
    for name, tensor in state["tensors"].items():
        assert _same(tensor, fresh["tensors"][name]), name
    assert fresh["epoch"] == 3 and fresh["array"].tolist() == [0, 1, 2, 3, 4]
    loaded = rp.load_checkpoint(tmp_path, key=KEY)
    assert _same(loaded["tensors"]["big"], state["tensors"]["big"])


def test_wrong_key_and_no_key_name_both_key_ids_and_never_fall_back(tmp_path: Path) -> None:
    rp.CheckpointManager(tmp_path).save(1, {"w": torch.ones(2)})  # an older unencrypted one in the same directory
    rp.CheckpointManager(tmp_path, encrypt=KEY).save(2, {"w": torch.full((2,), 2.0)})

    with pytest.raises(CheckpointKeyError) as wrong:
        rp.CheckpointManager(tmp_path, encrypt=OTHER).restore({"w": torch.zeros(2)})
    assert (wrong.value.expected_key_id, wrong.value.given_key_id) == (KEY.key_id, OTHER.key_id)
    assert KEY.key_id in str(wrong.value) and OTHER.key_id in str(wrong.value) and "--key-env" in str(wrong.value)
    with pytest.raises(CheckpointKeyError, match=f"is encrypted \\(key id {KEY.key_id}\\) and no key was given"):
        rp.CheckpointManager(tmp_path).restore({"w": torch.zeros(2)})
    with pytest.raises(CheckpointKeyError):
        rp.load_checkpoint(tmp_path)

    # mixing: the keyed manager reads the unencrypted checkpoint too, and the plain one reads it
    state = {"w": torch.zeros(2)}
    assert rp.CheckpointManager(tmp_path, encrypt=KEY).restore(state, which=1) == 2 and state["w"].tolist() == [1, 1]
    assert rp.CheckpointManager(tmp_path, encrypt=KEY).restore(state) == 3 and state["w"].tolist() == [2, 2]
    assert rp.CheckpointManager(tmp_path).restore(state, which=1) == 2


@pytest.mark.parametrize("compress", [None, "zstd"])
def test_tampering_truncation_and_swapped_files_are_refused_naming_the_file(tmp_path: Path, compress) -> None:
    ckpt = rp.CheckpointManager(tmp_path, encrypt=KEY, compress=compress, rng=False)
    for step in (1, 2):
        ckpt.save(step, {"w": torch.randn(SEGMENT_BYTES // 2) + step})
    name = "tensors.safetensors" + (".zst" if compress else "")
    one, two = tmp_path / "step-000001", tmp_path / "step-000002"

    def refused(step: int, file: str, match: str) -> None:
        with pytest.raises(CheckpointCorruptError, match=match) as caught:
            rp.CheckpointManager(tmp_path, encrypt=KEY).restore({"w": torch.zeros(1)}, which=step, strict=False)
        assert caught.value.file == file

    original, original_manifest = (two / name).read_bytes(), (two / "manifest.json").read_text()
    _flip(two / name, HEADER_BYTES + 100)  # one ciphertext bit
    refused(2, name, "segment 0 fails authentication")
    assert not verify_checkpoint(two)[0].ok  # without the key: the ciphertext hash
    problems = verify_checkpoint(two, key=KEY)[0].problems
    assert problems and name in problems[0]
    # the hash of the altered file written into the manifest: the MAC catches it
    manifest = json.loads((two / "manifest.json").read_text())
    import xxhash
    manifest["files"][name]["hash"] = xxhash.xxh3_128((two / name).read_bytes()).hexdigest()
    (two / "manifest.json").write_text(json.dumps(manifest))
    refused(2, "manifest.json", "fails authentication: the manifest was altered")
    assert verify_checkpoint(two)[0].ok  # keyless verify trusts a manifest it cannot authenticate...
    assert "manifest.json: fails authentication" in verify_checkpoint(two, key=KEY)[0].problems[0]  # ...the key does not
    # and with verify=False (no hash check) the segment's tag still refuses it
    with pytest.raises(CheckpointCorruptError, match="fails authentication"):
        rp.load_checkpoint(two, key=KEY, verify=False)
    (two / name).write_bytes(original)
    (two / "manifest.json").write_text(original_manifest)
    manifest = json.loads(original_manifest)

    shutil.copy(one / name, two / name)  # a valid file of another checkpoint, same key, same name
    # (compressed, the two files differ in size, which is found first)
    with pytest.raises(CheckpointCorruptError, match="the manifest says" if compress else "belongs to another checkpoint"):
        rp.load_checkpoint(two, key=KEY, verify=False)
    problems = verify_checkpoint(two, key=KEY)[0].problems
    assert any("differs" in p or "the manifest says" in p for p in problems), problems
    (two / name).write_bytes(original)

    (two / name).write_bytes(original[:sealed_size(SEGMENT_BYTES // 4, SEGMENT_BYTES) - 1])  # truncated
    refused(2, name, "bytes, the manifest says")
    assert "bytes, the manifest says" in verify_checkpoint(two)[0].problems[0]
    (two / name).write_bytes(original)

    manifest["metrics"] = {"loss": 0.0}  # any other manifest edit
    (two / "manifest.json").write_text(json.dumps(manifest))
    refused(2, "manifest.json", "the manifest was altered")
    state = {"w": torch.zeros(SEGMENT_BYTES // 2)}  # latest falls back to the intact older one, as with any corruption
    assert rp.CheckpointManager(tmp_path, encrypt=KEY).restore(state) == 2


def test_a_segment_stream_detects_reordering_and_a_cut_at_a_segment_boundary(tmp_path: Path) -> None:
    import io

    from runpoint.checkpoint._sealing import OpeningReader

    segment = 64
    out = io.BytesIO()
    writer = SealingWriter(KEY, out, "f", segment)
    data = os.urandom(segment * 3)
    writer.write(data)
    writer.close()
    sealed = out.getvalue()
    body = [sealed[HEADER_BYTES + i * (segment + 16):HEADER_BYTES + (i + 1) * (segment + 16)] for i in range(3)]

    def opened(blob: bytes, name: str = "f") -> bytes:
        return OpeningReader(KEY, io.BytesIO(blob), name, writer.file_id, segment, len(blob)).read()

    assert opened(sealed) == data
    with pytest.raises(ValueError, match="segment 0 fails authentication"):
        opened(sealed[:HEADER_BYTES] + body[1] + body[0] + body[2])
    with pytest.raises(ValueError, match="segment 1 fails authentication"):  # the new last one was not sealed as last
        opened(sealed[:HEADER_BYTES] + body[0] + body[1])
    with pytest.raises(ValueError, match="fails authentication"):  # renamed within its checkpoint
        opened(sealed, name="g")


def test_verify_without_the_key_catches_a_flipped_byte_and_with_the_key_decrypts_all(tmp_path: Path) -> None:
    rp.CheckpointManager(tmp_path, encrypt=KEY, rng=False).save(1, {"w": torch.randn(1000)})
    env_ok = cli_env(KEY_TEXT=base64.b64encode(KEY.material()).decode())
    assert env_ok("ckpt", "verify", str(tmp_path), "--key-env", "KEY_TEXT").returncode == 0
    wrong = cli_env(KEY_TEXT=OTHER.material().hex())("ckpt", "verify", str(tmp_path), "--key-env", "KEY_TEXT")
    assert wrong.returncode == 1 and KEY.key_id in wrong.stdout and "another key" in wrong.stderr
    _flip(tmp_path / "step-000001" / "state.msgpack", HEADER_BYTES + 2)
    result = cli(None, "ckpt", "verify", str(tmp_path))
    assert result.returncode == 1 and "state.msgpack: content hash differs" in result.stdout


def cli_env(**env: str):
    def run(*args: str):
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            return cli(None, *args)
        finally:
            for k, v in old.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return run


def test_keys_from_env_file_callable_and_their_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = os.urandom(32)
    monkeypatch.setenv("K_B64", base64.urlsafe_b64encode(raw).decode())
    monkeypatch.setenv("K_HEX", raw.hex().upper() + "\n")
    monkeypatch.setenv("K_SHORT", base64.b64encode(raw[:16]).decode())
    assert rp.EncryptionKey.from_env("K_B64") == rp.EncryptionKey.from_env("K_HEX") == rp.EncryptionKey.from_bytes(raw)
    with pytest.raises(InvalidArgumentError, match="K_SHORT is not a key.*decodes to 16 bytes") as short:
        rp.EncryptionKey.from_env("K_SHORT")
    assert monkeypatch and os.environ["K_SHORT"] not in str(short.value)
    with pytest.raises(InvalidArgumentError, match="K_UNSET is not set"):
        rp.EncryptionKey.from_env("K_UNSET")

    path = tmp_path / "ckpt.key"
    path.write_bytes(raw)
    path.chmod(0o640)
    with pytest.raises(InvalidArgumentError, match="accessible to its group or others.*chmod 600"):
        rp.EncryptionKey.from_file(path)
    path.chmod(0o604)
    with pytest.raises(InvalidArgumentError, match="chmod 600"):
        rp.EncryptionKey.from_file(path)
    path.chmod(0o600)
    assert rp.EncryptionKey.from_file(path).key_id == rp.EncryptionKey.from_bytes(raw).key_id
    path.write_text(rp.EncryptionKey.generate() + "\n")
    assert rp.EncryptionKey.from_file(path).key_id != rp.EncryptionKey.from_bytes(raw).key_id

    calls = []
    lazy = rp.EncryptionKey.from_callable(lambda: calls.append(1) or raw)
    assert "not fetched" in repr(lazy) and not calls
    assert lazy.key_id == rp.EncryptionKey.from_bytes(raw).key_id and lazy.key_id == lazy.key_id and calls == [1]
    assert raw.hex() not in repr(lazy) and lazy.key_id in repr(lazy)
    with pytest.raises(InvalidArgumentError, match="15 bytes"):
        rp.EncryptionKey.from_callable(lambda: raw[:15]).key_id
    with pytest.raises(TypeError, match="not pickled"):
        import pickle
        pickle.dumps(lazy)
    with pytest.raises(InvalidArgumentError, match="must be an rp.EncryptionKey"):
        rp.CheckpointManager(tmp_path / "c", encrypt=raw)  # type: ignore[arg-type]


def test_async_saves_and_options_carry_the_key(tmp_path: Path) -> None:
    options = rp.checkpoint.CheckpointOptions(async_save=True, encrypt=KEY, io=SafetensorsIO(compress="zstd"))
    assert options.io.key is KEY and options.io.compress == "zstd"
    with rp.CheckpointManager(tmp_path, options) as ckpt:
        for step in range(3):
            ckpt.save(step, {"w": torch.full((1000,), float(step))})
        ckpt.wait()
    assert all(json.loads((tmp_path / f"step-00000{s}" / "manifest.json").read_text())["encryption"] for s in range(3))
    state = {"w": torch.zeros(1000)}
    assert rp.CheckpointManager(tmp_path, encrypt=KEY).restore(state) == 3 and state["w"][0] == 2


def test_memory_stays_flat_while_a_64_mib_tensor_is_sealed_and_opened(tmp_path: Path) -> None:
    from runpoint.artifacts.storage import open_artifacts
    from runpoint.checkpoint.directory import read_manifest

    tensor = torch.randn(16 << 20)  # 64 MiB
    ckpt = rp.CheckpointManager(tmp_path, encrypt=KEY, rng=False)
    tracemalloc.start()
    try:
        ckpt.save(1, {"w": tensor})
        saved_peak = tracemalloc.get_traced_memory()[1]
        storage = open_artifacts(tmp_path)
        manifest = read_manifest(storage, "step-000001")  # (reading a manifest reserves its 16 MiB limit)
        tracemalloc.reset_peak()
        loaded = SafetensorsIO(encrypt=KEY).load(storage, "step-000001", manifest).tensors
        opened_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # the segment buffers (a few MiB), not the file: a whole-file design would peak at 64+ MiB
    assert saved_peak < 8 * SEGMENT_BYTES, saved_peak
    assert opened_peak < 8 * SEGMENT_BYTES, opened_peak
    assert torch.equal(loaded["w"], tensor)


def test_sharded_saves_refuse_encryption_clearly() -> None:
    from runpoint.checkpoint._checks import refuse_sharded_encryption

    class Sharded:
        sharded = True

    with pytest.raises(InvalidArgumentError, match="not supported for sharded checkpoints"):
        refuse_sharded_encryption(KEY, Sharded())
    refuse_sharded_encryption(None, Sharded())


def test_rekey_by_cli_and_a_corrupt_checkpoint_is_left_unchanged(tmp_path: Path) -> None:
    key_file = tmp_path / "new.key"
    key_file.write_text(rp.EncryptionKey.generate())
    key_file.chmod(0o600)
    new = rp.EncryptionKey.from_file(key_file)
    directory = tmp_path / "ckpts"
    ckpt = rp.CheckpointManager(directory, encrypt=KEY, rng=False)
    for step in range(3):
        ckpt.save(step, {"w": torch.full((10,), float(step))})
    rp.CheckpointManager(directory, rng=False).save(3, {"w": torch.full((10,), 3.0)})
    _flip(directory / "step-000001" / "state.msgpack", HEADER_BYTES)
    run = cli_env(OLD=KEY.material().hex())
    result = run("ckpt", "rekey", str(directory), "--old-key-env", "OLD", "--new-key-file", str(key_file))
    assert result.returncode == 1, result.stderr
    assert "2 rekeyed" in result.stdout and "1 not encrypted" in result.stdout and "step-000001" in result.stdout
    for step in (0, 2):
        assert rp.load_checkpoint(directory / f"step-00000{step}", key=new)["w"][0] == step
        with pytest.raises(CheckpointKeyError):
            rp.load_checkpoint(directory / f"step-00000{step}", key=KEY)
    with pytest.raises(CheckpointError):
        rp.load_checkpoint(directory / "step-000001", key=KEY)  # still under the old key, still corrupt
    assert rp.load_checkpoint(directory / "step-000003")["w"][0] == 3  # plain, left so
    assert not [p for p in directory.iterdir() if p.name.startswith(".")]


def test_a_rekey_killed_at_any_point_leaves_each_checkpoint_whole_under_one_key(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    directory = tmp_path / "ckpts"
    ckpt = rp.CheckpointManager(directory, encrypt=KEY, rng=False)
    expected = {}
    for step in range(6):
        expected[step] = torch.randn(4 << 20)  # 16 MiB each: rekeying one takes a while
        ckpt.save(step, {"w": expected[step]})
    new = rp.EncryptionKey.from_bytes(os.urandom(32))
    env = {**os.environ, "OLD": KEY.material().hex(), "NEW": new.material().hex()}
    command = [sys.executable, "-m", "runpoint", "ckpt", "rekey", str(directory), "--old-key-env", "OLD",
               "--new-key-env", "NEW"]

    def under_new() -> int:
        return sum(new.key_id in (p / "manifest.json").read_text() for p in directory.glob("step-*")
                   if (p / "manifest.json").exists())

    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, staging = time.monotonic() + 120, []
    while time.monotonic() < deadline and process.poll() is None:  # mid-write of a later checkpoint: kill -9
        staging = [p for p in directory.iterdir() if p.name.startswith(".tmp-step-")]
        if staging and under_new() >= 1 and any(p.iterdir() for p in staging):
            process.kill()
            break
        time.sleep(random.uniform(0, 0.003))
    process.wait()
    assert process.returncode == -9 and staging, "the rekey finished before it could be killed; make it slower"
    assert 1 <= under_new() < 6

    # each checkpoint is wholly under one key (the manager's start removes the dead rekey's staging)
    reopened = rp.CheckpointManager(directory, encrypt=new, rng=False)
    assert [c.step for c in reopened.list()] == list(range(6))
    assert not [p for p in directory.iterdir() if p.name.startswith(".tmp-")]
    for step in range(6):
        path = directory / f"step-00000{step}"
        key = new if new.key_id in (path / "manifest.json").read_text() else KEY
        assert torch.equal(rp.load_checkpoint(path, key=key)["w"], expected[step])
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0 and "already under key" in finished.stdout, finished.stderr
    assert under_new() == 6
    for step in range(6):
        assert torch.equal(rp.load_checkpoint(directory / f"step-00000{step}", key=new)["w"], expected[step])


def test_a_local_restore_decrypts_on_threads_and_a_late_bad_tag_leaves_the_target_untouched(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from runpoint.checkpoint import _sealed_pages

    monkeypatch.setattr(_sealed_pages, "_cores", lambda: 3)  # three runs of segments, whatever this machine has
    # 19 full segments and a short last one: runs of 6, 7 and 7 segments
    weights = torch.randn((19 * SEGMENT_BYTES + SEGMENT_BYTES // 2) // 4, generator=torch.Generator().manual_seed(1))
    ckpt = rp.CheckpointManager(tmp_path, encrypt=KEY, rng=False)
    ckpt.save(1, {"w": weights})
    threads = threading.active_count()
    target = {"w": torch.zeros_like(weights)}
    assert ckpt.restore(target) == 2 and _same(target["w"], weights)
    name = tmp_path / "step-000001" / "tensors.safetensors"
    original = name.read_bytes()
    before = torch.full_like(weights, 7.0)
    for bad in ((16,), (3, 16)):  # in the last run; in the first and the last: the first is the one reported
        for index in bad:
            _flip(name, HEADER_BYTES + index * (SEGMENT_BYTES + 16) + 5)
        for verify in (True, False):
            with pytest.raises(CheckpointCorruptError, match=f"segment {bad[0]} fails authentication"):
                rp.load_checkpoint(tmp_path / "step-000001", key=KEY, verify=verify)
        target = {"w": before.clone()}
        with pytest.raises(CheckpointError):
            ckpt.restore(target, which=1)
        assert _same(target["w"], before)  # nothing of the checkpoint reached the caller's tensors
        name.write_bytes(original)
    assert threading.active_count() == threads  # every thread joined
