"""Secrets masked in what the gate writes and prints, never in what it checks (no pytest).

Checks see the agent's reply exactly as returned. Only output is scrubbed: the payloads
that become the JSON, Markdown and HTML reports and the terminal summary, and the failure
texts pytest prints and writes to JUnit XML. A reply that holds a secret is not cached.

What counts as a secret (each at least MIN_CHARS characters, else it is ordinary text):

- the API keys the HTTP agent and the judge read (``hgd_api_key_env``,
  ``hgd_judge_api_key_env``), whatever their variables' names;
- any environment variable whose name says it holds one (``KEY``, ``TOKEN``, ``SECRET``,
  ``PASSWORD``, ``CREDENTIAL``, ``AUTH``) and whose value looks like one (no whitespace,
  not only letters, at least LOOSE_MIN_CHARS characters);
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
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE", re.IGNORECASE)
SCHEMES = ("bearer ", "basic ", "token ")


class Redactor:
    """Masks every configured secret, and runs of its characters, in output texts."""

    def __init__(self, secrets: Iterable[str]) -> None:
        windows: set[str] = set()  # the shortest runs that are masked
        runs: set[str] = set()  # every run at least that long: a match is masked whole
        for secret in {s for s in secrets if len(s) >= MIN_CHARS}:
            size = max(MIN_CHARS, math.ceil(len(secret) / 4))
            windows.update(secret[i : i + size] for i in range(len(secret) - size + 1))
            runs.update(
                secret[i:j]
                for i in range(len(secret) - size + 1)
                for j in range(i + size, len(secret) + 1)
            )
        self.pattern = _alternatives(windows)  # finds: a quick test, most texts hold none
        self._runs = _alternatives(runs)  # masks: longest first, so a match is a whole run

    @property
    def active(self) -> bool:
        return self.pattern is not None

    def finds(self, text: str) -> bool:
        """Whether ``text`` holds a secret (or a piece of one)."""
        return self.pattern is not None and self.pattern.search(text) is not None

    def text(self, text: str) -> str:
        if self._runs is None or not self.finds(text):
            return text
        return self._runs.sub(MASK, text)

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


def _alternatives(texts: set[str]) -> re.Pattern[str] | None:
    """One pattern for any of ``texts``, longest first, whitespace allowed between chars."""
    ordered = sorted(texts, key=lambda t: (-len(t), t))
    parts = (r"\s*".join(map(re.escape, t)) for t in ordered)
    return re.compile("|".join(parts)) if ordered else None


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
