"""Reading one option: the command line first (relative to the invocation directory), then
the ini file (relative to the rootdir), parsed with an error that names it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")
N = TypeVar("N", int, float)


class Resolver:
    """Looks an option up on the command line first (relative to the invocation directory),
    then in the ini file (relative to the rootdir), and parses it with a clear error."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.cwd = config.invocation_params.dir
        self.rootdir = config.rootpath

    def raw(self, flag: str, ini: str) -> tuple[str | None, Path, str]:
        value = self.config.getoption(flag.lstrip("-").replace("-", "_")) if flag else None
        if value is not None:
            return str(value), self.cwd, flag
        if ini:
            ini_value = self.config.getini(ini)
            if ini_value not in (None, "", []):  # unset: None, or [] on pytest 7
                return str(ini_value), self.rootdir, f"ini {ini}"
        return None, self.rootdir, flag or f"ini {ini}"

    def parsed(
        self, flag: str, ini: str, parse: Callable[[str], T], default: T, accepted: str
    ) -> T:
        value, _, name = self.raw(flag, ini)
        if value is None:
            return default
        try:
            return parse(value)
        except ValueError:
            raise pytest.UsageError(f"{name}={value!r}: expected {accepted}") from None

    def path(self, flag: str, ini: str, default: str | None) -> Path | None:
        value, base, _ = self.raw(flag, ini)
        if value is None:
            if default is None:
                return None
            value, base = default, self.rootdir
        return (base / value).resolve()


def within(kind: Callable[[str], N], accepts: Callable[[N], bool]) -> Callable[[str], N]:
    """A parser of ``kind`` that refuses (ValueError) what ``accepts`` rejects."""

    def parse(text: str) -> N:
        value = kind(text)
        if not accepts(value):
            raise ValueError(text)
        return value

    return parse


fraction = within(float, lambda v: 0 < v < 1)
samples_count = within(int, lambda v: 1 <= v <= 1000)


def samples_or_auto(text: str) -> int | None:
    """A number of samples, or None for ``auto``."""
    return None if text.strip().lower() == "auto" else samples_count(text)


unit = within(float, lambda v: 0 <= v <= 1)
non_negative = within(int, lambda v: v >= 0)
positive_int = within(int, lambda v: v > 0)
positive_float = within(float, lambda v: v > 0)
