"""Real multi-rank jobs for tests: N processes in one gloo process group, on the CPU.

:func:`launch` forks the ranks from the shared fork server (torch already imported, so
a rank starts in a fraction of a second instead of seconds); each rank gets the
environment torchrun would give it (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``, ``TORCHELASTIC_RUN_ID``) and runs ``code`` after
``torch.distributed.init_process_group("gloo")`` unless ``init_group=False``. The ranks
are real processes: they talk over TCP on 127.0.0.1 and are killed with real signals.
:func:`torchrun` runs a script under the real ``torchrun``, for the tests about torchrun
itself (it costs seconds more per job).

    job = launch(code, 2, tmp_path, root)
    assert job.wait() == [0, 0], job.logs()
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ._zygote import Zygote, shared_torch_zygote
from .conftest import child_env, free_port, write_script

GROUP_PRELUDE = """
import torch.distributed as dist
dist.init_process_group("gloo")
"""


def _state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError):
        return None


@dataclass
class RankJob:
    zygote: Zygote
    pids: list[int]
    log_paths: list[Path]
    codes: list[int | None] = field(default_factory=list)

    def alive(self, rank: int) -> bool:
        return _state(self.pids[rank]) not in (None, "Z")

    def kill(self, rank: int, sig: int = signal.SIGKILL) -> None:
        os.kill(self.pids[rank], sig)

    def wait(self, timeout: float = 120) -> list[int]:
        """Every rank's exit code (minus the signal for a killed one); kills all and raises on timeout."""
        deadline = time.monotonic() + timeout
        while any(self.alive(rank) for rank in range(len(self.pids))):
            if time.monotonic() > deadline:
                for pid in self.pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                self.codes = [self.zygote.wait(pid) for pid in self.pids]
                raise AssertionError(f"the ranks did not end within {timeout}s:\n{self.logs()}")
            time.sleep(0.05)
        self.codes = [self.zygote.wait(pid) for pid in self.pids]
        return list(self.codes)  # type: ignore[arg-type]

    def log(self, rank: int) -> str:
        return self.log_paths[rank].read_text(errors="replace") if self.log_paths[rank].exists() else ""

    def logs(self) -> str:
        return "\n".join(f"--- rank {rank} ---\n{self.log(rank)[-3000:]}" for rank in range(len(self.pids)))

    def wait_for(self, rank: int, text: str, timeout: float = 60) -> None:
        """Wait until ``text`` appears in rank ``rank``'s output."""
        deadline = time.monotonic() + timeout
        while text not in self.log(rank):
            if not self.alive(rank) or time.monotonic() > deadline:
                raise AssertionError(f"rank {rank} did not print {text!r}:\n{self.logs()}")
            time.sleep(0.02)


def rank_env(rank: int, world: int, port: int, job_id: str, **extra: str) -> dict[str, str]:
    return {"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(world),
            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "TORCHELASTIC_RUN_ID": job_id,
            "GROUP_RANK": "0", "TORCHELASTIC_RESTART_COUNT": "0", **extra}


def launch(code: str, world: int, directory: Path, root: Path, *, init_group: bool = True, job_id: str | None = None,
           env: dict[str, str] | None = None, name: str = "job") -> RankJob:
    """Start ``world`` ranks running ``code`` (dedented) with RUNPOINT_ROOT=root, working in ``directory``."""
    zygote = shared_torch_zygote()
    port, job_id = free_port(), job_id or uuid.uuid4().hex
    body = (GROUP_PRELUDE if init_group else "") + textwrap.dedent(code)
    pids, logs = [], []
    for rank in range(world):
        log = directory / f"{name}.rank{rank}.log"
        log.unlink(missing_ok=True)
        environment = {"RUNPOINT_ROOT": str(root), "PYTHONUNBUFFERED": "1", **rank_env(rank, world, port, job_id),
                       **(env or {})}
        pids.append(zygote.spawn(body, log=log, env=environment, cwd=directory))
        logs.append(log)
    return RankJob(zygote, pids, logs)


def torchrun(directory: Path, root: Path, code: str, nproc: int, *args: str, timeout: float = 180,
             **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` as a script under ``torchrun --standalone --nproc_per_node nproc``."""
    script = write_script(directory, code, "train_ranks.py")
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", str(script), *args],
        cwd=directory, env=child_env(root, OMP_NUM_THREADS="1", **env), capture_output=True, text=True,
        timeout=timeout,
    )
