"""Hostile config files: alias bombs, deep nesting, self-reference and oversized files fail fast and clearly.

Every reader goes through the one bounded loader: ``rp.load_config``, ``runpoint config``,
a run's ``config.yaml`` read by the dashboard, ``config diff`` and a resume. Each file is
just over its limit, so the tests stay fast.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pydantic import BaseModel, ConfigDict

import runpoint as rp
from runpoint._util.yaml import MAX_CONFIG_BYTES, MAX_CONFIG_DEPTH, MAX_CONFIG_NODES
from runpoint.errors import ConfigError

from ..conftest import cli
from ..dashboard_fixtures import running_server


def billion_laughs(levels: int = 9) -> str:
    """~450 bytes that stand for 9**9 (387 million) strings."""
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * 9) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


class Free(BaseModel):
    model_config = ConfigDict(extra="allow")


HOSTILE = {
    "billion-laughs": (billion_laughs(), f"more than {MAX_CONFIG_NODES:,} keys and values once its aliases"),
    "merge-laughs": (
        "a0: &a0 {x: 1, y: 2}\n"
        + "".join(f"a{i}: &a{i} {{<<: [{', '.join([f'*a{i - 1}'] * 9)}]}}\n" for i in range(1, 8)),
        "once its aliases",
    ),
    "deep-flow": ("a: " + "[" * 2000 + "]" * 2000 + "\n", f"nested deeper than {MAX_CONFIG_DEPTH} levels"),
    "deep-block": ("".join("  " * i + f"k{i}:\n" for i in range(200)), f"nested deeper than {MAX_CONFIG_DEPTH} levels"),
    "deep-through-aliases": (
        "".join(f"a{i}: &a{i} " + "[" * 40 + (f"*a{i - 1}" if i else "1") + "]" * 40 + "\n" for i in range(3)),
        "once its aliases",
    ),
    "self-reference": ("a: &a [*a]\n", "refers to the mapping or list it is inside of"),
    "self-reference-map": ("a: &a {b: {c: *a}}\n", "refers to the mapping or list it is inside of"),
    "many-keys": ("".join(f"k{i}: {i}\n" for i in range(MAX_CONFIG_NODES // 2 + 1)), f"more than {MAX_CONFIG_NODES:,} keys"),
    "huge-string": ("a: '" + "x" * MAX_CONFIG_BYTES + "'\n", f"larger than {MAX_CONFIG_BYTES:,} bytes"),
}


@pytest.mark.timeout(60)  # an alias bomb used to run for ever: fail instead of hanging
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_load_config_refuses_a_hostile_file_naming_the_limit(case: str, tmp_path: Path) -> None:
    text, fragment = HOSTILE[case]
    path = tmp_path / "base.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        rp.load_config(path)
    message = str(caught.value)
    assert fragment in message and "refused:" in message and "base.yaml" in message, message


def test_a_deep_json_config_is_refused_not_a_recursion_error(tmp_path: Path) -> None:
    path = tmp_path / "base.json"
    path.write_text('{"a": ' + "[" * 5000 + "]" * 5000 + "}")
    with pytest.raises(ConfigError, match=f"nested deeper than {MAX_CONFIG_DEPTH} levels"):
        rp.load_config(path)


def test_a_file_at_the_limits_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "base.yaml"
    nested = "[" * (MAX_CONFIG_DEPTH - 2) + "1" + "]" * (MAX_CONFIG_DEPTH - 2)
    path.write_text(f"defaults: &d {{lr: 0.1, steps: 3}}\nrun: {{<<: *d, steps: 4}}\ndeep: {nested}\n")
    config = rp.load_config(path, schema=Free)
    assert config.run == {"lr": 0.1, "steps": 4}


def _runpoint(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "RUNPOINT_ROOT"}
    # a bomb made these hang for ever: the timeout turns that into a failure
    return subprocess.run([sys.executable, "-m", "runpoint", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=60)


@pytest.mark.parametrize("command", ["validate", "show"])
def test_config_cli_refuses_an_alias_bomb_in_one_line(command: str, tmp_path: Path) -> None:
    (tmp_path / "bomb.yaml").write_text(billion_laughs())
    result = _runpoint("config", command, "bomb.yaml", cwd=tmp_path)
    assert result.returncode == 1, result.stdout
    assert "once its aliases" in result.stderr and "Traceback" not in result.stderr, result.stderr


def _bombed_run(root: Path) -> str:
    with rp.init(project="p", config={"lr": 0.1}, root=root, console=False, system_metrics=False) as run:
        run.log({"loss": 1.0}, step=0)
    (run.dir / "config.yaml").write_text(billion_laughs())
    return run.id


def test_the_dashboard_answers_the_page_of_a_run_with_a_bombed_config(root: Path) -> None:
    run_id = _bombed_run(root)
    with running_server(root) as server, httpx.Client(base_url=server.url, headers=server.auth, timeout=30) as client:
        page = client.get(f"/api/runs/{run_id}")
    assert page.status_code == 200
    assert page.json()["run"]["id"] == run_id and page.json()["config"] is None


def test_config_diff_and_resume_refuse_or_skip_a_bombed_run_config(root: Path) -> None:
    run_id = _bombed_run(root)
    diff = cli(root, "config", "diff", run_id, run_id)
    assert diff.returncode == 1 and "cannot read the config of run" in diff.stderr and "once its aliases" in diff.stderr
    with rp.init(project="p", resume=run_id, root=root, console=False, system_metrics=False) as run:
        assert run.config == {}  # the recorded config is unreadable: the resume goes on without it


def test_oversized_run_config_is_left_out_of_the_report(root: Path, tmp_path: Path) -> None:
    with rp.init(project="p", config={"lr": 0.1}, root=root, console=False, system_metrics=False) as run:
        run.log({"loss": 1.0}, step=0)
    (run.dir / "config.yaml").write_text("a: '" + "x" * MAX_CONFIG_BYTES + "'\n")
    out = tmp_path / "report.html"
    result = cli(root, "report", run.id, "--out", str(out))
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert "config.yaml is not shown" in text and "x" * 1000 not in text
