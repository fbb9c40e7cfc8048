"""Checkpoint save, restore, async blocking and compression, against the disk and the peers.

Every figure of a table is measured in the same run on the same disk, peers interleaved
round-robin so that the disk's drift over the run hits them all alike:

- sync save of N MiB of fp32 tensors: ``dd if=/dev/zero conv=fsync`` (the disk's own
  fsynced write speed), runpoint ``CheckpointManager.save``, ``torch.save`` + fsync,
  ``safetensors.torch.save_file`` + fsync, ``torch.distributed.checkpoint.save``;
- restore into existing tensors: runpoint ``restore`` (hashes verified) against
  ``torch.load(weights_only=True)``, ``torch.load(mmap=True, weights_only=True)`` and
  ``safetensors.torch.load_file``, each + a ``load_state_dict``-style copy, files in page cache;
- async: how long ``save()`` blocks with ``async_save=True`` against a plain copy of the
  same tensors to host memory (``clone``, a copy into preallocated tensors, or pinned
  device-to-host on a GPU);
- memory: the peak resident memory a save adds, runpoint vs ``safetensors.save_file`` and
  ``torch.save``, each in a fresh process;
- zstd: save time and size with ``compress="zstd"``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

from ._harness import Context, Section, Table

TITLE = "Checkpoints: save, restore, async and compression"
MiB = 2**20


def _state(mib: int, device: str = "cpu", kind: str = "random") -> dict[str, Any]:
    """``mib`` MiB of fp32 in 8 tensors, like the layers of a model."""
    import torch

    generator = torch.Generator().manual_seed(0)
    per = mib * MiB // 4 // 8
    tensors = {}
    for index in range(8):
        values = torch.randn(per, generator=generator)
        if kind == "half-zero":
            values[: per // 2] = 0.0
        elif kind == "bf16-like":  # fp32 holding bf16 values: the low mantissa bytes are zero
            values = values.to(torch.bfloat16).to(torch.float32)
        tensors[f"layer{index}.weight"] = values.to(device)
    return tensors


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _save_peers(scratch: Path, state: dict[str, Any], mib: int) -> dict[str, Callable[[int], None]]:
    import safetensors.torch
    import torch
    import torch.distributed.checkpoint as dcp

    import runpoint as rp

    def dd(i: int) -> None:
        target = scratch / f"dd-{i}.bin"
        subprocess.run(["dd", "if=/dev/zero", f"of={target}", "bs=16M", f"count={max(1, mib // 16)}", "conv=fsync"],
                       check=True, capture_output=True)

    # dd again, copying random bytes that sit in the page cache: a virtual disk may store
    # zeros more cheaply than the incompressible floats a checkpoint holds
    random_source = scratch.parent / f"random-{mib}.bin"
    if not random_source.exists():
        random_source.write_bytes(os.urandom(mib << 20))

    def dd_random(i: int) -> None:
        target = scratch / f"ddr-{i}.bin"
        subprocess.run(["dd", f"if={random_source}", f"of={target}", "bs=16M", "conv=fsync"],
                       check=True, capture_output=True)

    def runpoint_save(i: int) -> None:
        rp.CheckpointManager(scratch / f"rp-{i}", rng=False).save(i, state)

    def torch_save(i: int) -> None:
        target = scratch / f"torch-{i}.pt"
        with open(target, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        _fsync(target)

    def safetensors_save(i: int) -> None:
        target = scratch / f"st-{i}.safetensors"
        safetensors.torch.save_file(state, target)
        _fsync(target)

    def dcp_save(i: int) -> None:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "assuming the intent is to save in a single process"
            dcp.save(state, checkpoint_id=str(scratch / f"dcp-{i}"))

    return {"dd conv=fsync": dd, "dd conv=fsync, random bytes": dd_random, "runpoint save": runpoint_save, "torch.save + fsync": torch_save,
            "safetensors.save_file + fsync": safetensors_save, "torch.distributed.checkpoint.save": dcp_save}


def _bench_save(ctx: Context, sizes: list[int], repeats: int) -> tuple[Table, dict[str, Any]]:
    rows, numbers = [], {}
    for mib in sizes:
        state = _state(mib)
        scratch = ctx.scratch(f"save-{mib}")
        peers = _save_peers(scratch, state, mib)
        times: dict[str, list[float]] = {name: [] for name in peers}
        names = list(peers)
        for repeat in range(repeats):
            # rotate the order every round, so that no writer always follows the same one
            for name in names[repeat % len(names):] + names[:repeat % len(names)]:
                times[name].append(_timed(lambda: peers[name](repeat)))
            for entry in scratch.iterdir():  # keep the disk from filling up between rounds
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        dd = statistics.median(times["dd conv=fsync"])
        for name, values in times.items():
            median = statistics.median(values)
            rows.append([f"{mib} MiB", name, median, mib / 1024 / median, dd / median])
            numbers[f"save_{mib}MiB_{name}_s"] = median
        del state
    table = Table(["size", "writer", "seconds (median)", "GiB/s", "throughput vs dd"], rows,
                  title="Synchronous save of fp32 tensors, fsynced",
                  note=f"Target: runpoint at least 0.9x dd. Medians of {repeats} rounds, writers interleaved in a "
                       "rotating order; the disk's own speed varies by tens of percent from one write to the next.")
    return table, numbers


def _bench_restore(ctx: Context, mib: int, repeats: int) -> tuple[Table, dict[str, Any]]:
    import safetensors.torch
    import torch

    import runpoint as rp

    state = _state(mib)
    scratch = ctx.scratch(f"restore-{mib}")
    ckpt = rp.CheckpointManager(scratch / "rp", rng=False)
    ckpt.save(1, state)
    torch.save(state, scratch / "state.pt")
    safetensors.torch.save_file(state, scratch / "state.safetensors")
    target = {name: torch.empty_like(t) for name, t in state.items()}

    def copy_into(loaded: dict[str, Any]) -> None:
        with torch.no_grad():
            for name, tensor in loaded.items():
                target[name].copy_(tensor)

    peers = {
        "runpoint restore (verified)": lambda: ckpt.restore(target),
        "runpoint load_checkpoint, verify=False": lambda: copy_into(rp.load_checkpoint(scratch / "rp", verify=False)),
        "torch.load(weights_only=True)": lambda: copy_into(torch.load(scratch / "state.pt", weights_only=True)),
        "torch.load(mmap=True, weights_only=True)": lambda: copy_into(
            torch.load(scratch / "state.pt", mmap=True, weights_only=True)),
        "safetensors.torch.load_file": lambda: copy_into(safetensors.torch.load_file(scratch / "state.safetensors")),
    }
    times: dict[str, list[float]] = {name: [] for name in peers}
    for name, fn in peers.items():  # warm the page cache for every file alike
        fn()
    for _ in range(repeats):
        for name, fn in peers.items():
            times[name].append(_timed(fn))
    reference = statistics.median(times["torch.load(weights_only=True)"])
    rows, numbers = [], {}
    for name, values in times.items():
        median = statistics.median(values)
        rows.append([f"{mib} MiB", name, median, reference / median])
        numbers[f"restore_{mib}MiB_{name}_s"] = median
    assert torch.equal(target["layer0.weight"], state["layer0.weight"])
    table = Table(["size", "reader", "seconds (median)", "speed vs torch.load"], rows,
                  title="Restore into existing tensors (files in the page cache)",
                  note="Target: runpoint restore at least as fast as torch.load. Every reader ends with the "
                       "values copied into the same preallocated tensors, as load_state_dict does.")
    return table, numbers


def _bench_async(ctx: Context, mib: int, repeats: int, device: str) -> tuple[Table, dict[str, Any]]:
    import torch

    import runpoint as rp

    state = _state(mib, device)
    scratch = ctx.scratch(f"async-{device}-{mib}")
    ckpt = rp.CheckpointManager(scratch / "rp", async_save=True, rng=False, keep_last=1)
    ckpt.save(0, state)  # the first save allocates the host buffers; later ones reuse them
    ckpt.wait()

    preallocated = {name: torch.empty_like(t, device="cpu") for name, t in state.items()}

    def copy_into_preallocated() -> None:  # the floor: what a reused host buffer costs, no allocation
        for name, t in state.items():
            preallocated[name].copy_(t)

    def plain_copy() -> None:
        if device == "cpu":
            {name: t.clone() for name, t in state.items()}
        else:
            pinned = {name: torch.empty(t.shape, dtype=t.dtype, pin_memory=True) for name, t in state.items()}
            start = time.perf_counter()
            for name, t in state.items():
                pinned[name].copy_(t, non_blocking=True)
            torch.cuda.synchronize()
            plain_copy.pinned_only = time.perf_counter() - start  # type: ignore[attr-defined]

    blocked, copies, committed, floors = [], [], [], []
    for step in range(1, repeats + 1):
        floors.append(_timed(copy_into_preallocated))
        start = time.perf_counter()
        ckpt.save(step, state)
        blocked.append(time.perf_counter() - start)
        ckpt.wait()
        committed.append(time.perf_counter() - start)
        copies.append(_timed(plain_copy))
        if device != "cpu":
            copies[-1] = plain_copy.pinned_only  # type: ignore[attr-defined]
    copy_name = "clone() of every tensor" if device == "cpu" else "pinned device-to-host copy"
    b, c, total = statistics.median(blocked), statistics.median(copies), statistics.median(committed)
    floor = statistics.median(floors)
    rows = [[device, f"{mib} MiB", "runpoint save(), async_save=True: blocked", b, b / c, b / floor],
            [device, f"{mib} MiB", f"plain {copy_name}", c, 1.0, c / floor],
            [device, f"{mib} MiB", "copy_() into preallocated host tensors", floor, floor / c, 1.0],
            [device, f"{mib} MiB", "runpoint async: until committed (wait)", total, total / c, total / floor]]
    numbers = {f"async_{device}_{mib}MiB_blocked_s": b, f"async_{device}_{mib}MiB_copy_s": c,
               f"async_{device}_{mib}MiB_committed_s": total, f"async_{device}_{mib}MiB_prealloc_copy_s": floor}
    if device != "cpu":
        import torch.distributed.checkpoint as dcp

        dcp_blocked = []
        for step in range(repeats):
            start = time.perf_counter()
            future = dcp.async_save(state, checkpoint_id=str(scratch / f"dcp-{step}"))
            dcp_blocked.append(time.perf_counter() - start)
            future.result()
        d = statistics.median(dcp_blocked)
        rows.append([device, f"{mib} MiB", "torch.distributed.checkpoint.async_save: blocked", d, d / c, d / floor])
        numbers[f"async_{device}_{mib}MiB_dcp_blocked_s"] = d
    return Table(["device", "size", "what", "seconds (median)", "vs the plain copy", "vs the preallocated copy"], rows,
                 title="Async save: time the training loop is blocked",
                 note="Target: blocked under 2x the plain copy. The preallocated copy is the floor any async "
                      "saver that reuses its host buffers can reach; a clone also pays for allocating."), numbers


_PEAK_RSS = """
import json, os, sys, time
import torch
sys.path.insert(0, {bench_root!r})
from benchmarks.bench_checkpoint import _state, _fsync
from pathlib import Path
state = _state({mib})
target = Path({target!r})
{setup}

def status(field):
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) / 1024 for line in handle if line.startswith(field + ":"))

with open("/proc/self/clear_refs", "w") as handle:  # reset the peak (VmHWM) to what is resident now
    handle.write("5")
base = status("VmRSS")
t0 = time.perf_counter()
{save}
elapsed = time.perf_counter() - t0
print(json.dumps({{"extra_mib": status("VmHWM") - base, "seconds": elapsed}}))
"""

# (imports and setup, done before the peak is reset; the save measured)
_PEAK_SAVERS = {
    "runpoint save": ("import runpoint as rp\nmanager = rp.CheckpointManager(target / 'rp', rng=False)",
                      "manager.save(1, state)"),
    "safetensors.save_file + fsync": ("import safetensors.torch\ntarget.mkdir(parents=True, exist_ok=True)",
                                      "safetensors.torch.save_file(state, target / 's.safetensors')\n"
                                      "_fsync(target / 's.safetensors')"),
    "torch.save + fsync": ("target.mkdir(parents=True, exist_ok=True)",
                           "with open(target / 's.pt', 'wb') as h:\n"
                           "    torch.save(state, h); h.flush(); os.fsync(h.fileno())"),
}


def _bench_peak_memory(ctx: Context, mib: int) -> tuple[Table, dict[str, Any]]:
    """Peak resident memory a save adds on top of the state itself, each writer in a fresh process."""
    from ._harness import python_in_subprocess

    rows, numbers = [], {}
    bench_root = str(Path(__file__).resolve().parents[1])
    for name, (setup, save) in _PEAK_SAVERS.items():
        target = ctx.scratch(f"peak-{name.split()[0]}")
        code = _PEAK_RSS.format(bench_root=bench_root, mib=mib, target=str(target), setup=setup, save=save)
        import json

        r = json.loads(python_in_subprocess(code).strip().splitlines()[-1])
        rows.append([f"{mib} MiB", name, r["extra_mib"], r["extra_mib"] / mib, r["seconds"]])
        numbers[f"peak_rss_{mib}MiB_{name}_extra_mib"] = r["extra_mib"]
        numbers[f"peak_rss_{mib}MiB_{name}_s"] = r["seconds"]
        shutil.rmtree(target, ignore_errors=True)
    return Table(["size", "writer", "peak RSS added (MiB)", "vs the state's size", "seconds"], rows,
                 title="Memory: peak resident memory a save adds above the state (fresh process each)",
                 note="The peak resident memory during the save (VmHWM, reset just before it through "
                      "/proc/self/clear_refs) minus the resident memory before it: the state itself is "
                      "already resident."), numbers


def _bench_zstd(ctx: Context, mib: int) -> tuple[Table, dict[str, Any]]:
    import runpoint as rp

    rows, numbers = [], {}
    for kind in ("random", "bf16-like", "half-zero"):
        state = _state(mib, kind=kind)
        scratch = ctx.scratch(f"zstd-{kind}")
        plain_s = _timed(lambda: rp.CheckpointManager(scratch / "plain", rng=False).save(1, state))
        packed_s = _timed(lambda: rp.CheckpointManager(scratch / "zstd", rng=False, compress="zstd").save(1, state))
        plain_b = rp.CheckpointManager(scratch / "plain").latest.bytes
        packed_b = rp.CheckpointManager(scratch / "zstd").latest.bytes
        rows.append([kind, f"{mib} MiB", plain_s, packed_s, packed_s / plain_s, plain_b / packed_b])
        numbers[f"zstd_{kind}_ratio"] = plain_b / packed_b
        numbers[f"zstd_{kind}_time_ratio"] = packed_s / plain_s
    return Table(["tensor values", "size", "save s", "save s with zstd", "time ratio", "compression ratio"], rows,
                 title='compress="zstd" (level 1, multithreaded)',
                 note="random: normal fp32 noise; bf16-like: fp32 holding bfloat16 values; half-zero: half zeros."), numbers


def run(ctx: Context) -> Section:
    import torch

    sizes = ctx.size([256, 1024], [16, 64], [4, 8])
    repeats = ctx.size(3, 2, 1)
    section = Section(TITLE, intro=(
        f"CPU: torch {torch.__version__}, {torch.get_num_threads()} threads. "
        "A GPU section follows when CUDA is available."
    ))
    for table, numbers in (
        _bench_save(ctx, sizes, repeats if ctx.quick else 7),
        _bench_restore(ctx, sizes[0], repeats),
        _bench_async(ctx, sizes[0], repeats, "cpu"),
        _bench_zstd(ctx, sizes[0]),
        _bench_peak_memory(ctx, sizes[0]),
    ):
        section.tables.append(table)
        section.numbers.update(numbers)
    if torch.cuda.is_available():
        gpu = torch.cuda.get_device_name()
        table, numbers = _bench_async(ctx, ctx.size(4096, 256, 16), repeats, "cuda")
        table.title += f" ({gpu})"
        section.tables.append(table)
        section.numbers.update(numbers)
    return section
