"""Run ids and readable run names.

A run id is 12 characters of lowercase Crockford base32: 8 for the milliseconds since
2024-01-01 (enough until 2058) and 4 random ones. Ids of one root therefore sort by
creation time as plain strings, and two processes starting in the same millisecond
collide with a chance of one in a million (the store's primary key and the exclusive
creation of the run directory catch that case).
"""

from __future__ import annotations

import re
import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
_TIME_CHARS = 8
_RANDOM_CHARS = 4
RUN_ID_LENGTH = _TIME_CHARS + _RANDOM_CHARS

_ADJECTIVES = (
    "amber", "bold", "brisk", "calm", "clever", "crisp", "daring", "deft", "eager", "fair",
    "fleet", "gentle", "glad", "golden", "hardy", "keen", "kind", "lively", "lucid", "mellow",
    "merry", "nimble", "noble", "plucky", "proud", "quick", "quiet", "rapid", "ready", "sharp",
    "shy", "silent", "sleek", "smooth", "snug", "solid", "steady", "still", "sunny", "swift",
    "tidy", "vivid", "warm", "wise", "witty", "zesty",
)
_NOUNS = (
    "aurora", "badger", "beacon", "birch", "breeze", "brook", "canyon", "cedar", "comet", "coral",
    "delta", "dune", "ember", "falcon", "fern", "fjord", "glacier", "grove", "harbor", "heron",
    "island", "lagoon", "lark", "maple", "meadow", "mesa", "nebula", "oasis", "orbit", "otter",
    "pebble", "pine", "prairie", "quartz", "raven", "reef", "ridge", "river", "sparrow", "summit",
    "thicket", "tide", "tundra", "valley", "willow", "zephyr",
)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _encode(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, digit = divmod(number, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def new_run_id(now: float | None = None) -> str:
    """Return a fresh run id; ids made later sort after ids made earlier."""
    return run_id_for(time.time() if now is None else now, secrets.randbits(5 * _RANDOM_CHARS))


def run_id_for(created_at: float, tail: int) -> str:
    """The run id of a run created at ``created_at`` (epoch seconds) whose last 4 characters encode ``tail`` (20 bits)."""
    millis = min(max(int(created_at * 1000) - _EPOCH_MS, 0), 32**_TIME_CHARS - 1)
    return _encode(millis, _TIME_CHARS) + _encode(tail % 32**_RANDOM_CHARS, _RANDOM_CHARS)


def new_run_name(ordinal: int) -> str:
    """Return a readable name such as ``swift-heron-7``; ``ordinal`` keeps names distinct."""
    return f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{ordinal}"


def is_valid_identifier(text: str) -> bool:
    """True for names usable as a project or run id: letters, digits, ``. _ -``, at most 128."""
    return bool(_NAME_RE.match(text)) and text not in {".", ".."}


def job_run_id(job_id: str, project: str) -> str:
    """The run id every rank of torchrun job ``job_id`` derives alike: 12 characters of a hash of both.

    Unlike :func:`new_run_id`'s, these ids do not sort by creation time.
    """
    import hashlib

    digest = int.from_bytes(hashlib.sha256(f"{project}\0{job_id}".encode()).digest()[:8], "big")
    return _encode(digest, RUN_ID_LENGTH)
