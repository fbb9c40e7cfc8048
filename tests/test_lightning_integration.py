"""PyTorch Lightning with RunpointLogger: a real Trainer fitting a tiny model on synthetic data."""

from __future__ import annotations

from pathlib import Path

import pytest

import runpoint as rp
from runpoint.store.sqlite import SQLiteStore

torch = pytest.importorskip("torch")
L = pytest.importorskip("lightning.pytorch")
from runpoint.integrations.lightning import RunpointLogger  # noqa: E402


class TinyRegressor(L.LightningModule):
    def __init__(self, lr: float = 0.05, hidden: int = 8, fail_at_step: int | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))

    def training_step(self, batch, batch_idx):
        if self.hparams.fail_at_step is not None and self.global_step == self.hparams.fail_at_step:
            raise FloatingPointError("loss became NaN")
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", torch.nn.functional.mse_loss(self.net(x), y))

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test/loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def loader(seed: int) -> torch.utils.data.DataLoader:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 4, generator=generator)
    y = x.sum(dim=1, keepdim=True)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)


def trainer(logger: RunpointLogger, tmp_path: Path, **overrides) -> L.Trainer:
    settings = dict(
        max_epochs=2, logger=logger, accelerator="cpu", devices=1, log_every_n_steps=1,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path),
        callbacks=[L.callbacks.ModelCheckpoint(monitor="val/loss", mode="min")],
    )
    settings.update(overrides)
    return L.Trainer(**settings)


def test_fit_records_hyperparameters_metrics_and_the_best_checkpoint(tmp_path: Path, root: Path) -> None:
    logger = RunpointLogger(project="pl", config={"data": {"rows": 64}}, tags=["tiny"], root=root)
    trainer(logger, tmp_path).fit(TinyRegressor(lr=0.05, hidden=8), loader(0), loader(1))
    run = logger._run
    assert run.status is rp.RunStatus.COMPLETED
    with SQLiteStore(root / "runpoint.db") as store:
        record = store.get_run(run.id)
        assert record.project == "pl" and record.tags == ("tiny",)
        assert store.get_params(run.id) == {"data.rows": 64, "lr": 0.05, "hidden": 8, "fail_at_step": None}
        loss = store.read_metric(run.id, "train/loss")
        assert list(loss.steps) == list(range(8))  # 4 batches x 2 epochs, at Lightning's global step
        val = store.read_metric(run.id, "val/loss")
        assert list(val.steps) == [3, 7]
        assert store.read_metric(run.id, "epoch").values.tolist()[-1] == 1.0
        summary = store.get_summary(run.id)
    best = Path(summary["checkpoint/best_path"])
    assert best.parent == run.dir / "checkpoints" and best.exists()  # Lightning's own .ckpt, in the run
    assert summary["checkpoint/best_score"] == pytest.approx(min(val.values))
    assert "lr: 0.05" in (run.dir / "config.yaml").read_text()


def test_an_exception_in_training_fails_the_run_with_its_traceback(tmp_path: Path, root: Path) -> None:
    logger = RunpointLogger(project="pl", root=root)
    with pytest.raises(FloatingPointError):
        trainer(logger, tmp_path).fit(TinyRegressor(fail_at_step=3), loader(0), loader(1))
    run = logger._run
    with SQLiteStore(root / "runpoint.db") as store:
        record = store.get_run(run.id)
        assert record.status is rp.RunStatus.FAILED
        assert "FloatingPointError: loss became NaN" in record.error and "Traceback" in record.error
        assert list(store.read_metric(run.id, "train/loss").steps) == [0, 1, 2]


def test_test_after_fit_continues_the_same_run(tmp_path: Path, root: Path) -> None:
    logger = RunpointLogger(project="pl", root=root)
    model = TinyRegressor()
    fitter = trainer(logger, tmp_path, max_epochs=1, callbacks=[])
    fitter.fit(model, loader(0), loader(1))
    first_id = logger._run.id
    fitter.test(model, loader(2))
    assert logger._run.id == first_id and logger._run.status is rp.RunStatus.COMPLETED
    with SQLiteStore(root / "runpoint.db") as store:
        assert store.count_runs() == 1 and store.get_run(first_id).resume_count == 1
        assert len(store.read_metric(first_id, "test/loss")) == 1


def test_logging_into_a_run_the_script_owns_leaves_it_open(tmp_path: Path, root: Path) -> None:
    with rp.init(project="pl", root=root, config={"seed": 3}) as run:
        trainer(RunpointLogger(run=run), tmp_path, max_epochs=1, callbacks=[]).fit(TinyRegressor(), loader(0))
        assert run.status is rp.RunStatus.RUNNING
        run.log({"after/fit": 1.0})
    with SQLiteStore(root / "runpoint.db") as store:
        assert store.get_params(run.id)["seed"] == 3 and store.get_params(run.id)["lr"] == 0.05
        assert len(store.read_metric(run.id, "train/loss")) == 4


def test_the_readme_example_runs(root: Path) -> None:
    import runpy

    from .conftest import REPO

    runpy.run_path(str(REPO / "examples" / "lightning_logger.py"), run_name="__main__")
    with SQLiteStore(root / "runpoint.db") as store:
        (run,) = store.list_runs()
        assert run.project == "lightning" and run.status is rp.RunStatus.COMPLETED
        assert store.get_params(run.id) == {"lr": 0.05}
        assert len(store.read_metric(run.id, "train/loss")) == 6  # 24 steps, every 4th
        checkpoints = sorted(path.name for path in (root / run.dir / "checkpoints").glob("step-*"))
    assert "step-000024" in checkpoints and len(checkpoints) <= 3  # keep_last=2 and the best


# -- RunpointCheckpoint ------------------------------------------------------------------

from runpoint.integrations.lightning import RunpointCheckpoint  # noqa: E402


def _fit(root: Path, tmp_path: Path, epochs: int, *, resume: bool = False, seed: int = 0, **checkpoint_options):
    torch.manual_seed(seed)
    model = TinyRegressor(lr=0.05)
    logger = RunpointLogger(project="pl-ckpt", root=root, resume="latest" if resume else None)
    checkpoint = RunpointCheckpoint(**checkpoint_options)
    fitter = trainer(logger, tmp_path, max_epochs=epochs, callbacks=[checkpoint])
    fitter.fit(model, loader(0), loader(1), ckpt_path=checkpoint.resume_path(logger) if resume else None)
    return model, logger, checkpoint


def test_checkpoints_go_into_the_run_with_retention(tmp_path: Path, root: Path) -> None:
    model, logger, checkpoint = _fit(root, tmp_path, 4, monitor="val/loss", keep_last=2, keep_best=1)
    run = logger._run
    infos = checkpoint.manager.list()
    steps = [info.step for info in infos]
    assert steps[-2:] == [12, 16] and set(steps) <= {4, 8, 12, 16} and len(steps) <= 3
    assert all(Path(info.path).parent == run.dir / "checkpoints" for info in infos)
    best = checkpoint.manager.best
    with SQLiteStore(root / "runpoint.db") as store:
        val = store.read_metric(run.id, "val/loss")
    assert best.metrics["val/loss"] == pytest.approx(min(val.values))
    saved = rp.load_checkpoint(infos[-1].path)
    assert saved["global_step"] == 16 and saved["epoch"] == 3
    for name, tensor in model.state_dict().items():
        assert torch.equal(saved["state_dict"][name], tensor), name  # the last checkpoint holds the final weights
    assert saved["hyper_parameters"]["lr"] == 0.05


def test_resuming_from_a_checkpoint_continues_exactly(tmp_path: Path, root: Path) -> None:
    straight, _, _ = _fit(tmp_path / "straight", tmp_path / "a", 4)
    _fit(root, tmp_path / "b", 2)
    resumed, logger, checkpoint = _fit(root, tmp_path / "c", 4, resume=True, seed=123)  # other init: must not matter
    for name, tensor in straight.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], tensor), name  # bit for bit
    with SQLiteStore(root / "runpoint.db") as store:
        assert store.count_runs() == 1
        run = store.get_run(logger._run.id)
        assert run.resume_count == 1 and run.status is rp.RunStatus.COMPLETED
        assert list(store.read_metric(run.id, "train/loss").steps) == list(range(16))
    assert [info.step for info in checkpoint.manager.list()] == [4, 8, 12, 16]


def test_a_pointer_or_directory_path_loads_like_a_lightning_file(tmp_path: Path, root: Path) -> None:
    model, logger, checkpoint = _fit(root, tmp_path, 2)
    with logger.experiment as run:  # the finished run, continued for a test pass
        fresh = TinyRegressor(lr=0.05)
        tester = trainer(RunpointLogger(run=run), tmp_path, callbacks=[RunpointCheckpoint()])
        tester.test(fresh, loader(2), ckpt_path=str(run.dir / "checkpoints" / "latest"))
    for name, tensor in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], tensor), name
    assert run.status is rp.RunStatus.COMPLETED


def test_without_a_runpoint_logger_checkpoints_go_to_the_root_dir(tmp_path: Path) -> None:
    checkpoint = RunpointCheckpoint(keep_last=1)
    fitter = L.Trainer(max_epochs=2, logger=False, accelerator="cpu", enable_progress_bar=False,
                       enable_model_summary=False, default_root_dir=str(tmp_path), callbacks=[checkpoint])
    fitter.fit(TinyRegressor(), loader(0))
    assert [info.step for info in checkpoint.manager.list()] == [8]
    assert (tmp_path / "checkpoints" / "step-000008" / "manifest.json").exists()
    assert not list(tmp_path.rglob("*.ckpt"))  # Lightning's own ModelCheckpoint was replaced


# -- Lightning's contract for loggers, and distributed jobs ------------------------------

import pickle  # noqa: E402

from lightning.pytorch.loggers.logger import DummyExperiment  # noqa: E402
from lightning.pytorch.utilities import rank_zero_only  # noqa: E402


def test_a_logger_that_has_logged_survives_pickling_and_goes_on_into_the_same_run(root: Path) -> None:
    # what Lightning's own test suite asks of every built-in logger (loggers/test_all.py)
    logger = RunpointLogger(project="pl", root=root)
    run = logger.experiment
    logger.log_metrics({"a": 1.0}, step=0)
    logger.save()
    pickled = pickle.dumps(logger)
    copy = pickle.loads(pickle.dumps(L.Trainer(max_epochs=1, logger=logger, enable_progress_bar=False))).logger
    copy.log_metrics({"acc": 1.0}, step=1)
    assert copy.name == logger.name and copy.save_dir == logger.save_dir and copy.version == run.id
    logger.finalize("success")
    later = pickle.loads(pickled)  # the run has finished: the copy continues it
    later.log_metrics({"acc": 2.0}, step=2)
    later.finalize("success")
    with SQLiteStore(root / "runpoint.db") as store:
        assert store.count_runs() == 1
        record = store.get_run(run.id)
        assert record.status is rp.RunStatus.COMPLETED and record.resume_count == 1
        assert store.read_metric(run.id, "a").values.tolist() == [1.0]
        assert store.read_metric(run.id, "acc").values.tolist() == [1.0, 2.0]


def test_a_copy_elsewhere_while_the_run_is_recorded_says_what_to_do(root: Path) -> None:
    from runpoint.errors import RunpointError
    from runpoint.run import lifecycle as _lifecycle

    logger = RunpointLogger(project="pl", root=root)
    run = logger.experiment
    copy = pickle.loads(pickle.dumps(logger))
    _lifecycle.unregister(run)  # as in a ddp_spawn worker: the live run is another process's
    try:
        with pytest.raises(RunpointError, match="strategy='ddp_spawn'.*use strategy='ddp'"):
            copy.log_metrics({"acc": 1.0}, step=0)
    finally:
        _lifecycle.register(run)
        logger.finalize("success")


def test_every_rank_gets_rank_zeros_resume_path_without_starting_a_run(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, first, _ = _fit(root, tmp_path, 2, monitor="val/loss", keep_last=2)
    monkeypatch.setattr(rank_zero_only, "rank", 1)  # as Lightning sets it in a DDP worker
    answers = {}
    for which in ("latest", "best"):
        other = RunpointLogger(project="pl-ckpt", root=root, resume="latest")
        answers[which] = RunpointCheckpoint(monitor="val/loss").resume_path(other, which)
        assert isinstance(other.experiment, DummyExperiment)
    fresh = RunpointLogger(project="pl-ckpt", root=root)  # rank zero starts a new run: nothing to resume
    assert RunpointCheckpoint().resume_path(fresh) is None
    with SQLiteStore(root / "runpoint.db") as store:
        assert store.count_runs() == 1 and store.get_run(first._run.id).status is rp.RunStatus.COMPLETED
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    zero = RunpointLogger(project="pl-ckpt", root=root, resume="latest")
    checkpoint = RunpointCheckpoint(monitor="val/loss")
    assert answers == {which: checkpoint.resume_path(zero, which) for which in ("latest", "best")}
    assert answers["latest"] == str(first._run.dir / "checkpoints" / "step-000008")
    zero.finalize("success")


DDP_TRAINER = 'strategy="ddp", devices=2, accelerator="cpu", enable_progress_bar=False)'


@pytest.mark.slow
def test_the_readme_example_under_ddp_records_once_and_resumes(tmp_path: Path, root: Path) -> None:
    from .conftest import REPO, run_script

    example = (REPO / "examples" / "lightning_logger.py").read_text()
    script = example.replace("enable_progress_bar=False)", DDP_TRAINER).replace(
        'RunpointLogger(project="lightning")', 'RunpointLogger(project="lightning", resume="latest")')
    assert DDP_TRAINER in script and 'resume="latest"' in script
    first = run_script(tmp_path, root, script, timeout=300)  # fresh start: nothing to resume on any rank
    assert first.returncode == 0, first.stderr[-3000:]
    second = run_script(tmp_path, root, script.replace("max_epochs=3", "max_epochs=5"), timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    with SQLiteStore(root / "runpoint.db") as store:
        (run,) = store.list_runs()  # rank zero's run only, continued by the second job
        assert run.status is rp.RunStatus.COMPLETED and run.resume_count == 1
        assert store.get_params(run.id) == {"lr": 0.05}
        # 8 batches split over 2 ranks: 4 steps an epoch, every 4th step logged, once
        assert list(store.read_metric(run.id, "train/loss").steps) == [3, 7, 11, 15, 19]
    checkpoints = root / run.dir / "checkpoints"
    assert f"Restored all states from the checkpoint at {checkpoints / 'step-000012'}" in second.stdout + second.stderr
    assert sorted(path.name for path in checkpoints.glob("step-*")) == ["step-000016", "step-000020"]


@pytest.mark.slow
def test_under_ddp_spawn_only_rank_zero_has_the_run(tmp_path: Path, root: Path) -> None:
    # Lightning's test_logger_initialization: the logger is pickled into spawned workers
    from .conftest import run_script

    result = run_script(tmp_path, root, """
        import lightning.pytorch as L
        from lightning.pytorch.demos.boring_classes import BoringModel
        from lightning.pytorch.loggers.logger import DummyExperiment
        from runpoint.integrations.lightning import RunpointLogger

        class Model(BoringModel):
            def training_step(self, batch, batch_idx):
                output = super().training_step(batch, batch_idx)
                self.log("train_loss", output["loss"])
                return output

        class RankZeroLoggerCheck(L.Callback):
            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
                assert isinstance(trainer.logger.experiment, DummyExperiment) is (not trainer.is_global_zero)

        if __name__ == "__main__":
            trainer = L.Trainer(logger=RunpointLogger(project="spawn"), strategy="ddp_spawn", accelerator="cpu",
                                devices=2, max_steps=2, log_every_n_steps=1, callbacks=[RankZeroLoggerCheck()],
                                enable_progress_bar=False)
            trainer.fit(Model())
    """, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    with SQLiteStore(root / "runpoint.db") as store:
        (run,) = store.list_runs()
        assert run.status is rp.RunStatus.COMPLETED
        assert list(store.read_metric(run.id, "train_loss").steps) == [0, 1]
