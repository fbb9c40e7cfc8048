"""The on-demand TensorBoard export of a run without a TensorBoard sink: what TensorBoard reads back."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("tensorboard")


def _scalars(directory: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of every event file under ``directory``, as TensorBoard's loader reads them, in file order."""
    from tensorboard.backend.event_processing.event_file_loader import (
        RawEventFileLoader,
    )
    from tensorboard.compat.proto.event_pb2 import Event

    found: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(directory.rglob("events.out.tfevents.*")):
        for record in RawEventFileLoader(str(path)).Load():
            event = Event.FromString(record)
            for value in event.summary.value:
                found.setdefault(value.tag, []).append((event.step, value.simple_value))
    return found


def test_the_export_writes_every_scalar_once_and_a_later_one_only_what_is_new(tmp_path: Path) -> None:
    import runpoint as rp
    from runpoint import query
    from runpoint.server.tensorboard_logdir import export_scalars

    root = tmp_path / "runpoint"
    run = rp.init(project="p", name="odd name/with:colon", root=root, console=False, system_metrics=False)
    try:
        for step in range(10):
            run.log({"loss": 1.0 / (step + 1), **({"val/acc": step / 10} if step % 5 == 4 else {})}, step=step)
        run.flush()
        store = query.open_root(root)
        record = store.get_run(run.id)
        first = export_scalars(store, record, root / ".tensorboard")
        assert first.source == "export" and first.path == root / ".tensorboard" / "exports" / run.id
        assert [p.name for p in first.path.iterdir() if p.is_dir()] == ["odd_name_with_colon"]  # TensorBoard's run name
        read = _scalars(first.path)
        assert read["loss"] == [(s, pytest.approx(1.0 / (s + 1))) for s in range(10)]
        assert read["val/acc"] == [(4, pytest.approx(0.4)), (9, pytest.approx(0.9))]

        assert export_scalars(store, record, root / ".tensorboard") == first
        assert len(list(first.path.rglob("events.out.tfevents.*"))) == 1  # nothing new: no new file

        for step in range(10, 13):
            run.log({"loss": 1.0 / (step + 1)}, step=step)
        run.flush()
        export_scalars(store, record, root / ".tensorboard")
        files = sorted(first.path.rglob("events.out.tfevents.*"))
        assert len(files) == 2
        assert _scalars(first.path)["loss"] == [(s, pytest.approx(1.0 / (s + 1))) for s in range(13)]  # once each
        store.close()
    finally:
        run.finish()
