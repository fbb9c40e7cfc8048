"""The manifest: what a checkpoint holds, and the record whose presence commits it.

Every checkpoint directory has a ``manifest.json``, written last. It lists each data
file with its size and a fast content hash (xxh3-128), the step, the metrics given to
``save``, the wall time, the sequence number of the save (the newest save is the
``latest``), the state's top-level keys, which random generators were captured, and
the versions of runpoint, Python and torch that wrote it.

An encrypted checkpoint's manifest stays readable (listing, retention and keyless
verification need it) and adds an ``encryption`` section: the cipher, the key id, the
segment size and a MAC over the rest of the manifest (:func:`signed_bytes`), and each
file's ``file_id``; its sizes and hashes are those of the encrypted bytes.

It is plain JSON and this module imports nothing heavy, so tools can read checkpoints
without torch::

    manifest = Manifest.from_json(Path("checkpoints/step-000500/manifest.json").read_text())
    print(manifest.step, manifest.metrics, manifest.total_bytes)
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import CheckpointCorruptError

MANIFEST_NAME = "manifest.json"
FORMAT = "runpoint-checkpoint"
FORMAT_VERSION = 1
SHARDED_FORMAT_VERSION = 2  # only sharded checkpoints carry it: an older runpoint refuses them, saying so
ENCRYPTED_FORMAT_VERSION = 3  # only encrypted ones carry it, for the same reason
HASH_NAME = "xxh3_128"
MAX_MANIFEST_BYTES = 16 * 2**20  # a manifest lists a few files; anything larger is not one

_NAME = re.compile(r"^step-(\d{6,})$")


def checkpoint_name(step: int) -> str:
    """The directory name of a checkpoint: ``step-000500``."""
    return f"step-{step:06d}"


def parse_step(name: str) -> int | None:
    """The step of a checkpoint directory name, or None if ``name`` is not one."""
    match = _NAME.match(name)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class FileEntry:
    """One data file: bytes as stored, their hash, and the size before compression."""

    bytes: int
    hash: str
    raw_bytes: int | None = None  # set when the file is compressed
    file_id: str | None = None  # set when the file is encrypted: its salt, binding it to this manifest


@dataclass(frozen=True)
class Encryption:
    """How an encrypted checkpoint's files were sealed, and the MAC that authenticates its manifest."""

    cipher: str
    key_id: str
    segment_bytes: int
    mac: str = ""


def signed_bytes(data: Mapping[str, Any]) -> bytes:
    """The canonical bytes of a manifest document that its MAC covers: everything but the MAC."""
    encryption = dict(data.get("encryption") or {})
    encryption.pop("mac", None)
    document = {**data, "encryption": encryption}
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def _encryption(value: Any) -> Encryption | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"encryption entry {value!r} is not one")
    segment = value.get("segment_bytes")
    if type(segment) is not int or segment < 1:
        raise ValueError(f"segment size {segment!r} is not a size")
    return Encryption(cipher=str(value["cipher"]), key_id=str(value["key_id"]), segment_bytes=segment,
                      mac=str(value.get("mac", "")))


def _number(value: Any) -> float | str:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def _size(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"a file size must be an integer >= 0, got {value!r}")
    return value


def _from_number(value: Any) -> float:
    return float(value)  # float() reads "NaN", "Infinity" and "-Infinity" too


_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
DCP_METADATA = ".metadata"  # the one dotted name a sharded checkpoint holds (torch.distributed.checkpoint's)


def _check_file_name(name: str, nested: bool) -> None:
    """A file name must stay inside its checkpoint: sharded checkpoints have subdirectories
    (``dcp/__0_0.distcp``, ``ranks/rank-00000/state.msgpack``), of plain names only."""
    if not nested:
        if "/" in name or "\\" in name or name.startswith(".") or "\x00" in name:
            raise ValueError(f"file name {name!r} leaves the checkpoint directory")
        return
    parts = name.split("/")
    if len(parts) > 3 or not all(_PART.match(part) or part == DCP_METADATA for part in parts):
        raise ValueError(f"file name {name!r} leaves the checkpoint directory")


def _sharded(value: Any) -> tuple[int, tuple[str, ...]] | None:
    """(world size, keys saved by DCP) of a manifest's ``sharded`` entry, or None."""
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("keys"), list):
        raise ValueError(f"sharded entry {value!r} is not one")
    world = value.get("world_size")
    if type(world) is not int or world < 1:
        raise ValueError(f"world size {world!r} is not a number of ranks")
    return world, tuple(str(key) for key in value["keys"])


@dataclass(frozen=True)
class Manifest:
    """The parsed ``manifest.json`` of one checkpoint."""

    step: int
    sequence: int
    created_at: float
    files: dict[str, FileEntry]
    metrics: dict[str, float] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # top-level state key -> kind
    rng: tuple[str, ...] = ()
    compression: str | None = None
    run_id: str | None = None
    tensors: int = 0
    versions: dict[str, str] = field(default_factory=dict)
    world_size: int = 1
    sharded: tuple[str, ...] | None = None  # the keys saved through torch.distributed.checkpoint; None: one process
    encryption: Encryption | None = None
    signed: bytes | None = field(default=None, repr=False, compare=False)  # what the MAC covers, as read

    @property
    def is_sharded(self) -> bool:
        return self.sharded is not None

    @property
    def total_bytes(self) -> int:
        return sum(entry.bytes for entry in self.files.values())

    def to_json(self) -> str:
        return json.dumps(self.to_data(), indent=2, allow_nan=False) + "\n"

    def to_data(self) -> dict[str, Any]:
        """The manifest as the JSON document it is written as."""
        data: dict[str, Any] = {
            "format": FORMAT,
            "format_version": ENCRYPTED_FORMAT_VERSION if self.encryption is not None else
                              SHARDED_FORMAT_VERSION if self.sharded is not None else FORMAT_VERSION,
            "step": self.step,
            "sequence": self.sequence,
            "created_at": self.created_at,
            "metrics": {key: _number(value) for key, value in self.metrics.items()},
            "keys": self.keys,
            "rng": list(self.rng),
            "compression": self.compression,
            "run_id": self.run_id,
            "tensors": self.tensors,
            "hash": HASH_NAME,
            "files": {
                name: {"bytes": e.bytes, "hash": e.hash, **({"raw_bytes": e.raw_bytes} if e.raw_bytes is not None else {}),
                       **({"file_id": e.file_id} if e.file_id is not None else {})}
                for name, e in self.files.items()
            },
            "versions": self.versions,
        }
        if self.sharded is not None:  # absent otherwise: single-process manifests stay as they were
            data["sharded"] = {"world_size": self.world_size, "keys": list(self.sharded)}
        if self.encryption is not None:  # absent otherwise: unencrypted manifests stay as they were
            e = self.encryption
            data["encryption"] = {"cipher": e.cipher, "key_id": e.key_id, "segment_bytes": e.segment_bytes, "mac": e.mac}
        return data

    @classmethod
    def from_json(cls, text: str | bytes, path: str = "manifest.json") -> "Manifest":
        """Parse a manifest; :class:`CheckpointCorruptError` if it is not a valid one."""
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ValueError("not a runpoint checkpoint manifest")
            if int(data.get("format_version", 0)) > ENCRYPTED_FORMAT_VERSION:
                raise ValueError(
                    f"written by a newer runpoint (format {data['format_version']}); upgrade runpoint to read it"
                )
            if data.get("hash", HASH_NAME) != HASH_NAME:
                raise ValueError(f"unknown hash {data['hash']!r}")
            files = {
                str(name): FileEntry(
                    bytes=_size(entry["bytes"]), hash=str(entry["hash"]),
                    raw_bytes=_size(entry["raw_bytes"]) if entry.get("raw_bytes") is not None else None,
                    file_id=str(entry["file_id"]) if entry.get("file_id") is not None else None,
                )
                for name, entry in data["files"].items()
            }
            sharded = _sharded(data.get("sharded"))
            for name in files:
                _check_file_name(name, nested=sharded is not None)
            compression = data.get("compression")
            if compression is not None and not isinstance(compression, str):
                raise ValueError(f"compression {compression!r} is not a name")
            return cls(
                step=int(data["step"]),
                sequence=int(data.get("sequence", 0)),
                created_at=float(data["created_at"]),
                files=files,
                metrics={str(k): _from_number(v) for k, v in (data.get("metrics") or {}).items()},
                keys={str(k): str(v) for k, v in (data.get("keys") or {}).items()},
                rng=tuple(str(r) for r in data.get("rng") or ()),
                compression=compression,
                run_id=data.get("run_id"),
                tensors=int(data.get("tensors", 0)),
                versions={str(k): str(v) for k, v in (data.get("versions") or {}).items()},
                world_size=sharded[0] if sharded is not None else 1,
                sharded=sharded[1] if sharded is not None else None,
                encryption=_encryption(data.get("encryption")),
                signed=signed_bytes(data) if data.get("encryption") is not None else None,
            )
        except RecursionError:  # a crafted, deeply nested document
            raise CheckpointCorruptError(path.rsplit("/", 1)[0], MANIFEST_NAME, "unreadable manifest: nested too deeply") from None
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise CheckpointCorruptError(path.rsplit("/", 1)[0], MANIFEST_NAME, f"unreadable manifest: {exc}") from None


@dataclass(frozen=True)
class CheckpointInfo:
    """A committed checkpoint, as :meth:`CheckpointManager.list` and friends return it.

    ``path`` is the checkpoint's directory (a local path or a URL).
    """

    step: int
    path: str
    created_at: float
    bytes: int
    metrics: Mapping[str, float]
    manifest: Manifest = field(repr=False, compare=False)

    @property
    def name(self) -> str:
        return checkpoint_name(self.step)

    @property
    def sequence(self) -> int:
        return self.manifest.sequence
