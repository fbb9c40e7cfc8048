"""The read side: filter expressions, run references and comparisons."""

from __future__ import annotations

import pytest

import runpoint as rp
from runpoint import query
from runpoint.store import Condition


@pytest.mark.parametrize(
    "text, expected",
    [
        ("params.training.lr > 1e-4", Condition("params", "training.lr", ">", 1e-4)),
        ("config.opt=adam", Condition("params", "opt", "=", "adam")),
        ("params.opt == 'sgd'", Condition("params", "opt", "=", "sgd")),
        ("metrics.val/loss<=0.5", Condition("metrics", "val/loss", "<=", 0.5)),
        ("summary.best/acc != 3", Condition("summary", "best/acc", "!=", 3)),
        ("params.model.bn = true", Condition("params", "model.bn", "=", True)),
        ("params.x >= -2", Condition("params", "x", ">=", -2)),
    ],
)
def test_conditions_parse(text, expected) -> None:
    assert query.parse_condition(text) == expected


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("lr > 1", "expected <params|metrics|summary>"),
        ("params.lr >", "expected"),
        ("params.lr ~ 3", "expected"),
        ("metrics.loss < low", "numbers"),
        ("params.opt > adam", "needs a number"),
    ],
)
def test_bad_conditions_name_the_problem(text, fragment) -> None:
    with pytest.raises(rp.InvalidArgumentError, match=fragment):
        query.parse_condition(text)


def _make(root, run_id, name, lr, loss, tags=()):
    with rp.init(project="p", id=run_id, name=name, config={"lr": lr, "opt": "adam"}, tags=tags,
                 root=root, console=False) as run:
        run.log({"val/loss": loss})


def test_list_runs_with_text_filters_and_status(root, store_at) -> None:
    _make(root, "aaa1", "alpha", 0.1, 0.5, tags=["cnn"])
    _make(root, "aab2", "beta", 0.01, 0.3)
    store = store_at()
    assert [r.id for r in query.list_runs(store, where=["params.lr < 0.05"])] == ["aab2"]
    assert [r.id for r in query.list_runs(store, where=["metrics.val/loss > 0.4"], tags=["cnn"])] == ["aaa1"]
    assert [r.id for r in query.list_runs(store, status="completed", newest_first=False)] == ["aaa1", "aab2"]
    with pytest.raises(rp.InvalidArgumentError, match="not one of"):
        query.list_runs(store, status="finished")
    with pytest.raises(rp.InvalidArgumentError, match="limit"):
        query.list_runs(store, limit=0)


def test_resolve_run_by_id_prefix_name_and_latest(root, store_at) -> None:
    _make(root, "aaa1", "alpha", 0.1, 0.5)
    _make(root, "aab2", "beta", 0.01, 0.3)
    store = store_at()
    assert query.resolve_run(store, "aaa1").id == "aaa1"
    assert query.resolve_run(store, "aab").id == "aab2"
    assert query.resolve_run(store, "alpha").id == "aaa1"
    assert query.resolve_run(store, "latest").id == "aab2"
    with pytest.raises(rp.InvalidArgumentError, match="matches 2 runs"):
        query.resolve_run(store, "aa")
    with pytest.raises(rp.RunNotFoundError, match="'zzz'"):
        query.resolve_run(store, "zzz")
    with pytest.raises(rp.InvalidArgumentError):
        query.resolve_run(store, "  ")


def test_compare_reports_differences_and_final_metrics(root, store_at) -> None:
    _make(root, "aaa1", "alpha", 0.1, 0.5)
    _make(root, "aab2", "beta", 0.01, 0.3)
    store = store_at()
    result = query.compare(store, [query.resolve_run(store, "aaa1"), query.resolve_run(store, "aab2")])
    assert result.params == {"lr": [0.1, 0.01]}
    assert result.same_params == {"opt": "adam"}
    assert result.metrics == {"val/loss": [0.5, 0.3]}


def test_metric_history_of_an_unknown_key_lists_the_known_ones(root, store_at) -> None:
    _make(root, "aaa1", "alpha", 0.1, 0.5)
    with pytest.raises(rp.InvalidArgumentError, match="it has: val/loss"):
        query.metric_history(store_at(), "aaa1", "val/acc")


def test_a_non_finite_summary_value_does_not_break_summary_filters(root, store_at) -> None:
    for run_id, best in (("nan", float("nan")), ("inf", float("inf")), ("good", 0.9), ("low", 0.1)):
        with rp.init(project="p", id=run_id, root=root, console=False, system_metrics=False) as run:
            run.summary["best"] = best
    store = store_at()
    assert [r.id for r in query.list_runs(store, where=["summary.best > 0.5"])] == ["good"]
    assert sorted(r.id for r in query.list_runs(store, where=["summary.best < 0.5"])) == ["low"]


def test_tags_and_where_given_as_one_string_are_refused(root, store_at) -> None:
    store = store_at()
    with pytest.raises(rp.InvalidArgumentError, match="tags"):
        query.list_runs(store, tags="cnn")
    with pytest.raises(rp.InvalidArgumentError, match="where"):
        query.list_runs(store, where="params.lr > 1")
