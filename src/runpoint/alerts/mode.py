"""Whether lower or higher is better for a metric, judged by its name.

The same judgement as :func:`runpoint.query.analysis.infer_mode` (that layer sits above the
run's writer, where detectors live, so it cannot be imported from here).
"""

from __future__ import annotations

import re
from typing import Literal

_LOWER_IS_BETTER = re.compile(r"(loss|error|err|mse|mae|rmse|perplexity|ppl|wer|cer|nll|distance)", re.I)
_HIGHER_IS_BETTER = re.compile(r"(acc|accuracy|f1|auc|auroc|precision|recall|iou|map|bleu|rouge|score|r2|top\d)", re.I)
_DIAGNOSTIC_PREFIXES = ("watch/", "system/", "perf/")

Mode = Literal["min", "max"]


def infer_mode(key: str) -> Mode | None:
    """``"min"``, ``"max"``, or None when the name does not say.

    >>> infer_mode("val/loss"), infer_mode("val/acc"), infer_mode("lr")
    ('min', 'max', None)
    """
    if key.startswith(_DIAGNOSTIC_PREFIXES) or key == "epoch":
        return None
    name = key.rsplit("/", 1)[-1]
    if _LOWER_IS_BETTER.search(name):
        return "min"
    if _HIGHER_IS_BETTER.search(name):
        return "max"
    return None


def mode_for(key: str, configured: str) -> Mode | None:
    """The configured mode, or the inferred one for ``"auto"``."""
    if configured == "min" or configured == "max":
        return configured  # type: ignore[return-value]
    return infer_mode(key)
