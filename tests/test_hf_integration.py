"""transformers' Trainer with RunpointCallback, on a tiny BERT built from a config (no downloads)."""

from __future__ import annotations

from pathlib import Path

import pytest

import runpoint as rp
from runpoint.store.sqlite import SQLiteStore

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
from runpoint.integrations.hf import RunpointCallback, metric_name  # noqa: E402


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")


class Synthetic(torch.utils.data.Dataset):
    """Sequences whose label is whether token 1 appears: learnable, and made here."""

    def __init__(self, size: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(2, 50, (size, 12), generator=generator)
        self.labels = torch.randint(0, 2, (size,), generator=generator)
        self.ids[self.labels == 1, 3] = 1

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[index], "attention_mask": torch.ones(12, dtype=torch.long), "labels": self.labels[index]}


def tiny_trainer(tmp_path: Path, callback: RunpointCallback, **overrides) -> transformers.Trainer:
    config = transformers.BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=16, num_labels=2,
    )
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config)
    settings = dict(
        output_dir=str(tmp_path / "out"), max_steps=12, per_device_train_batch_size=8, learning_rate=1e-3,
        logging_steps=2, eval_strategy="steps", eval_steps=6, save_strategy="no", report_to="none",
        use_cpu=True, disable_tqdm=True, hub_token="hf_secret_value", seed=0,
    )
    settings.update(overrides)
    args = transformers.TrainingArguments(**settings)
    return transformers.Trainer(
        model=model, args=args, train_dataset=Synthetic(96, 1), eval_dataset=Synthetic(32, 2), callbacks=[callback],
    )


def test_trainer_logs_config_metrics_and_summary_into_one_run(tmp_path: Path, root: Path) -> None:
    callback = RunpointCallback(project="hf", tags=["bert"], root=root)
    trainer = tiny_trainer(tmp_path, callback, run_name="tiny-bert")
    trainer.train()
    run = callback.run
    assert run.status is rp.RunStatus.COMPLETED

    history = {entry["step"]: entry for entry in trainer.state.log_history if "loss" in entry}
    with SQLiteStore(root / "runpoint.db") as store:
        record = store.get_run(run.id)
        assert record.name == "tiny-bert" and record.tags == ("bert",)
        params = store.get_params(run.id)
        assert params["training.learning_rate"] == 1e-3 and params["training.max_steps"] == 12
        assert params["model.hidden_size"] == 16 and params["model.model_type"] == "bert"
        assert params["training.hub_token"] == "********"
        loss = store.read_metric(run.id, "train/loss")
        assert list(loss.steps) == sorted(history) == [2, 4, 6, 8, 10, 12]
        assert list(loss.values) == pytest.approx([history[s]["loss"] for s in loss.steps])
        eval_loss = store.read_metric(run.id, "eval/loss")
        assert list(eval_loss.steps) == [6, 12]
        assert {"eval/loss", "train/epoch", "train/learning_rate", "train/loss"} <= set(store.metric_keys(run.id))
        summary = store.get_summary(run.id)
        assert summary["train/train_runtime"] > 0 and "train/train_loss" in summary
    assert "hf_secret_value" not in (run.dir / "config.yaml").read_text()


def test_evaluate_after_train_continues_the_same_run(tmp_path: Path, root: Path) -> None:
    callback = RunpointCallback(project="hf", root=root)
    trainer = tiny_trainer(tmp_path, callback, max_steps=4, eval_strategy="no")
    trainer.train()
    first = callback.run
    metrics = trainer.evaluate()
    assert callback.run.id == first.id
    callback.run.finish()
    with SQLiteStore(root / "runpoint.db") as store:
        assert store.count_runs() == 1
        run = store.get_run(first.id)
        assert run.status is rp.RunStatus.COMPLETED and run.resume_count == 1
        assert store.read_metric(run.id, "eval/loss").values.tolist() == [metrics["eval_loss"]]


def test_log_keys_are_named_like_other_trackers() -> None:
    assert [metric_name(k) for k in ("loss", "eval_accuracy", "test_f1", "grad_norm", "custom/x")] == [
        "train/loss", "eval/accuracy", "test/f1", "train/grad_norm", "custom/x",
    ]


def test_the_readme_example_runs(root: Path) -> None:
    import runpy

    from .conftest import REPO

    runpy.run_path(str(REPO / "examples" / "hf_trainer.py"), run_name="__main__")
    with SQLiteStore(root / "runpoint.db") as store:
        (run,) = store.list_runs()
        assert run.project == "hf" and run.status is rp.RunStatus.COMPLETED
        assert list(store.read_metric(run.id, "train/loss").steps) == [2, 4, 6, 8]


def test_trainer_checkpoints_are_kept_as_runpoint_checkpoints(tmp_path: Path, root: Path) -> None:
    callback = RunpointCallback(project="hf", root=root, checkpoints=True)
    trainer = tiny_trainer(tmp_path, callback, eval_steps=4, save_strategy="steps", save_steps=4, save_total_limit=2,
                           metric_for_best_model="loss", greater_is_better=False)
    trainer.train()
    run, manager = callback.run, callback.manager
    evals = {entry["step"]: entry["eval_loss"] for entry in trainer.state.log_history if "eval_loss" in entry}
    best_step = min(evals, key=evals.get)
    assert manager.monitor == "eval/loss" and manager.mode == "min"
    assert manager.best.step == best_step and manager.best.metrics["eval/loss"] == evals[best_step]
    assert {info.step for info in manager.list()} == {8, 12} | {best_step}  # save_total_limit=2, plus the best
    assert all(Path(info.path).parent == run.dir / "checkpoints" for info in manager.list())

    saved = rp.load_checkpoint(manager.latest.path)
    for name, tensor in trainer.model.state_dict().items():
        assert torch.equal(saved["model"][name], tensor), name  # the final weights, bit for bit
    assert saved["trainer_state"]["global_step"] == 12
    assert "state" in saved["optimizer"] and saved["scheduler"]["last_epoch"] == 12

    with SQLiteStore(root / "runpoint.db") as store:
        summary = store.get_summary(run.id)
    assert summary["checkpoint/last_path"] == str(tmp_path / "out" / "checkpoint-12")
    assert Path(summary["checkpoint/last_path"]).is_dir()
    assert summary["checkpoint/best_path"] == str(tmp_path / "out" / f"checkpoint-{best_step}")


@pytest.mark.slow  # torchrun and transformers in two ranks: ~25 s
def test_the_trainer_under_torchrun_records_one_run_with_each_metric_once(tmp_path: Path, root: Path) -> None:
    from .multirank import torchrun

    source = Path(__file__).read_text()
    helpers = source[source.index("class Synthetic"):source.index("def test_trainer_logs_config")]
    result = torchrun(tmp_path, root, f"""
import torch, transformers
from pathlib import Path
from runpoint.integrations.hf import RunpointCallback
{helpers}
callback = RunpointCallback(project="hf-ddp")
trainer = tiny_trainer(Path("."), callback, ddp_backend="gloo")
trainer.train()
if trainer.is_world_process_zero():
    print("RUN", callback.run.id, flush=True)
""", 2, timeout=300, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    with SQLiteStore(root / "runpoint.db") as store:
        (run,) = store.list_runs()  # one run for the job
        assert run.status is rp.RunStatus.COMPLETED
        assert f"RUN {run.id}" in result.stdout
        loss = store.read_metric(run.id, "train/loss")
        assert list(loss.steps) == [2, 4, 6, 8, 10, 12]  # each logged once, by rank zero
        assert list(store.read_metric(run.id, "eval/loss").steps) == [6, 12]
        assert not [key for key in store.metric_keys(run.id) if "@rank" in key]  # the other rank stored nothing
