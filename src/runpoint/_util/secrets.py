"""Masking secrets in configs before they are written, logged or sent anywhere.

A value is secret when its key looks like one (token, password, secret, api_key and
their spellings) or when it is a pydantic ``SecretStr``/``SecretBytes``. The object the
user loaded keeps the real value; only the copies runpoint writes are masked.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "********"

# A key names a secret when one of its words is one of these, or two neighbouring words are
# one of the pairs: ``hf_token``, ``clientSecret``, ``x-api-key``, ``aws_secret_access_key``;
# not ``tokenizer``, ``max_tokens`` or ``passes``.
_SECRET_WORDS = {"token", "password", "passwd", "passphrase", "secret", "secrets", "credential", "credentials", "apikey"}
# A webhook's URL is its own secret (Slack's carry the token in the path): ``webhooks``,
# ``slack_webhook``; not ``webhook_timeout_s``. Under such a key only URLs are masked.
_URL_WORDS = {"webhook", "webhooks"}
_SECRET_PAIRS = {("api", "key"), ("access", "key"), ("private", "key")}
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def is_secret_key(key: str) -> bool:
    """True when ``key`` (one segment or a dotted path) names a secret.

    >>> [is_secret_key(k) for k in ("training.hf_token", "apiKey", "model.tokenizer", "max_tokens")]
    [True, True, False, False]
    """
    words = _words(key)
    return any(word in _SECRET_WORDS for word in words) or any(pair in _SECRET_PAIRS for pair in zip(words, words[1:]))


def _words(key: str) -> list[str]:
    return [word.lower() for word in _WORD.findall(key.rsplit(".", 1)[-1].rsplit("/", 1)[-1])]


def _holds_urls(key: str) -> bool:
    words = _words(key)
    return bool(words) and words[-1] in _URL_WORDS


def _is_secret_value(value: Any) -> bool:
    return type(value).__name__ in {"SecretStr", "SecretBytes"} and type(value).__module__.startswith("pydantic")


def mask_secrets(value: Any, key: str = "") -> Any:
    """A copy of a plain config tree with every secret value replaced by :data:`MASK`.

    Example::

        >>> mask_secrets({"db": {"password": "hunter2", "host": "x"}})
        {'db': {'password': '********', 'host': 'x'}}
    """
    if _is_secret_value(value):
        return MASK
    if key and is_secret_key(key):
        return _mask_all(value)
    if key and _holds_urls(key):
        return _mask_urls(value)
    if isinstance(value, dict):
        return {k: mask_secrets(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(item, key) for item in value]
    return value


def _mask_urls(value: Any) -> Any:
    """Webhooks: a URL string masked, and the ``url`` of each entry; the rest (format, level) kept."""
    if isinstance(value, str):
        return MASK
    if isinstance(value, dict):
        return {k: (MASK if str(k).lower() == "url" and v is not None else mask_secrets(v, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_urls(item) for item in value]
    return value


def _mask_all(value: Any) -> Any:
    """Every leaf masked: everything under a secret key (``credentials: {aws: ...}``) is secret."""
    if isinstance(value, dict):
        return {k: _mask_all(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_all(item) for item in value]
    return None if value is None else MASK


def mask_argv(argv: list[str]) -> list[str]:
    """A command line with the values of secret-looking arguments masked.

    ``deployment.api_key=sk-1``, ``--api-key=sk-1`` and ``--api-key sk-1`` all lose their value.

    Example::

        >>> mask_argv(["train.py", "--hf-token", "hf_x", "db.password=pw", "lr=1"])
        ['train.py', '--hf-token', '********', 'db.password=********', 'lr=1']
    """
    masked: list[str] = []
    hide_next = False
    for token in argv:
        if hide_next and not token.startswith("-"):
            masked.append(MASK)
            hide_next = False
            continue
        hide_next = False
        key, sep, _ = token.lstrip("-").partition("=")
        if sep and key and is_secret_key(key):
            masked.append(f"{token[: len(token) - len(token.lstrip('-'))]}{key}={MASK}")
        else:
            masked.append(token)
            hide_next = token.startswith("-") and not sep and is_secret_key(key)
    return masked
