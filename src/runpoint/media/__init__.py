"""Media to log beside scalars: :class:`Image`, :class:`Histogram`, :class:`Text`, :class:`Table`.

Example::

    run.log({"val/samples": rp.Image(images[:16]), "weights/fc1": rp.Histogram(w)}, step=step)
"""

from .types import Histogram, Image, Table, Text, media_path

__all__ = ["Histogram", "Image", "Table", "Text", "media_path"]
