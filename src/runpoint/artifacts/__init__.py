"""Where a run's files live: a local directory or any fsspec URL, and the layout of a run.

:class:`RunPaths` is the one place that knows a run's file names; :func:`open_artifacts`
gives the :class:`Artifacts` of a location (local or remote). Internal: users reach files
through :mod:`runpoint.query` and the CLI.
"""

from .paths import DB_NAME, RunPaths, resolve_inside, resolve_root, run_directory
from .storage import (
    Artifacts,
    FileSink,
    LocalArtifacts,
    RemoteArtifacts,
    open_artifacts,
)

__all__ = [
    "DB_NAME",
    "Artifacts",
    "FileSink",
    "LocalArtifacts",
    "RemoteArtifacts",
    "RunPaths",
    "open_artifacts",
    "resolve_inside",
    "resolve_root",
    "run_directory",
]
