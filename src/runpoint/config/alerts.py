"""``experiment.alerts``: which anomaly detectors watch a run, their thresholds, and where alerts go.

Every detector is on by default with thresholds that stay quiet on an ordinary run; webhooks
are none until listed. ``rp.init(alerts=...)`` takes the same fields (a dict is merged over
the config's section, ``False`` turns alerts off).

Example (YAML)::

    experiment:
      alerts:
        spike: {z_threshold: 8}
        plateau: {enabled: false}
        webhooks:
          - {url: "${env:SLACK_WEBHOOK_URL}", format: slack}
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from ._section_types import SECTION, PositiveInt

Level = Literal["info", "warning", "error"]
KeyPatterns = list[Annotated[str, Field(min_length=1)]]
EVALUATION_KEYS = ["val*", "*/val*", "valid*", "*/valid*", "eval*", "*/eval*", "test*", "*/test*"]


class NonFiniteAlert(BaseModel):
    """NaN or infinity in a metric: one alert per key, again only after the key was finite once more."""

    model_config = SECTION

    enabled: bool = Field(default=True, description="Alert when a metric becomes NaN or infinite.")
    keys: KeyPatterns = Field(default_factory=lambda: ["*"], description="Metric keys watched (glob patterns).")
    level: Level = Field(default="error", description="Level of the alert.")


class SpikeAlert(BaseModel):
    """A point far above the moving window before it (z-score), e.g. a loss spike."""

    model_config = SECTION

    enabled: bool = Field(default=True, description="Alert when a watched metric spikes upwards.")
    keys: KeyPatterns = Field(default_factory=lambda: ["*loss*"], description="Metric keys watched (glob patterns).")
    window: int = Field(default=100, ge=5, le=100_000, description="Points in the moving window the z-score is taken over.")
    z_threshold: float = Field(default=6.0, gt=0, description="A point this many standard deviations above the window's mean is a spike.")
    min_points: int = Field(default=20, ge=2, description="Points the window must hold before a spike is judged.")
    level: Level = Field(default="warning", description="Level of the alert.")


class DivergenceAlert(BaseModel):
    """A metric getting worse at every evaluation, several evaluations in a row."""

    model_config = SECTION

    enabled: bool = Field(default=True, description="Alert when an evaluation metric keeps getting worse.")
    keys: KeyPatterns = Field(default_factory=lambda: list(EVALUATION_KEYS),
                              description="Metric keys watched (glob patterns); their direction comes from `mode`.")
    evaluations: int = Field(default=5, ge=2, description="Consecutive evaluations, each worse than the one before.")
    mode: Literal["auto", "min", "max"] = Field(
        default="auto", description="min: lower is better; max: higher is better; auto: judged from the key's name "
        "(loss, error... min; acc, f1, auc... max), keys it cannot judge are skipped.")
    level: Level = Field(default="warning", description="Level of the alert.")


class PlateauAlert(BaseModel):
    """No new best value of a metric for a number of steps."""

    model_config = SECTION

    enabled: bool = Field(default=True, description="Alert when a watched metric stops improving.")
    keys: KeyPatterns = Field(default_factory=lambda: list(EVALUATION_KEYS), description="Metric keys watched (glob patterns).")
    patience_steps: PositiveInt = Field(default=10_000, description="Steps without a new best value before the alert.")
    min_delta: float = Field(default=0.0, ge=0, description="How much better than the best (relative, 0.01 = 1%) counts as better.")
    mode: Literal["auto", "min", "max"] = Field(default="auto", description="As for divergence.")
    level: Level = Field(default="info", description="Level of the alert.")


class StallAlert(BaseModel):
    """The process lives but logs nothing (a hung data loader, a deadlock)."""

    model_config = SECTION

    enabled: bool = Field(default=True, description="Alert when the run logs nothing for a while.")
    after_s: float = Field(default=600.0, gt=0, description="Seconds without a logged metric (system metrics do not count).")
    level: Level = Field(default="warning", description="Level of the alert.")


class ThroughputAlert(BaseModel):
    """Steps per second falling below a fraction of their running median."""

    model_config = SECTION

    enabled: bool = Field(default=True, description="Alert when steps per second drop.")
    fraction: float = Field(default=0.3, gt=0, lt=1, description="Alert below this fraction of the running median.")
    window_s: float = Field(default=30.0, gt=0, description="Seconds per throughput sample.")
    history: int = Field(default=20, ge=3, description="Samples the running median is taken over.")
    min_samples: int = Field(default=5, ge=2, description="Samples needed before a drop is judged.")
    patience: PositiveInt = Field(default=3, description="Consecutive slow samples before the alert.")
    level: Level = Field(default="warning", description="Level of the alert.")


class WebhookTarget(BaseModel):
    """One webhook: a URL that receives each alert as a JSON POST. The URL is masked wherever runpoint writes it."""

    model_config = SECTION

    url: str = Field(pattern=r"^https?://", description="http(s) URL the alert is POSTed to; keep it secret (${env:...}).")
    format: Literal["json", "slack"] = Field(
        default="json", description="json: the alert's fields; slack: a Slack-compatible {text, blocks} message.")
    min_level: Level = Field(default="warning", description="Send only alerts of this level or above.")


class AlertsConfig(BaseModel):
    """Live anomaly detection on the run's writer thread, and where its alerts (and ``run.alert``'s) go."""

    model_config = SECTION

    enabled: bool = Field(default=True, description="Run the detectors below; run.alert works either way.")
    nonfinite: NonFiniteAlert = Field(default_factory=NonFiniteAlert, description=NonFiniteAlert.__doc__)
    spike: SpikeAlert = Field(default_factory=SpikeAlert, description=SpikeAlert.__doc__)
    divergence: DivergenceAlert = Field(default_factory=DivergenceAlert, description=DivergenceAlert.__doc__)
    plateau: PlateauAlert = Field(default_factory=PlateauAlert, description=PlateauAlert.__doc__)
    stall: StallAlert = Field(default_factory=StallAlert, description=StallAlert.__doc__)
    throughput: ThroughputAlert = Field(default_factory=ThroughputAlert, description=ThroughputAlert.__doc__)
    webhooks: list[WebhookTarget] = Field(default_factory=list, description="Where alerts are sent besides the run and stderr.")
    max_per_minute: PositiveInt = Field(
        default=10, description="At most this many alerts of one kind per minute; the rest become one 'k more suppressed' alert.")
    webhook_timeout_s: float = Field(default=5.0, gt=0, le=120, description="Seconds one webhook request may take.")
    webhook_retries: int = Field(default=3, ge=0, le=20, description="Retries of a failed webhook request, with backoff.")
    webhook_queue: PositiveInt = Field(default=100, description="Alerts waiting for webhooks at most; more are dropped.")
    close_wait_s: float = Field(default=5.0, ge=0, le=300, description="Seconds the run's end waits for pending webhooks.")
