"""Hugging Face ``Trainer``: a callback that records the training into a runpoint run.

The run starts when training begins, with the ``TrainingArguments`` and the model's
config as its config (``training.learning_rate``, ``model.hidden_size``...), secrets
such as ``hub_token`` masked. Everything the Trainer logs is recorded at the Trainer's
global step, renamed as Hugging Face's own W&B callback does (``loss`` ->
``train/loss``, ``eval_loss`` -> ``eval/loss``); the end-of-training figures
(``train_runtime``...) go to the summary. Only the main process records. The run
finishes when training ends; a later ``trainer.evaluate()`` continues it.

Checkpoints: where the Trainer saved its last and best checkpoints is kept in the
summary (``checkpoint/last_path``, ``checkpoint/best_path``). With ``checkpoints=True``
each save of the Trainer is also committed as a runpoint checkpoint of the run (model,
optimizer, scheduler, trainer state and RNG states; atomic, verified, never pickled),
kept as the arguments ask: ``save_total_limit`` checkpoints, and the best by
``metric_for_best_model``.

Example::

    from transformers import Trainer
    from runpoint.integrations.hf import RunpointCallback

    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=val,
                      callbacks=[RunpointCallback(project="sst2")])
    trainer.train()
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Iterable, Sequence

from .._util.optional import require
from ..run.run import Run
from ..store.base import RunStatus
from ._common import add_params, split_values

__all__ = ["RunpointCallback"]

transformers = require("transformers", "hf", "runpoint.integrations.hf")

# what the Trainer logs once, at the end of training: summary values rather than points
END_OF_TRAINING = {"train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos", "train_loss"}


def metric_name(key: str) -> str:
    """The Trainer's log key as runpoint records it: ``eval_loss`` -> ``eval/loss``, ``loss`` -> ``train/loss``."""
    for prefix in ("eval", "test"):
        if key.startswith(prefix + "_"):
            return f"{prefix}/{key[len(prefix) + 1:]}"
    return key if "/" in key else f"train/{key}"


_CallbackBase: Any = transformers.TrainerCallback  # a base class from a module imported at run time


class RunpointCallback(_CallbackBase):
    """Records a ``Trainer``'s config and logs into runpoint.

    Args:
        project: the runpoint project.
        name: the run's name; None: ``args.run_name`` when set, else a generated one.
        tags, notes, root, sinks: passed to :func:`runpoint.init`.
        run: record into this run instead of starting one (it is then not finished here).
        checkpoints: also save each of the Trainer's checkpoints with
            :class:`~runpoint.CheckpointManager`; a dict of its keywords overrides the
            retention taken from the ``TrainingArguments``.
    """

    def __init__(
        self,
        project: str = "huggingface",
        *,
        name: str | None = None,
        tags: Iterable[str] = (),
        notes: str = "",
        root: str | os.PathLike[str] | None = None,
        sinks: Sequence[Any] | None = None,
        run: Run | None = None,
        checkpoints: bool | dict[str, Any] = False,
    ) -> None:
        self.project = project
        self.name = name
        self.init_kwargs: dict[str, Any] = dict(tags=tuple(tags), notes=notes, root=root, sinks=sinks)
        self.run = run
        self._owns_run = run is None
        self.checkpoints = checkpoints
        self.manager: Any = None  # the runpoint CheckpointManager, once the Trainer first saves

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        config: dict[str, Any] = {"training": args.to_dict()}
        model_config = getattr(model, "config", None)
        if model_config is not None and hasattr(model_config, "to_dict"):
            config["model"] = model_config.to_dict()
        if self.run is None:
            self._start(config, name=self.name or _run_name(args))
        else:
            add_params(self._active_run(), config)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        run = self._active_run()
        metrics, others = split_values(logs)
        for key in END_OF_TRAINING & metrics.keys():
            run.summary[metric_name(key)] = float(metrics.pop(key))
        if metrics:
            run.log({metric_name(key): value for key, value in metrics.items()}, step=state.global_step)
        for key, value in others.items():
            if isinstance(value, (str, bool)):
                run.summary[metric_name(key)] = value

    def on_save(self, args: Any, state: Any, control: Any, model: Any = None, optimizer: Any = None,
                lr_scheduler: Any = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        run = self._active_run()
        run.summary["checkpoint/last_path"] = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        if state.best_model_checkpoint:
            run.summary["checkpoint/best_path"] = str(state.best_model_checkpoint)
        if not self.checkpoints:
            return
        if self.manager is None or self.manager.run is not run:
            from ..checkpoint import CheckpointManager, LocalProcess

            options = self._retention(args)  # the main process alone saves the whole state: never sharded
            process = options.pop("process", None) or LocalProcess(options.get("rng", True))
            self.manager = CheckpointManager(run, process=process, **options)
        trainer_state = json.loads(json.dumps(dataclasses.asdict(state), default=str))  # as trainer_state.json
        saved: dict[str, Any] = {"model": model, "trainer_state": trainer_state}
        if optimizer is not None:
            saved["optimizer"] = optimizer
        if lr_scheduler is not None:
            saved["scheduler"] = lr_scheduler
        self.manager.save(state.global_step, saved, metrics=_latest_eval_metrics(state))

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.manager is not None:
            self.manager.wait()
        if state.is_world_process_zero and self.run is not None and self._owns_run:
            self.run.finish(RunStatus.COMPLETED)

    # -- helpers -----------------------------------------------------------------------

    def _start(self, config: dict[str, Any] | None, name: str | None = None, resume: str | None = None) -> Run:
        from ..run.start import init

        self.run = init(project=self.project, name=name, config=config, resume=resume, distributed=False,
                        **self.init_kwargs)
        return self.run

    def _retention(self, args: Any) -> dict[str, Any]:
        """CheckpointManager keywords as the TrainingArguments ask (``save_total_limit``, best metric)."""
        options: dict[str, Any] = {}
        if args.save_total_limit:
            options["keep_last"] = args.save_total_limit
        if args.metric_for_best_model:
            metric = args.metric_for_best_model
            options["monitor"] = metric_name(metric if metric.startswith("eval_") else f"eval_{metric}")
            options["mode"] = "max" if args.greater_is_better else "min"
            options["keep_best"] = 1
        if isinstance(self.checkpoints, dict):
            options.update(self.checkpoints)
        return options

    def _active_run(self) -> Run:
        """The run, continued if training already finished it (``trainer.evaluate()`` after ``train()``)."""
        if self.run is None:
            return self._start(None, name=self.name)
        if self.run.status is not RunStatus.RUNNING and self._owns_run:
            return self._start(None, resume=self.run.id)
        return self.run


def _run_name(args: Any) -> str | None:
    name = getattr(args, "run_name", None)
    if not name or name == getattr(args, "output_dir", None):  # older versions default it to output_dir
        return None
    return str(name)


def _latest_eval_metrics(state: Any) -> dict[str, float]:
    """The evaluation metrics most recently logged, named as runpoint records them."""
    for entry in reversed(state.log_history):
        if any(key.startswith("eval_") for key in entry):
            return {metric_name(key): float(value) for key, value in entry.items()
                    if key.startswith("eval_") and isinstance(value, (int, float)) and not isinstance(value, bool)}
    return {}
