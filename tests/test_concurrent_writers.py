"""Four processes log 100 000 points each into one root at the same time: all land."""

from __future__ import annotations

import subprocess
import sys

from runpoint import query
from runpoint.store import RunStatus

from .conftest import child_env, write_script

WORKER = """
import sys, runpoint as rp
index = int(sys.argv[1])
with rp.init(project="load", id=f"w{index}", console=False) as run:
    for step in range(25_000):
        run.log({"a": step * 1.0, "b": float(index), "c": 0.5, "d": -1.0}, step=step)
print("done", index, flush=True)
"""


def test_four_processes_logging_100k_points_each_lose_nothing(tmp_path, root, store_at) -> None:
    script = write_script(tmp_path, WORKER)
    procs = [
        subprocess.Popen([sys.executable, str(script), str(i)], cwd=tmp_path, env=child_env(root),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(4)
    ]
    outputs = [proc.communicate(timeout=240) for proc in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
        assert "locked" not in err.lower() and "warning" not in err.lower(), err
    store = store_at()
    runs = query.list_runs(store, project="load")
    assert sorted(run.id for run in runs) == ["w0", "w1", "w2", "w3"]
    assert all(run.status is RunStatus.COMPLETED for run in runs)
    for index in range(4):
        stats = store.metric_stats(f"w{index}")
        assert sum(s.count for s in stats.values()) == 100_000
        a = store.read_metric(f"w{index}", "a")
        assert a.steps.tolist() == list(range(25_000))
        assert a.values.tolist() == [float(s) for s in range(25_000)]
        assert set(store.read_metric(f"w{index}", "b").values) == {float(index)}
    assert store._conn().execute("PRAGMA integrity_check").fetchone()[0] == "ok"
