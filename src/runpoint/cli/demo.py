"""``runpoint demo``: train a small network on scikit-learn's digits and record it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ..demo.digits import MAX_EPOCHS
from ._output import RootOption, console, fail, friendly_errors

if TYPE_CHECKING:
    from ..config.schema import ProjectConfig


def demo(
    overrides: Annotated[
        Optional[list[str]],
        typer.Argument(help="Config overrides like training.learning_rate=1e-2 model.hidden_sizes=[256,128].",
                       show_default=False),
    ] = None,
    root: RootOption = None,
    project: Annotated[Optional[str], typer.Option("--project", "-p", help="Project to record the run in. (default: demo)",
                                                   show_default=False)] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Run name (made up when omitted).")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", "-e", min=1, max=MAX_EPOCHS,
                                                  help="Training epochs. (default: 12)", show_default=False)] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Random seed. (default: 0)", show_default=False)] = None,
    config_file: Annotated[
        Optional[str],
        typer.Option("--config", "-c", help="A config file (YAML or JSON) merged over the demo's own config.",
                     show_default=False),
    ] = None,
    profile: Annotated[Optional[str], typer.Option("--profile", help="Profile merged over --config.", show_default=False)] = None,
    resume: Annotated[
        Optional[str],
        typer.Option("--resume", help="Continue a stopped demo run ('latest', a run id or a run name) from its latest checkpoint.",
                     show_default=False),
    ] = None,
) -> None:
    """Train an MLP on scikit-learn's digits (CPU, under a minute), record the run and checkpoint it."""
    from ..config.load import load_config
    from ..demo.digits import check_limits, demo_config, train

    if profile is not None and config_file is None:
        raise fail("--profile needs --config FILE", 2)
    if resume is not None:
        if overrides or config_file is not None:
            raise fail("--resume continues a run with the config it started with; drop the overrides and --config", 2)
        run = train(project=project, root=root, resume=resume)
    else:
        # the file, profile, RUNPOINT__ variables and overrides all sit on top of the demo's own config
        config: ProjectConfig = load_config(config_file, profile, overrides or (), defaults=demo_config())
        check_limits(config)  # before train() imports torch: a config over the limits fails fast
        run = train(config, epochs=epochs, project=project, name=name or None, root=root, seed=seed)
    summary = run.summary
    console.print(
        f"\n[bold green]done[/]: run [bold]{run.id}[/] ({run.name}) {run.status.value}, "
        f"best val/acc {summary['best/val_acc']:.3f}\n"
        f"  files:   {run.dir}\n"
        f"  next:    runpoint show {run.id}\n"
        f"           runpoint metrics {run.id} val/acc\n"
        f"           runpoint ls --columns metrics.val/acc\n"
        f"           runpoint export {run.id} --format csv\n"
        f"           runpoint ckpt ls {run.id}"
    , markup=True, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("demo")(friendly_errors(demo))
