"""Logging: what run.log costs the training loop, against the trackers people use today.

Each tracker runs in a fresh interpreter on the same disk, logging 5 scalars per step.
Measured: the caller's time per step (mean, p99 and worst single call: a tracker that
stalls now and then hurts as much as a slow one), the time from the last log call until
the data is durable (finish / close / flush), the time to read one metric back, bytes on
disk, and import time. Then runpoint alone: sustained ingest, reading a million points,
and what a SIGKILL loses when a script logs as fast as it can (the crash bound).
"""

from __future__ import annotations

import json
import mmap
import os
import random
import statistics
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from ._harness import (
    Context,
    Section,
    Table,
    dir_bytes,
    measure_each,
    package_version,
    python_in_subprocess,
)

INGEST_TARGET = 1_000_000  # points/s, DESIGN.md

TITLE = "Logging: caller cost, durability, read-back (run.log vs MLflow, W&B, TensorBoard, Aim, DVCLive)"

# Each peer: (package for the version, import, setup, one step of 5 scalars, make durable, read back 'loss')
PEERS: dict[str, dict[str, str]] = {
    "list.append (floor)": dict(
        package="", imports="", setup="buf = []",
        step="buf.append((i, time.time(), {'loss': a, 'acc': b, 'lr': c, 'grad_norm': d, 'step_time': e}))",
        durable="pass", read="n = sum(1 for x in buf if 'loss' in x[2])",
    ),
    "runpoint": dict(
        package="runpoint", imports="import runpoint as rp",
        setup="run = rp.init(project='bench', root=OUT, console=False)",
        step="run.log({'loss': a, 'acc': b, 'lr': c, 'grad_norm': d, 'step_time': e}, step=i)",
        durable="run.finish()", read="n = len(run.store.read_metric(run.id, 'loss'))",
    ),
    "TensorBoard SummaryWriter": dict(
        package="tensorboard",
        imports="from torch.utils.tensorboard import SummaryWriter",
        setup="w = SummaryWriter(log_dir=OUT)",
        step=("w.add_scalar('loss', a, i); w.add_scalar('acc', b, i); w.add_scalar('lr', c, i); "
              "w.add_scalar('grad_norm', d, i); w.add_scalar('step_time', e, i)"),
        durable="w.close()",
        read=("from tensorboard.backend.event_processing.event_accumulator import EventAccumulator\n"
              "acc = EventAccumulator(OUT, size_guidance={'scalars': 0}); acc.Reload(); n = len(acc.Scalars('loss'))"),
    ),
    "W&B offline": dict(
        package="wandb", imports="import wandb",
        setup="os.environ['WANDB_SILENT'] = 'true'; wr = wandb.init(mode='offline', dir=OUT, project='bench')",
        step="wandb.log({'loss': a, 'acc': b, 'lr': c, 'grad_norm': d, 'step_time': e}, step=i)",
        durable="wr.finish()", read="n = None  # offline runs are readable only after `wandb sync` to a server",
    ),
    "MLflow (async logging)": dict(
        package="mlflow", imports="import mlflow",
        setup=("mlflow.set_tracking_uri('sqlite:///' + OUT + '/mlflow.db'); "
               "mlflow.set_experiment('bench'); active = mlflow.start_run()"),
        step="mlflow.log_metrics({'loss': a, 'acc': b, 'lr': c, 'grad_norm': d, 'step_time': e}, step=i, synchronous=False)",
        durable="mlflow.end_run()",
        read="n = len(mlflow.MlflowClient().get_metric_history(active.info.run_id, 'loss'))",
    ),
    "Aim": dict(
        package="aim", imports="from aim import Run",
        setup="arun = Run(repo=OUT, experiment='bench', system_tracking_interval=None, log_system_params=False)",
        # one track call with a dict per step: Aim's own way of logging several metrics at once
        step="arun.track({'loss': a, 'acc': b, 'lr': c, 'grad_norm': d, 'step_time': e}, step=i)",
        durable="arun.close()",
        # Aim 3.29's query API returned no metrics here for runs it had just written;
        # reported as n/a rather than guessed.
        read=("from aim import Repo\n"
              "found = [m for m in Repo(OUT).query_metrics(\"metric.name == 'loss'\").iter()]\n"
              "n = len(found[0].values.values_numpy()[0]) if found else None"),
    ),
    "DVCLive": dict(
        package="dvclive", imports="from dvclive import Live",
        setup="live = Live(dir=OUT, save_dvc_exp=False, report=None)",
        step=("live.log_metric('loss', a); live.log_metric('acc', b); live.log_metric('lr', c); "
              "live.log_metric('grad_norm', d); live.log_metric('step_time', e); live.next_step()"),
        durable="live.end()",
        read="n = sum(1 for _ in open(os.path.join(OUT, 'plots', 'metrics', 'loss.tsv'))) - 1",
    ),
}

_SCRIPT = """
import json, os, sys, time, warnings
warnings.filterwarnings("ignore")
OUT = {out!r}
N = {steps}
t0 = time.perf_counter()
{imports}
import_s = time.perf_counter() - t0
{setup}
lat = [0] * N
clock = time.perf_counter_ns
loop_t0, cpu_t0 = time.perf_counter(), time.process_time()  # process_time: every thread of the process
for i in range(N):
    a, b, c, d, e = 1.0 / (i + 1), i / N, 3e-4, 0.5 + i % 7, 12.5
    start = clock()
    {step}
    lat[i] = clock() - start
t0 = time.perf_counter()
{durable}
durable_s = time.perf_counter() - t0
total_s, cpu_s = time.perf_counter() - loop_t0, time.process_time() - cpu_t0
t0 = time.perf_counter()
{read}
read_s = time.perf_counter() - t0
lat.sort()
print(json.dumps({{"import_s": import_s, "mean_us": sum(lat) / N / 1000, "p99_us": lat[int(N * 0.99)] / 1000,
                   "max_us": lat[-1] / 1000, "durable_s": durable_s, "read_s": read_s if n is not None else None,
                   "total_us": total_s / N * 1e6, "cpu_us": cpu_s / N * 1e6,
                   "read_points": n}}))
"""


def _measure_peer(name: str, spec: dict[str, str], workdir: Path, steps: int) -> dict:
    out = workdir / name.split()[0].lower().replace(".", "_")
    out.mkdir(parents=True, exist_ok=True)
    code = _SCRIPT.format(out=str(out), steps=steps, **{k: textwrap.indent(v, "") for k, v in spec.items() if k != "package"})
    result = json.loads(python_in_subprocess(code, env={"WANDB_MODE": "offline", "MLFLOW_ENABLE_ASYNC_LOGGING": "true"},
                                             timeout=1800).strip().splitlines()[-1])
    result["bytes"] = dir_bytes(out)
    result["version"] = package_version(spec["package"]) if spec["package"] else ""
    return result


_INGEST = """
import json, time
{preload}
import runpoint as rp
OUT, CALLS, KEYS = {out!r}, {calls}, {keys}
names = [f"m{{k}}" for k in range(KEYS)]
run = rp.init(project="ingest", root=OUT, console=False)
t0 = time.perf_counter()
for i in range(CALLS):
    run.log(dict.fromkeys(names, i * 0.5), step=i)
run.flush()
elapsed = time.perf_counter() - t0
run.finish()
print(json.dumps({{"points": CALLS * KEYS, "seconds": elapsed}}))
"""

_READ = """
import json, time, runpoint as rp
from runpoint import query
OUT, POINTS = {out!r}, {points}
run = rp.init(project="read", root=OUT, console=False)
for i in range(POINTS):
    run.log({{"loss": 1.0 / (i + 1)}}, step=i)
run.finish()
store = query.open_root(OUT)
best = float("inf")
for _ in range(5):
    t0 = time.perf_counter()
    series = store.read_metric(run.id, "loss")
    best = min(best, time.perf_counter() - t0)
assert len(series) == POINTS
t0 = time.perf_counter(); steps, values, times = series.to_numpy(); numpy_s = time.perf_counter() - t0
print(json.dumps({{"points": POINTS, "read_s": best, "bytes_per_point": None}}))
"""

_KILLED = """
import mmap, struct, time, runpoint as rp
run = rp.init(project="kill", id="victim", root={out!r}, console=False, system_metrics=False,
              flush_interval={interval})
with open({shared!r}, "r+b") as f:
    shared = mmap.mmap(f.fileno(), 16)
writer = run._writer
if not hasattr(writer, "longest_write_s"):  # an older runpoint, measured for comparison
    writer.longest_write_s = float("nan")
pack, clock = struct.pack_into, time.time
print("ready", flush=True)
step = 0
while True:  # as fast as Python can: 5 scalars per call, the wall time of each finished call shared
    run.log({{"loss": 1.0 / (step + 1), "acc": 0.5, "lr": 3e-4, "grad_norm": 1.0, "step_time": 0.01}}, step=step)
    pack("dd", shared, 0, clock(), writer.longest_write_s)
    step += 1
"""


def measure_kill_loss(workdir: Path, kills: int, interval: float = 0.5, seed: int = 0) -> dict:
    """SIGKILL a process logging at full speed ``kills`` times; what each kill lost, in seconds.

    The loss window of one kill is the wall time of the last log call that returned minus
    the time of the last point in the store. The kill comes at a random moment 1-2 s after
    logging started. Returns the p50/p99/max of the windows, how many exceeded
    ``interval``, and the longest single write the writers reported.
    """
    from runpoint.store.sqlite import SQLiteStore

    rng = random.Random(seed)
    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(src), os.environ.get("PYTHONPATH", "")) if p)}
    losses, writes = [], []
    for attempt in range(kills):
        out = workdir / f"kill-{attempt}"
        out.mkdir(parents=True)
        shared = out / "shared.bin"
        shared.write_bytes(bytes(16))
        code = _KILLED.format(out=str(out / "root"), shared=str(shared), interval=interval)
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=out, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"the logging child did not start: {proc.stderr.read()[-2000:] if proc.stderr else ''}")
            time.sleep(rng.uniform(1.0, 2.0))
        finally:
            proc.kill()
            proc.wait(30)
        with open(shared, "rb") as f:
            last_call, longest = struct.unpack("dd", mmap.mmap(f.fileno(), 16, access=mmap.ACCESS_READ)[:16])
        with SQLiteStore(out / "root" / "runpoint.db", create=False) as store:
            times = store.read_metric("victim", "loss").times
        losses.append(last_call - (times[-1] if len(times) else last_call))
        writes.append(longest)
    ordered = sorted(losses)
    return {
        "kills": kills, "flush_interval": interval,
        "p50_s": statistics.median(ordered),
        "p99_s": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "max_s": ordered[-1],
        "over_interval": sum(loss > interval for loss in losses),
        "longest_write_s": max(writes),
    }


_IMPORT = """
import time, json
t0 = time.perf_counter()
import runpoint
elapsed = time.perf_counter() - t0
print(json.dumps({"import_s": elapsed}))
"""


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def run(ctx: Context) -> Section:
    steps = ctx.size(5000, 500, 200)
    workdir = ctx.scratch("logging")
    results = measure_each(PEERS, lambda name, spec: _measure_peer(name, spec, workdir, steps), smoke=ctx.smoke)
    ours = results["runpoint"]
    rows, totals = [], []
    for name, r in results.items():
        if "error" in r:
            rows.append([name, "", "failed: " + r["error"], "", "", "", "", "", ""])
            continue
        totals.append([name, r["mean_us"], r["total_us"], r["cpu_us"],
                       "1.0x" if name == "runpoint" else f"{r['total_us'] / ours['total_us']:.1f}x",
                       "1.0x" if name == "runpoint" else f"{r['cpu_us'] / ours['cpu_us']:.1f}x"])
        ratio = r["mean_us"] / ours["mean_us"]
        rows.append([
            name, r["version"], r["mean_us"], r["p99_us"], r["max_us"],
            "1.0x" if name == "runpoint" else f"{ratio:.1f}x",
            r["durable_s"], "n/a" if r["read_s"] is None else r["read_s"], f"{r['bytes'] / steps:.0f}",
        ])
    caller = Table(
        ["tracker", "version", "mean µs/step", "p99 µs", "worst µs", "mean vs runpoint", "durable after (s)",
         "read 1 metric (s)", "bytes/step on disk"],
        rows,
        title=f"{steps} steps of 5 scalars each, one fresh process per tracker",
        note="`durable after` is the time from the last log call until the data is on disk (finish, close or "
             "end_run). W&B offline writes a local file that only `wandb sync` makes queryable.",
    )
    total = Table(
        ["tracker", "caller µs/step", "loop + finish µs/step (wall)", "process CPU µs/step", "wall vs runpoint",
         "CPU vs runpoint"],
        totals,
        title="What logging costs in all: the loop plus making the data durable, and CPU of every thread",
        note="The caller cost above is what the loop waits for; this is everything the process spends on logging: "
             "wall time from the first log call until finish/close returned, divided by the steps, and the process "
             "CPU time over the same span (time.process_time(), which counts runpoint's writer thread and every "
             "peer's background threads). Peers that hand points to another process (W&B's service) do work "
             "this does not count.",
    )
    fastest_peer = min(
        (r["mean_us"] for n, r in results.items() if "error" not in r and n not in {"runpoint", "list.append (floor)"}),
        default=float("nan"),
    )

    ingest_rows = []
    ingest_numbers = {}
    calls_keys = ctx.size([(200_000, 5), (40_000, 50)], [(20_000, 5), (20_000, 50)], [(2_000, 5), (400, 50)])
    # A PyTorch script has numpy loaded (torch imports it), and the writer then packs chunks
    # with it; a script without numpy gets the pure-Python path. Both are reported.
    for preload, label in (("import numpy", "numpy loaded (any PyTorch script)"), ("", "pure Python")):
        for calls, keys in calls_keys:
            rates = []
            for attempt in range(1 if ctx.smoke else 3):
                out = ctx.scratch(f"ingest-{keys}-{attempt}")
                code = _INGEST.format(out=str(out), calls=calls, keys=keys, preload=preload)
                r = json.loads(python_in_subprocess(code).strip())
                rates.append(r["points"] / r["seconds"])
            rate = sorted(rates)[len(rates) // 2]  # the median of three runs
            ingest_numbers[f"{keys}_keys_per_call/{'numpy' if preload else 'pure'}"] = rate
            ingest_rows.append([f"{keys} scalars per log call", label, f"{r['points']:,}", f"{rate:,.0f}",
                                "yes" if rate >= INGEST_TARGET else f"no ({rate / INGEST_TARGET:.2f}x of it)"])
    ingest = Table(["workload", "process", "points", "points/s (median of 3)", "target met"], ingest_rows,
                   title="Sustained ingest into the embedded store (log calls until flushed)",
                   note="Target: at least 1 000 000 points/s.")

    points = ctx.size(1_000_000, 100_000, 5_000)
    out = ctx.scratch("read")
    read = json.loads(python_in_subprocess(_READ.format(out=str(out), points=points)).strip())
    imports = [json.loads(python_in_subprocess(_IMPORT).strip())["import_s"] for _ in range(ctx.size(5, 5, 1))]
    crash = measure_kill_loss(ctx.scratch("kill"), kills=ctx.size(100, 5, 2))
    crash_table = Table(
        ["kills", "flush_interval", "lost p50", "lost p99", "lost max", "kills losing > interval", "longest write"],
        [[crash["kills"], f"{crash['flush_interval']} s", f"{crash['p50_s']:.3f} s", f"{crash['p99_s']:.3f} s",
          f"{crash['max_s']:.3f} s", crash["over_interval"], f"{crash['longest_write_s']:.3f} s"]],
        title="The crash bound: SIGKILL while logging 5 scalars per call as fast as possible",
        note="Lost: the wall time of the last log call that returned minus that of the last stored point. "
             "The documented bound is flush_interval plus one write's duration.",
    )
    read_table = Table(
        ["measure", "value", "target", "met"],
        [
            [f"read back {points:,} points of one metric", f"{read['read_s'] * 1000:.0f} ms", "< 200 ms for 1 000 000",
             _met(read["read_s"] < 0.2)],
            ["`import runpoint` (best of 5 fresh interpreters)", f"{min(imports) * 1000:.0f} ms", "< 150 ms",
             _met(min(imports) < 0.15)],
            ["caller cost vs the fastest peer", f"{fastest_peer / ours['mean_us']:.0f}x lower", "≥ 10x lower",
             _met(fastest_peer / ours["mean_us"] >= 10)],
        ] + [[f"ingest, {name}", f"{rate:,.0f} points/s", "≥ 1 000 000 points/s", _met(rate >= INGEST_TARGET)]
             for name, rate in ingest_numbers.items()],
    )
    return Section(
        TITLE,
        intro=__doc__.split("\n", 1)[1] if __doc__ else "",
        tables=[caller, total, ingest, read_table, crash_table],
        numbers={"steps": steps, "trackers": results, "ingest_points_per_s": ingest_numbers,
                 "read_points": points, "read_s": read["read_s"], "import_s": min(imports), "crash_loss": crash,
                 "python": sys.version.split()[0]},
    )
