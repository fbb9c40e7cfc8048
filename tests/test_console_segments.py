"""Console logs rotate into zstd-compressed segments and every byte is read back, in order, by
runpoint show --console, the dashboard's console endpoint and a report; a kill -9 loses no
byte of a closed segment."""

from __future__ import annotations

import os
import signal
import sys
import time

from typer.testing import CliRunner

import runpoint as rp
from runpoint.cli.main import app
from runpoint.logs import rotation
from runpoint.logs.segments import (
    LocalLogFolder,
    _chunks_of,
    parts_of,
    read_log,
    tail_lines,
    tail_log,
)
from runpoint.run.console import ConsoleCapture

from .conftest import start_script

SEGMENT = 4096


def _printed(count: int) -> str:
    return "".join(f"line {i:06d} {'.' * (i % 97)}\n" for i in range(count))


def test_rotation_keeps_every_byte_in_order_across_segments(tmp_path, capsys) -> None:
    path = tmp_path / "logs" / "console.log"
    capture = ConsoleCapture(path, segment_bytes=SEGMENT)
    capture.start()
    text = _printed(2000) + "a line far longer than a segment " + "x" * (3 * SEGMENT) + "\n" + _printed(50)
    try:
        for start in range(0, len(text), 777):  # writes that cut lines anywhere, flushed now and then
            sys.stdout.write(text[start:start + 777])
            if start % 7 == 0:
                capture.flush()
    finally:
        capture.stop()
    capsys.readouterr()
    folder = LocalLogFolder(path.parent)
    names = sorted(folder.sizes())
    segments = [name for name in names if name.endswith(".zst")]
    assert len(segments) >= 20 and not [n for n in names if n.startswith(".")], names  # compressed, no leftovers
    assert read_log(folder, "console.log").decode() == text
    assert all(folder.sizes()[name] < SEGMENT for name in segments)  # compressed for real
    tail, total = tail_log(folder, "console.log", 10_000)  # reaches back over several segments
    assert total == len(text) and tail.decode() == text[-10_000:]
    assert tail_lines(folder, "console.log", 3) == "\n".join(text.splitlines()[-3:])


def test_without_zstandard_segments_stay_plain_and_it_is_said_once(tmp_path, monkeypatch, caplog, capsys) -> None:
    monkeypatch.setattr(rotation, "_compressor", rotation.Compressor())
    monkeypatch.setattr(rotation._compressor, "available", False)
    capture = ConsoleCapture(tmp_path / "console.log", segment_bytes=SEGMENT)
    capture.start()
    text = _printed(500)
    try:
        for line in text.splitlines(keepends=True):
            sys.stdout.write(line)
            capture.flush()
    finally:
        capture.stop()
    capsys.readouterr()
    names = LocalLogFolder(tmp_path).sizes()
    assert len(parts_of(names, "console.log")) > 5 and not [n for n in names if n.endswith(".zst")]
    assert read_log(LocalLogFolder(tmp_path), "console.log").decode() == text
    said = [r for r in caplog.records if getattr(r, "event", None) == "console.uncompressed"]
    assert len(said) == 1 and "zstandard is not installed" in said[0].getMessage()


KILLED_SCRIPT = """
    import sys, runpoint as rp
    run = rp.init(project="p", id="r1", console_segment_bytes=4096, flush_interval=0.05)
    i = 0
    while True:
        print(f"line {i:06d} " + "." * (i % 97))
        i += 1
"""


def test_kill_9_while_printing_loses_no_byte_of_a_closed_segment(tmp_path, root) -> None:
    process = start_script(tmp_path, root, KILLED_SCRIPT)
    logs = root / "p" / "r1" / "logs"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len([n for n in (os.listdir(logs) if logs.is_dir() else []) if ".log." in n]) < 8:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    folder = LocalLogFolder(logs)
    before = sorted(folder.sizes())
    closed = [name for name in parts_of(before, "console.log") if name != "console.log"]
    assert len(closed) >= 8, before
    text = read_log(folder, "console.log").decode()
    lines = text.splitlines(keepends=True)
    assert lines == _expected_lines(len(lines)), "a byte is missing, doubled or out of order"
    in_closed = sum(len(b"".join(_chunks_of(folder, name)).splitlines()) for name in closed)
    assert len(lines) >= in_closed > 0

    rotation.compress_leftovers(logs)  # what the next run to open the folder does
    assert rotation.compressor().wait(30)
    assert not [n for n in folder.sizes() if n.startswith(".") or (".log." in n and not n.endswith(".zst"))]
    assert read_log(folder, "console.log").decode() == text

    shown = CliRunner().invoke(app, ["show", "r1", "--root", str(root), "--console"])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout == text.replace("\r", "")


def _expected_lines(count: int) -> list[str]:
    return [f"line {i:06d} {'.' * (i % 97)}\n" for i in range(count)]


def test_readers_read_across_segments_cli_and_dashboard(root) -> None:
    from fastapi.testclient import TestClient

    from runpoint.server.app import create_app

    with rp.init(project="p", id="r1", root=root, console_segment_bytes=SEGMENT) as run:
        for i in range(1500):
            print(f"step {i} loss {1 / (i + 1):.6f}")
            if i % 100 == 0:
                run.flush()
    logs = LocalLogFolder(run.dir / "logs")
    expected = "".join(f"step {i} loss {1 / (i + 1):.6f}\n" for i in range(1500))
    assert len(parts_of(logs.sizes(), "console.log")) > 3
    assert read_log(logs, "console.log").decode() == expected

    tail = CliRunner().invoke(app, ["show", "r1", "--root", str(root), "--console", "-n", "2"])
    assert tail.exit_code == 0 and tail.stdout == "step 1498 loss 0.000667\nstep 1499 loss 0.000667\n"
    events = CliRunner().invoke(app, ["show", "r1", "--root", str(root), "--runpoint-log", "--json"])
    assert events.exit_code == 0 and '"event": "console.rotated"' in events.stdout

    client = TestClient(create_app(root, loopback_only=False))
    data = client.get("/api/runs/r1/console", params={"max_bytes": 10_000}).json()
    assert data["files"][0] == {"name": "console.log", "bytes": len(expected)} and data["file"] == "console.log"
    assert data["text"] == expected[-10_000:].partition("\n")[2] and data["truncated"]
    whole = client.get("/api/runs/r1/console", params={"max_bytes": 4_000_000}).json()
    assert whole["text"] == expected and not whole["truncated"]
    readable = client.get("/api/runs/r1/console", params={"file": "runpoint.log"}).json()
    assert "console.rotated" in readable["text"] and "run.finish" in readable["text"]
    assert client.get("/api/runs/r1/console", params={"file": "console.log.1.zst"}).status_code == 400
