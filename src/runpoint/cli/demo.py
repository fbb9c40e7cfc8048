"""``runpoint demo``: train a small network on scikit-learn's digits and record it."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ._output import RootOption, console, friendly_errors


def demo(
    root: RootOption = None,
    project: Annotated[str, typer.Option("--project", "-p", help="Project to record the run in.")] = "demo",
    name: Annotated[Optional[str], typer.Option("--name", help="Run name (made up when omitted).")] = None,
    epochs: Annotated[int, typer.Option("--epochs", "-e", min=1, max=1000, help="Training epochs.")] = 12,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
) -> None:
    """Train an MLP on scikit-learn's digits (CPU, under a minute) and record the run."""
    from ..demo import train

    run = train(epochs=epochs, project=project, name=name, root=root, seed=seed)
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


def register(app: typer.Typer) -> None:
    app.command("demo")(friendly_errors(demo))
