"""Every pair's delta, a pure function of the run's counts and alpha.

One definition of the per-pair decision, whoever calls it: the evaluator while items run
(for their pytest outcomes), `core.decision.decide_run` over a whole run's evidence (the
verdict, the reports and the ledger read that one), and so the xdist controller and a merge
of CI shards, which hold every pair's counts. Whether a close pair draws fresh baseline
samples to confirm is a per-pair fact (`draws_confirmation`), so it does not depend on how
the pairs were split between workers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_hgd.core import gate, stats
from pytest_hgd.core.screen import Design
from pytest_hgd.core.stats import PassCounts, SampledDecision, Screened

Payload = Mapping[str, Any]
DECIDED = ("delta", "p_value", "p_fix", "testable", "p_confirm", "flaky")  # not evidence


@dataclass(frozen=True)
class PairCounts:
    """One pair's runs: the candidate's, and the baseline's pool (None: no baseline) of
    which ``confirm`` are the fresh samples drawn to confirm a close pair; ``screen``: a
    screened pair's design and screen passes (``--hgd-samples=auto``, ``core.screen``)."""

    candidate: PassCounts
    baseline: PassCounts | None = None
    confirm: PassCounts | None = None
    screen: Screened | None = None

    @property
    def first_look(self) -> PassCounts | None:
        """The baseline pool before the confirming samples were drawn."""
        if self.baseline is None or self.confirm is None:
            return self.baseline
        return PassCounts(
            self.baseline.passes - self.confirm.passes, self.baseline.runs - self.confirm.runs
        )


@dataclass(frozen=True)
class PairDecision:
    """A pair's delta; ``sampled`` holds its tests when the run was sampled."""

    delta: str
    sampled: SampledDecision | None = None


def draws_confirmation(counts: PairCounts, alpha: float) -> bool:
    """A close pair (``stats.close``: testable, one-sided p-value at most ``alpha``,
    uncorrected) draws fresh baseline samples to confirm: a per-pair rule."""
    base = counts.first_look
    if base is None:
        return False
    screens = None if counts.screen is None else [counts.screen]
    (alone,) = stats.decide([(base, counts.candidate)], alpha, one_shot=False, screens=screens)
    return stats.close(alone, alpha)


def decide_counts(
    pairs: Sequence[PairCounts], alpha: float, *, sampled: bool
) -> list[PairDecision]:
    """Each pair's decision. Unsampled: the one-shot table (`gate.one_shot_delta`).
    Sampled: one corrected family over these pairs (`stats.decide_pooled`:
    docs/statistics.md)."""
    if not sampled:
        return [
            PairDecision(
                gate.one_shot_delta(
                    None if p.baseline is None else p.baseline.passes == p.baseline.runs,
                    p.candidate.passes == p.candidate.runs,
                ).value
            )
            for p in pairs
        ]
    first = [(p.first_look, p.candidate) for p in pairs]
    pooled = [(p.baseline, p.candidate) for p in pairs]
    fresh = [p.confirm for p in pairs]
    decided = stats.decide_pooled(first, pooled, fresh, alpha, [p.screen for p in pairs])
    return [PairDecision(d.delta, d) for d in decided]


def sampled_run(pairs: Sequence[Payload]) -> bool:
    """A run is sampled when any of its pairs asked for more than one sample (``samples``
    in its payload; evidence without it: more than one run on a side)."""
    return any(_samples(p) > 1 for p in pairs)


def decide_pairs(pairs: Sequence[Payload], alpha: float) -> list[dict[str, Any]]:
    """Each pair's payload with its decided fields (``DECIDED``) made again from its counts,
    whatever the payload said: pairs with an agent error are ``error``, and pairs the call
    budget left without their samples (``undecided`` in the payload: why) are
    ``undecided``; both are out of the families."""
    counted = [
        (i, _counts(p))
        for i, p in enumerate(pairs)
        if not p.get("error") and not p.get("undecided")
    ]
    counted_pairs = [(i, c) for i, c in counted if c is not None]
    sampled = sampled_run(pairs)
    decisions = decide_counts([c for _, c in counted_pairs], alpha, sampled=sampled)
    fields: dict[int, dict[str, Any]] = {
        i: _fields(decision, counts)
        for (i, counts), decision in zip(counted_pairs, decisions, strict=True)
    }
    return [
        {
            **{k: v for k, v in pair.items() if k not in DECIDED},
            **fields.get(i, {"delta": "undecided" if pair.get("undecided") else "error"}),
        }
        for i, pair in enumerate(pairs)
    ]


def _fields(decision: PairDecision, counts: PairCounts) -> dict[str, Any]:
    fields: dict[str, Any] = {"delta": decision.delta}
    sampled = decision.sampled
    if sampled is not None:
        fields.update(p_value=sampled.p_regress, p_fix=sampled.p_fix, testable=sampled.testable)
        if sampled.p_confirm is not None:
            fields["p_confirm"] = sampled.p_confirm
    if counts.baseline is not None and counts.baseline.runs > 1:
        fields["flaky"] = stats.flaky(counts.baseline)
    return fields


def _samples(pair: Payload) -> int:
    samples = pair.get("samples")
    if isinstance(samples, int):
        return samples
    return max((pair[r]["runs"] for r in ("baseline", "candidate") if pair.get(r)), default=1)


def _counts(pair: Payload) -> PairCounts | None:
    candidate = pair.get("candidate")
    if not candidate:
        return None
    baseline = pair.get("baseline")
    confirm = baseline.get("confirm") if baseline else None
    screen = pair.get("screen")
    return PairCounts(
        PassCounts(candidate["passes"], candidate["runs"]),
        PassCounts(baseline["passes"], baseline["runs"]) if baseline else None,
        PassCounts(*confirm) if confirm else None,
        None
        if not screen
        else (Design(*screen["design"]), screen["candidate"], screen["baseline"]),
    )


def screen_payload(screen: Screened) -> dict[str, Any]:
    """A screened pair's design and screen passes, as its payload's ``screen``."""
    design, candidate, baseline = screen
    return {
        "design": [
            design.screen_candidate,
            design.more_candidate,
            design.screen_baseline,
            design.more_baseline,
        ],
        "candidate": candidate,
        "baseline": baseline,
        "went_on": design.goes_on(candidate, baseline),
    }
