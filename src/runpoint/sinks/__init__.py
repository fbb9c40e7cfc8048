"""Sinks mirror a run to other tools while runpoint's own store stays the source of truth.

Choose them with ``rp.init(sinks=[...])``, the config's ``experiment.sinks`` or
``$RUNPOINT_SINKS`` (``tensorboard,mlflow,wandb``). Each runs isolated from training
(:mod:`runpoint.sinks._isolation`); ids and links of the external runs, and how
mirroring went, are saved in the run directory's ``external.json``.

Example::

    import runpoint as rp
    from runpoint.sinks import MLflowSink

    with rp.init(project="digits", sinks=["tensorboard", MLflowSink(tracking_uri="sqlite:///mlflow.db")]) as run:
        run.log({"train/loss": 0.5}, step=0)

Importing this package imports none of TensorBoard, MLflow or W&B; a sink imports its
package on its own thread when the run starts.
"""

from .base import Sink, SinkBatch, SinkOptions, SinkRun
from .hub import EXTERNAL_FILE, read_external
from .mlflow import MLflowSink
from .tensorboard import TensorBoardSink
from .wandb import WandbSink

__all__ = [
    "EXTERNAL_FILE",
    "MLflowSink",
    "Sink",
    "SinkBatch",
    "SinkOptions",
    "SinkRun",
    "TensorBoardSink",
    "WandbSink",
    "read_external",
]
