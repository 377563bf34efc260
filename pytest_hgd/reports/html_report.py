"""The gate report as one self-contained HTML page (``--hgd-html``): nothing loads from outside."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_hgd.core.model import ALL_DELTAS as DELTAS
from pytest_hgd.core.model import DELTAS_BY_SEVERITY as SEVERITY
from pytest_hgd.reports import search_view
from pytest_hgd.reports.html_assets import SCRIPT, STYLE
from pytest_hgd.reports.html_parts import _band, _e, _num, _rate, _short_time, _table
from pytest_hgd.reports.summary import calls_lines, partial_text, pressure_components
from pytest_hgd.storage.cache import write_atomic


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# Only the page's own style and script apply; markup smuggled in by a reply could not run.
CSP = (
    f"default-src 'none'; style-src {_csp_hash(STYLE)}; script-src {_csp_hash(SCRIPT)}; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)


def _banner(report: Mapping[str, Any]) -> str:
    verdict = str(report.get("verdict", "fail"))
    meta: list[tuple[str, str]] = []
    prompts = report.get("prompts") or {}
    for role in ("candidate", "baseline"):
        prompt = prompts.get(role)
        sha = f" <span class=muted>sha256 {_e(prompt['sha256'][:12])}</span>" if prompt else ""
        meta.append(
            (role, _e(prompt["source"]) + sha if prompt else "<span class=muted>none</span>")
        )
    agent = report.get("agent") or {}
    if agent:
        name = agent.get("target") or agent.get("model") or agent.get("kind") or json.dumps(agent)
        meta.append(("agent", _e(name)))
    for line in calls_lines(report):  # agent calls (and a fixed-K run's), tokens and cost
        name, _, value = line.partition(": ")
        meta.append((_e(name), _e(value)))
    samples = report.get("samples") or {}
    if samples.get("max", 1) > 1:
        meta.append(
            ("samples", f"{samples['max']} per pair and prompt, alpha {samples['alpha']:g}")
        )
    rows = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in meta)
    reasons = report.get("verdict_reasons") or []
    why = f"<p id=reasons>{_e('; '.join(reasons))}</p>" if reasons else ""
    if report.get("partial"):
        why = f"<p id=partial>Partial run: {_e(partial_text(report))}. Not a gate verdict.</p>{why}"
    return (
        f'<section class="banner {_e(verdict)}" id="verdict"><h1>HGD gate: '
        f"<span>{_e(_headline(report))}</span></h1>{why}<dl class=meta>{rows}</dl></section>"
    )


def _headline(report: Mapping[str, Any]) -> str:
    verdict = str(report.get("verdict", "fail")).upper()
    return f"NO VERDICT (partial run; {verdict} so far)" if report.get("partial") else verdict


def _counts(report: Mapping[str, Any]) -> str:
    counts = report.get("counts") or {}
    cards = "".join(
        f'<button type=button class="count d-{d}" data-delta="{d}"'
        f"{'' if counts.get(d) else ' disabled'}><b>{counts.get(d, 0)}</b>{d}</button>"
        for d in DELTAS
    )
    suite = report.get("suite")
    sign = (
        f'<p id="suite">Suite sign test: {suite["improved"]} improved, {suite["worsened"]} '
        f"worsened, {suite['unchanged']} unchanged; p = {suite['p_value']:.3g} that the "
        "candidate is worse overall</p>"
        if suite
        else ""
    )
    cards = f"<div class=counts>{cards}</div>"
    return f'<section id="counts"><h2>Pairs per delta</h2>{cards}{sign}</section>'


def _components(pressure: Mapping[str, Any]) -> str:
    """One row per component the report carries: name, value with band, what it means."""
    rows = [
        f'<tr data-component="{name}"><th>{name}</th><td class=num>{_e(value)}</td>'
        f"<td>{_e(detail)}</td></tr>"
        for name, value, detail in pressure_components(pressure)
    ]
    return f"<table id=components><tbody>{''.join(rows)}</tbody></table>"


def _binding(pressure: Mapping[str, Any]) -> str:
    binding = pressure.get("binding") or []
    if not binding:
        return ""
    rows = (
        f"<tr><td class=pid>{_e(b['id'])}</td><td>{_e(b.get('kind') or '')}</td>"
        f"<td class=num>{b['blocked']}</td></tr>"
        for b in binding[:10]
    )
    more = f"<p class=muted>and {len(binding) - 10} more</p>" if len(binding) > 10 else ""
    return (
        "<h2>Binding constraints</h2><p class=muted>the pairs that blocked the most candidate "
        "runs: review them, retire stale ones</p>"
        + _table("id=binding", ["pair", "kind", "num:runs blocked"], rows)
        + more
    )


def _pressure(pressure: Mapping[str, Any]) -> str:
    head = (
        f'<div><span class=big id="pressure-value">{_num(pressure.get("value"))}</span> '
        f"<span class=muted>band{_band(pressure) or ' —'} · "
        f"{_e(pressure.get('estimator') or '')}</span></div><p class=muted>1 &minus; the estimated "
        "chance that a proposed prompt change passes the gate</p>"
    )
    reasons = pressure.get("warning_reasons") or ["pressure is high"] * bool(
        pressure.get("warning")
    )
    warn = "".join(f"<div class=warn>HGDPressureWarning: {_e(r)}</div>" for r in reasons)
    return (
        f'<section id="pressure"><h2>Constraint pressure</h2>{head}{warn}'
        f"{_components(pressure)}{_binding(pressure)}</section>"
    )


def _axis_top(value: float) -> int:
    """The smallest 4 * (1, 2 or 5 * 10^k) at or above ``value``: an axis of 4 round steps."""
    if value <= 4:
        return 4
    step = int(10 ** math.floor(math.log10(value / 4)))
    return 4 * next(m * step for m in (1, 2, 5, 10) if 4 * m * step >= value)


def _chart(trend: Sequence[Mapping[str, Any]]) -> str:
    """Pressure (line, left axis) and constraints (bars, right axis) over the ledger runs."""
    width, height, left, right, top, bottom = 640, 236, 40, 44, 12, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(trend)
    c_max = _axis_top(max((p.get("constraints") or 0 for p in trend), default=0))
    step = plot_w / n
    out = [f'<svg id="trend-chart" viewBox="0 0 {width} {height}" role="img" aria-label="trend">']
    for tick in (0, 0.25, 0.5, 0.75, 1):
        y = top + (1 - tick) * plot_h
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eaeef2"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:g}</text>'
            f'<text x="{width - right + 6}" y="{y + 4:.1f}">{c_max * tick:g}</text>'
        )
    bar_w, every, dot = min(26.0, 0.6 * step), math.ceil(n / 8), min(4.5, step / 3)
    xs = [left + (i + 0.5) * step for i in range(n)]
    ys = [top + (1 - float(p["pressure"])) * plot_h for p in trend]
    for i, (point, x) in enumerate(zip(trend, xs, strict=True)):
        constraints = point.get("constraints")
        if isinstance(constraints, int):
            bar_h = plot_h * constraints / c_max
            out.append(
                f'<rect class="constraints-bar" data-run="{i + 1}" '
                f'data-constraints="{constraints}" x="{x - bar_w / 2:.1f}" '
                f'y="{top + plot_h - bar_h:.1f}" width="{bar_w:.1f}" height="{bar_h:.1f}" '
                f'fill="#c8d9f0"><title>run {i + 1}: {constraints} constraints</title></rect>'
            )
        if i == n - 1 or (i % every == 0 and n - 1 - i >= every):  # labels never collide
            label = "this run" if i == n - 1 else f"#{i + 1}"
            out.append(
                f'<text x="{x:.1f}" y="{height - bottom + 16}" text-anchor="middle">{label}</text>'
                f'<text x="{x:.1f}" y="{height - bottom + 30}" text-anchor="middle">'
                f"{_e(_short_time(point.get('time')))}</text>"
            )
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
    out.append(f'<polyline points="{line}" fill="none" stroke="#0969da" stroke-width="2"/>')
    for i, point in enumerate(trend):
        verdict = str(point.get("verdict") or "")
        colour = {"pass": "#1a7f37", "fail": "#cf222e"}.get(verdict, "#6e7781")
        out.append(
            f'<circle class="pressure-point" data-run="{i + 1}" '
            f'data-pressure="{_e(point["pressure"])}" data-verdict="{_e(verdict)}" '
            f'cx="{xs[i]:.1f}" cy="{ys[i]:.1f}" r="{dot + 1.5 if i == n - 1 else dot:.1f}" '
            f'fill="{colour if point.get("candidate", True) else "#fff"}" stroke="{colour}" '
            f'stroke-width="2"><title>run {i + 1}: pressure {float(point["pressure"]):.2f}, '
            f"{_e(verdict or 'no verdict')}</title></circle>"
        )
    legend = (
        "<div class=legend><span><i class='sw l'></i>pressure (left axis)</span>"
        "<span><i class='sw p'></i>gate passed</span><span><i class='sw f'></i>gate failed</span>"
        "<span><i class='sw h'></i>no change (candidate = baseline)</span>"
        "<span><i class='sw c'></i>constraints (right axis)</span></div>"
    )
    return "".join(out) + "</svg>" + legend


def _trend(trend: Sequence[Mapping[str, Any]]) -> str:
    if not trend:
        return (
            '<section id="trend"><h2>Pressure over the ledger runs</h2>'
            "<p class=muted>No ledger runs recorded (the ledger is off).</p></section>"
        )
    rows = (
        f"<tr><td class=num>{i + 1}</td><td>{_e(p.get('time') or '')}</td>"
        f"<td class=num>{_num(p['pressure'], 3)}</td>"
        f"<td class=num>{_e(p.get('constraints', '—'))}</td>"
        f"<td>{_e(p.get('verdict') or '—')}</td>"
        f"<td class=num>{_e(_or_dash(p.get('calls')))}</td>"
        f"<td class=num>{_e(_or_dash(p.get('cost'), '.4g'))}</td></tr>"
        for i, p in enumerate(trend)
    )
    head = [
        "num:run",
        "time",
        "num:pressure",
        "num:constraints",
        "verdict",
        "num:calls",
        "num:cost",
    ]
    made = [p["calls"] for p in trend if isinstance(p.get("calls"), int)]
    costs = [p["cost"] for p in trend if isinstance(p.get("cost"), int | float)]
    spent = f"agent calls over these runs: {sum(made)} made" if made else ""
    spent += f"; cost {sum(costs):.4g}" if costs else ""
    return (
        f'<section id="trend"><h2>Pressure over the last {len(trend)} ledger runs</h2>'
        + (f"<p id=spent class=muted>{_e(spent)}</p>" if spent else "")
        + f"{_chart(trend)}<details><summary class=muted>data</summary>"
        f"{_table('id=trend-table', head, rows)}</details></section>"
    )


def _or_dash(value: object, spec: str = "") -> str:
    return "—" if value is None else format(value, spec)


def _rate_bars(baseline: object, candidate: object) -> str:
    bars = "".join(
        f'<rect x="0" y="{y}" width="{120 * value:.1f}" height="6" fill="{colour}"/>'
        for y, value, colour in ((2, baseline, "#8c959f"), (10, candidate, "#0969da"))
        if isinstance(value, int | float)
    )
    back = '<rect width="120" height="18" fill="#f6f8fa"/>'
    return f'<svg viewBox="0 0 120 18" width="120" height="18">{back}{bars}</svg>'


def _tags(tags: Mapping[str, Mapping[str, Any]]) -> str:
    if not tags:
        return ""
    rows = (
        f'<tr data-tag="{_e(tag)}"><td><span class=tag>{_e(tag)}</span></td>'
        f"<td class=num>{t['pairs']}</td><td class=num>{_rate(t['baseline_pass_rate'])}</td>"
        f"<td class=num>{_rate(t['candidate_pass_rate'])}</td>"
        f"<td>{_rate_bars(t['baseline_pass_rate'], t['candidate_pass_rate'])}</td></tr>"
        for tag, t in tags.items()
    )
    head = ["tag", "num:pairs", "num:baseline", "num:candidate", ""]
    return (
        f'<section id="tags"><h2>Pass rate per tag</h2>{_table("id=tag-table", head, rows)}'
        "<div class=legend><span><i class='sw b'></i>baseline</span>"
        "<span><i class='sw a'></i>candidate</span></div></section>"
    )


def _extras(report: Mapping[str, Any]) -> str:
    """The flaky pairs and the skipped pairs, each when present."""
    parts: list[str] = []
    flaky = report.get("flaky") or []
    if flaky:
        rows = (
            f"<tr><td class=pid>{_e(f['id'])}</td><td class=num>{f['passes']}/{f['runs']}</td></tr>"
            for f in flaky
        )
        parts.append(
            f"<h2>Flaky pairs ({len(flaky)})</h2><p class=muted>baseline pass rate strictly "
            "between 0 and 1</p>" + _table("id=flaky", ["pair", "num:baseline passes"], rows)
        )
    skipped = report.get("skipped") or []
    if skipped:
        rows = (
            f"<tr><td class=pid>{_e(s['id'])}</td><td><span class=badge>"
            f"{_e(str(s['status']).replace('_', ' '))}</span></td><td>{_e(s['reason'])}</td></tr>"
            for s in skipped
        )
        parts.append(
            f"<h2>Skipped pairs ({len(skipped)})</h2>"
            + _table("id=skipped", ["pair", "status", "reason"], rows)
        )
    return f'<section id="extras">{"".join(parts)}</section>' if parts else ""


def _result(result: Mapping[str, Any] | None, error: object, label: str) -> str:
    """One prompt's cell: pass count, the failed check highlighted, the reply as text."""
    body = f"<span class=muted>{label}</span>"
    status = "none"
    if result:
        passes, runs = int(result["passes"]), int(result["runs"])
        status = "pass" if runs and passes == runs else "fail" if passes == 0 else "mixed"
        interval = f" <span class=muted>{_band(result, 'interval')}</span>" if runs > 1 else ""
        body = f'<span class="badge b-{status}">{status}</span> {passes}/{runs}{interval}'
    if error:
        body += f"<div class=check><code>error</code> {_e(error)}</div>"
    if result and result.get("failed_check"):
        body += (
            f"<div class=check><code>{_e(result['failed_check'])}</code> "
            f"{_e(result.get('message') or '')}</div>"
        )
    if result and result.get("reply") is not None:
        body += f"<div class=reply>{_e(result['reply'])}</div>"
    failed = status in ("fail", "mixed") or bool(error)
    return f'<td class="{"failed" if failed else ""}">{body}</td>'


def _is_small(p_value: object) -> bool:
    """A p-value worth showing: one the sampled gate computed, below 1."""
    return isinstance(p_value, int | float) and p_value < 1


def _pair_row(pair: Mapping[str, Any]) -> str:
    file, _, name = str(pair["id"]).rpartition("::")
    tags = [str(t) for t in pair.get("tags") or []]
    chips = "".join(f"<span class=tag>{_e(t)}</span>" for t in tags)
    delta, kind = str(pair["delta"]), str(pair["kind"])
    p_value = pair.get("p_value")
    p_text = f"<div class=muted>p = {p_value:.3g}</div>" if _is_small(p_value) else ""
    return (
        f'<tr data-delta="{_e(delta)}" data-kind="{_e(kind)}" data-tags="{_e(json.dumps(tags))}">'
        f"<td><div class=pid>{_e(name or file)}</div><div class=file>{_e(file)}</div>{chips}</td>"
        f'<td>{_e(kind)}</td><td><span class="badge b-{_e(delta)}">{_e(delta)}</span>{p_text}</td>'
        + _result(pair.get("baseline"), None, "no baseline")
        + _result(pair.get("candidate"), pair.get("error"), "not run")
        + "</tr>"
    )


def _select(name: str, values: Iterable[str], counts: Sequence[str] = ()) -> str:
    """A filter: ``all`` and one option per value (with its count when ``counts`` is given)."""
    options = "".join(
        f'<option value="{_e(v)}">{_e(v)}{f" ({counts.count(v)})" if counts else ""}</option>'
        for v in values
    )
    options = f'<option value="">all</option>{options}'
    return f'<label>{name} <select id="f-{name}">{options}</select></label>'


def _pairs(pairs: Sequence[Mapping[str, Any]]) -> str:
    order = {d: i for i, d in enumerate(SEVERITY)}
    pairs = sorted(pairs, key=lambda p: (order.get(str(p["delta"]), 99), str(p["id"])))
    deltas = [str(p["delta"]) for p in pairs]
    kinds = sorted({str(p["kind"]) for p in pairs})
    tags = sorted({str(t) for p in pairs for t in p.get("tags") or []})
    filters = (
        _select("delta", [d for d in SEVERITY if d in deltas], deltas)
        + _select("kind", kinds)
        + _select("tag", tags)
        + '<button type=button class=reset id="f-reset">reset</button>'
        f'<span><b id="shown">{len(pairs)}</b> of {len(pairs)} pairs shown</span>'
    )
    return (
        f'<section id="pairs"><h2>Pairs</h2><div class=filters>{filters}</div>'
        '<table id="pair-table"><colgroup><col class=c-id><col class=c-kind><col class=c-delta>'
        "<col><col></colgroup><thead><tr><th>pair</th><th>kind</th><th>delta</th>"
        f"<th>baseline</th><th>candidate</th></tr></thead><tbody>{''.join(map(_pair_row, pairs))}"
        '</tbody></table><p id="no-match" class=muted hidden>No pair matches these filters.</p>'
        "</section>"
    )


def render_html(report: Mapping[str, Any]) -> str:
    """The whole page as one string; every text from the report is HTML-escaped."""
    side = _trend(report.get("trend") or []) + _tags(report.get("tags") or {}) + _extras(report)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>HGD gate: {_e(_headline(report))}</title><style>{STYLE}</style></head>"
        f"<body><main>{_banner(report)}{_counts(report)}"
        f"<div class=grid>{_pressure(report.get('pressure') or {})}<div class=stack>{side}</div>"
        "</div>"
        + search_view.html_section(report)
        + _pairs(report.get("pairs") or [])
        + f"<footer>pytest-hgd gate report, schema version {_e(report.get('schema_version'))}"
        f"</footer></main><script>{SCRIPT}</script></body></html>\n"
    )


def write_html(report: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Write the page atomically (temp file + rename)."""
    write_atomic(Path(path), render_html(report))
