"""``runpoint.init``: creating a new run, or resuming an existing one."""

from __future__ import annotations

import logging
import os
from typing import Any, Iterable, Sequence

from ..artifacts.paths import resolve_root
from ..config import mask_secrets, to_plain
from ..diagnostics import system
from ..distributed import current as current_ranks
from ..errors import InvalidArgumentError
from ..sinks.hub import SinkHub
from ..sinks.select import select_sinks
from ..store import open_store
from ..sync.pull import pull_for_resume
from ..sync.remote_root import attach_replicator, connect, open_spool, server_location
from ._console_settings import redactor_for, segment_bytes_for
from ._job import open_in_job
from ._open import (
    OpenRequest,
    check_identifier,
    find_for_resume,
    open_run,
    write_config,
)
from .alerting import alert_settings, attach_alerts
from .ranks import check_log_ranks
from .run import Run
from .run_log import run_opened
from .writer import Writer

__all__ = ["find_for_resume", "init"]

_write_config = write_config  # integrations write a run's config.yaml as rp.init does

logger = logging.getLogger("runpoint")

CONSOLE_ENV = "RUNPOINT_CONSOLE"


EXPERIMENT_FIELDS = ("project", "name", "group", "tags", "notes", "root")


def init(  # long: every argument is checked here, before anything is created
    project: str | None = None,
    name: str | None = None,
    config: Any = None,
    tags: Iterable[str] | None = None,
    notes: str | None = None,
    root: str | os.PathLike[str] | None = None,
    resume: str | None = None,
    *,
    id: str | None = None,
    group: str | None = None,
    console: bool | None = None,
    flush_interval: float = 0.5,
    system_metrics: float | bool | None = None,
    sinks: Sequence[Any] | None = None,
    log_ranks: str = "zero",
    distributed: bool = True,
    redact: Any = None,
    console_segment_bytes: int | None = None,
    alerts: Any = None,
) -> Run:
    """Start recording a run, or continue one with ``resume``.

    ``project``, ``name``, ``group``, ``tags``, ``notes`` and ``root`` that are not passed
    are taken from the config's ``experiment`` section when it has them (as
    :class:`~runpoint.ProjectConfig` does); ``project`` is required one way or the other.

    Args:
        project: groups runs; letters, digits, ``. _ -``.
        name: a readable name; one like ``swift-heron-7`` is made up when None.
        config: a dict, pydantic model (e.g. from ``rp.load_config``), dataclass or
            argparse Namespace. Stored whole in ``config.yaml`` and flattened
            (``training.learning_rate``) as searchable params; secrets (token, password,
            secret, api_key ..., pydantic ``SecretStr``) are masked.
        tags, notes: free-form labels and text.
        root: where runs live; ``$RUNPOINT_ROOT`` or ``./runpoint`` when None.
        resume: ``"<run id>"`` or ``"latest"`` (of ``project``) to append to that run;
            ``"allow"`` resumes the run ``id`` (or, without ``id``, the latest of
            ``project``) if there is one, else starts a new run, as W&B's ``resume="allow"``.
        id: a run id of your choosing; an existing one raises ``RunExistsError`` (unless
            ``resume="allow"``).
        group: groups runs of one sweep or study.
        console: capture stdout/stderr to ``logs/``; default on (``RUNPOINT_CONSOLE=0`` turns it off).
        redact: secrets replaced by ``[REDACTED:<kind>]`` in the console log, ``rp.Text`` and
            ``logs/runpoint.log`` before they are written: None (the config's ``experiment.redact``;
            by default the well-known secret formats), False (none), a list of regular expressions
            or ``{name: regex}`` (added), or ``{"builtin": bool, "emails": bool, "patterns": [...]}``.
        console_segment_bytes: size at which the console log continues in a new file, the old one
            becoming a zstd-compressed segment; default: ``experiment.console_segment_bytes``, 64 MiB.
        flush_interval: seconds between the writer's flushes; a SIGKILL loses at most this
            much plus the time one write takes (the writer holds back a faster caller).
        system_metrics: seconds between samples of CPU, memory, disk, network and GPU use
            (:mod:`runpoint.diagnostics.system`), or False for none; default: the config's
            ``experiment.log_system_metrics`` / ``system_metrics_interval`` where it sets
            them, else ``$RUNPOINT_SYSTEM_METRICS``, else 10.
        sinks: tools to mirror the run to: ``"tensorboard"``, ``"mlflow"``, ``"wandb"`` or sink
            objects (:mod:`runpoint.sinks`); added to the config's ``experiment.sinks`` and
            ``$RUNPOINT_SINKS``. A failing sink never stops training. Rank 0's only, in a job.
        log_ranks: in a multi-rank job, whose ``run.log`` points are stored: ``"zero"`` (rank
            0's) or ``"all"`` (rank N's too, as ``<key>@rank<N>``; see :meth:`Run.log`).
        alerts: the anomaly detectors and webhooks (:mod:`runpoint.alerts`): the config's
            ``experiment.alerts`` (all detectors on by default), with a dict given here merged
            over it, an ``AlertsConfig``, or False for no detectors and no webhooks.
        distributed: False records this process alone, as a single process would, in a
            multi-rank job too: for code that calls ``rp.init`` on one rank only (the
            Accelerate, Lightning and Hugging Face integrations do). With a process group,
            every rank must otherwise call ``rp.init``: rank 0 waits for the others.

    In a multi-rank job (torchrun, ``torch.distributed``) every rank calls ``rp.init`` alike
    and gets the same run: rank 0 creates or resumes it, the others open it. Call
    ``torch.distributed.init_process_group`` first; without a process group, the ranks
    meet on ``id=`` or on torchrun's job id (``TORCHELASTIC_RUN_ID``). With a group, the
    ranks' configs must be the same. Config, params, meta and summary are rank 0's; each
    rank writes its own ``logs/console.rank<N>.log``, and the run is ``completed`` once
    every rank is (the first rank to fail or be killed decides otherwise, naming itself).

    Example::

        with rp.init(project="digits", config={"lr": 3e-4}, tags=["mlp"]) as run:
            run.log({"train/loss": 0.25}, step=0)

        cfg = rp.load_config("configs/base.yaml", profile="prod")
        with rp.init(config=cfg) as run:     # project, name, tags... from cfg.experiment
            ...
    """
    plain = to_plain(config)
    given = {"project": project, "name": name, "group": group, "tags": tags, "notes": notes, "root": root}
    chosen = {**_experiment_fields(plain), **{key: value for key, value in given.items() if value is not None}}
    project, name, group, root = chosen.get("project"), chosen.get("name"), chosen.get("group"), chosen.get("root")
    tags, notes = chosen.get("tags", ()), chosen.get("notes", "")
    if project is None:
        raise InvalidArgumentError(
            "project", "is required: pass rp.init(project=...), or set experiment.project in the config"
        )
    check_identifier("project", project)
    tags = _check_tags(tags)
    if not isinstance(notes, str):
        raise InvalidArgumentError("notes", f"must be a string, got {type(notes).__qualname__}")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise InvalidArgumentError("name", "must be a non-empty string")
    if group is not None and (not isinstance(group, str) or not group):
        raise InvalidArgumentError("group", "must be a non-empty string")
    if not (isinstance(flush_interval, (int, float)) and 0 < flush_interval <= 60):
        raise InvalidArgumentError("flush_interval", "must be a number of seconds in (0, 60]")
    if console is None:
        console = os.environ.get(CONSOLE_ENV, "1").lower() not in {"0", "false", "no", "off"}
    if system_metrics is None:
        system_metrics = _system_metrics_from_config(config, plain)
    system_interval = system.interval_from(system_metrics)
    masked = mask_secrets(plain)
    chosen_sinks = select_sinks(sinks, masked)
    log_ranks = check_log_ranks("log_ranks", log_ranks)
    redactor = redactor_for(redact, plain)
    segment_bytes = segment_bytes_for(console_segment_bytes, plain)
    alert_config = alert_settings(alerts, plain)
    server = server_location(root)
    root_path, store = open_spool(server) if server else (resolve_root(root), None)
    if server and resume is not None and store is not None:  # a resume on a machine whose spool lacks the run
        pull_for_resume(connect(server), root_path, store, project=project, resume=resume, run_id=id)
    request = OpenRequest(
        store=store or open_store(root_path), root=root_path, project=project, name=name, masked=masked, tags=tags,
        notes=redactor.redact(notes), group=group, console=console, flush_interval=float(flush_interval),
        console_segment_bytes=segment_bytes, redactor=redactor,
    )
    ranks = current_ranks() if distributed else None
    if ranks is None:
        run = open_run(request, resume, id)
    else:
        run = open_in_job(ranks, request, resume, id, log_ranks)
    run_opened(run)
    if redactor.active and isinstance(run._writer, Writer):
        run._writer.redact_text = redactor.redact  # rp.Text, on the writer thread
    attach_alerts(run, alert_config, detect=run.rank == 0)  # rank 0 has the metrics; any rank may run.alert
    if server and run.rank == 0:
        attach_replicator(run, root_path, server)
    if chosen_sinks and run.rank == 0:  # before anything else writes, so the sinks see every point
        run._attach_sinks(SinkHub(run, chosen_sinks))
    if system_interval is not None:
        if ranks is None:
            system.start_sampler(run, system_interval)
        elif ranks.is_node_leader:  # one sampler per machine: rank 0's stores plain keys
            suffix = "" if ranks.host == run.store.get_run(run.id).host else f"@{ranks.host}"
            system.start_sampler(run, system_interval, key_suffix=suffix, emit=run._log_machine)
    return run


def _experiment_fields(plain: dict[str, Any]) -> dict[str, Any]:
    """The run's project, name, group, tags, notes and root as the config's experiment section sets them."""
    section = plain.get("experiment")
    if not isinstance(section, dict):
        return {}
    return {key: section[key] for key in EXPERIMENT_FIELDS if section.get(key) is not None}


def _system_metrics_from_config(config: Any, plain: dict[str, Any]) -> float | bool | None:
    """``system_metrics`` as the config's experiment section asks for it; None leaves it to the default.

    Only what the config sets itself counts (a pydantic model's ``model_fields_set``, a
    dict's keys): a schema default must not override ``$RUNPOINT_SYSTEM_METRICS``.
    """
    section = plain.get("experiment")
    if not isinstance(section, dict):
        return None
    explicit = getattr(getattr(config, "experiment", None), "model_fields_set", None)
    given = set(explicit) if explicit is not None else set(section)
    enabled = section.get("log_system_metrics") if "log_system_metrics" in given else None
    interval = section.get("system_metrics_interval") if "system_metrics_interval" in given else None
    if enabled is False:
        return False
    if interval is None:
        return True if enabled is True else None
    if enabled is None and system.interval_from(None) is None:
        return False  # the environment turned sampling off; the config only says how often
    return float(interval)


def _check_tags(tags: Iterable[str]) -> tuple[str, ...]:
    if isinstance(tags, str):
        raise InvalidArgumentError("tags", f"expected a list of strings, got the string {tags!r}")
    checked: list[str] = []
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip():
            raise InvalidArgumentError("tags", f"every tag must be a non-empty string, got {tag!r}")
        if tag not in checked:
            checked.append(tag)
    return tuple(checked)


