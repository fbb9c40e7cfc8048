"""A checkpoint as a local directory: as it is on this machine, or fetched from a team server.

On a team server (``--root https://...``) a run's checkpoints are files of the run there
(``runpoint sync`` uploads them); they are downloaded into a temporary directory and then
verified like local ones (the manifest's digest, every file's hash).

Example::

    with local_checkpoint(store, location) as path:
        state = load_pinned(path, version.manifest_hash)
"""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import CheckpointNotFoundError
from ..store import Store


@contextmanager
def local_checkpoint(store: Store, location: str) -> Iterator[str]:
    """``location`` itself, or, for a checkpoint on the team server ``store``, a temporary copy of it."""
    prefix = store.location.rstrip("/") + "/"
    if "://" not in store.location or not location.startswith(prefix):
        yield location
        return
    from ..remote import RemoteFiles

    _project, run_id, inside = location[len(prefix):].split("/", 2)
    files = RemoteFiles(store.location, token=getattr(getattr(store, "_http", None), "_token", None))
    listed = files.list(run_id, inside.rstrip("/") + "/")
    if not listed:
        raise CheckpointNotFoundError(location)
    with tempfile.TemporaryDirectory(prefix="runpoint-model-") as scratch:
        for path, _size in listed:
            target = Path(scratch) / Path(path).relative_to(inside)
            target.parent.mkdir(parents=True, exist_ok=True)
            files.download(run_id, path, target)
        yield scratch
