"""Alerts in every store backend (SQLite root and URI, PostgreSQL, a team server over HTTP): written with a
batch in its transaction, stored once per sequence, read back in order, counted per level, and sent by sync."""

from __future__ import annotations

import time

import pytest

from runpoint.errors import InvalidArgumentError, StoreError
from runpoint.store import AlertRecord, AlertStore, WriteBatch, alert_store
from runpoint.store.wire import batch_from_wire, decode_batch, encode_batch

from .test_store_contract import BACKENDS, _record, _series


@pytest.fixture(params=sorted(BACKENDS))
def store(request, tmp_path):
    backend = BACKENDS[request.param](request, tmp_path)
    yield backend
    backend.close()


def _alert(title: str, level: str = "warning", kind: str = "user", **fields) -> AlertRecord:
    return AlertRecord(run_id="", time=fields.pop("time", 1000.0), level=level, kind=kind, title=title, **fields)


def test_alerts_are_written_with_their_batch_once_and_read_in_order(store) -> None:
    alerts = alert_store(store)
    assert isinstance(alerts, AlertStore)
    store.create_run(_record("a"))
    store.create_run(_record("b"))
    first = WriteBatch(metrics={"loss": _series([0, 1], [1.0, 2.0])}, sequence=1, alerts=[
        _alert("loss spiked", kind="spike", step=1, key="train/loss", text="z = 9.1"),
        _alert("NaN in grad", level="error", kind="nonfinite", step=1, key="grad/norm"),
    ])
    store.write("a", first)
    store.write("a", first)  # a retry after a lost reply: stored once, alerts too
    store.write("a", WriteBatch(alerts=[_alert("note", level="info", text="é ünïcode ✓")], sequence=2))
    store.write("b", WriteBatch(alerts=[_alert("b's")]))

    got = alerts.read_alerts("a")
    assert [(a.title, a.level, a.kind, a.step, a.key, a.text) for a in got] == [
        ("loss spiked", "warning", "spike", 1, "train/loss", "z = 9.1"),
        ("NaN in grad", "error", "nonfinite", 1, "grad/norm", ""),
        ("note", "info", "user", None, None, "é ünïcode ✓"),
    ]
    assert all(a.run_id == "a" and a.time == 1000.0 for a in got)
    assert got[0].id > 0 and got[0].id < got[1].id < got[2].id
    assert [a.title for a in alerts.read_alerts("a", after_id=got[0].id)] == ["NaN in grad", "note"]
    assert [a.title for a in alerts.read_alerts("a", after_id=got[0].id, limit=1)] == ["NaN in grad"]
    assert alerts.read_alerts("a", after_id=got[2].id) == []
    assert len(store.read_metric("a", "loss")) == 2

    assert alerts.alert_counts(["a", "b", "nope"]) == {"a": {"warning": 1, "error": 1, "info": 1}, "b": {"warning": 1}}
    assert alerts.alert_counts([]) == {}
    store.delete_run("b")
    assert alerts.alert_counts(["a", "b"]) == {"a": {"warning": 1, "error": 1, "info": 1}}
    assert alerts.read_alerts("b") == []


def test_a_batch_of_only_alerts_to_a_missing_run_fails_whole(store) -> None:
    with pytest.raises(StoreError):
        store.write("ghost", WriteBatch(alerts=[_alert("x")], sequence=5))
    assert alert_store(store).read_alerts("ghost") == []


def test_alerts_on_the_wire_round_trip_and_bad_fields_are_named() -> None:
    batch = WriteBatch(metrics={"l": _series([1], [0.5])}, sequence=3, alerts=[_alert("t", step=4, key="k", text="x")])
    decoded = decode_batch(encode_batch(batch))
    assert decoded.alerts == batch.alerts and list(decoded.metrics["l"].values) == [0.5]
    good = {"run_id": "", "time": 1.0, "level": "warning", "kind": "user", "title": "t"}
    for field, bad in [("level", "fatal"), ("title", ""), ("title", "x" * 1001), ("time", float("nan")),
                       ("kind", "a\nb"), ("step", 1.5), ("key", 7), ("text", 3)]:
        with pytest.raises(InvalidArgumentError, match=rf"alerts\[0\]\.{field}"):
            batch_from_wire({"alerts": [{**good, field: bad}]})
    with pytest.raises(InvalidArgumentError, match="unknown"):
        batch_from_wire({"alerts": [{**good, "color": "red"}]})
    with pytest.raises(InvalidArgumentError, match="alerts"):
        batch_from_wire({"alerts": {"a": 1}})


def test_sync_sends_the_alerts_the_server_lacks_exactly_once(tmp_path, http_store_url) -> None:
    import runpoint as rp
    from runpoint.store import open_store
    from runpoint.sync.push import SyncTarget, sync_run
    from runpoint.sync.state import SyncState

    root = tmp_path / "root"
    run = rp.init(project="p", root=root, console=False, system_metrics=False, alerts=False)
    run.alert("first", "one")
    run.flush()
    local = open_store(root)
    remote = open_store(http_store_url)
    state = SyncState(root)
    report = sync_run(local, root, state, SyncTarget(remote), run.id, final=False)
    assert report.alerts == 1
    run.alert("second", level="error")
    run.finish()
    assert sync_run(local, root, state, SyncTarget(remote), run.id).alerts == 1
    assert sync_run(local, root, state, SyncTarget(remote), run.id).alerts == 0  # nothing twice
    got = alert_store(remote).read_alerts(run.id)
    assert [(a.title, a.text, a.level) for a in got] == [("first", "one", "warning"), ("second", "", "error")]
    assert alert_store(remote).alert_counts([run.id]) == {run.id: {"warning": 1, "error": 1}}
    assert time.time() - got[0].time < 60
