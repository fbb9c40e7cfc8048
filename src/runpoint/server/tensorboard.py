"""TensorBoard processes the dashboard starts: one per set of log directories, stopped with the dashboard.

:meth:`TensorBoards.open` starts ``tensorboard --logdir ... --host 127.0.0.1 --port <free>``
(``--logdir_spec name:dir,...`` for several runs) as a child process in its own process
group, waits until it answers, and returns its URL; asking again for the same directories
returns the same process while it lives. At most :data:`MAX_PROCESSES` run at once: one
more stops the one asked for least recently. :meth:`TensorBoards.stop_all` kills every
process group; the dashboard calls it at shutdown (the ASGI lifespan) and at exit.

TensorBoard has no authentication, so it only ever listens on 127.0.0.1; its output goes to
``<cache>/logs/tensorboard-<port>.log``.

Example::

    boards = TensorBoards(root / ".tensorboard")
    board = boards.open({"cnn-0": Path("runpoint/vision/abc123/tensorboard")})
    print(board.url)              # http://127.0.0.1:41234/
    boards.stop_all()
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Mapping

from ..errors import RunpointError

logger = logging.getLogger("runpoint.server")

MAX_PROCESSES = 4
START_TIMEOUT_S = 60.0  # TensorBoard takes seconds to import; a loaded machine may take many
STOP_WAIT_S = 3.0


@dataclass
class TensorBoard:
    """One TensorBoard child process: what it reads, where it listens."""

    spec: str  # the --logdir (one directory) or --logdir_spec (several) it was given
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    used_at: float = field(default_factory=time.monotonic)
    ready: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


class TensorBoards:
    """The TensorBoard processes of one dashboard (see the module docstring)."""

    def __init__(self, cache: Path, *, limit: int = MAX_PROCESSES, start_timeout_s: float = START_TIMEOUT_S) -> None:
        self.cache = cache
        self.limit = limit
        self.start_timeout_s = start_timeout_s
        self._lock = threading.Lock()
        self._boards: dict[str, TensorBoard] = {}
        atexit.register(self.stop_all)

    def running(self, logdirs: Mapping[str, Path]) -> TensorBoard | None:
        """The live process serving exactly ``logdirs``, if there is one."""
        with self._lock:
            board = self._boards.get(_spec(logdirs))
            return board if board is not None and board.alive() and board.ready.is_set() else None

    def open(self, logdirs: Mapping[str, Path]) -> tuple[TensorBoard, bool]:
        """The process serving ``logdirs`` (label -> directory), started if need be; (it, whether it was reused).

        Blocks until TensorBoard answers (seconds): call it from a worker thread.
        """
        if not logdirs:
            raise RunpointError("TensorBoard needs at least one log directory")
        spec = _spec(logdirs)
        with self._lock:
            board = self._boards.get(spec)
            reused = board is not None and board.alive()
            if not reused:
                self._make_room()
                board = self._boards[spec] = self._start(spec, several=len(logdirs) > 1)
            assert board is not None
            board.used_at = time.monotonic()
        self._wait_ready(board)
        return board, reused

    def stop_all(self) -> None:
        """Stop every TensorBoard this dashboard started (their whole process groups)."""
        with self._lock:
            boards, self._boards = list(self._boards.values()), {}
        for board in boards:  # all told at once, then waited for: each takes a second or so
            _signal(board, signal.SIGTERM)
        for board in boards:
            _stop(board)

    def _make_room(self) -> None:
        for spec, board in list(self._boards.items()):
            if not board.alive():
                del self._boards[spec]
        while len(self._boards) >= self.limit:
            spec, oldest = min(self._boards.items(), key=lambda item: item[1].used_at)
            logger.info("runpoint: stopping TensorBoard on port %d (at most %d run at once)", oldest.port, self.limit)
            del self._boards[spec]
            _stop(oldest)

    def _start(self, spec: str, *, several: bool) -> TensorBoard:
        port = _free_port()
        logs = self.cache / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"tensorboard-{port}.log"
        command = [sys.executable, "-m", "tensorboard.main", "--logdir_spec" if several else "--logdir", spec,
                   "--host", "127.0.0.1", "--port", str(port), "--reload_interval", "5"]
        with open(log_path, "wb") as log:
            process = _spawn(command, log)
        logger.info("runpoint: started TensorBoard (pid %d) on port %d for %s", process.pid, port, spec)
        return TensorBoard(spec, process, port, log_path)

    def _wait_ready(self, board: TensorBoard) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while not board.ready.is_set():
            if not board.alive():
                raise RunpointError(f"TensorBoard exited (code {board.process.returncode}): "
                                    f"{board.log_tail() or 'no output'}")
            if time.monotonic() > deadline:
                _stop(board)
                raise RunpointError(f"TensorBoard did not answer within {self.start_timeout_s:.0f} s: "
                                    f"{board.log_tail() or 'no output'}")
            try:
                with socket.create_connection(("127.0.0.1", board.port), timeout=0.5):
                    board.ready.set()
            except OSError:
                time.sleep(0.2)


def _spec(logdirs: Mapping[str, Path]) -> str:
    if len(logdirs) == 1:
        return str(next(iter(logdirs.values())).absolute())
    return ",".join(f"{label}:{path.absolute()}" for label, path in sorted(logdirs.items()))


def _spawn(command: list[str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, close_fds=True)  # its own group: killed as a whole
    except OSError as exc:
        raise RunpointError(f"cannot start TensorBoard: {exc}") from None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _signal(board: TensorBoard, sig: int) -> None:
    if board.process.poll() is None:
        try:
            os.killpg(board.process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _stop(board: TensorBoard) -> None:
    """SIGTERM to the process group, SIGKILL after :data:`STOP_WAIT_S`; reaps the child."""
    for sig, wait in ((signal.SIGTERM, STOP_WAIT_S), (signal.SIGKILL, STOP_WAIT_S)):
        if board.process.poll() is not None:
            break
        try:
            os.killpg(board.process.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        try:
            board.process.wait(wait)
        except subprocess.TimeoutExpired:
            continue
    try:  # children it left in its group (TensorBoard's data server)
        os.killpg(board.process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
