"""The README's Python examples are files in examples/ that run as written."""

from __future__ import annotations

import re

from .conftest import REPO, run_script


def _readme_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)


def test_readme_shows_the_example_files_verbatim() -> None:
    blocks = _readme_blocks()
    for name in ("quickstart.py", "read_runs.py"):
        assert (REPO / "examples" / name).read_text() in blocks, name


def test_quickstart_then_read_runs(tmp_path) -> None:
    root = tmp_path / "runpoint"
    first = run_script(tmp_path, root, (REPO / "examples" / "quickstart.py").read_text())
    assert first.returncode == 0, first.stderr
    second = run_script(tmp_path, root, (REPO / "examples" / "read_runs.py").read_text())
    assert second.returncode == 0, second.stderr
    line = second.stdout.strip().splitlines()[-1]
    assert " completed 1000 points, last " in line
