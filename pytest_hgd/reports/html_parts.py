"""The HTML report's small pieces: escaping, numbers, rates, bands, times and tables."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from html import escape
from typing import Any

from pytest_hgd.core.text import printable


def _e(value: object) -> str:
    """HTML-escaped, and invisible or bidi characters shown as escapes (``\\u202e``)."""
    return escape(printable(str(value), keep="\n\t"), quote=True)


def _num(value: object, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "—"


def _rate(value: object) -> str:
    return f"{100 * value:.0f}%" if isinstance(value, int | float) else "—"


def _band(entry: Mapping[str, Any], key: str = "band") -> str:
    band = entry.get(key)
    return f" [{band[0]:.2f}, {band[1]:.2f}]" if band else ""


def _short_time(value: object) -> str:
    try:
        return datetime.fromisoformat(str(value)).strftime("%m-%d %H:%M")
    except ValueError:
        return str(value or "")[:16]


def _table(attrs: str, head: Iterable[str], rows: Iterable[str]) -> str:
    """A table; a header written ``num:label`` is right-aligned."""
    cells = "".join(
        f"<th class=num>{h[4:]}</th>" if h.startswith("num:") else f"<th>{h}</th>" for h in head
    )
    return f"<table {attrs}><thead><tr>{cells}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
