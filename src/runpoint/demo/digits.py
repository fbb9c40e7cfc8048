"""The built-in demo: a small network learns scikit-learn's digits on the CPU.

It is what ``runpoint demo`` runs, and a template for a tracked training script: its
config is a :class:`~runpoint.ProjectConfig` (:func:`demo_config`), which ``rp.init``
records and takes the project, tags and notes from. It needs the ``torch`` extra (torch,
numpy, scikit-learn); no download happens, the digits ship inside scikit-learn.

Example::

    from runpoint.demo import demo_config, train
    run = train(epochs=3, root="/tmp/runs")
    run = train(rp.config.with_overrides(demo_config(), ["training.learning_rate=1e-2"]))
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, Mapping

from ..config.normalize import deep_merge
from ..errors import RunpointError
from ..run.run import Run
from ._parts import build_model, build_optimizer, build_scheduler, evaluate, load_splits

if TYPE_CHECKING:
    from ..config.schema import ProjectConfig

# The values a person tunes, in the shape the dashboard's launch form starts from.
DEFAULT_CONFIG: dict[str, Any] = {
    "model": {"name": "digits-mlp", "hidden_sizes": [128, 64], "dropout_rate": 0.1},
    "training": {"epochs": 12, "batch_size": 64, "learning_rate": 3e-3, "weight_decay": 1e-4, "seed": 0},
    "data": {"dataset": "sklearn-digits", "val_fraction": 0.2},
}

# What the demo's code fixes (the model's shape, loss) and how its runs are recorded and checkpointed.
_FIXED: dict[str, Any] = {
    "model": {"type": "mlp", "input_size": 64, "output_size": 10, "activation": "relu"},
    "training": {
        "optimizer": "adamw", "scheduler": "onecycle", "loss_function": "cross_entropy",
        "checkpoint": {"keep_last": 2, "keep_best": 1, "monitor": "val/loss", "mode": "min"},
    },
    "experiment": {"project": "demo", "tags": ["demo", "mlp"], "notes": "runpoint demo: an MLP on scikit-learn's digits",
                   "log_interval": 1},
}


# How big a demo may get: it is a CPU demo, and the dashboard launches it from a form.
MAX_EPOCHS = 1000
MAX_STEPS = 1_000_000
MAX_HIDDEN_LAYERS = 16
MAX_HIDDEN_SIZE = 16_384


def demo_config(values: Mapping[str, Any] | None = None) -> "ProjectConfig":
    """The demo's config (:data:`DEFAULT_CONFIG` and what the code fixes), ``values`` merged over it.

    A bad value, or one over the demo's limits (:func:`check_limits`), raises
    :class:`~runpoint.ConfigError` naming the field.
    """
    from ..config.load import load_config

    cfg: ProjectConfig = load_config(defaults=deep_merge(deep_merge(_FIXED, DEFAULT_CONFIG), values or {}), env={})
    check_limits(cfg)
    return cfg


def check_limits(cfg: "ProjectConfig") -> None:
    """Raise :class:`~runpoint.ConfigError` when ``cfg`` would train longer or wider than the demo allows."""
    from ..errors import ConfigError

    training, hidden = cfg.training, cfg.model.hidden_sizes
    problems = []
    if training.epochs is not None and training.epochs > MAX_EPOCHS:
        problems.append(f"training.epochs: the demo trains at most {MAX_EPOCHS} epochs, got {training.epochs}")
    if training.max_steps is not None and training.max_steps > MAX_STEPS:
        problems.append(f"training.max_steps: the demo trains at most {MAX_STEPS} steps, got {training.max_steps}")
    if len(hidden) > MAX_HIDDEN_LAYERS:
        problems.append(f"model.hidden_sizes: the demo has at most {MAX_HIDDEN_LAYERS} hidden layers, got {len(hidden)}")
    if any(size > MAX_HIDDEN_SIZE for size in hidden):
        problems.append(f"model.hidden_sizes: each layer is at most {MAX_HIDDEN_SIZE} wide, got {max(hidden)}")
    if problems:
        raise ConfigError(problems)


def checked_demo_config(values: Mapping[str, Any] | None = None) -> "ProjectConfig":
    """:func:`demo_config`, refusing (:class:`~runpoint.ConfigError`) a setting the demo cannot honour."""
    from .fields import check_demo_config

    config = demo_config(values)
    check_demo_config(config, demo_config())
    return config


def _require_extras() -> tuple[Any, Any]:
    try:
        import torch
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise RunpointError(
            f"the demo needs the torch extra ({exc.name} is missing): pip install 'runpoint[torch]'"
        ) from None
    return torch, load_digits


def _find_resumed(resume: str, project: str | None, root: Any) -> tuple[str, str]:
    """The (project, run id) to resume: ``latest`` of the project, or a run id, prefix or name."""
    from .. import query

    if resume == "latest":
        return project or "demo", resume
    store = query.open_root(root)
    try:
        record = query.resolve_run(store, resume)
    finally:
        store.close()
    return project or record.project, record.id


def _progress_bar(enabled: bool) -> Any:
    """A rich progress bar of the epoch's batches on a terminal; None otherwise."""
    import sys

    if not enabled or not sys.stdout.isatty():
        return None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("train/loss {task.fields[loss]}"), TimeElapsedColumn(), transient=True)


def _new_run_config(config: ProjectConfig | Mapping[str, Any] | None, *, epochs: int | None, seed: int | None,
                    project: str | None, name: str | None, root: str | os.PathLike[str] | None) -> ProjectConfig:
    """The config of a new demo run: ``config`` (or :func:`demo_config` over a partial one) with
    the keyword arguments that were given over it, refused if the demo cannot honour it."""
    from .fields import check_demo_config

    cfg = config.model_copy(deep=True) if hasattr(config, "model_copy") else demo_config(config)  # type: ignore[union-attr]
    if epochs is not None:
        cfg.training.epochs = epochs
    if seed is not None:
        cfg.training.seed = seed
    if project is not None:
        cfg.experiment.project = project
    if name is not None:
        cfg.experiment.name = name
    if root is not None:
        cfg.experiment.root = os.fspath(root)
    check_limits(cfg)
    check_demo_config(cfg, demo_config())  # before importing torch: a refusal is quick
    return cfg


def _step_budget(training: Any, drop_last: bool, examples: int) -> tuple[int, int, int]:
    """(steps per epoch, epochs to run, total steps) for ``examples`` training examples,
    bounded by ``training.epochs`` and ``training.max_steps``."""
    from ..errors import ConfigError

    batch_size = training.batch_size
    steps_per_epoch = examples // batch_size if drop_last else -(-examples // batch_size)
    if steps_per_epoch == 0:
        raise ConfigError(f"training.batch_size {batch_size} is larger than the {examples} "
                          "training examples and data.drop_last drops that one batch: lower the batch size")
    epochs_to_run = training.epochs or -(-(training.max_steps or 1) // steps_per_epoch)
    total_steps = epochs_to_run * steps_per_epoch
    if training.max_steps is not None:
        total_steps = min(total_steps, training.max_steps)
        epochs_to_run = -(-total_steps // steps_per_epoch)
    return steps_per_epoch, epochs_to_run, total_steps


def _print_start(run: Run, restored_step: int | None, finished: bool, epoch: int, epochs_to_run: int) -> None:
    """Where the run is recorded, and where a resumed run picks up (``restored_step`` None: a fresh start)."""
    print(f"runpoint demo: run {run.id} ({run.name}) -> {run.dir}")
    if restored_step is not None and finished:
        print(f"runpoint demo: run {run.id} already trained all {epochs_to_run} epochs "
              f"(checkpoint of step {restored_step}); nothing left to train")
    elif restored_step is not None:
        print(f"runpoint demo: resumed from the checkpoint of step {restored_step} "
              f"(epoch {epoch + 1}/{epochs_to_run})")


def train(  # long: the training loop of the demo, kept whole so that it reads top to bottom as a template
    config: "ProjectConfig | Mapping[str, Any] | None" = None,
    *,
    epochs: int | None = None,
    project: str | None = None,
    name: str | None = None,
    root: str | os.PathLike[str] | None = None,
    seed: int | None = None,
    resume: str | None = None,
    verbose: bool = True,
) -> Run:
    """Train the digits MLP, logging to a new run; returns the finished run.

    ``config`` is a :class:`~runpoint.ProjectConfig`, or a partial config (a mapping like
    :data:`DEFAULT_CONFIG`) merged over :func:`demo_config`; the keyword arguments, when
    given, win over it. Every field of the config acts (the model's shape and activation,
    optimizer, schedule, checkpoint policy, data split, logging...); one the demo cannot
    honour (another dataset, mixed precision...) raises :class:`~runpoint.ConfigError`
    before anything is recorded. See :mod:`runpoint.demo.fields`.

    The run checkpoints after every epoch and at ``training.checkpoint.save_steps``
    (by default the last two, and the best by val/loss, are kept). ``resume="latest"``
    (or a run id or name) continues a stopped demo run from its latest checkpoint with the
    config it started with, exactly as if it had never stopped; a SIGTERM saves before the
    process exits.
    """
    import runpoint as rp

    if resume is None:
        cfg = _new_run_config(config, epochs=epochs, seed=seed, project=project, name=name, root=root)
    torch, load_digits = _require_extras()
    from ..checkpoint import ResumableSampler

    if resume is None:
        run = rp.init(config=cfg)  # project, name, tags, notes, sinks and root come from cfg.experiment
    else:
        if config is not None or epochs is not None or seed is not None:
            print("runpoint demo: a resumed run keeps the config it started with")
        resumed_project, run_id = _find_resumed(resume, project, root)
        run = rp.init(project=resumed_project, root=root, resume=run_id)
        cfg = demo_config(run.config)
    with run:
        training, data, experiment = cfg.training, cfg.data, cfg.experiment
        cfg.optimization.apply_torch_settings()
        torch.manual_seed(training.seed)
        torch.set_num_threads(min(2, torch.get_num_threads()))
        splits = load_splits(torch, load_digits, data, training.seed)
        x_train, y_train = splits["train"]
        eval_batch = data.eval_batch_size or training.batch_size
        model = build_model(torch, cfg.model)
        optimizer = build_optimizer(torch, model.parameters(), training)
        steps_per_epoch, epochs_to_run, total_steps = _step_budget(training, data.drop_last, len(x_train))
        scheduler = build_scheduler(torch, optimizer, training, total_steps)
        sampler = ResumableSampler(len(x_train), shuffle=data.shuffle, seed=training.seed)
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(x_train, y_train), batch_size=training.batch_size, sampler=sampler,
            generator=sampler.generator, drop_last=data.drop_last,
        )
        loss_fn = torch.nn.CrossEntropyLoss()
        if experiment.log_gradients or experiment.log_parameters or experiment.log_histograms:
            run.watch(model, every=experiment.watch_interval, grads=experiment.log_gradients,
                      params=experiment.log_parameters, histograms=experiment.log_histograms,
                      max_grad_norm=training.max_grad_norm)
        progress: dict[str, Any] = {"step": 0, "best_acc": 0.0}
        state = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "sampler": sampler, "progress": progress}

        def validate() -> dict[str, float]:
            val_loss, val_acc = evaluate(torch, model, loss_fn, splits["val"], eval_batch)
            return {"val/loss": val_loss, "val/acc": val_acc}

        ckpt = rp.CheckpointManager(run, **training.checkpoint.manager_kwargs())
        restored = ckpt.restore(state)
        ckpt.save_on_preemption()  # SIGTERM / SIGUSR1: save at the next step boundary, then exit
        finished = sampler.epoch >= epochs_to_run or progress["step"] >= total_steps
        if verbose:
            _print_start(run, ckpt.restored_step if restored is not None else None, finished, sampler.epoch,
                         epochs_to_run)
        bar = _progress_bar(verbose)
        with bar if bar is not None else _nothing():
            while sampler.epoch < epochs_to_run and progress["step"] < total_steps:
                epoch = sampler.epoch
                done = progress["step"] - epoch * steps_per_epoch  # a resume can start mid-epoch
                task = bar.add_task("", total=steps_per_epoch, completed=done, epoch=f"{epoch + 1}/{epochs_to_run}",
                                    loss="-") if bar else None
                train_loss = "-"  # stays so when a resume starts at the end of an epoch
                model.train()
                for x, y in loader:
                    began = time.perf_counter()
                    logits = model(x)
                    loss = loss_fn(logits, y)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if training.max_grad_norm is not None:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), training.max_grad_norm)
                    optimizer.step()
                    lr = scheduler.get_last_lr()[0]
                    scheduler.step()
                    step = progress["step"]
                    if step % experiment.log_interval == 0:
                        accuracy = (logits.argmax(1) == y).float().mean()
                        run.log({
                            "train/loss": loss.detach(), "train/acc": accuracy, "train/lr": lr, "epoch": epoch,
                            "perf/step_time_ms": (time.perf_counter() - began) * 1000,
                        }, step=step)
                    progress["step"] += 1
                    train_loss = f"{float(loss.detach()):.4f}"
                    if bar is not None and task is not None:
                        bar.update(task, advance=1, loss=train_loss)
                    end_of_epoch = progress["step"] - epoch * steps_per_epoch >= steps_per_epoch
                    if progress["step"] >= total_steps:
                        break  # the end-of-epoch block below validates, logs and saves this step
                    # every save_steps steps, and after a preemption signal; an epoch's last step
                    # is saved below, after its val metrics are logged (a preemption there too)
                    if not end_of_epoch and ckpt.should_save(step):
                        ckpt.save(step, state, metrics=validate())
                metrics = validate()
                last = progress["step"] - 1
                run.log(metrics, step=last)
                progress["best_acc"] = max(progress["best_acc"], metrics["val/acc"])
                ckpt.save(last, state, metrics=metrics)
                if bar is not None and task is not None:
                    bar.remove_task(task)
                if verbose:
                    print(f"epoch {epoch + 1:>2}/{epochs_to_run}  train/loss {train_loss}  "
                          f"val/loss {metrics['val/loss']:.4f}  val/acc {metrics['val/acc']:.3f}  "
                          f"(checkpoint step {last})", flush=True)
        if "test" in splits and not finished:
            test_loss, test_acc = evaluate(torch, model, loss_fn, splits["test"], eval_batch)
            run.log({"test/loss": test_loss, "test/acc": test_acc}, step=progress["step"] - 1)
        run.summary["best/val_acc"] = progress["best_acc"]
        run.summary["steps"] = progress["step"]
    return run


def _nothing() -> Any:
    import contextlib

    return contextlib.nullcontext()
