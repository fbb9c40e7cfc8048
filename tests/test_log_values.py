"""What run.log accepts, how it stores it, and what it refuses (read back from the store)."""

from __future__ import annotations

import math
import struct
import time

import numpy as np
import pytest
import torch

import runpoint as rp


def _values(run: rp.Run, key: str) -> list[float]:
    run.flush()
    return list(run.store.read_metric(run.id, key).values)


def _steps(run: rp.Run, key: str) -> list[int]:
    run.flush()
    return list(run.store.read_metric(run.id, key).steps)


def test_python_numpy_and_torch_scalars_are_stored_exactly(root) -> None:
    with rp.init(project="p", root=root, console=False) as run:
        run.log(
            {
                "int": 7,
                "float": 0.1,
                "bool": True,
                "np_f32": np.float32(1.5),
                "np_f64": np.float64(2.25),
                "np_i64": np.int64(-3),
                "np_bool": np.bool_(False),
                "np_0d": np.array(4.5),
                "t_0d": torch.tensor(3.25),
                "t_1elem": torch.tensor([6.5]),
                "t_grad": (torch.ones((), requires_grad=True) * 2),
                "t_int": torch.tensor(9, dtype=torch.int32),
                "t_bf16": torch.tensor(0.5, dtype=torch.bfloat16),
            },
            step=0,
        )
        expected = {
            "int": 7.0, "float": 0.1, "bool": 1.0, "np_f32": 1.5, "np_f64": 2.25, "np_i64": -3.0,
            "np_bool": 0.0, "np_0d": 4.5, "t_0d": 3.25, "t_1elem": 6.5, "t_grad": 2.0, "t_int": 9.0,
            "t_bf16": 0.5,
        }
        for key, value in expected.items():
            assert _values(run, key) == [value], key


def test_nested_dicts_flatten_with_slashes(root) -> None:
    with rp.init(project="p", root=root, console=False) as run:
        run.log({"train": {"loss": 0.5, "opt": {"lr": 0.01}}, "epoch": 1}, step=3)
        run.flush()
        assert run.store.metric_keys(run.id) == ["epoch", "train/loss", "train/opt/lr"]
        assert _values(run, "train/opt/lr") == [0.01]


def test_nan_and_infinities_are_stored_bit_for_bit(root) -> None:
    with rp.init(project="p", root=root, console=False) as run:
        run.log({"x": math.nan}, step=0)
        run.log({"x": math.inf}, step=1)
        run.log({"x": -math.inf}, step=2)
        run.log({"x": 1.0}, step=3)
        values = _values(run, "x")
        assert math.isnan(values[0]) and values[1:] == [math.inf, -math.inf, 1.0]
        assert struct.pack("<d", values[0]) == struct.pack("<d", math.nan)
        stats = run.store.metric_stats(run.id)["x"]
        assert (stats.min, stats.max, stats.last, stats.count) == (-math.inf, math.inf, 1.0, 4)


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ("text", "str"),
        (None, "NoneType"),
        ([1.0, 2.0], "list"),
        (np.array([1.0, 2.0]), "shape (2,)"),
        (torch.ones(3), "shape (3,)"),
        (object(), "object"),
        (np.array(["a"])[0], "numpy.str_"),
        (torch.tensor(1 + 2j), "complex"),
    ],
)
def test_unsupported_values_raise_type_error_naming_the_key_and_record_nothing(root, bad, fragment) -> None:
    with rp.init(project="p", root=root, console=False) as run:
        with pytest.raises(TypeError) as raised:
            run.log({"fine": 1.0, "outer": {"bad_key": bad}}, step=0)
        assert isinstance(raised.value, rp.InvalidValueError)
        assert raised.value.key == "outer/bad_key"
        assert "'outer/bad_key'" in str(raised.value) and fragment in str(raised.value)
        run.flush()
        assert run.store.metric_keys(run.id) == []  # the call's good values were not kept either
        run.log({"fine": 2.0})
        assert _steps(run, "fine") == [0]  # a failed call does not consume a step


@pytest.mark.parametrize("data", [[("a", 1.0)], "loss=1", 3.0, None])
def test_data_that_is_not_a_mapping_is_rejected(root, data) -> None:
    with rp.init(project="p", root=root, console=False) as run:
        with pytest.raises(rp.InvalidArgumentError, match="dict of metrics"):
            run.log(data)


@pytest.mark.parametrize("key", ["", 3, None])
def test_keys_must_be_non_empty_strings(root, key) -> None:
    with rp.init(project="p", root=root, console=False) as run:
        with pytest.raises(TypeError, match="non-empty strings"):
            run.log({key: 1.0})


@pytest.mark.parametrize(
    "data, expected",
    [
        ({1: 0.5}, "cannot log the key 1: it is of type int"),
        ({"opt": {2: 0.5}}, "cannot log the key 2 (under 'opt'): it is of type int"),
        ({"": 0.5}, "cannot log an empty key"),
    ],
)
def test_a_bad_key_is_blamed_not_its_value(root, data, expected) -> None:
    from runpoint.errors import InvalidKeyError

    with rp.init(project="p", root=root, console=False) as run:
        with pytest.raises(InvalidKeyError) as caught:
            run.log(data)
    message = str(caught.value)
    assert message.startswith(expected) and "value of type" not in message
    assert isinstance(caught.value, rp.InvalidValueError) and isinstance(caught.value, TypeError)


def test_step_auto_increments_and_follows_explicit_steps(root) -> None:
    with rp.init(project="p", root=root, console=False) as run:
        run.log({"a": 1.0})
        run.log({"a": 2.0})
        run.log({"a": 3.0}, step=10)
        run.log({"a": 4.0})
        run.log({"a": 5.0}, step=np.int64(20))
        assert run.step == 21
        assert _steps(run, "a") == [0, 1, 10, 11, 20]


@pytest.mark.parametrize("step", ["3", 1.5, True, [1]])
def test_bad_steps_are_rejected(root, step) -> None:
    with rp.init(project="p", root=root, console=False) as run:
        with pytest.raises(rp.InvalidArgumentError, match="step"):
            run.log({"a": 1.0}, step=step)


def test_each_point_records_the_wall_time_of_its_call(root) -> None:
    with rp.init(project="p", root=root, console=False) as run:
        before = time.time()
        run.log({"a": 1.0}, step=0)
        middle = time.time()
        time.sleep(0.01)
        run.log({"a": 2.0}, step=1)
        after = time.time()
        run.flush()
        times = list(run.store.read_metric(run.id, "a").times)
        assert before <= times[0] <= middle < times[1] <= after


def test_logging_after_finish_raises(root) -> None:
    run = rp.init(project="p", root=root, console=False)
    run.finish()
    with pytest.raises(rp.RunpointError, match="finished"):
        run.log({"a": 1.0})
    run.finish()  # idempotent


def test_a_deferred_value_is_resolved_by_the_writer(root) -> None:
    class Later:
        calls = 0

        def resolve(self) -> float:
            Later.calls += 1
            return 42.0

    with rp.init(project="p", root=root, console=False) as run:
        run.log({"x": Later()}, step=0)
        assert _values(run, "x") == [42.0]
        assert Later.calls == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_scalars_do_not_sync_the_caller(root) -> None:
    with rp.init(project="p", root=root, console=False) as run:
        value = torch.tensor(1.25, device="cuda")
        torch.cuda.set_sync_debug_mode("error")  # any synchronizing call on this thread raises
        try:
            run.log({"gpu": value * 2}, step=0)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        assert _values(run, "gpu") == [2.5]
