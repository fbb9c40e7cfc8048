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
