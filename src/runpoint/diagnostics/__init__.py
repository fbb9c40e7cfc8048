"""Training diagnostics on top of a run: gradient/weight watching, model summaries,
step timing and system metrics.

They see a run only through :class:`runpoint.handle.RunHandle`, never the concrete
``Run``, so they work unchanged over any store. Users reach them as ``run.watch``,
``run.log_model``, ``run.step_timer`` and ``rp.init(system_metrics=...)``.
"""
