"""Constraint pressure: how little room the pair suite leaves for prompt changes (no pytest).

Pure functions of ledger records (see ``ledger.py``); every output is JSON-able. The model,
its formulas and a worked example are in ``docs/pressure.md``. In short::

    S  = prod_i p_i        noise survival: the baseline's re-runs, over pairs passing on it
    F  = (k + S)/(n + 1)   mean of Beta(k + S, n - k + 1 - S): one pseudo-change passing at S
    pressure = 1 - F

where k of n distinct candidates (the last ``window``, each at its latest verdict) and probe
mutants passed the gate; an acceptance that never met some of today's pairs counts as its
chance to survive their noise.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .beta import beta_quantile, jeffreys_interval
from .model import PASSED_REFERENCE

NOISE_PULL = 4.0  # kappa: how many re-runs the pooled pass rate weighs in each pair's estimate
TREND_STEPS = 3  # warn when pressure rose in each of the last 3 runs ...
TREND_RISE = 0.1  # ... by at least 0.1 in total
TOP = 10  # binding constraints and flaky pairs listed
DIGITS = 6

Evidence = tuple[int, int]  # (re-run passes r, re-runs m)


@dataclass
class ProbeResult:
    """How many of the probe's mutants passed the gate; ``details`` free-form per mutant."""

    passed: int
    total: int
    details: list[dict[str, Any]] = field(default_factory=list)


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

    survival, s_val, (s_lo, s_hi), rates = _survival(current, records, actives, confidence)
    latest = latest_candidates(records)
    acceptance, k_cand, n_cand = _acceptance(latest, active, rates, window, confidence)
    mutants = (probe.passed, probe.total) if probe else (0, 0)
    k = (k_cand[0] + mutants[0], k_cand[1] + mutants[0], k_cand[2] + mutants[0])  # S's 3 ends
    n = n_cand + mutants[1]
    failed = acceptance["rejected"] + mutants[1] - mutants[0]
    f_val, (f_lo, f_hi) = _passing_changes(k, n, failed, (s_val, s_lo, s_hi), confidence)
    value = _r(1.0 - f_val)

    sources = [name for name, m in (("acceptance", n_cand), ("probe", n - n_cand)) if m]
    estimator = "beta(" + "+".join(["survival", *sources]) + ")" if sources else "survival"
    reasons = _warning_reasons(value, earlier, warn_at)
    return {
        "value": value,
        "band": [_r(min(value, 1.0 - f_hi)), _r(max(value, 1.0 - f_lo))],
        "estimator": estimator,
        "confidence": confidence,
        "warning": bool(reasons),
        "warning_reasons": reasons,
        "constraints": _constraints(records, actives, window),
        "epsilon": _epsilon(current, active),
        "survival": survival,
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
        "value": _r(a_val),
        "band": [_r(a_lo), _r(max(a_hi, a_val))],
        "passes": _r(k),
        "observations": n,
    }


# --- which pairs count -------------------------------------------------------------------


def active_pairs(record: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The pairs in the record's suite: locked and corrected, not retired nor pending review."""
    pairs = record.get("pairs")
    if not isinstance(pairs, Mapping):
        return {}
    retired = set(_strings(record.get("retired")))
    return {
        pid if type(pid) is str else str(pid): entry
        for pid, entry in pairs.items()
        if (type(entry) is dict or isinstance(entry, Mapping))
        and pid not in retired
        and not entry.get("retired")
        and not entry.get("review")
    }


def _strings(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list | tuple) else []


def _counts(value: object) -> Evidence | None:
    """``[passes, runs]`` as a checked pair of ints, else None."""
    if type(value) is list and len(value) == 2:  # the common case, in short
        s, n = value
        if type(s) is int and type(n) is int:
            return (s, n) if 0 <= s <= n and n > 0 else None
    if not isinstance(value, list | tuple) or len(value) != 2:
        return None
    s, n = value
    ok = all(isinstance(v, int) and not isinstance(v, bool) for v in (s, n))
    return (s, n) if ok and 0 <= s <= n and n > 0 else None


def passes_reference(record: Mapping[str, Any], entry: Mapping[str, Any]) -> bool | None:
    """Did the pair pass on the record's reference prompt (the baseline, else the candidate)?"""
    delta = entry.get("delta")
    if isinstance(delta, str) and delta in PASSED_REFERENCE:
        return PASSED_REFERENCE[delta]
    side = "baseline" if record.get("baseline_hash") is not None else "candidate"
    counts = _counts(entry.get(side))
    return None if counts is None else 2 * counts[0] > counts[1]


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
        "retired": len(_strings(records[-1].get("retired"))),
        "growth": growth,
        "growth_per_run": _r(growth / (len(series) - 1)) if len(series) > 1 else 0.0,
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
        "value": _r(failing / max(passing, 1)),
        "failing": failing,
        "passing": passing,
        "share": _r(failing / (failing + passing)),
    }


def reference_prompt(record: Mapping[str, Any]) -> str | None:
    """The hash of the record's reference prompt: its baseline, else its candidate."""
    for side in ("baseline_hash", "candidate_hash"):
        prompt = record.get(side)
        if isinstance(prompt, str):
            return prompt
    return None


def _evidence(
    records: list[Mapping[str, Any]], actives: list[dict[str, Mapping[str, Any]]]
) -> dict[str, list[Evidence]]:
    """Per active pair, (s, n) of the reference prompt's uncached runs, per (pair content,
    agent) group. Runs of any other prompt (a candidate's, however often re-run) are not the
    baseline's noise and never count."""
    active = actives[-1]
    reference = reference_prompt(records[-1])
    groups: dict[tuple[str, str, str], list[int]] = {}
    for record, pairs in zip(records, actives, strict=True):
        sides = [
            side
            for side in ("baseline", "candidate")
            if reference is not None and record.get(f"{side}_hash") == reference
        ]
        if not sides:
            continue
        agent = json.dumps(record.get("agent", ""), sort_keys=True, default=str)
        for pid, entry in pairs.items():
            now = active.get(pid)
            if now is None or entry.get("pair_hash") != now.get("pair_hash"):
                continue
            for side in sides:
                # Only replies called in that run are evidence: a pool partly taken from
                # the cache (the sampled gate's baseline) counts its fresh part.
                counts = _counts(entry.get(f"{side}_fresh") or entry.get(side))
                if counts is None or entry.get(f"{side}_cached"):
                    continue
                key = (pid, str(entry.get("pair_hash")), agent)
                tally = groups.get(key)
                if tally is None:
                    groups[key] = [*counts]
                else:
                    tally[0] += counts[0]
                    tally[1] += counts[1]
    out: dict[str, list[Evidence]] = {}
    for (pid, *_), (s, n) in groups.items():
        if s >= 1:  # a group that never passed is a systematic failure, not noise
            out.setdefault(pid, []).append((s - 1, n - 1))
    return out


def _survival(
    current: Mapping[str, Any],
    records: list[Mapping[str, Any]],
    actives: list[dict[str, Mapping[str, Any]]],
    confidence: float,
) -> tuple[dict[str, Any], float, tuple[float, float], dict[str, tuple[float, float, float]]]:
    """S, its band and component, and each enforced pair's p_i: (value, low end, high end)."""
    active = actives[-1]
    evidence = _evidence(records, actives)
    per_pair: dict[str, Evidence] = {}
    for pid in active:
        ev = evidence.get(pid, [])
        per_pair[pid] = (sum(r for r, _ in ev), sum(m for _, m in ev))
    enforced = [pid for pid, e in active.items() if passes_reference(current, e)]
    reruns = sum(m for ev in evidence.values() for _, m in ev)
    rerun_passes = sum(r for ev in evidence.values() for r, _ in ev)
    mu = (rerun_passes + 1.0) / (reruns + 1.0)
    mu_lo, mu_hi = jeffreys_interval(rerun_passes, reruns, confidence)

    gate = current.get("gate")
    floor = 0.0
    if isinstance(gate, Mapping) and _int(gate.get("samples")) > 1:
        alpha = gate.get("alpha")
        if isinstance(alpha, int | float) and 0.0 <= alpha <= 1.0:
            floor = 1.0 - float(alpha)

    def rate(pid: str, pooled: float) -> float:
        r, m = per_pair[pid]
        return (r + NOISE_PULL * pooled) / (m + NOISE_PULL)

    def survival_at(pooled: float, pids: list[str]) -> float:
        return max(floor, math.prod(rate(pid, pooled) for pid in pids))

    noisy = [pid for pid in enforced if per_pair[pid][0] < per_pair[pid][1]]
    flaky = sorted((rate(pid, mu), pid) for pid in noisy)[:TOP]
    s_val = survival_at(mu, enforced)
    # Low end: every pair as noisy as the pool allows. High end: only the pairs that flipped
    # are noisy; a pair without a flip of its own (or without any re-run) may be steady, so
    # what is not known widens the band instead of narrowing it.
    band = (min(s_val, survival_at(mu_lo, enforced)), max(s_val, survival_at(mu_hi, noisy)))
    component = {
        "value": _r(s_val),
        "band": [_r(band[0]), _r(band[1])],
        "estimator": "sampled-gate" if floor else "one-shot",
        "pairs": len(enforced),
        "pass_rate": _r(mu),
        "pass_rate_band": [_r(min(mu, mu_lo)), _r(max(mu, mu_hi))],
        "reruns": reruns,
        "rerun_failures": reruns - rerun_passes,
        "unobserved": sum(1 for pid in enforced if not per_pair[pid][1]),
        "flaky": [
            {"id": pid, "pass_rate": _r(p), "reruns": per_pair[pid][1],
             "rerun_passes": per_pair[pid][0]}
            for p, pid in flaky
        ],
    }  # fmt: skip
    steady = set(enforced) - set(noisy)
    rates = {
        pid: (rate(pid, mu), rate(pid, mu_lo), 1.0 if pid in steady else rate(pid, mu_hi))
        for pid in enforced
    }
    return component, s_val, band, rates


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def is_candidate_run(record: Mapping[str, Any]) -> bool:
    """A run that proposed a change: a baseline and a candidate whose hashes differ."""
    base, cand = record.get("baseline_hash"), record.get("candidate_hash")
    return isinstance(base, str) and isinstance(cand, str) and base != cand


def _blockers(record: Mapping[str, Any], active: Mapping[str, Any]) -> list[str]:
    return [pid for pid in _strings(record.get("regressed")) if pid in active]


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
        conclusive = record.get("verdict") == "pass" or _strings(record.get("regressed"))
        latest[prompt] = record if conclusive or earlier is None else earlier
    return list(latest.values())


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
        if record.get("verdict") == "pass":
            accepted += 1
        elif blockers:
            rejected += 1
        elif _strings(record.get("regressed")):
            accepted += 1  # blocked only by pairs since retired or removed
            rejudged += 1
        else:
            inconclusive += 1  # failed on errors: says nothing about the change
            continue
        if not blockers:
            met = record.get("pairs")
            met = met if isinstance(met, Mapping) else {}
            unmet = [p for pid, p in rates.items() if pid not in met]
            for end in range(3):
                passes_today[end] += math.prod(p[end] for p in unmet)
        broken += len(blockers)
    n = accepted + rejected
    lo, hi = jeffreys_interval(accepted, n, confidence)
    value = accepted / n if n else 1.0
    component = {
        "value": _r(value),
        "band": [_r(min(lo, value)), _r(max(hi, value))],
        "candidates": n,
        "accepted": accepted,
        "rejected": rejected,
        "rejudged": rejudged,
        "inconclusive": inconclusive,
        "mean_broken": _r(broken / n) if n else 0.0,
        "passes_today": _r(passes_today[0]),
        "window": window,
    }
    return component, (passes_today[0], passes_today[1], passes_today[2]), n


def _probe(probe: ProbeResult | None, confidence: float) -> dict[str, Any] | None:
    if probe is None:
        return None
    value = probe.passed / probe.total if probe.total else 1.0
    lo, hi = jeffreys_interval(probe.passed, probe.total, confidence)
    return {
        "value": _r(value),
        "band": [_r(min(lo, value)), _r(max(hi, value))],
        "passed": probe.passed,
        "mutants": probe.total,
    }


def _binding(
    latest: list[Mapping[str, Any]], active: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Active pairs that blocked the most candidates (each at its latest verdict) in the
    whole ledger."""
    blocked: dict[str, int] = {}
    last: dict[str, int] = {}
    for index, record in enumerate(latest):
        if record.get("verdict") == "fail":
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


def _r(value: float) -> float:
    return round(float(value), DIGITS)
