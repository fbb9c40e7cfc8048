"""runpoint's own diagnostics: the stderr handler (human by default, JSON on request, deferring to the
program's logging config), and each run's logs/runpoint.log holding that run's events and no other's."""

from __future__ import annotations

import json
import logging

import torch

import runpoint as rp
from runpoint.logs import JsonFormatter, Redactor, emit

from .conftest import run_script

WARN_SCRIPT = """
    import logging, runpoint as rp
    {setup}
    with rp.init(project="p", id="r1", console=False) as run:
        ckpt = rp.CheckpointManager(run, keep_last=1)
        ckpt.save(1, {{"w": [1.0]}})
        ckpt.save(2, {{"w": [2.0]}})
        logging.getLogger("runpoint.test").warning("runpoint: a warning of run %s", run.id, extra={{"run_id": run.id}})
"""


def test_default_stderr_is_human_warnings_only_and_defers_to_the_programs_logging_config(tmp_path, root) -> None:
    plain = run_script(tmp_path, root, WARN_SCRIPT.format(setup=""))
    assert plain.returncode == 0, plain.stderr
    assert plain.stderr == "runpoint: a warning of run r1\n"  # as Python's last resort wrote it: INFO events stay out

    (tmp_path / "again").mkdir()
    configured = run_script(tmp_path / "again", root / "other", WARN_SCRIPT.format(setup='logging.basicConfig(format="USER %(levelname)s %(message)s")'))
    assert configured.returncode == 0, configured.stderr
    assert configured.stderr == "USER WARNING runpoint: a warning of run r1\n"  # once, through the user's handler


def test_json_format_and_level_from_the_environment(tmp_path, root) -> None:
    result = run_script(tmp_path, root, WARN_SCRIPT.format(setup=""), RUNPOINT_LOG_FORMAT="json", RUNPOINT_LOG_LEVEL="info")
    assert result.returncode == 0, result.stderr
    entries = [json.loads(line) for line in result.stderr.splitlines()]  # every line is one JSON object
    assert all({"ts", "level", "logger", "event", "message"} <= set(entry) for entry in entries)
    commits = [entry for entry in entries if entry["event"] == "checkpoint.commit"]
    assert [c["step"] for c in commits] == [1, 2] and all(c["run_id"] == "r1" and c["bytes"] > 0 for c in commits)
    assert all(isinstance(c["seconds"], float) and c["path"].endswith(f"step-{c['step']:06d}") for c in commits)
    [deleted] = [entry for entry in entries if entry["event"] == "checkpoint.retention_deleted"]
    assert deleted["step"] == 1 and deleted["level"] == "INFO" and deleted["logger"] == "runpoint"
    assert [entry["event"] for entry in entries][0] == "run.start" and entries[-1]["event"] == "run.finish"
    warning = next(entry for entry in entries if entry["level"] == "WARNING")
    assert warning["message"] == "runpoint: a warning of run r1" and warning["logger"] == "runpoint.test"


def test_each_run_log_holds_its_own_events_only(root, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="runpoint")  # the user's level: INFO events still reach the run logs
    first = rp.init(project="p", id="first", root=root, console=False)
    second = rp.init(project="p", id="second", root=root, console=False)
    rp.CheckpointManager(first).save(10, {"w": torch.ones(2)})
    rp.CheckpointManager(second).save(20, {"w": torch.ones(2)})
    logger = logging.getLogger("runpoint.test")
    emit(logger, logging.WARNING, "test.unowned", "runpoint: belongs to no run")  # two runs open: to neither
    first.finish()
    emit(logger, logging.WARNING, "test.only_open", "runpoint: only one run is open")  # attributed to it
    second.finish()
    assert not [r for r in caplog.records if getattr(r, "event", None) == "checkpoint.commit"]  # below the user's level

    def events(run: rp.Run) -> list[dict]:
        return [json.loads(line) for line in (run.dir / "logs" / "runpoint.log").read_text().splitlines()]

    mine, theirs = events(first), events(second)
    [commit] = [e for e in mine if e["event"] == "checkpoint.commit"]
    assert commit["step"] == 10 and commit["run_id"] == "first" and commit["bytes"] > 0
    assert all(e.get("run_id") in (None, "first") for e in mine) and "test.unowned" not in {e["event"] for e in mine}
    assert [e["step"] for e in theirs if e["event"] == "checkpoint.commit"] == [20]
    assert "test.only_open" in {e["event"] for e in theirs} and "test.only_open" not in {e["event"] for e in mine}
    assert all(e.get("run_id") in (None, "second") for e in theirs)


def test_the_json_formatter_carries_extra_fields_and_redacts_the_message() -> None:
    record = logging.getLogger("runpoint.x").makeRecord(
        "runpoint.x", logging.ERROR, "f.py", 1, "token %s failed", ("sk-" + "a" * 30,), None,
        extra={"event": "x.failed", "run_id": "r", "step": 3, "seconds": float("inf"), "path": object()},
    )
    entry = json.loads(JsonFormatter(redact=Redactor.from_settings().redact).format(record))
    assert entry["message"] == "token [REDACTED:openai-key] failed" and entry["event"] == "x.failed"
    assert entry["step"] == 3 and entry["seconds"] == "inf" and entry["path"].startswith("<object")
