"""``runpoint import``: bring runs into a root, from a run archive or from another tool.

    runpoint import run.tar.gz                        an archive made by `runpoint export RUN --archive`
    runpoint import tensorboard ./tb_logs             event files (runpoint.importers.tensorboard)
    runpoint import mlflow ./mlruns                   an MLflow tracking directory or URI (runpoint.importers.mlflow)

The importers of other tools live in ``runpoint.importers.<tool>``, each with
``import_runs(location, root=..., project=...) -> list[str]`` (the new run ids).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from .. import query
from ..artifacts.paths import resolve_root
from ..errors import RunExistsError
from ..store import open_store
from ._output import (
    JsonOption,
    RootOption,
    console,
    err_console,
    fail,
    friendly_errors,
    print_json,
)

TOOLS = ("tensorboard", "mlflow")


def _importer(tool: str) -> Any:
    try:
        return importlib.import_module(f"runpoint.importers.{tool}")
    except ImportError as exc:
        if exc.name in (f"runpoint.importers.{tool}", "runpoint.importers"):
            raise fail(f"importing from {tool} is not available in this runpoint (no runpoint.importers.{tool})")
        raise fail(f"importing from {tool} needs {exc.name}: pip install 'runpoint[{tool}]'")


def import_(
    source: Annotated[str, typer.Argument(help="A run archive file, or 'tensorboard' / 'mlflow'.", show_default=False)],
    location: Annotated[
        Optional[str], typer.Argument(help="With tensorboard or mlflow: the directory (or URI) to read.", show_default=False)
    ] = None,
    project: Annotated[Optional[str], typer.Option("--project", "-p", help="File the imported runs under this project.")] = None,
    root: RootOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import runs: a run archive (from `runpoint export RUN --archive`), TensorBoard logs or MLflow runs."""
    root_path = resolve_root(root)
    if source in TOOLS:
        if location is None:
            raise fail(f"give the {source} location to import: runpoint import {source} PATH", 2)
        module = _importer(source)
        run_ids = list(module.import_runs(location, root=root_path, project=project))
        if as_json:
            print_json({"source": source, "location": location, "runs": run_ids})
        else:
            err_console.print(f"imported {len(run_ids)} run(s) from {source} into {root_path}", markup=False)
            for run_id in run_ids:
                console.print(f"  {run_id}")
        return
    if location is not None:
        raise fail(f"{source!r} is an archive file; LOCATION is only for {' or '.join(TOOLS)}", 2)
    path = Path(source)
    if not path.is_file():
        raise fail(f"no such archive: {source} (or give {' / '.join(TOOLS)} and a location)")
    from ..query.archive import import_archive

    store = open_store(root_path)
    try:
        run = import_archive(path, store, project=project)
    except RunExistsError as exc:
        raise fail(f"run {exc.run_id} is in {root_path} already; delete it there first "
                   f"(runpoint rm {exc.run_id} --root {root_path}) or import into another --root")
    finally:
        store.close()
    if as_json:
        print_json(query.record_dict(run))
    else:
        err_console.print(
            f"imported run {run.id} ({escape(run.name)}, {run.status.value}) into {root_path / run.dir}", markup=False
        )


def recover(
    run: Annotated[str, typer.Argument(help="The run (id, name or 'latest') whose unstored points to store.", show_default=False)],
    root: RootOption = None,
) -> None:
    """Store the points a run could not store when it finished (a full disk): its unstored.jsonl."""
    from .._util.fs import write_atomic
    from ..run.spill import read_spill_line, spill_candidates

    store = query.open_root(root)
    try:
        record = query.resolve_run(store, run)
        files = spill_candidates(query.run_dir(store, record), record.id)
        if not files:
            raise fail(f"run {record.id} has no unstored points (no {query.run_dir(store, record) / 'unstored.jsonl'})")
        points = 0
        for path in files:
            lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            for index, line in enumerate(lines):
                try:
                    batch = read_spill_line(line, f"{path}:{index + 1}")
                except ValueError as exc:
                    raise fail(str(exc)) from None
                store.write(record.id, batch)  # one transaction
                points += sum(len(series) for series in batch.metrics.values())
                # what is stored leaves the file, so a recover that fails midway can be run again
                write_atomic(path, "".join(rest + "\n" for rest in lines[index + 1:]))
            path.unlink()
    finally:
        store.close()
    err_console.print(f"stored {points} point(s) of run {record.id} from {', '.join(map(str, files))}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("import")(friendly_errors(import_))
    app.command("recover")(friendly_errors(recover))

