"""Where runs bound for a server are recorded first: one local root per server.

    ~/.local/share/runpoint/spool/<host>-<port>/     ($RUNPOINT_SPOOL overrides the parent)
        runpoint.db, <project>/<run id>/...          an ordinary root: every local command reads it
        remote.json                                  which server it feeds (no credentials)
        sync.db                                      what has been shipped (runpoint.sync.state)

Example::

    root = spool_root("https://runs.example.com")   # .../spool/runs.example.com-443
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from .._util.uri import without_credentials
from ..errors import InvalidArgumentError, RunpointError

SPOOL_ENV = "RUNPOINT_SPOOL"
REMOTE_FILE = "remote.json"


def is_server_url(root: object) -> bool:
    """True for ``http://`` and ``https://`` roots: a team server."""
    return isinstance(root, str) and root.lower().startswith(("http://", "https://"))


def server_base(url: str) -> str:
    """The server's base URL without credentials, query or trailing slash."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidArgumentError("root", f"{without_credentials(url)} is not an http(s):// server URL")
    if parts.username or parts.password:
        raise InvalidArgumentError("root", "put the server's token in $RUNPOINT_TOKEN, not in the URL")
    return f"{parts.scheme.lower()}://{parts.netloc}{parts.path.rstrip('/')}"


def spool_root(url: str) -> Path:
    """The local root that records runs bound for the server at ``url``; created with its ``remote.json``."""
    base = server_base(url)
    parts = urlsplit(base)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", f"{parts.hostname}-{port}{parts.path}")
    parent = Path(os.environ.get(SPOOL_ENV) or Path.home() / ".local" / "share" / "runpoint" / "spool")
    root = parent.expanduser().absolute() / name
    marker = root / REMOTE_FILE
    try:
        root.mkdir(parents=True, exist_ok=True)
        if not marker.exists():
            marker.write_text(json.dumps({"server": base}) + "\n")
    except OSError as exc:
        raise RunpointError(f"cannot keep the spool of {base} at {root} ({exc.strerror or exc}): runs bound for a "
                            f"server are recorded there first; set ${SPOOL_ENV} to a writable directory") from exc
    return root


def server_of(root: Path) -> str | None:
    """The server a spool root feeds, or None for a root that is not a spool."""
    try:
        return str(json.loads((root / REMOTE_FILE).read_text())["server"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
