"""runpoint inside the trainers people already run; one module per framework.

- :mod:`runpoint.integrations.lightning`: ``RunpointLogger`` and ``RunpointCheckpoint``;
- :mod:`runpoint.integrations.hf`: ``RunpointCallback`` for transformers' ``Trainer``;
- :mod:`runpoint.integrations.accelerate`: ``RunpointTracker`` for ``Accelerator(log_with=...)``;
- :mod:`runpoint.integrations.optuna`: ``RunpointCallback``, each trial a run of the study's group.

Each module imports its framework when it is imported (never ``import runpoint``); a
missing framework raises :class:`~runpoint.errors.MissingDependencyError` naming the
extra to install.
"""

__all__: list[str] = []  # the public names live in the submodules above, each imported on its own
