"""Secrets masked in what the gate writes and prints, never in what it checks (no pytest).

Checks see the agent's reply exactly as returned. Only output is scrubbed: the payloads
that become the JSON, Markdown and HTML reports and the terminal summary, and the failure
texts pytest prints and writes to JUnit XML. A reply that holds a secret is not cached.

What counts as a secret (each at least MIN_CHARS characters, else it is ordinary text):

- the API keys the HTTP agent and the judge read (``hgd_api_key_env``,
  ``hgd_judge_api_key_env``), whatever their variables' names;
- any environment variable whose name says it holds one (``KEY``, ``TOKEN``, ``SECRET``,
  ``PASSW``, ``CREDENTIAL``, ``AUTH``, ``COOKIE``) and whose value looks like one (no
  whitespace, not only letters, not a path, at least LOOSE_MIN_CHARS characters);
- the values of HTTP headers whose names say so (``Authorization``, ``X-Api-Key``,
  ``Cookie``, ...), without a ``Bearer``/``Basic`` scheme word, and header values that
  look like a key as above. Other header values (``X-Team: sales rep``) are not secrets.

A secret echoed whole, with whitespace inside, or in pieces is masked: every run of at
least ``max(MIN_CHARS, ⌈n/4⌉)`` consecutive characters of an n-character secret, with any
whitespace between them, becomes ``***``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
MIN_CHARS = 8
LOOSE_MIN_CHARS = 12
WINDOW = 16  # the longest piece of a secret the search pattern spells out
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE", re.IGNORECASE)
SCHEMES = ("bearer ", "basic ", "token ")


class Redactor:
    """Masks every configured secret, and runs of its characters, in output texts.

    Found by a few windows of each secret (at most WINDOW characters, spaced so that every
    run of the masked length holds one), then grown along the secret both ways: linear in
    the secrets' length, so a 2,000-character token in the environment costs no more than
    a short key."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # window text -> where it sits: (secret, offset)
        self._where: dict[str, list[tuple[str, int]]] = {}
        for secret in {s for s in secrets if len(s) >= MIN_CHARS}:
            run = max(MIN_CHARS, math.ceil(len(secret) / 4))  # the shortest run masked
            size = min(run, WINDOW)
            step = run - size + 1  # any `run` characters in a row hold a window start
            for offset in range(0, len(secret) - size + 1, step):
                window = secret[offset : offset + size]
                self._where.setdefault(window, []).append((secret, offset))
        ordered = sorted(self._where, key=lambda t: (-len(t), t))
        parts = (r"\s*".join(map(re.escape, t)) for t in ordered)
        self.pattern = re.compile("|".join(parts)) if ordered else None

    @property
    def active(self) -> bool:
        return self.pattern is not None

    def finds(self, text: str) -> bool:
        """Whether ``text`` holds a secret (or a piece of one)."""
        return self.pattern is not None and self.pattern.search(text) is not None

    def text(self, text: str) -> str:
        if self.pattern is None or not self.finds(text):
            return text
        out, done, position = [], 0, 0
        while (match := self.pattern.search(text, position)) is not None:
            start, end = self._grow(text, match)
            out += [text[done:start], MASK]
            done = position = end
        return "".join(out) + text[done:]

    def _grow(self, text: str, match: re.Match[str]) -> tuple[int, int]:
        """The whole run of secret characters (whitespace between them allowed) around a
        window found in ``text``: its start and end there."""
        window = "".join(match.group().split())
        start, end = match.start(), match.end()
        for secret, offset in self._where[window]:
            i, j = match.end(), offset + len(window)  # forwards
            while j < len(secret):
                k = i
                while k < len(text) and text[k].isspace():
                    k += 1
                if k < len(text) and text[k] == secret[j]:
                    i, j = k + 1, j + 1
                else:
                    break
            i2, j2 = match.start(), offset - 1  # backwards
            while j2 >= 0:
                k = i2 - 1
                while k >= 0 and text[k].isspace():
                    k -= 1
                if k >= 0 and text[k] == secret[j2]:
                    i2, j2 = k, j2 - 1
                else:
                    break
            start, end = min(start, i2), max(end, i)
        return start, end

    def value(self, value: Any) -> Any:
        """A JSON-able value with every string in it masked."""
        if self.pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: self.value(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(item) for item in value]
        return value


def secrets_from(
    environ: Mapping[str, str],
    key_envs: Iterable[str | None],
    headers: Iterable[tuple[str, str]],
) -> list[str]:
    """The secrets of this run (see the module's docstring for the rule)."""
    found = [environ.get(name) or "" for name in key_envs if name]
    for name, value in environ.items():
        if SECRET_NAME.search(name) and _looks_secret(value):
            found.append(value)
    for name, value in headers:
        value = value.strip()
        if value.lower().startswith(SCHEMES):
            value = value.split(None, 1)[1] if len(value.split(None, 1)) > 1 else ""
        if SECRET_NAME.search(name) or _looks_secret(value):
            found.append(value)
    return [s for s in found if len(s) >= MIN_CHARS]


def _looks_secret(value: str) -> bool:
    """A key's shape: long, one word, not only letters, not a path."""
    return (
        len(value) >= LOOSE_MIN_CHARS
        and not any(c.isspace() for c in value)
        and not value.isalpha()
        and not value.startswith(("/", "."))
    )


def redactor_for(key_envs: Iterable[str | None], headers: Iterable[tuple[str, str]]) -> Redactor:
    return Redactor(secrets_from(os.environ, key_envs, headers))
