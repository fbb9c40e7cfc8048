"""Any training script gets a config command line for free.

::

    # train.py
    from runpoint import config
    cfg = config.from_argv("configs/base.yaml")

    $ python train.py --profile prod training.learning_rate=1e-3 model.hidden_sizes=[256,128]
    $ python train.py --config other.yaml --print-config
    $ python train.py --help          # every field, its type, default and description

Recognised arguments: ``--config FILE`` (or ``-c``), ``--profile NAME``, ``--print-config``,
``--help`` (``-h``) and ``section.field=value`` overrides (``--section.field=value`` too).
Scripts with their own argparse pass what it leaves over::

    args, rest = parser.parse_known_args()
    cfg = config.from_argv("configs/base.yaml", argv=rest)
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence, TypeVar

from pydantic import BaseModel

from ..errors import ConfigError, InvalidArgumentError
from ._dotted import is_valid_path
from .files import available_profiles
from .load import dump_config, find_base_file, load_config, schema_or_default

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class ArgvConfig:
    """What a command line says about the config.

    ``path`` (``--config``), ``profile`` (``--profile``), ``overrides`` (``a.b=c``),
    ``rest`` (everything else, in order), ``help`` and ``print_config`` (the flags).
    """

    path: str | None = None
    profile: str | None = None
    overrides: tuple[str, ...] = ()
    rest: tuple[str, ...] = ()
    help: bool = False
    print_config: bool = False


def _is_override(token: str) -> bool:
    """``a.b=1`` and ``lr=1``; ``--a.b=1`` too, but not ``--lr=1``, which is some other flag."""
    dashed = token.startswith("--")
    key, sep, _ = token.removeprefix("--").partition("=")
    return bool(sep) and is_valid_path(key) and ("." in key or not dashed)


def parse_argv(argv: Sequence[str] | None = None) -> ArgvConfig:
    """Split ``argv`` (default ``sys.argv[1:]``) into config arguments and the rest.

    Example::

        >>> parse_argv(["--profile", "prod", "training.seed=1", "--epochs", "3"])
        ArgvConfig(path=None, profile='prod', overrides=('training.seed=1',), rest=('--epochs', '3'), help=False, print_config=False)
    """
    tokens = list(sys.argv[1:] if argv is None else argv)
    found: dict[str, str] = {}
    overrides: list[str] = []
    rest: list[str] = []
    flags = {"help": False, "print_config": False}
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if token == "--":
            rest.extend(tokens[index:])
            break
        name, sep, value = token.partition("=")
        if name in ("--config", "-c", "--profile"):
            key = "profile" if name == "--profile" else "path"
            if not sep:
                if index >= len(tokens) or tokens[index].startswith("-"):
                    raise InvalidArgumentError(name, "expects a value")
                value = tokens[index]
                index += 1
            if not value.strip():
                raise InvalidArgumentError(name, "expects a value, got an empty one")
            found[key] = value
        elif token in ("--help", "-h"):
            flags["help"] = True
        elif token == "--print-config":
            flags["print_config"] = True
        elif _is_override(token):
            overrides.append(token.removeprefix("--"))
        else:
            rest.append(token)
    return ArgvConfig(found.get("path"), found.get("profile"), tuple(overrides), tuple(rest), **flags)


def from_argv(
    path: str | os.PathLike[str] | None = None,
    argv: Sequence[str] | None = None,
    schema: type[M] | None = None,
    *,
    allow_unknown: bool = False,
    exit_on_error: bool = True,
    env: Mapping[str, str] | None = None,
) -> M:
    """Load the config a command line asks for: ``--config``, ``--profile``, ``a.b=c``.

    ``path`` is the default file (``--config`` replaces it). ``--help`` prints the fields
    and ``--print-config`` the resolved config, then the script exits. Like argparse, a
    bad command line or config prints the problems and exits with status 2, unless
    ``exit_on_error=False`` (then :class:`~runpoint.ConfigError` or
    :class:`~runpoint.InvalidArgumentError` is raised). Arguments that are none of these
    are an error unless ``allow_unknown``.

    Example::

        cfg = rp.config.from_argv("configs/base.yaml")
    """
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "script"
    model = schema_or_default(schema)
    try:
        parsed = parse_argv(argv)
        if parsed.help:
            _print_help(program, parsed.path or path, model)
            raise SystemExit(0)
        if parsed.rest and not allow_unknown:
            raise InvalidArgumentError(
                "argv", f"unrecognized arguments: {' '.join(parsed.rest)} "
                "(the config takes --config FILE, --profile NAME, --print-config and section.field=value)"
            )
        config = load_config(parsed.path or path, parsed.profile, parsed.overrides, model, env=env)
    except (ConfigError, InvalidArgumentError) as exc:
        if not exit_on_error:
            raise
        sys.stderr.write(f"{program}: error: {str(exc).removeprefix('argv: ')}\n")
        raise SystemExit(2) from None
    if parsed.print_config:
        sys.stdout.write(dump_config(config))
        raise SystemExit(0)
    return config  # type: ignore[return-value]


def _print_help(program: str, path: str | os.PathLike[str] | None, schema: type[BaseModel]) -> None:
    from ._docs import field_rows

    out = [f"usage: {program} [--config FILE] [--profile NAME] [--print-config] [section.field=value ...]", ""]
    if path is not None:
        profiles: list[str] = []
        try:
            profiles = available_profiles(find_base_file(path))
        except ConfigError:
            pass
        listed = f" (profiles: {', '.join(profiles)})" if profiles else ""
        out.append(f"config file: {path}{listed}")
    out += [
        "environment: RUNPOINT__SECTION__FIELD=value sets a field; RUNPOINT_PROFILE=name picks a profile",
        "later wins: defaults < config file < profile < environment < section.field=value",
        "",
        "fields:",
    ]
    rows = field_rows(schema)
    width = max((len(path) for path, *_ in rows), default=0)
    for field_path, type_name, default, description in rows:
        out.append(f"  {field_path:<{width}}  {type_name} = {default}")
        if description:
            out.append(f"  {'':<{width}}    {description}")
    sys.stdout.write("\n".join(out) + "\n")
