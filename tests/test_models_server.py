"""The model registry against a real `runpoint server`: a run recorded there is registered and loaded by clients.

The checkpoint's files live in the server's object store; registering checks them there and
loading fetches them, on a machine whose spool never held the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("psycopg")

import runpoint as rp  # noqa: E402
from runpoint.server.accounts import Accounts  # noqa: E402

from .http_server_fixture import start_server_process, stop_server_process  # noqa: E402

TRAIN = """
import runpoint as rp, torch
with rp.init(project="team", console=False, system_metrics=False) as run:
    ckpt = rp.CheckpointManager(run, monitor="val/loss", mode="min")
    for step in (1, 2, 3):
        run.log({"val/loss": 1.0 / step}, step=step)
        ckpt.save(step, {"model": {"w": torch.arange(6.0) * step}}, metrics={"val/loss": 1.0 / step})
print("RUN", run.id)
"""


@pytest.mark.slow  # a server process and a training process: about 15 s
def test_a_server_runs_checkpoint_is_registered_and_loaded_bit_for_bit_elsewhere(postgres_url, tmp_path, monkeypatch):
    with Accounts(postgres_url) as accounts:
        accounts.add_user("ana")
        token = accounts.create_token("ana", "write", project="team").text
        stranger = accounts.create_token("ana", "write", project="other").text
    process, url = start_server_process(postgres_url, tmp_path, "--artifacts", str(tmp_path / "files"))
    try:
        env = {**os.environ, "RUNPOINT_ROOT": url, "RUNPOINT_TOKEN": token, "RUNPOINT_SPOOL": str(tmp_path / "a"),
               "PYTHONPATH": os.pathsep.join(sys.path)}
        trained = subprocess.run([sys.executable, "-c", TRAIN], env=env, capture_output=True, text=True, timeout=120)
        assert trained.returncode == 0, trained.stderr
        run_id = trained.stdout.split("RUN ")[-1].strip()

        monkeypatch.setenv("RUNPOINT_TOKEN", token)  # "machine B": another spool, the same server
        monkeypatch.setenv("RUNPOINT_SPOOL", str(tmp_path / "b"))
        version = rp.register_model("net", run_id, alias="champion", root=url)
        assert (version.ref, version.step, version.run_id, version.lineage["metric"]) == ("net:1", 3, run_id, "val/loss")
        state = {"model": {"w": torch.zeros(6)}}
        rp.load_model("net@champion", state, root=url)
        assert torch.equal(state["model"]["w"], torch.arange(6.0) * 3)
        assert not (tmp_path / "b").exists() or not any((tmp_path / "b").rglob("step-*"))  # fetched, not kept

        monkeypatch.setenv("RUNPOINT_TOKEN", stranger)  # another project's token reaches neither the run nor the model
        with pytest.raises((rp.errors.AccessDeniedError, rp.errors.ModelNotFoundError)):
            rp.load_model("net@champion", {"model": {"w": torch.zeros(6)}}, root=url)
    finally:
        stop_server_process(process)
