"""The false-block bound of the sampled gate covers every pair of the run (issue 18, 7-9).

Figures in the docstrings come from ``python benchmarks/gate_soundness.py`` (seed 20240601,
2000 runs per row) after the fix; the tests rerun smaller, seeded versions.
"""

from __future__ import annotations

import math
import random

import pytest
from conftest import Gate, conversation
from hypothesis import given
from hypothesis import strategies as st

from pytest_hgd.core.stats import PassCounts, close, decide, decide_pooled, fisher_one_sided_less
from pytest_hgd.storage.ledger import read_ledger

CHECK = [{"contains": "good"}]


@st.composite
def counts(draw: st.DrawFn, max_runs: int = 10) -> PassCounts:
    runs = draw(st.integers(1, max_runs))
    return PassCounts(draw(st.integers(0, runs)), runs)


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
    assert pairs["single"]["testable"] is False and pairs["drop"]["testable"] is True
    assert pairs["drop"]["delta"] == "regressed"
    result.stdout.fnmatch_lines(
        ["untestable: 1 pair has too few runs to show a regression at alpha 0.05 (one run *"]
    )


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


# --- 8. the bound, conditional on the cached baseline a team reuses ------------------------------


def test_a_lucky_cached_baseline_is_not_confirmed_by_fresh_samples() -> None:
    """10/10 cached vs 3/10 now: regressed at first look (p = 0.0015). Ten fresh baseline
    samples bring the pool to 17/20, and 17/20 vs 3/10 (p = 0.0048) is not significant beside
    85 flaky pairs that take most of the budget (5/10 vs 5/10, 101/184756 each): kept."""
    flat = [(PassCounts(5, 10), PassCounts(5, 10))] * 85
    first = [(PassCounts(10, 10), PassCounts(3, 10)), *flat]
    decisions = decide(first)
    assert decisions[0].delta == "regressed" and close(decisions[0])
    assert not close(decisions[1])
    pooled = [(PassCounts(17, 20), PassCounts(3, 10)), *flat]
    fresh = [PassCounts(7, 10), *[None] * 85]
    (lucky, *_) = decide_pooled(first, pooled, fresh)
    assert lucky.delta == "kept"
    assert lucky.p_regress == fisher_one_sided_less(PassCounts(3, 10), PassCounts(17, 20))
    assert lucky.p_confirm == fisher_one_sided_less(PassCounts(3, 10), PassCounts(7, 10))


def test_fresh_samples_alone_must_confirm_a_regression() -> None:
    """The pooled look (20/20 vs 3/10, beside pairs that cost nothing) still regresses; the
    fresh samples alone (7/10 vs 3/10, p = 0.09) do not confirm it: kept."""
    first = [(PassCounts(13, 13), PassCounts(3, 10))]
    pooled = [(PassCounts(20, 23), PassCounts(3, 10))]
    assert decide(pooled)[0].delta == "regressed"
    (only,) = decide_pooled(first, pooled, [PassCounts(7, 10)])
    assert only.delta == "kept" and only.p_confirm is not None and only.p_confirm > 0.05


def test_a_real_drop_is_confirmed_by_fresh_samples() -> None:
    first = [(PassCounts(10, 10), PassCounts(1, 10)), (PassCounts(9, 10), PassCounts(9, 10))]
    pooled = [(PassCounts(19, 20), PassCounts(1, 10)), first[1]]
    decisions = decide_pooled(first, pooled, [PassCounts(9, 10), None])
    assert [d.delta for d in decisions] == ["regressed", "kept"]
    assert decisions[1].p_confirm is None


def test_the_pooled_look_alone_never_regresses() -> None:
    """A pair the first look did not call regressed stays unregressed, whatever the pool."""
    first = [(PassCounts(9, 10), PassCounts(5, 10))]  # p ~ 0.07: close to alpha, not below
    pooled = [(PassCounts(29, 30), PassCounts(5, 10))]  # p ~ 0.003 on the pool
    (only,) = decide_pooled(first, pooled, [PassCounts(20, 20)])
    assert decide(pooled)[0].delta == "regressed"
    assert only.delta == "kept"


@given(
    st.lists(st.tuples(counts(10), counts(10), st.integers(0, 10)), min_size=1, max_size=20),
    st.data(),
)
def test_pooled_regressions_are_first_look_regressions(
    pairs: list[tuple[PassCounts, PassCounts, int]], data: st.DataObject
) -> None:
    first = [(base, cand) for base, cand, _ in pairs]
    pooled = []
    fresh: list[PassCounts | None] = []
    for base, cand, extra in pairs:
        drawn = data.draw(st.integers(0, extra))
        pooled.append((PassCounts(base.passes + drawn, base.runs + extra), cand))
        fresh.append(PassCounts(drawn, extra) if extra else None)
    before = decide(first, one_shot=False)
    for b, after in zip(before, decide_pooled(first, pooled, fresh), strict=True):
        if after.delta == "regressed":
            assert b.delta == "regressed"
        if after.delta == "fixed":
            assert b.delta == "fixed"


def _no_op_run(
    rng: random.Random, rates: list[float], pool: list[PassCounts], grow: bool
) -> tuple[bool, list[PassCounts]]:
    """One no-op run on the cached ``pool``: blocked, and the pool after it (with ``grow``,
    close pairs draw 10 fresh baseline samples, as the plugin does, up to 80)."""
    cand = [_draw(rng, rate, 10) for rate in rates]
    first = list(zip(pool, cand, strict=True))
    decisions = decide(first, one_shot=False)
    if not grow:
        return any(d.delta == "regressed" for d in decisions), pool
    fresh = [
        _draw(rng, rate, 10) if close(d) and b.runs < 80 else None
        for b, d, rate in zip(pool, decisions, rates, strict=True)
    ]
    grown = [
        b if f is None else PassCounts(b.passes + f.passes, b.runs + f.runs)
        for b, f in zip(pool, fresh, strict=True)
    ]
    looks = decide_pooled(first, list(zip(grown, cand, strict=True)), fresh)
    return any(d.delta == "regressed" for d in looks), grown


def _conditional_rates(
    rng: random.Random, rates: list[float], pool: list[PassCounts], draws: int, grow: bool
) -> list[float]:
    """The block rate conditional on the cache as it stands before each of 5 runs."""
    conditional = []
    for _ in range(5):
        blocks = sum(_no_op_run(rng, rates, pool, grow)[0] for _ in range(draws))
        conditional.append(blocks / draws)
        _, pool = _no_op_run(rng, rates, pool, grow)  # the cache's own run
    return conditional


def test_a_reused_lucky_cache_no_longer_blocks_no_op_runs() -> None:
    """One cached baseline of 10 samples reused run after run, 200 pairs, K = 10.

    Benchmark section (e) (30 caches, rates from Beta(2, 0.5), 400 candidate draws per cache
    and run): reused as is, the no-op block rate conditional on the cache has mean 3.6 % and
    worst 24.2 % (7 of 30 caches above 5 %); with pool growth and confirmation by fresh
    samples it is 1.2 % / 4.0 % at the first run and 1.3 % / 3.2 % at the fifth (targets:
    mean <= 5 %, worst <= 8 %), for 12 to 20 fresh baseline calls per run.

    Here a harsher cache: 198 pairs at p = 0.97 and 2 at p = 0.7 whose cached samples were
    all 10/10. Measured with 200 draws per run: reused as is 37-47 % at each of the 5 runs;
    with pool growth and confirmation 4.5 %, 2.5 %, 3.0 %, 5.5 %, 1.5 %.
    """
    rng = random.Random(18)
    rates = [0.97] * 198 + [0.7] * 2
    pool = [_draw(rng, 0.97, 10) for _ in range(198)] + [PassCounts(10, 10)] * 2
    as_is = _conditional_rates(random.Random(1), rates, pool, 80, grow=False)
    grown = _conditional_rates(random.Random(1), rates, pool, 80, grow=True)
    assert min(as_is) >= 0.25
    assert max(grown) <= 0.125


# The baseline's answer for the pair "lucky" comes from a file, so a test can end the luck
# of the replies in the cache (the cache key holds this module's source, not the file).
PHASE_AGENT = """
import json, pathlib, threading
HERE = pathlib.Path(__file__).parent
_lock = threading.Lock()

def reply(prompt, messages):
    with _lock, (HERE / "calls.jsonl").open("a", encoding="utf-8") as log:
        log.write(json.dumps({"prompt": prompt, "messages": messages}) + "\\n")
    if messages[-1]["content"] != "lucky":
        return "good"
    if prompt.startswith("CANDIDATE"):
        return "bad"
    return (HERE / "baseline_says.txt").read_text(encoding="utf-8").strip()
"""


def _phase_suite(hgd: Gate, baseline_says: str) -> tuple[str, ...]:
    hgd.pytester.makepyfile(phase_agent=PHASE_AGENT)
    (hgd.path / "baseline_says.txt").write_text(baseline_says, encoding="utf-8")
    (hgd.path / "base.txt").write_text("BASELINE prompt", encoding="utf-8")
    (hgd.path / "cand.txt").write_text("CANDIDATE prompt", encoding="utf-8")
    ids = ["lucky", "a", "b", "c"]
    hgd.pairs(
        "c.hgd.yaml",
        conversation(*({"id": key, "customer": key, "checks": CHECK} for key in ids)),
    )
    return (
        "--hgd-agent=phase_agent:reply",
        "--hgd-baseline=base.txt",
        "--hgd-candidate=cand.txt",
        "--hgd-report=report.json",
        "--hgd-samples=5",
    )


def _lucky(hgd: Gate) -> dict[str, object]:
    (pair,) = [p for p in hgd.report()["pairs"] if p["id"].endswith("::lucky")]
    return {
        "delta": pair["delta"],
        "baseline": (pair["baseline"]["passes"], pair["baseline"]["runs"]),
        "called": pair["baseline"]["called"],
    }


@pytest.mark.parametrize("workers", [(), ("-p", "xdist", "-n", "2")], ids=["serial", "xdist"])
def test_a_lucky_cached_baseline_is_confirmed_by_fresh_samples_end_to_end(
    hgd: Gate, workers: tuple[str, ...]
) -> None:
    """Run 1 caches 5/5 for the baseline; then its luck ends. Run 2 reuses the cache: 5/5 vs
    0/5 is close, so 5 fresh baseline samples are drawn (0/5): the pool is 5/10, the fresh
    samples alone do not confirm the drop, and the pair is kept. Run 3 decides on the pool
    from the cache (5/10 vs 0/5, p = 0.084: not close) with no agent call."""
    if workers:
        pytest.importorskip("xdist")
    args = (*_phase_suite(hgd, "good"), *workers)
    hgd.run(*args).assert_outcomes(passed=3, failed=1)  # fresh baseline: nothing reused
    assert _lucky(hgd) == {"delta": "regressed", "baseline": (5, 5), "called": 5}
    assert len(hgd.calls()) == 40
    (hgd.path / "baseline_says.txt").write_text("bad", encoding="utf-8")
    hgd.reset_calls()
    hgd.run(*args).assert_outcomes(passed=4)
    assert _lucky(hgd) == {"delta": "kept", "baseline": (5, 10), "called": 5}
    calls = hgd.calls()
    assert len(calls) == 5
    assert {(c["prompt"], c["messages"][-1]["content"]) for c in calls} == {
        ("BASELINE prompt", "lucky")
    }
    hgd.reset_calls()
    hgd.run(*args).assert_outcomes(passed=4)
    assert _lucky(hgd) == {"delta": "kept", "baseline": (5, 10), "called": 0}
    assert hgd.calls() == []
    # The unsampled gate reads sample 0 only: its one-shot table and cache are unchanged.
    one_shot = [a for a in args if not a.startswith("--hgd-samples")]
    hgd.run(*one_shot).assert_outcomes(passed=3, failed=1)
    assert _lucky(hgd) == {"delta": "regressed", "baseline": (1, 1), "called": 0}
    assert hgd.calls() == []


def test_a_real_drop_is_confirmed_end_to_end(hgd: Gate) -> None:
    """The baseline really passes: the fresh samples (5/5) confirm 5/5 -> 0/5, and the pool
    grows by 5 on each run the drop stays close (10, then 15)."""
    args = _phase_suite(hgd, "good")
    hgd.run(*args).assert_outcomes(passed=3, failed=1)
    hgd.reset_calls()
    result = hgd.run(*args)
    result.assert_outcomes(passed=3, failed=1)
    assert _lucky(hgd) == {"delta": "regressed", "baseline": (10, 10), "called": 5}
    hgd.run(*args).assert_outcomes(passed=3, failed=1)
    assert _lucky(hgd) == {"delta": "regressed", "baseline": (15, 15), "called": 5}
    assert len(hgd.calls()) == 10
    # The ledger keeps the pool and, apart, the part called in the run: pressure counts
    # only that part as re-runs of the baseline.
    (entry,) = [
        e
        for pid, e in read_ledger(hgd.path / ".hgd" / "ledger.jsonl").records[-1]["pairs"].items()
        if pid.endswith("::lucky")
    ]
    assert entry["baseline"] == [15, 15] and entry["baseline_fresh"] == [5, 5]
    assert hgd.report()["samples"] == {"max": 5, "alpha": 0.05, "pool": 15}
