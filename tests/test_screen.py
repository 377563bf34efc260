"""The screened design of ``--hgd-samples=auto`` (`core.screen`): its conditional test is
exact, whatever the pass rate, and a better candidate only makes it more conservative."""

from __future__ import annotations

import math
from itertools import pairwise, product

import pytest

from pytest_hgd.core.screen import Design, design_for, screened_tails
from pytest_hgd.core.stats import PassCounts, decide

WARM = Design(2, 8, 10, 0)  # 10 cached baseline samples
COLD = Design(2, 8, 2, 8)


def binomial(runs: int, passes: int, rate: float) -> float:
    return math.comb(runs, passes) * rate**passes * (1 - rate) ** (runs - passes)


def false_block_chance(design: Design, base: float, cand: float, level: float) -> float:
    """P(the pair goes on and its p_regress <= level), summed exactly over every outcome."""
    chance = 0.0
    sizes = (design.screen_candidate, design.more_candidate)
    base_sizes = (design.screen_baseline, design.more_baseline)
    for s_c, r_c, s_b, r_b in product(*(range(n + 1) for n in (*sizes, *base_sizes))):
        if not design.goes_on(s_c, s_b):
            continue
        low, lower, _ = screened_tails(design.key(s_c + r_c + s_b + r_b))
        if lower[s_c + r_c - low] <= level:
            chance += (
                binomial(sizes[0], s_c, cand)
                * binomial(sizes[1], r_c, cand)
                * binomial(base_sizes[0], s_b, base)
                * binomial(base_sizes[1], r_b, base)
            )
    return chance


@pytest.mark.parametrize("design", [WARM, COLD], ids=["warm", "cold"])
@pytest.mark.parametrize("rate", [0.3, 0.5, 0.8, 0.97])
@pytest.mark.parametrize("level", [0.001, 0.01, 0.05])
def test_the_conditional_test_never_rejects_a_no_op_more_often_than_its_level(
    design: Design, rate: float, level: float
) -> None:
    assert false_block_chance(design, rate, rate, level) <= level + 1e-12
    # a candidate that passes more often is rejected even less often
    better = min(1.0, rate + 0.1)
    assert false_block_chance(design, rate, better, level) <= level + 1e-12


def test_the_test_has_power_where_the_drop_is_real() -> None:
    """.95 -> .30 at level .05: fixed K = 10 rejects 91.3 % of the time; the screen stops
    the pair 9 % of the time (it passed both screen samples) and the test is conditional."""
    assert 0.82 < false_block_chance(WARM, 0.95, 0.30, 0.05) < 0.913
    assert 0.75 < false_block_chance(COLD, 0.95, 0.30, 0.05) < 0.913


def test_the_distribution_is_a_distribution() -> None:
    for total in range(21):
        try:
            _, lower, upper = screened_tails(WARM.key(total))
        except ValueError:
            continue
        assert lower[-1] == pytest.approx(1.0) and upper[0] == pytest.approx(1.0)
        assert all(a <= b for a, b in pairwise(lower))
    with pytest.raises(ValueError, match="goes on"):
        screened_tails(Design(2, 0, 2, 0).key(4))  # all passed: that pair stopped


def test_designs_follow_the_cache() -> None:
    assert design_for(10, 10) == WARM and design_for(10, 0) == COLD
    assert design_for(10, 4) == Design(2, 8, 4, 6)  # four cached: two fewer to draw
    assert design_for(10, 30) == Design(2, 8, 30, 0)  # a pool: its whole screen
    assert design_for(10, None) == Design(2, 8, 0, 0)  # no baseline prompt
    assert design_for(1, 0) == Design(1, 0, 1, 0)
    assert WARM.goes_on(1, 10) and WARM.goes_on(2, 4) and not WARM.goes_on(2, 5)
    with pytest.raises(ValueError, match="candidate screen"):
        Design(0, 8, 2, 8)


def test_decide_stops_screened_pairs_and_tests_the_rest_in_one_family() -> None:
    pairs = [
        (PassCounts(10, 10), PassCounts(2, 2)),  # stopped at the screen
        (PassCounts(10, 10), PassCounts(2, 10)),  # went on, dropped
        (PassCounts(9, 10), PassCounts(9, 10)),  # went on (failed one screen sample)
    ]
    screens = [(WARM, 2, 10), (WARM, 0, 10), (WARM, 1, 9)]
    stopped, dropped, flat = decide(pairs, 0.05, one_shot=False, screens=screens)
    assert (stopped.delta, stopped.p_regress, stopped.testable) == ("kept", None, False)
    assert dropped.delta == "regressed" and dropped.p_regress is not None
    assert dropped.p_regress < 0.001 and dropped.testable
    assert flat.delta == "kept" and flat.p_regress is not None and flat.p_regress > 0.5
    plain = decide(pairs[1:], 0.05, one_shot=False)[0]
    assert plain.p_regress is not None and dropped.p_regress >= plain.p_regress  # the price
    with pytest.raises(ValueError, match="do not fit"):
        decide([(PassCounts(10, 10), PassCounts(2, 5))], 0.05, screens=[(WARM, 0, 10)])
