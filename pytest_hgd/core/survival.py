"""Noise survival: the chance that the unchanged baseline passes every pair at stake again.

Pure functions of ledger records (no pytest, no I/O); the model and its worked examples are
in ``docs/pressure.md``, section "survival (S)". ``pressure.py`` combines S with the
candidates and the probe into the headline.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from pytest_hgd.core.beta import jeffreys_interval
from pytest_hgd.core.model import PASSED_REFERENCE

NOISE_PULL = 4.0  # kappa: how many re-runs the pooled pass rate weighs in each pair's estimate
TOP = 10  # flaky pairs (and binding constraints) listed
DIGITS = 6

Evidence = tuple[int, int]  # (re-run passes r, re-runs m)


def active_pairs(record: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The pairs in the record's suite: locked and corrected, not retired nor pending review."""
    pairs = record.get("pairs")
    if not isinstance(pairs, Mapping):
        return {}
    retired = set(strings(record.get("retired")))
    return {
        pid if type(pid) is str else str(pid): entry
        for pid, entry in pairs.items()
        if (type(entry) is dict or isinstance(entry, Mapping))
        and pid not in retired
        and not entry.get("retired")
        and not entry.get("review")
    }


def strings(value: object) -> list[str]:
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


def survival(
    current: Mapping[str, Any],
    records: list[Mapping[str, Any]],
    actives: list[dict[str, Mapping[str, Any]]],
    confidence: float,
) -> tuple[dict[str, Any], float, tuple[float, float], dict[str, tuple[float, float, float]]]:
    # long: S, its two band ends, the per-pair rates and the component from one pass
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
    if isinstance(gate, Mapping) and int_or_zero(gate.get("samples")) > 1:
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
        "value": rounded(s_val),
        "band": [rounded(band[0]), rounded(band[1])],
        "estimator": "sampled-gate" if floor else "one-shot",
        "pairs": len(enforced),
        "pass_rate": rounded(mu),
        "pass_rate_band": [rounded(min(mu, mu_lo)), rounded(max(mu, mu_hi))],
        "reruns": reruns,
        "rerun_failures": reruns - rerun_passes,
        "unobserved": sum(1 for pid in enforced if not per_pair[pid][1]),
        "flaky": [
            {"id": pid, "pass_rate": rounded(p), "reruns": per_pair[pid][1],
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


def int_or_zero(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def rounded(value: float) -> float:
    return round(float(value), DIGITS)
