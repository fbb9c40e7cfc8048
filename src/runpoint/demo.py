"""The built-in demo: a small network learns scikit-learn's digits on the CPU.

It is what ``runpoint demo`` runs, and a template for a tracked training script.
It needs the ``torch`` extra (torch, numpy, scikit-learn); no download happens, the
digits ship inside scikit-learn.

Example::

    from runpoint.demo import train
    run = train(epochs=3, root="/tmp/runs")
"""

from __future__ import annotations

import os
import time
from typing import Any, Mapping

from .errors import RunpointError
from .run import Run

DEFAULT_CONFIG: dict[str, Any] = {
    "model": {"name": "digits-mlp", "hidden_sizes": [128, 64], "dropout_rate": 0.1},
    "training": {"epochs": 12, "batch_size": 64, "learning_rate": 3e-3, "weight_decay": 1e-4, "seed": 0},
    "data": {"dataset": "sklearn-digits", "val_fraction": 0.2},
}


def _merged_config(override: Mapping[str, Any]) -> dict[str, Any]:
    config = {section: dict(values) for section, values in DEFAULT_CONFIG.items()}
    for section, values in override.items():
        if section not in config or not isinstance(values, Mapping):
            raise RunpointError(f"demo config: unknown section {section!r} (known: {', '.join(config)})")
        unknown = set(values) - set(config[section])
        if unknown:
            raise RunpointError(f"demo config: unknown key {section}.{sorted(unknown)[0]}")
        config[section].update(values)
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
    *,
    epochs: int | None = None,
    project: str = "demo",
    name: str | None = None,
    root: str | os.PathLike[str] | None = None,
    seed: int | None = None,
    verbose: bool = True,
    config: Mapping[str, Any] | None = None,
) -> Run:
    """Train the digits MLP, logging to a new run; returns the finished run.

    ``config`` (shaped like :data:`DEFAULT_CONFIG`, sections merged over it) comes first;
    ``epochs`` and ``seed`` override it when given.
    """
    torch, load_digits = _require_extras()
    import runpoint as rp

    config = _merged_config(config or {})
    if epochs is not None:
        config["training"]["epochs"] = epochs
    if seed is not None:
        config["training"]["seed"] = seed
    seed = config["training"]["seed"]
    training = config["training"]
    torch.manual_seed(seed)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    x_train, y_train, x_val, y_val = _data(torch, load_digits, config["data"]["val_fraction"], seed)
    model = _model(torch, config["model"]["hidden_sizes"], config["model"]["dropout_rate"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=training["learning_rate"], weight_decay=training["weight_decay"])
    steps_per_epoch = -(-len(x_train) // training["batch_size"])
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=training["learning_rate"], total_steps=training["epochs"] * steps_per_epoch
    )
    loss_fn = torch.nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)

    with rp.init(project=project, name=name, config=config, tags=["demo", "mlp"], root=root,
                 notes="runpoint demo: an MLP on scikit-learn's digits") as run:
        if verbose:
            print(f"runpoint demo: run {run.id} ({run.name}) -> {run.dir}")
        step, best_acc = 0, 0.0
        for epoch in range(training["epochs"]):
            model.train()
            order = torch.randperm(len(x_train), generator=generator)
            for start in range(0, len(order), training["batch_size"]):
                began = time.perf_counter()
                batch = order[start:start + training["batch_size"]]
                logits = model(x_train[batch])
                loss = loss_fn(logits, y_train[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                lr = scheduler.get_last_lr()[0]
                scheduler.step()
                accuracy = (logits.argmax(1) == y_train[batch]).float().mean()
                run.log({
                    "train/loss": loss.detach(), "train/acc": accuracy, "train/lr": lr, "epoch": epoch,
                    "perf/step_time_ms": (time.perf_counter() - began) * 1000,
                }, step=step)
                step += 1
            model.eval()
            with torch.no_grad():
                val_logits = model(x_val)
                val_loss = float(loss_fn(val_logits, y_val))
                val_acc = float((val_logits.argmax(1) == y_val).float().mean())
            run.log({"val/loss": val_loss, "val/acc": val_acc}, step=step - 1)
            best_acc = max(best_acc, val_acc)
            if verbose:
                print(f"epoch {epoch + 1:>2}/{training['epochs']}  train/loss {float(loss.detach()):.4f}  "
                      f"val/loss {val_loss:.4f}  val/acc {val_acc:.3f}")
        run.summary["best/val_acc"] = best_acc
        run.summary["steps"] = step
    return run
