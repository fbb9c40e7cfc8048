"""Bring runs from other trackers into a runpoint root, so a team can switch without losing its past.

One module per source, each with ``import_runs(location, *, root=None, project=None) ->
list[str]`` returning the ids of the runs it created (runs imported before are skipped):

- :mod:`runpoint.importers.tensorboard`: a logdir of event files;
- :mod:`runpoint.importers.mlflow`: a tracking URI (server, sqlite, ``mlruns`` directory).

The CLI runs them as ``runpoint import tensorboard LOGDIR`` and ``runpoint import mlflow URI``.
"""

__all__: list[str] = []  # the public names live in the submodules above, each imported on its own
