"""Whether lower or higher is better for a metric, judged by its name.

One judgement for every layer: the read side's analysis (:mod:`runpoint.query.analysis`)
and the alert detectors on the run's writer thread (:mod:`runpoint.alerts`).

Example::

    >>> infer_mode("val/loss"), infer_mode("val/acc"), infer_mode("lr")
    ('min', 'max', None)
"""

from __future__ import annotations

import re
from typing import Literal

Mode = Literal["min", "max"]

_LOWER_IS_BETTER = re.compile(r"(loss|error|err|mse|mae|rmse|perplexity|ppl|wer|cer|nll|distance)", re.I)
_HIGHER_IS_BETTER = re.compile(
    r"(acc|accuracy|f1|auc|auroc|precision|recall|iou|map|bleu|rouge|score|r2|top\d)", re.I
)
_DIAGNOSTIC_PREFIXES = ("watch/", "system/", "perf/")


def infer_mode(key: str) -> Mode | None:
    """``"min"`` (lower is better), ``"max"``, or None when the name does not say."""
    if key.startswith(_DIAGNOSTIC_PREFIXES) or key == "epoch":
        return None
    name = key.rsplit("/", 1)[-1]
    if _LOWER_IS_BETTER.search(name):
        return "min"
    if _HIGHER_IS_BETTER.search(name):
        return "max"
    return None
