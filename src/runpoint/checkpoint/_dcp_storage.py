"""``torch.distributed.checkpoint`` (DCP) on runpoint's storage, hashed and without trusting pickles.

Writing: DCP's ``FileSystemWriter`` writes through a file system object; ours
(:class:`ArtifactsFileSystem`) opens every file through runpoint's storage (a local
directory or an fsspec URL) and hashes its bytes (xxh3-128) on their way out, as
:class:`~._streams.HashingSink` does for the safetensors files, so the manifest lists
every DCP file with its size and hash without reading anything back.

Reading: DCP's ``.metadata`` is a pickle, and DCP's default planner loads non-tensor
values with ``torch.load(weights_only=False)``. A checkpoint directory may have been
crafted, so :class:`SafeReader` reads ``.metadata`` with :class:`MetadataUnpickler`, which
builds only the classes DCP's metadata is made of, and the planners here load values
with ``weights_only=True``. The files' hashes are checked against the manifest before
DCP reads any of them (:mod:`._sharded_restore`).
"""

from __future__ import annotations

import contextlib
import io
import pickle
import threading
from typing import Any, Iterator

from torch.distributed.checkpoint import FileSystemReader, FileSystemWriter
from torch.distributed.checkpoint.default_planner import (
    DefaultLoadPlanner,
    _EmptyStateDictLoadPlanner,
)
from torch.distributed.checkpoint.filesystem import FileSystemBase

from ..artifacts.manifest import FileEntry
from ..artifacts.storage import Artifacts
from ._streams import HashingSink

DCP_DIR = "dcp"

_METADATA_CLASSES = {
    "torch.distributed.checkpoint.metadata": {
        "Metadata", "TensorStorageMetadata", "BytesStorageMetadata", "ChunkStorageMetadata", "TensorProperties",
        "MetadataIndex", "StorageMeta", "_MEM_FORMAT_ENCODING",
    },
    "torch.distributed.checkpoint.filesystem": {"_StorageInfo"},
    "torch.serialization": {"_get_layout"},
    "torch": {"Size"},
    "pathlib": {"PosixPath", "PurePosixPath"},
    "collections": {"OrderedDict"},
}


class MetadataUnpickler(pickle.Unpickler):
    """Unpickles DCP metadata: only its dataclasses, ``torch.Size``, dtypes and layouts; nothing callable else."""

    def find_class(self, module: str, name: str) -> Any:
        import torch

        if name in _METADATA_CLASSES.get(module, ()):
            return super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a checkpoint's metadata; refused")


def read_metadata(data: bytes) -> Any:
    """DCP ``Metadata`` from the bytes of a ``.metadata`` file; ValueError if they are not that."""
    from torch.distributed.checkpoint.metadata import Metadata

    try:
        metadata = MetadataUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise ValueError(f"unreadable DCP metadata: {exc}") from None
    if not isinstance(metadata, Metadata):
        raise ValueError(f"DCP metadata is a {type(metadata).__qualname__}, not Metadata")
    return metadata


class _HashingStream(io.RawIOBase):
    """A write-only stream to a storage sink that hashes, counts and can ``tell``."""

    def __init__(self, sink: Any) -> None:
        super().__init__()
        self.hashing = HashingSink(sink)

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:  # type: ignore[override]
        return self.hashing.write(data)

    def tell(self) -> int:
        return self.hashing.count


class ArtifactsFileSystem(FileSystemBase):
    """DCP's file system interface over a runpoint storage; paths are relative to its root.

    ``written`` maps each file written (relative to ``base``) to its manifest entry.

    DCP writes ``.metadata.tmp`` and renames it to ``.metadata``; object stores have no
    rename, and runpoint's commit (a fresh staging directory, the manifest written last)
    needs none, so a ``*.tmp`` file is written under its final name at once and the
    rename (and DCP's removal of an older file by that name) become no-ops.
    """

    def __init__(self, storage: Artifacts, base: str) -> None:
        self.storage = storage
        self.base = base.rstrip("/") + "/"
        self.written: dict[str, FileEntry] = {}
        self._lock = threading.Lock()  # DCP may write with several threads
        self._renamed_early: dict[str, str] = {}  # "x.tmp" -> "x", written as "x" already

    def _relative(self, path: str) -> str:
        return str(path).removeprefix(self.base)

    @contextlib.contextmanager
    def create_stream(self, path: Any, mode: str) -> Iterator[Any]:
        path = str(path)
        if "w" not in mode:
            with self.storage.open_read(path) as stream:
                yield stream
            return
        if path.endswith(".tmp"):
            self._renamed_early[path] = path = path.removesuffix(".tmp")
        sink = self.storage.open_write(path)
        hashed = _HashingStream(sink)
        try:
            yield hashed
            sink.close()  # fsyncs: DCP's own sync_files is off, so it never calls os.sync()
        except BaseException:
            sink.abort()
            raise
        with self._lock:
            self.written[self._relative(path)] = FileEntry(bytes=hashed.hashing.count,
                                                           hash=hashed.hashing.hash.hexdigest())

    def concat_path(self, path: Any, suffix: str) -> str:
        return f"{str(path).rstrip('/')}/{suffix}"

    def rename(self, path: Any, new_path: Any) -> None:
        if self._renamed_early.get(str(path)) == str(new_path):
            del self._renamed_early[str(path)]
            return
        self.storage.rename(str(path), str(new_path))
        with self._lock:
            entry = self.written.pop(self._relative(str(path)), None)
            if entry is not None:
                self.written[self._relative(str(new_path))] = entry

    def init_path(self, path: Any) -> str:
        return str(path)

    def mkdir(self, path: Any) -> None:
        self.storage.makedirs(str(path))

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: Any) -> bool:
        return True

    def exists(self, path: Any) -> bool:
        if str(path) in self._renamed_early.values():
            return False  # the file a pending rename will produce: DCP would remove it first
        return self.storage.exists(str(path))

    def rm_file(self, path: Any) -> None:
        if str(path) not in self._renamed_early.values():
            self.storage.remove_file(str(path))


class HashingWriter(FileSystemWriter):
    """DCP's writer into ``directory/dcp`` of ``storage``; :attr:`written` lists the files with their hashes."""

    def __init__(self, storage: Artifacts, directory: str) -> None:
        super().__init__(f"{directory}/{DCP_DIR}", sync_files=False, overwrite=True)
        self.hashing_fs = ArtifactsFileSystem(storage, directory)
        self.fs = self.hashing_fs  # type: ignore[assignment]
        self.path = f"{directory}/{DCP_DIR}"

    @property
    def written(self) -> dict[str, FileEntry]:
        return self.hashing_fs.written


class SafeReader(FileSystemReader):
    """DCP's reader of ``directory/dcp`` of ``storage``, with :class:`MetadataUnpickler` for ``.metadata``."""

    def __init__(self, storage: Artifacts, directory: str) -> None:
        super().__init__(f"{directory}/{DCP_DIR}")
        self.fs = ArtifactsFileSystem(storage, directory)  # type: ignore[assignment]
        self.path = f"{directory}/{DCP_DIR}"
        self._storage = storage
        self._where = f"{directory}/{DCP_DIR}"

    def read_metadata(self, *args: Any, **kwargs: Any) -> Any:
        from torch.distributed.checkpoint.metadata import StorageMeta

        metadata = read_metadata(self._storage.read_bytes(self._where, ".metadata"))
        if getattr(metadata, "storage_meta", None) is None:
            metadata.storage_meta = StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata


def _load_value(value: io.BytesIO) -> Any:
    import torch

    return torch.load(value, weights_only=True)


class SafeLoadPlanner(DefaultLoadPlanner):
    """DCP's default load planner, loading non-tensor values with ``weights_only=True``."""

    def load_bytes(self, read_item: Any, value: io.BytesIO) -> None:
        from torch.distributed.checkpoint._nested_dict import set_element

        if self.flatten_state_dict:
            set_element(self.original_state_dict, self.mappings[read_item.dest_index.fqn], _load_value(value))
        else:
            self.state_dict[read_item.dest_index.fqn] = _load_value(value)


class SafeEmptyLoadPlanner(_EmptyStateDictLoadPlanner):
    """Rebuilds a whole state dict from the metadata (full tensors), values loaded with ``weights_only=True``."""

    load_bytes = SafeLoadPlanner.load_bytes
