"""``runpoint ckpt keygen`` and ``runpoint ckpt rekey``, and the ``--key-env`` / ``--key-file`` options.

A key is never given on the command line itself (it would land in the shell history and
in ``ps``): only the name of an environment variable that holds it, or a private file.
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from ._output import JsonOption, RootOption, console, err_console, fail, print_json

KeyEnvOption = Annotated[Optional[str], typer.Option(
    "--key-env", metavar="VAR", help="Decrypt with the key in this environment variable (base64 or hex).")]
KeyFileOption = Annotated[Optional[str], typer.Option(
    "--key-file", metavar="FILE", help="Decrypt with the key in this file (chmod 600).")]


def key_from(env: str | None, file: str | None, which: str = "") -> Any:
    """The EncryptionKey an ``--[which-]key-env`` / ``--[which-]key-file`` pair names, or None."""
    from ..checkpoint.keys import EncryptionKey

    prefix = f"--{which}-" if which else "--"
    if env is not None and file is not None:
        raise fail(f"give {prefix}key-env or {prefix}key-file, not both", 2)
    if env is not None:
        return EncryptionKey.from_env(env)
    if file is not None:
        return EncryptionKey.from_file(file)
    return None


def keygen() -> None:
    """Print a new random 256-bit key (base64) for RUNPOINT_CKPT_KEY or a key file."""
    from ..checkpoint.keys import EncryptionKey, key_id_of, parse_key_text

    text = EncryptionKey.generate()
    print(text)
    err_console.print(f"key id {key_id_of(parse_key_text(text, 'the new key'))}; keep the key safe: an encrypted "
                      "checkpoint cannot be read without it", markup=False)


def rekey(
    target: Annotated[str, typer.Argument(help="A run (id, prefix, name or 'latest') or a checkpoints directory.",
                                          show_default=False)],
    root: RootOption = None,
    old_key_env: Annotated[Optional[str], typer.Option("--old-key-env", metavar="VAR",
                                                       help="The current key, in this environment variable.")] = None,
    old_key_file: Annotated[Optional[str], typer.Option("--old-key-file", metavar="FILE",
                                                        help="The current key, in this file.")] = None,
    new_key_env: Annotated[Optional[str], typer.Option("--new-key-env", metavar="VAR",
                                                       help="The new key, in this environment variable.")] = None,
    new_key_file: Annotated[Optional[str], typer.Option("--new-key-file", metavar="FILE",
                                                        help="The new key, in this file.")] = None,
    encrypt_plain: Annotated[bool, typer.Option("--encrypt-plain",
                                                help="Also encrypt the checkpoints that are not encrypted.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Re-encrypt every checkpoint under a new key, each one atomically (rerun after a crash to finish)."""
    from ..checkpoint.rekey import rekey as rekey_directory
    from .ckpt import _Target

    old_key = key_from(old_key_env, old_key_file, "old")
    new_key = key_from(new_key_env, new_key_file, "new")
    if new_key is None:
        raise fail("say which key to encrypt with: --new-key-env VAR or --new-key-file FILE", 2)
    if old_key is None and not encrypt_plain:
        raise fail("say which key the checkpoints have now: --old-key-env VAR or --old-key-file FILE "
                   "(or --encrypt-plain to encrypt unencrypted ones)", 2)
    where = _Target(target, root)
    where.refuse_on_server("rekey")

    def progress(name: str, outcome: str) -> None:
        if not as_json:
            err_console.print(f"{outcome:>8}  {name}", markup=False)

    pins = _pins(where)
    try:
        result = rekey_directory(where.location, old_key, new_key, encrypt_plain=encrypt_plain, on_done=progress,
                                 pins=pins)
    finally:
        if pins is not None and pins.store is not where.store:
            pins.close()
    if as_json:
        print_json({"rekeyed": result.rekeyed, "already": result.already, "plain": result.plain,
                    "failed": result.failed, "repinned": result.repinned, "key_id": new_key.key_id})
    else:
        console.print(f"{len(result.rekeyed)} rekeyed, {len(result.already)} already under key {new_key.key_id}"
                      + (f", {len(result.plain)} not encrypted (left so; --encrypt-plain encrypts them)"
                         if result.plain else ""))
        for name, refs in result.repinned.items():
            console.print(f"re-pinned {escape(', '.join(refs))} to the new manifest of {escape(name)}")
        for name, why in result.failed.items():
            console.print(f"[bold red]unchanged[/] {escape(name)}: {escape(why)}")
    if result.failed:
        raise fail(f"{len(result.failed)} checkpoint(s) could not be rekeyed; they are unchanged")


def _pins(where: Any) -> Any:
    """The registry whose model versions a rekey of ``where`` re-pins: its run's root, or the root the directory
    is in; None for a directory in no root. A root whose registry cannot be opened stops the rekey here."""
    from ..errors import RunpointError
    from ..models.repin import RegistryPins

    try:
        return RegistryPins(where.store) if where.store is not None else RegistryPins.for_location(where.location)
    except RunpointError as exc:
        raise fail(f"{where.location} is in a runpoint root whose model registry cannot be read ({exc}); nothing "
                   "was rekeyed, since a registered model version would stop loading") from None


def register(app: typer.Typer) -> None:
    from ._output import friendly_errors

    for command in (keygen, rekey):
        app.command(command.__name__)(friendly_errors(command))
