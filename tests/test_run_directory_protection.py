"""A new run never overwrites an existing one, and bad arguments leave nothing behind."""

from __future__ import annotations

import pytest

import runpoint as rp


def test_reusing_an_id_without_resume_raises_and_keeps_the_first_run(root, store_at) -> None:
    with rp.init(project="p", id="fixed", config={"lr": 0.1}, root=root, console=False) as first:
        first.log({"x": 1.0}, step=0)
    config_before = (first.dir / "config.yaml").read_bytes()
    with pytest.raises(rp.RunExistsError) as raised:
        rp.init(project="p", id="fixed", config={"lr": 0.5}, root=root, console=False)
    assert isinstance(raised.value, FileExistsError)
    assert "resume='fixed'" in str(raised.value)
    assert (first.dir / "config.yaml").read_bytes() == config_before
    store = store_at()
    assert store.get_params("fixed") == {"lr": 0.1}
    assert store.read_metric("fixed", "x").values.tolist() == [1.0]


def test_an_existing_directory_unknown_to_the_store_is_not_overwritten(root) -> None:
    target = root / "p" / "handmade"
    target.mkdir(parents=True)
    (target / "notes.txt").write_text("mine")
    with pytest.raises(rp.RunExistsError):
        rp.init(project="p", id="handmade", root=root, console=False)
    assert (target / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("project", ["", "a/b", "../up", ".", "..", "with space", "x" * 200, None, 3])
def test_bad_project_names_are_rejected_before_anything_is_written(root, project) -> None:
    with pytest.raises(rp.InvalidArgumentError, match="project"):
        rp.init(project=project, root=root, console=False)
    assert not (root / "runpoint.db").exists()


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"id": "../escape"}, "id"),
        ({"tags": "single-string"}, "tags"),
        ({"tags": ["ok", ""]}, "tags"),
        ({"tags": [1]}, "tags"),
        ({"notes": 5}, "notes"),
        ({"name": ""}, "name"),
        ({"config": [1, 2]}, "config"),
        ({"config": "lr=1"}, "config"),
        ({"flush_interval": 0}, "flush_interval"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(root, kwargs, argument) -> None:
    with pytest.raises(rp.InvalidArgumentError) as raised:
        rp.init(project="p", root=root, console=False, **kwargs)
    assert raised.value.argument == argument
    assert not (root / "p").exists() or not any((root / "p").iterdir())


def test_generated_ids_are_unique_and_sort_by_creation(root) -> None:
    runs = []
    for _ in range(5):
        run = rp.init(project="p", root=root, console=False)
        run.finish()
        runs.append(run)
    ids = [run.id for run in runs]
    assert len(set(ids)) == 5 and ids == sorted(ids)
    assert all(len(i) == 12 for i in ids)
    names = [run.name for run in runs]
    assert len(set(names)) == 5 and names[-1].endswith("-5")
