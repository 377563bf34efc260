"""What ``--hgd-blame`` found, as the summaries show it: the hunks under each regressed
pair, and where a regressed rollout first parts from the baseline's (pure renderers)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

EXCERPT = 100
GROUP_SHOWN = 3  # a joint cause of more hunks is one line, its hunks' texts in the JSON


def blame_lines(pair: Mapping[str, Any]) -> list[str]:
    """Under a regressed pair: ``blame: hunk 7 "old" → "new"``, one line a hunk."""
    shown = _shown(pair.get("blame") or [])
    lines = [f"{'blame:' if n == 0 else '      '} {text}" for n, text in enumerate(shown)]
    note = pair.get("blame_note")
    if note:
        lines.append(f"blame: {note}")
    return lines


def divergence_lines(rollout: Mapping[str, Any]) -> list[str]:
    """Under a regressed rollout: the first turn whose reply differs from the baseline's."""
    diverged = rollout.get("diverged")
    if not diverged:
        return []
    return [
        f"first reply that differs from the baseline's rollout: turn {diverged['turn']}: "
        f"{_excerpt(diverged['baseline'])} → {_excerpt(diverged['candidate'])}"
    ]


def blame_markdown(report: Mapping[str, Any], md: Callable[[str], str]) -> list[str]:
    """The Markdown section: each blamed pair and the hunks it depends on (``md`` escapes)."""
    blamed = [p for p in report.get("pairs", []) if p.get("blame") or p.get("blame_note")]
    if not blamed:
        return []
    out = ["", "### Which hunk of the change broke which pair", ""]
    for pair in blamed:
        hunks = "; ".join(_shown(pair.get("blame") or []))
        note = pair.get("blame_note")
        text = "; ".join(part for part in (hunks, note) if part)
        out.append(f"- {md(pair['id'])}: {md(text)}")
    return out


def _excerpt(text: str | None) -> str:
    if text is None:
        return "(no reply)"
    words = " ".join(text.split())
    return repr(words if len(words) <= EXCERPT else words[: EXCERPT - 1] + "…")


def _hunk(entry: Mapping[str, Any]) -> str:
    """``hunk 7 "old" → "new"``, and for a joint cause ``(with hunks 1, 2)``."""
    others = entry.get("together_with") or []
    together = f" (together with hunk{'s' if len(others) > 1 else ''} " if others else ""
    if others:
        together += ", ".join(str(i) for i in others) + ")"
    return f"hunk {entry['hunk']} {entry['text']}{together}"


def _shown(entries: list[Mapping[str, Any]]) -> list[str]:
    """One text a hunk; a joint cause of more than ``GROUP_SHOWN`` hunks, one in all."""
    shown = []
    done: set[tuple[int, ...]] = set()
    for entry in entries:
        group = tuple(sorted([entry["hunk"], *(entry.get("together_with") or [])]))
        if len(group) <= GROUP_SHOWN:
            shown.append(_hunk(entry))
        elif group not in done:
            done.add(group)
            numbers = ", ".join(str(i) for i in group)
            shown.append(f"hunks {numbers}: only all of them reverted together")
    return shown
