"""``runpoint demo``: train a small network on scikit-learn's digits and record it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ._output import RootOption, console, fail, friendly_errors


def demo(
    root: RootOption = None,
    project: Annotated[str, typer.Option("--project", "-p", help="Project to record the run in.")] = "demo",
    name: Annotated[Optional[str], typer.Option("--name", help="Run name (made up when omitted).")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", "-e", min=1, max=1000, help="Training epochs (default 12).", show_default=False)] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Random seed (default 0).", show_default=False)] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML config shaped like the demo's (model, training, data), merged over its defaults.", show_default=False)] = None,
) -> None:
    """Train an MLP on scikit-learn's digits (CPU, under a minute) and record the run."""
    from ..demo import train

    overrides = _read_config(config) if config is not None else None
    run = train(epochs=epochs, project=project, name=name or None, root=root, seed=seed, config=overrides)
    summary = run.summary
    console.print(
        f"\n[bold green]done[/]: run [bold]{run.id}[/] ({run.name}) {run.status.value}, "
        f"best val/acc {summary['best/val_acc']:.3f}\n"
        f"  files:   {run.dir}\n"
        f"  next:    runpoint show {run.id}\n"
        f"           runpoint metrics {run.id} val/acc\n"
        f"           runpoint ls --columns metrics.val/acc\n"
        f"           runpoint export {run.id} --format csv"
    , markup=True, highlight=False)


def _read_config(path: Path) -> dict:
    import yaml

    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise fail(f"--config {path}: {exc}") from None
    if not isinstance(loaded, dict):
        raise fail(f"--config {path}: expected a mapping of sections (model, training, data)")
    return loaded


def register(app: typer.Typer) -> None:
    app.command("demo")(friendly_errors(demo))
