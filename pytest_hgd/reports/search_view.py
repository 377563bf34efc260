"""The candidate search as people read it: terminal lines, Markdown and an HTML section
with its curve, as pure renderers of the report's ``search`` object."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_hgd.core.text import printable
from pytest_hgd.reports.html_parts import _e, _rate, _table

Line = tuple[str, dict[str, bool]]
DIFF_LINES = 40  # of the best prompt's diff shown in the terminal and Markdown


def _count(side: Mapping[str, Any], split: str) -> str:
    counts = side[split]
    if not counts["total"]:
        return "—"
    return f"{counts['passed']}/{counts['total']} ({100 * counts['passed'] / counts['total']:.0f}%)"


def _locked(side: Mapping[str, Any]) -> str:
    """Locked pairs regressed: on the training files / on the held-out files."""
    return f"{side['locked_regressed']} / {side.get('holdout_locked_regressed', 0)}"


def _rows(search: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    return [
        (name, _count(search[name], "train"), _count(search[name], "holdout"),
         _locked(search[name]))
        for name in ("start", "best")
    ]  # fmt: skip


def verdict_text(search: Mapping[str, Any]) -> str:
    """One sentence: what the search found, and what the held-out files say of it."""
    start, best = search["start"], search["best"]
    if search.get("best_is_start"):
        return (
            f"kept the start prompt: none of {search['evaluated']} candidates met the "
            f"{search['policy']} policy and passed more training pairs"
        )
    text = (
        f"best passes {best['train']['passed']} training pairs against the start's "
        f"{start['train']['passed']}, regressing {best['locked_regressed']} locked"
    )
    held, held_start = best["holdout"], start["holdout"]
    if best["train"]["passed"] == start["train"]["passed"]:
        return text + "; it is shorter (a tie goes to the shorter prompt)"
    if not held["total"]:
        return text + "; no files held out, so nothing says whether it generalises"
    gain = held["passed"] - held_start["passed"]
    if gain > 0:
        text += f"; on the held-out files it passes {gain} more (it generalises)"
    elif gain == 0:
        text += "; on the held-out files it is no better (the gain may not generalise)"
    else:
        text += f"; on the held-out files it passes {-gain} fewer: the search overfit"
    lost = best.get("holdout_locked_regressed", 0)
    if lost:
        text += (
            f", and it regresses {lost} locked pair{'s' * (lost != 1)} there, which the search "
            "never saw: gating it will show them"
        )
    return text


def _diff_lines(search: Mapping[str, Any]) -> list[str]:
    diff = str((search.get("best_prompt") or {}).get("diff") or "").splitlines()
    if len(diff) > DIFF_LINES:
        diff = [*diff[:DIFF_LINES], f"... ({len(diff) - DIFF_LINES} more lines)"]
    return diff


def terminal_lines(report: Mapping[str, Any]) -> list[Line]:
    search = report.get("search")
    if not search:
        return []
    calls = f", {search['calls']} agent calls" if "calls" in search else ""
    lines: list[Line] = [
        (f"search ({search['policy']}): {search['evaluated']} candidates evaluated{calls}",
         {"bold": True}),
        (f"  {'':<6} {'train':<14} {'held-out':<14} locked regressed (train / held-out)", {}),
    ]  # fmt: skip
    for name, train, holdout, locked in _rows(search):
        lines.append((f"  {name:<6} {train:<14} {holdout:<14} {locked}", {}))
    lines.append((f"  {verdict_text(search)}", {}))
    for note in search.get("notes", []):
        lines.append((f"  note: {note}", {"yellow": True}))
    if not search.get("best_is_start"):
        where = search.get("best_path") or f"{search.get('out', '')}/best.txt"
        lines.append((f"  best prompt ({where}), against the start:", {}))
        for line in _diff_lines(search):
            header = line.startswith(("+++", "---"))
            colour = None if header else {"+": "green", "-": "red"}.get(line[:1])
            lines.append((f"    {printable(line)}", {colour: True} if colour else {}))
        if search.get("command"):
            lines.append((f"  gate it: {search['command']}", {"bold": True}))
    return lines


def markdown_lines(report: Mapping[str, Any], md: Any) -> list[str]:
    """``md`` escapes text for Markdown (``summary.markdown_text``)."""
    search = report.get("search")
    if not search:
        return []
    out = ["", f"### Candidate search ({md(search['policy'])})", ""]
    out += ["| prompt | train | held-out | locked regressed (train / held-out) |",
            "|---|---:|---:|---:|"]  # fmt: skip
    out += [f"| {name} | {train} | {holdout} | {locked} |" for name, train, holdout, locked
            in _rows(search)]  # fmt: skip
    out += ["", md(f"{search['evaluated']} candidates evaluated; {verdict_text(search)}.")]
    curve = search.get("curve") or []
    if len(curve) > 1:
        out += ["", "| after candidates | train | held-out |", "|---:|---:|---:|"]
        out += [f"| {p['evaluated']} | {_rate(p['train'])} | {_rate(p['holdout'])} |"
                for p in curve]  # fmt: skip
    diff = _diff_lines(search)
    if diff and not search.get("best_is_start"):
        longest = max((len(run) for line in diff for run in re.findall(r"`+", line)), default=0)
        fence = "`" * max(3, longest + 1)
        out += ["", f"{fence}diff", *(printable(line) for line in diff), fence]
        if search.get("command"):
            out += ["", f"Gate it: `{md(search['command'])}`"]
    return out


def _curve_svg(curve: Sequence[Mapping[str, Any]], evaluated: int) -> str:
    """Training and held-out pass rates of the best prompt over the candidates evaluated:
    the x axis runs to the last candidate, the best holding until the next is found."""
    width, height, left, top, bottom = 480, 160, 36, 10, 24
    plot_w, plot_h = width - left - 12, height - top - bottom
    last = max(1, evaluated, *(int(p["evaluated"]) for p in curve))
    out = [f'<svg id="search-curve" viewBox="0 0 {width} {height}" role="img" '
           'aria-label="search curve">']  # fmt: skip
    for tick in (0, 0.5, 1):
        y = top + (1 - tick) * plot_h
        out.append(f'<line x1="{left}" x2="{width - 12}" y1="{y:.1f}" y2="{y:.1f}" '
                   f'stroke="#eaeef2"/><text x="{left - 6}" y="{y + 4:.1f}" '
                   f'text-anchor="end">{tick:g}</text>')  # fmt: skip
    for key, colour in (("train", "#0969da"), ("holdout", "#bf8700")):
        points = [(left + plot_w * int(p["evaluated"]) / last, top + (1 - p[key]) * plot_h)
                  for p in curve if isinstance(p.get(key), int | float)]  # fmt: skip
        if points:
            steps = [points[0]]
            for x, y in points[1:]:  # a step line: the best holds until the next is found
                steps += [(x, steps[-1][1]), (x, y)]
            if steps[-1][0] < left + plot_w:
                steps.append((left + plot_w, steps[-1][1]))
            line = " ".join(f"{x:.1f},{y:.1f}" for x, y in steps)
            out.append(f'<polyline class="curve-{key}" points="{line}" fill="none" '
                       f'stroke="{colour}" stroke-width="2"/>')  # fmt: skip
    out.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle">'
               "candidates evaluated</text></svg>")  # fmt: skip
    return "".join(out)


def html_section(report: Mapping[str, Any]) -> str:
    search = report.get("search")
    if not search:
        return ""
    rows = (
        f"<tr><td>{name}</td><td class=num>{_e(train)}</td><td class=num>{_e(holdout)}</td>"
        f"<td class=num>{locked}</td></tr>"
        for name, train, holdout, locked in _rows(search)
    )
    head = ["prompt", "num:train", "num:held-out", "num:locked regressed (train / held-out)"]
    table = _table("id=search-table", head, rows)
    legend = ("<div class=legend><span style='color:#0969da'>— training pass rate</span> "
              "<span style='color:#bf8700'>— held-out pass rate</span></div>")  # fmt: skip
    diff = "\n".join(_diff_lines(search))
    return (
        f'<section id="search"><h2>Candidate search ({_e(search["policy"])})</h2>'
        f"<p>{_e(search['evaluated'])} candidates evaluated; {_e(verdict_text(search))}.</p>"
        f"{table}{_curve_svg(search.get('curve') or [], int(search['evaluated']))}{legend}"
        + (f"<pre>{_e(diff)}</pre>" if diff and not search.get("best_is_start") else "")
        + "</section>"
    )
