"""``run.step_timer()``: step time, throughput and peak memory with one call per step.

Each :meth:`StepTimer.tick` closes the step that began at the previous tick (or when the
timer was made) and logs, under ``perf/``:

=========================  ===========================================================
``step_time_s``            seconds per step (the mean over the ticks of a log interval)
``samples_per_s``          samples per second, when ``tick(samples=...)`` says how many
``cpu_rss_peak_mb``        the process's peak resident memory so far (``getrusage``)
``cuda_allocated_mb``      memory held by tensors on the current CUDA device now
``cuda_max_allocated_mb``  the peak of that since the start (or the last reset)
``cuda_reserved_mb``       memory PyTorch's caching allocator holds
=========================  ===========================================================

The CUDA figures appear once the script has used CUDA; they are counters kept by
PyTorch on the host, so reading them never waits for the GPU. Step time is measured on
the host: with asynchronous CUDA work a single step's time is when its kernels were
queued, but the mean over many steps is the real throughput, since a host that runs
ahead is soon made to wait.

Example::

    timer = run.step_timer()
    for step, (x, y) in enumerate(loader):
        loss = train_step(x, y)
        run.log({"train/loss": loss}, step=step)
        timer.tick(samples=len(x))          # logged at the step just logged
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from ..errors import InvalidArgumentError

if TYPE_CHECKING:
    from ..handle import RunHandle

PREFIX = "perf/"
_MIB = 1024.0 * 1024.0


def peak_rss_mb() -> float | None:
    """The process's peak resident set size in MiB, or None where getrusage is missing."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / _MIB if sys.platform == "darwin" else peak / 1024.0  # bytes on macOS, KiB elsewhere


def cuda_memory_mb() -> dict[str, float]:
    """Allocated, peak allocated and reserved CUDA memory of the current device, if CUDA is in use."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return {}
    return {
        "cuda_allocated_mb": torch.cuda.memory_allocated() / _MIB,
        "cuda_max_allocated_mb": torch.cuda.max_memory_allocated() / _MIB,
        "cuda_reserved_mb": torch.cuda.memory_reserved() / _MIB,
    }


class StepTimer:
    """Times the steps of a training loop; made by :meth:`runpoint.Run.step_timer`.

    ``every`` logs once per that many ticks, with the mean step time and the total
    throughput of those ticks.

    Example::

        timer = run.step_timer(every=10)
        for step in range(1000):
            train_step()
            timer.tick(samples=64, step=step)
    """

    def __init__(self, run: "RunHandle", every: int = 1) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise InvalidArgumentError("every", f"must be a positive int, got {every!r}")
        self._run = run
        self.every = every
        self._started = time.perf_counter()
        self._ticks = 0
        self._samples = 0
        self._samples_known = True
        self.last: dict[str, float] = {}

    def tick(self, samples: int | None = None, *, step: int | None = None) -> dict[str, float]:
        """End the current step; log (every ``every`` ticks) and return what was measured.

        ``step`` defaults to the step of the run's latest ``run.log`` call, so tick after
        logging the step's loss, or pass ``step=``.
        """
        now = time.perf_counter()
        if samples is None:
            self._samples_known = False
        elif isinstance(samples, bool) or not isinstance(samples, int) or samples < 0:
            raise InvalidArgumentError("samples", f"must be a non-negative int, got {samples!r}")
        else:
            self._samples += samples
        self._ticks += 1
        if self._ticks < self.every:
            return {}
        elapsed = now - self._started
        values: dict[str, float] = {f"{PREFIX}step_time_s": elapsed / self._ticks}
        if self._samples_known and elapsed > 0:
            values[f"{PREFIX}samples_per_s"] = self._samples / elapsed
        rss = peak_rss_mb()
        if rss is not None:
            values[f"{PREFIX}cpu_rss_peak_mb"] = rss
        values.update({PREFIX + key: value for key, value in cuda_memory_mb().items()})
        if step is None:
            step = max(self._run.step - 1, 0)
        self._run.log_internal(values, step)
        self._started, self._ticks, self._samples, self._samples_known = now, 0, 0, True
        self.last = values
        return values
