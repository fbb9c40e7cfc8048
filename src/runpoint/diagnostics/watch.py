"""``run.watch(model)``: gradient, parameter and activation statistics from hooks.

Every ``every`` backward passes (the first one included) the watcher logs, under
``watch/``:

==============================  ===============================================================
``grad_norm`` (+ ``/<layer>``)   L2 norm of all gradients (as ``clip_grad_norm_`` computes it), and per layer
``param_norm`` (+ ``/<layer>``)  L2 norm of the parameters before the optimizer step
``update_ratio`` (+ ``/<layer>``) ``‖θ_after − θ_before‖ / ‖θ_before‖`` across that optimizer step
``grad_nan``, ``grad_inf``       how many gradient elements are NaN / infinite
``grad_nonfinite/<layer>``       the same per layer (NaN + infinite)
``act_nan``, ``act_inf``         non-finite elements in the outputs of the leaf modules during that forward
``act_nonfinite/<layer>``        the same per leaf module
``clip_events``                  backward passes since the last log whose gradient norm exceeded ``max_grad_norm``
``grad_hist/<param>``            with ``histograms=True``: an :class:`~runpoint.Histogram` per parameter tensor
``param_hist/<param>``           the same for the parameter values
==============================  ===============================================================

A layer is the module that owns a parameter (``encoder.0`` for ``encoder.0.weight``);
parameters of the model itself belong to ``root``. Statistics are logged at
``run.step`` as it is during the backward pass, the step your next ``run.log`` without
``step=`` will use, so they line up with the loss you log after the optimizer step.

How: a post-accumulate-grad hook on each trainable parameter queues one callback at the
end of the backward pass (the mechanism DistributedDataParallel uses); a forward pre-hook
on the model arms the activation hooks for the forward of a watched step and measures the
update of the previous one. Between watched steps the hooks cost a few Python calls (plus
one gradient norm per step with ``max_grad_norm``). On CUDA everything is computed on the
device, stacked into one tensor and copied to pinned host memory without a sync; the
writer thread reads it.
Hooks never raise into training: a failure is logged once and the watcher switches off.

Example::

    watcher = run.watch(model, every=50, max_grad_norm=1.0)
    ...
    watcher.remove()   # or let the run's end remove the hooks
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .._util.deferred import DeviceVector
from ..errors import InvalidArgumentError
from ..media.types import Histogram

if TYPE_CHECKING:
    from ..handle import RunHandle

logger = logging.getLogger("runpoint")

PREFIX = "watch/"
ROOT_LAYER = "root"


def _layer_of(parameter_name: str) -> str:
    owner, _, _ = parameter_name.rpartition(".")
    return owner or ROOT_LAYER


class Watcher:
    """The hooks ``run.watch`` put on one model; :meth:`remove` takes them off.

    Example::

        watcher = run.watch(model, every=100, histograms=True)
        print(watcher.backward_passes)
    """

    def __init__(
        self,
        run: "RunHandle",
        model: Any,
        *,
        every: int = 100,
        grads: bool = True,
        params: bool = True,
        histograms: bool = False,
        max_grad_norm: float | None = None,
        activations: bool = True,
    ) -> None:
        import torch

        if not isinstance(model, torch.nn.Module):
            raise InvalidArgumentError("model", f"expected a torch.nn.Module, got {type(model).__qualname__}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise InvalidArgumentError("every", f"must be a positive int, got {every!r}")
        if max_grad_norm is not None and not (isinstance(max_grad_norm, (int, float)) and max_grad_norm > 0):
            raise InvalidArgumentError("max_grad_norm", f"must be a positive number, got {max_grad_norm!r}")
        self._run = run
        self._model = model
        self.every = every
        self.grads, self.params, self.histograms = grads, params, histograms
        self.activations = activations and grads
        self.max_grad_norm = None if max_grad_norm is None else float(max_grad_norm)
        self._names: list[str] = []
        self._tensors: list[Any] = []
        for name, parameter in model.named_parameters():
            if parameter.requires_grad:
                self._names.append(name)
                self._tensors.append(parameter)
        if not self._tensors:
            raise InvalidArgumentError("model", "has no trainable parameters to watch")
        self._layers: dict[str, list[int]] = {}
        for index, name in enumerate(self._names):
            self._layers.setdefault(_layer_of(name), []).append(index)
        self._leaves = [
            (name or ROOT_LAYER, module) for name, module in model.named_modules() if next(module.children(), None) is None
        ]
        self.backward_passes = 0
        self._queued = False
        self._recording = False
        self._act_handles: list[Any] = []
        self._act_counts: dict[str, list[Any]] = {}
        self._clip_events: Any = None
        self._snapshot: tuple[int, list[Any]] | None = None
        self._failed = False
        self._handles = [t.register_post_accumulate_grad_hook(self._on_grad) for t in self._tensors]
        self._handles.append(model.register_forward_pre_hook(self._before_forward))

    # -- hooks -----------------------------------------------------------------------

    def _on_grad(self, _: Any) -> None:
        if not self._queued and not self._failed:
            import torch

            self._queued = True
            torch.autograd.Variable._execution_engine.queue_callback(self._after_backward)

    def _before_forward(self, module: Any, _: Any) -> None:
        if self._failed:
            return
        try:
            import torch

            if self._snapshot is not None:
                self._log_update_ratio()
            if self.activations and module.training and torch.is_grad_enabled() and not self._recording:
                if self.backward_passes % self.every == 0:  # the next backward is a watched one
                    self._start_recording()
        except Exception as exc:
            self._fail(exc)

    def _after_backward(self) -> None:
        self._queued = False
        if self._failed:
            return
        try:
            self._after_backward_unsafe()
        except Exception as exc:
            self._fail(exc)

    def _after_backward_unsafe(self) -> None:
        import torch

        watched = self.backward_passes % self.every == 0
        self.backward_passes += 1
        with torch.no_grad():
            if self.max_grad_norm is not None and self.grads:
                grads = [t.grad for t in self._tensors if t.grad is not None]
                if grads:
                    exceeded = (torch.nn.utils.get_total_norm(grads) > self.max_grad_norm).to(torch.int64)
                    self._clip_events = exceeded if self._clip_events is None else self._clip_events + exceeded
            if watched:
                self._collect()

    def _start_recording(self) -> None:
        self._recording = True
        for name, module in self._leaves:
            def hook(_: Any, __: Any, output: Any, layer: str = name) -> None:
                self._count_activations(layer, output)

            self._act_handles.append(module.register_forward_hook(hook))

    def _stop_recording(self) -> None:
        for handle in self._act_handles:
            handle.remove()
        self._act_handles = []
        self._recording = False

    def _count_activations(self, layer: str, output: Any) -> None:
        if self._failed:
            return
        try:
            import torch

            for tensor in _tensors_in(output):
                if not tensor.is_floating_point() and not tensor.is_complex():
                    continue
                with torch.no_grad():
                    nan, inf = _nonfinite_counts(tensor)
                counts = self._act_counts.get(layer)
                if counts is None:
                    self._act_counts[layer] = [nan, inf]
                else:
                    counts[0] = counts[0] + nan
                    counts[1] = counts[1] + inf
        except Exception as exc:
            self._fail(exc)

    # -- statistics ------------------------------------------------------------------

    def _collect(self) -> None:
        import torch

        step = self._run.step
        keys: list[str] = []
        values: list[Any] = []
        device = self._tensors[0].device

        def add(key: str, value: Any) -> None:
            keys.append(PREFIX + key)
            values.append(value.to(device=device, dtype=torch.float64, non_blocking=True))

        if self.grads:
            present = [(i, t.grad) for i, t in enumerate(self._tensors) if t.grad is not None]
            if present:
                add("grad_norm", torch.nn.utils.get_total_norm([g for _, g in present]))
                squares = {i: _square_norm(g) for i, g in present}
                counts = {i: _nonfinite_counts(g, squares[i]) for i, g in present}
                add("grad_nan", torch.stack([counts[i][0].to(device) for i, _ in present]).sum())
                add("grad_inf", torch.stack([counts[i][1].to(device) for i, _ in present]).sum())
                for layer, members in self._layers.items():
                    have = [i for i in members if i in squares]
                    if have:
                        add(f"grad_norm/{layer}", torch.stack([squares[i].to(device) for i in have]).sum().sqrt())
                        add(f"grad_nonfinite/{layer}",
                            torch.stack([(counts[i][0] + counts[i][1]).to(device) for i in have]).sum())
            if self.max_grad_norm is not None and self._clip_events is not None:
                add("clip_events", self._clip_events)
                self._clip_events = None
        if self.params:
            squares_p = [_square_norm(t.detach()) for t in self._tensors]
            add("param_norm", torch.stack([s.to(device) for s in squares_p]).sum().sqrt())
            for layer, members in self._layers.items():
                add(f"param_norm/{layer}", torch.stack([squares_p[i].to(device) for i in members]).sum().sqrt())
            self._snapshot = (step, [t.detach().clone() for t in self._tensors])
        if self._recording:
            self._stop_recording()
            if self._act_counts:
                add("act_nan", torch.stack([c[0].to(device) for c in self._act_counts.values()]).sum())
                add("act_inf", torch.stack([c[1].to(device) for c in self._act_counts.values()]).sum())
                for layer, (nan, inf) in self._act_counts.items():
                    add(f"act_nonfinite/{layer}", nan + inf)
            self._act_counts = {}
        logged: dict[str, Any] = {}
        if values:
            vector = DeviceVector(torch.stack(values))
            logged = {key: vector.item(index) for index, key in enumerate(keys)}
        if self.histograms:
            for name, tensor in zip(self._names, self._tensors):
                if self.grads and tensor.grad is not None:
                    logged[f"{PREFIX}grad_hist/{name}"] = Histogram(tensor.grad)
                if self.params:
                    logged[f"{PREFIX}param_hist/{name}"] = Histogram(tensor.detach())
        if logged:
            self._run.log_internal(logged, step)

    def _log_update_ratio(self) -> None:
        import torch

        step, before = self._snapshot  # type: ignore[misc]
        self._snapshot = None
        device = self._tensors[0].device
        with torch.no_grad():
            deltas = [
                _square_norm(now.detach() - old)
                for now, old in zip(self._tensors, before)
            ]
            bases = [_square_norm(old) for old in before]
            keys = [PREFIX + "update_ratio"]
            values = [_ratio(deltas, bases, range(len(before)), device)]
            for layer, members in self._layers.items():
                keys.append(f"{PREFIX}update_ratio/{layer}")
                values.append(_ratio(deltas, bases, members, device))
            vector = DeviceVector(torch.stack(values))
        self._run.log_internal({key: vector.item(i) for i, key in enumerate(keys)}, step)

    # -- ending ----------------------------------------------------------------------

    def flush_update(self) -> None:
        """Log the update ratio of the last watched step now (the run's end does this)."""
        if self._snapshot is not None and not self._failed:
            try:
                self._log_update_ratio()
            except Exception as exc:
                self._fail(exc)

    def remove(self) -> None:
        """Take every hook off the model. Idempotent."""
        self.flush_update()
        self._stop_recording()
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._snapshot = None

    def _fail(self, exc: BaseException) -> None:
        if not self._failed:
            self._failed = True
            logger.warning("runpoint: run.watch() stopped after an error (%s: %s); training goes on",
                           type(exc).__name__, exc)
        try:
            self._stop_recording()
            for handle in self._handles:
                handle.remove()
            self._handles = []
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"Watcher({type(self._model).__name__}, every={self.every}, backward_passes={self.backward_passes})"


def _nonfinite_counts(tensor: Any, reduction: Any = None) -> tuple[Any, Any]:
    """How many elements are NaN and how many infinite, as 0-d tensors on the tensor's device.

    On the CPU a sum (or the given ``reduction`` of the tensor, e.g. its squared norm) is
    checked first: if it is finite, so is every element, and the two counting passes are
    skipped. On an accelerator both are always counted, since branching would need a sync.
    """
    import torch

    if tensor.device.type == "cpu":
        check = tensor.sum() if reduction is None else reduction
        if bool(torch.isfinite(check).all()):
            zero = torch.zeros((), dtype=torch.int64)
            return zero, zero
    return torch.count_nonzero(torch.isnan(tensor)), torch.count_nonzero(torch.isinf(tensor))


def _square_norm(tensor: Any) -> Any:
    """The squared L2 norm in float64 (low-precision tensors are reduced in float32 first)."""
    import torch

    if tensor.dtype in (torch.float16, torch.bfloat16):
        tensor = tensor.float()
    return torch.linalg.vector_norm(tensor).double() ** 2


def _ratio(deltas: list[Any], bases: list[Any], members: Any, device: Any) -> Any:
    import torch

    delta = torch.stack([deltas[i].to(device) for i in members]).sum().sqrt()
    base = torch.stack([bases[i].to(device) for i in members]).sum().sqrt()
    return torch.where(base > 0, delta / base, torch.zeros_like(delta))


def _tensors_in(output: Any) -> list[Any]:
    """The tensors in a module's output: a tensor, or tuples, lists and dicts of them."""
    import torch

    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in _tensors_in(item)]
    if isinstance(output, dict):
        return [t for item in output.values() for t in _tensors_in(item)]
    return []
