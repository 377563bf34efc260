"""Statistics for sampled gates: pass rates, exact tests and the corrected per-pair decision.

Pure and stdlib-only. The methods and the reasons for them are in ``docs/statistics.md``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import accumulate
from statistics import NormalDist
from typing import Literal

DEFAULT_ALPHA = 0.05
POOL_GROWTH = 1  # fresh baseline samples drawn for a close pair, in units of its K
MAX_POOL = 8  # a baseline pool grows to at most this many times K samples

_Margins = tuple[int, int, int]  # candidate runs, baseline runs, passes under both prompts
_Tail = Literal["less", "greater"]


@dataclass(frozen=True)
class PassCounts:
    """How often one pair passed under one prompt."""

    passes: int
    runs: int

    def __post_init__(self) -> None:
        if self.runs < 1 or not 0 <= self.passes <= self.runs:
            raise ValueError(
                f"pass counts need runs >= 1 and 0 <= passes <= runs, "
                f"got passes={self.passes}, runs={self.runs}"
            )

    @property
    def rate(self) -> float:
        """The pass rate, passes / runs."""
        return self.passes / self.runs

    @property
    def mostly_passes(self) -> bool:
        """True when the pair passed at least half its runs."""
        return 2 * self.passes >= self.runs


@dataclass(frozen=True)
class SampledDecision:
    """The delta of one pair, with the evidence behind it.

    ``p_regress`` / ``p_fix`` are None when the pair was not tested (no baseline, or the
    one-shot rule of an unsampled run). ``threshold`` / ``fix_threshold`` are the corrected
    levels the pair's p-values were held to: reject when ``p <= threshold``; 0.0 means no test
    in the family could reject. ``testable`` is False when no test could call the pair: it was
    not tested, or its run counts alone rule out significance at the family's alpha (one run
    a side: the smallest p-value is 1/2), so it is in the families at no cost and can only be
    ``kept`` or ``still_failing``. ``p_confirm`` is the p-value of the fresh baseline
    samples alone against the candidate's, when the pair drew some (``decide_pooled``).
    """

    delta: str
    p_regress: float | None
    p_fix: float | None
    threshold: float
    fix_threshold: float = 0.0
    testable: bool = True
    p_confirm: float | None = None


def wilson_interval(passes: int, runs: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a pass rate; (0.0, 1.0) when there are no runs."""
    if runs < 0 or not 0 <= passes <= runs:
        raise ValueError(f"need 0 <= passes <= runs, got passes={passes}, runs={runs}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if runs == 0:
        return (0.0, 1.0)
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    rate = passes / runs
    z2n = z * z / runs
    centre = (rate + z2n / 2.0) / (1.0 + z2n)
    half = z * math.sqrt(rate * (1.0 - rate) / runs + z2n / (4.0 * runs)) / (1.0 + z2n)
    low = 0.0 if passes == 0 else max(0.0, centre - half)
    high = 1.0 if passes == runs else min(1.0, centre + half)
    return (low, high)


@lru_cache(maxsize=4096)
def _tails(margins: _Margins) -> tuple[int, tuple[float, ...], tuple[float, ...]]:
    """Null distribution of the candidate's passes given the margins (hypergeometric).

    Returns the smallest possible count ``low`` and, for x = low, low + 1, ...,
    P(X <= x) and P(X >= x). Exact integer sums, one correctly rounded division each.
    """
    n_cand, n_base, passes = margins
    low = max(0, passes - n_base)
    high = min(n_cand, passes)
    weights = [math.comb(n_cand, x) * math.comb(n_base, passes - x) for x in range(low, high + 1)]
    total = math.comb(n_cand + n_base, passes)
    lower = tuple(w / total for w in accumulate(weights))
    upper = tuple(w / total for w in accumulate(reversed(weights)))[::-1]
    return low, lower, upper


def _margins(cand: PassCounts, base: PassCounts) -> _Margins:
    return (cand.runs, base.runs, cand.passes + base.passes)


def fisher_one_sided_less(cand: PassCounts, base: PassCounts) -> float:
    """Fisher's exact p-value for "the candidate passes this pair less often than the baseline"."""
    low, lower, _ = _tails(_margins(cand, base))
    return lower[cand.passes - low]


def fisher_one_sided_greater(cand: PassCounts, base: PassCounts) -> float:
    """Fisher's exact p-value for "the candidate passes this pair more often than the baseline"."""
    low, _, upper = _tails(_margins(cand, base))
    return upper[cand.passes - low]


def min_attainable_p(cand: PassCounts, base: PassCounts) -> float:
    """Smallest p-value ``fisher_one_sided_less`` can give with these margins.

    For the fix direction use ``min_attainable_p(base, cand)``.
    """
    return _tails(_margins(cand, base))[1][0]


def _attainable(margins: _Margins, tail: _Tail) -> tuple[float, ...]:
    """Every p-value the test can give with these margins, ascending."""
    _, lower, upper = _tails(margins)
    return lower if tail == "less" else upper[::-1]


def _family_level(family: Counter[_Margins], alpha: float, tail: _Tail) -> float:
    """Largest attainable p-value c with sum over the family of P0(p <= c) <= alpha.

    P0(p <= c) of one test is the largest attainable p-value not above c, so a test whose
    margins cannot reach c costs nothing (Tarone's observation, here with exact sizes).
    Returns 0.0 when no test can reject.
    """
    levels = sorted({p for m in family for p in _attainable(m, tail) if p <= alpha})
    level = 0.0
    for candidate in levels:
        spent = math.fsum(
            count * _size(margins, candidate, tail) for margins, count in family.items()
        )
        if spent > alpha:
            break
        level = candidate
    return level


def _size(margins: _Margins, level: float, tail: _Tail) -> float:
    """P0(p <= level) for one test: the largest attainable p-value not above ``level``."""
    size = 0.0
    for p in _attainable(margins, tail):
        if p > level:
            break
        size = p
    return size


def _step_down(
    tests: Sequence[tuple[_Margins, float]], alpha: float, tail: _Tail
) -> tuple[list[bool], list[float]]:
    """Discrete Holm: reject at the family level, drop the rejected, recompute, repeat."""
    rejected = [False] * len(tests)
    levels = [0.0] * len(tests)
    open_tests = set(range(len(tests)))
    family: Counter[_Margins] = Counter(m for m, _ in tests)
    while True:
        level = _family_level(family, alpha, tail)
        for i in open_tests:
            levels[i] = level
        newly = [i for i in open_tests if tests[i][1] <= level]
        if not newly:
            return rejected, levels
        for i in newly:
            rejected[i] = True
            open_tests.discard(i)
            family[tests[i][0]] -= 1
        family = +family  # drop margins with no test left


def testable(base: PassCounts, cand: PassCounts, alpha: float = DEFAULT_ALPHA) -> bool:
    """True when these run counts allow a p-value <= ``alpha`` in either direction.

    The smallest p-value over all margins is 1 / C(runs under both prompts, candidate runs)
    (all baseline runs pass and no candidate run does, or the reverse): 1/2 at one run a side.
    """
    return math.comb(base.runs + cand.runs, cand.runs) * alpha >= 1.0


def _one_shot(base: PassCounts, cand: PassCounts) -> str:
    """The core gate's rule for a single run under each prompt."""
    if base.passes:
        return "kept" if cand.passes else "regressed"
    return "fixed" if cand.passes else "still_failing"


def decide(
    pairs: Sequence[tuple[PassCounts | None, PassCounts]],
    alpha: float = DEFAULT_ALPHA,
    *,
    one_shot: bool | None = None,
) -> list[SampledDecision]:
    # long: the algorithm of docs/statistics.md in one place, step by step
    """Delta of every pair from (baseline counts or None, candidate counts).

    ``alpha`` is the family-wise error rate of each family (regressions, fixes) over *these*
    pairs; under xdist pass the batch's share. Every pair with a baseline is in both families,
    so the bound covers the whole run; a pair with one run a side is in them at no cost and
    can never be significant (``testable`` False). ``one_shot=True`` instead takes pairs with
    one run a side out of the families and gives them the core gate's one-shot table: that is
    the unsampled gate, and the default when *every* pair has one run a side (None). No
    baseline gives ``new_pass`` when the candidate passes at least half its runs, else
    ``new_fail``.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if one_shot is None:
        one_shot = all(c.runs == 1 and (b is None or b.runs == 1) for b, c in pairs)
    tested = [
        (i, base, cand)
        for i, (base, cand) in enumerate(pairs)
        if base is not None and not (one_shot and base.runs == 1 and cand.runs == 1)
    ]
    regress_tests = [(_margins(c, b), fisher_one_sided_less(c, b)) for _, b, c in tested]
    fix_tests = [(_margins(c, b), fisher_one_sided_greater(c, b)) for _, b, c in tested]
    regressed, regress_levels = _step_down(regress_tests, alpha, "less")
    fixed, fix_levels = _step_down(fix_tests, alpha, "greater")
    family: Counter[_Margins] = Counter(m for m, _ in regress_tests)
    untested_levels = (
        _family_level(family, alpha, "less"),
        _family_level(family, alpha, "greater"),
    )

    decisions: dict[int, SampledDecision] = {}
    for j, (i, base, cand) in enumerate(tested):
        if regressed[j]:
            delta = "regressed"
        elif fixed[j]:
            delta = "fixed"
        elif not base.mostly_passes and not cand.mostly_passes:
            delta = "still_failing"
        else:
            delta = "kept"
        decisions[i] = SampledDecision(
            delta,
            regress_tests[j][1],
            fix_tests[j][1],
            regress_levels[j],
            fix_levels[j],
            testable(base, cand, alpha),
        )
    for i, (maybe_base, cand) in enumerate(pairs):
        if i in decisions:
            continue
        if maybe_base is None:
            delta = "new_pass" if cand.mostly_passes else "new_fail"
        else:
            delta = _one_shot(maybe_base, cand)
        decisions[i] = SampledDecision(delta, None, None, *untested_levels, testable=False)
    return [decisions[i] for i in range(len(pairs))]


def close(decision: SampledDecision, alpha: float = DEFAULT_ALPHA) -> bool:
    """A decision to confirm with fresh baseline samples: the pair is testable and its
    ``p_regress`` is at most ``alpha``, the uncorrected level (so every pair the family calls
    ``regressed`` is close: the corrected level is never above ``alpha``)."""
    return decision.testable and decision.p_regress is not None and decision.p_regress <= alpha


Counts = tuple[PassCounts | None, PassCounts]


def decide_pooled(
    first: Sequence[Counts],
    pooled: Sequence[Counts],
    fresh: Sequence[PassCounts | None],
    alpha: float = DEFAULT_ALPHA,
) -> list[SampledDecision]:
    """Deltas of a sampled run in which close pairs drew fresh baseline samples.

    ``first``: every pair's counts with its baseline pool as the run found it (the cached
    samples and those drawn for this run's K). ``fresh``: per pair, the counts of the fresh
    baseline samples drawn after that first look, or None. ``pooled``: ``first`` with the
    fresh samples added to the baseline (the same candidate counts).

    Three looks, each one family at ``alpha`` (``decide(..., one_shot=False)``): the first
    look; the pooled look; and the confirmation, the fresh samples alone against the
    candidate's, over the pairs that drew some. A pair is ``regressed`` only when the first
    and pooled looks call it so and, where it drew fresh samples, the confirmation does too;
    ``fixed`` only when the first and pooled looks do. So the regressions are some of the
    first look's, and its bound (FWER <= alpha given its margins) holds for the result.
    P-values and levels are the pooled look's (they match the counts reported); ``p_confirm``
    is the confirmation's p-value. A pair not called by every look is ``kept`` (or
    ``still_failing``), its pooled p-value possibly under its level.
    """
    if not len(first) == len(pooled) == len(fresh):
        raise ValueError(
            f"first, pooled and fresh differ in length: {len(first)}, {len(pooled)}, {len(fresh)}"
        )
    confirming = [i for i, counts in enumerate(fresh) if counts is not None]
    confirmation = decide([(fresh[i], first[i][1]) for i in confirming], alpha, one_shot=False)
    confirmed = dict(zip(confirming, confirmation, strict=True))
    looks = zip(
        decide(first, alpha, one_shot=False),
        decide(pooled, alpha, one_shot=False),
        pooled,
        strict=True,
    )
    decisions = []
    for i, (before, after, (base, cand)) in enumerate(looks):
        check = confirmed.get(i)
        p_confirm = None if check is None else check.p_regress
        agreed = before.delta == after.delta
        if after.delta == "regressed" and check is not None:
            agreed = agreed and check.delta == "regressed"
        if base is not None and after.delta in {"regressed", "fixed"} and not agreed:
            both_fail = not base.mostly_passes and not cand.mostly_passes
            after = replace(after, delta="still_failing" if both_fail else "kept")
        decisions.append(replace(after, p_confirm=p_confirm))
    return decisions


def split_alpha(alpha: float, workers: int) -> float:
    """Each worker's share of the error budget when ``workers`` decide disjoint pairs."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    return alpha / workers


def sign_test(improved: int, worsened: int) -> float:
    """Exact one-sided p-value that the candidate is worse: P(Bin(n, 1/2) >= worsened).

    n = improved + worsened, the pairs whose result changed; 1.0 when none did.
    """
    if improved < 0 or worsened < 0:
        raise ValueError(f"counts must be >= 0, got improved={improved}, worsened={worsened}")
    changed = improved + worsened
    if changed == 0:
        return 1.0
    return sum(math.comb(changed, j) for j in range(worsened, changed + 1)) / (1 << changed)


def suite_comparison(
    pairs: Sequence[tuple[PassCounts | None, PassCounts]],
) -> dict[str, int | float]:
    """Paired sign test over the suite: pairs with a higher vs lower candidate pass rate."""
    improved = worsened = unchanged = 0
    for base, cand in pairs:
        if base is None:
            continue
        # Compare passes/runs exactly, without float rounding.
        order = cand.passes * base.runs - base.passes * cand.runs
        if order > 0:
            improved += 1
        elif order < 0:
            worsened += 1
        else:
            unchanged += 1
    return {
        "improved": improved,
        "worsened": worsened,
        "unchanged": unchanged,
        "p_value": sign_test(improved, worsened),
    }


def flaky(base: PassCounts | None) -> bool:
    """A pair is flaky when its baseline pass rate is strictly between 0 and 1."""
    return base is not None and 0 < base.passes < base.runs
