"""Foundations every runpoint package may use: files, ids, JSON, YAML, URIs, git, lazy imports.

Nothing here imports another runpoint package except :mod:`runpoint.errors`; nothing here
is public API.
"""
