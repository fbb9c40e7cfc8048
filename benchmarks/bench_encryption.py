"""Encrypted checkpoints: save and restore with ``encrypt=key`` against the same without, and torch.save.

Same run, same disk, same tensors (fp32 in 8 tensors, as in ``bench_checkpoint``), writers
interleaved in a rotating order:

- sync save, fsynced: runpoint plain, runpoint encrypted (segmented AES-256-GCM), ``torch.save`` + fsync;
- restore into existing tensors, hashes verified, files in the page cache: runpoint plain
  (maps the file), runpoint encrypted (maps the file and decrypts it into new tensors, then copies),
  ``torch.load(weights_only=True)`` + copy;
- the cipher alone: sealing and opening the bytes in memory, no disk, on one thread and on two
  (the ``cryptography`` package holds the GIL while it runs AES-GCM), against a memory copy.

Target: encrypted at most 1.3x the plain time, at 256 MiB and 1 GiB.
"""

from __future__ import annotations

import io
import os
import shutil
import statistics
import time
from typing import Any, Callable

from ._harness import Context, Section, Table

TITLE = "Encrypted checkpoints: save and restore vs plain"
MiB = 2**20


def _state(mib: int) -> dict[str, Any]:
    import torch

    generator = torch.Generator().manual_seed(0)
    per = mib * MiB // 4 // 8
    return {f"layer{index}.weight": torch.randn(per, generator=generator) for index in range(8)}


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _key() -> Any:
    import runpoint as rp

    return rp.EncryptionKey.from_bytes(os.urandom(32))


def _bench_save(ctx: Context, mib: int, repeats: int, key: Any) -> tuple[list[list[Any]], dict[str, Any]]:
    import torch

    import runpoint as rp

    state = _state(mib)
    scratch = ctx.scratch(f"enc-save-{mib}")

    def torch_save(i: int) -> None:
        target = scratch / f"torch-{i}.pt"
        with open(target, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())

    peers: dict[str, Callable[[int], Any]] = {
        "runpoint save": lambda i: rp.CheckpointManager(scratch / f"plain-{i}", rng=False).save(i, state),
        "runpoint save, encrypted": lambda i: rp.CheckpointManager(scratch / f"sealed-{i}", rng=False,
                                                                   encrypt=key).save(i, state),
        "torch.save + fsync": torch_save,
    }
    times: dict[str, list[float]] = {name: [] for name in peers}
    names = list(peers)
    for repeat in range(repeats):
        for name in names[repeat % len(names):] + names[:repeat % len(names)]:
            times[name].append(_timed(lambda: peers[name](repeat)))
        for entry in scratch.iterdir():
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    return _rows(mib, "save", times, "runpoint save")


def _bench_restore(ctx: Context, mib: int, repeats: int, key: Any) -> tuple[list[list[Any]], dict[str, Any]]:
    import torch

    import runpoint as rp

    state = _state(mib)
    scratch = ctx.scratch(f"enc-restore-{mib}")
    plain = rp.CheckpointManager(scratch / "plain", rng=False)
    plain.save(1, state)
    sealed = rp.CheckpointManager(scratch / "sealed", rng=False, encrypt=key)
    sealed.save(1, state)
    torch.save(state, scratch / "state.pt")
    target = {name: torch.empty_like(t) for name, t in state.items()}
    del state

    def torch_load() -> None:
        loaded = torch.load(scratch / "state.pt", weights_only=True)
        with torch.no_grad():
            for name, tensor in loaded.items():
                target[name].copy_(tensor)

    peers: dict[str, Callable[[], Any]] = {
        "runpoint restore": lambda: plain.restore(target),
        "runpoint restore, encrypted": lambda: sealed.restore(target),
        "torch.load + copy": torch_load,
    }
    for fn in peers.values():  # every file in the page cache alike
        fn()
    times: dict[str, list[float]] = {name: [] for name in peers}
    names = list(peers)
    for repeat in range(repeats):
        for name in names[repeat % len(names):] + names[:repeat % len(names)]:
            times[name].append(_timed(peers[name]))
    return _rows(mib, "restore", times, "runpoint restore")


def _rows(mib: int, what: str, times: dict[str, list[float]], plain: str) -> tuple[list[list[Any]], dict[str, Any]]:
    base = statistics.median(times[plain])
    rows, numbers = [], {}
    for name, values in times.items():
        median = statistics.median(values)
        rows.append([f"{mib} MiB", name, median, mib / 1024 / median, median / base])
        numbers[f"{what}_{mib}MiB_{name}_s"] = median
    numbers[f"{what}_{mib}MiB_encrypted_over_plain"] = statistics.median(times[f"{plain}, encrypted"]) / base
    return rows, numbers


def _bench_cipher(mib: int, key: Any) -> tuple[list[list[Any]], dict[str, Any]]:
    """Sealing and opening in memory: what the cipher costs without a disk, against a memory copy."""
    import threading

    import torch
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from runpoint.checkpoint._sealing import OpeningReader, SealingWriter

    class Null:
        def write(self, data: Any) -> int:
            return len(data)

    data = memoryview(os.urandom(mib * MiB))
    seal_s = _timed(lambda: (lambda w: (w.write(data), w.close()))(SealingWriter(key, Null(), "f")))
    sink = io.BytesIO()
    writer = SealingWriter(key, sink, "f")
    writer.write(data)
    writer.close()
    sealed = sink.getvalue()
    out = bytearray(len(data))
    open_s = min(_timed(lambda: OpeningReader(key, io.BytesIO(sealed), "f", writer.file_id, writer.segment_bytes,
                                              len(sealed)).readinto(out)) for _ in range(3))
    assert out == data
    aead = AESGCM(os.urandom(32))
    nonce = os.urandom(12)
    segment = aead.encrypt(nonce, bytes(data[:MiB]), None)
    outs = [bytearray(MiB), bytearray(MiB)]

    def decrypt(count: int, into: bytearray) -> None:
        for _ in range(count):
            aead.decrypt_into(nonce, segment, None, into)

    def decrypt_in_threads() -> None:
        threads = [threading.Thread(target=decrypt, args=(mib // 2, into)) for into in outs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    raw_1_s = min(_timed(lambda: decrypt(mib, outs[0])) for _ in range(3))
    raw_2_s = min(_timed(decrypt_in_threads) for _ in range(3))
    source = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    target = torch.empty_like(source).fill_(0)
    copy_s = min(_timed(lambda: target.copy_(source)) for _ in range(3))
    fresh_s = _timed(lambda: torch.empty(mib * MiB, dtype=torch.uint8).fill_(1))
    rows = [[f"{mib} MiB", "seal (encrypt + tag), 1 thread", seal_s, mib / 1024 / seal_s, ""],
            [f"{mib} MiB", "open (check tag + decrypt), 1 thread", open_s, mib / 1024 / open_s, ""],
            [f"{mib} MiB", "AES-256-GCM decrypt_into of 1 MiB segments, 1 thread", raw_1_s, mib / 1024 / raw_1_s, ""],
            [f"{mib} MiB", "the same, 2 threads (half each)", raw_2_s, mib / 1024 / raw_2_s, ""],
            [f"{mib} MiB", f"memory copy (torch copy_, {torch.get_num_threads()} threads, warm pages)", copy_s,
             mib / 1024 / copy_s, ""],
            [f"{mib} MiB", "first write to new memory (page faults)", fresh_s, mib / 1024 / fresh_s, ""]]
    return rows, {f"cipher_seal_{mib}MiB_s": seal_s, f"cipher_open_{mib}MiB_s": open_s,
                  f"aes_gcm_decrypt_1_thread_{mib}MiB_s": raw_1_s, f"aes_gcm_decrypt_2_threads_{mib}MiB_s": raw_2_s,
                  f"memcpy_{mib}MiB_s": copy_s, f"new_pages_{mib}MiB_s": fresh_s}


def run(ctx: Context) -> Section:
    import torch

    sizes = ctx.size([256, 1024], [16, 64], [4, 8])
    key = _key()
    section = Section(TITLE, intro=(
        f"CPU: torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores. Segmented "
        "AES-256-GCM (1 MiB segments) through the `cryptography` package; restores are hash-verified and start "
        "from files in the page cache."
    ))
    save_rows: list[list[Any]] = []
    restore_rows: list[list[Any]] = []
    for mib in sizes:
        repeats = ctx.size(3 if mib < 1024 else 2, 2, 1)  # at most 2 rounds of 1 GiB (a shared machine)
        rows, numbers = _bench_save(ctx, mib, repeats, key)
        save_rows += rows
        section.numbers.update(numbers)
        rows, numbers = _bench_restore(ctx, mib, repeats, key)
        restore_rows += rows
        section.numbers.update(numbers)
    cipher_rows, numbers = _bench_cipher(sizes[0], key)
    section.numbers.update(numbers)
    columns = ["size", "what", "seconds (median)", "GiB/s", "time vs plain"]
    section.tables += [
        Table(columns, save_rows, title="Synchronous save, fsynced",
              note="Target: encrypted at most 1.3x the plain save. Writers interleaved in a rotating order."),
        Table(columns, restore_rows, title="Restore into existing tensors (hashes verified, page cache warm)",
              note="Target: encrypted at most 1.3x the plain restore. The plain restore maps the file and copies "
                   "once; the encrypted one maps the file, decrypts each segment straight into new pages (on as many "
                   "threads as there are cores, the ciphertext hashed meanwhile), then copies once."),
        Table(columns, cipher_rows, title="The cipher alone, in memory"),
    ]
    return section
