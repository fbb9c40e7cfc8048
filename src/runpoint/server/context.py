"""What every route of the dashboard reads from: the root, its store and the launcher."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse

from .._util.jsonable import jsonable
from ..store.base import RunRecord, Store
from ..store.bulk import BulkReader

if TYPE_CHECKING:
    from .launch import Launcher


@dataclass
class Dashboard:
    """The state one dashboard app serves."""

    root: Path
    store: Store
    reader: BulkReader
    launcher: "Launcher"

    def run_dir(self, run: RunRecord) -> Path:
        """The run's directory; refuses a recorded ``dir`` that points outside the root."""
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
