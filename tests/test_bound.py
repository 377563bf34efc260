"""The false-block bound of the sampled gate covers every pair of the run (issue 18, 7-9).

Figures in the docstrings come from ``python benchmarks/gate_soundness.py`` (seed 20240601,
2000 runs per row) after the fix; the tests rerun smaller, seeded versions.
"""

from __future__ import annotations

import math
import random

from conftest import Gate, conversation

from pytest_hgd.stats import PassCounts, decide, fisher_one_sided_less

CHECK = [{"contains": "good"}]


def _draw(rng: random.Random, rate: float, runs: int) -> PassCounts:
    return PassCounts(sum(rng.random() < rate for _ in range(runs)), runs)


# --- 7. one-shot pairs are in the one corrected family ------------------------------------------


def _one_shot_suite(hgd: Gate) -> tuple[str, ...]:
    hgd.prompt("base.txt", {"single": "good", "drop": "good", "flat": "good"})
    hgd.prompt("cand.txt", {"single": "bad", "drop": "bad", "flat": "good"})
    hgd.pairs(
        "c.hgd.yaml",
        conversation(
            {"id": "single", "customer": "single", "checks": CHECK, "samples": 1},
            {"id": "drop", "customer": "drop", "checks": CHECK},
            {"id": "flat", "customer": "flat", "checks": CHECK},
        ),
    )
    return ("--hgd-baseline=base.txt", "--hgd-candidate=cand.txt", "--hgd-report=report.json")


def test_a_one_shot_pair_in_a_sampled_run_cannot_be_called_regressed(hgd: Gate) -> None:
    """`samples: 1` in a run at K = 5: the pair joins the family, where its smallest p-value
    is 1/2, so good -> bad is `kept` (it could not be tested); the 5/5 -> 0/5 pair regresses."""
    args = _one_shot_suite(hgd)
    result = hgd.run(*args, "--hgd-samples=5")
    result.assert_outcomes(passed=2, failed=1)
    pairs = {p["id"].split("::")[1]: p for p in hgd.report()["pairs"]}
    assert pairs["single"]["delta"] == "kept"
    assert (pairs["single"]["baseline"]["runs"], pairs["single"]["candidate"]["runs"]) == (1, 1)
    assert pairs["single"]["p_value"] == 0.5
    assert pairs["drop"]["delta"] == "regressed"


def test_the_unsampled_gate_keeps_the_one_shot_table(hgd: Gate) -> None:
    """K = 1 everywhere: the spec's one-shot table, unchanged (good -> bad is `regressed`)."""
    args = _one_shot_suite(hgd)
    hgd.run(*args).assert_outcomes(passed=1, failed=2)
    pairs = {p["id"].split("::")[1]: p for p in hgd.report()["pairs"]}
    assert pairs["single"]["delta"] == "regressed" and pairs["drop"]["delta"] == "regressed"
    assert "p_value" not in pairs["single"] or pairs["single"]["p_value"] is None


def test_one_shot_pairs_are_flagged_untestable() -> None:
    sampled = (PassCounts(5, 5), PassCounts(5, 5))
    decisions = decide([sampled, (PassCounts(1, 1), PassCounts(0, 1))])
    assert decisions[1].delta == "kept"
    assert decisions[1].p_regress == 0.5 and not decisions[1].testable
    assert decisions[0].testable
    # one run on each side of every pair: the unsampled gate's one-shot table
    (alone,) = decide([(PassCounts(1, 1), PassCounts(0, 1))])
    assert alone.delta == "regressed" and not alone.testable


def test_one_shot_pairs_no_longer_add_to_the_no_op_block_rate() -> None:
    """No-op runs, 190 pairs at K = 10 and 10 pairs with `samples: 1`, all at p = 0.97.

    Benchmark (2000 runs): one-shot rule outside the family (before) 27.8 % blocked
    (25.9-29.8 %; the 10 pairs alone give 1 - (1 - 0.97 * 0.03)^10 = 25.6 %); every pair in
    one family (now) 1.4 % (0.9-2.0 %), the rate of the 190 sampled pairs alone.
    """
    rng = random.Random(20240601)
    runs, before, after = 300, 0, 0
    for _ in range(runs):
        pairs = [(_draw(rng, 0.97, 10), _draw(rng, 0.97, 10)) for _ in range(190)]
        pairs += [(_draw(rng, 0.97, 1), _draw(rng, 0.97, 1)) for _ in range(10)]
        before += any(d.delta == "regressed" for d in decide(pairs, one_shot=True))
        after += any(d.delta == "regressed" for d in decide(pairs))
    assert before / runs >= 0.18
    assert after / runs <= 0.05


# --- 9. the power of K = 3 ----------------------------------------------------------------------


def test_at_k3_only_a_full_drop_reaches_five_percent() -> None:
    """At K = 3 the one table with p <= 0.05 is 3/3 -> 0/3 (p = 1/20): it spends the whole
    budget, so a second table with 3 passes in 6 runs (any split) leaves nothing rejectable."""
    reachable = {
        (b, c)
        for b in range(4)
        for c in range(4)
        if fisher_one_sided_less(PassCounts(c, 3), PassCounts(b, 3)) <= 0.05
    }
    assert reachable == {(3, 0)}
    assert fisher_one_sided_less(PassCounts(0, 3), PassCounts(3, 3)) == 1 / math.comb(6, 3)
    alone = [(PassCounts(3, 3), PassCounts(0, 3)), (PassCounts(3, 3), PassCounts(3, 3))]
    assert decide(alone)[0].delta == "regressed"
    crowded = [(PassCounts(3, 3), PassCounts(0, 3)), (PassCounts(2, 3), PassCounts(1, 3))]
    assert [d.delta for d in decide(crowded)] == ["kept", "kept"]


def test_at_k3_detection_vanishes_with_many_pairs() -> None:
    """5 of N pairs drop from p = 0.95 to 0.30, K = 3. Exact detection (benchmark, section
    (d)): 16.9 % at 200 pairs, 9.0 % at 500, 3.1 % at 1000, 0.4 % at 2000. At K = 10 the same
    drop is caught in 100 % of runs at 200 pairs."""
    rng = random.Random(9)
    runs, blocks = 60, 0
    for _ in range(runs):
        pairs = [(_draw(rng, 0.95, 3), _draw(rng, 0.30, 3)) for _ in range(5)]
        pairs += [(_draw(rng, 0.95, 3), _draw(rng, 0.95, 3)) for _ in range(1995)]
        blocks += any(d.delta == "regressed" for d in decide(pairs))
    assert blocks <= 3  # expected 0.2 of 60
