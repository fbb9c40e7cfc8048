"""What every route of the dashboard reads from: the root, its store and the launcher."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse

from .._util.jsonable import jsonable
from ..artifacts.storage import Artifacts, LocalArtifacts
from ..store.base import RunRecord, Store
from ..store.bulk import BulkReader
from .run_files import RunFiles

if TYPE_CHECKING:
    from .launch import Launcher
    from .object_store import ObjectStore


@dataclass
class Dashboard:
    """The state one dashboard app serves."""

    root: Path
    store: Store
    reader: BulkReader
    launcher: "Launcher"
    files: Artifacts | None = None  # where runs' files live: the root when None
    object_store: "ObjectStore | None" = None  # the team server's files: they are found by project and run id

    def __post_init__(self) -> None:
        if self.object_store is not None:
            self.files = self.object_store.artifacts
        elif self.files is None:
            self.files = LocalArtifacts(self.root)

    def run_files(self, run: RunRecord) -> RunFiles:
        """The run's files, wherever they live; StoreError for a recorded directory outside them.

        On the team server the directory a client recorded is not trusted: the files are
        the object store's ``<project>/<run id>/``, where its files API put them.
        """
        if self.object_store is not None:
            return self.object_store.run_files(run)
        assert self.files is not None  # set by __post_init__
        return RunFiles.of(self.files, run)

    def run_dir(self, run: RunRecord) -> Path:
        """The run's local directory (the launcher's runs); refuses a recorded ``dir`` that points outside the root."""
        from ..artifacts.paths import run_directory

        return run_directory(self.root, run.dir, run.id)


def dashboard(request: Request) -> Dashboard:
    """FastAPI dependency: the app's :class:`Dashboard`."""
    return request.app.state.dashboard


class StrictJSONResponse(JSONResponse):
    """JSON where NaN and infinities are the strings "NaN", "Infinity", "-Infinity"."""

    def render(self, content: Any) -> bytes:
        import json

        return json.dumps(jsonable(content), allow_nan=False, ensure_ascii=False, separators=(",", ":"),
                          default=str).encode("utf-8")
