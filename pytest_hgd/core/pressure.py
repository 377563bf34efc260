"""Constraint pressure: how little room the pair suite leaves for prompt changes (no pytest).

Pure functions of ledger records (see ``storage/ledger.py``); every output is JSON-able. The model,
its formulas and a worked example are in ``docs/pressure.md``. In short::

    S  = prod_i p_i        noise survival (``survival.py``), over pairs passing on the baseline
    F  = (k + S)/(n + 1)   mean of Beta(k + S, n - k + 1 - S): one pseudo-change passing at S
    pressure = 1 - F

where k of n distinct candidates (the last ``window``, each at its latest verdict) and probe
mutants passed the gate; an acceptance that never met some of today's pairs counts as its
chance to survive their noise.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_hgd.core.beta import beta_quantile, jeffreys_interval
from pytest_hgd.core.survival import (
    TOP,
    active_pairs,
    int_or_zero,
    passes_reference,
    rounded,
    strings,
    survival,
)

TREND_STEPS = 3  # warn when pressure rose in each of the last 3 runs ...
TREND_RISE = 0.1  # ... by at least 0.1 in total


@dataclass
class ProbeResult:
    """How many of the probe's mutants passed the gate; ``details`` free-form per mutant.
    ``searched``: of those, the candidate search's (passed, evaluated on every training
    pair), which sample the same region of allowed changes."""

    passed: int
    total: int
    details: list[dict[str, Any]] = field(default_factory=list)
    searched: tuple[int, int] = (0, 0)


def compute_pressure(
    current: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]],
    *,
    window: int = 20,
    probe: ProbeResult | None = None,
    warn_at: float = 0.7,
    confidence: float = 0.9,
) -> dict[str, Any]:
    """The pressure object for ``current`` (a ledger record) given the earlier ``history``."""
    if window < 1:
        raise ValueError(f"window must be >= 1, not {window}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), not {confidence}")
    if probe is not None and not 0 <= probe.passed <= probe.total:
        raise ValueError(f"probe passed {probe.passed} of {probe.total} mutants")
    # A partial run (pairs left out) measures no suite: never evidence, whoever calls.
    earlier = [r for r in history if isinstance(r, Mapping) and r.get("partial") is not True]
    records = [*earlier, current]
    actives = [active_pairs(r) for r in records]  # each record's, once
    active = actives[-1]

    noise, s_val, (s_lo, s_hi), rates = survival(current, records, actives, confidence)
    latest = latest_candidates(records)
    acceptance, k_cand, n_cand = _acceptance(latest, active, rates, window, confidence)
    mutants = (probe.passed, probe.total) if probe else (0, 0)
    k = (k_cand[0] + mutants[0], k_cand[1] + mutants[0], k_cand[2] + mutants[0])  # S's 3 ends
    n = n_cand + mutants[1]
    failed = acceptance["rejected"] + mutants[1] - mutants[0]
    f_val, (f_lo, f_hi) = _passing_changes(k, n, failed, (s_val, s_lo, s_hi), confidence)
    value = rounded(1.0 - f_val)

    sources = [name for name, m in (("acceptance", n_cand), ("probe", n - n_cand)) if m]
    estimator = "beta(" + "+".join(["survival", *sources]) + ")" if sources else "survival"
    reasons = _warning_reasons(value, earlier, warn_at)
    return {
        "value": value,
        "band": [rounded(min(value, 1.0 - f_hi)), rounded(max(value, 1.0 - f_lo))],
        "estimator": estimator,
        "confidence": confidence,
        "warning": bool(reasons),
        "warning_reasons": reasons,
        "constraints": _constraints(records, actives, window),
        "epsilon": _epsilon(current, active),
        "survival": noise,
        "systematic": _systematic(k[0], n, f_val, (f_lo, f_hi), s_val, (s_lo, s_hi)),
        "acceptance": acceptance,
        "probe": _probe(probe, confidence),
        "binding": _binding(latest, active),
    }


def _passing_changes(
    k: tuple[float, float, float],
    n: int,
    failed: int,
    s: tuple[float, float, float],
    confidence: float,
) -> tuple[float, tuple[float, float]]:
    """F, the chance that a proposed change passes the gate, and its band.

    Beta(k + S, n - k + 1 - S): the observed changes (k of n passed on today's suite) and
    one pseudo-change, the unchanged prompt, that passes with the noise survival S. ``k``
    and ``s`` are (value, low end, high end): the noise's two readings. With no change
    observed, F is S, band and all. Jeffreys' ends: 0 when no change passed, 1 when none
    ``failed``, so the band covers what was observed.
    """
    (k_val, k_lo, k_hi), (s_val, s_lo, s_hi) = k, s
    if n == 0:
        return s_val, (s_lo, s_hi)
    tail = (1.0 - confidence) / 2.0
    f_val = (k_val + s_val) / (n + 1.0)
    f_lo = 0.0 if k_lo <= 0.0 else beta_quantile(tail, k_lo + s_lo, n - k_lo + 1.0 - s_lo)
    f_hi = 1.0 if not failed else beta_quantile(1.0 - tail, k_hi + s_hi, n - k_hi + 1.0 - s_hi)
    return f_val, (min(f_lo, f_val), max(f_hi, f_val))


def _systematic(
    k: float,
    n: int,
    f_val: float,
    f_band: tuple[float, float],
    s_val: float,
    s_band: tuple[float, float],
) -> dict[str, Any]:
    """A = F / S, the pass rate of changes beyond the noise (at most 1), and its band."""
    if n == 0 or s_val <= 0.0:
        a_val, a_lo, a_hi = 1.0, 0.0, 1.0  # nothing observed beyond the noise
    else:
        a_val = min(1.0, f_val / s_val)
        a_lo = min(a_val, f_band[0] / s_band[1]) if s_band[1] > 0.0 else 0.0
        a_hi = min(1.0, f_band[1] / s_band[0]) if s_band[0] > 0.0 else 1.0
    return {
        "value": rounded(a_val),
        "band": [rounded(a_lo), rounded(max(a_hi, a_val))],
        "passes": rounded(k),
        "observations": n,
    }


# --- which pairs count -------------------------------------------------------------------


# --- components ---------------------------------------------------------------------------


def _constraints(
    records: list[Mapping[str, Any]], actives: list[dict[str, Mapping[str, Any]]], window: int
) -> dict[str, Any]:
    series = [len(active) for active in actives[-window:]]
    pairs = actives[-1]
    locked = sum(1 for e in pairs.values() if e.get("kind", "locked") == "locked")
    pending = records[-1].get("pending_review", 0)
    growth = series[-1] - series[0]
    return {
        "value": series[-1],
        "locked": locked,
        "corrected": series[-1] - locked,
        "pending_review": pending if isinstance(pending, int) else 0,
        "retired": len(strings(records[-1].get("retired"))),
        "growth": growth,
        "growth_per_run": rounded(growth / (len(series) - 1)) if len(series) > 1 else 0.0,
        "runs": len(series),
        "series": series,
    }


def _epsilon(current: Mapping[str, Any], active: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    verdicts = [passes_reference(current, e) for e in active.values()]
    passing = verdicts.count(True)
    failing = verdicts.count(False)
    if not failing + passing:  # 0/0: no pair to pull or to hold; undefined, not 0
        return {"value": None, "failing": 0, "passing": 0, "share": None}
    return {
        "value": rounded(failing / max(passing, 1)),
        "failing": failing,
        "passing": passing,
        "share": rounded(failing / (failing + passing)),
    }


def is_candidate_run(record: Mapping[str, Any]) -> bool:
    """A run that proposed a change: a baseline and a candidate whose hashes differ."""
    base, cand = record.get("baseline_hash"), record.get("candidate_hash")
    return isinstance(base, str) and isinstance(cand, str) and base != cand


def _blockers(record: Mapping[str, Any], active: Mapping[str, Any]) -> list[str]:
    return [pid for pid in strings(record.get("regressed")) if pid in active]


def latest_candidates(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One run per candidate prompt (hash), its latest conclusive one, oldest first.

    A candidate re-run a hundred times is still one proposed change: its latest verdict
    stands. A run that failed on errors alone says nothing about the change, so it stands
    only when the candidate has no other run.
    """
    latest: dict[str, Mapping[str, Any]] = {}
    for record in records:
        if not is_candidate_run(record):
            continue
        prompt = str(record.get("candidate_hash"))
        earlier = latest.pop(prompt, None)
        conclusive = change_of(record) != "inconclusive"
        latest[prompt] = record if conclusive or earlier is None else earlier
    return list(latest.values())


def change_of(record: Mapping[str, Any]) -> str:
    """What the run said of its change: ``accepted``, ``rejected`` or ``inconclusive``
    (failed on errors alone). Its ``change`` key says so; records written before it had
    one are read from their verdict and regressed pairs."""
    change = record.get("change")
    if change in ("accepted", "rejected", "inconclusive"):
        return str(change)
    if record.get("verdict") == "pass":
        return "accepted"
    return "rejected" if strings(record.get("regressed")) else "inconclusive"


def _acceptance(
    latest: list[Mapping[str, Any]],
    active: Mapping[str, Any],
    rates: Mapping[str, tuple[float, float, float]],
    window: int,
    confidence: float,
) -> tuple[dict[str, Any], tuple[float, float, float], int]:
    """The last ``window`` candidates at their latest verdict, re-judged against today's
    suite. An accepted candidate that never met some of today's enforced pairs counts as
    the chance it survives their noise, prod p_i over them (its pass on today's suite)."""
    accepted = rejected = rejudged = inconclusive = broken = 0
    passes_today = [0.0, 0.0, 0.0]  # at the value, low end and high end of the noise
    for record in latest[-window:]:
        blockers = _blockers(record, active)
        change = change_of(record)
        if change == "inconclusive":
            inconclusive += 1  # failed on errors: says nothing about the change
            continue
        if change == "rejected" and (blockers or int_or_zero(record.get("other_blockers"))):
            rejected += 1  # by an active pair, or by a rollout or strict still_failing
            broken += len(blockers)
            continue
        accepted += 1
        if change == "rejected":  # blocked only by pairs since retired or removed
            rejudged += 1
        met = record.get("pairs")
        met = met if isinstance(met, Mapping) else {}
        unmet = [p for pid, p in rates.items() if pid not in met]
        for end in range(3):  # its pass on today's suite
            passes_today[end] += math.prod(p[end] for p in unmet)
    n = accepted + rejected
    lo, hi = jeffreys_interval(accepted, n, confidence)
    value = accepted / n if n else 1.0
    component = {
        "value": rounded(value),
        "band": [rounded(min(lo, value)), rounded(max(hi, value))],
        "candidates": n,
        "accepted": accepted,
        "rejected": rejected,
        "rejudged": rejudged,
        "inconclusive": inconclusive,
        "mean_broken": rounded(broken / n) if n else 0.0,
        "passes_today": rounded(passes_today[0]),
        "window": window,
    }
    return component, (passes_today[0], passes_today[1], passes_today[2]), n


def _probe(probe: ProbeResult | None, confidence: float) -> dict[str, Any] | None:
    if probe is None:
        return None
    value = probe.passed / probe.total if probe.total else 1.0
    lo, hi = jeffreys_interval(probe.passed, probe.total, confidence)
    component = {
        "value": rounded(value),
        "band": [rounded(min(lo, value)), rounded(max(hi, value))],
        "passed": probe.passed,
        "mutants": probe.total,
    }
    if probe.searched[1]:
        component["search"] = {"passed": probe.searched[0], "candidates": probe.searched[1]}
    return component


def _binding(
    latest: list[Mapping[str, Any]], active: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Active pairs that blocked the most candidates (each at its latest verdict) in the
    whole ledger."""
    blocked: dict[str, int] = {}
    last: dict[str, int] = {}
    for index, record in enumerate(latest):
        if change_of(record) == "rejected":
            for pid in set(_blockers(record, active)):
                blocked[pid] = blocked.get(pid, 0) + 1
                last[pid] = index
    ranked = sorted(blocked, key=lambda pid: (-blocked[pid], -last[pid], pid))[:TOP]
    return [
        {"id": pid, "blocked": blocked[pid], "kind": str(active[pid].get("kind", "locked"))}
        for pid in ranked
    ]


def _warning_reasons(value: float, earlier: list[Mapping[str, Any]], warn_at: float) -> list[str]:
    reasons = []
    if value >= warn_at:
        reasons.append(f"pressure {value:.2f} has reached hgd_pressure_warn {warn_at:.2f}")
    past = [v for v in (_pressure_value(r) for r in earlier) if v is not None]
    series = [*past[-TREND_STEPS:], value]
    rising = all(b > a for a, b in itertools.pairwise(series))
    if len(series) == TREND_STEPS + 1 and rising and series[-1] - series[0] >= TREND_RISE - 1e-9:
        trail = " -> ".join(f"{v:.2f}" for v in series)
        reasons.append(f"pressure rose in each of the last {TREND_STEPS} runs ({trail})")
    return reasons


def _pressure_value(record: Mapping[str, Any]) -> float | None:
    pressure = record.get("pressure")
    value = pressure.get("value") if isinstance(pressure, Mapping) else None
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok and math.isfinite(value) else None  # type: ignore[arg-type]
