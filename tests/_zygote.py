"""A fork server for tests that start, kill and restart many training processes.

Importing torch and building the first optimizer (which imports ``torch._dynamo``)
takes seconds; a test that kills a trainer twenty times would spend most of its time
there. The server imports everything once, single-threaded, then forks a fresh child for
each script. Children are real processes: they are killed with real signals, and the
server only reaps them.

    with Zygote(prelude="import torch, runpoint") as zygote:
        pid = zygote.spawn("train()", log=tmp_path / "child.log", env={"RUNPOINT_ROOT": ...})
        os.kill(pid, signal.SIGKILL)
        assert zygote.wait(pid) == -signal.SIGKILL

Run as ``python _zygote.py PRELUDE``: reads JSON requests on stdin, answers on stdout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


class Zygote:
    def __init__(self, prelude: str, env: dict[str, str] | None = None) -> None:
        environment = dict(os.environ)
        environment.update(env or {})
        self._proc = subprocess.Popen(
            [sys.executable, str(HERE / "_zygote.py"), prelude], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=environment,
        )
        self._lock = threading.Lock()
        reply = self._read()
        if reply.get("ready") is not True:
            raise RuntimeError(f"the fork server did not start: {reply}")

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the fork server exited: {self._proc.stderr.read() if self._proc.stderr else ''}")
        return json.loads(line)

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            assert self._proc.stdin is not None
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
            return self._read()

    def spawn(self, code: str, log: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
        """Fork a child that runs ``code`` with stdout and stderr going to ``log``; its pid."""
        reply = self._ask({"op": "spawn", "code": code, "log": str(log), "env": env or {},
                           "cwd": str(cwd) if cwd else None})
        return int(reply["pid"])

    def wait(self, pid: int) -> int:
        """Reap the child; its exit code, or minus the signal that killed it."""
        return int(self._ask({"op": "wait", "pid": pid})["code"])

    def close(self) -> None:
        """Stop the server (its children were reaped by :meth:`wait`)."""
        if self._proc.poll() is None:
            self._proc.kill()  # nothing to flush: a clean interpreter exit would only cost seconds
        self._proc.wait()
        for stream in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> "Zygote":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


TORCH_PRELUDE = """
import torch, numpy, sklearn.datasets, runpoint, runpoint.checkpoint
import torch.distributed, torch.distributed.checkpoint, torch.distributed.checkpoint.state_dict
torch.set_num_threads(1)
torch.optim.AdamW([torch.zeros(1, requires_grad=True)]).state_dict()   # imports torch._dynamo once
"""
_shared: Zygote | None = None


def shared_torch_zygote() -> Zygote:
    """One server with torch, scikit-learn and runpoint imported, for the whole test session."""
    global _shared
    if _shared is None:
        import atexit

        _shared = Zygote(TORCH_PRELUDE)
        atexit.register(_shared.close)
    return _shared


def _child(request: dict[str, Any], namespace: dict[str, Any]) -> None:
    code = 1
    try:
        fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.environ.update(request["env"])
        if request["cwd"]:
            os.chdir(request["cwd"])
        exec(compile(request["code"], "<child>", "exec"), dict(namespace))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        sys.excepthook(*sys.exc_info())  # what a normal interpreter does with an uncaught error (runpoint hooks it)
    finally:
        try:
            import atexit

            atexit._run_exitfuncs()  # what a normal interpreter exit would do
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _serve(prelude: str) -> None:
    namespace: dict[str, Any] = {"__name__": "__child__"}
    exec(compile(prelude, "<prelude>", "exec"), namespace)
    threads = threading.active_count()
    print(json.dumps({"ready": threads == 1, "threads": threads}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "spawn":
            pid = os.fork()
            if pid == 0:
                _child(request, namespace)
            print(json.dumps({"pid": pid}), flush=True)
        elif request["op"] == "wait":
            _, status = os.waitpid(request["pid"], 0)
            print(json.dumps({"code": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    _serve(sys.argv[1])
