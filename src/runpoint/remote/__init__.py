"""Clients of a team server (``runpoint server``): its store API and its files API."""

from .files import RemoteFileError, RemoteFiles

__all__ = ["RemoteFileError", "RemoteFiles"]
