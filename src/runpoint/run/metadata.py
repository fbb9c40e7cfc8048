"""What a run records about where and how it ran, captured once at start.

Nothing here imports torch or numpy: versions come from installed package metadata,
and CUDA details are read only from a torch the training script already imported, or
from ``nvidia-smi``.
"""

from __future__ import annotations

import getpass
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping

from .._util.git import git_state
from .._util.secrets import mask_argv

_ENV_KEYS = (
    "CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID", "SLURM_PROCID", "RANK", "LOCAL_RANK", "WORLD_SIZE",
    "PYTHONHASHSEED", "OMP_NUM_THREADS", "CUBLAS_WORKSPACE_CONFIG", "HOSTNAME",
)


def _packages() -> dict[str, str]:
    """Installed distributions by normalized name, read from ``*.dist-info`` directory names.

    Reading every METADATA file through importlib.metadata takes ~0.2 s in a large
    environment; the directory names carry name and version already.
    """
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.endswith(".dist-info"):
                stem = name[: -len(".dist-info")]
            elif name.endswith(".egg-info"):
                stem = name[: -len(".egg-info")]
            else:
                continue
            project, _, version = stem.partition("-")
            key = re.sub(r"[-_.]+", "-", project).lower()
            if version and key not in found:  # earlier sys.path entries win, as for imports
                found[key] = version.split("-py")[0]
    return dict(sorted(found.items()))


def _torch_info(packages: Mapping[str, str]) -> dict[str, Any] | None:
    version = packages.get("torch")
    if version is None:
        return None
    info: dict[str, Any] = {"version": version}
    torch = sys.modules.get("torch")  # only a torch the script imported itself
    if torch is not None:
        info["cuda"] = getattr(torch.version, "cuda", None)
        info["initial_seed"] = int(torch.initial_seed())
        try:
            if torch.cuda.is_available():
                info["cudnn"] = torch.backends.cudnn.version()
                info["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        except Exception as exc:  # a broken driver must not stop a run from starting
            info["cuda_error"] = str(exc)
    return info


def _gpus() -> list[dict[str, str]]:
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index,name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    gpus = []
    for line in out.strip().splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) == 4:
            gpus.append(dict(zip(("index", "name", "memory", "driver"), parts)))
    return gpus


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:
        return None


def find_seeds(params: Mapping[str, Any]) -> dict[str, Any]:
    """Config values whose last key segment mentions a seed (``training.seed``, ``data_seed``)."""
    return {key: value for key, value in params.items() if "seed" in key.rsplit(".", 1)[-1].lower()}


def capture(run_dir: Path, params: Mapping[str, Any]) -> dict[str, Any]:
    """Collect metadata; writes ``git.diff`` into ``run_dir`` when the tree is dirty."""
    packages = _packages()
    cwd = Path.cwd()
    git, diff = git_state(cwd)
    if git is not None and diff:
        (run_dir / "git.diff").write_bytes(diff)
        git["diff_file"] = "git.diff"
    seeds = find_seeds(params)
    torch_info = _torch_info(packages)
    if torch_info and "initial_seed" in torch_info:
        seeds["torch.initial_seed"] = torch_info["initial_seed"]
    return {
        "runpoint": packages.get("runpoint"),
        "host": socket.gethostname(),
        "user": _user(),
        "pid": os.getpid(),
        "os": platform.platform(),
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "argv": mask_argv(sys.argv),  # `api_key=...` on a command line must not land on disk
        "cwd": str(cwd),
        "cpu_count": os.cpu_count(),
        "torch": torch_info,
        "gpus": _gpus(),
        "git": git,
        "seeds": seeds,
        "env": {key: os.environ[key] for key in _ENV_KEYS if key in os.environ},
        "packages": packages,
        "started_at": time.time(),
    }
