"""Checks for runpoint's own developers (``python -m runpoint._devtools.layers``); not API."""
