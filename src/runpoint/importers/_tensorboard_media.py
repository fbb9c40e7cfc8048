"""TensorBoard images, histograms and texts as runpoint media records.

- Images: PNGs are kept byte for byte; JPEG and GIF are converted to PNG with Pillow (the
  ``media`` extra), or skipped and counted when it is missing.
- Histograms: TensorBoard keeps bucket upper limits and counts (often only the non-empty
  buckets, the outer limits at ±DBL_MAX); the edges become ``[min, limit_1, ...]`` with
  the outer ones clipped to the observed min and max, and mean and std come from the
  stored sum and sum of squares.
- Texts: the text plugin's string tensors.
"""

from __future__ import annotations

import io
import math
import struct
from typing import Any

from ..media.types import media_path
from ..store.base import MediaRecord

_PNG = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}  # IHDR colour type -> channels


def read_media(accumulator: Any, tags: dict[str, Any]) -> tuple[list[MediaRecord], dict[str, int]]:
    """Every image, histogram and text of a run; and how many values could not be read, by kind."""
    records: list[MediaRecord] = []
    skipped: dict[str, int] = {}
    for tag in tags.get("images", []):
        for event in accumulator.Images(tag):
            record = _image(tag, event)
            if record is None:
                skipped["images"] = skipped.get("images", 0) + 1
            else:
                records.append(record)
    for tag in tags.get("histograms", []):
        records += [_histogram(tag, event) for event in accumulator.Histograms(tag)]
    for tag in tags.get("tensors", []):
        if accumulator.SummaryMetadata(tag).plugin_data.plugin_name == "text":
            for event in accumulator.Tensors(tag):
                texts = [value.decode("utf-8", "replace") for value in event.tensor_proto.string_val]
                records.append(MediaRecord(key=tag, step=event.step, kind="text", time=event.wall_time,
                                           data={"text": "\n".join(texts)}))
    if tags.get("audio"):
        skipped["audio"] = sum(len(accumulator.Audio(tag)) for tag in tags["audio"])
    return records, skipped


def _image(tag: str, event: Any) -> MediaRecord | None:
    data = bytes(event.encoded_image_string)
    if data.startswith(_PNG) and len(data) > 26:
        width, height = struct.unpack(">II", data[16:24])
        channels = _PNG_CHANNELS.get(data[25], 3)
    else:
        try:
            from PIL import Image
        except ImportError:
            return None
        try:
            with Image.open(io.BytesIO(data)) as opened:
                converted = opened.convert("RGBA" if "A" in opened.getbands() else "RGB")
            buffer = io.BytesIO()
            converted.save(buffer, format="PNG")
        except OSError:
            return None
        data, (width, height), channels = buffer.getvalue(), converted.size, len(converted.getbands())
    return MediaRecord(
        key=tag, step=event.step, kind="image", time=event.wall_time,
        data={"width": width, "height": height, "channels": channels, "format": "png"},
        path=media_path(tag, event.step, ".png"), file=data,
    )


def _histogram(tag: str, event: Any) -> MediaRecord:
    value = event.histogram_value
    limits, counts = list(value.bucket_limit), [int(round(c)) for c in value.bucket]
    low, high = float(value.min), float(value.max)
    edges = [low] + [min(max(limit, low), high) for limit in limits]
    for index in range(1, len(edges)):  # clipping may make neighbours equal; keep them ordered
        edges[index] = max(edges[index], edges[index - 1])
    number = float(value.num)
    mean = value.sum / number if number else None
    variance = value.sum_squares / number - mean * mean if mean is not None else None
    data = {
        "edges": edges, "counts": counts, "count": int(number), "nan": 0, "inf": 0,
        "min": low if number else None, "max": high if number else None, "mean": mean,
        "std": math.sqrt(max(variance, 0.0)) if variance is not None else None,
    }
    return MediaRecord(key=tag, step=event.step, kind="histogram", time=event.wall_time, data=data)
