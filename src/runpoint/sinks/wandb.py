"""Mirror a run to Weights & Biases (online, or offline for a later ``wandb sync``).

The W&B run gets runpoint's run id as its id (so resuming the runpoint run resumes the
W&B run), the name, tags, notes, group and the full nested config; every scalar is
logged with its own step and wall time, and summary values go to the W&B summary.
Media become W&B's own types: ``wandb.Image``, ``wandb.Histogram`` and ``wandb.Table``
(a text is a one-cell table).

Steps: W&B drops points whose step goes backwards. runpoint's steps can (a resumed run
that rewinds, keys logged at their own cadence), so the step is logged as the metric
``runpoint/step`` and every chart uses it as its x axis: nothing is dropped.

W&B's own console capture is turned off (runpoint captures the console already); the
rest of W&B's configuration comes from its usual environment variables (``WANDB_MODE``,
``WANDB_API_KEY``, ``WANDB_ENTITY``...).

Example::

    from runpoint.sinks import WandbSink

    rp.init(project="digits", sinks=[WandbSink(mode="offline")])   # or sinks=["wandb"]
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Mapping

from .._util.optional import require
from .base import SinkBatch, SinkOptions, SinkRun, media_file

STEP_KEY = "runpoint/step"
_EXIT_CODE = {"completed": 0, "failed": 1, "killed": 143, "crashed": 1}


class WandbSink:
    """Logs a run to Weights & Biases.

    Args:
        project: the W&B project; None: ``$WANDB_PROJECT``, else the runpoint project.
        entity: the W&B team or user; None: W&B's default.
        mode: ``online``, ``offline`` or ``disabled``; None: ``$WANDB_MODE`` or W&B's default.
        dir: where W&B keeps its files; None: the run directory (``<run dir>/wandb``).
        options: how runpoint isolates the sink (:class:`SinkOptions`).
    """

    name = "wandb"
    package = "wandb"
    extra = "wandb"

    def __init__(
        self,
        project: str | None = None,
        entity: str | None = None,
        mode: str | None = None,
        dir: str | os.PathLike[str] | None = None,
        *,
        options: SinkOptions | None = None,
    ) -> None:
        if mode is not None and mode not in {"online", "offline", "disabled"}:
            raise ValueError(f"mode must be 'online', 'offline' or 'disabled', not {mode!r}")
        self.project = project
        self.entity = entity
        self.mode = mode
        self.dir = dir
        self.options = options or SinkOptions()
        self._run: Any = None
        self._run_dir = Path(".")

    def for_run(self) -> "WandbSink":
        """A fresh sink with these settings: the same object may be given to many runs."""
        return WandbSink(self.project, self.entity, self.mode, self.dir, options=self.options)

    def start(self, run: SinkRun) -> Mapping[str, Any]:
        wandb = require("wandb", self.extra, "the wandb sink")
        self._run_dir = run.dir
        if self._run is None:
            directory = os.fspath(self.dir) if self.dir is not None else str(run.dir)
            os.makedirs(directory, exist_ok=True)
            self._run = wandb.init(
                project=self.project or os.environ.get("WANDB_PROJECT") or run.project,
                entity=self.entity,
                mode=self.mode,
                dir=directory,
                id=str(run.previous.get("id") or run.id),
                name=run.name,
                notes=run.notes or None,
                group=run.group,
                tags=[tag[:64] for tag in run.tags],
                config=dict(run.config),
                resume="allow",
                reinit="create_new",  # several runs of one process each get their own W&B run
                settings=wandb.Settings(console="off", silent=True),
            )
            self._run.define_metric(STEP_KEY, hidden=True)
            self._run.define_metric("*", step_metric=STEP_KEY)
        wb = self._run
        return {
            "id": wb.id, "project": wb.project, "entity": getattr(wb, "entity", None) or None,
            "url": wb.url, "dir": wb.settings.sync_dir, "mode": wb.settings.mode,
        }

    def write(self, batch: SinkBatch) -> None:
        wb = self._run
        for step, wall, values in batch.rows():
            wb.log({**values, STEP_KEY: step, "_timestamp": wall})
        for record in batch.media:
            value = self._media_value(record)
            if value is not None:
                wb.log({record.key: value, STEP_KEY: record.step, "_timestamp": record.time})
        if batch.params:
            wb.config.update(dict(batch.params), allow_val_change=True)
        if batch.tags:
            wb.tags = tuple(dict.fromkeys((*wb.tags, *(tag[:64] for tag in batch.tags))))
        if batch.summary:
            wb.summary.update(dict(batch.summary))
        for key in batch.summary_deleted:
            try:
                del wb.summary[key]
            except KeyError:
                pass

    def _media_value(self, record: Any) -> Any:
        import wandb

        data, caption = record.data, record.data.get("caption")
        if record.kind == "image":
            png = media_file(record, self._run_dir)
            if png is None:
                return None
            from PIL import Image  # the media extra installed pillow to make the PNG

            with Image.open(io.BytesIO(png)) as image:
                return wandb.Image(image.copy(), caption=caption)
        if record.kind == "histogram":
            return wandb.Histogram(np_histogram=(data["counts"], data["edges"]))
        if record.kind == "text":
            return wandb.Table(columns=["text"], data=[[data["text"]]])
        if record.kind == "table":
            return wandb.Table(columns=data["columns"], data=data["rows"])
        return None

    def finish(self, status: str) -> None:
        self._run.finish(exit_code=_EXIT_CODE.get(status, 1))
