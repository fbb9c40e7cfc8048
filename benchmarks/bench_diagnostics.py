"""Diagnostics: what run.watch, histograms and the system sampler cost a training loop.

- **watch() overhead**: a small CNN (two conv layers and a linear head, batch 32 of 28x28
  on the CPU) trained step by step, with and without hooks. Conditions alternate in blocks
  within one process so that drift hits them alike. Every step's cost is the training loop
  thread's own CPU time (``time.thread_time``: what the loop pays, not inflated by other
  processes on a shared machine); steps that only pass the hooks and steps that compute
  statistics are summarised apart (medians), then amortized over the logging interval.
  The peer is ``wandb.watch`` (offline), measured the same way against ``wandb.log`` alone.
- **Histogram cost**: what ``run.log({"h": rp.Histogram(t)})`` costs the caller (a copy of
  the tensor), what the writer thread then spends counting the bins, and what the peers
  cost the caller, where the binning happens on the training loop's thread
  (TensorBoard's ``add_histogram``, ``wandb.log({"h": wandb.Histogram(...)})``).
- **System sampler**: the sampler thread's own CPU time per sample (``time.thread_time``),
  as a share of one core at the default 10 s interval and at 1 s.
"""

from __future__ import annotations

import json
import sys

from ._harness import Context, Section, Table, package_version, python_in_subprocess

TITLE = "Diagnostics: watch() overhead, histogram cost, system-sampler CPU share"

_CNN = """
import json, os, statistics, time, warnings
warnings.filterwarnings("ignore")
import torch
torch.manual_seed(0)
torch.set_num_threads(1)
OUT, ROUNDS, BLOCK = {out!r}, {rounds}, {block}
model = torch.nn.Sequential(
    torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
    torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(),
    torch.nn.Linear(32 * 16, 10))
x, y = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

def train_step():
    loss = torch.nn.functional.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.detach()
{setup}
plain = {{name: [] for name in CONDITIONS}}    # loop CPU time of steps that only pass the hooks
watched = {{name: [] for name in CONDITIONS}}  # ... and of steps that compute statistics
step = 0
for warm in range(30):
    train_step()
for _ in range(ROUNDS):
    for name, (attach, log, is_watched) in CONDITIONS.items():
        handle = attach()
        for index in range(BLOCK):
            start = time.thread_time()
            log(train_step(), step)
            (watched if is_watched(index) else plain)[name].append(time.thread_time() - start)
            step += 1
        detach(handle)
finish()
result = {{}}
for name, (_, _, is_watched) in CONDITIONS.items():
    typical = statistics.median(plain[name]) if plain[name] else statistics.median(watched[name])
    heavy = statistics.median(watched[name]) if watched[name] else typical
    share = sum(1 for i in range(BLOCK) if is_watched(i)) / BLOCK
    result[name] = {{"typical_us": typical * 1e6, "watched_us": heavy * 1e6,
                    "amortized_us": (typical + (heavy - typical) * share) * 1e6 if plain[name] else heavy * 1e6}}
print(json.dumps(result))
"""

_RUNPOINT_WATCH = """
import runpoint as rp
run = rp.init(project="watch", root=OUT, console=False, system_metrics=False)
def log(loss, step): run.log({"loss": loss}, step=step)
every_100 = lambda index: index % 100 == 0  # a fresh watcher's first backward pass is watched
CONDITIONS = {
    "no hooks (run.log only)": (lambda: None, log, lambda index: False),
    "watch(every=100)": (lambda: run.watch(model, every=100), log, every_100),
    "watch(every=100, histograms=True)": (lambda: run.watch(model, every=100, histograms=True), log, every_100),
    "watch(every=1)": (lambda: run.watch(model, every=1), log, lambda index: True),
}
def detach(handle):
    if handle is not None:
        handle.remove()
def finish():
    run.finish()
"""

_WANDB_WATCH = """
os.environ["WANDB_SILENT"] = "true"
import wandb
wr = wandb.init(mode="offline", dir=OUT, project="bench")
def log(loss, step): wandb.log({"loss": loss.item()}, step=step)
def attach_all():
    wandb.watch(model, log="all", log_freq=100)
    return True
def attach_gradients():
    wandb.watch(model, log="gradients", log_freq=100)
    return True
every_100 = lambda index: index % 100 == 99  # wandb counts up to log_freq, then logs
CONDITIONS = {
    "no hooks (wandb.log only)": (lambda: None, log, lambda index: False),
    "wandb.watch(log='gradients', log_freq=100)": (attach_gradients, log, every_100),
    "wandb.watch(log='all', log_freq=100)": (attach_all, log, every_100),
}
def detach(handle):
    if handle is not None:
        wandb.unwatch(model)
def finish():
    wr.finish()
"""

_HISTOGRAM = """
import json, os, statistics, time, warnings
warnings.filterwarnings("ignore")
import torch
torch.set_num_threads(1)
OUT, SIZES, REPEATS = {out!r}, {sizes}, {repeats}
{setup}
result = {{}}
for size in SIZES:
    tensor = torch.randn(size)
    caller, writer = [], []
    for i in range(REPEATS):
        caller_s, writer_s = log(tensor, i)
        caller.append(caller_s)
        if writer_s is not None:
            writer.append(writer_s)
    settle()
    result[size] = {{"caller_us": statistics.median(caller) * 1e6,
                    "writer_us": statistics.median(writer) * 1e6 if writer else None}}
finish()
print(json.dumps(result))
"""

_RUNPOINT_HISTOGRAM = """
import runpoint as rp
run = rp.init(project="hist", root=OUT, console=False, system_metrics=False)
def log(tensor, step):
    start = time.perf_counter()
    histogram = rp.Histogram(tensor)
    run.log({"h": histogram}, step=step)
    caller = time.perf_counter() - start
    run.flush()  # let the writer finish before timing its share on the side
    start = time.perf_counter()
    histogram.encode("h", step, 0.0)  # what the writer thread spent on this histogram
    return caller, time.perf_counter() - start
def settle():
    run.flush()
def finish():
    run.finish()
"""

_TENSORBOARD_HISTOGRAM = """
from torch.utils.tensorboard import SummaryWriter
w = SummaryWriter(log_dir=OUT)
def log(tensor, step):
    start = time.perf_counter()
    w.add_histogram("h", tensor, step)
    return time.perf_counter() - start, None
def settle():
    w.flush()
def finish():
    w.close()
"""

_WANDB_HISTOGRAM = """
os.environ["WANDB_SILENT"] = "true"
import wandb
wr = wandb.init(mode="offline", dir=OUT, project="bench")
def log(tensor, step):
    start = time.perf_counter()
    wandb.log({"h": wandb.Histogram(tensor.numpy())}, step=step)
    return time.perf_counter() - start, None
def settle():
    pass
def finish():
    wr.finish()
"""

_SAMPLER = """
import json, time
import runpoint as rp
from runpoint.diagnostics.system import SystemSampler
run = rp.init(project="system", root={out!r}, console=False, system_metrics=False)
sampler = SystemSampler(run, interval={interval})
sampler.start()
time.sleep({seconds})
sampler.stop()
run.finish()
print(json.dumps({{"samples": sampler.samples, "cpu_s": sampler.cpu_seconds,
                  "keys": len([k for k in run.store.metric_keys(run.id) if k.startswith("system/")])}}))
"""


def _run_json(code: str, env: dict[str, str] | None = None) -> dict:
    return json.loads(python_in_subprocess(code, env=env, timeout=1800).strip().splitlines()[-1])


def _watch_tables(ctx: Context) -> tuple[Table, dict]:
    rounds, block = (4, 100) if ctx.quick else (15, 100)
    numbers: dict = {}
    rows = []
    for tool, setup, package in (("runpoint", _RUNPOINT_WATCH, "runpoint"), ("W&B offline", _WANDB_WATCH, "wandb")):
        out = ctx.scratch(f"watch-{package}")
        try:
            result = _run_json(_CNN.format(out=str(out), rounds=rounds, block=block, setup=setup),
                               env={"WANDB_MODE": "offline"})
        except Exception as exc:  # a peer that cannot run is reported, not hidden
            rows.append([tool, "failed: " + str(exc).strip().splitlines()[-1][:150], "", "", ""])
            continue
        numbers[tool] = result
        baseline_name = next(iter(result))
        baseline = result[baseline_name]["typical_us"]
        for name, r in result.items():
            overhead = r["amortized_us"] - baseline
            first = name == baseline_name
            rows.append([tool if first else "", name, r["typical_us"], "" if first else r["watched_us"],
                         "" if first else f"{r['watched_us'] - r['typical_us']:+.0f}", r["amortized_us"],
                         "" if first else f"{overhead:+.0f}", "" if first else f"{100 * overhead / baseline:+.1f}%"])
    table = Table(["tracker", "condition", "plain step µs", "watched step µs", "watched − plain µs",
                   "amortized µs/step", "overhead µs/step", "overhead"], rows,
                  title=f"Small CNN, batch 32, CPU, one thread: {rounds} rounds of {block} steps per condition",
                  note="Overheads are against the same tracker's logging alone, so the cost of `log` itself "
                       "cancels out. `watched − plain` (two medians of one condition) is the steadiest figure on a "
                       "busy machine; the plain-step difference between conditions is mostly noise there. "
                       "W&B's watch logs on the 100th step after it is attached, runpoint's on the first.")
    return table, numbers


def _histogram_table(ctx: Context) -> tuple[Table, dict]:
    sizes = [10_000, 1_000_000]
    repeats = 10 if ctx.quick else 40
    numbers: dict = {}
    for tool, setup in (("runpoint", _RUNPOINT_HISTOGRAM), ("TensorBoard add_histogram", _TENSORBOARD_HISTOGRAM),
                        ("W&B offline wandb.Histogram", _WANDB_HISTOGRAM)):
        out = ctx.scratch("hist-" + tool.split()[0].lower())
        try:
            numbers[tool] = _run_json(_HISTOGRAM.format(out=str(out), sizes=sizes, repeats=repeats, setup=setup),
                                      env={"WANDB_MODE": "offline"})
        except Exception as exc:
            numbers[tool] = {"error": str(exc).strip().splitlines()[-1][:150]}
    ours = numbers["runpoint"]
    rows = []
    for tool, result in numbers.items():
        if "error" in result:
            rows.append([tool, "failed: " + result["error"], "", "", "", ""])
            continue
        for size in sizes:
            r = result[str(size)]
            ratio = r["caller_us"] / ours[str(size)]["caller_us"]
            rows.append([tool, f"{size:,}", r["caller_us"], "1.0x" if tool == "runpoint" else f"{ratio:.1f}x",
                         "" if r["writer_us"] is None else r["writer_us"],
                         "on the caller" if r["writer_us"] is None else "writer thread"])
    table = Table(["tracker", "values", "caller µs", "caller vs runpoint", "binning µs", "binning runs on"], rows,
                  title=f"Logging one histogram of a float32 CPU tensor (median of {repeats})")
    return table, numbers


def _sampler_table(ctx: Context) -> tuple[Table, dict]:
    seconds = 3 if ctx.quick else 20
    out = ctx.scratch("system")
    result = _run_json(_SAMPLER.format(out=str(out), interval=0.1, seconds=seconds))
    per_sample = result["cpu_s"] / max(result["samples"], 1)
    rows = [
        ["CPU time per sample", f"{per_sample * 1e3:.2f} ms", f"{result['keys']} metrics per sample"],
        ["share of one core, every 10 s (default)", f"{100 * per_sample / 10:.3f}%", "< 1%"],
        ["share of one core, every 1 s", f"{100 * per_sample / 1:.3f}%", ""],
    ]
    table = Table(["measure", "value", "target / note"], rows,
                  title=f"System sampler: {result['samples']} samples at 0.1 s, the thread's own CPU time")
    return table, {"samples": result["samples"], "cpu_s": result["cpu_s"], "per_sample_s": per_sample,
                   "share_at_10s": per_sample / 10, "share_at_1s": per_sample}


def run(ctx: Context) -> Section:
    print("  watch() on a small CNN ...", flush=True)
    watch, watch_numbers = _watch_tables(ctx)
    print("  histograms ...", flush=True)
    histograms, histogram_numbers = _histogram_table(ctx)
    print("  system sampler ...", flush=True)
    sampler, sampler_numbers = _sampler_table(ctx)
    versions = {name: package_version(name) for name in ("torch", "wandb", "tensorboard", "psutil")}
    return Section(
        TITLE,
        intro=(__doc__.split("\n", 1)[1] if __doc__ else "")
        + "\nVersions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v) + ".",
        tables=[watch, histograms, sampler],
        numbers={"watch_us_per_step": watch_numbers, "histogram": histogram_numbers, "sampler": sampler_numbers,
                 "python": sys.version.split()[0]},
    )
