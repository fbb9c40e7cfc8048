"""One sync of one run: send the server what it lacks, in an order that keeps readers consistent.

The order: the run itself (created, or reopened as often as it was resumed here), then
any cut of its history (a resume's rewind), its params, tags and summary, its metric
points and media, its files and checkpoints, and last its final status, so that a reader
who sees ``completed`` on the server sees everything the run recorded.

Metric points, media and alerts are compared by count with what the server holds (asked each
time: the server is the truth, so a batch whose reply was lost is never sent twice).
Every batch carries an idempotency key derived from the run's generation, the key and
the position of its first point, so a batch retried by the HTTP layer is stored once.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..errors import RunNotFoundError, RunpointError
from ..store.base import (
    CheckpointRegistry,
    MediaStore,
    MetricSeries,
    RunRecord,
    RunStatus,
    Store,
    WriteBatch,
)
from ..store.registry import alert_store, checkpoint_registry
from .state import SyncState

POINTS_PER_BATCH = 50_000
MEDIA_PER_BATCH = 64
ALERTS_PER_BATCH = 1_000
_ALL_STEPS = -(2**63)


class FileTarget(Protocol):
    """Where a run's files go (:class:`runpoint.remote.files.RemoteFiles` for a server)."""

    def upload(self, run_id: str, rel_path: str, local_path: str | os.PathLike[str], *, xxh3: str | None = None) -> int: ...

    def upload_checkpoint(self, run_id: str, local_checkpoint_dir: str | os.PathLike[str], rel_dir: str) -> int: ...

    def delete_prefix(self, run_id: str, prefix: str) -> int: ...

    def list(self, run_id: str, prefix: str = "") -> list[tuple[str, int]]: ...

    def download(self, run_id: str, rel_path: str, dest: str | os.PathLike[str]) -> Path: ...


@dataclass
class SyncTarget:
    """The server side of a sync: its store (and registry), and where files go (None: files stay local)."""

    store: Store
    files: FileTarget | None = None

    @property
    def registry(self) -> CheckpointRegistry | None:
        return checkpoint_registry(self.store)


@dataclass
class SyncReport:
    """What one :func:`sync_run` sent, and whether the run is now whole on the server."""

    run_id: str
    created: bool = False
    points: int = 0
    media: int = 0
    alerts: int = 0
    files: int = 0
    bytes: int = 0
    checkpoints: int = 0
    complete: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def sent_anything(self) -> bool:
        return bool(self.created or self.points or self.media or self.alerts or self.files or self.checkpoints)


def sequence_of(generation: int, *parts: object) -> int:
    """A 62-bit idempotency key for a batch: the same parts give the same key."""
    digest = hashlib.blake2b(repr((generation, *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 2


def sync_run(
    source: Store, root: Path, state: SyncState, target: SyncTarget, run_id: str, *, final: bool = True,
) -> SyncReport:
    """Bring ``run_id`` of ``source`` (a local root at ``root``) up to date on ``target``.

    ``final=False`` (the live replicator between flushes) leaves files that keep growing
    for a later pass when they were sent recently.
    """
    from .files import sync_checkpoints, sync_files

    report = SyncReport(run_id)
    local = source.get_run(run_id)
    generation = _ensure_remote_run(source, state, target, local, report)
    _push_run_values(source, state, target, local, generation)
    report.points = _push_metrics(source, target.store, run_id, generation)
    report.media = _push_media(source, root, target.store, local, generation)
    report.alerts = _push_alerts(source, target.store, run_id, generation)
    if target.files is not None:
        run_dir = root / local.dir
        report.files, report.bytes = sync_files(state, target.files, run_id, run_dir, final=final)
        report.checkpoints = sync_checkpoints(source, state, target, run_id, run_dir)
    report.complete = _push_status(target.store, local)
    state.update(run_id, done=int(report.complete), pending=0, error=None, resume_count=local.resume_count,
                 synced_at=time.time())
    return report


def _ensure_remote_run(
    source: Store, state: SyncState, target: SyncTarget, local: RunRecord, report: SyncReport
) -> int:
    """Create or catch up the run on the server; the generation to key batches with."""
    remote_store = target.store
    known = state.run(local.id)
    try:
        remote = remote_store.get_run(local.id)
    except RunNotFoundError:
        created = RunRecord(**{**local.__dict__, "status": RunStatus.RUNNING, "ended_at": None, "error": None})
        remote_store.create_run(created, source.get_params(local.id), source.get_meta(local.id))
        report.created = True
        state.update(local.id, resume_count=local.resume_count, pushed=None)
        return state.run(local.id).generation
    generation = known.generation
    truncations = state.truncations(local.id)
    resumed_here = known.resume_count is not None and local.resume_count > known.resume_count
    while remote.resume_count < local.resume_count:
        if remote.status is RunStatus.RUNNING:
            remote_store.set_status(local.id, RunStatus.CRASHED, error="superseded by a resumed attempt",
                                    ended_at=local.created_at)
        remote = remote_store.reopen_run(local.id, host=local.host or "", pid=local.pid or 0, now=local.heartbeat_at)
    if truncations:
        for truncation_id, after_step in truncations:
            remote_store.truncate_metrics(local.id, after_step)
            state.truncation_applied(truncation_id)
        generation = state.next_generation(local.id)
    elif resumed_here:
        # the local history was cut where no journal says how: send it again whole
        remote_store.truncate_metrics(local.id, _ALL_STEPS)
        generation = state.next_generation(local.id)
        report.notes.append("the run's history was cut locally (a resume): its points were sent again")
    elif _server_ahead(source, remote_store, local.id):
        # another copy of the run reached the server: never replace what it holds with less
        raise RunpointError(f"the server holds points of run {local.id} that {source.location} lacks "
                            "(another copy of the run was sent there); nothing sent")
    return generation


def _server_ahead(source: Store, remote: Store, run_id: str) -> bool:
    local = source.metric_stats(run_id)
    return any(stats.count > (local[key].count if key in local else 0) for key, stats in remote.metric_stats(run_id).items())


def _push_run_values(source: Store, state: SyncState, target: SyncTarget, local: RunRecord, generation: int) -> None:
    params, summary = source.get_params(local.id), source.get_summary(local.id)
    ranks = source.list_ranks(local.id)
    fingerprint = hashlib.sha256(json.dumps(
        [params, summary, sorted(local.tags), [r.__dict__ for r in ranks]], sort_keys=True, default=str,
    ).encode()).hexdigest()
    if state.run(local.id).pushed != fingerprint:
        deleted = tuple(set(target.store.get_summary(local.id)) - set(summary))
        target.store.write(local.id, WriteBatch(params=params, tags=local.tags, summary=summary,
                                                summary_deleted=deleted))
        for rank in ranks:
            target.store.register_rank(rank)
        state.update(local.id, pushed=fingerprint)
    if local.status is RunStatus.RUNNING:
        target.store.write(local.id, WriteBatch(heartbeat_at=local.heartbeat_at))


def _read_tail(source: Store, run_id: str, key: str, offset: int) -> MetricSeries:
    from ..store.sqlite import SQLiteStore
    from ..store.sqlite.tail import read_metric_tail

    if isinstance(source, SQLiteStore):
        return read_metric_tail(source, run_id, key, offset)
    series = source.read_metric(run_id, key)
    return MetricSeries(series.steps[offset:], series.values[offset:], series.times[offset:])


def _push_metrics(source: Store, remote: Store, run_id: str, generation: int) -> int:
    local_stats = source.metric_stats(run_id)
    remote_stats = remote.metric_stats(run_id)
    sent = 0
    pending: dict[str, MetricSeries] = {}
    starts: dict[str, int] = {}
    size = 0
    for key, stats in sorted(local_stats.items()):
        have = remote_stats[key].count if key in remote_stats else 0
        if stats.count <= have:
            continue
        tail = _read_tail(source, run_id, key, have)
        for start in range(0, len(tail), POINTS_PER_BATCH):
            piece = MetricSeries(*(column[start:start + POINTS_PER_BATCH] for column in (tail.steps, tail.values, tail.times)))
            pending[key], starts[key] = piece, have + start
            size += len(piece)
            if size >= POINTS_PER_BATCH:
                sent += _send_points(remote, run_id, generation, pending, starts)
                pending, starts, size = {}, {}, 0
    if pending:
        sent += _send_points(remote, run_id, generation, pending, starts)
    return sent


def _send_points(remote: Store, run_id: str, generation: int, metrics: dict[str, MetricSeries], starts: dict[str, int]) -> int:
    where = sorted((key, starts[key], len(series)) for key, series in metrics.items())
    remote.write(run_id, WriteBatch(metrics=dict(metrics), sequence=sequence_of(generation, "metrics", where)))
    return sum(len(s) for s in metrics.values())


def _push_media(source: Store, root: Path, remote: Store, local: RunRecord, generation: int) -> int:
    from ..store.sqlite import SQLiteStore
    from ..store.sqlite.media import SQLiteMediaStore

    local_media = SQLiteMediaStore(source) if isinstance(source, SQLiteStore) else source
    if not isinstance(local_media, MediaStore) or not isinstance(remote, MediaStore):
        return 0
    remote_counts = {k.key: k.count for k in remote.media_keys(local.id)}
    sent = 0
    for key in local_media.media_keys(local.id):
        if key.count <= remote_counts.get(key.key, 0):
            continue
        have = {r.step for r in remote.read_media(local.id, key.key)} if key.key in remote_counts else set()
        missing = [r for r in local_media.read_media(local.id, key.key) if r.step not in have]
        for start in range(0, len(missing), MEDIA_PER_BATCH):
            records = [_with_file(r, root / local.dir) for r in missing[start:start + MEDIA_PER_BATCH]]
            steps = [r.step for r in records]
            remote.write(local.id, WriteBatch(media=records, sequence=sequence_of(generation, "media", key.key, steps)))
            sent += len(records)
    return sent


def _push_alerts(source: Store, remote: Store, run_id: str, generation: int) -> int:
    """Send the alerts the server lacks: a run's alerts only grow, so the server's count says which."""
    local_alerts, remote_alerts = alert_store(source), alert_store(remote)
    if local_alerts is None or remote_alerts is None:
        return 0
    local_count = sum(local_alerts.alert_counts([run_id]).get(run_id, {}).values())
    have = sum(remote_alerts.alert_counts([run_id]).get(run_id, {}).values())
    if local_count <= have:
        return 0
    missing = local_alerts.read_alerts(run_id)[have:]
    for start in range(0, len(missing), ALERTS_PER_BATCH):
        records = missing[start:start + ALERTS_PER_BATCH]
        sequence = sequence_of(generation, "alerts", have + start, len(records))
        remote.write(run_id, WriteBatch(alerts=records, sequence=sequence))
    return len(missing)


def _with_file(record: Any, run_dir: Path) -> Any:
    from dataclasses import replace

    if record.path is None or record.file is not None:
        return record
    try:
        return replace(record, file=(run_dir / record.path).read_bytes())
    except OSError:
        return record  # the file is gone locally: the server gets the record without it


def _push_status(remote: Store, local: RunRecord) -> bool:
    """Send a final status once everything else is there; True when the run is whole on the server."""
    if not local.status.is_final:
        return False
    current = remote.get_run(local.id)
    if current.status is not local.status or current.ended_at != local.ended_at:
        remote.set_status(local.id, local.status, error=local.error, ended_at=local.ended_at)
    return True
