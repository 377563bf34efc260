"""Pure decisions: the delta of one pair, the gate's verdict and counts over a run."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pytest_hgd.core.model import ALL_DELTAS, Delta

# in the order reasons name them; undecided fails unless --hgd-allow-undecided
FAILING_DELTAS = (Delta.REGRESSED, Delta.ERROR, Delta.UNDECIDED, Delta.NEW_FAIL)


def one_shot_delta(baseline_passed: bool | None, candidate_passed: bool) -> Delta:
    """The spec's table for one reply under each prompt (``None``: no baseline given)."""
    if baseline_passed is None:
        return Delta.NEW_PASS if candidate_passed else Delta.NEW_FAIL
    if baseline_passed:
        return Delta.KEPT if candidate_passed else Delta.REGRESSED
    return Delta.FIXED if candidate_passed else Delta.STILL_FAILING


def fails_gate(delta: Delta, strict: bool, allow_undecided: bool = False) -> bool:
    """Whether a pair with this delta makes the verdict ``fail``."""
    if delta == Delta.UNDECIDED:
        return not allow_undecided
    return delta in FAILING_DELTAS or (strict and delta == Delta.STILL_FAILING)


def count_deltas(deltas: Iterable[str]) -> dict[str, int]:
    counts = Counter(deltas)
    return {name: counts.get(name, 0) for name in ALL_DELTAS}


def verdict_reasons(
    counts: Mapping[str, int], strict: bool, what: str = "", allow_undecided: bool = False
) -> list[str]:
    """Why these counts fail the gate (``what`` names the items, e.g. ``"rollout "``)."""
    reasons = [
        f"{counts[d.value]} {what}{d.value}"
        for d in FAILING_DELTAS
        if counts.get(d.value) and fails_gate(d, strict, allow_undecided)
    ]
    if strict and counts.get(Delta.STILL_FAILING.value):
        reasons.append(f"{counts[Delta.STILL_FAILING.value]} {what}still_failing (--hgd-strict)")
    return reasons


def evidence_reasons(
    pair_counts: Mapping[str, int],
    rollout_counts: Mapping[str, int],
    strict: bool,
    allow_undecided: bool = False,
) -> list[str]:
    """Why the run's evidence (its pairs and its rollouts) fails the gate."""
    return [
        *verdict_reasons(pair_counts, strict, allow_undecided=allow_undecided),
        *verdict_reasons(rollout_counts, strict, "rollout "),
    ]


def verdict(reasons: Sequence[str]) -> str:
    """The gate's verdict: ``fail`` when anything fails it, else ``pass``. The one place a
    run's verdict is made; the ledger, the exit status and every report read its result."""
    return "fail" if reasons else "pass"


def tag_pass_rates(pairs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per tag: how many pairs, and the share of runs that passed under each prompt."""
    totals: dict[str, dict[str, list[int]]] = {}
    for pair in pairs:
        for tag in pair.get("tags", []):
            entry = totals.setdefault(tag, {"baseline": [0, 0], "candidate": [0, 0], "pairs": [0]})
            entry["pairs"][0] += 1
            for role in ("baseline", "candidate"):
                result = pair.get(role)
                if result:
                    entry[role][0] += result["passes"]
                    entry[role][1] += result["runs"]
    rates: dict[str, dict[str, Any]] = {}
    for tag, entry in sorted(totals.items()):
        rates[tag] = {"pairs": entry["pairs"][0]}
        for role in ("baseline", "candidate"):
            passes, runs = entry[role]
            rates[tag][f"{role}_pass_rate"] = round(passes / runs, 4) if runs else None
    return rates
