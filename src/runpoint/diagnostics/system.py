"""System metrics: a sampler thread that logs the machine's and the process's vitals.

Started by ``rp.init(system_metrics=10.0)`` (the default; ``False`` turns it off,
``$RUNPOINT_SYSTEM_METRICS`` sets the default: seconds, or ``0``/``off``). Every interval
it logs, under ``system/``, at the step the training loop last logged:

=================================  =======================================================
``cpu_percent``                    host CPU use, all cores (0-100)
``memory_percent``, ``memory_used_gb``  host memory in use (total minus available)
``disk_read_mb_s``, ``disk_write_mb_s``  host disk throughput since the last sample
``net_sent_mb_s``, ``net_recv_mb_s``    host network throughput since the last sample
``proc/cpu_percent``               this process, in % of one core (400 = four busy cores)
``proc/rss_mb``, ``proc/threads``  this process's resident memory and thread count
``gpu<i>/util_percent``            per GPU (NVML index), when ``nvidia-ml-py`` and a driver exist
``gpu<i>/memory_used_mb``, ``gpu<i>/memory_percent``, ``gpu<i>/temp_c``, ``gpu<i>/power_w``
=================================  =======================================================

It reads counters through psutil and NVML and never touches CUDA, so it adds no GPU
sync. Its own cost is counted (``SystemSampler.cpu_seconds``, the thread's CPU time);
the benchmark keeps it under 1% of one core at the default interval. A source that
fails is warned about once and left out from then on: it never stops training.

Example::

    with rp.init(project="p", system_metrics=5.0) as run:   # every 5 s
        ...
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from ..errors import InvalidArgumentError

if TYPE_CHECKING:
    from ..handle import RunHandle

logger = logging.getLogger("runpoint")

ENV = "RUNPOINT_SYSTEM_METRICS"
DEFAULT_INTERVAL_S = 10.0
MIN_INTERVAL_S = 0.05
PREFIX = "system/"
_MB = 1e6
_MIB = 1024.0 * 1024.0


def interval_from(setting: float | bool | None) -> float | None:
    """The sampling interval in seconds for ``rp.init(system_metrics=...)``; None means off."""
    if setting is None:
        raw = os.environ.get(ENV, "").strip().lower()
        if not raw:
            return DEFAULT_INTERVAL_S
        if raw in {"0", "off", "false", "no"}:
            return None
        if raw in {"1", "on", "true", "yes"}:
            return DEFAULT_INTERVAL_S
        try:
            seconds = float(raw)
        except ValueError:
            seconds = -1.0
        if not MIN_INTERVAL_S <= seconds <= 3600:  # a typo in the environment must not stop training
            logger.warning("runpoint: $%s=%r is not seconds (%s..3600) or 'off'; sampling every %g s",
                           ENV, raw, MIN_INTERVAL_S, DEFAULT_INTERVAL_S)
            return DEFAULT_INTERVAL_S
        return seconds
    if setting is True:
        return DEFAULT_INTERVAL_S
    if setting is False or setting == 0:
        return None
    if not isinstance(setting, (int, float)) or not (MIN_INTERVAL_S <= setting <= 3600):
        raise InvalidArgumentError(
            "system_metrics", f"must be seconds between {MIN_INTERVAL_S} and 3600, True or False; got {setting!r}"
        )
    return float(setting)


class _Sources:
    """Reads psutil and NVML counters; each source switches itself off after its first failure."""

    def __init__(self, gpus: bool) -> None:
        import psutil

        self._psutil = psutil
        self._process = psutil.Process()
        self._failed: set[str] = set()
        self._last_time = time.monotonic()
        self._disk = self._safe("disk", psutil.disk_io_counters)
        self._net = self._safe("network", psutil.net_io_counters)
        psutil.cpu_percent(None)  # the first call only starts the measurement
        self._process.cpu_percent(None)
        self._nvml: Any = None
        self._gpus: list[Any] = []
        if gpus:
            self._open_nvml()

    def _open_nvml(self) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
            self._gpus = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
            self._nvml = pynvml
        except Exception as exc:  # no package, no driver, no GPU: nothing to report
            logger.debug("runpoint: no GPU metrics (%s)", exc)
            self._gpus = []

    def close(self) -> None:
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass
            self._nvml = None

    def _safe(self, name: str, read: Callable[[], Any]) -> Any:
        if name in self._failed:
            return None
        try:
            return read()
        except Exception as exc:
            self._failed.add(name)
            logger.warning("runpoint: system metrics: reading %s failed (%s); it is left out from now on", name, exc)
            return None

    def read(self) -> dict[str, float]:
        psutil = self._psutil
        now = time.monotonic()
        elapsed = max(now - self._last_time, 1e-9)
        self._last_time = now
        values: dict[str, float] = {}
        cpu = self._safe("cpu", lambda: psutil.cpu_percent(None))
        if cpu is not None:
            values["cpu_percent"] = float(cpu)
        memory = self._safe("memory", psutil.virtual_memory)
        if memory is not None:
            values["memory_percent"] = float(memory.percent)
            values["memory_used_gb"] = (memory.total - memory.available) / 1e9
        disk = self._safe("disk", psutil.disk_io_counters)
        if disk is not None and self._disk is not None:
            values["disk_read_mb_s"] = max(0, disk.read_bytes - self._disk.read_bytes) / _MB / elapsed
            values["disk_write_mb_s"] = max(0, disk.write_bytes - self._disk.write_bytes) / _MB / elapsed
        self._disk = disk
        net = self._safe("network", psutil.net_io_counters)
        if net is not None and self._net is not None:
            values["net_sent_mb_s"] = max(0, net.bytes_sent - self._net.bytes_sent) / _MB / elapsed
            values["net_recv_mb_s"] = max(0, net.bytes_recv - self._net.bytes_recv) / _MB / elapsed
        self._net = net
        process = self._safe("process", self._read_process)
        if process is not None:
            values.update(process)
        for index, handle in enumerate(self._gpus):
            gpu = self._safe(f"gpu{index}", functools.partial(self._read_gpu, handle))
            if gpu is not None:
                values.update({f"gpu{index}/{key}": value for key, value in gpu.items()})
        return values

    def _read_process(self) -> dict[str, float]:
        with self._process.oneshot():
            return {
                "proc/cpu_percent": float(self._process.cpu_percent(None)),
                "proc/rss_mb": self._process.memory_info().rss / _MIB,
                "proc/threads": float(self._process.num_threads()),
            }

    def _read_gpu(self, handle: Any) -> dict[str, float]:
        nvml = self._nvml
        values: dict[str, float] = {}
        utilization = nvml.nvmlDeviceGetUtilizationRates(handle)
        values["util_percent"] = float(utilization.gpu)
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        values["memory_used_mb"] = memory.used / _MIB
        values["memory_percent"] = 100.0 * memory.used / memory.total if memory.total else 0.0
        try:
            values["temp_c"] = float(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
        except nvml.NVMLError:  # not every board reports it
            pass
        try:
            values["power_w"] = nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
        except nvml.NVMLError:
            pass
        return values


class SystemSampler:
    """The sampler thread of one run; started by ``rp.init``, stopped when the run ends.

    Example::

        sampler = SystemSampler(run, interval=1.0)
        sampler.start()
        ...
        sampler.stop()
        print(sampler.samples, sampler.cpu_seconds)
    """

    def __init__(
        self, run: "RunHandle", interval: float = DEFAULT_INTERVAL_S, *, gpus: bool = True, key_suffix: str = "",
        emit: Callable[[dict[str, float], int], None] | None = None,
    ) -> None:
        self._run = run
        # a multi-rank job: one sampler per machine; machines other than rank 0's add "@<host>"
        self._suffix = key_suffix
        self._emit = emit if emit is not None else run.log_internal
        self.interval = interval
        self._gpus = gpus
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.samples = 0
        self.cpu_seconds = 0.0  # CPU time the sampler thread itself used

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"runpoint-system-{self._run.id}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _loop(self) -> None:
        started = time.thread_time()
        try:
            sources = _Sources(self._gpus)
        except Exception as exc:  # psutil missing or broken: no system metrics, training goes on
            logger.warning("runpoint: system metrics are off: %s", exc)
            return
        finally:
            self.cpu_seconds += time.thread_time() - started
        try:
            while not self._stop.wait(self.interval):
                began = time.thread_time()
                try:
                    values = sources.read()
                    if values:
                        self._emit(
                            {PREFIX + key + self._suffix: value for key, value in values.items()},
                            max(self._run.step - 1, 0),
                        )
                        self.samples += 1
                except Exception as exc:  # e.g. the run finished under us
                    logger.warning("runpoint: system metrics stopped: %s", exc)
                    return
                finally:
                    self.cpu_seconds += time.thread_time() - began
        finally:
            sources.close()


def start_sampler(
    run: "RunHandle", setting: float | bool | None, *, key_suffix: str = "",
    emit: Callable[[dict[str, float], int], None] | None = None,
) -> SystemSampler | None:
    """Start sampling for ``run`` per ``rp.init``'s ``system_metrics``; stop it when the run ends.

    ``key_suffix`` and ``emit``: see :class:`SystemSampler` (a multi-rank job's node leaders).
    """
    interval = interval_from(setting)
    if interval is None:
        return None
    sampler = SystemSampler(run, interval, key_suffix=key_suffix, emit=emit)
    sampler.start()
    run.add_finish_hook(lambda _: sampler.stop())
    return sampler
