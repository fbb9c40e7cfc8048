"""Errors raised by runpoint.

Every error runpoint raises on purpose derives from :class:`RunpointError`. The leaves
also derive from the builtin they refine, so ``except FileExistsError`` keeps working
for code that does not know runpoint::

    RunpointError
    ├── ConfigError                  (ValueError)        .issues, .problems, .path
    ├── CheckpointError                                  .path
    │   ├── CheckpointNotFoundError  (FileNotFoundError) .path, .step
    │   ├── CheckpointCorruptError                       .path, .file
    │   └── CheckpointKeyError                           .path, .expected_key_id, .given_key_id
    ├── StoreError                                       .location
    │   └── SchemaVersionError                           .location, .found, .supported
    ├── AccessDeniedError            (PermissionError)   .status, .location
    ├── RunExistsError               (FileExistsError)   .run_id, .path
    ├── RunNotFoundError             (LookupError)       .ref, .root
    ├── ModelNotFoundError           (LookupError)       .name
    ├── AliasConflictError                               .name, .alias, .expected, .current, .attempted
    ├── PinConflictError                                 .ref
    ├── InvalidValueError            (TypeError)         .key, .value_type
    │   └── InvalidKeyError          (a key, not a value, is wrong)
    ├── InvalidArgumentError         (ValueError)        .argument
    ├── ArchiveError                 (ValueError)        .path, .reason
    └── MissingDependencyError       (ImportError)       .package, .extra, .feature

Each error keeps its fields as attributes and builds its own message: what was wrong,
where, and what to do about it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence


class RunpointError(Exception):
    """Base class of every error runpoint raises on purpose."""


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config: where it is, where it came from, what was wrong.

    ``path`` is the dotted field path (``training.learning_rate``, ``model.hidden_sizes[1]``;
    empty for a whole file), ``source`` where the value was set (``configs/base.yaml:7``,
    ``env RUNPOINT__TRAINING__LEARNING_RATE``, ``override training.learning_rate=-1``),
    ``value`` the offending value as text (secrets masked) and ``message`` what was expected.
    """

    path: str
    message: str
    source: str = ""
    value: str | None = None

    def __str__(self) -> str:
        head = f"{self.path}: " if self.path else ""
        got = f"got {self.value}, " if self.value is not None else ""
        where = f"  [{self.source}]" if self.source else ""
        return f"{head}{got}{self.message}{where}"


class ConfigError(RunpointError, ValueError):
    """A configuration failed to load or validate.

    ``issues`` holds one line per problem (dotted field path, source, value, expectation),
    ``problems`` the same as :class:`ConfigIssue` objects; ``path`` the file being loaded,
    when there is one.
    """

    def __init__(self, issues: Sequence[str | ConfigIssue] | str | ConfigIssue, path: str | Path | None = None) -> None:
        listed = [issues] if isinstance(issues, (str, ConfigIssue)) else list(issues)
        self.problems = [item if isinstance(item, ConfigIssue) else ConfigIssue("", item) for item in listed]
        self.issues = [str(problem) for problem in self.problems]
        self.path = str(path) if path is not None else None
        where = f" {self.path}" if self.path else ""
        if len(self.issues) == 1:
            message = f"invalid config{where}: {self.issues[0]}"
        else:
            lines = "\n".join(f"  - {issue}" for issue in self.issues)
            message = f"{len(self.issues)} problems in config{where}:\n{lines}"
        super().__init__(message)


class CheckpointError(RunpointError):
    """A checkpoint could not be saved, found or loaded."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = str(path) if path is not None else None
        super().__init__(message)


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No checkpoint exists where one was asked for."""

    def __init__(self, path: str | Path, step: int | None = None) -> None:
        self.step = step
        what = f"step {step}" if step is not None else "any checkpoint"
        super().__init__(f"no checkpoint for {what} in {path}", path)


class CheckpointCorruptError(CheckpointError):
    """A checkpoint's files do not match its manifest."""

    def __init__(self, path: str | Path, file: str, reason: str) -> None:
        self.file = file
        self.reason = reason
        super().__init__(f"checkpoint {path} is corrupt: {file}: {reason}", path)


class CheckpointKeyError(CheckpointError):
    """An encrypted checkpoint was read without its key, or with another key.

    ``expected_key_id`` is the id its manifest records, ``given_key_id`` the id of the key
    given (None when none was).
    """

    def __init__(self, path: str | Path, expected_key_id: str, given_key_id: str | None, given_from: str = "") -> None:
        self.expected_key_id = expected_key_id
        self.given_key_id = given_key_id
        how = ("pass the key it was saved with: CheckpointManager(..., encrypt=rp.EncryptionKey.from_env(VAR)), "
               "rp.load_checkpoint(path, key=...), or --key-env VAR / --key-file FILE to `runpoint ckpt`")
        if given_key_id is None:
            what = f"is encrypted (key id {expected_key_id}) and no key was given"
        else:
            source = f" ({given_from})" if given_from else ""
            what = f"was encrypted with key id {expected_key_id}, but the key given{source} has key id {given_key_id}"
        super().__init__(f"checkpoint {path} {what}; {how}", path)


class StoreError(RunpointError):
    """The run store could not be opened, read or written."""

    def __init__(self, message: str, location: str | Path | None = None) -> None:
        self.location = str(location) if location is not None else None
        super().__init__(message)


class SchemaVersionError(StoreError):
    """The store was written by a newer runpoint than this one."""

    def __init__(self, location: str | Path, found: int, supported: int) -> None:
        self.found = found
        self.supported = supported
        super().__init__(
            f"the store at {location} has schema version {found}, but this runpoint "
            f"supports up to {supported}; upgrade runpoint to read it",
            location,
        )


class AccessDeniedError(RunpointError, PermissionError):
    """A runpoint server refused the request: no or a bad token (401), or not allowed (403)."""

    def __init__(self, message: str, status: int, location: str | None = None) -> None:
        self.status = status
        self.location = location
        where = f"{location}: " if location else ""
        hint = "; set $RUNPOINT_TOKEN to a valid token" if status == 401 else ""
        super().__init__(f"{where}access denied ({status}): {message}{hint}")


class RunExistsError(RunpointError, FileExistsError):
    """A new run would overwrite one that already exists."""

    def __init__(self, run_id: str, path: str | Path) -> None:
        self.run_id = run_id
        self.path = str(path)
        super().__init__(
            f"run {run_id!r} already exists at {self.path}; pass resume={run_id!r} to "
            "continue it, or leave id unset to start a new run"
        )


class RunNotFoundError(RunpointError, LookupError):
    """No run matches the id, prefix or name that was given."""

    def __init__(self, ref: str, root: str | Path | None = None, hint: str = "") -> None:
        self.ref = ref
        self.root = str(root) if root is not None else None
        where = f" in {self.root}" if self.root else ""
        super().__init__(f"no run matches {ref!r}{where}" + (f"; {hint}" if hint else ""))

    def __str__(self) -> str:  # LookupError would otherwise quote the message like a KeyError
        return str(self.args[0])


class ModelNotFoundError(RunpointError, LookupError):
    """No registered model, version or alias matches a reference; the message names what exists."""

    def __init__(self, message: str, name: str | None = None) -> None:
        self.name = name
        super().__init__(message)

    def __str__(self) -> str:
        return str(self.args[0])


class AliasConflictError(RunpointError):
    """A compare-and-set move of an alias found it naming another version than ``expected``.

    ``current`` is what the alias names (None: nothing); the losing attempt (to
    ``attempted``; None: a removal) is in the alias's history as a ``conflict``.
    """

    def __init__(self, name: str, alias: str, expected: int | None, current: int | None,
                 attempted: int | None) -> None:
        self.name, self.alias = name, alias
        self.expected, self.current, self.attempted = expected, current, attempted
        believed = f"version {expected}" if expected else "nothing"
        now = f"version {current}" if current is not None else "nothing"
        what = f"move it to version {attempted}" if attempted is not None else "remove it"
        super().__init__(
            f"alias {alias!r} of model {name!r} names {now}, not {believed}: someone moved it first; "
            f"the attempt to {what} was not applied (recorded as a conflict). Look at it again "
            f"(runpoint models show {name}) and retry with --expect {current or 0}"
        )


class PinConflictError(RunpointError):
    """A re-pin of a model version found it pinning another manifest hash than the one expected; unchanged."""

    def __init__(self, message: str, ref: str) -> None:
        super().__init__(message)
        self.ref = ref


class InvalidValueError(RunpointError, TypeError):
    """A logged value has a type runpoint cannot store."""

    def __init__(self, key: str, value: Any, hint: str = "") -> None:
        self.key = key
        self.value_type = type(value).__qualname__
        module = type(value).__module__
        qualified = self.value_type if module == "builtins" else f"{module}.{self.value_type}"
        message = (
            f"cannot log {key!r}: a value of type {qualified} is not supported "
            "(log int, float, bool, numpy scalars, 0-d tensors or runpoint media)"
        )
        super().__init__(message + (f"; {hint}" if hint else ""))


class InvalidKeyError(InvalidValueError):
    """A logged key is not a non-empty string (``run.log({1: 0.5})``); the key is to blame, not the value."""

    def __init__(self, key: Any, prefix: str = "") -> None:
        self.key = f"{prefix}{key!r}"
        self.value_type = type(key).__qualname__
        where = f" (under {prefix.rstrip('/')!r})" if prefix else ""
        if isinstance(key, str):
            message = f"cannot log an empty key{where}: metric keys must be non-empty strings such as 'train/loss'"
        else:
            message = (f"cannot log the key {key!r}{where}: it is of type {self.value_type}, and metric keys must be "
                       f"non-empty strings; use {str(key)!r} or a name such as 'train/loss'")
        TypeError.__init__(self, message)


class InvalidArgumentError(RunpointError, ValueError):
    """An argument to a runpoint function is out of its allowed range or form."""

    def __init__(self, argument: str, message: str) -> None:
        self.argument = argument
        super().__init__(f"{argument}: {message}")


class ArchiveError(RunpointError, ValueError):
    """A run archive is damaged, of an unknown format, or not a runpoint archive at all."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class MissingDependencyError(RunpointError, ImportError):
    """An optional feature needs a package that is not installed.

    ``package`` is what to import, ``extra`` the runpoint extra that installs it and
    ``feature`` what asked for it (``"the mlflow sink"``).
    """

    def __init__(self, package: str, extra: str, feature: str) -> None:
        self.package = package
        self.extra = extra
        self.feature = feature
        super().__init__(
            f"{feature} needs the {package!r} package, which is not installed; "
            f"install it with: pip install 'runpoint[{extra}]'",
            name=package,
        )
