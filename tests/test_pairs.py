"""Each pair's delta as a pure function of the run's counts (`core.pairs`): one decision
over the whole run, whichever worker or shard ran which pair."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_hgd.core import stats
from pytest_hgd.core.decision import Policy, RunEvidence, decide_run
from pytest_hgd.core.pairs import (
    PairCounts,
    decide_counts,
    decide_pairs,
    draws_confirmation,
    sampled_run,
)
from pytest_hgd.core.stats import PassCounts


def pair(
    pid: str,
    base: tuple[int, int] | None,
    cand: tuple[int, int],
    *,
    delta: str = "kept",
    samples: int | None = None,
    confirm: tuple[int, int] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": f"c.hgd.yaml::{pid}",
        "kind": "locked",
        "tags": [],
        "delta": delta,
        "error": None,
        "candidate": {"passes": cand[0], "runs": cand[1], "called": cand[1]},
        "baseline": None
        if base is None
        else {"passes": base[0], "runs": base[1], "called": base[1]},
        **extra,
    }
    if samples is not None:
        out["samples"] = samples
    if confirm is not None:
        out["baseline"]["confirm"] = list(confirm)
    return out


def deltas(pairs: list[dict[str, Any]], alpha: float = 0.05) -> dict[str, str]:
    return {p["id"].split("::")[1]: p["delta"] for p in decide_pairs(pairs, alpha)}


def test_an_unsampled_run_gets_the_one_shot_table_and_errors_stay_errors() -> None:
    errored = {**pair("e", None, (1, 1)), "baseline": None, "candidate": None, "error": "boom"}
    run = [
        pair("k", (1, 1), (1, 1)),
        pair("r", (1, 1), (0, 1)),
        pair("f", (0, 1), (1, 1)),
        pair("s", (0, 1), (0, 1)),
        pair("n", None, (0, 1)),
        errored,
    ]
    assert deltas(run) == {
        "k": "kept", "r": "regressed", "f": "fixed", "s": "still_failing", "n": "new_fail",
        "e": "error",
    }  # fmt: skip
    assert all("p_value" not in p for p in decide_pairs(run, 0.05))


def test_a_sampled_run_is_one_corrected_family_and_the_payloads_delta_is_not_trusted() -> None:
    run = [
        pair("drop", (5, 5), (0, 5), samples=5),
        pair("noise", (4, 5), (3, 5), samples=5, delta="regressed", p_confirm=0.5),
        pair("one", (1, 1), (0, 1), samples=1),  # one run a side, in a sampled run
    ]
    decided = {p["id"].split("::")[1]: p for p in decide_pairs(run, 0.05)}
    assert decided["drop"]["delta"] == "regressed"
    assert decided["drop"]["p_value"] == pytest.approx(1 / 252)
    assert decided["noise"]["delta"] == "kept" and "p_confirm" not in decided["noise"]
    assert decided["noise"]["flaky"] is True and decided["drop"]["flaky"] is False
    assert decided["one"]["delta"] == "kept" and decided["one"]["testable"] is False
    expected = stats.decide(
        [(PassCounts(5, 5), PassCounts(0, 5)), (PassCounts(4, 5), PassCounts(3, 5)),
         (PassCounts(1, 1), PassCounts(0, 1))],
        0.05,
        one_shot=False,
    )  # fmt: skip
    assert [p["p_value"] for p in decided.values()] == [d.p_regress for d in expected]
    assert [p["delta"] for p in decided.values()] == [d.delta for d in expected]


def test_a_run_is_sampled_when_any_pair_asked_for_samples_even_one_that_errored() -> None:
    errored = {**pair("e", None, (1, 1), samples=10), "candidate": None, "error": "boom"}
    one = pair("r", (1, 1), (0, 1), samples=1)
    assert sampled_run([one, errored]) and not sampled_run([one])
    assert deltas([one, errored]) == {"r": "kept", "e": "error"}  # untestable in a family
    assert deltas([one]) == {"r": "regressed"}  # the one-shot table
    assert sampled_run([pair("old", (3, 5), (5, 5))])  # evidence from before `samples`


def test_the_confirming_samples_must_agree() -> None:
    """A lucky cached pool (5/5) whose fresh samples say 0/5: not regressed
    (`stats.decide_pooled`); fresh samples that say 5/5 confirm it."""
    lucky = pair("lucky", (5, 10), (0, 5), samples=5, confirm=(0, 5))
    real = pair("real", (10, 10), (0, 5), samples=5, confirm=(5, 5))
    decided = {p["id"].split("::")[1]: p for p in decide_pairs([lucky, real], 0.05)}
    assert decided["lucky"]["delta"] == "kept" and decided["real"]["delta"] == "regressed"
    assert decided["real"]["p_confirm"] == pytest.approx(1 / 252)
    counts = PairCounts(PassCounts(0, 5), PassCounts(5, 10), PassCounts(0, 5))
    assert counts.first_look == PassCounts(5, 5)


def test_drawing_confirmation_is_a_per_pair_rule() -> None:
    close = PairCounts(PassCounts(0, 5), PassCounts(5, 5))
    far = PairCounts(PassCounts(4, 5), PassCounts(5, 5))
    assert draws_confirmation(close, 0.05) and not draws_confirmation(far, 0.05)
    assert not draws_confirmation(PairCounts(PassCounts(0, 1), PassCounts(1, 1)), 0.05)
    assert not draws_confirmation(PairCounts(PassCounts(0, 5)), 0.05)  # no baseline


def test_split_families_can_disagree_with_the_one_decision_the_run_makes() -> None:
    """An xdist worker decides its items in batches, each at its share of the error budget
    (3 pairs of 10: 0.015). There a drop to p = 0.0238 is kept, which the whole run's family
    calls regressed: `decide_run` makes the one decision over all pairs, and names the pairs
    whose items said otherwise."""
    drop = pair("drop", (5, 5), (1, 5), samples=5)  # p = 5/210 = 0.0238
    flat = [pair(f"k{i}", (5, 5), (5, 5), samples=5) for i in range(9)]
    half = decide_counts(
        [PairCounts(PassCounts(1, 5), PassCounts(5, 5))]
        + [PairCounts(PassCounts(5, 5), PassCounts(5, 5))] * 2,
        0.05 * 3 / 10,
        sampled=True,
    )
    assert half[0].delta == "kept"
    run = RunEvidence(
        pairs=[{**drop, "delta": "kept"}, *flat],
        skipped=[],
        rollouts=[],
        baseline_hash="b" * 64,
        candidate_hash="c" * 64,
        agent={"kind": "python"},
    )
    decision = decide_run(run, Policy())
    assert decision.counts["regressed"] == 1 and decision.verdict == "fail"
    assert decision.redecided == ["c.hgd.yaml::drop"]
    assert decision.record["pairs"]["c.hgd.yaml::drop"]["delta"] == "regressed"
