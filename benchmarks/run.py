"""Run every benchmark and write docs/benchmarks.md (and the raw figures to docs/benchmarks.json).

    python -m benchmarks.run                 # everything, full size
    python -m benchmarks.run --quick         # smaller sizes, figures not worth publishing
    python -m benchmarks.run --smoke         # tiny sizes, seconds: does every benchmark still run?
    python -m benchmarks.run --only logging  # modules whose name contains "logging"

Peers are installed by the ``bench`` extra: pip install -e '.[bench]'.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import shutil
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from ._harness import Context, Section, machine, new_workdir, write_json

ROOT = Path(__file__).resolve().parents[1]


def _modules(only: list[str]) -> list[str]:
    names = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.startswith("bench_"))
    if only:
        names = [n for n in names if any(o in n for o in only)]
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (figures not worth publishing)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, peers that are not installed left out: checks that every benchmark runs")
    parser.add_argument("--only", action="append", default=[], help="run modules whose name contains this")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--workdir", default=None, help="where scratch files go (default: a temp dir)")
    args = parser.parse_args(argv)

    workdir = new_workdir(args.workdir)
    ctx = Context(workdir=workdir, quick=args.quick or args.smoke, smoke=args.smoke)
    sections: list[Section] = []
    failures = 0
    started = time.time()
    for name in _modules(args.only):
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"== {name}: {module.TITLE}", flush=True)
        module_started = time.time()
        try:
            section = module.run(ctx)
        except Exception:
            failures += 1
            section = Section(module.TITLE, "**failed:**\n\n```\n" + traceback.format_exc() + "```")
            traceback.print_exc()
        sections.append(section)
        print(section.markdown(), "\n", flush=True)
        print(f"== {name} took {time.time() - module_started:.0f} s", flush=True)
    shutil.rmtree(workdir, ignore_errors=True)

    info = machine()
    header = [
        "# Benchmarks",
        "",
        "Written by `python -m benchmarks.run`" + (" --smoke" if args.smoke else " --quick" if args.quick else "")
        + f" on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC in {time.time() - started:.0f} s. "
        "Every figure in a section was measured in the same run, on the same disk, so compare "
        "ratios within a section rather than absolute numbers across machines.",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items() if v is not None) + ".",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(header) + "\n" + "\n\n".join(s.markdown() for s in sections) + "\n")
    write_json(args.out.with_suffix(".json"), {"machine": info, "sections": {s.title: s.numbers for s in sections}})
    print(f"wrote {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
