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


def test_the_install_line_installs_what_the_readme_then_uses() -> None:
    """`export --format parquet`, `plot`, `report` and `ui` each need an extra: the first command installs them."""
    import tomllib

    readme = (REPO / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", readme, flags=re.S).group(1)
    extras = re.search(r"pip install -e '\.\[([a-z,]+)\]'", first_block).group(1).split(",")
    optional = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    installed = {re.match(r"[A-Za-z0-9_.-]+", requirement).group(0) for extra in extras for requirement in optional[extra]}
    used = {"runpoint demo": "torch", "--format parquet": "pyarrow", "runpoint plot": "matplotlib",
            "runpoint report": "matplotlib", "runpoint ui": "fastapi", "rp.Image": "pillow"}
    for command, package in used.items():
        assert command in readme, command
        assert package in installed, f"{command} needs {package}, which {extras} does not install"
    assert "source .venv/bin/activate" in first_block and "apt-get install chromium" in first_block
