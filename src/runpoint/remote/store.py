"""``HttpStore``: the Store, MediaStore, CheckpointRegistry, ModelRegistry and AlertStore of a runpoint server, over its store API.

``open_store("https://runpoint.example.com")`` returns one; it behaves as the local stores
do (the same contract test runs over it), so everything that takes a store (queries, the
CLI's reads, a run's writer) can record to or read from a team server. Batches travel as
msgpack with metric series as little-endian arrays (:mod:`runpoint.store.wire`); a batch
with a ``sequence`` is retried safely after a lost reply (the server applies it once).

Example::

    store = HttpStore("https://runpoint.example.com", token=os.environ["RUNPOINT_TOKEN"])
    store.write(run_id, WriteBatch(metrics={"loss": series}, sequence=7))
    print(store.read_metric(run_id, "loss").values[-1])
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Mapping, Sequence
from urllib.parse import quote

from ..errors import (
    AccessDeniedError,
    InvalidArgumentError,
    RunNotFoundError,
    RunpointError,
    StoreError,
)
from ..store.base import (
    AlertRecord,
    CheckpointRecord,
    MediaKey,
    MediaRecord,
    MetricSeries,
    MetricStats,
    RankRecord,
    RunQuery,
    RunRecord,
    RunStatus,
    WriteBatch,
)
from ..store.registry import register_backend
from ..store.wire import (
    MSGPACK,
    alert_from_wire,
    checkpoint_from_wire,
    encode_batch,
    media_from_wire,
    media_path_leaves,
    rank_from_wire,
    run_from_wire,
    run_to_wire,
    series_from_wire,
    stats_from_wire,
)
from .http import HttpSession
from .models import HttpModelRegistry

_KEYS_PER_REQUEST = 100  # metric_stats of many keys: several requests, so that URLs stay short


def _query_to_wire(query: RunQuery) -> dict[str, Any]:
    out = asdict(query)
    out["tags"], out["ids"] = list(query.tags), list(query.ids)
    out["statuses"] = [status.value for status in query.statuses]
    out["conditions"] = [asdict(condition) for condition in query.conditions]
    return out


class HttpStore(HttpModelRegistry):
    """A store served by ``runpoint server`` at ``url`` (token: the argument, else ``$RUNPOINT_TOKEN``)."""

    def __init__(self, url: str, *, token: str | None = None, session: HttpSession | None = None) -> None:
        self._http = session if session is not None else HttpSession(url, token=token)
        self.location = self._http.location

    def __repr__(self) -> str:
        return f"HttpStore({self.location!r})"

    def _run(self, run_id: str, tail: str = "") -> str:
        return f"/api/store/runs/{quote(run_id, safe='')}{tail}"

    def _get(self, run_id: str, tail: str = "", **kwargs: Any) -> Any:
        return self._http.call("GET", self._run(run_id, tail), run_id=run_id, **kwargs)

    # -- runs ------------------------------------------------------------------------

    def create_run(
        self, run: RunRecord, params: Mapping[str, Any] | None = None, meta: Mapping[str, Any] | None = None
    ) -> None:
        body = {"run": run_to_wire(run), "params": dict(params or {}), "meta": dict(meta) if meta is not None else None}
        self._http.call("POST", "/api/store/runs", json_body=body, idempotent=False, run_id=run.id)

    def write(self, run_id: str, batch: WriteBatch) -> None:
        """Send one batch (retried when it has a ``sequence``); StoreError when the run does not exist."""
        if batch.is_empty():
            return
        for record in batch.media:
            if media_path_leaves(record.path):
                raise StoreError(f"media path {record.path!r} of key {record.key!r} leaves the run's media/",
                                 self.location)
        try:
            self._http.request("POST", self._run(run_id, "/batches"), content=encode_batch(batch),
                               content_type=MSGPACK, idempotent=batch.sequence is not None, run_id=run_id)
        except RunNotFoundError as exc:  # as the local stores: writing to a missing run is a StoreError
            raise StoreError(str(exc), self.location) from exc

    def batch_applied(self, run_id: str, sequence: int) -> bool:
        """True if a batch of ``run_id`` with this sequence has been applied."""
        return bool(self._get(run_id, f"/batches/{int(sequence)}")["applied"])

    def set_status(
        self, run_id: str, status: RunStatus, *, error: str | None = None, ended_at: float | None = None,
        expect: Sequence[RunStatus] | None = None, heartbeat_before: float | None = None,
    ) -> bool:
        body = {"status": RunStatus(status).value, "error": error, "ended_at": ended_at,
                "expect": [RunStatus(s).value for s in expect] if expect is not None else None,
                "heartbeat_before": heartbeat_before}
        return bool(self._http.call("POST", self._run(run_id, "/status"), json_body=body, idempotent=False,
                                    run_id=run_id)["changed"])

    def reopen_run(self, run_id: str, *, host: str, pid: int, now: float) -> RunRecord:
        body = {"host": host, "pid": pid, "now": now}
        return run_from_wire(self._http.call("POST", self._run(run_id, "/reopen"), json_body=body, idempotent=False,
                                             run_id=run_id))

    def register_rank(self, record: RankRecord, *, reset: bool = False) -> None:
        body = {k: v for k, v in asdict(record).items() if k not in ("run_id", "rank")}
        body["status"], body["reset"] = RunStatus(record.status).value, reset
        self._http.call("PUT", self._run(record.run_id, f"/ranks/{int(record.rank)}"), json_body=body,
                        run_id=record.run_id)

    def list_ranks(self, run_id: str) -> list[RankRecord]:
        return [rank_from_wire(value) for value in self._get(run_id, "/ranks")]

    def set_rank_status(
        self, run_id: str, rank: int, status: RunStatus, *, error: str | None = None, ended_at: float | None = None
    ) -> None:
        body = {"status": RunStatus(status).value, "error": error, "ended_at": ended_at}
        self._http.call("POST", self._run(run_id, f"/ranks/{int(rank)}/status"), json_body=body, run_id=run_id)

    def get_run(self, run_id: str) -> RunRecord:
        return run_from_wire(self._get(run_id))

    def find_runs(self, text: str) -> list[RunRecord]:
        return [run_from_wire(value) for value in self._http.call("GET", "/api/store/runs", params={"text": text})]

    def list_runs(self, query: RunQuery = RunQuery()) -> list[RunRecord]:
        values = self._http.call("POST", "/api/store/runs/search", json_body=_query_to_wire(query))
        return [run_from_wire(value) for value in values]

    def count_runs(self, project: str | None = None) -> int:
        params = {"project": project} if project is not None else None
        return int(self._http.call("GET", "/api/store/count", params=params)["count"])

    def delete_run(self, run_id: str) -> None:
        self._http.call("DELETE", self._run(run_id), idempotent=False, run_id=run_id)

    def truncate_metrics(self, run_id: str, after_step: int) -> int:
        body = {"after_step": after_step}
        return int(self._http.call("POST", self._run(run_id, "/metrics/truncate"), json_body=body, idempotent=False,
                                   run_id=run_id)["dropped"])

    # -- reads -----------------------------------------------------------------------

    def get_params(self, run_id: str) -> dict[str, Any]:
        return dict(self._get(run_id, "/params"))

    def get_meta(self, run_id: str) -> dict[str, Any]:
        return dict(self._get(run_id, "/meta"))

    def get_summary(self, run_id: str) -> dict[str, Any]:
        return dict(self._get(run_id, "/summary"))

    def metric_keys(self, run_id: str) -> list[str]:
        return list(self._get(run_id, "/metrics"))

    def metric_stats(self, run_id: str, keys: Sequence[str] | None = None) -> dict[str, MetricStats]:
        if keys is None:
            groups: list[list[str]] = [[]]
        else:
            wanted = list(keys)
            groups = [wanted[i:i + _KEYS_PER_REQUEST] for i in range(0, len(wanted), _KEYS_PER_REQUEST)]
        out: dict[str, MetricStats] = {}
        for group in groups:
            values = self._get(run_id, "/metrics/stats", params=[("key", key) for key in group])
            out.update({name: stats_from_wire(value) for name, value in values.items()})
        return out

    def read_metric(
        self, run_id: str, key: str, *, min_step: int | None = None, max_step: int | None = None
    ) -> MetricSeries:
        params = {"key": key, "min_step": min_step, "max_step": max_step}
        value = self._get(run_id, "/metrics/series", params={k: v for k, v in params.items() if v is not None})
        return series_from_wire(value, f"metric {key!r}")

    def close(self) -> None:
        self._http.close()

    # -- media (MediaStore) ----------------------------------------------------------

    def media_keys(self, run_id: str) -> list[MediaKey]:
        return [MediaKey(**value) for value in self._get(run_id, "/media")]

    def read_media(
        self, run_id: str, key: str, *, step: int | None = None,
        min_step: int | None = None, max_step: int | None = None,
    ) -> list[MediaRecord]:
        params = {"key": key, "step": step, "min_step": min_step, "max_step": max_step}
        values = self._get(run_id, "/media/records", params={k: v for k, v in params.items() if v is not None})
        return [media_from_wire(value, f"media {key!r}") for value in values]

    def read_media_file(self, run_id: str, key: str, step: int) -> bytes | None:
        """The bytes of one media record's file (an image's PNG), None if it has none."""
        try:
            response = self._http.request("GET", self._run(run_id, "/media/file"),
                                          params={"key": key, "step": step}, run_id=run_id)
        except (RunNotFoundError, AccessDeniedError, InvalidArgumentError, StoreError):
            raise
        except RunpointError:  # 404 for the file, not the run: the record has none
            return None
        return response.content

    # -- the checkpoint registry (CheckpointRegistry) --------------------------------

    def add_checkpoint(self, record: CheckpointRecord) -> None:
        body = {k: v for k, v in asdict(record).items() if k != "run_id"}
        self._http.call("POST", self._run(record.run_id, "/checkpoints"), json_body=body, run_id=record.run_id)

    def mark_checkpoint_deleted(self, run_id: str, step: int, deleted_at: float) -> None:
        self._http.call("POST", self._run(run_id, f"/checkpoints/{int(step)}/deleted"),
                        json_body={"deleted_at": deleted_at}, run_id=run_id)

    def set_best_checkpoint(self, run_id: str, step: int | None) -> None:
        self._http.call("PUT", self._run(run_id, "/checkpoints/best"), json_body={"step": step}, run_id=run_id)

    def list_checkpoints(self, run_id: str, *, include_deleted: bool = False) -> list[CheckpointRecord]:
        values = self._get(run_id, "/checkpoints", params={"include_deleted": "true" if include_deleted else "false"})
        return [checkpoint_from_wire(value) for value in values]

    # -- alerts (AlertStore) ---------------------------------------------------------

    def read_alerts(self, run_id: str, *, after_id: int = 0, limit: int | None = None) -> list[AlertRecord]:
        params = {"after_id": int(after_id)} | ({"limit": max(0, int(limit))} if limit is not None else {})
        return [alert_from_wire(value, "alert", run_id) for value in self._get(run_id, "/alerts", params=params)]

    def alert_counts(self, run_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        ids = list(dict.fromkeys(run_ids))
        out: dict[str, dict[str, int]] = {}
        for start in range(0, len(ids), 10_000):
            body = {"run_ids": ids[start:start + 10_000]}
            out.update(self._http.call("POST", "/api/store/alerts/counts", json_body=body))
        return out


def _open(uri: str, create: bool) -> HttpStore:
    return HttpStore(uri)  # the server creates and migrates its own database: ``create`` has no say


register_backend("http", _open)
register_backend("https", _open)
