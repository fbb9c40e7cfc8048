"""API tokens of the team server: ``rp_<id>_<secret>``, made here, stored only as a hash.

The id (12 hex digits) is public: it names the token in listings, the audit log and
``runpoint server token revoke``. The secret is 43 characters of ``[0-9A-Za-z]`` (256 random
bits; no ``-`` or ``_``, so a double click selects the whole token).

Why SHA-256 and not bcrypt/argon2: a slow hash protects *guessable* secrets (passwords)
from a stolen table by making each guess expensive. A 256-bit random secret cannot be
guessed at any speed, so the slow hash would buy nothing and cost ~50-100 ms of CPU on
every cache miss of the server (GitHub and PyPI store their tokens the same way). The hash
covers the id too (``sha256(id ":" secret)``), so one token's hash never verifies another's
secret, and it is compared in constant time.

Example::

    token = new_token()            # Token(id='3f9a0c1b22de', secret='...')
    text = token.text              # 'rp_3f9a0c1b22de_...' shown to the user once
    parse_token(text).hash == token.hash
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass

PREFIX = "rp_"
_ALPHABET = string.ascii_letters + string.digits
_SECRET_LENGTH = 43  # 62 ** 43 > 2 ** 256
_FORMAT = re.compile(r"rp_([0-9a-f]{12})_([0-9A-Za-z]{%d})" % _SECRET_LENGTH)


@dataclass(frozen=True)
class Token:
    """A token's public id and its secret (the secret never leaves this process but once, to its user)."""

    id: str
    secret: str

    @property
    def text(self) -> str:
        """What the user sends: ``rp_<id>_<secret>``."""
        return f"{PREFIX}{self.id}_{self.secret}"

    @property
    def hash(self) -> str:
        """What the database keeps."""
        return token_hash(self.id, self.secret)

    def __repr__(self) -> str:  # never print the secret by accident
        return f"Token(id={self.id!r}, secret='***')"


def token_hash(token_id: str, secret: str) -> str:
    """The stored form of a token: hex SHA-256 of ``<id>:<secret>``."""
    return hashlib.sha256(f"{token_id}:{secret}".encode()).hexdigest()


def new_token() -> Token:
    """A fresh random token."""
    return Token(secrets.token_hex(6), "".join(secrets.choice(_ALPHABET) for _ in range(_SECRET_LENGTH)))


def parse_token(text: str) -> Token | None:
    """The token ``text`` spells, or None when it is not of the form ``rp_<id>_<secret>``."""
    match = _FORMAT.fullmatch(text.strip())
    return Token(match.group(1), match.group(2)) if match else None


def hash_matches(stored: str, token: Token) -> bool:
    """Whether ``token`` is the one whose hash is ``stored`` (constant time)."""
    return hmac.compare_digest(stored.encode(), token.hash.encode())
