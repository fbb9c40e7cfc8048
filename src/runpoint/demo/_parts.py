"""The torch pieces of the demo: the digits split into train/val/test, the MLP, its
optimizer and learning-rate schedule, and evaluation. Each takes the ``torch`` module (the
demo imports it only when it trains) and the config section it is built from.
"""

from __future__ import annotations

from typing import Any


def load_splits(torch: Any, load_digits: Any, data: Any, seed: int) -> dict[str, tuple[Any, Any]]:
    """The train, val and (with test_fraction) test splits of the digits, as (x, y) tensors."""
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32)
    if data.preprocessing.normalize:
        x = x / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_val, n_test = int(len(x) * data.val_fraction), int(len(x) * data.test_fraction)
    parts = {"val": order[:n_val], "test": order[n_val:n_val + n_test], "train": order[n_val + n_test:]}
    return {name: (x[idx], y[idx]) for name, idx in parts.items() if len(idx)}


_ACTIVATIONS = {"relu": "ReLU", "gelu": "GELU", "silu": "SiLU", "tanh": "Tanh", "sigmoid": "Sigmoid",
                "leaky_relu": "LeakyReLU", "elu": "ELU"}


def build_model(torch: Any, model: Any) -> Any:
    """The MLP ``model`` (the config's model section) describes, from 64 pixels to 10 classes."""
    layers: list[Any] = []
    width = 64
    for size in model.hidden_sizes:
        layers.append(torch.nn.Linear(width, size))
        if model.batch_norm:
            layers.append(torch.nn.BatchNorm1d(size))
        layers += [getattr(torch.nn, _ACTIVATIONS[model.activation])(), torch.nn.Dropout(model.dropout_rate)]
        width = size
    layers.append(torch.nn.Linear(width, 10))
    return torch.nn.Sequential(*layers)


def build_optimizer(torch: Any, parameters: Any, training: Any) -> Any:
    """The optimizer ``training.optimizer`` names, with its learning rate, weight decay and momentum."""
    lr, decay = training.learning_rate, training.weight_decay
    if training.optimizer in ("sgd", "rmsprop"):
        cls = torch.optim.SGD if training.optimizer == "sgd" else torch.optim.RMSprop
        return cls(parameters, lr=lr, momentum=training.momentum, weight_decay=decay)
    cls = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "adagrad": torch.optim.Adagrad}[training.optimizer]
    return cls(parameters, lr=lr, weight_decay=decay)


def build_scheduler(torch: Any, optimizer: Any, training: Any, total_steps: int) -> Any:
    """The learning-rate schedule ``training.scheduler`` names, over ``total_steps`` with its warm-up."""
    import math

    warmup = training.warmup_steps
    if training.scheduler == "onecycle":
        pct_start = min(max(warmup / total_steps, 0.01), 0.99) if warmup else 0.3  # OneCycle's own warm-up
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=training.learning_rate, total_steps=total_steps,
                                                   pct_start=pct_start)
    shape = training.scheduler

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min((step - warmup) / max(total_steps - warmup, 1), 1.0)
        if shape == "cosine":
            return 0.5 * (1 + math.cos(math.pi * progress))
        if shape == "linear":
            return 1.0 - progress
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def evaluate(torch: Any, model: Any, loss_fn: Any, split: tuple[Any, Any], batch_size: int) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` on ``split``, in batches of ``batch_size``."""
    x, y = split
    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            logits = model(x[start:start + batch_size])
            target = y[start:start + batch_size]
            loss_sum += float(loss_fn(logits, target)) * len(target)
            correct += int((logits.argmax(1) == target).sum())
    model.train()
    return loss_sum / len(x), correct / len(x)
