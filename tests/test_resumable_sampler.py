"""ResumableSampler: a checkpoint taken mid-epoch resumes with the next batch, in the same order."""

from __future__ import annotations

import pytest
import torch

from runpoint.checkpoint import ResumableSampler


def _loader(sampler: ResumableSampler, **kwargs) -> torch.utils.data.DataLoader:
    data = torch.utils.data.TensorDataset(torch.arange(50))
    return torch.utils.data.DataLoader(data, batch_size=8, sampler=sampler, generator=sampler.generator, **kwargs)


def _batches(loader, epochs: int, sampler: ResumableSampler, stop_after: int | None = None, track: bool = False):
    seen = []
    while sampler.epoch < epochs:
        for (batch,) in (sampler.track(loader) if track else loader):
            seen.append(batch.tolist())
            if stop_after is not None and len(seen) == stop_after:
                return seen, sampler.state_dict()
    return seen, sampler.state_dict()


@pytest.mark.parametrize("stop_after", [1, 6, 7, 13, 20])
def test_resuming_mid_epoch_continues_the_same_sequence(stop_after) -> None:
    reference = ResumableSampler(50, seed=4)
    full, _ = _batches(_loader(reference), 3, reference)
    assert len(full) == 21  # 7 batches (the last one of 2) per epoch
    assert sorted(sum(full[:7], [])) == list(range(50)) and full[:7] != full[7:14]  # each epoch a new order

    first = ResumableSampler(50, seed=4)
    head, saved = _batches(_loader(first), 3, first, stop_after=stop_after)
    second = ResumableSampler(50, seed=0)
    second.load_state_dict(saved)
    tail, _ = _batches(_loader(second), 3, second)
    assert head + tail == full


def test_the_loader_seed_draw_does_not_consume_the_global_generator() -> None:
    sampler = ResumableSampler(50, seed=1)
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    next(iter(_loader(sampler)))
    assert torch.equal(torch.rand(1), expected)


def test_tracking_counts_what_the_loop_received_with_worker_processes() -> None:
    reference = ResumableSampler(50, seed=2)
    full, _ = _batches(_loader(reference), 2, reference)
    first = ResumableSampler(50, seed=2)
    head, saved = _batches(_loader(first, num_workers=2, prefetch_factor=4), 2, first, stop_after=3, track=True)
    assert saved["position"] == 24 and saved["epoch"] == 0
    second = ResumableSampler(50, seed=2)
    second.load_state_dict(saved)
    tail, _ = _batches(_loader(second, num_workers=2), 2, second, track=True)
    assert head + tail == full


def test_state_checks_and_plain_order() -> None:
    sampler = ResumableSampler(range(5), shuffle=False)
    assert list(sampler) == [0, 1, 2, 3, 4] and sampler.epoch == 1 and len(sampler) == 5
    with pytest.raises(ValueError, match="saved over 7 samples"):
        sampler.load_state_dict({"epoch": 0, "position": 1, "length": 7})
    sampler.set_epoch(5)
    assert sampler.state_dict() == {"epoch": 5, "position": 0, "seed": 0, "length": 5, "shuffle": False}


class _WorkerSeeds(torch.utils.data.Dataset):
    """Each item is its index and the seed of the worker process that loaded it."""

    def __len__(self) -> int:
        return 50

    def __getitem__(self, index: int) -> tuple[int, int]:
        info = torch.utils.data.get_worker_info()
        return index, (info.seed if info is not None else -1)


def _epochs_with_seeds(sampler: ResumableSampler, epochs: int, stop_after: int | None = None, **kwargs):
    """Per epoch pass: the loader's worker base seed and the batches it gave."""
    loader = torch.utils.data.DataLoader(
        _WorkerSeeds(), batch_size=8, sampler=sampler, generator=sampler.generator, **kwargs
    )
    passes, count = [], 0

    class Recording:  # iter(loader) where track() calls it, keeping the loader's iterator
        def __iter__(self):
            self.iterator = iter(loader)
            return self.iterator

    while sampler.epoch < epochs:
        epoch, recording, batches = sampler.epoch, Recording(), []
        # worker processes draw indices ahead of the loop: count what it received
        for indices, seeds in sampler.track(recording, batch_size=8) if kwargs.get("num_workers") else recording:
            if not batches:
                passes.append((epoch, recording.iterator._base_seed, batches))
            batches.append((indices.tolist(), seeds.tolist()))
            count += 1
            if count == stop_after:
                return passes, sampler.state_dict()
    return passes, sampler.state_dict()


@pytest.mark.parametrize("num_workers", [0, 1])
def test_a_resumed_loader_draws_the_same_worker_seeds(num_workers) -> None:
    # with a batch_size the loader draws its seed from sampler.generator before the
    # BatchSampler first iterates the sampler: the generator must be right already
    full, _ = _epochs_with_seeds(ResumableSampler(50, seed=3), 3, num_workers=num_workers)
    assert [epoch for epoch, _, _ in full] == [0, 1, 2]
    assert len({seed for _, seed, _ in full}) == 3  # each epoch its own worker seeds

    head, saved = _epochs_with_seeds(ResumableSampler(50, seed=3), 3, stop_after=10, num_workers=num_workers)
    assert saved["epoch"] == 1 and saved["position"] == 24
    resumed_sampler = ResumableSampler(50, seed=3)
    resumed_sampler.load_state_dict(saved)
    tail, _ = _epochs_with_seeds(resumed_sampler, 3, num_workers=num_workers)

    assert [(epoch, seed) for epoch, seed, _ in tail] == [(epoch, seed) for epoch, seed, _ in full[1:]]
    assert tail[0][2] == full[1][2][3:]  # the rest of epoch 1, with the same worker seeds
    assert tail[1][2] == full[2][2]  # all of epoch 2
    if num_workers:
        assert {s for _, batch_seeds in tail[1][2] for s in batch_seeds} == {full[2][1]}  # worker 0: base seed
