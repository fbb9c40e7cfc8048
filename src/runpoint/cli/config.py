"""``runpoint config``: write a starter set, validate, show with sources, diff, print the schema."""

from __future__ import annotations

import importlib
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, Sequence

import typer
from rich.markup import escape

from .._util.fs import write_atomic
from ..errors import ConfigError, ConfigIssue, RunNotFoundError
from ._oserror import writing
from ._output import (
    JsonOption,
    RootOption,
    console,
    err_console,
    fail,
    friendly_errors,
    print_json,
)

if TYPE_CHECKING:
    from pydantic import BaseModel

config_app = typer.Typer(
    name="config",
    help="Typed configs: write a starter set, validate, show where values come from, diff.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

SchemaOption = Annotated[
    Optional[str],
    typer.Option("--schema", help="Your pydantic model as module:Class (default: runpoint's ProjectConfig).", show_default=False),
]
ProfileOption = Annotated[
    Optional[str],
    typer.Option("--profile", "-p", help="Profile merged over the file: dev, prod, test, any file in profiles/, or a path.",
                 show_default=False),
]
FileArgument = Annotated[
    Optional[str],
    typer.Argument(help="Config file (YAML or JSON) or a directory holding base.yaml; omit for the defaults.", show_default=False),
]
OverridesArgument = Annotated[
    Optional[list[str]], typer.Argument(help="Overrides like training.learning_rate=3e-4.", show_default=False)
]


def _schema(spec: str | None) -> type["BaseModel"]:
    from pydantic import BaseModel

    from ..config.schema import ProjectConfig

    if spec is None:
        return ProjectConfig
    module_name, sep, attribute = spec.partition(":")
    if not sep:
        module_name, _, attribute = spec.rpartition(".")
    if not module_name or not attribute:
        raise fail(f"--schema {spec!r}: give module:Class, e.g. myproject.config:TrainConfig", 2)
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # a module beside the configs, as `python -m` would see it
    try:
        model = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise fail(f"--schema {spec!r}: cannot import it ({exc})", 2) from None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise fail(f"--schema {spec!r} is not a pydantic model class", 2)
    return model


def _split(file: str | None, overrides: list[str] | None) -> tuple[str | None, list[str]]:
    """``runpoint config show a.b=1`` has no file: an argument with '=' that is no file is an override."""
    rest = list(overrides or [])
    if file is not None and "=" in file and not Path(file).exists():
        return None, [file, *rest]
    return file, rest


def _resolve(file: str | None, profile: str | None, overrides: list[str], schema: str | None) -> Any:
    from ..config.load import resolve_config

    return resolve_config(file, profile, overrides, _schema(schema))


def _problems_json(exc: ConfigError) -> list[dict[str, Any]]:
    return [asdict(problem) for problem in exc.problems]


def _files_text(resolved: Any) -> str:
    from ..config.files import display_path

    return " + ".join(display_path(path) for path in resolved.files) or "defaults"


def _plain_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


_ROW_STYLES = {"default": "dim", "same": "dim", "changed": "yellow", "only_a": "red", "only_b": "green"}


def _print_columns(
    headings: tuple[str, str, str], rows: list[tuple[str, str, str, str]], header: Sequence[str] = ()
) -> None:
    """Aligned plain columns rather than a table: nothing wraps or folds at the terminal's width, and grep works."""
    first = max(len(headings[0]), *(len(row[0]) for row in rows))
    second = min(40, max(len(headings[1]), *(len(row[1]) for row in rows)))
    for line in header:
        console.print(line, markup=False, soft_wrap=True)
    console.print(f"{headings[0]:<{first}}  {headings[1]:<{second}}  {headings[2]}", style="bold", markup=False, soft_wrap=True)
    for key, middle, last, kind in rows:
        console.print(f"{key:<{first}}  {middle:<{second}}  {last}", style=_ROW_STYLES.get(kind), markup=False, soft_wrap=True)


def validate(
    file: FileArgument = None,
    overrides: OverridesArgument = None,
    profile: ProfileOption = None,
    schema: SchemaOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check a config: every problem is listed with its field, file and line, then exit 1."""
    from ..config import config_hash

    file, rest = _split(file, overrides)
    try:
        resolved = _resolve(file, profile, rest, schema)
    except ConfigError as exc:
        if not as_json:
            raise
        print_json({"valid": False, "problems": _problems_json(exc)})
        raise typer.Exit(1) from None
    digest = config_hash(resolved.config)
    if as_json:
        print_json({
            "valid": True, "files": [str(p) for p in resolved.files], "profile": resolved.profile,
            "config_hash": digest, "set": sum(1 for s in resolved.sources.values() if s != "default"),
        })
        return
    defaults = sum(1 for s in resolved.sources.values() if s == "default")
    console.print(
        f"[green]valid[/]: {escape(_files_text(resolved))} ({len(resolved.sources)} values, {defaults} from "
        f"schema defaults), config hash {digest[:12]}", soft_wrap=True,
    )


def show(
    file: FileArgument = None,
    overrides: OverridesArgument = None,
    profile: ProfileOption = None,
    sources: Annotated[bool, typer.Option("--sources", "-s", help="Show where each value came from.")] = False,
    fmt: Annotated[str, typer.Option("--format", "-f", help="yaml or json.")] = "yaml",
    schema: SchemaOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the resolved config (secrets masked); --sources tells which file, line, variable or override set each value."""
    from ..config import config_hash, mask_secrets, to_plain
    from ..config.load import dump_config

    if fmt not in {"yaml", "json"}:
        raise fail(f"--format {fmt!r}: use yaml or json", 2)
    file, rest = _split(file, overrides)
    resolved = _resolve(file, profile, rest, schema)
    tree = mask_secrets(to_plain(resolved.config))
    if as_json:
        print_json({
            "config": tree, "sources": dict(resolved.sources), "files": [str(p) for p in resolved.files],
            "profile": resolved.profile, "config_hash": config_hash(resolved.config),
        })
        return
    if not sources:
        sys.stdout.write(json.dumps(tree, indent=2, ensure_ascii=False) + "\n" if fmt == "json" else dump_config(resolved.config))
        return
    from ..config import flatten

    rows = [(key, _plain_text(value), origin, "default" if origin == "default" else "set")
            for key, value in flatten(tree).items() for origin in [resolved.sources.get(key, "default")]]
    _print_columns(("KEY", "VALUE", "SOURCE"), rows)
    err_console.print(f"(from {_files_text(resolved)}; dim rows are schema defaults)", markup=False)


def _side(ref: str, profile: str | None, root: Path | None, schema: type["BaseModel"]) -> tuple[str, dict[str, Any]]:
    """A config to diff: a file (resolved with defaults) or a run's recorded config.yaml."""
    from .. import query
    from .._util.yaml import read_yaml_file
    from ..config import to_plain
    from ..config.files import SUFFIXES, display_path
    from ..config.load import resolve_config

    path = Path(ref).expanduser()
    if path.exists():
        resolved = resolve_config(path, profile, (), schema)
        label = " + ".join(display_path(p) for p in resolved.files)
        return label, to_plain(resolved.config)
    if path.suffix.lower() in SUFFIXES or "/" in ref:
        raise ConfigError([ConfigIssue("", "file not found", ref)], ref)
    store = query.open_root(root)
    try:
        run = query.resolve_run(store, ref)
    except RunNotFoundError:
        raise fail(f"{ref!r} is neither a config file nor a run (`runpoint ls` lists runs)") from None
    finally:
        store.close()
    recorded = query.run_dir(store, run) / "config.yaml"
    try:
        tree = read_yaml_file(recorded) or {}
    except ConfigError as exc:
        raise fail(f"cannot read the config of run {run.id}: {exc}") from None
    return f"run {run.id} ({run.name})", tree


def diff(
    a: Annotated[str, typer.Argument(help="A config file, or a run (id, id prefix, name, 'latest').", show_default=False)],
    b: Annotated[str, typer.Argument(help="The other file or run.", show_default=False)],
    profile: ProfileOption = None,
    root: RootOption = None,
    schema: SchemaOption = None,
    show_same: Annotated[bool, typer.Option("--all", help="Also list the values that are the same.")] = False,
    exit_code: Annotated[bool, typer.Option("--exit-code", help="Exit 1 when the configs differ (like git diff).")] = False,
    as_json: JsonOption = False,
) -> None:
    """What differs between two configs: files (with their defaults) or recorded runs."""
    from ..config.diff import diff_configs

    model = _schema(schema)
    label_a, tree_a = _side(a, profile, root, model)
    label_b, tree_b = _side(b, profile, root, model)
    result = diff_configs(tree_a, tree_b)
    if as_json:
        print_json({"a": label_a, "b": label_b, **result.to_dict()})
    elif result.identical:
        console.print(f"identical: {escape(label_a)} and {escape(label_b)} ({len(result.same)} values)")
    else:
        rows = [(key, _plain_text(left), _plain_text(right), "changed") for key, (left, right) in result.changed.items()]
        rows += [(key, _plain_text(value), "(absent)", "only_a") for key, value in result.only_a.items()]
        rows += [(key, "(absent)", _plain_text(value), "only_b") for key, value in result.only_b.items()]
        if show_same:
            rows += [(key, _plain_text(value), _plain_text(value), "same") for key, value in result.same.items()]
        _print_columns(("KEY", "A", "B"), rows, header=[f"A: {label_a}", f"B: {label_b}"])
        err_console.print(
            f"({len(result.changed)} changed, {len(result.only_a)} only in A, {len(result.only_b)} only in B, "
            f"{len(result.same)} the same)", markup=False,
        )
    if exit_code and not result.identical:
        raise typer.Exit(1)


def init(
    directory: Annotated[str, typer.Argument(help="Where to write base.yaml and profiles/.")] = "configs",
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that exist.")] = False,
    schema: SchemaOption = None,
) -> None:
    """Write a documented base.yaml (every field, its default and meaning) and dev, prod, test profiles."""
    from ..config.files import display_path
    from ..config.load import resolve_config
    from ..config.starter import starter_files

    model = _schema(schema)
    target = Path(directory).expanduser()
    if target.exists() and not target.is_dir():
        raise fail(f"{directory} exists and is not a directory")
    base_label = display_path(target / "base.yaml")
    files = {target / name: text for name, text in starter_files(model, base_label).items()}
    existing = [path for path in files if path.exists()]
    if existing and not force:
        raise fail(f"{display_path(existing[0])} exists; pass --force to overwrite, or pick another directory")
    with writing(target, "choose another directory"):
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, text)
    for name in ("dev", "prod", "test"):
        resolve_config(target / "base.yaml", name, (), model)  # what we wrote must load
    console.print(f"wrote {escape(base_label)} and profiles dev, prod, test in {escape(display_path(target / 'profiles'))}")
    console.print(f"  next: runpoint config show {escape(base_label)} --profile dev --sources", highlight=False)


def schema_command(schema: SchemaOption = None) -> None:
    """Print the config's JSON schema (for editors, forms and validation elsewhere)."""
    sys.stdout.write(json.dumps(_schema(schema).model_json_schema(), indent=2) + "\n")


def register(app: typer.Typer) -> None:
    for command in (init, validate, show, diff):
        config_app.command(command.__name__)(friendly_errors(command))
    config_app.command("schema")(friendly_errors(schema_command))
    app.add_typer(config_app, name="config")
