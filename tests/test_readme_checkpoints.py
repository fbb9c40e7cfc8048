"""The README's checkpoint example (examples/checkpoints.py) runs as written, and resumes when asked to."""

from __future__ import annotations

import re

import safetensors.torch

import runpoint as rp

from ._zygote import shared_torch_zygote
from .conftest import REPO

EXAMPLE = REPO / "examples" / "checkpoints.py"


def test_the_readme_shows_the_example_verbatim() -> None:
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    assert EXAMPLE.read_text() in blocks


def test_the_checkpoint_example_runs_and_resumes(tmp_path) -> None:
    zygote = shared_torch_zygote()
    env = {"RUNPOINT_ROOT": str(tmp_path / "runpoint")}
    code = EXAMPLE.read_text()
    pid = zygote.spawn(code, tmp_path / "first.log", env=env, cwd=tmp_path)
    assert zygote.wait(pid) == 0, (tmp_path / "first.log").read_text()
    assert set(safetensors.torch.load_file(tmp_path / "model.safetensors")) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    (run_dir,) = (tmp_path / "runpoint" / "ckpt-demo").iterdir()
    assert len(list((run_dir / "checkpoints").glob("step-*"))) in (3, 4)  # the last three, and the best

    assert 'resume=None' in code
    pid = zygote.spawn(code.replace('resume=None', 'resume="latest"'), tmp_path / "second.log", env=env, cwd=tmp_path)
    assert zygote.wait(pid) == 0, (tmp_path / "second.log").read_text()
    state = rp.load_checkpoint(run_dir / "checkpoints")
    assert state["sampler"]["epoch"] == 5  # the finished run had nothing left to do
