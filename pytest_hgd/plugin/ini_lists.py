"""The ini keys that hold one entry a line: ``hgd_headers`` and ``hgd_prices``."""

from __future__ import annotations

import math
from collections.abc import Iterable

import pytest


def parse_headers(lines: str | Iterable[str]) -> tuple[tuple[str, str], ...]:
    """Parse `Name: value` lines (blank lines skipped); raise ValueError on a bad line."""
    if isinstance(lines, str):
        lines = lines.splitlines()
    parsed = []
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        name, sep, value = line.partition(":")
        name = name.strip()
        if not sep or not name or any(c.isspace() for c in name):
            raise ValueError(f"header line must look like 'Name: value', got {name or line!r}")
        parsed.append((name, value.strip()))
    return tuple(parsed)


def parse_prices(lines: Iterable[str]) -> dict[str, tuple[float, float]]:
    """``MODEL: INPUT OUTPUT`` lines (prices per million tokens) into {model: (in, out)}."""
    prices = {}
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        model, sep, numbers = line.rpartition(":")
        try:
            tokens_in, tokens_out = (float(n) for n in numbers.split())
        except ValueError:
            tokens_in = tokens_out = -1.0
        finite = math.isfinite(tokens_in) and math.isfinite(tokens_out)
        if not sep or not model.strip() or not finite or min(tokens_in, tokens_out) < 0:
            raise pytest.UsageError(
                f"ini hgd_prices: {line!r}: expected 'MODEL: INPUT OUTPUT', two prices per "
                "million tokens >= 0 (e.g. 'gpt-4o-mini: 0.15 0.60')"
            )
        if model.strip() in prices:
            raise pytest.UsageError(f"ini hgd_prices: {model.strip()!r} is priced twice")
        prices[model.strip()] = (tokens_in, tokens_out)
    return prices


def headers_from_ini(lines: list[str]) -> tuple[tuple[str, str], ...]:
    try:
        return parse_headers(lines)
    except ValueError as exc:
        raise pytest.UsageError(f"ini hgd_headers: {exc}") from None
