"""The model registry's contract over every backend: SQLite (root, URI), PostgreSQL, a team server (HttpStore).

Versions are numbered atomically, lineage round-trips, aliases move by compare-and-set with
every attempt in the history, and two real processes racing for one alias: one wins, the
other gets AliasConflictError, and the history holds both attempts.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ThreadPoolExecutor

import pytest

from runpoint.errors import (
    AccessDeniedError,
    AliasConflictError,
    InvalidArgumentError,
    ModelNotFoundError,
    PinConflictError,
)
from runpoint.server.auth import Principal
from runpoint.store import (
    ModelVersionRecord,
    Store,
    model_registry,
    open_store,
    registered_steps,
)

from .test_store_contract import BACKENDS, _record


@pytest.fixture(params=sorted(BACKENDS))
def backend(request, tmp_path) -> tuple[str, Store]:
    store = BACKENDS[request.param](request, tmp_path)
    yield request.param, store
    store.close()


def _version(name: str = "digits", **fields) -> ModelVersionRecord:
    return ModelVersionRecord(name=name, version=0, checkpoint=fields.pop("checkpoint", "checkpoints/step-000400"),
                              registered_at=0.0, **fields)


LINEAGE = {"config_hash": "c0ffee", "git_commit": "abc123", "git_dirty": True, "metric": "val/loss",
           "metric_value": 0.25, "summary": {"val/loss": 0.25, "acc": 0.9, "nested": {"x": [1, 2]}}}


def test_versions_lineage_and_edits_round_trip(backend) -> None:
    _, store = backend
    registry = model_registry(store)
    assert registry is not None
    store.create_run(_record("r1", project="vision"))
    first = registry.register_version(
        _version(run_id="r1", step=400, manifest_hash="h400", lineage=LINEAGE, description="first", tags=("a", "b"),
                 registered_by="ana"), project="vision")
    second = registry.register_version(_version(run_id="r1", step=800, manifest_hash="h800"), project="vision")
    assert (first.version, second.version, first.ref) == (1, 2, "digits:1")
    got = registry.get_version("digits", 1)
    assert got == first and got.lineage == LINEAGE and got.tags == ("a", "b") and got.registered_by == "ana"
    assert (got.run_id, got.step, got.manifest_hash, got.checkpoint) == ("r1", 400, "h400", "checkpoints/step-000400")
    assert got.registered_at > 0 and got.deleted_at is None
    model = registry.get_model("digits")
    assert (model.name, model.project) == ("digits", "vision")
    assert [m.name for m in registry.list_models("vision")] == ["digits"] and registry.list_models("other") == []
    assert [v.version for v in registry.list_versions("digits")] == [1, 2]
    assert sorted(registered_steps(store, "r1")) == [400, 800]

    edited = registry.update_version("digits", 2, description="better", tags=["prod"])
    assert (edited.description, edited.tags) == ("better", ("prod",))
    assert registry.update_version("digits", 2, description="best").tags == ("prod",)  # None: unchanged

    registry.move_alias("digits", "champion", 2, by="ana")
    deleted = registry.delete_version("digits", 2, by="bo")
    assert deleted.deleted_at is not None
    assert [v.version for v in registry.list_versions("digits")] == [1]
    assert [v.version for v in registry.list_versions("digits", include_deleted=True)] == [1, 2]
    assert registry.list_aliases("digits") == []  # the alias went with the version, as an event
    assert [(e.outcome, e.from_version, e.to_version, e.by) for e in registry.alias_history("digits")] == [
        ("moved", None, 2, "ana"), ("removed", 2, None, "bo")]
    assert registered_steps(store, "r1") == {400}
    assert registry.register_version(_version(), project="vision").version == 3  # numbers are never reused
    with pytest.raises(InvalidArgumentError, match="in project 'vision'"):
        registry.register_version(_version(), project="nlp")


def test_repin_is_a_compare_and_set_recorded_in_the_lineage(backend) -> None:
    _, store = backend
    registry = model_registry(store)
    store.create_run(_record("r1", project="vision"))
    registry.register_version(_version(run_id="r1", step=400, manifest_hash="h1", lineage=LINEAGE), project="vision")
    repinned = registry.repin_version("digits", 1, old_hash="h1", new_hash="h2", by="ana")
    assert repinned.manifest_hash == "h2" and registry.get_version("digits", 1).manifest_hash == "h2"
    (entry,) = repinned.lineage["repinned"]
    assert (entry["from"], entry["to"], entry["by"], entry["why"]) == ("h1", "h2", "ana", "rekey") and entry["at"] > 0
    assert {k: v for k, v in repinned.lineage.items() if k != "repinned"} == LINEAGE  # the rest is kept
    assert registry.repin_version("digits", 1, old_hash="h1", new_hash="h2") == repinned  # a rerun: unchanged
    with pytest.raises(PinConflictError, match="pins manifest hash h2, not h1") as lost:
        registry.repin_version("digits", 1, old_hash="h1", new_hash="h3")
    assert lost.value.ref == "digits:1"
    again = registry.repin_version("digits", 1, old_hash="h2", new_hash="h3", why="moved")
    assert [(e["from"], e["to"], e["why"]) for e in again.lineage["repinned"]] == [("h1", "h2", "rekey"),
                                                                                   ("h2", "h3", "moved")]
    with pytest.raises(ModelNotFoundError):
        registry.repin_version("digits", 9, old_hash="h3", new_hash="h4")
    registry.delete_version("digits", 1)
    with pytest.raises(ModelNotFoundError, match="deleted"):
        registry.repin_version("digits", 1, old_hash="h3", new_hash="h4")


def test_unknown_names_and_bad_input_are_clear_errors(backend) -> None:
    _, store = backend
    registry = model_registry(store)
    registry.register_version(_version("a"), project="p")
    registry.register_version(_version("b"), project="p")
    registry.move_alias("a", "champion", 1)
    with pytest.raises(ModelNotFoundError, match=r"no model 'x'; models: a, b"):
        registry.get_model("x")
    with pytest.raises(ModelNotFoundError, match=r"no model 'x'"):
        registry.list_versions("x")
    with pytest.raises(ModelNotFoundError, match=r"model 'a' has no version 7; versions: 1"):
        registry.get_version("a", 7)
    with pytest.raises(ModelNotFoundError, match=r"no alias 'prod' on model 'a' \(aliases: champion\)"):
        registry.move_alias("a", "prod", None)
    with pytest.raises(ModelNotFoundError, match="has no version 9"):
        registry.move_alias("a", "prod", 9)
    for bad in ("", "a/b", "a@b", "a:1", " x"):
        with pytest.raises(InvalidArgumentError, match="model name"):
            registry.register_version(_version(bad), project="p")
    with pytest.raises(InvalidArgumentError, match="not a number"):
        registry.move_alias("a", "42", 1)


def test_alias_compare_and_set_records_every_attempt(backend) -> None:
    _, store = backend
    registry = model_registry(store)
    for _ in range(3):
        registry.register_version(_version(), project="p")
    assert registry.move_alias("digits", "champion", 1, expected=0, by="ana").outcome == "moved"
    with pytest.raises(AliasConflictError) as lost:
        registry.move_alias("digits", "champion", 3, expected=2, by="bo")
    assert (lost.value.current, lost.value.expected, lost.value.attempted) == (1, 2, 3)
    assert registry.move_alias("digits", "champion", 2, expected=1, by="cy").from_version == 1
    with pytest.raises(AliasConflictError):
        registry.move_alias("digits", "champion", None, expected=1)  # a removal is a compare-and-set too
    assert registry.move_alias("digits", "champion", None, expected=2).outcome == "removed"
    history = registry.alias_history("digits", "champion")
    assert [(e.outcome, e.from_version, e.to_version, e.expected) for e in history] == [
        ("moved", None, 1, 0), ("conflict", 1, 3, 2), ("moved", 1, 2, 1), ("conflict", 2, None, 1),
        ("removed", 2, None, 2)]
    assert [e.by for e in history[:3]] == ["ana", "bo", "cy"] and all(e.at > 0 for e in history)


def test_concurrent_registrations_get_distinct_numbers(backend) -> None:
    _, store = backend
    registry = model_registry(store)
    with ThreadPoolExecutor(4) as pool:
        numbers = list(pool.map(lambda i: registry.register_version(_version(step=i), project="p").version, range(8)))
    assert sorted(numbers) == list(range(1, 9))


def _race(location: str, barrier, results, to_version: int) -> None:
    store = open_store(location)
    registry = model_registry(store)
    barrier.wait()
    try:
        registry.move_alias("digits", "champion", to_version, expected=1, by=f"mover-{to_version}")
        results.put((to_version, "moved"))
    except AliasConflictError as exc:
        results.put((to_version, f"conflict:{exc.current}"))
    finally:
        store.close()


@pytest.mark.parametrize("kind", ["sqlite-root", "postgres", "http"])
def test_two_processes_race_for_one_alias(kind, request, tmp_path) -> None:
    store = BACKENDS[kind](request, tmp_path)
    fixture = {"postgres": "postgres_url", "http": "http_store_url"}.get(kind)  # (the store's location hides the user)
    location = request.getfixturevalue(fixture) if fixture else f"sqlite:///{store.location}"
    registry = model_registry(store)
    for _ in range(3):
        registry.register_version(_version(), project="p")
    registry.move_alias("digits", "champion", 1)
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(2), context.Queue()
    movers = [context.Process(target=_race, args=(location, barrier, results, v)) for v in (2, 3)]
    for mover in movers:
        mover.start()
    for mover in movers:
        mover.join(60)
    assert [mover.exitcode for mover in movers] == [0, 0]
    outcome = dict(results.get(timeout=5) for _ in movers)
    winner = next(v for v, what in outcome.items() if what == "moved")
    loser = 5 - winner
    assert outcome[loser] == f"conflict:{winner}"  # the loser saw the winner's move
    assert registry.list_aliases("digits")[0].version == winner
    history = registry.alias_history("digits", "champion")[1:]
    assert [(e.outcome, e.to_version, e.expected, e.by) for e in history] == [
        ("moved", winner, 1, f"mover-{winner}"), ("conflict", loser, 1, f"mover-{loser}")]
    store.close()


def test_server_scopes_and_projects(store_server, http_store_url) -> None:
    store = open_store(http_store_url)
    store.create_run(_record("r1", project="vision"))
    store.register_version(_version("mine", run_id="r1", step=1, registered_by="claimed"), project="vision")
    store.register_version(_version("theirs"), project="nlp")
    try:
        store_server.principal = Principal(user="reader", scope="read", project="vision")
        assert [m.name for m in store.list_models()] == ["mine"]
        assert store.get_version("mine", 1).registered_by == "claimed"  # a server without tokens takes the client's word
        with pytest.raises(AccessDeniedError):
            store.get_model("theirs")
        with pytest.raises(AccessDeniedError):
            store.move_alias("mine", "champion", 1)
        with pytest.raises(AccessDeniedError):
            store.register_version(_version("mine"), project="vision")
        store_server.principal = Principal(user="writer", scope="write", project="vision")
        assert store.move_alias("mine", "champion", 1, by="someone-else").by == "writer"  # the token's user
        assert store.register_version(_version("mine", registered_by="x"), project="vision").registered_by == "writer"
        with pytest.raises(AccessDeniedError):
            store.register_version(_version("theirs"), project="vision")  # the model is nlp's
        with pytest.raises(AccessDeniedError):
            store.move_alias("theirs", "champion", 1)
        assert [v.version for v in store.versions_of_run("r1")] == [1]
    finally:
        store_server.principal = None
        store.close()
