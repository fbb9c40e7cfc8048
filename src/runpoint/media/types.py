"""Media to log beside scalars: images, histograms, text and tables.

Example::

    run.log({
        "train/loss": loss,
        "val/samples": rp.Image(images[:16], caption="first val batch"),   # a grid of 16
        "weights/fc1": rp.Histogram(model.fc1.weight),
        "notes": rp.Text("lr halved at epoch 3"),
        "val/confusion": rp.Table(rows, columns=["label", "predicted", "count"]),
    }, step=step)

Constructing one is cheap and happens on the training loop's thread: it checks the shape
and copies the data (a CUDA tensor is copied to pinned host memory without a sync), so
changing the array afterwards changes nothing. The slow part runs on the writer thread:
images are encoded as PNG under the run's ``media/``, histogram bins are counted, table
cells converted. Each value becomes a :class:`~runpoint.store.MediaRecord`, stored beside
the metrics and read back per key and step with :func:`runpoint.query.read_media`.

Images and histograms of arrays need numpy and Pillow (``pip install 'runpoint[media]'``).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Mapping, Sequence

from ..errors import InvalidArgumentError, RunpointError
from ..store.base import MediaRecord

_SAFE_PART = re.compile(r"[^A-Za-z0-9._-]")


def media_path(key: str, step: int, suffix: str) -> str:
    """The file of ``key`` at ``step``, relative to the run directory, always under ``media/``.

    Each ``/``-separated part of the key keeps letters, digits and ``. _ -``; when anything
    had to be replaced a short hash of the key keeps different keys apart.
    """
    parts = []
    for part in key.split("/"):
        safe = _SAFE_PART.sub("_", part)
        parts.append("_" if safe in {"", ".", ".."} else safe)
    if "/".join(parts) != key:
        parts[-1] += "-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:8]
    return f"media/{'/'.join(parts)}/{step:010d}{suffix}"


def _require(module: str, what: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise RunpointError(f"{what} needs {module.split('.')[0]}: pip install 'runpoint[media]'") from None


class _HostCopy:
    """A private copy of an array-like, taken on the caller's thread, read on the writer's.

    numpy arrays are copied; CPU tensors cloned; a CUDA tensor is copied into pinned host
    memory on its stream with an event recorded after it, and only the writer waits.
    """

    __slots__ = ("_data", "_event", "shape")

    def __init__(self, value: Any, what: str) -> None:
        self._event = None
        module = type(value).__module__
        if module.startswith("torch") and hasattr(value, "device"):
            import torch

            tensor = value.detach()
            if tensor.is_complex():
                raise InvalidArgumentError(what, "complex tensors are not supported")
            if tensor.device.type == "cuda":
                host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
                host.copy_(tensor, non_blocking=True)
                self._event = torch.cuda.Event()
                self._event.record(torch.cuda.current_stream(tensor.device))
                self._data = host
            else:
                self._data = tensor.to("cpu", copy=True)
        elif module == "numpy":
            if value.dtype.kind not in "biuf":
                raise InvalidArgumentError(what, f"numpy dtype {value.dtype} is not numeric")
            self._data = value.copy()
        elif isinstance(value, (list, tuple)):
            np = _require("numpy", what)
            try:
                self._data = np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise InvalidArgumentError(what, f"cannot read the list as numbers: {exc}") from None
        else:
            raise InvalidArgumentError(
                what, f"expected a numpy array, a torch tensor or a list of numbers, not {type(value).__qualname__}"
            )
        self.shape = tuple(self._data.shape)

    def array(self) -> Any:
        """The copy as a numpy array; waits for a device copy. Writer thread only."""
        if self._event is not None:
            self._event.synchronize()
        data = self._data
        if type(data).__module__.startswith("torch"):
            import torch

            if data.dtype == torch.bfloat16:  # numpy has no bfloat16
                data = data.float()
            return data.numpy()
        return data


class _Media:
    """What every media type shares: a caption, and how ``run.log`` recognises it."""

    _runpoint_media = True  # run.log's check: defer encoding to the writer thread
    kind = ""

    caption: str | None

    def _check_caption(self, caption: str | None) -> str | None:
        if caption is not None and not isinstance(caption, str):
            raise InvalidArgumentError("caption", f"must be a string, got {type(caption).__qualname__}")
        return caption

    def _record(self, key: str, step: int, time: float, data: dict[str, Any], path: str | None = None,
                file: bytes | None = None) -> MediaRecord:
        if self.caption is not None:
            data["caption"] = self.caption
        return MediaRecord(key=key, step=step, kind=self.kind, time=time, data=data, path=path,  # type: ignore[arg-type]
                           file=file)

    def encode(self, key: str, step: int, time: float) -> MediaRecord:
        """The stored form of this value; runs on the writer thread."""
        raise NotImplementedError


class Image(_Media):
    """An image, or a grid of images, stored as PNG.

    ``data`` is a numpy array, a torch tensor or a PIL image. Arrays may be ``(H, W)``,
    ``(H, W, C)`` or ``(C, H, W)`` with C in 1, 3, 4, or a batch ``(N, ...)`` of those,
    laid out as a grid. When both ends could be channels the smaller one is; on a tie
    torch tensors are read channels first and numpy arrays channels last. Floats are taken as 0..1 and integers as 0..255, clipped; NaN
    becomes 0.

    Example::

        run.log({"val/samples": rp.Image(x[:16], caption="epoch 3")}, step=step)
    """

    kind = "image"

    def __init__(self, data: Any, caption: str | None = None) -> None:
        self.caption = self._check_caption(caption)
        _require("PIL.Image", "rp.Image")
        if type(data).__module__.startswith("PIL."):
            if data.width < 1 or data.height < 1:
                raise InvalidArgumentError("data", "the image is empty")
            self._pil = data.copy()
            self._pixels: _HostCopy | None = None
            self._layout = ""
            return
        self._pil = None
        self._pixels = _HostCopy(data, "data")
        self._layout = _layout(self._pixels.shape, channels_first=type(data).__module__.startswith("torch"))

    def encode(self, key: str, step: int, time: float) -> MediaRecord:
        from .encode import image_png

        png, width, height, channels = image_png(self._pil if self._pixels is None else self._pixels.array(), self._layout)
        data = {"width": width, "height": height, "channels": channels, "format": "png"}
        return self._record(key, step, time, data, media_path(key, step, ".png"), png)

    def __repr__(self) -> str:
        size = f"{self._pil.width}x{self._pil.height}" if self._pil is not None else "x".join(map(str, self._pixels.shape))  # type: ignore[union-attr]
        return f"Image({size}, caption={self.caption!r})"


def _layout(shape: tuple[int, ...], channels_first: bool) -> str:
    """How to read an array of ``shape``: ``HW``, ``HWC``, ``CHW``, ``NHWC`` or ``NCHW``."""
    if any(size == 0 for size in shape):
        raise InvalidArgumentError("data", f"the image of shape {shape} is empty")
    channels = (1, 3, 4)
    if len(shape) == 2:
        return "HW"
    if len(shape) in (3, 4):
        batch = "N" if len(shape) == 4 else ""
        first, last = shape[-3], shape[-1]
        fits = [layout for layout, size in (("CHW", first), ("HWC", last)) if size in channels]
        if len(fits) == 2 and first != last:  # both read as channels: the smaller is (a 4x4x1 image is not 4 channels)
            return batch + ("CHW" if first < last else "HWC")
        if fits:
            preferred = "CHW" if channels_first else "HWC"
            return batch + (preferred if preferred in fits else fits[0])
    raise InvalidArgumentError(
        "data", f"cannot read shape {shape} as an image: use (H, W), (H, W, C), (C, H, W) or a batch of them, C in 1, 3, 4"
    )


class Histogram(_Media):
    """The distribution of an array's values; the bins are counted on the writer thread.

    ``values`` is a numpy array, a torch tensor (any shape; it is flattened) or a list of
    numbers. ``bins`` equal-width bins span ``range``, or the finite values' min..max.
    NaN and infinities are counted apart, never binned.

    Example::

        run.log({"weights/fc1": rp.Histogram(model.fc1.weight, bins=32)}, step=step)
    """

    kind = "histogram"

    def __init__(
        self, values: Any, bins: int = 64, range: tuple[float, float] | None = None, caption: str | None = None
    ) -> None:
        self.caption = self._check_caption(caption)
        if isinstance(bins, bool) or not isinstance(bins, int) or not 1 <= bins <= 10_000:
            raise InvalidArgumentError("bins", f"must be an int from 1 to 10000, got {bins!r}")
        if range is not None:
            try:
                low, high = (float(v) for v in range)
            except (TypeError, ValueError):
                raise InvalidArgumentError("range", f"must be (low, high), got {range!r}") from None
            if not (low < high) or high - low == float("inf"):
                raise InvalidArgumentError("range", f"needs finite low < high, got {range!r}")
            range = (low, high)
        _require("numpy", "rp.Histogram")
        self.bins = bins
        self.range = range
        self._values = _HostCopy(values, "values")
        self._counts: tuple[list[float], list[int]] | None = None

    @classmethod
    def from_counts(cls, edges: Sequence[float], counts: Sequence[int], caption: str | None = None) -> "Histogram":
        """A histogram whose bins were counted elsewhere: ``len(edges) == len(counts) + 1``.

        Example::

            rp.Histogram.from_counts([0, 1, 2], [5, 3])
        """
        edge_list = [float(e) for e in edges]
        count_list = [int(c) for c in counts]
        if len(edge_list) != len(count_list) + 1 or not count_list:
            raise InvalidArgumentError("edges", "needs one more edge than counts, and at least one bin")
        if any(b <= a for a, b in zip(edge_list, edge_list[1:])) or any(c < 0 for c in count_list):
            raise InvalidArgumentError("edges", "edges must increase and counts must not be negative")
        histogram = cls.__new__(cls)
        histogram.caption = histogram._check_caption(caption)
        histogram.bins = len(count_list)
        histogram.range = (edge_list[0], edge_list[-1])
        histogram._counts = (edge_list, count_list)
        return histogram

    def encode(self, key: str, step: int, time: float) -> MediaRecord:
        from .encode import histogram_data, histogram_from_counts

        if self._counts is not None:
            data = histogram_from_counts(*self._counts)
        else:
            data = histogram_data(self._values.array(), self.bins, self.range)
        return self._record(key, step, time, data)

    def __repr__(self) -> str:
        return f"Histogram(bins={self.bins}, range={self.range!r})"


class Text(_Media):
    """A piece of text (notes, generated samples, a prompt and its answer).

    Example::

        run.log({"samples/generated": rp.Text(tokenizer.decode(ids))}, step=step)
    """

    kind = "text"

    def __init__(self, text: str, caption: str | None = None) -> None:
        if not isinstance(text, str):
            raise InvalidArgumentError("text", f"must be a string, got {type(text).__qualname__}")
        self.caption = self._check_caption(caption)
        self.text = text

    def encode(self, key: str, step: int, time: float) -> MediaRecord:
        return self._record(key, step, time, {"text": self.text})

    def __repr__(self) -> str:
        preview = self.text if len(self.text) <= 40 else self.text[:37] + "..."
        return f"Text({preview!r})"


class Table(_Media):
    """Rows and named columns: predictions next to labels, a confusion matrix, per-class scores.

    ``rows`` is a list of rows (lists or tuples) with ``columns`` naming them, a list of
    dicts (the keys become columns), a dict of columns (name -> list of values) or a
    pandas DataFrame. Cells may be str, int, float, bool or None; numpy and 0-d tensor
    values become numbers, anything else its ``str()``.

    Example::

        rp.Table([[0, 0.98], [1, 0.95]], columns=["class", "accuracy"])
    """

    kind = "table"

    def __init__(self, rows: Any, columns: Sequence[str] | None = None, caption: str | None = None) -> None:
        self.caption = self._check_caption(caption)
        self.columns, self.rows = _table_rows(rows, columns)

    def encode(self, key: str, step: int, time: float) -> MediaRecord:
        from .encode import table_cell

        rows = [[table_cell(cell) for cell in row] for row in self.rows]
        return self._record(key, step, time, {"columns": list(self.columns), "rows": rows})

    def __repr__(self) -> str:
        return f"Table({len(self.rows)} rows x {len(self.columns)} columns)"


def _table_rows(rows: Any, columns: Sequence[str] | None) -> tuple[list[str], list[list[Any]]]:
    if hasattr(rows, "columns") and hasattr(rows, "itertuples"):  # a pandas DataFrame
        names = [str(c) for c in rows.columns] if columns is None else list(columns)
        table = [list(row) for row in rows.itertuples(index=False, name=None)]
    elif isinstance(rows, Mapping):
        names = [str(c) for c in rows]
        cells = [list(values) for values in rows.values()]
        lengths = {len(values) for values in cells}
        if len(lengths) > 1:
            raise InvalidArgumentError("rows", f"the columns have different lengths: {sorted(lengths)}")
        table = [list(row) for row in zip(*cells)]
        if columns is not None:
            raise InvalidArgumentError("columns", "a dict of columns names them already")
    elif isinstance(rows, (list, tuple)):
        if rows and all(isinstance(row, Mapping) for row in rows):
            names = [] if columns is None else list(columns)
            if columns is None:
                for row in rows:
                    names.extend(str(k) for k in row if str(k) not in names)
            table = [[row.get(name) for name in names] for row in rows]
        else:
            table = []
            for index, row in enumerate(rows):
                if isinstance(row, (str, bytes)) or not isinstance(row, Sequence):
                    raise InvalidArgumentError("rows", f"row {index} is a {type(row).__qualname__}, not a list or tuple")
                table.append(list(row))
            width = len(table[0]) if table else len(columns or ())
            names = [f"c{i}" for i in range(width)] if columns is None else list(columns)
    else:
        raise InvalidArgumentError(
            "rows", f"expected a list of rows, a list of dicts, a dict of columns or a DataFrame, not {type(rows).__qualname__}"
        )
    if not all(isinstance(name, str) for name in names):
        raise InvalidArgumentError("columns", "column names must be strings")
    if len(set(names)) != len(names):
        raise InvalidArgumentError("columns", f"column names must be unique: {names}")
    for index, row in enumerate(table):
        if len(row) != len(names):
            raise InvalidArgumentError("rows", f"row {index} has {len(row)} cells for {len(names)} columns")
    return names, table
