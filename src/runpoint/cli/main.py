"""The ``runpoint`` command."""

from __future__ import annotations

import typer

from .._version import __version__
from . import (
    alerts,
    check,
    ckpt,
    config,
    demo,
    diagnostics,
    models,
    retention,
    runs,
    server,
    sync,
    transfer,
    ui,
)

app = typer.Typer(
    name="runpoint",
    help="Local-first experiment tracking, checkpoints and configs for PyTorch.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"runpoint {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Local-first experiment tracking, checkpoints and configs for PyTorch."""
    from ..logs.stderr import install

    install()  # runpoint's diagnostics as RUNPOINT_LOG_FORMAT / RUNPOINT_LOG_LEVEL ask


demo.register(app)
runs.register(app)
check.register(app)
ui.register(app)
diagnostics.register(app)
transfer.register(app)
config.register(app)
ckpt.register(app)
models.register_commands(app)
retention.register(app)
sync.register(app)
server.register(app)
alerts.register(app)


def main() -> None:
    app()
