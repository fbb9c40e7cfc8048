"""The runpoint dashboard: a FastAPI app (JSON API + static front end) over one root.

Start it with ``runpoint ui``; build it in Python with
:func:`runpoint.server.app.create_app`. Needs the ``ui`` extra (fastapi, uvicorn, numpy);
nothing here is imported by ``import runpoint``.
"""
