"""Unit and property tests of the sampled-gate statistics."""

from __future__ import annotations

import json
import math
import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_hgd.core.stats import (
    PassCounts,
    decide,
    fisher_one_sided_greater,
    fisher_one_sided_less,
    flaky,
    min_attainable_p,
    wilson_interval,
)
from pytest_hgd.core.suite_test import sign_test, suite_comparison


@st.composite
def counts(draw: st.DrawFn, max_runs: int = 25) -> PassCounts:
    runs = draw(st.integers(1, max_runs))
    return PassCounts(draw(st.integers(0, runs)), runs)


def _sampled(rng: random.Random, rate: float, runs: int) -> PassCounts:
    return PassCounts(sum(rng.random() < rate for _ in range(runs)), runs)


# --- pass counts and intervals ---------------------------------------------------------------


@pytest.mark.parametrize(("passes", "runs"), [(-1, 3), (4, 3), (0, 0)])
def test_pass_counts_rejects_impossible_counts(passes: int, runs: int) -> None:
    with pytest.raises(ValueError, match="passes"):
        PassCounts(passes, runs)


def test_pass_counts_rate() -> None:
    assert PassCounts(3, 4).rate == 0.75
    assert PassCounts(2, 4).mostly_passes
    assert not PassCounts(1, 3).mostly_passes


@pytest.mark.parametrize(
    ("passes", "runs", "expected"),
    [
        # Newcombe (1998), Statist. Med. 17:857, Table I, method 3 (score, no continuity
        # correction), to four places.
        (81, 263, (0.2553, 0.3662)),
        (15, 148, (0.0624, 0.1605)),
        (0, 20, (0.0, 0.1611)),
        (1, 29, (0.0061, 0.1718)),
        (29, 29, (0.8830, 1.0)),
        (5, 10, (0.2366, 0.7634)),
    ],
)
def test_wilson_known_values(passes: int, runs: int, expected: tuple[float, float]) -> None:
    low, high = wilson_interval(passes, runs)
    assert low == pytest.approx(expected[0], abs=5e-5)
    assert high == pytest.approx(expected[1], abs=5e-5)


def test_wilson_no_runs_and_bad_input() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)
    with pytest.raises(ValueError):
        wilson_interval(1, 2, confidence=1.0)


@given(counts(max_runs=200), st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_wilson_contains_rate_and_narrows_with_confidence(c: PassCounts, conf: float) -> None:
    low, high = wilson_interval(c.passes, c.runs, conf)
    assert 0.0 <= low <= c.rate <= high <= 1.0
    wide_low, wide_high = wilson_interval(c.passes, c.runs, 0.999)
    assert wide_low <= low and high <= wide_high


# --- Fisher's exact test ---------------------------------------------------------------------

# (cand passes, cand runs, base passes, base runs, P less, P greater), from scipy.stats.fisher_exact
KNOWN_FISHER = [
    (0, 5, 5, 5, 1 / 252, 1.0),
    (1, 5, 5, 5, 5 / 210, 1.0),
    (4, 5, 1, 5, 251 / 252, 26 / 252),
    (3, 10, 9, 10, 0.009883305548940223, 0.9996427720885925),
    (7, 12, 2, 9, 0.9840948525159051, 0.11290783519885686),
    (12, 20, 18, 20, 0.03241658080367758, 0.9958191329159071),
]


@pytest.mark.parametrize(("cp", "cr", "bp", "br", "less", "greater"), KNOWN_FISHER)
def test_fisher_known_values(
    cp: int, cr: int, bp: int, br: int, less: float, greater: float
) -> None:
    cand, base = PassCounts(cp, cr), PassCounts(bp, br)
    assert fisher_one_sided_less(cand, base) == pytest.approx(less, rel=1e-12)
    assert fisher_one_sided_greater(cand, base) == pytest.approx(greater, rel=1e-12)


try:
    import scipy.stats as scipy_stats
except ImportError:  # scipy is only a cross-check
    scipy_stats = None
needs_scipy = pytest.mark.skipif(scipy_stats is None, reason="scipy not installed")


@needs_scipy
@settings(deadline=None)
@given(counts(), counts())
def test_fisher_matches_scipy(cand: PassCounts, base: PassCounts) -> None:
    table = [[cand.passes, cand.runs - cand.passes], [base.passes, base.runs - base.passes]]
    less = scipy_stats.fisher_exact(table, alternative="less").pvalue
    greater = scipy_stats.fisher_exact(table, alternative="greater").pvalue
    assert fisher_one_sided_less(cand, base) == pytest.approx(less, rel=1e-9, abs=1e-15)
    assert fisher_one_sided_greater(cand, base) == pytest.approx(greater, rel=1e-9, abs=1e-15)


@given(counts(max_runs=60), counts(max_runs=60))
def test_p_values_are_probabilities(cand: PassCounts, base: PassCounts) -> None:
    less = fisher_one_sided_less(cand, base)
    greater = fisher_one_sided_greater(cand, base)
    assert 0.0 < less <= 1.0
    assert 0.0 < greater <= 1.0
    assert less + greater >= 1.0 - 1e-12  # the observed table is in both tails
    assert min_attainable_p(cand, base) <= less


@given(counts(), counts())
def test_more_candidate_passes_never_raise_p_regress(cand: PassCounts, base: PassCounts) -> None:
    if cand.passes < cand.runs:
        better = PassCounts(cand.passes + 1, cand.runs)
        assert fisher_one_sided_less(better, base) >= fisher_one_sided_less(cand, base)
        assert fisher_one_sided_greater(better, base) <= fisher_one_sided_greater(cand, base)


def test_min_attainable_p() -> None:
    # 5 vs 5 runs, 5 passes in all: the extreme table is candidate 0/5, baseline 5/5.
    assert min_attainable_p(PassCounts(2, 5), PassCounts(3, 5)) == pytest.approx(1 / 252)
    assert min_attainable_p(PassCounts(10, 10), PassCounts(10, 10)) == 1.0
    assert min_attainable_p(PassCounts(5, 10), PassCounts(5, 10)) == pytest.approx(
        1 / math.comb(20, 10)
    )


# --- decide -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_passed", "cand_passed", "delta"),
    [(True, False, "regressed"), (False, True, "fixed"), (True, True, "kept"),
     (False, False, "still_failing")],
)  # fmt: skip
def test_one_run_each_side_is_the_one_shot_gate(
    base_passed: bool, cand_passed: bool, delta: str
) -> None:
    pair = (PassCounts(int(base_passed), 1), PassCounts(int(cand_passed), 1))
    (decision,) = decide([pair])
    assert decision.delta == delta
    assert decision.p_regress is None and decision.p_fix is None


def test_one_shot_pairs_beside_sampled_pairs_are_in_the_family() -> None:
    """In a sampled run a pair with one run a side is tested like the others; its smallest
    p-value is 1/2, so it is never significant: `kept` (or `still_failing`), not the one-shot
    rule (that rule outside the family broke the bound: issue 18, item 7)."""
    rng = random.Random(3)
    sampled = [(_sampled(rng, 0.5, 5), _sampled(rng, 0.5, 5)) for _ in range(50)]
    one_shot = [
        (PassCounts(1, 1), PassCounts(0, 1)),
        (PassCounts(0, 1), PassCounts(1, 1)),
        (PassCounts(0, 1), PassCounts(0, 1)),
    ]
    decisions = decide(one_shot + sampled)[:3]
    assert [d.delta for d in decisions] == ["kept", "kept", "still_failing"]
    assert [d.p_regress for d in decisions] == [0.5, 1.0, 1.0]
    assert not any(d.testable for d in decisions)
    outside = decide(one_shot + sampled, one_shot=True)[:3]
    assert [d.delta for d in outside] == ["regressed", "fixed", "still_failing"]


@pytest.mark.parametrize(
    ("cand", "delta"), [(PassCounts(3, 6), "new_pass"), (PassCounts(2, 6), "new_fail")]
)
def test_no_baseline(cand: PassCounts, delta: str) -> None:
    (decision,) = decide([(None, cand)])
    assert (decision.delta, decision.p_regress, decision.p_fix) == (delta, None, None)


def test_clear_drop_regresses_and_clear_rise_fixes() -> None:
    decisions = decide(
        [
            (PassCounts(10, 10), PassCounts(0, 10)),
            (PassCounts(0, 10), PassCounts(10, 10)),
            (PassCounts(10, 10), PassCounts(9, 10)),
            (PassCounts(1, 10), PassCounts(0, 10)),
            (PassCounts(6, 10), PassCounts(3, 10)),
        ]
    )
    assert [d.delta for d in decisions] == ["regressed", "fixed", "kept", "still_failing", "kept"]
    assert decisions[0].p_regress is not None
    assert decisions[0].p_regress <= decisions[0].threshold


def test_step_down_rejects_after_first_rejection() -> None:
    # Single step: sizes 1/252 + 2 * 5/210 > 0.05, so only the 0/5 pair can reject at first;
    # once it is out, 2 * 5/210 <= 0.05 and the two 1/5 pairs reject too.
    pairs = [
        (PassCounts(5, 5), PassCounts(0, 5)),
        (PassCounts(5, 5), PassCounts(1, 5)),
        (PassCounts(5, 5), PassCounts(1, 5)),
    ]
    decisions = decide(pairs)
    assert [d.delta for d in decisions] == ["regressed"] * 3
    assert decisions[0].threshold == pytest.approx(1 / 252)
    assert decisions[1].threshold == pytest.approx(5 / 210)


@given(st.lists(st.tuples(counts(12), counts(12)), max_size=30))
def test_identical_counts_never_regress(pairs: list[tuple[PassCounts, PassCounts]]) -> None:
    same = [(base, base) for base, _ in pairs]
    assert all(d.delta in {"kept", "still_failing"} for d in decide(same))


@given(st.lists(st.tuples(counts(12), counts(12)), min_size=1, max_size=30))
def test_decide_is_consistent(pairs: list[tuple[PassCounts, PassCounts]]) -> None:
    decisions = decide(pairs)
    assert len(decisions) == len(pairs)
    for (base, cand), d in zip(pairs, decisions, strict=True):
        if d.delta == "regressed":
            assert cand.rate < base.rate
        if d.delta == "fixed":
            assert cand.rate > base.rate
        if d.p_regress is not None:
            assert (d.p_regress <= d.threshold) == (d.delta == "regressed")
        assert 0.0 <= d.threshold <= 0.05


@given(st.lists(st.tuples(counts(12), counts(12)), min_size=1, max_size=30))
def test_family_level_never_spends_more_than_alpha(
    pairs: list[tuple[PassCounts, PassCounts]],
) -> None:
    """Sum over tested pairs of P0(p <= level) given their margins stays within alpha."""
    alpha = 0.05
    tested = [(b, c) for b, c in pairs if not (b.runs == 1 and c.runs == 1)]
    decisions = decide(tested, alpha)
    level = min((d.threshold for d in decisions), default=0.0)  # the first step's level
    spent = 0.0
    for base, cand in tested:
        total = base.passes + cand.passes
        attainable = [
            fisher_one_sided_less(PassCounts(x, cand.runs), PassCounts(total - x, base.runs))
            for x in range(max(0, total - base.runs), min(cand.runs, total) + 1)
        ]
        spent += max((p for p in attainable if p <= level), default=0.0)
    assert spent <= alpha + 1e-12


@given(
    st.lists(st.tuples(counts(10), counts(10)), min_size=1, max_size=10),
    st.integers(0, 9),
    st.data(),
)
def test_more_candidate_passes_never_make_a_regression(
    pairs: list[tuple[PassCounts, PassCounts]], index: int, data: st.DataObject
) -> None:
    i = index % len(pairs)
    base, cand = pairs[i]
    better = PassCounts(data.draw(st.integers(cand.passes, cand.runs)), cand.runs)
    improved = [*pairs[:i], (base, better), *pairs[i + 1 :]]
    before, after = decide(pairs)[i], decide(improved)[i]
    if before.delta != "regressed" and not (base.runs == 1 and cand.runs == 1):
        assert after.delta != "regressed"


def test_decide_rejects_bad_alpha() -> None:
    with pytest.raises(ValueError, match="alpha"):
        decide([], alpha=0.0)
    with pytest.raises(ValueError, match="alpha"):
        decide([], alpha=1.5)


def test_decide_is_fast() -> None:
    rng = random.Random(5)
    pairs = [(_sampled(rng, 0.8, 20), _sampled(rng, 0.8, 20)) for _ in range(1000)]
    started = time.perf_counter()
    decide(pairs)
    assert time.perf_counter() - started < 0.5  # measured ~5 ms; generous for slow CI


def test_no_op_false_block_rate_is_controlled() -> None:
    """Seeded simulation: without a correction about 9 in 10 of these runs would block."""
    rng = random.Random(20240601)
    runs, blocks = 150, 0
    for _ in range(runs):
        pairs = [(_sampled(rng, 0.5, 5), _sampled(rng, 0.5, 5)) for _ in range(100)]
        pairs += [(_sampled(rng, 0.8, 10), _sampled(rng, 0.8, 10)) for _ in range(100)]
        blocks += any(d.delta == "regressed" for d in decide(pairs, 0.05))
    assert blocks / runs <= 0.12


def test_detection_of_a_real_drop() -> None:
    rng = random.Random(7)
    runs, blocks = 40, 0
    for _ in range(runs):
        pairs = [(_sampled(rng, 0.95, 10), _sampled(rng, 0.3, 10)) for _ in range(5)]
        pairs += [(_sampled(rng, 0.95, 10), _sampled(rng, 0.95, 10)) for _ in range(195)]
        blocks += any(d.delta == "regressed" for d in decide(pairs))
    assert blocks / runs >= 0.9


# --- suite-level comparison and flakiness ------------------------------------------------------


def test_sign_test_known_values() -> None:
    assert sign_test(0, 0) == 1.0
    assert sign_test(0, 5) == pytest.approx(1 / 32)
    assert sign_test(5, 0) == 1.0
    assert sign_test(3, 7) == pytest.approx(176 / 1024)
    with pytest.raises(ValueError):
        sign_test(-1, 2)


@given(st.integers(0, 60), st.integers(0, 60))
def test_sign_test_is_a_probability(improved: int, worsened: int) -> None:
    assert 0.0 < sign_test(improved, worsened) <= 1.0
    if worsened:
        assert sign_test(improved, worsened - 1) >= sign_test(improved, worsened)


@needs_scipy
@settings(deadline=None)
@given(st.integers(0, 60), st.integers(0, 60))
def test_sign_test_matches_binomial_tail(improved: int, worsened: int) -> None:
    p = sign_test(improved, worsened)
    n = improved + worsened
    if n:
        expected = scipy_stats.binomtest(worsened, n, 0.5, alternative="greater").pvalue
        assert p == pytest.approx(expected, rel=1e-9)


def test_suite_comparison() -> None:
    pairs: list[tuple[PassCounts | None, PassCounts]] = [
        (PassCounts(5, 5), PassCounts(4, 5)),
        (PassCounts(3, 5), PassCounts(6, 10)),  # same rate
        (PassCounts(1, 5), PassCounts(2, 5)),
        (PassCounts(5, 5), PassCounts(0, 5)),
        (None, PassCounts(0, 5)),
    ]
    result = suite_comparison(pairs)
    assert result == {"improved": 1, "worsened": 2, "unchanged": 1, "p_value": 0.5}
    assert json.loads(json.dumps(result)) == result


def test_flaky() -> None:
    assert flaky(PassCounts(3, 5))
    assert not flaky(PassCounts(5, 5))
    assert not flaky(PassCounts(0, 5))
    assert not flaky(None)
