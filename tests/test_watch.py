"""run.watch on a tiny model whose gradients are worked out by hand.

The model is y = W2 (W1 x + b1) + b2 with loss = y, so for an input x:
h = W1 x + b1, dL/dW2 = h, dL/db2 = 1, dL/db1 = W2^T, dL/dW1 = W2^T x^T.
"""

from __future__ import annotations

import logging
import math

import pytest
import torch

import runpoint as rp

W1 = [[1.0, 2.0], [3.0, 4.0]]
B1 = [0.5, -0.5]
W2 = [[1.0, -1.0]]
B2 = [2.0]


def _model() -> torch.nn.Sequential:
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor(W1))
        model[0].bias.copy_(torch.tensor(B1))
        model[1].weight.copy_(torch.tensor(W2))
        model[1].bias.copy_(torch.tensor(B2))
    return model


def _hand_gradients(x: list[float]) -> dict[str, list[float]]:
    h = [W1[0][0] * x[0] + W1[0][1] * x[1] + B1[0], W1[1][0] * x[0] + W1[1][1] * x[1] + B1[1]]
    dh = [W2[0][0], W2[0][1]]
    return {
        "0": [dh[0] * x[0], dh[0] * x[1], dh[1] * x[0], dh[1] * x[1], dh[0], dh[1]],  # dW1 then db1
        "1": [h[0], h[1], 1.0],  # dW2 then db2
    }


def _norm(values: list[float]) -> float:
    return math.sqrt(sum(v * v for v in values))


def _values(run: rp.Run, key: str) -> dict[int, float]:
    run.flush()
    series = run.store.read_metric(run.id, key)
    return dict(zip(series.steps, series.values))


def _train(run: rp.Run, model: torch.nn.Module, inputs: list[list[float]], lr: float = 0.0) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for step, x in enumerate(inputs):
        loss = model(torch.tensor([x])).sum()
        optimizer.zero_grad()
        loss.backward()
        if lr:  # a step with lr=0 would still turn the weights NaN after a NaN gradient
            optimizer.step()
        run.log({"loss": loss.detach()}, step=step)


def test_gradient_and_parameter_norms_match_the_hand_computation(root) -> None:
    x = [1.0, -1.0]
    grads = _hand_gradients(x)
    with rp.init(project="p", root=root, console=False) as run:
        model = _model()
        run.watch(model, every=1)
        _train(run, model, [x])
        assert _values(run, "watch/grad_norm/0")[0] == pytest.approx(_norm(grads["0"]))  # sqrt(6)
        assert _values(run, "watch/grad_norm/1")[0] == pytest.approx(_norm(grads["1"]))  # sqrt(3.5)
        assert _values(run, "watch/grad_norm")[0] == pytest.approx(math.sqrt(9.5))
        assert _values(run, "watch/param_norm/0")[0] == pytest.approx(math.sqrt(1 + 4 + 9 + 16 + 0.25 + 0.25))
        assert _values(run, "watch/param_norm/1")[0] == pytest.approx(math.sqrt(1 + 1 + 4))
        assert _values(run, "watch/param_norm")[0] == pytest.approx(math.sqrt(36.5))
        for key in ("grad_nan", "grad_inf", "act_nan", "act_inf", "grad_nonfinite/0", "act_nonfinite/1"):
            assert _values(run, f"watch/{key}") == {0: 0.0}, key


def test_update_ratio_is_the_relative_change_of_the_parameters_across_the_optimizer_step(root) -> None:
    x = [1.0, -1.0]
    grads = _hand_gradients(x)
    with rp.init(project="p", root=root, console=False) as run:
        model = _model()
        run.watch(model, every=1)
        _train(run, model, [x, x], lr=0.1)
        # step 0's update is measured at step 1's forward: ||lr * g|| / ||theta||
        assert _values(run, "watch/update_ratio/0")[0] == pytest.approx(0.1 * math.sqrt(6) / math.sqrt(30.5))
        assert _values(run, "watch/update_ratio/1")[0] == pytest.approx(0.1 * math.sqrt(3.5) / math.sqrt(6))
        assert _values(run, "watch/update_ratio")[0] == pytest.approx(0.1 * math.sqrt(9.5) / math.sqrt(36.5))
    # the last watched step's update is measured when the run ends
    assert set(_values(run, "watch/update_ratio")) == {0, 1}
    assert grads  # the hand gradients above are what SGD applied


def test_nan_and_inf_in_activations_and_gradients_are_counted_per_layer(root) -> None:
    with rp.init(project="p", root=root, console=False) as run:
        model = _model()
        run.watch(model, every=1)
        _train(run, model, [[math.nan, 1.0], [math.inf, 0.0]])
        # NaN input: h = [nan, nan] and y = nan; dW2 = h has 2 NaN, dW1 = W2^T x^T has 2
        assert _values(run, "watch/act_nonfinite/0")[0] == 2 and _values(run, "watch/act_nonfinite/1")[0] == 1
        assert _values(run, "watch/act_nan")[0] == 3 and _values(run, "watch/act_inf")[0] == 0
        assert _values(run, "watch/grad_nan")[0] == 4 and _values(run, "watch/grad_inf")[0] == 0
        assert _values(run, "watch/grad_nonfinite/0")[0] == 2 and _values(run, "watch/grad_nonfinite/1")[0] == 2
        assert math.isnan(_values(run, "watch/grad_norm")[0])
        # inf input: h = [inf, inf], y = inf - inf = nan; dW2 = h (2 inf), dW1 = [[inf, 0], [-inf, 0]] (2 inf)
        assert _values(run, "watch/act_inf")[1] == 2 and _values(run, "watch/act_nan")[1] == 1
        assert _values(run, "watch/grad_inf")[1] == 4 and _values(run, "watch/grad_nan")[1] == 0


def test_clipping_events_count_backward_passes_over_max_grad_norm_between_logs(root) -> None:
    big, small = [1.0, -1.0], [0.0, 0.0]  # global gradient norms sqrt(9.5) = 3.08 and sqrt(3.5) = 1.87
    assert _norm(sum(_hand_gradients(big).values(), [])) > 3 > _norm(sum(_hand_gradients(small).values(), []))
    with rp.init(project="p", root=root, console=False) as run:
        model = _model()
        run.watch(model, every=2, max_grad_norm=3.0)
        _train(run, model, [big, big, big, small, small])
        assert _values(run, "watch/clip_events") == {0: 1.0, 2: 2.0, 4: 0.0}
        assert set(_values(run, "watch/grad_norm")) == {0, 2, 4}  # every=2: backward passes 1, 3, 5


def test_histograms_of_gradients_and_parameters_are_logged_when_asked(root) -> None:
    from runpoint import query

    with rp.init(project="p", root=root, console=False) as run:
        model = _model()
        run.watch(model, every=1, histograms=True)
        _train(run, model, [[1.0, -1.0]])
        run.flush()
        keys = {k.key for k in query.media_keys(run.store, run.id)}
        assert keys == {f"watch/{kind}_hist/{name}" for kind in ("grad", "param")
                        for name in ("0.weight", "0.bias", "1.weight", "1.bias")}
        (grad_hist,) = query.read_media(run.store, run.id, "watch/grad_hist/1.weight")
        assert grad_hist.data["count"] == 2 and (grad_hist.data["min"], grad_hist.data["max"]) == (-1.5, -0.5)
        (param_hist,) = query.read_media(run.store, run.id, "watch/param_hist/0.weight")
        assert sum(param_hist.data["counts"]) == 4 and param_hist.data["max"] == 4.0


def test_evaluation_forwards_do_not_count_and_frozen_parameters_are_not_watched(root) -> None:
    with rp.init(project="p", root=root, console=False) as run:
        model = _model()
        model[1].bias.requires_grad_(False)
        watcher = run.watch(model, every=1, params=False)
        with torch.no_grad():
            model(torch.tensor([[math.nan, 0.0]]))  # a validation pass: not recorded
        _train(run, model, [[1.0, -1.0]])
        assert watcher.backward_passes == 1
        assert _values(run, "watch/act_nan") == {0: 0.0}
        assert _values(run, "watch/grad_norm/1")[0] == pytest.approx(math.sqrt(0.25 + 2.25))  # no db2
        assert "watch/param_norm" not in run.store.metric_keys(run.id)


def test_hooks_come_off_when_the_run_ends_and_with_remove(root) -> None:
    model = _model()
    with rp.init(project="p", root=root, console=False) as run:
        run.watch(model, every=1)
        assert model._forward_pre_hooks
    assert not model._forward_pre_hooks
    assert all(not p._post_accumulate_grad_hooks for p in model.parameters())
    with rp.init(project="p", root=root, console=False) as run:
        watcher = run.watch(model, every=1)
        watcher.remove()
        _train(run, model, [[1.0, -1.0]])
        assert not [k for k in run.store.metric_keys(run.id) if k.startswith("watch/")]


def test_a_failing_hook_warns_once_switches_off_and_training_goes_on(root, caplog, monkeypatch) -> None:
    from runpoint.diagnostics.watch import Watcher

    def broken(self) -> None:
        raise RuntimeError("statistics exploded")

    monkeypatch.setattr(Watcher, "_collect", broken)
    with rp.init(project="p", root=root, console=False) as run, caplog.at_level(logging.WARNING, "runpoint"):
        model = _model()
        watcher = run.watch(model, every=1)
        _train(run, model, [[1.0, -1.0]] * 3, lr=0.1)
        assert list(_values(run, "loss")) == [0, 1, 2]
        assert not model._forward_pre_hooks
    assert caplog.text.count("run.watch() stopped") == 1 and "statistics exploded" in caplog.text
    assert watcher.backward_passes == 1


@pytest.mark.parametrize(
    "kwargs, fragment",
    [({"every": 0}, "every"), ({"every": 1.5}, "every"), ({"max_grad_norm": -1}, "max_grad_norm")],
)
def test_bad_arguments_are_refused(root, kwargs, fragment) -> None:
    with rp.init(project="p", root=root, console=False) as run:
        with pytest.raises(rp.InvalidArgumentError, match=fragment):
            run.watch(_model(), **kwargs)
        with pytest.raises(rp.InvalidArgumentError, match="torch.nn.Module"):
            run.watch(object())
        frozen = _model().requires_grad_(False)
        with pytest.raises(rp.InvalidArgumentError, match="no trainable"):
            run.watch(frozen)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_watching_adds_no_host_sync(root) -> None:
    with rp.init(project="p", root=root, console=False) as run:
        model = _model().cuda()
        run.watch(model, every=1, max_grad_norm=1.0, histograms=True)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        x = torch.tensor([[1.0, -1.0]], device="cuda")
        torch.cuda.set_sync_debug_mode("error")
        try:
            for step in range(3):
                loss = model(x).sum()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                run.log({"loss": loss.detach()}, step=step)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        assert _values(run, "watch/grad_norm")[0] == pytest.approx(math.sqrt(9.5))
