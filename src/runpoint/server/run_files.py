"""A run's files as the dashboard reads them, wherever they live: the local root
(``runpoint ui``) or the team server's object store.

Every path is checked (:func:`runpoint.store.wire.check_relative_path`) before it reaches
the :class:`~runpoint.artifacts.Artifacts`; a local root also refuses symbolic links below
it (:func:`runpoint.artifacts.storage.open_regular`), so nothing outside is ever read.

Example::

    files = RunFiles.of(LocalArtifacts("runpoint"), run)
    with files.open("logs/console.log") as handle:
        handle.read()
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..artifacts.storage import Artifacts
from ..errors import InvalidArgumentError, StoreError
from ..store.base import RunRecord
from ..store.wire import check_relative_path


@dataclass(frozen=True)
class RunFiles:
    """The files under one run's directory (``base``: ``<project>/<run id>`` inside ``artifacts``)."""

    artifacts: Artifacts
    base: str

    @classmethod
    def of(cls, artifacts: Artifacts, run: RunRecord) -> "RunFiles":
        """The run's files; StoreError when its recorded directory leaves the location."""
        recorded = run.dir
        if artifacts.is_local:
            from ..artifacts.paths import run_directory

            root = Path(artifacts.root).resolve()
            recorded = run_directory(root, run.dir, run.id).relative_to(root).as_posix()
        try:
            return cls(artifacts, check_relative_path(recorded, "dir"))
        except InvalidArgumentError:
            raise StoreError(f"run {run.id} records a directory outside the root: {run.dir!r}", artifacts.url) from None

    def path(self, relative: str) -> str:
        """``relative`` under the run, as one part for the Artifacts; InvalidArgumentError if it leaves it."""
        return f"{self.base}/{check_relative_path(relative, 'path')}"

    def open(self, relative: str) -> BinaryIO:
        """A seekable stream; OSError when it is missing or (locally) a link or not a regular file."""
        return self.artifacts.open_read(self.path(relative))

    def read_bytes(self, relative: str, limit: int | None = None) -> bytes:
        return self.artifacts.read_bytes(self.path(relative), limit=limit)

    def is_file(self, relative: str) -> bool:
        """Whether ``relative`` is a file that :meth:`open` would read."""
        try:
            self.open(relative).close()
        except (OSError, InvalidArgumentError):
            return False
        return True

    def list(self, folder: str) -> list[tuple[str, int]]:
        """(path relative to ``folder``, size) of the regular files below it."""
        return self.artifacts.list_files(self.path(folder))

    def display(self, relative: str) -> str:
        """The full path or URL of ``relative`` (for messages and child processes)."""
        return self.artifacts.display(self.path(relative))
