"""Data order that a checkpoint can resume mid-epoch: :class:`ResumableSampler`.

Restoring the model, optimizer and RNG is not enough for a resumed run to match an
uninterrupted one: it must also see the same batches in the same order, starting with
the batch after the checkpoint. ``torch.utils.data.RandomSampler`` draws each epoch's
order from the global generator and cannot start in the middle of an epoch.
``ResumableSampler`` derives each epoch's order from ``(seed, epoch)`` alone and keeps its
position (epoch, samples consumed) in its ``state_dict``, so put it in the checkpoint's
state next to the model.

Give the DataLoader the sampler's :attr:`~ResumableSampler.generator` too. Every
``iter(loader)`` draws a seed for its workers from ``loader.generator``, or from torch's
global generator when there is none; a resumed run calls ``iter`` at a point where the
uninterrupted one did not, which would shift every later random number (dropout, noise)
by one draw. The sampler keeps its generator seeded from ``(seed, epoch)``: it re-seeds it
whenever the epoch changes (an epoch ends, ``set_epoch``, ``load_state_dict``) and when it
is iterated, so the seed a loader draws at ``iter(loader)`` is the same after a resume.
(With a ``batch_size`` the DataLoader wraps the sampler in a ``BatchSampler`` that first
iterates it at the first batch, after the seed draw: re-seeding only at ``iter`` is too late.)

With ``num_workers=0`` (the default) the position is exact as is: the DataLoader draws
the indices of a batch when the loop asks for it. Worker processes draw ahead of the
loop; then iterate through :meth:`ResumableSampler.track`, which counts the batches the
loop actually received. (Random augmentations inside workers depend on which worker
gets which batch, and are not reproduced across a resume.)

In a multi-rank job it replaces ``DistributedSampler``: each rank gets every
``num_replicas``-th index of the epoch's order (the order padded by repeating its start
so every rank gets as many, as ``DistributedSampler`` does), with ``num_replicas`` and
``rank`` taken from the process group unless given. Each rank's position is saved in its
own directory of a sharded checkpoint; a job resumed on another number of ranks goes on
from the same place in the epoch when the samples consumed divide evenly among its ranks.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Sized

from ..errors import InvalidArgumentError


class ResumableSampler:
    """Dataset indices in a per-epoch shuffled order that resumes where a checkpoint left off.

    Example::

        sampler = ResumableSampler(len(train_set), seed=0)
        loader = DataLoader(train_set, batch_size=64, sampler=sampler, generator=sampler.generator)
        state = {"model": model, "optimizer": opt, "sampler": sampler}
        restored = ckpt.restore(state)              # the sampler is back mid-epoch too
        while sampler.epoch < epochs:
            for x, y in loader:                     # starts with the batch after the checkpoint
                ...
    """

    def __init__(self, data_source_or_length: Sized | int, *, shuffle: bool = True, seed: int = 0,
                 num_replicas: int | None = None, rank: int | None = None) -> None:
        length = data_source_or_length if isinstance(data_source_or_length, int) else len(data_source_or_length)
        if isinstance(length, bool) or length < 0:
            raise InvalidArgumentError("data_source_or_length", f"must be a dataset or a length >= 0, got {length!r}")
        self.length = int(length)
        self.num_replicas, self.rank = _replicas(num_replicas, rank)
        self._per_rank = -(-self.length // self.num_replicas)  # samples each rank gets per epoch
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.epoch = 0
        self._consumed = 0  # samples of the current epoch the loop has had
        self._tracking = False
        self._generator: Any = None

    def __repr__(self) -> str:
        ranks = f", rank={self.rank}/{self.num_replicas}" if self.num_replicas > 1 else ""
        return (f"ResumableSampler(length={self.length}, epoch={self.epoch}, position={self._consumed}, "
                f"seed={self.seed}{ranks})")

    def __len__(self) -> int:
        """How many indices the next pass yields (fewer when resuming mid-epoch)."""
        return self._per_rank - self._consumed

    @property
    def position(self) -> int:
        """Samples of the current epoch already consumed."""
        return self._consumed

    def order(self, epoch: int) -> list[int]:
        """The order of ``epoch``: the same for the same seed, whatever else ran before."""
        if not self.shuffle:
            return list(range(self.length))
        import numpy as np

        return np.random.default_rng([self.seed, epoch]).permutation(self.length).tolist()

    @property
    def generator(self) -> Any:
        """A ``torch.Generator`` for ``DataLoader(generator=)``, seeded from ``(seed, epoch)``."""
        if self._generator is None:
            import torch

            self._generator = torch.Generator()
            self._reseed()
        return self._generator

    def _reseed(self) -> None:
        if self._generator is not None:
            self._generator.manual_seed(self.seed * 1_000_003 + self.epoch)

    def __iter__(self) -> Iterator[int]:
        # not a generator function: without a BatchSampler this runs at iter(loader), before
        # the loader draws its seed; with one it runs at the first batch and undoes that draw
        self._reseed()
        return self._indices()

    def _rank_order(self) -> list[int]:
        order = self.order(self.epoch)
        if self.num_replicas == 1 or not order:
            return order
        padded = order + (order * self.num_replicas)[:self._per_rank * self.num_replicas - len(order)]
        return padded[self.rank::self.num_replicas]

    def _indices(self) -> Iterator[int]:
        order = self._rank_order()
        if self._per_rank == 0 and not self._tracking:
            self._finish_epoch()
        for index in range(self._consumed, self._per_rank):
            if not self._tracking:
                # handing out the last index ends the epoch: a checkpoint taken after the
                # last batch resumes at the start of the next epoch, not at an empty one
                if index + 1 == self._per_rank:
                    self._finish_epoch()
                else:
                    self._consumed = index + 1
            yield order[index]

    def _finish_epoch(self) -> None:
        self.epoch += 1
        self._consumed = 0
        self._reseed()

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` from its beginning (as ``DistributedSampler.set_epoch``)."""
        self.epoch = int(epoch)
        self._consumed = 0
        self._reseed()

    def track(self, batches: Iterable[Any], batch_size: int | None = None) -> Iterator[Any]:
        """Iterate ``batches`` (a DataLoader over this sampler), counting what the loop got.

        Use it with worker processes, which draw indices ahead of the loop::

            for x, y in sampler.track(loader):
                ...
        """
        size = batch_size if batch_size is not None else getattr(batches, "batch_size", None)
        if not isinstance(size, int) or size < 1:
            raise InvalidArgumentError("batch_size", "track() needs the loader's batch size")
        self._tracking = True
        epoch = self.epoch
        try:
            for batch in batches:
                self._consumed += size
                if self._consumed >= self._per_rank:
                    self._finish_epoch()
                yield batch
            if self.epoch == epoch:  # the loader dropped a last partial batch
                self._finish_epoch()
        finally:
            self._tracking = False

    def state_dict(self) -> dict[str, Any]:
        state = {"epoch": self.epoch, "position": self._consumed, "seed": self.seed,
                 "length": self.length, "shuffle": self.shuffle}
        if self.num_replicas > 1:  # single-process states stay as they were
            state.update(num_replicas=self.num_replicas, rank=self.rank)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state.get("length", self.length)) != self.length:
            raise InvalidArgumentError(
                "state", f"the sampler was saved over {state['length']} samples, this one has {self.length}"
            )
        self.seed = int(state.get("seed", self.seed))
        self.shuffle = bool(state.get("shuffle", self.shuffle))
        self.epoch = int(state["epoch"])
        self._consumed = _position_here(int(state["position"]), int(state.get("num_replicas", 1)), self.num_replicas)
        self._reseed()


def _replicas(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    """(ranks sharing the data, this one's rank): as given, else the process group's, else (1, 0)."""
    if num_replicas is None or rank is None:
        from ..distributed import current

        ranks = current()
        num_replicas = num_replicas if num_replicas is not None else (ranks.world_size if ranks else 1)
        rank = rank if rank is not None else (ranks.rank if ranks else 0)
    if isinstance(num_replicas, bool) or not isinstance(num_replicas, int) or num_replicas < 1:
        raise InvalidArgumentError("num_replicas", f"must be an int >= 1, got {num_replicas!r}")
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < num_replicas:
        raise InvalidArgumentError("rank", f"must be in [0, {num_replicas}), got {rank!r}")
    return num_replicas, rank


def _position_here(position: int, saved_replicas: int, replicas: int) -> int:
    """A rank's position in the epoch, saved by a job of ``saved_replicas`` ranks, for one of ``replicas``."""
    if saved_replicas == replicas:
        return position
    consumed = position * saved_replicas
    if consumed % replicas:
        raise InvalidArgumentError(
            "state", f"the sampler was saved by {saved_replicas} ranks after {consumed} samples of the epoch, which "
                     f"{replicas} ranks cannot share evenly; resume on {saved_replicas} ranks, or at an epoch's start"
        )
    return consumed // replicas
