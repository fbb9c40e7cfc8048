"""Where a root and its runs live on disk.

    <root>/runpoint.db                      the index every command queries
    <root>/<project>/<run id>/config.yaml   the resolved config, secrets masked
    <root>/<project>/<run id>/meta.json     host, packages, git, argv, seeds, times
    <root>/<project>/<run id>/git.diff      uncommitted changes when the run started
    <root>/<project>/<run id>/logs/         console.log, console_resume_<N>.log (console.rank<R>.log ...),
                                            their segments (console.log.<N>.zst), runpoint.log (runpoint's events)
    <root>/<project>/<run id>/media/        images, histograms, text
    <root>/<project>/<run id>/checkpoints/  one directory per step, latest and best pointers
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .._util.uri import without_credentials
from ..errors import InvalidArgumentError

ROOT_ENV = "RUNPOINT_ROOT"
DEFAULT_ROOT_NAME = "runpoint"
DB_NAME = "runpoint.db"


def resolve_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The root to use: ``root`` if given, else ``$RUNPOINT_ROOT``, else ``./runpoint``.

    A root is a directory. A store URL (``postgresql://...``) can be read (``runpoint ls
    --root URL``, the dashboard) but not recorded into yet: it raises rather than becoming
    a directory named ``postgresql:``.
    """
    if root is None:
        root = os.environ.get(ROOT_ENV) or DEFAULT_ROOT_NAME
    text = os.fspath(root)
    if "://" in text and not text.startswith("file://"):
        raise InvalidArgumentError(
            "root", f"{without_credentials(text)} is a URL: runs are recorded into a directory; a store URL "
            "(postgresql://...) can be read with `runpoint ls/show/metrics --root URL` and the dashboard, "
            "recording into a team server is not supported yet",
        )
    return Path(text.removeprefix("file://")).expanduser().absolute()


@dataclass(frozen=True)
class RunPaths:
    """The files of one run, relative to its root."""

    root: Path
    project: str
    run_id: str

    @property
    def dir(self) -> Path:
        return self.root / self.project / self.run_id

    @property
    def relative_dir(self) -> str:
        return f"{self.project}/{self.run_id}"

    @property
    def config(self) -> Path:
        return self.dir / "config.yaml"

    @property
    def meta(self) -> Path:
        return self.dir / "meta.json"

    @property
    def git_diff(self) -> Path:
        return self.dir / "git.diff"

    @property
    def logs(self) -> Path:
        return self.dir / "logs"

    @property
    def media(self) -> Path:
        return self.dir / "media"

    @property
    def checkpoints(self) -> Path:
        return self.dir / "checkpoints"

    def console_log(self, resume_count: int, rank: int = 0) -> Path:
        """``console.log`` for the first attempt, ``console_resume_<N>.log`` for resume N.

        Rank R > 0 of a multi-rank job writes ``console.rank<R>.log`` and
        ``console_resume_<N>.rank<R>.log``.
        """
        name = "console" if resume_count == 0 else f"console_resume_{resume_count}"
        return self.logs / (f"{name}.rank{rank}.log" if rank else f"{name}.log")

    def runpoint_log(self, rank: int = 0) -> Path:
        """``runpoint.log``: runpoint's own events of the run, one JSON object a line (rank R > 0: ``runpoint.rank<R>.log``)."""
        return self.logs / (f"runpoint.rank{rank}.log" if rank else "runpoint.log")


def resolve_inside(base: Path, relative: str) -> Path:
    """``base / relative`` if that is an existing file inside ``base``; ``InvalidArgumentError`` if not.

    Refuses absolute paths, ``..`` parts, NUL bytes and symlinks whose target leaves ``base``.
    """
    if not relative or "\x00" in relative or relative.startswith(("/", "\\")) or "\\" in relative:
        raise InvalidArgumentError("path", f"{relative!r} is not a path inside the run")
    parts = relative.split("/")
    if any(part in {"", ".", ".."} for part in parts) or ":" in parts[0]:
        raise InvalidArgumentError("path", f"{relative!r} is not a path inside the run")
    base_resolved = base.resolve()
    target = (base_resolved / relative).resolve()
    if base_resolved not in target.parents or not target.is_file():
        raise InvalidArgumentError("path", f"{relative!r} is not a file inside the run")
    return target


def run_directory(root: str | os.PathLike[str], recorded: str, run_id: str = "?") -> Path:
    """The directory of a run whose store row records ``recorded`` (``<project>/<run id>``) under ``root``.

    The one place a run's directory is computed from the store. A recorded directory that
    leaves the root (an absolute path, ``..``, a link out) is refused with ``StoreError``:
    a crafted database cannot point readers at other files.
    """
    from ..errors import StoreError

    base = Path(root).resolve()
    directory = (base / recorded).resolve()
    if base not in directory.parents:
        raise StoreError(f"run {run_id} records a directory outside the root: {recorded!r}", str(base))
    return directory
