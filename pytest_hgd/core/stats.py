"""Statistics for sampled gates: pass rates, exact tests and the corrected per-pair decision.

Pure and stdlib-only. The methods and the reasons for them are in ``docs/statistics.md``.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import accumulate
from statistics import NormalDist
from typing import Literal

from pytest_hgd.core.screen import Design, ScreenKey, screened_tails

DEFAULT_ALPHA = 0.05
POOL_GROWTH = 1  # fresh baseline samples drawn for a close pair, in units of its K
MAX_POOL = 8  # a baseline pool grows to at most this many times K samples

_Margins = tuple[int, int, int]  # candidate runs, baseline runs, passes under both prompts
_Key = _Margins | ScreenKey  # a test's null distribution: plain, or screened (core.screen)
_Tail = Literal["less", "greater"]
Screened = tuple[Design, int, int]  # a pair's design, candidate and baseline screen passes


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


def _tails_of(key: _Key) -> tuple[int, tuple[float, ...], tuple[float, ...]]:
    if len(key) == 6:
        return screened_tails(key)
    return _tails(key)


def _attainable(key: _Key, tail: _Tail) -> tuple[float, ...]:
    """Every p-value the test can give with these margins, ascending."""
    _, lower, upper = _tails_of(key)
    return lower if tail == "less" else upper[::-1]


def _p_value(key: _Key, candidate_passes: int, tail: _Tail) -> float:
    low, lower, upper = _tails_of(key)
    return (lower if tail == "less" else upper)[candidate_passes - low]


@lru_cache(maxsize=1024)
def _design_testable(design: Design, alpha: float) -> bool:
    """True when some outcome of a pair that went on is significant at ``alpha``."""
    for passes in range(sum(vars(design).values()) + 1):
        try:
            _, lower, upper = screened_tails(design.key(passes))
        except ValueError:  # no outcome with these passes goes on
            continue
        if min(lower[0], upper[-1]) <= alpha:
            return True
    return False


def _family_level(family: Counter[_Key], alpha: float, tail: _Tail) -> float:
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


def _size(margins: _Key, level: float, tail: _Tail) -> float:
    """P0(p <= level) for one test: the largest attainable p-value not above ``level``."""
    attainable = _attainable(margins, tail)
    below = bisect_right(attainable, level)
    return attainable[below - 1] if below else 0.0


def _step_down(
    tests: Sequence[tuple[_Key, float]], alpha: float, tail: _Tail
) -> tuple[list[bool], list[float]]:
    """Discrete Holm: reject at the family level, drop the rejected, recompute, repeat."""
    rejected = [False] * len(tests)
    levels = [0.0] * len(tests)
    open_tests = set(range(len(tests)))
    family: Counter[_Key] = Counter(m for m, _ in tests)
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
    screens: Sequence[Screened | None] | None = None,
) -> list[SampledDecision]:
    # long: the algorithm of docs/statistics.md in one place, step by step
    """Delta of every pair from (baseline counts or None, candidate counts).

    ``alpha`` is the family-wise error rate of each family (regressions, fixes) over *these*
    pairs. Every pair with a baseline is in both families, so the bound covers the whole run;
    a pair with one run a side is in them at no cost and can never be significant
    (``testable`` False). ``one_shot=True`` instead takes pairs with one run a side out of the
    families and gives them the core gate's one-shot table: that is the unsampled gate, and
    the default when *every* pair has one run a side (None). No baseline gives ``new_pass``
    when the candidate passes at least half its runs, else ``new_fail``.

    ``screens`` gives, per pair, its screened design (``core.screen``) and screen passes, or
    None for a pair of fixed K. A screened pair that stopped at its screen is not tested (it
    is ``kept``, or ``new_pass``); one that went on is tested with the screened design's
    conditional null distribution, in the same families.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if one_shot is None:
        one_shot = all(c.runs == 1 and (b is None or b.runs == 1) for b, c in pairs)
    screened = list(screens) if screens is not None else [None] * len(pairs)
    tested = [
        (i, base, cand, _key(base, cand, screened[i], alpha))
        for i, (base, cand) in enumerate(pairs)
        if base is not None
        and not (one_shot and base.runs == 1 and cand.runs == 1)
        and (screened[i] is None or _went_on(screened[i]))
    ]
    regress_tests = [(key, _p_value(key, c.passes, "less")) for _, _, c, (key, _) in tested]
    fix_tests = [(key, _p_value(key, c.passes, "greater")) for _, _, c, (key, _) in tested]
    regressed, regress_levels = _step_down(regress_tests, alpha, "less")
    fixed, fix_levels = _step_down(fix_tests, alpha, "greater")
    family: Counter[_Key] = Counter(m for m, _ in regress_tests)
    untested_levels = (
        _family_level(family, alpha, "less"),
        _family_level(family, alpha, "greater"),
    )

    decisions: dict[int, SampledDecision] = {}
    for j, (i, base, cand, (_, can_reject)) in enumerate(tested):
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
            can_reject,
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


def _went_on(screen: Screened | None) -> bool:
    return screen is None or screen[0].goes_on(screen[1], screen[2])


def _key(
    base: PassCounts, cand: PassCounts, screen: Screened | None, alpha: float
) -> tuple[_Key, bool]:
    """The pair's test (its null distribution's key) and whether it can reject at all."""
    if screen is None:
        return _margins(cand, base), testable(base, cand, alpha)
    design = screen[0]
    runs = (design.screen_candidate + design.more_candidate, design.screen_baseline)
    if (cand.runs, base.runs - design.more_baseline) != runs:
        raise ValueError(f"counts {cand}, {base} do not fit the screened design {design}")
    return design.key(cand.passes + base.passes), _design_testable(design, alpha)


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
    screens: Sequence[Screened | None] | None = None,
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

    ``screens`` (``decide``'s): screened pairs' first look is their conditional test; in the
    pooled look the fresh samples are baseline samples drawn after the screen.
    """
    if not len(first) == len(pooled) == len(fresh):
        raise ValueError(
            f"first, pooled and fresh differ in length: {len(first)}, {len(pooled)}, {len(fresh)}"
        )
    confirming = [i for i, counts in enumerate(fresh) if counts is not None]
    confirmation = decide([(fresh[i], first[i][1]) for i in confirming], alpha, one_shot=False)
    confirmed = dict(zip(confirming, confirmation, strict=True))
    screened = list(screens) if screens is not None else [None] * len(first)
    grown = [_grown(screen, counts) for screen, counts in zip(screened, fresh, strict=True)]
    looks = zip(
        decide(first, alpha, one_shot=False, screens=screened),
        decide(pooled, alpha, one_shot=False, screens=grown),
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


def _grown(screen: Screened | None, fresh: PassCounts | None) -> Screened | None:
    """A screened pair's design once ``fresh`` baseline samples joined its pool."""
    if screen is None or fresh is None:
        return screen
    design, candidate, baseline = screen
    more = design.more_baseline + fresh.runs
    return (replace(design, more_baseline=more), candidate, baseline)


def flaky(base: PassCounts | None) -> bool:
    """A pair is flaky when its baseline pass rate is strictly between 0 and 1."""
    return base is not None and 0 < base.passes < base.runs
