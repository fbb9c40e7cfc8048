"""The server benchmark's process management: whatever it started is gone when its block ends, even on failure."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from benchmarks._services import Services
from runpoint._devtools.pg_cluster import free_port

# A "server" with a worker process of its own, as uvicorn --workers has: the worker's pid goes to a file.
SERVER = """
import http.server, subprocess, sys
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open(sys.argv[2], "w").write(str(worker.pid))
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), http.server.SimpleHTTPRequestHandler).serve_forever()
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_a_server_and_its_workers_are_stopped_when_the_block_fails_and_a_dead_server_says_why(tmp_path):
    port, worker_file = free_port(), tmp_path / "worker.pid"
    with pytest.raises(RuntimeError, match="the benchmark failed"):
        with Services(tmp_path) as services:
            leader = services.spawn("fake", [sys.executable, "-c", SERVER, str(port), str(worker_file)],
                                    ready_url=f"http://127.0.0.1:{port}/", timeout=30)
            worker = int(worker_file.read_text())
            assert _alive(leader.pid) and _alive(worker)
            raise RuntimeError("the benchmark failed")
    assert leader.poll() is not None and not _alive(worker)

    with Services(tmp_path) as services:
        with pytest.raises(RuntimeError, match=r"broken exited with 3(.|\n)*no such config"):
            services.spawn("broken", [sys.executable, "-c", "import sys; print('no such config'); sys.exit(3)"],
                           port=free_port(), timeout=30)
    assert (tmp_path / "broken.log").read_text().strip() == "no such config"
