"""``run.log_model(model)``: a layer-by-layer description of a model, and its totals as params.

It writes ``model_summary.txt`` in the run directory: every module with its type, output
shape (when an example input is given, from one forward pass in eval mode under
``no_grad``; training flags are restored afterwards), its own parameters, and whether
they train; then the totals. The totals also become params of the run, so runs can be
filtered and compared by size: ``model.params_total``, ``model.params_trainable``,
``model.params_frozen``, ``model.buffers_total`` and ``model.size_bytes`` (parameters and
buffers). Shared (tied) parameters are counted once.

Example::

    summary = run.log_model(model, example_input=torch.zeros(1, 1, 28, 28))
    print(summary.params_trainable)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._util.fs import write_atomic
from ..errors import InvalidArgumentError

if TYPE_CHECKING:
    from ..handle import RunHandle


@dataclass(frozen=True)
class LayerRow:
    """One module: its dotted name, depth, type, output shape and own parameters."""

    name: str
    depth: int
    type: str
    output_shape: str
    params: int
    trainable: int


@dataclass(frozen=True)
class ModelSummary:
    """What :func:`summarize` found. ``size_bytes`` counts parameters and buffers."""

    model_type: str
    rows: list[LayerRow] = field(default_factory=list)
    params_total: int = 0
    params_trainable: int = 0
    buffers_total: int = 0
    size_bytes: int = 0
    input_description: str = ""

    @property
    def params_frozen(self) -> int:
        return self.params_total - self.params_trainable

    def params(self, prefix: str = "model") -> dict[str, int]:
        """The totals as run params."""
        return {
            f"{prefix}.params_total": self.params_total,
            f"{prefix}.params_trainable": self.params_trainable,
            f"{prefix}.params_frozen": self.params_frozen,
            f"{prefix}.buffers_total": self.buffers_total,
            f"{prefix}.size_bytes": self.size_bytes,
        }

    def text(self) -> str:
        """The summary as a fixed-width table."""
        headings = ("Layer", "Type", "Output shape", "Params", "Trainable")
        cells = [
            ("  " * row.depth + row.name, row.type, row.output_shape, f"{row.params:,}",
             "-" if not row.params else ("yes" if row.trainable == row.params else ("no" if not row.trainable else "partly")))
            for row in self.rows
        ]
        widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headings)]
        line = "  ".join(h.ljust(w) if i < 3 else h.rjust(w) for i, (h, w) in enumerate(zip(headings, widths)))
        lines = [f"Model: {self.model_type}"]
        if self.input_description:
            lines.append(f"Input: {self.input_description}")
        lines += ["", line, "-" * len(line)]
        for c in cells:
            lines.append("  ".join(v.ljust(w) if i < 3 else v.rjust(w) for i, (v, w) in enumerate(zip(c, widths))))
        lines += [
            "=" * len(line),
            f"Total params:      {self.params_total:,}",
            f"Trainable params:  {self.params_trainable:,}",
            f"Frozen params:     {self.params_frozen:,}",
            f"Buffer elements:   {self.buffers_total:,}",
            f"Size:              {self.size_bytes:,} bytes ({_human(self.size_bytes)}, parameters and buffers)",
        ]
        return "\n".join(lines) + "\n"


def _human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} TiB"


def _shape_of(output: Any) -> str:
    import torch

    if isinstance(output, torch.Tensor):
        return str(tuple(output.shape))
    if isinstance(output, (tuple, list)):
        shapes = [_shape_of(item) for item in output]
        return "[" + ", ".join(s for s in shapes if s) + "]" if any(shapes) else ""
    if isinstance(output, dict):
        return "{" + ", ".join(f"{k}: {_shape_of(v)}" for k, v in output.items()) + "}"
    return ""


def _describe_input(example: Any) -> str:
    import torch

    if isinstance(example, torch.Tensor):
        return f"{tuple(example.shape)} {str(example.dtype).replace('torch.', '')}"
    if isinstance(example, dict):
        return "{" + ", ".join(f"{k}: {_describe_input(v)}" for k, v in example.items()) + "}"
    if isinstance(example, (tuple, list)):
        return "(" + ", ".join(_describe_input(v) for v in example) + ")"
    return type(example).__qualname__


def _output_shapes(model: Any, example: Any) -> dict[str, str]:
    import torch

    shapes: dict[str, str] = {}
    handles = []
    for name, module in model.named_modules():
        def hook(_: Any, __: Any, output: Any, key: str = name) -> None:
            shapes.setdefault(key, _shape_of(output))

        handles.append(module.register_forward_hook(hook))
    modes = {module: module.training for module in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            if isinstance(example, dict):
                model(**example)
            elif isinstance(example, tuple):
                model(*example)
            else:
                model(example)
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.training = training
    return shapes


def summarize(model: Any, example_input: Any = None) -> ModelSummary:
    """Describe ``model``; with ``example_input`` (a tensor, a tuple of args or a dict of kwargs) add output shapes.

    Example::

        print(summarize(torch.nn.Linear(3, 2)).text())
    """
    import torch

    if not isinstance(model, torch.nn.Module):
        raise InvalidArgumentError("model", f"expected a torch.nn.Module, got {type(model).__qualname__}")
    shapes = _output_shapes(model, example_input) if example_input is not None else {}
    seen: set[int] = set()
    rows = []
    for name, module in model.named_modules():
        own = [p for p in module.parameters(recurse=False) if id(p) not in seen]
        seen.update(id(p) for p in own)
        rows.append(LayerRow(
            name=name or "(model)", depth=name.count(".") + 1 if name else 0, type=type(module).__name__,
            output_shape=shapes.get(name, ""), params=sum(p.numel() for p in own),
            trainable=sum(p.numel() for p in own if p.requires_grad),
        ))
    unique = {id(p): p for p in model.parameters()}.values()
    buffers = {id(b): b for b in model.buffers()}.values()
    return ModelSummary(
        model_type=f"{type(model).__module__}.{type(model).__qualname__}",
        rows=rows,
        params_total=sum(p.numel() for p in unique),
        params_trainable=sum(p.numel() for p in unique if p.requires_grad),
        buffers_total=sum(b.numel() for b in buffers),
        size_bytes=sum(p.numel() * p.element_size() for p in unique) + sum(b.numel() * b.element_size() for b in buffers),
        input_description=_describe_input(example_input) if example_input is not None else "",
    )


def log_model(run: "RunHandle", model: Any, example_input: Any = None, name: str = "model") -> ModelSummary:
    """Write ``<name>_summary.txt`` into the run directory and store the totals as params."""
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise InvalidArgumentError("name", f"must be a plain file-name-safe word, got {name!r}")
    summary = summarize(model, example_input)
    write_atomic(run.dir / f"{name}_summary.txt", summary.text())
    run.add_params(summary.params(name))
    return summary
