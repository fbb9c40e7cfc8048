"""Opening the Artifacts of a location: a local path, ``file://`` or an fsspec URL."""

from __future__ import annotations

import os
from typing import Any, Mapping

from .base import Artifacts, FileSink
from .local import LocalArtifacts, NotRegularFileError, open_regular
from .remote import RemoteArtifacts

__all__ = ["Artifacts", "FileSink", "LocalArtifacts", "NotRegularFileError", "RemoteArtifacts", "is_url",
           "open_artifacts", "open_regular"]


def is_url(location: str) -> bool:
    """True for a URL fsspec handles (``s3://...``); False for a local path or ``file://``."""
    return "://" in location and not location.startswith("file://")


def open_artifacts(location: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None) -> Artifacts:
    """The :class:`Artifacts` at ``location``: :class:`LocalArtifacts` for a path or ``file://``,
    :class:`RemoteArtifacts` for any other URL (``storage_options`` go to fsspec).

    Example::

        files = open_artifacts("s3://bucket/run/checkpoints", {"endpoint_url": url})
        files.write_small("step-000010\\n", "latest")
    """
    text = os.fspath(location)
    if text.startswith("file://"):
        text = text[len("file://"):]
    if is_url(text):
        return RemoteArtifacts(text, storage_options)
    return LocalArtifacts(text)
