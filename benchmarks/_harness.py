"""What every benchmark module shares: result tables, timing helpers, machine facts.

A benchmark module is ``benchmarks/bench_<area>.py`` with ``TITLE`` (a heading) and
``run(ctx: Context) -> Section``. Peers are measured in the same run as runpoint, on
the same disk, and results are reported as ratios so that a slow or fast machine does
not change the story.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

T = TypeVar("T")


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Any]]
    title: str = ""
    note: str = ""

    def markdown(self) -> str:
        lines = []
        if self.title:
            lines.append(f"**{self.title}**\n")
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        for row in self.rows:
            lines.append("| " + " | ".join(fmt(cell) for cell in row) + " |")
        if self.note:
            lines.append(f"\n{self.note}")
        return "\n".join(lines)


@dataclass
class Section:
    title: str
    intro: str = ""
    tables: list[Table] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)  # raw figures, kept in docs/benchmarks.json

    def markdown(self) -> str:
        parts = [f"## {self.title}"]
        if self.intro:
            parts.append(self.intro.strip())
        parts.extend(table.markdown() for table in self.tables)
        return "\n\n".join(parts)


@dataclass
class Context:
    """Where a benchmark may write, and how hard it should try.

    ``quick`` shrinks the sizes (figures not worth publishing); ``smoke`` shrinks them to
    seconds in all and skips peers that are not installed: the test suite runs it so that a
    benchmark that no longer runs fails there, not months later.
    """

    workdir: Path
    quick: bool = False
    smoke: bool = False

    def size(self, full: T, quick: T, smoke: T) -> T:
        """The size for this mode: ``ctx.size(1_000_000, 100_000, 1_000)``."""
        return smoke if self.smoke else quick if self.quick else full

    def scratch(self, name: str) -> Path:
        path = self.workdir / name
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        if abs(value) >= 0.01:
            return f"{value:.3g}"
        return f"{value:.2e}"
    return str(value)


def best_of(repeats: int, fn: Callable[[], Any]) -> float:
    """Smallest wall time of ``repeats`` calls, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def median_of(repeats: int, fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def dir_bytes(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(dirpath, name))
            except OSError:
                pass
    return total


def package_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }
    try:
        with open("/proc/meminfo") as handle:
            info["memory_gib"] = round(int(handle.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        info["gpu"] = gpu or None
    except (OSError, subprocess.TimeoutExpired):
        info["gpu"] = None
    return info


def python_in_subprocess(
    code: str, env: dict[str, str] | None = None, timeout: float = 600, cwd: str | Path | None = None
) -> str:
    """Run ``code`` in a fresh interpreter (clean imports, clean caches); returns stdout.

    ``cwd`` defaults to a new scratch directory: some peers (DVCLive) write files into the
    working directory, or into the git repository around it.
    """
    workdir = Path(cwd) if cwd is not None else Path(tempfile.mkdtemp(prefix="runpoint-bench-cwd-"))
    src = Path(__file__).resolve().parents[1] / "src"
    pythonpath = os.pathsep.join(p for p in (str(src), os.environ.get("PYTHONPATH", "")) if p)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                            cwd=workdir, env={**os.environ, "PYTHONPATH": pythonpath,
                                              "GIT_CEILING_DIRECTORIES": str(workdir.parent), **(env or {})})
    if cwd is None:
        shutil.rmtree(workdir, ignore_errors=True)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return result.stdout


def measure_each(
    cases: Mapping[str, T], measure: Callable[[str, T], dict], *, ours: tuple[str, ...] = ("runpoint",),
    smoke: bool = False,
) -> dict[str, dict]:
    """``measure(name, case)`` for every case, in order.

    A peer that fails is reported as ``{"error": <its last line>}`` rather than hidden or
    stopping the others. A case of runpoint's own (names starting with one of ``ours``) that
    fails raises: the benchmark is broken, and must say so loudly. In smoke mode a peer that
    is not installed is left out, and any other peer failure raises too.
    """
    results: dict[str, dict] = {}
    for name, case in cases.items():
        print(f"  {name} ...", flush=True)
        try:
            results[name] = measure(name, case)
        except Exception as exc:
            message = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else repr(exc)
            if name.startswith(ours):
                raise
            if smoke:
                if "No module named" in message:
                    continue
                raise
            results[name] = {"error": message}
    return results


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports ru_maxrss in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def new_workdir(base: str | None = None) -> Path:
    return Path(tempfile.mkdtemp(prefix="runpoint-bench-", dir=base))


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
