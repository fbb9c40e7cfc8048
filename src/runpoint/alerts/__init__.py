"""Live anomaly detection and alerts: detectors fed by a run's writer thread, rate limiting, webhooks.

Each detector is small and works on plain series (feed it steps and values, get
:class:`Finding` objects back): :class:`NonFiniteDetector`, :class:`SpikeDetector`,
:class:`DivergenceDetector`, :class:`PlateauDetector`, :class:`StallDetector`,
:class:`ThroughputDetector`. :class:`AlertMonitor` runs the ones a run's
``experiment.alerts`` enables (:class:`~runpoint.config.alerts.AlertsConfig`) on the writer
thread, and :class:`WebhookSender` delivers alerts on a thread of its own.

Example::

    from runpoint.alerts import SpikeDetector
    SpikeDetector(window=50).observe("loss", range(60), [1.0] * 59 + [40.0])
"""

from .findings import Finding, KeyMatcher
from .monitor import AlertMonitor
from .nonfinite import NonFiniteDetector
from .progress import StallDetector, ThroughputDetector
from .ratelimit import RateLimiter
from .spike import SpikeDetector
from .trend import DivergenceDetector, PlateauDetector
from .webhooks import Target, WebhookSender, mask_url

__all__ = [
    "AlertMonitor",
    "DivergenceDetector",
    "Finding",
    "KeyMatcher",
    "NonFiniteDetector",
    "PlateauDetector",
    "RateLimiter",
    "SpikeDetector",
    "StallDetector",
    "Target",
    "ThroughputDetector",
    "WebhookSender",
    "mask_url",
]
