"""Sinks: what mirroring a run to TensorBoard, MLflow and W&B costs the training loop.

Each case runs in a fresh interpreter on the same disk and logs 5 scalars per step.
runpoint with sinks is measured against runpoint alone and against calling each tool
directly from the loop, as a script would without runpoint. Measured: the caller's time
per step (mean, p99, worst call), the time ``finish`` / ``close`` / ``end_run`` took, and
how many points reached the tool. A sink that hangs forever is in the table too: the
training loop must not notice it, and ``finish`` must wait no longer than the sink's
``finish_timeout``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ._harness import (
    Context,
    Section,
    Table,
    measure_each,
    package_version,
    python_in_subprocess,
)

TITLE = "Sinks: caller cost of mirroring to TensorBoard, MLflow and W&B (runpoint sinks vs the tools called directly)"

_HANGING = """
import threading
from runpoint.sinks import SinkOptions
class Hanging:
    name = "hanging"
    options = SinkOptions(call_timeout=2, finish_timeout=2)
    def start(self, run): return {}
    def write(self, batch): threading.Event().wait()
    def finish(self, status): pass
"""

_RUNPOINT_SETUP = "import runpoint as rp\nfrom runpoint.sinks import MLflowSink, WandbSink\n" + _HANGING

_RUNPOINT_STEP = "run.log({'loss': a, 'acc': b, 'lr': c, 'grad_norm': d, 'step_time': e}, step=i)"


def _runpoint_case(package: str, sinks: str | None, sent: str = "None") -> dict[str, str]:
    """A case that logs through ``rp.init(sinks=<sinks>)``; ``sent`` reads the points mirrored from external.json."""
    init = "run = rp.init(project='b', root=OUT + '/rp', console=False" + (f", sinks={sinks})" if sinks else ")")
    return dict(package=package, setup=_RUNPOINT_SETUP + init, step=_RUNPOINT_STEP, finish="run.finish()",
                sent=f"sent = {sent}")


def _points_sent(sink: str) -> str:
    return f"json.load(open(run.dir / 'external.json'))[{sink!r}]['points_sent']"


_MLFLOW_SINK = "MLflowSink(tracking_uri='sqlite:///' + OUT + '/mlflow.db')"
_WANDB_SINK = "WandbSink(mode='offline')"

# name -> (package for the version, setup, one step, finish, points that reached the tool)
CASES: dict[str, dict[str, str]] = {
    "runpoint, no sinks": _runpoint_case("runpoint", None),
    "runpoint + tensorboard sink": _runpoint_case("tensorboard", "['tensorboard']", _points_sent("tensorboard")),
    "runpoint + mlflow sink (sqlite)": _runpoint_case("mlflow", f"[{_MLFLOW_SINK}]", _points_sent("mlflow")),
    "runpoint + wandb sink (offline)": _runpoint_case("wandb", f"[{_WANDB_SINK}]", _points_sent("wandb")),
    "runpoint + all three sinks": _runpoint_case(
        "runpoint", f"['tensorboard', {_MLFLOW_SINK}, {_WANDB_SINK}]",
        "min(r['points_sent'] for r in json.load(open(run.dir / 'external.json')).values())",
    ),
    "runpoint + a sink that hangs forever": _runpoint_case("runpoint", "[Hanging()]", _points_sent("hanging")),
    "TensorBoard SummaryWriter, directly": dict(
        package="tensorboard", setup="from torch.utils.tensorboard import SummaryWriter\nw = SummaryWriter(log_dir=OUT)",
        step=("w.add_scalar('loss', a, i); w.add_scalar('acc', b, i); w.add_scalar('lr', c, i); "
              "w.add_scalar('grad_norm', d, i); w.add_scalar('step_time', e, i)"),
        finish="w.close()", sent="sent = None",
    ),
    "MLflow log_metrics, directly (sqlite)": dict(
        package="mlflow",
        setup=("import mlflow\nmlflow.set_tracking_uri('sqlite:///' + OUT + '/mlflow.db')\n"
               "mlflow.set_experiment('b')\nactive = mlflow.start_run()"),
        step="mlflow.log_metrics({'loss': a, 'acc': b, 'lr': c, 'grad_norm': d, 'step_time': e}, step=i)",
        finish="mlflow.end_run()", sent="sent = None",
    ),
    "wandb.log, directly (offline)": dict(
        package="wandb", setup="import wandb\nwr = wandb.init(mode='offline', dir=OUT, project='b')",
        step="wr.log({'loss': a, 'acc': b, 'lr': c, 'grad_norm': d, 'step_time': e}, step=i)",
        finish="wr.finish()", sent="sent = None",
    ),
}

_SCRIPT = """
import json, os, sys, time, warnings
warnings.filterwarnings("ignore")
OUT = {out!r}
N = {steps}
{setup}
lat = [0] * N
clock = time.perf_counter_ns
loop_start = time.perf_counter()
for i in range(N):
    a, b, c, d, e = 1.0 / (i + 1), i / N, 3e-4, 0.5 + i % 7, 12.5
    start = clock()
    {step}
    lat[i] = clock() - start
loop_s = time.perf_counter() - loop_start
t0 = time.perf_counter()
{finish}
finish_s = time.perf_counter() - t0
{sent}
lat.sort()
print(json.dumps({{"mean_us": sum(lat) / N / 1000, "p99_us": lat[int(N * 0.99)] / 1000, "max_us": lat[-1] / 1000,
                   "loop_s": loop_s, "finish_s": finish_s, "sent": sent}}))
"""


def _measure(name: str, spec: dict[str, str], workdir: Path, steps: int) -> dict:
    out = workdir / "".join(ch if ch.isalnum() else "_" for ch in name)
    out.mkdir(parents=True, exist_ok=True)
    code = _SCRIPT.format(out=str(out), steps=steps, setup=spec["setup"], step=spec["step"], finish=spec["finish"],
                          sent=spec["sent"])
    env = {"WANDB_SILENT": "true", "WANDB_MODE": "offline", "RUNPOINT_SINKS": ""}
    result = json.loads(python_in_subprocess(code, env=env, timeout=1800).strip().splitlines()[-1])
    result["version"] = package_version(spec["package"]) or ""
    return result


def run(ctx: Context) -> Section:
    steps = 500 if ctx.quick else 5000
    workdir = ctx.scratch("sinks")
    results = measure_each(CASES, lambda name, spec: _measure(name, spec, workdir, steps))
    alone = results["runpoint, no sinks"]
    rows = []
    for name, r in results.items():
        if "error" in r:
            rows.append([name, "", "failed: " + r["error"], "", "", "", "", ""])
            continue
        ratio = "1.0x" if "error" in alone else f"{r['mean_us'] / alone['mean_us']:.1f}x"
        sent = "" if r["sent"] is None else f"{r['sent']:,} / {steps * 5:,}"
        rows.append([name, r["version"], r["mean_us"], r["p99_us"], r["max_us"], ratio, r["finish_s"], sent])
    table = Table(
        ["case", "version", "mean µs/step", "p99 µs", "worst µs", "vs runpoint alone", "finish (s)", "points mirrored"],
        rows,
        title=f"{steps} steps of 5 scalars each, one fresh process per case",
        note="`finish` includes sending what is still queued to the sinks (each waits at most its "
             "`finish_timeout`, 30 s by default; 2 s for the hanging sink). The hanging sink mirrors nothing "
             "and is disabled after `call_timeout`; the loop's cost does not change.",
    )
    return Section(TITLE, intro=__doc__.split("\n", 1)[1] if __doc__ else "", tables=[table],
                   numbers={"steps": steps, "cases": results, "python": sys.version.split()[0]})
