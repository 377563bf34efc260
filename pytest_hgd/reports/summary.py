"""The gate report as people read it: the terminal's ``HGD gate`` section and the Markdown
summary, as pure renderers of the report built by `report.build_report`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_hgd.core.gate import FAILING_DELTAS
from pytest_hgd.core.text import printable
from pytest_hgd.reports import search_view
from pytest_hgd.reports.blame_text import blame_lines, blame_markdown, divergence_lines
from pytest_hgd.storage.cache import write_atomic

Line = tuple[str, dict[str, bool]]
FAILING = frozenset(d.value for d in FAILING_DELTAS)  # the pairs the summary lists


def _rollout_lines(report: Mapping[str, Any]) -> list[str]:
    summary = report.get("rollout_summary")
    if not summary:
        return []
    lines = [
        f"rollouts: {_counts_line(summary['counts'])}; candidate pass rate teacher-forced "
        f"(pairs) {_rate(summary['teacher_forced_pass_rate'])}, free-running (rollouts) "
        f"{_rate(summary['free_running_pass_rate'])}"
    ]
    for rollout in report.get("rollouts", []):
        if rollout["delta"] in FAILING:
            lines.append(f"  {rollout['delta']:<10} {rollout['id']}: {_rollout_failure(rollout)}")
            lines.extend(f"             {text}" for text in divergence_lines(rollout))
    hidden = summary["pairs_pass_rollout_fails"]
    if hidden:
        lines.append("every pair passes but the rollout fails (compounding errors):")
        for entry in hidden:
            turn = entry["first_failed_turn"]
            where = f"turn {turn}" if turn else "final checks"
            lines.append(
                f"  {entry['conversation']} ({entry['id']}): fails at {where}, "
                f"{entry['failed_check']}: {entry['message']}"
            )
    return lines


def _rollout_failure(rollout: Mapping[str, Any]) -> str:
    if rollout.get("error"):
        return f"error: {rollout['error']}"
    candidate = rollout.get("candidate") or {}
    turn = candidate.get("first_failed_turn")
    where = f"turn {turn}" if turn else "final checks"
    return f"fails at {where}, {candidate.get('failed_check')}: {candidate.get('message')}"


def calls_lines(report: Mapping[str, Any]) -> list[str]:
    """Agent calls made and cached per prompt, against a fixed-K run's with auto samples;
    tokens and their cost where the agent reported them."""
    calls = report.get("calls") or {}
    if not calls:
        return []
    hits = calls.get("cache_hits", {})
    line = (
        f"agent calls: baseline {calls.get('baseline', 0)} (+{hits.get('baseline', 0)} cached), "
        f"candidate {calls.get('candidate', 0)} (+{hits.get('candidate', 0)} cached)"
    )
    fixed = calls.get("fixed_k")
    if fixed:
        would = fixed["baseline"] + fixed["candidate"]
        line += (
            f"; for the screened pairs a fixed K = {report['samples']['max']} run would make "
            f"{would}, auto made {fixed['auto']} ({would - fixed['auto']} saved)"
        )
    lines = [line]
    usage = report.get("usage") or {}
    sides = [(role, usage.get(role) or {}) for role in ("baseline", "candidate")]
    if any(side.get("calls") for _, side in sides):
        tokens = ", ".join(
            f"{role} {side['input_tokens']} in / {side['output_tokens']} out"
            for role, side in sides
            if side.get("calls")
        )
        cost = usage.get("cost")
        priced = f"; cost {cost['total']:.4g} at {usage.get('model')}'s price" if cost else ""
        lines.append(f"tokens: {tokens}{priced}")
    return lines


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f}%"


def _counts_line(counts: Mapping[str, int]) -> str:
    shown = [f"{n} {name}" for name, n in counts.items() if n]
    return ", ".join(shown) or "no pairs ran"


def _problem_pairs(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [p for p in report["pairs"] if p["delta"] in FAILING]


def _failure_text(pair: Mapping[str, Any]) -> str:
    if pair.get("error"):
        return f"error: {pair['error']}"
    if pair.get("undecided"):
        return f"undecided: {pair['undecided']}"
    result = pair.get("candidate") or {}
    reply = result.get("reply") or ""
    text = f"{result.get('failed_check')}: {result.get('message')} — reply: {reply!r}"
    if result.get("runs", 1) > 1:  # the sampled gate: the counts and the test behind the call
        baseline = pair.get("baseline")
        counts = f"{baseline['passes']}/{baseline['runs']} → " if baseline else ""
        counts += f"{result['passes']}/{result['runs']} passed"
        if pair.get("p_value") is not None:
            counts += f", p = {pair['p_value']:.3g}"
        text = f"({counts}) {text}"
    return text


def pressure_text(pressure: Mapping[str, Any]) -> str:
    value = pressure.get("value")
    text = f"pressure {value:.2f}" if isinstance(value, int | float) else "pressure —"
    band = pressure.get("band")
    if band:
        text += f" (band {band[0]:.2f} to {band[1]:.2f})"
    if pressure.get("estimator"):
        text += f", estimator: {pressure['estimator']}"
    return text


def _screen_lines(report: Mapping[str, Any]) -> list[str]:
    """--hgd-samples=auto: how many pairs stopped at the screen and how many went on."""
    screened = [p for p in report.get("pairs", []) if p.get("screen")]
    if not screened:
        return []
    stopped = sum(1 for p in screened if not p["screen"]["went_on"])
    went_on = sum(1 for p in screened if p["screen"]["went_on"] and p["delta"] != "undecided")
    undecided = report["counts"].get("undecided", 0)
    left = f", {undecided} undecided" if undecided else ""
    return [
        f"auto samples: {stopped} pairs decided at the screen of "
        f"{screened[0]['screen']['design'][0]}, {went_on} went on to K = "
        f"{report['samples']['max']}{left}"
    ]


def _sampling_lines(report: Mapping[str, Any]) -> list[str]:
    """Samples, the suite-level sign test and the flaky pairs (only for sampled runs)."""
    samples = report.get("samples", {})
    if samples.get("max", 1) <= 1:
        return []
    pool = f" (baseline pools up to {samples['pool']}, from the cache)" if "pool" in samples else ""
    lines = [
        f"samples: up to {samples['max']} per pair and prompt{pool}, alpha {samples['alpha']:g}"
    ]
    suite = report.get("suite")
    if suite:
        lines.append(
            f"suite sign test: {suite['improved']} improved, {suite['worsened']} worsened, "
            f"{suite['unchanged']} unchanged; p = {suite['p_value']:.3g} that the candidate is "
            "worse"
        )
    lines += _screen_lines(report)
    untestable = sum(
        1 for p in report.get("pairs", []) if p.get("testable") is False and not p.get("screen")
    )
    if untestable:
        lines.append(
            f"untestable: {untestable} {'pair has' if untestable == 1 else 'pairs have'} "
            "too few runs to show a regression at alpha "
            f"{samples['alpha']:g} (one run a side): they can only be kept or still_failing; "
            "give them more samples"
        )
    flaky = report.get("flaky", [])
    if flaky:
        lines.append(f"flaky pairs (baseline pass rate strictly between 0 and 1): {len(flaky)}")
        lines.extend(f"  {f['id']}: {f['passes']}/{f['runs']}" for f in flaky[:20])
    return lines


def _band(component: Mapping[str, Any]) -> str:
    band = component.get("band")
    return f" [{band[0]:.2f}, {band[1]:.2f}]" if band else ""


# Each pressure component: the digits of its value, and what its numbers mean. The one
# definition the terminal, Markdown and HTML reports all read.
COMPONENTS = {
    "constraints": (0, "{locked} locked + {corrected} corrected enforced, {retired} retired, "
                    "{pending_review} pending review; growth {growth:+} over {runs} ledger runs"),
    "epsilon": (3, "{failing} failing / {passing} passing on the baseline: "
                "{share:.0%} of the suite still pulls towards change"),
    "survival": (3, "chance the unchanged baseline passes every enforced pair again; "
                 "{reruns} re-runs seen, {unobserved} pairs without one yet"),
    "acceptance": (2, "{accepted} of {candidates} candidates passed, each at its latest run; "
                   "mean {mean_broken:.1f} pairs broken each"),
    "probe": (2, "{passed} of {mutants} mutants of the candidate passed"),
}  # fmt: skip


class _Zero(dict[str, Any]):
    def __missing__(self, key: str) -> int:
        return 0


def pressure_components(pressure: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(name, value with its band, what it means) for each component the pressure carries."""
    rows = []
    for name, (digits, template) in COMPONENTS.items():
        part = pressure.get(name)
        if not isinstance(part, Mapping) or not part:
            continue
        value = part.get("value")
        if not isinstance(value, int | float):  # epsilon at 0/0: no pair to pull or to hold
            rows.append((name, "undefined", "no enforced pair passes or fails on the baseline"))
            continue
        detail = template.format_map(_Zero(part))
        searched = part.get("search") if name == "probe" else None
        if searched:  # the search's candidates sample the same region (docs/search.md)
            mutants = part["mutants"] - searched["candidates"]
            detail = (
                f"{part['passed']} of {part['mutants']} prompt changes passed: {mutants} probe "
                f"mutants, {searched['candidates']} search candidates ({searched['passed']} "
                "passed)"
            )
        rows.append((name, f"{value:.{digits}f}{_band(part)}", detail))
    return rows


def pressure_lines(pressure: Mapping[str, Any]) -> list[str]:
    """The constraint pressure block: the headline and each component on its own line."""
    lines = [f"constraint {pressure_text(pressure)}"]
    lines.extend(
        f"  {name}: {value} ({detail})" for name, value, detail in pressure_components(pressure)
    )
    binding = pressure.get("binding") or []
    if binding:
        walls = ", ".join(f"{b['id']} ({b['blocked']})" for b in binding[:5])
        more = f"; +{len(binding) - 5} more in the JSON report" if len(binding) > 5 else ""
        lines.append(f"  binding constraints (candidates blocked): {walls}{more}")
    return lines


_MARKDOWN_SPECIAL = str.maketrans(
    {c: "\\" + c for c in "\\`*_[]!|~#"} | {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
)


def markdown_text(text: str) -> str:
    """``text`` as literal Markdown: no HTML, image, link, emphasis or table cell break
    from a reply or an id renders in a pull-request comment."""
    return printable(text).translate(_MARKDOWN_SPECIAL)


def render_terminal(report: Mapping[str, Any], rerun: str) -> list[Line]:
    """The ``HGD gate`` section as (text, markup) lines; the hook writes them. Every line is
    `printable`."""
    return [(printable(text), markup) for text, markup in _terminal_lines(report, rerun)]


def _terminal_lines(report: Mapping[str, Any], rerun: str) -> list[Line]:
    lines: list[Line] = [(f"deltas: {_counts_line(report['counts'])}", {})]
    skipped = report.get("skipped", [])
    retired = sum(1 for s in skipped if s["status"] == "retired")
    pending = sum(1 for s in skipped if s["status"] == "pending_review")
    if retired or pending:
        lines.append((f"skipped: {retired} retired, {pending} pending review", {}))
    problems = _problem_pairs(report)
    if problems:
        lines.append(("regressed / failing pairs:", {"bold": True}))
        for pair in problems:
            lines.append((f"  {pair['delta']:<10} {pair['id']}", {"red": True}))
            lines.append((f"             {_failure_text(pair)}", {}))
            lines.extend((f"             {text}", {}) for text in blame_lines(pair))
    if report["tags"]:
        lines.append(("pass rate per tag (baseline → candidate):", {}))
        for tag, entry in report["tags"].items():
            rates = f"{_rate(entry['baseline_pass_rate'])} → {_rate(entry['candidate_pass_rate'])}"
            lines.append((f"  {tag:<16} {rates}  ({entry['pairs']} pairs)", {}))
    lines.extend((text, {}) for text in _sampling_lines(report))
    lines.extend((text, {}) for text in _rollout_lines(report))
    pressure = report["pressure"]
    warn = bool(pressure.get("warning"))
    lines.extend((text, {"yellow": warn}) for text in pressure_lines(pressure))
    for reason in pressure.get("warning_reasons", []):
        lines.append((f"  HGDPressureWarning: {reason}", {"yellow": True}))
    lines.extend(search_view.terminal_lines(report))
    lines.extend((text, {}) for text in calls_lines(report))
    verdict = report["verdict"]
    reasons = "; ".join(report.get("verdict_reasons", []))
    if report.get("partial"):
        lines.append((f"partial run: {partial_text(report)}", {"yellow": True}))
        text = "verdict: NONE for the gate (a partial run)"
        text += f"; the pairs that ran fail it ({reasons})" if reasons else ""
        markup = {"yellow": verdict == "pass", "red": verdict == "fail", "bold": True}
    else:
        text = f"verdict: {verdict.upper()}" + (f" ({reasons})" if reasons else "")
        markup = {"green": verdict == "pass", "red": verdict == "fail", "bold": True}
    lines.append((text, markup))
    lines.append((f"next: {rerun}", {}))
    return lines


def partial_text(report: Mapping[str, Any]) -> str:
    """``3 of 35 enforced pairs ran (why)`` for a partial run's report."""
    selection = report.get("selection") or {}
    why = "; ".join(selection.get("why", []))
    ran, enforced = selection.get("ran", 0), selection.get("enforced", 0)
    of = f"at least {enforced}" if selection.get("at_least") else str(enforced)
    return f"{ran} of {of} enforced pairs ran ({why})"


def render_markdown(report: Mapping[str, Any]) -> str:
    """The same summary as Markdown, for a pull-request comment."""
    md = markdown_text
    if report.get("partial"):
        icon = "⚠️" if report["verdict"] == "pass" else "❌"
        out = [f"## {icon} HGD gate: no verdict (partial run)", ""]
        partial = md(partial_text(report))
        out += [f"Partial run: {partial}. Not a gate verdict: do not merge on it.", ""]
    else:
        icon = "✅" if report["verdict"] == "pass" else "❌"
        out = [f"## {icon} HGD gate: {report['verdict']}", ""]
    if report.get("verdict_reasons"):
        out += [f"Reasons: {md('; '.join(report['verdict_reasons']))}", ""]
    out += ["| delta | pairs |", "|---|---:|"]
    out += [f"| {name} | {n} |" for name, n in report["counts"].items()]
    problems = _problem_pairs(report)
    if problems:
        out += [
            "",
            "### Regressed and failing pairs",
            "",
            "| pair | delta | why |",
            "|---|---|---|",
        ]
        out += [f"| {md(p['id'])} | {p['delta']} | {md(_failure_text(p))} |" for p in problems]
        out += blame_markdown(report, md)
    if report["tags"]:
        out += [
            "",
            "### Pass rate per tag",
            "",
            "| tag | pairs | baseline | candidate |",
            "|---|---:|---:|---:|",
        ]
        for tag, entry in report["tags"].items():
            out.append(
                f"| {md(tag)} | {entry['pairs']} | {_rate(entry['baseline_pass_rate'])} | "
                f"{_rate(entry['candidate_pass_rate'])} |"
            )
    rollout = _rollout_lines(report)
    if rollout:
        out += ["", "### Rollouts", ""] + [f"- {md(line.strip())}" for line in rollout]
    sampling = _sampling_lines(report) + calls_lines(report)
    if sampling:
        out += ["", "### Samples and calls", ""] + [f"- {md(line.strip())}" for line in sampling]
    block = pressure_lines(report["pressure"])
    out += ["", "### Constraint pressure", "", md(block[0]), ""]
    out += [f"- {md(line.strip())}" for line in block[1:]]
    for reason in report["pressure"].get("warning_reasons", []):
        out.append(f"- ⚠️ {md(reason)}")
    out += search_view.markdown_lines(report, md)
    prompts = report.get("prompts", {})
    if prompts:
        out += [""]
        for role in ("baseline", "candidate"):
            prompt = prompts.get(role)
            if prompt:
                source, sha = md(prompt["source"]), prompt["sha256"][:12]
                out.append(f"- {role}: {source} (sha256 `{sha}`)")
    return "\n".join(out) + "\n"


def write_markdown(report: Mapping[str, Any], path: Path) -> None:
    write_atomic(path, render_markdown(report))
