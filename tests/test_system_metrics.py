"""The system-metrics sampler: what it logs, how it is turned off, and that a failing source never stops a run."""

from __future__ import annotations

import logging
import os
import threading
import time

import psutil
import pytest

import runpoint as rp
from runpoint.diagnostics import system


def _wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def _samplers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("runpoint-system-")]


def test_the_sampler_logs_host_and_process_vitals_at_the_last_logged_step(root) -> None:
    with rp.init(project="p", root=root, console=False, system_metrics=0.1) as run:
        run.log({"loss": 1.0}, step=41)
        _wait_for(lambda: run.flush() and "system/proc/rss_mb" in run.store.metric_keys(run.id)
                  and run.store.metric_stats(run.id)["system/proc/rss_mb"].count >= 3)
        keys = set(run.store.metric_keys(run.id))
        stats = run.store.metric_stats(run.id)
    expected = {"system/cpu_percent", "system/memory_percent", "system/memory_used_gb", "system/proc/cpu_percent",
                "system/proc/rss_mb", "system/proc/threads", "system/disk_read_mb_s", "system/disk_write_mb_s",
                "system/net_sent_mb_s", "system/net_recv_mb_s"}
    if psutil.disk_io_counters() is None:
        expected -= {"system/disk_read_mb_s", "system/disk_write_mb_s"}
    assert expected <= keys
    assert 0 <= stats["system/cpu_percent"].max <= 100
    assert 0 < stats["system/memory_percent"].last < 100
    assert 0 <= stats["system/proc/cpu_percent"].max <= 100 * os.cpu_count()
    own_rss = psutil.Process().memory_info().rss / 2**20
    assert own_rss / 2 < stats["system/proc/rss_mb"].last < own_rss * 2
    assert stats["system/proc/threads"].last >= 3  # main, writer, sampler
    assert stats["system/disk_write_mb_s"].min >= 0 if "system/disk_write_mb_s" in stats else True
    assert stats["system/proc/rss_mb"].last_step == 41
    assert not _samplers()  # stopped with the run


@pytest.mark.parametrize("setting, env", [(False, None), (0, None), (None, "off"), (None, "0")])
def test_system_metrics_can_be_turned_off(root, monkeypatch, setting, env) -> None:
    if env is not None:
        monkeypatch.setenv(system.ENV, env)
    with rp.init(project="p", root=root, console=False, system_metrics=setting) as run:
        assert not _samplers()
    assert not [k for k in run.store.metric_keys(run.id) if k.startswith("system/")]


def test_the_interval_setting(monkeypatch) -> None:
    monkeypatch.delenv(system.ENV, raising=False)
    assert system.interval_from(None) == 10.0 and system.interval_from(True) == 10.0
    assert system.interval_from(2.5) == 2.5 and system.interval_from(False) is None
    monkeypatch.setenv(system.ENV, "30")
    assert system.interval_from(None) == 30.0
    for typo in ("soon", "-3"):  # a bad environment variable warns and keeps the default; it never stops a run
        monkeypatch.setenv(system.ENV, typo)
        assert system.interval_from(None) == 10.0
    for bad in (-1, 0.001, 1e9, "10"):
        with pytest.raises(rp.InvalidArgumentError, match="system_metrics"):
            system.interval_from(bad)


def test_a_bad_setting_is_refused_before_the_run_is_created(root) -> None:
    with pytest.raises(rp.InvalidArgumentError, match="system_metrics"):
        rp.init(project="p", root=root, console=False, system_metrics=-5)
    assert not (root / "p").exists()


def test_a_failing_source_is_warned_about_once_and_the_others_go_on(root, monkeypatch, caplog) -> None:
    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        raise OSError("no /proc/diskstats here")

    monkeypatch.setattr(psutil, "disk_io_counters", broken)
    with caplog.at_level(logging.WARNING, "runpoint"):
        with rp.init(project="p", root=root, console=False, system_metrics=0.05) as run:
            _wait_for(lambda: run.flush() and run.store.metric_stats(run.id).get("system/cpu_percent")
                      and run.store.metric_stats(run.id)["system/cpu_percent"].count >= 3)
            run.log({"loss": 1.0}, step=0)
    assert not [k for k in run.store.metric_keys(run.id) if k.startswith("system/disk")]
    assert caplog.text.count("reading disk failed") == 1 and len(calls) == 1
    assert run.status is rp.RunStatus.COMPLETED


def test_the_sampler_counts_its_own_cpu_time(root) -> None:
    with rp.init(project="p", root=root, console=False, system_metrics=False) as run:
        sampler = system.SystemSampler(run, interval=0.05)
        sampler.start()
        _wait_for(lambda: sampler.samples >= 5)
        sampler.stop()
    assert sampler.cpu_seconds > 0
    assert sampler.cpu_seconds / sampler.samples < 0.05  # far below the interval itself


def test_without_nvml_there_are_no_gpu_metrics(root, monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pynvml", None)  # as if nvidia-ml-py were not installed
    with rp.init(project="p", root=root, console=False, system_metrics=0.05) as run:
        _wait_for(lambda: run.flush() and "system/cpu_percent" in run.store.metric_keys(run.id))
    assert not [k for k in run.store.metric_keys(run.id) if k.startswith("system/gpu")]
