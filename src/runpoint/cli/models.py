"""``runpoint models``: list, show, register, alias, download and export registered models.

A model is named ``NAME`` (its latest version), ``NAME:VERSION`` or ``NAME@ALIAS``. Every
command takes ``--root`` (a directory or a server URL), as the others do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ._oserror import writing
from ._output import (
    JsonOption,
    RootOption,
    console,
    err_console,
    fail,
    fmt_number,
    fmt_time,
    friendly_errors,
    print_json,
)
from ._tables import print_table

app = typer.Typer(name="models", help="Registered models: versions with lineage, and aliases that move.",
                  no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]})
ModelArgument = Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.", show_default=False)]


def _open(root: Path | None) -> tuple[Any, Any]:
    from ..models import open_registry

    return open_registry(root)


def ls(root: RootOption = None, project: Annotated[Optional[str], typer.Option("--project", "-p")] = None,
       as_json: JsonOption = False) -> None:
    """The models with their latest version and aliases."""
    _, registry = _open(root)
    rows = []
    for model in registry.list_models(project):
        versions = registry.list_versions(model.name)
        aliases = {a.alias: a.version for a in registry.list_aliases(model.name)}
        latest = versions[-1] if versions else None
        rows.append({"name": model.name, "project": model.project, "versions": len(versions),
                     "latest": latest.version if latest else None, "aliases": aliases,
                     "updated_at": latest.registered_at if latest else model.created_at})
    if as_json:
        print_json(rows)
        return
    if not rows:
        err_console.print("no models yet (runpoint models register NAME RUN, or rp.register_model)", markup=False)
        return
    table = Table(box=None, header_style="bold")
    for heading in ("model", "project", "latest", "versions", "aliases", "registered"):
        table.add_column(heading)
    for row in rows:
        named = ", ".join(f"{a}→{v}" for a, v in sorted(row["aliases"].items()))
        table.add_row(escape(row["name"]), escape(row["project"]), fmt_number(row["latest"]), str(row["versions"]),
                      escape(named), fmt_time(row["updated_at"]))
    print_table(console, table)


def show(model: ModelArgument, root: RootOption = None, as_json: JsonOption = False,
         show_all: Annotated[bool, typer.Option("--all", help="Also list deleted versions.")] = False) -> None:
    """A model's versions, aliases and alias history; with :V or @ALIAS, that version's lineage."""
    from ..models import aliases_by_version, as_dict, parse_model_ref, resolve_version

    store, registry = _open(root)
    ref = parse_model_ref(model)
    aliases = aliases_by_version(registry, ref.name)
    history = registry.alias_history(ref.name)
    one = resolve_version(registry, ref) if ref.version is not None or ref.alias is not None else None
    versions = [one] if one is not None else registry.list_versions(ref.name, include_deleted=show_all)
    if as_json:
        print_json({"model": {**registry.get_model(ref.name).__dict__}, "versions": [as_dict(v, aliases) for v in versions],
                    "history": [e.__dict__ for e in history]})
        return
    if one is not None:
        _print_lineage(store, one, aliases)
    else:
        table = Table(box=None, header_style="bold")
        for heading in ("version", "aliases", "run", "step", "metric", "registered", "by", "description"):
            table.add_column(heading)
        for v in versions:
            metric = v.lineage.get("metric")
            value = f"{metric}={fmt_number(v.lineage.get('metric_value'))}" if metric else "-"
            table.add_row(str(v.version) + (" (deleted)" if v.deleted_at else ""), escape(", ".join(aliases.get(v.version, []))),
                          escape(v.run_id or "-"), fmt_number(v.step), escape(value), fmt_time(v.registered_at),
                          escape(v.registered_by or "-"), escape(v.description))
        print_table(console, table)
    _print_history(history)


def _print_lineage(store: Any, version: Any, aliases: dict[int, list[str]]) -> None:
    from ..models import checkpoint_location, describe

    lineage = dict(version.lineage)
    lines = [("version", describe(version, aliases)), ("checkpoint", checkpoint_location(store, version)),
             ("run", f"{version.run_id or '-'} ({lineage.pop('run_name', '-')}, project {lineage.pop('project', '-')})"),
             ("step", fmt_number(version.step)), ("manifest hash", version.manifest_hash or "-"),
             ("config hash", lineage.pop("config_hash", None) or "-"),
             ("git", f"{lineage.pop('git_commit', None) or '-'}" + (" (dirty)" if lineage.pop("git_dirty", None) else "")),
             ("metric", f"{lineage.pop('metric', None) or '-'} = {fmt_number(lineage.pop('metric_value', None))}"),
             ("registered", f"{fmt_time(version.registered_at)} by {version.registered_by or '-'}"),
             ("description", version.description or "-"), ("tags", ", ".join(version.tags) or "-")]
    lines += [(label, json.dumps(value, sort_keys=True, default=str)[:400] if isinstance(value, (dict, list))
               else fmt_number(value)) for label, value in sorted(lineage.items())]
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        console.print(f"[bold]{label:>{width}}[/]  {escape(str(value))}", soft_wrap=True)


def _print_history(history: list[Any]) -> None:
    if not history:
        return
    console.print("\n[bold]alias history[/]")
    for event in history:
        arrow = f"{fmt_number(event.from_version)} → {fmt_number(event.to_version)}"
        expected = f" (expected {event.expected})" if event.expected is not None else ""
        console.print(f"  {fmt_time(event.at)}  {escape(event.alias):<12} {event.outcome:<8} {arrow}{expected}"
                      f"  by {escape(event.by or '-')}")


def register(
    name: Annotated[str, typer.Argument(help="The model's name.", show_default=False)],
    source: Annotated[str, typer.Argument(help="A run (its best, else latest checkpoint), RUN:step=N, or a checkpoint "
                                          "path.", show_default=False)],
    root: RootOption = None,
    alias: Annotated[Optional[str], typer.Option("--alias", help="Also point this alias at the new version.")] = None,
    description: Annotated[str, typer.Option("--description", "-d")] = "",
    tags: Annotated[Optional[list[str]], typer.Option("--tag", help="A tag (repeatable).")] = None,
) -> None:
    """Register a checkpoint (verified first) as the next version of a model."""
    from ..models import register_model

    version = register_model(name, source, root=root, alias=alias, description=description, tags=tags or ())
    err_console.print(f"registered {version.ref} (run {version.run_id or '-'}, step {version.step})"
                      + (f", {alias} → {version.version}" if alias else ""), markup=False)


def alias(
    name: Annotated[str, typer.Argument(help="The model.", show_default=False)],
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="The alias (champion, staging...).", show_default=False)],
    version: Annotated[Optional[int], typer.Argument(help="The version to point it at.", show_default=False)] = None,
    root: RootOption = None,
    expect: Annotated[Optional[int], typer.Option("--expect", help="Move only if it names this version now (0: "
                                                  "nothing); else a conflict, recorded.")] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Remove the alias.")] = False,
) -> None:
    """Point an alias at a version (or --remove it), atomically; every move is in the history."""
    from ..models.register import current_user

    if remove == (version is not None):
        raise fail("give a VERSION to point the alias at, or --remove (not both)", 2)
    _, registry = _open(root)
    event = registry.move_alias(name, alias_name, None if remove else version, expected=expect, by=current_user())
    what = "removed" if remove else f"{fmt_number(event.from_version)} → {event.to_version}"
    err_console.print(f"{name}@{alias_name}: {what}", markup=False)


def download(model: ModelArgument, dest: Annotated[Path, typer.Argument(help="A new directory.", show_default=False)],
             root: RootOption = None) -> None:
    """Copy the version's checkpoint to DEST, verified (load it with rp.load_checkpoint(DEST))."""
    from ..checkpoint.pinned import copy_pinned
    from ..models import checkpoint_location, resolve_version
    from ..models.fetch import local_checkpoint

    store, registry = _open(root)
    version = resolve_version(registry, model)
    with local_checkpoint(store, checkpoint_location(store, version)) as path, writing(dest, "choose another DEST"):
        written = copy_pinned(path, version.manifest_hash, dest)
    err_console.print(f"copied {version.ref} (step {version.step}) to {written}", markup=False)


def export(
    model: ModelArgument,
    out: Annotated[str, typer.Argument(help="OUT.safetensors (the weights) or OUT.pt2 (torch.export).",
                                       show_default=False)],
    root: RootOption = None,
    key: Annotated[Optional[str], typer.Option("--key", help="The module in the state (default: model).")] = None,
    factory: Annotated[Optional[str], typer.Option("--model", help="For .pt2: MODULE:FACTORY that builds the "
                                                   "module (called with no arguments).")] = None,
    inputs: Annotated[Optional[list[str]], typer.Option("--example-input", help="For .pt2: SHAPE[:DTYPE] (1x4, "
                                                        "8x3x32x32:float16; zeros) or @file.pt; one per argument.")] = None,
) -> None:
    """Write a version's weights as one safetensors file, or its module as a torch.export program."""
    from ..models import resolve_version
    from ..models.export import example_input, export_program, export_weights

    store, registry = _open(root)
    version = resolve_version(registry, model)
    if out.endswith(".pt2"):
        if factory is None or not inputs:
            raise fail("a .pt2 needs the module and an input to trace it: --model MODULE:FACTORY --example-input 1x4", 2)
        with writing(out, "choose another output file"):
            written = export_program(store, version, out, factory, [example_input(spec) for spec in inputs], key)
    elif out.endswith(".safetensors"):
        with writing(out, "choose another output file"):
            written = export_weights(store, version, out, key)
    else:
        raise fail(f"{out}: give an output ending in .safetensors (the weights) or .pt2 (torch.export)", 2)
    err_console.print(f"wrote {version.ref} (step {version.step}) to {written}", markup=False)


def register_commands(main: typer.Typer) -> None:
    for command in (ls, show, register, alias, download, export):
        app.command(command.__name__)(friendly_errors(command))
    main.add_typer(app, name="models")
