"""The writer-thread half of media: PNG encoding, histogram bins, table cells.

Nothing here runs on the training loop's thread; :mod:`runpoint.media` copies the data
there and calls these from ``encode``. numpy and Pillow are imported here, lazily.
"""

from __future__ import annotations

import io
import math
from typing import Any

GRID_PADDING = 2


def _to_uint8(array: Any) -> Any:
    import numpy as np

    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.dtype.kind == "f":
        scaled = np.nan_to_num(array.astype(np.float64), nan=0.0, posinf=1.0, neginf=0.0)
        return np.rint(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.clip(array, 0, 255).astype(np.uint8)


def _grid(images: Any) -> Any:
    """``(N, H, W, C)`` laid out as a near-square grid with a thin black border between tiles."""
    import numpy as np

    count, height, width, channels = images.shape
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    pad = GRID_PADDING
    canvas = np.zeros(
        (rows * height + (rows - 1) * pad, columns * width + (columns - 1) * pad, channels), dtype=np.uint8
    )
    for index in range(count):
        row, column = divmod(index, columns)
        top, left = row * (height + pad), column * (width + pad)
        canvas[top:top + height, left:left + width] = images[index]
    return canvas


def _as_hwc(array: Any, layout: str) -> Any:
    import numpy as np

    if layout == "HW":
        array = array[:, :, None]
    elif layout == "CHW":
        array = np.moveaxis(array, 0, -1)
    elif layout == "NCHW":
        array = _grid(np.moveaxis(_to_uint8(array), 1, -1))
    elif layout == "NHWC":
        array = _grid(_to_uint8(array))
    return _to_uint8(array)


def image_png(source: Any, layout: str) -> tuple[bytes, int, int, int]:
    """PNG bytes, width, height and channels of a PIL image or of an array read as ``layout``."""
    from PIL import Image

    if isinstance(source, Image.Image):
        image = source
        if image.mode not in ("L", "RGB", "RGBA"):
            keeps_alpha = "A" in image.mode or "transparency" in image.info
            image = image.convert("RGBA" if keeps_alpha else ("L" if image.mode in ("1", "I", "I;16", "F") else "RGB"))
    else:
        pixels = _as_hwc(source, layout)
        if pixels.shape[2] == 1:
            image = Image.fromarray(pixels[:, :, 0])
        else:
            image = Image.fromarray(pixels)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=4)
    return buffer.getvalue(), image.width, image.height, len(image.getbands())


def histogram_data(values: Any, bins: int, value_range: tuple[float, float] | None) -> dict[str, Any]:
    """Bins and moments of the finite values; NaN and infinities are counted apart.

    Float32 data stays float32 (moments accumulate in float64); the common case of
    all-finite values is detected from min and max, without a mask.
    """
    import numpy as np

    flat = np.asarray(values).ravel()
    if flat.dtype.kind != "f":
        flat = flat.astype(np.float64)
    nan = inf = 0
    low = high = None
    if flat.size:
        low, high = float(flat.min()), float(flat.max())  # NaN anywhere makes them NaN
        if not (math.isfinite(low) and math.isfinite(high)):
            finite_mask = np.isfinite(flat)
            nan = int(np.isnan(flat).sum())
            inf = int(flat.size - finite_mask.sum() - nan)
            flat = flat[finite_mask]
            low, high = (float(flat.min()), float(flat.max())) if flat.size else (None, None)
    if value_range is None:
        if low is None or high is None:
            value_range = (0.0, 1.0)
        elif low == high:
            value_range = (low - 0.5, high + 0.5)  # numpy's own choice for a constant array
        else:
            value_range = (low, high)
        ranged = False
    else:
        ranged = True
    counts, edges = np.histogram(flat, bins=bins, range=value_range)
    data: dict[str, Any] = {
        "edges": edges.tolist(),
        "counts": counts.tolist(),
        "count": int(flat.size + nan + inf),
        "nan": nan,
        "inf": inf,
        "min": low,
        "max": high,
        "mean": float(flat.mean(dtype=np.float64)) if flat.size else None,
        "std": float(flat.std(dtype=np.float64)) if flat.size else None,
    }
    if ranged:
        data["outside"] = int(flat.size - counts.sum())
    return data


def histogram_from_counts(edges: list[float], counts: list[int]) -> dict[str, Any]:
    return {
        "edges": list(edges), "counts": list(counts), "count": int(sum(counts)), "nan": 0, "inf": 0,
        "min": None, "max": None, "mean": None, "std": None,
    }


def table_cell(value: Any) -> Any:
    """A cell as JSON data: str, int, float, bool or None; numpy and 0-d tensors as numbers."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if callable(getattr(value, "item", None)) and getattr(value, "ndim", None) == 0:
        return table_cell(value.item())
    return str(value)
