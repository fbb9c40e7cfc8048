"""Redacting secrets from text before it is written: console output, ``rp.Text``, runpoint's own log.

Well-known secret formats are redacted by default (:data:`BUILTIN_PATTERNS`); emails and
patterns of your own are opt-in (``experiment.redact`` in the config, ``rp.init(redact=...)``).
A match becomes ``[REDACTED:<name>]``; where a pattern has a group named ``secret`` only
that group is replaced (``Authorization: Bearer [REDACTED:bearer-token]``).

Text with nothing that looks like a secret comes back identical, and cheaply: a built-in
pattern runs only on text holding one of its trigger strings (``AKIA``, ``sk-``, ``://``...),
found by substring search; your own patterns run on every text.

Example::

    redactor = Redactor.from_settings(patterns=[r"user-\\d{6}"], emails=True)
    redactor.redact("key AKIAABCDEFGHIJKLMNOP for bob@example.com")
    # 'key [REDACTED:aws-access-key] for [REDACTED:email]'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from ..errors import InvalidArgumentError

# name -> pattern; the names appear in the replacement
BUILTIN_PATTERNS: dict[str, str] = {
    "private-key": r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----",
    "aws-access-key": r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}\b",
    "aws-secret-key": r"(?i)aws_?secret_?(?:access_?)?key[\"']?\s*[:=]\s*[\"']?(?P<secret>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])",
    "openai-key": r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",
    "github-token": r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",
    "slack-token": r"\bxox[abprs]-[A-Za-z0-9-]{10,}",
    "google-api-key": r"\bAIza[0-9A-Za-z_-]{35}",
    "jwt": r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}",
    "runpoint-token": r"\brp_[0-9a-f]{12}_[0-9A-Za-z]{20,}",
    "bearer-token": r"(?i)\bbearer\s+(?P<secret>[A-Za-z0-9._~+/=-]{8,})",
    "url-token": r"(?i)[?&](?:access_token|token|api_key|apikey|auth|secret|password|sig)=(?P<secret>[^&\s#\"']+)",
    "url-password": r"(?i)\b[a-z][a-z0-9+.-]*://[^/\s:@]+:(?P<secret>[^/\s@]+)@",
}
EMAIL_PATTERN = r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"

# A pattern runs only on text that holds one of its trigger strings (a substring search is
# far cheaper than any regular expression); None: always. Lower-case triggers are looked for
# in the lower-cased text.
_TRIGGERS: dict[str, tuple[str, ...]] = {
    "private-key": ("PRIVATE KEY",),
    "aws-access-key": ("AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA"),
    "aws-secret-key": ("secret",),
    "openai-key": ("sk-",),
    "github-token": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    "slack-token": ("xox",),
    "google-api-key": ("AIza",),
    "jwt": ("eyJ",),
    "runpoint-token": ("rp_",),
    "bearer-token": ("bearer",),
    "url-token": ("token=", "api_key=", "apikey=", "auth=", "secret=", "password=", "sig="),
    "url-password": ("://",),
    "email": ("@",),
}
_CASELESS = {"aws-secret-key", "bearer-token", "url-token"}
BUILTIN_NAMES = tuple(BUILTIN_PATTERNS)


@dataclass(frozen=True)
class _Pattern:
    name: str
    regex: re.Pattern[str]
    triggers: tuple[str, ...] | None = None
    caseless: bool = False

    @classmethod
    def named(cls, name: str, regex: re.Pattern[str], known: bool) -> "_Pattern":
        """A built-in pattern (``known``) gets its triggers; a user's pattern runs on every text."""
        return cls(name, regex, _TRIGGERS.get(name) if known else None, name in _CASELESS)

    def applies(self, text: str, lowered: str) -> bool:
        if self.triggers is None:
            return True
        where = lowered if self.caseless else text
        return any(trigger in where for trigger in self.triggers)

    def sub(self, text: str) -> str:
        replacement = f"[REDACTED:{self.name}]"
        if "secret" not in self.regex.groupindex:
            return self.regex.sub(replacement, text)

        def keep_around(match: re.Match[str]) -> str:
            start, end = match.span("secret")
            whole = match.group(0)
            base = match.start()
            return whole[: start - base] + replacement + whole[end - base:]

        return self.regex.sub(keep_around, text)


def compile_pattern(name: str, pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled; ``InvalidArgumentError`` naming it when it is not a regular expression."""
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise InvalidArgumentError("redact", f"pattern {name!r} ({pattern!r}) is not a regular expression: {exc}") from None
    if regex.search(""):
        raise InvalidArgumentError("redact", f"pattern {name!r} ({pattern!r}) matches empty text")
    return regex


@dataclass(frozen=True)
class Redactor:
    """Replaces secrets in text; :meth:`redact` is the one call. ``Redactor()`` redacts nothing."""

    builtin: tuple[_Pattern, ...] = ()
    extra: tuple[_Pattern, ...] = field(default=())  # emails and user patterns

    @classmethod
    def from_settings(cls, *, builtin: bool = True, emails: bool = False,
                      patterns: Sequence[str | tuple[str, str]] | Mapping[str, str] = ()) -> "Redactor":
        """The redactor the config's ``experiment.redact`` (or ``rp.init(redact=...)``) describes.

        ``patterns``: regular expressions (replaced by ``[REDACTED:custom]``), ``(name, regex)``
        pairs or ``{name: regex}``.
        """
        chosen = tuple(_Pattern.named(name, re.compile(p), True) for name, p in BUILTIN_PATTERNS.items()) if builtin else ()
        extra = [_Pattern.named("email", re.compile(EMAIL_PATTERN), True)] if emails else []
        named = patterns.items() if isinstance(patterns, Mapping) else (
            ("custom", p) if isinstance(p, str) else p for p in patterns)
        extra += [_Pattern.named(name, compile_pattern(name, pattern), False) for name, pattern in named]
        return cls(chosen, tuple(extra))

    @property
    def active(self) -> bool:
        return bool(self.builtin or self.extra)

    @property
    def names(self) -> Iterable[str]:
        return [pattern.name for pattern in self.builtin + self.extra]

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced by ``[REDACTED:<name>]``."""
        lowered = text.lower() if self.builtin or self.extra else text
        for pattern in self.builtin + self.extra:
            if pattern.applies(text, lowered):
                text = pattern.sub(text)
        return text


_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY-----")
PEM_MAX_LINES = 400  # a private key block longer than this is not waited for (its lines are still dropped)


class LineRedactor:
    """Redacts finished console lines, keeping the state a multi-line private key block needs.

    The console hands over whole lines (a secret split across two ``write`` calls is
    joined first); a ``-----BEGIN ... PRIVATE KEY-----`` line starts a block whose lines are
    held back until its END line and then written as one ``[REDACTED:private-key]``.
    """

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self._in_key: int | None = None  # lines of the key block seen so far
        self._key_prefix = ""

    def lines(self, lines: list[str]) -> list[str]:
        """``lines`` (finished, each ending in a newline) redacted; fewer when a key block is held back."""
        joined = "".join(lines)
        if self._in_key is None and (not self.redactor.builtin or "PRIVATE KEY-----" not in joined):
            return [self.redactor.redact(joined)] if joined else []  # one pass over the whole flush
        out: list[str] = []
        for line in lines:
            if self._in_key is not None:
                self._in_key += 1
                end = _PEM_END.search(line)
                if end is None and self._in_key < PEM_MAX_LINES:
                    continue  # held back (dropped): a line of the key
                out.append(self._key_prefix + "[REDACTED:private-key]" + (line[end.end():] if end else "\n"))
                self._in_key = None
                continue
            begin = _PEM_BEGIN.search(line)
            if begin is not None and _PEM_END.search(line, begin.end()) is None:
                self._in_key, self._key_prefix = 0, self.redactor.redact(line[: begin.start()])
                continue
            out.append(self.redactor.redact(line))
        return out

    def close(self) -> list[str]:
        """What an unterminated key block leaves at the end: its marker (its lines are never written)."""
        if self._in_key is None:
            return []
        self._in_key = None
        return [self._key_prefix + "[REDACTED:private-key]\n"]
