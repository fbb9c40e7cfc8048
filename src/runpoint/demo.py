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

from .config._normalize import deep_merge
from .errors import RunpointError
from .run import Run

if TYPE_CHECKING:
    from .config.schema import ProjectConfig

# The values a person tunes, in the shape the dashboard's launch form starts from.
DEFAULT_CONFIG: dict[str, Any] = {
    "model": {"name": "digits-mlp", "hidden_sizes": [128, 64], "dropout_rate": 0.1},
    "training": {"epochs": 12, "batch_size": 64, "learning_rate": 3e-3, "weight_decay": 1e-4, "seed": 0},
    "data": {"dataset": "sklearn-digits", "val_fraction": 0.2},
}

# What the demo's code fixes (the model's shape, optimizer, schedule, loss) and how its runs are recorded.
_FIXED: dict[str, Any] = {
    "model": {"type": "mlp", "input_size": 64, "output_size": 10, "activation": "relu"},
    "training": {"optimizer": "adamw", "scheduler": "onecycle", "loss_function": "cross_entropy"},
    "experiment": {"project": "demo", "tags": ["demo", "mlp"], "notes": "runpoint demo: an MLP on scikit-learn's digits"},
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
    from .config.load import load_config

    cfg: ProjectConfig = load_config(defaults=deep_merge(deep_merge(_FIXED, DEFAULT_CONFIG), values or {}), env={})
    check_limits(cfg)
    return cfg


def check_limits(cfg: "ProjectConfig") -> None:
    """Raise :class:`~runpoint.ConfigError` when ``cfg`` would train longer or wider than the demo allows."""
    from .errors import ConfigError

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


def _require_extras() -> tuple[Any, Any]:
    try:
        import torch
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise RunpointError(
            f"the demo needs the torch extra ({exc.name} is missing): pip install 'runpoint[torch]'"
        ) from None
    return torch, load_digits


def _data(torch: Any, load_digits: Any, val_fraction: float, seed: int) -> tuple[Any, Any, Any, Any]:
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_val = int(len(x) * val_fraction)
    val, train_idx = order[:n_val], order[n_val:]
    return x[train_idx], y[train_idx], x[val], y[val]


def _model(torch: Any, hidden: list[int], dropout: float) -> Any:
    layers: list[Any] = []
    width = 64
    for size in hidden:
        layers += [torch.nn.Linear(width, size), torch.nn.ReLU(), torch.nn.Dropout(dropout)]
        width = size
    layers.append(torch.nn.Linear(width, 10))
    return torch.nn.Sequential(*layers)


def train(
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
    given, win over it. The demo reads the model's hidden sizes and dropout, the training batch
    size, learning rate, weight decay, epochs, max_steps and seed, and the validation split.

    The run checkpoints after every epoch (the last two, and the best by val/loss, are
    kept). ``resume="latest"`` (or a run id) continues a stopped demo run of ``project``
    from its latest checkpoint with the config it started with, exactly as if it had never
    stopped; a SIGTERM saves before the process exits.
    """
    torch, load_digits = _require_extras()
    import runpoint as rp
    from .checkpoint import ResumableSampler

    if resume is None:
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
        run = rp.init(config=cfg)  # project, name, tags, notes and root come from cfg.experiment
    else:
        if config is not None or epochs is not None or seed is not None:
            print("runpoint demo: a resumed run keeps the config it started with")
        run = rp.init(project=project or "demo", root=root, resume=resume)
        cfg = demo_config(run.config)
    with run:
        training = cfg.training
        torch.manual_seed(training.seed)
        torch.set_num_threads(min(2, torch.get_num_threads()))
        x_train, y_train, x_val, y_val = _data(torch, load_digits, cfg.data.val_fraction, training.seed)
        model = _model(torch, cfg.model.hidden_sizes, cfg.model.dropout_rate)
        optimizer = torch.optim.AdamW(model.parameters(), lr=training.learning_rate, weight_decay=training.weight_decay)
        steps_per_epoch = -(-len(x_train) // training.batch_size)
        epochs_to_run = training.epochs or -(-(training.max_steps or 1) // steps_per_epoch)
        total_steps = epochs_to_run * steps_per_epoch
        if training.max_steps is not None:
            total_steps = min(total_steps, training.max_steps)
            epochs_to_run = -(-total_steps // steps_per_epoch)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=training.learning_rate, total_steps=total_steps)
        sampler = ResumableSampler(len(x_train), seed=training.seed)
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(x_train, y_train), batch_size=training.batch_size, sampler=sampler,
            generator=sampler.generator,
        )
        loss_fn = torch.nn.CrossEntropyLoss()
        progress: dict[str, Any] = {"step": 0, "best_acc": 0.0}
        state = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "sampler": sampler, "progress": progress}

        ckpt = rp.CheckpointManager(run, keep_last=2, keep_best=1, monitor="val/loss", mode="min")
        restored = ckpt.restore(state)
        ckpt.save_on_preemption()  # SIGTERM / SIGUSR1: save at the next step boundary, then exit
        if verbose:
            print(f"runpoint demo: run {run.id} ({run.name}) -> {run.dir}")
            if restored is not None:
                print(f"runpoint demo: resumed from the checkpoint of step {ckpt.restored_step} (epoch {sampler.epoch + 1})")
        while sampler.epoch < epochs_to_run and progress["step"] < total_steps:
            epoch = sampler.epoch
            model.train()
            for x, y in loader:
                began = time.perf_counter()
                logits = model(x)
                loss = loss_fn(logits, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                lr = scheduler.get_last_lr()[0]
                scheduler.step()
                accuracy = (logits.argmax(1) == y).float().mean()
                run.log({
                    "train/loss": loss.detach(), "train/acc": accuracy, "train/lr": lr, "epoch": epoch,
                    "perf/step_time_ms": (time.perf_counter() - began) * 1000,
                }, step=progress["step"])
                progress["step"] += 1
                if ckpt.should_save(progress["step"] - 1):  # only after a preemption signal
                    ckpt.save(progress["step"] - 1, state)
                if progress["step"] >= total_steps:
                    break
            model.eval()
            with torch.no_grad():
                val_logits = model(x_val)
                val_loss = float(loss_fn(val_logits, y_val))
                val_acc = float((val_logits.argmax(1) == y_val).float().mean())
            last = progress["step"] - 1
            run.log({"val/loss": val_loss, "val/acc": val_acc}, step=last)
            progress["best_acc"] = max(progress["best_acc"], val_acc)
            ckpt.save(last, state, metrics={"val/loss": val_loss, "val/acc": val_acc})
            if verbose:
                print(f"epoch {epoch + 1:>2}/{epochs_to_run}  train/loss {float(loss.detach()):.4f}  "
                      f"val/loss {val_loss:.4f}  val/acc {val_acc:.3f}  (checkpoint step {last})", flush=True)
        run.summary["best/val_acc"] = progress["best_acc"]
        run.summary["steps"] = progress["step"]
    return run
