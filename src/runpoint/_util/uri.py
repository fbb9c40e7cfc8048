"""URIs made safe to write down: no user, password or token in what runpoint stores or prints."""

from __future__ import annotations

_HIDDEN = "********"


def without_credentials(uri: str) -> str:
    """``uri`` without its userinfo, and with secret query values (``?password=...``) masked.

    Anything that is not a ``scheme://`` URI (a path, ``git@host:repo``) comes back as it is.

    Example::

        >>> without_credentials("postgresql://mlflow:hunter2@db:5432/mlflow")
        'postgresql://db:5432/mlflow'
        >>> without_credentials("https://token@github.com/org/repo.git")
        'https://github.com/org/repo.git'
        >>> without_credentials("postgresql://db/mlflow?user=u&password=hunter2")
        'postgresql://db/mlflow?user=u&password=********'
    """
    from urllib.parse import parse_qsl, urlencode, urlsplit

    scheme, sep, rest = uri.partition("://")
    if not sep or not scheme or "/" in scheme:
        return uri
    try:
        parts = urlsplit(uri)
    except ValueError:  # malformed (an unclosed IPv6 bracket): keep only the scheme
        return f"{scheme}://{_HIDDEN}"
    # rebuilt by hand: urlunsplit would turn sqlite:///x into sqlite:/x
    authority = parts.netloc.rpartition("@")[2]  # a password may hold an unescaped '@'
    tail = rest[len(parts.netloc):]
    if parts.query:
        from .secrets import is_secret_key

        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if any(is_secret_key(key) for key, _ in pairs):
            masked = [(key, _HIDDEN if is_secret_key(key) else value) for key, value in pairs]
            tail = tail.replace("?" + parts.query, "?" + urlencode(masked, safe="*"), 1)
    return f"{scheme}://{authority}{tail}"
