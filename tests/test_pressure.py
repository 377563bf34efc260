"""Constraint pressure: the worked example by hand, the directions it must move, properties."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_hgd.core.beta import beta_cdf, beta_quantile, jeffreys_interval
from pytest_hgd.core.pressure import ProbeResult, compute_pressure
from pytest_hgd.core.survival import NOISE_PULL
from pytest_hgd.reports.summary import pressure_lines

F = "pairs/call.hgd.yaml::"
ROOT = Path(__file__).resolve().parent.parent
MINUS, PRIME = "\u2212", "\u2032"  # as printed in the docs
DELTA = {
    (True, True): "kept",
    (False, True): "fixed",
    (True, False): "regressed",
    (False, False): "still_failing",
}


def pair(
    baseline: list[int] | None = None,
    candidate: list[int] | None = None,
    kind: str = "locked",
    **extra: Any,
) -> dict[str, Any]:
    """A pair entry; the delta follows from majority passes under each prompt."""
    baseline = [1, 1] if baseline is None else baseline
    candidate = list(baseline) if candidate is None else candidate
    passed = (2 * baseline[0] > baseline[1], 2 * candidate[0] > candidate[1])
    entry = {"kind": kind, "delta": DELTA[passed], "baseline": baseline, "candidate": candidate}
    return {**entry, **extra}


def record(
    pairs: dict[str, dict[str, Any]],
    *,
    candidate: str = "C",
    baseline: str | None = "B",
    pressure: float | None = None,
    retired: Sequence[str] = (),
    verdict: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A ledger record; the verdict fails when a pair regressed."""
    regressed = sorted(F + pid for pid, e in pairs.items() if e["delta"] == "regressed")
    out: dict[str, Any] = {
        "schema_version": 1,
        "baseline_hash": baseline,
        "candidate_hash": candidate,
        "verdict": verdict or ("fail" if regressed else "pass"),
        "regressed": regressed,
        "pairs": {F + pid: e for pid, e in pairs.items()},
        "retired": [F + pid for pid in retired],
        "pending_review": 0,
        **extra,
    }
    if pressure is not None:
        out["pressure"] = {"value": pressure}
    return out


def suite(n: int, counts: list[int], **extra: Any) -> dict[str, dict[str, Any]]:
    return {f"L{i}": pair(list(counts), **extra) for i in range(n)}


def value(current: dict[str, Any], history: Sequence[dict[str, Any]] = (), **kw: Any) -> float:
    return float(compute_pressure(current, history, **kw)["value"])


# --- the worked example of docs/pressure.md -----------------------------------------------


def worked_example() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    c1 = pair([0, 1], kind="corrected")
    history = [
        record(
            {"L1": pair(), "L2": pair([1, 1], [0, 1]), "L3": pair(), "C1": c1},
            candidate="X1",
            pressure=0.50,
        ),
        record(
            {"L1": pair(), "L2": pair([1, 1], [0, 1]), "L3": pair([0, 1], [1, 1]),
             "L4": pair(), "C1": c1},
            candidate="X2",
            pressure=0.84,
        ),
        record(
            {"L1": pair(), "L2": pair([1, 1], [0, 1]), "L3": pair([1, 1], [0, 1]),
             "L4": pair(), "C1": c1},
            candidate="X3",
            pressure=0.858203,
        ),
    ]  # fmt: skip
    current = record(
        {"L1": pair(), "L2": pair(), "L3": pair(), "L4": pair(), "C1": c1}, candidate="X4"
    )
    return history, current


def test_worked_example_matches_the_hand_computation() -> None:
    history, current = worked_example()
    got = compute_pressure(current, history)

    # Re-runs under the baseline B (first pass anchors, the rest are re-runs):
    # L1 1111 -> 3 of 3, L2 1111 -> 3 of 3, L3 1011 -> 2 of 3, L4 111 -> 2 of 2; C1 never passed.
    mu = Fraction(3 + 3 + 2 + 2 + 1, 3 + 3 + 3 + 2 + 1)  # (R + 1) / (T + 1) = 11/12
    k = Fraction(NOISE_PULL).limit_denominator()
    p = {
        "L1": (3 + k * mu) / (3 + k),  # 20/21
        "L2": (3 + k * mu) / (3 + k),  # 20/21
        "L3": (2 + k * mu) / (3 + k),  # 17/21
        "L4": (2 + k * mu) / (2 + k),  # 17/18
    }
    survival = p["L1"] * p["L2"] * p["L3"] * p["L4"]
    assert survival == Fraction(57800, 83349)
    # Candidates X1..X4 in the window: X4 (this run) passed, three were blocked.
    passes, runs = 1, 4
    f = (passes + survival) / (runs + 1)  # Beta(k + S, n - k + 1 - S): its mean
    pressure = 1 - f

    assert got["value"] == pytest.approx(float(pressure), abs=1e-6)  # 0.661306
    assert got["survival"]["value"] == pytest.approx(float(survival), abs=1e-6)  # 0.693470
    assert got["survival"]["pass_rate"] == pytest.approx(float(mu), abs=1e-6)
    assert got["survival"]["reruns"] == 11 and got["survival"]["rerun_failures"] == 1
    assert got["survival"]["flaky"][0]["id"] == F + "L3"
    assert got["survival"]["flaky"][0]["pass_rate"] == pytest.approx(17 / 21, abs=1e-6)
    assert got["systematic"]["value"] == pytest.approx(float(f / survival), abs=1e-6)
    assert got["acceptance"] == {
        "value": 0.25,
        "band": got["acceptance"]["band"],
        "candidates": 4,
        "accepted": 1,
        "rejected": 3,
        "rejudged": 0,
        "inconclusive": 0,
        "mean_broken": 1.0,  # (1 + 1 + 2 + 0) / 4
        "passes_today": 1.0,  # X4 met every pair of today's suite
        "window": 20,
    }
    assert got["epsilon"]["value"] == 0.25  # C1 fails on the baseline; L1..L4 pass
    assert got["constraints"]["series"] == [4, 5, 5, 5] and got["constraints"]["growth"] == 1
    assert got["binding"] == [
        {"id": F + "L2", "blocked": 3, "kind": "locked"},
        {"id": F + "L3", "blocked": 1, "kind": "locked"},
    ]
    assert got["estimator"] == "beta(survival+acceptance)"
    assert got["band"][0] < got["value"] < got["band"][1]
    # The recorded pressures are what compute_pressure gave in runs 1-3; 0.50 -> 0.84 ->
    # 0.858203 -> 0.661306 fell at the end: no trend, and 0.66 < 0.7: no warning.
    replayed: list[dict[str, Any]] = []
    for run in history:
        bare = {key: v for key, v in run.items() if key != "pressure"}
        replayed.append({**bare, "pressure": compute_pressure(bare, replayed)})
    assert [r["pressure"]["value"] for r in replayed] == [0.5, 0.84, 0.858203]
    assert not got["warning"]

    # With a probe where 2 of 8 mutants passed: F = (1 + 2 + S) / (4 + 8 + 1).
    probed = compute_pressure(current, history, probe=ProbeResult(passed=2, total=8))
    assert probed["value"] == pytest.approx(float(1 - (3 + survival) / 13), abs=1e-6)  # 0.715887
    assert probed["estimator"] == "beta(survival+acceptance+probe)"
    assert probed["probe"]["value"] == 0.25 and probed["probe"]["mutants"] == 8
    assert any("reached hgd_pressure_warn" in r for r in probed["warning_reasons"])
    json.dumps(probed, allow_nan=False)

    # Retire L2: X1 and X2 are re-judged as accepted; mu = 8/9 without L2's re-runs. X1
    # never met L4 (it joined in run 2), so it counts as L4's chance to pass, 25/27.
    retired = compute_pressure({**current, "retired": [F + "L2"]}, history)
    mu2 = Fraction(8, 9)
    p_l4 = (2 + k * mu2) / (2 + k)
    s2 = (3 + k * mu2) / (3 + k) * (2 + k * mu2) / (3 + k) * p_l4
    assert s2 == Fraction(59, 63) * Fraction(50, 63) * Fraction(25, 27)
    assert retired["acceptance"]["accepted"] == 3 and retired["acceptance"]["rejudged"] == 2
    passes_today = 2 + p_l4
    assert retired["acceptance"]["passes_today"] == pytest.approx(float(passes_today), abs=1e-6)
    assert retired["value"] == pytest.approx(float(1 - (passes_today + s2) / 5), abs=1e-6)

    # The numbers docs/pressure.md prints for this example.
    doc = (ROOT / "docs" / "pressure.md").read_text(encoding="utf-8")
    doc = doc.split("## Worked example", 1)[1].split("## Worked example: car_sales", 1)[0]
    f = (passes + survival) / (runs + 1)
    for number in (
        "11/12 = 0.9167",
        "20/21 = 0.9524",
        "17/21 = 0.8095",
        "17/18 = 0.9444",
        f"57800/83349 = {float(survival):.4f}",
        f"= {float(f):.4f}",
        f"pressure = 1 {MINUS} {float(f):.4f} = {got['value']:.4f}",
        f"band [{got['band'][0]:.3f}, {got['band'][1]:.3f}]",
        f"band [{got['survival']['band'][0]:.3f}, {got['survival']['band'][1]:.3f}]",
        f"Pressure becomes {probed['value']:.4f}",
        f"k = 2 + 25/27 = {float(passes_today):.4f}",
        f"S{PRIME} = 59/63 · 50/63 · 25/27 = {float(s2):.4f}",
        f"pressure drops to {retired['value']:.4f}",
        "0.50 → 0.84 → 0.858203 → 0.6613",
    ):
        assert number in doc, number


# --- survival -----------------------------------------------------------------------------


def test_without_history_or_probe_pressure_is_one_minus_survival() -> None:
    current = record(suite(10, [3, 4]), candidate="B")  # a no-op re-run, not a candidate
    got = compute_pressure(current, [])
    assert got["estimator"] == "survival"
    assert got["value"] == pytest.approx(1 - got["survival"]["value"], abs=1e-6)
    s_lo, s_hi = got["survival"]["band"]  # no change observed: the headline is survival
    assert got["band"] == pytest.approx([1 - s_hi, 1 - s_lo], abs=1e-6)
    assert got["probe"] is None and got["acceptance"]["candidates"] == 0


def test_more_locked_pairs_at_the_same_pass_rate_raise_pressure() -> None:
    pressures = [value(record(suite(n, [3, 4]), candidate="B")) for n in (1, 5, 10, 20, 40)]
    assert pressures == sorted(pressures) and len(set(pressures)) == 5
    assert pressures[-1] > 0.9


def test_thirty_always_passing_pairs_sampled_once_do_not_collapse() -> None:
    current = record(suite(30, [1, 1]))
    assert value(current) == 0.0  # no flip ever seen: survival 1, not Laplace's (2/3)**30
    history = [record(suite(30, [1, 1]), candidate="B") for _ in range(5)]  # no-op re-runs
    got = compute_pressure(current, history)
    assert got["survival"]["value"] == 1.0 and got["survival"]["reruns"] > 0
    assert got["survival"]["band"][0] > 0.9  # 330 clean re-runs: the band narrows


def test_a_stochastic_agent_over_many_pairs_collapses_survival() -> None:
    rng = random.Random(1)
    noisy = {}
    for i in range(200):
        b, c = (sum(rng.random() < 0.9 for _ in range(5)) for _ in range(2))
        noisy[f"P{i}"] = pair([b, 5], [c, 5])
    got = compute_pressure(record(noisy, candidate="B"), [])
    assert got["survival"]["value"] < 1e-3 and got["value"] > 0.99
    assert 0.85 < got["survival"]["pass_rate"] < 0.95
    steady = compute_pressure(record(suite(200, [5, 5])), [])
    assert steady["survival"]["value"] == 1.0 and steady["value"] == 0.0


def test_a_sampled_corrected_gate_has_survival_of_at_least_one_minus_alpha() -> None:
    current = record(suite(40, [3, 4]), gate={"samples": 4, "alpha": 0.05})
    got = compute_pressure(current, [])
    assert got["survival"]["value"] == 0.95 and got["survival"]["estimator"] == "sampled-gate"


def test_cached_replies_are_not_new_evidence() -> None:
    flips = suite(5, [2, 3])
    cached = {
        pid: {**e, "baseline_cached": True, "candidate_cached": True} for pid, e in flips.items()
    }
    assert compute_pressure(record(cached), [])["survival"]["reruns"] == 0
    assert compute_pressure(record(flips), [])["survival"]["reruns"] == 10  # the baseline's


def test_a_fixed_flaky_pair_stops_counting_its_old_flips() -> None:
    flaky = pair([1, 1], pair_hash="v1")
    history = [
        record({"L0": pair(), "F": {**flaky, "baseline": [b, 1], "delta": d}}, candidate="B")
        for b, d in ((1, "kept"), (0, "fixed"), (1, "kept"), (0, "fixed"))
    ]
    before = compute_pressure(record({"L0": pair(), "F": flaky}), history)
    fixed = compute_pressure(record({"L0": pair(), "F": pair(pair_hash="v2")}), history)
    assert before["survival"]["flaky"] and not fixed["survival"]["flaky"]
    assert fixed["value"] < before["value"]


def test_retiring_a_flaky_pair_lowers_pressure() -> None:
    pairs = {**suite(5, [4, 4]), "F": pair([3, 4])}
    assert value(record(pairs, retired=["F"])) < value(record(pairs))
    assert value(record(pairs, retired=["F"])) == 0.0


# --- acceptance, probe, binding ------------------------------------------------------------


NAMES = itertools.count()


def candidates(
    accepted: int, rejected: int, blocker: str = "L0", like: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Runs of distinct new candidates with cached replies (no noise evidence) on L0..L3, or
    on the pairs of the record ``like``: the first ``accepted`` pass, the rest are blocked
    by ``blocker``."""
    ids = [pid.removeprefix(F) for pid in like["pairs"]] if like else [f"L{i}" for i in range(4)]
    runs = []
    for i in range(accepted + rejected):
        pairs = {pid: pair(baseline_cached=True, candidate_cached=True) for pid in ids}
        if i >= accepted:
            pairs[blocker] = pair([1, 1], [0, 1], baseline_cached=True, candidate_cached=True)
        runs.append(record(pairs, candidate=f"X{next(NAMES)}"))
    return runs


def test_a_ledger_of_rejected_candidates_raises_pressure() -> None:
    current = record(suite(4, [1, 1]), candidate="B")  # a no-op re-run: not a candidate
    none, good, bad = (value(current, candidates(a, r)) for a, r in ((0, 0), (9, 1), (1, 9)))
    assert none == 0.0 and good < bad
    assert bad == pytest.approx(1 - 2 / 11, abs=1e-6)  # F = (k + S) / (n + 1), S = 1
    got = compute_pressure(current, candidates(1, 9))
    assert got["acceptance"]["mean_broken"] == 0.9 and got["binding"][0]["blocked"] == 9


def test_accepting_candidates_lowers_pressure() -> None:
    current = record(suite(4, [1, 1]), candidate="B")
    history = candidates(0, 5)
    series = [value(current, history + candidates(a, 0)) for a in range(6)]
    assert series == sorted(series, reverse=True) and len(set(series)) == 6


def test_the_window_keeps_the_last_candidate_runs() -> None:
    current = record(suite(4, [1, 1]), candidate="B")
    history = candidates(0, 10) + candidates(10, 0)
    got = compute_pressure(current, history, window=10)
    assert got["acceptance"]["candidates"] == 10 and got["acceptance"]["accepted"] == 10
    assert got["constraints"]["runs"] == 10


def test_retiring_a_binding_pair_rejudges_the_candidates_it_blocked() -> None:
    history = candidates(2, 8, blocker="L1")
    current = record(suite(4, [1, 1]), candidate="B")
    retired = record(suite(4, [1, 1]), candidate="B", retired=["L1"])
    before, after = compute_pressure(current, history), compute_pressure(retired, history)
    assert after["value"] < before["value"]
    assert after["acceptance"]["rejudged"] == 8 and after["binding"] == []
    assert before["binding"] == [{"id": F + "L1", "blocked": 8, "kind": "locked"}]


def test_a_candidate_failed_only_by_errors_is_inconclusive() -> None:
    errored = record(suite(3, [1, 1]), candidate="X", verdict="fail")
    got = compute_pressure(record(suite(3, [1, 1]), candidate="B"), [errored])
    assert got["acceptance"]["candidates"] == 0 and got["acceptance"]["inconclusive"] == 1


def test_a_probe_whose_mutants_break_pairs_raises_pressure() -> None:
    current = record(suite(6, [4, 4]), candidate="B")
    without = value(current)
    good, bad = (value(current, probe=ProbeResult(p, 10)) for p in (9, 1))
    assert without == 0.0 and good < bad
    assert bad == pytest.approx(1 - 2 / 11, abs=1e-6)
    flaky = record(suite(6, [2, 3]), candidate="B")
    assert value(flaky, probe=ProbeResult(9, 10)) < value(flaky, probe=ProbeResult(0, 10))


def test_binding_lists_the_top_blockers_most_first() -> None:
    history = candidates(0, 3, blocker="L2") + candidates(0, 5, blocker="L0")
    got = compute_pressure(record(suite(4, [1, 1]), candidate="B"), history)
    assert [(b["id"], b["blocked"]) for b in got["binding"]] == [(F + "L0", 5), (F + "L2", 3)]


# --- epsilon, constraints, warning ---------------------------------------------------------


def test_epsilon_falls_as_locked_pairs_pile_up() -> None:
    corrected = {f"C{i}": pair([0, 1], kind="corrected") for i in range(3)}
    eps = [
        compute_pressure(record({**suite(n, [1, 1]), **corrected}), [])["epsilon"]["value"]
        for n in (3, 6, 12)
    ]
    assert eps == [1.0, 0.5, 0.25]


def test_constraints_count_locked_and_corrected_but_not_retired_or_pending() -> None:
    pairs = {**suite(3, [1, 1]), "C": pair(kind="corrected"), "R": pair(review="new")}
    got = compute_pressure(record(pairs, retired=["L0"], pending_review=1), [])["constraints"]
    assert (got["value"], got["locked"], got["corrected"], got["retired"]) == (3, 2, 1, 1)


@pytest.mark.parametrize(
    ("past", "warned"),
    [
        ([0.1, 0.2, 0.3], True),  # rose three times, by 0.3 in total (now 0.4)
        ([0.26, 0.28, 0.30], False),  # rose three times but only by 0.07
        ([0.1, 0.5, 0.3], False),  # fell once
        ([0.2, 0.3], False),  # too few runs with a pressure
    ],
)
def test_trend_rule(past: list[float], warned: bool) -> None:
    current = record(suite(4, [1, 1]), candidate="B")
    history = [record(suite(4, [1, 1]), candidate="B", pressure=v) for v in past]
    history = candidates(3, 2) + history  # pressure here: 1 - (3 + 1) / 6 = 0.333
    got = compute_pressure(current, history, warn_at=0.9)
    assert got["value"] == pytest.approx(1 / 3, abs=1e-6)
    assert got["warning"] is warned


def test_warning_at_the_threshold() -> None:
    current = record(suite(4, [1, 1]))
    history = candidates(1, 3)
    v = value(current, history)
    assert compute_pressure(current, history, warn_at=v)["warning"]
    assert not compute_pressure(current, history, warn_at=v + 0.01)["warning"]


def test_garbage_in_the_history_never_raises() -> None:
    history: list[Any] = [
        {},
        {"pairs": "nope", "regressed": 3, "pressure": {"value": "x"}},
        {"pairs": {"a": {"baseline": [5, 2], "candidate": [True, 1]}}, "baseline_hash": 1},
        "not a record",
    ]
    got = compute_pressure(record(suite(2, [1, 1])), history)
    json.dumps(got, allow_nan=False)
    with pytest.raises(ValueError, match="window"):
        compute_pressure(record({}), [], window=0)


# --- Beta helpers ---------------------------------------------------------------------------


def test_beta_quantiles_match_closed_forms() -> None:
    for b in (0.5, 1.0, 3.0, 20.0):  # Beta(1, b): F(x) = 1 - (1 - x)^b
        for q in (0.05, 0.5, 0.95):
            assert beta_quantile(q, 1.0, b) == pytest.approx(1 - (1 - q) ** (1 / b), abs=1e-9)
    assert beta_cdf(0.3, 2.0, 3.0) == pytest.approx(0.3483, abs=1e-4)
    assert jeffreys_interval(0, 0, 0.9) == (0.0, 1.0)
    lo, hi = jeffreys_interval(5, 10, 0.9)  # scipy.stats.beta.ppf(0.05, 5.5, 5.5)
    assert lo == pytest.approx(0.261922004, abs=1e-8) and hi == pytest.approx(1 - lo, abs=1e-8)


# --- properties -----------------------------------------------------------------------------


@st.composite
def ledgers(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    ids = [f"P{i}" for i in range(draw(st.integers(0, 8)))]
    runs = []
    for _ in range(draw(st.integers(1, 5))):
        pairs = {"L0": pair()}  # the pair that blocks the candidates added in the tests
        for pid in ids:
            n = draw(st.integers(1, 3))
            pairs[pid] = pair([draw(st.integers(0, n)), n], [draw(st.integers(0, n)), n])
        cand = draw(st.sampled_from(["B", "C1", "C2", "C3"]))
        runs.append(record(pairs, candidate=cand, pressure=draw(st.floats(0, 1))))
    return runs[-1], runs[:-1]


def _check_object(got: dict[str, Any]) -> None:
    json.dumps(got, allow_nan=False)
    assert 0.0 <= got["value"] <= 1.0
    for part in (got, got["survival"], got["systematic"], got["acceptance"], got["probe"]):
        if part is not None:
            lo, hi = part["band"]
            assert 0.0 <= lo <= part["value"] <= hi <= 1.0
    for name in ("constraints", "survival", "acceptance"):
        assert isinstance(got[name]["value"], int | float)
    epsilon = got["epsilon"]
    assert (epsilon["value"] is None) == (epsilon["failing"] + epsilon["passing"] == 0)


@settings(max_examples=80, deadline=None)
@given(ledgers(), st.none() | st.tuples(st.integers(0, 10), st.integers(0, 10)))
def test_pressure_is_in_range_and_inside_its_band(
    ledger: tuple[dict[str, Any], list[dict[str, Any]]], probe: tuple[int, int] | None
) -> None:
    current, history = ledger
    result = None if probe is None else ProbeResult(min(probe), max(probe))
    _check_object(compute_pressure(current, history, probe=result))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 15), st.integers(3, 6), st.data())
def test_one_more_locked_pair_at_the_same_pass_rate_never_lowers_pressure(
    n: int, runs: int, data: st.DataObject
) -> None:
    passes = data.draw(st.integers(runs // 2 + 1, runs - 1))  # passing, but flaky
    history = candidates(data.draw(st.integers(0, 4)), data.draw(st.integers(0, 4)))
    smaller = record(suite(n, [passes, runs]))
    larger = record(suite(n + 1, [passes, runs]))
    assert value(larger, history) > value(smaller, history)


@settings(max_examples=60, deadline=None)
@given(ledgers(), st.integers(0, 3), st.integers(0, 10))
def test_rejections_raise_and_acceptances_lower_pressure(
    ledger: tuple[dict[str, Any], list[dict[str, Any]]], more: int, passed: int
) -> None:
    current, history = ledger
    base = value(current, history, window=100)
    rejected, accepted = candidates(0, more, like=current), candidates(more, 0, like=current)
    assert value(current, history + rejected, window=100) >= base
    assert value(current, history + accepted, window=100) <= base
    fewer = value(current, history, probe=ProbeResult(passed, 10))
    assert value(current, history, probe=ProbeResult(min(passed + 1, 10), 10)) <= fewer


# --- issue 18: repetition cannot move pressure; unknowns widen the band ---------------------


def test_a_candidate_re_run_a_hundred_times_is_not_the_baselines_noise() -> None:
    """The audit drove the worked example from 0.661 to 0.0098 by re-running the accepted
    X4 a hundred times (its fresh replies hid L3's flip on the baseline). Re-runs of another
    prompt are not the baseline's noise, and X4 is one candidate: the pressure stays 0.661306."""
    history, current = worked_example()
    again = {**current, "pairs": {
        pid: {**e, "baseline_cached": True} for pid, e in current["pairs"].items()
    }}  # fmt: skip
    before = compute_pressure(current, history)
    after = compute_pressure(again, [*history, current, *[again] * 99])
    assert after["value"] == before["value"] == pytest.approx(0.661306, abs=1e-6)
    assert after["survival"] == before["survival"]
    assert after["acceptance"]["candidates"] == 4 and after["acceptance"]["accepted"] == 1


def test_a_candidates_failures_never_count_as_baseline_noise() -> None:
    """A candidate Y that fails L1 every other run, a hundred runs: the audit saw L1 listed
    as flaky and acceptance at 0.99. L1 never flipped on the baseline, so it is not flaky, and
    Y counts once, at its latest verdict (here rejected)."""
    runs = []
    for i in range(100):
        pairs = suite(4, [1, 1], baseline_cached=True)
        if i % 2:
            pairs["L1"] = pair([1, 1], [0, 1], baseline_cached=True)
        runs.append(record(pairs, candidate="Y"))
    current = record(suite(4, [1, 1]), candidate="B")
    got = compute_pressure(current, runs)
    assert got["survival"]["flaky"] == [] and got["survival"]["rerun_failures"] == 0
    assert got["acceptance"]["candidates"] == 1 and got["acceptance"]["accepted"] == 0
    assert got["binding"] == [{"id": F + "L1", "blocked": 1, "kind": "locked"}]


def test_a_candidate_counts_once_at_its_latest_conclusive_verdict() -> None:
    """One rejected candidate run 100 times: the audit saw 0.952; a single run gives
    1 - (0 + S)/(1 + 1) = 0.5 with S = 1, and so do a hundred."""
    current = record(suite(4, [1, 1]), candidate="B")
    rejected = candidates(0, 1)
    assert value(current, rejected) == 0.5
    assert value(current, rejected * 100) == 0.5
    # Its latest verdict stands: rejected five times, then accepted, it is one acceptance.
    accepted = {**candidates(1, 0)[0], "candidate_hash": rejected[0]["candidate_hash"]}
    got = compute_pressure(current, [*rejected * 5, accepted])
    assert (got["acceptance"]["accepted"], got["acceptance"]["candidates"]) == (1, 1)
    assert got["binding"] == [] and got["value"] == 0.0
    # A later run that failed on errors alone says nothing: the rejection stands.
    errored = {**rejected[0], "verdict": "fail", "regressed": []}
    got = compute_pressure(current, [*rejected, errored])
    assert (got["acceptance"]["rejected"], got["acceptance"]["inconclusive"]) == (1, 0)


def _new_pairs_ledger() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Five pairs re-run three times (one flip), then 500 pairs join in one run."""
    history = []
    for i in range(3):
        pairs = suite(5, [1, 1])
        if i == 1:
            pairs["L2"] = pair([0, 1])
        history.append(record(pairs, candidate="B", baseline=None))
    grown = {**suite(5, [1, 1]), **{f"N{i}": pair() for i in range(500)}}
    return history, record(grown, candidate="B", baseline=None)


def test_pairs_without_evidence_widen_the_band() -> None:
    """500 pairs added with no re-run yet: the audit saw pressure 1.000 with a zero-width
    band. The point estimate still says that, at the pooled noise (1 flip in 15 re-runs),
    a one-shot gate would block nearly every change; but the band is [0.149634, 1.0]: the new
    pairs may well be steady. Three clean re-runs later pressure is 0.254239, inside it."""
    history, current = _new_pairs_ledger()
    before = compute_pressure(current, history)
    assert before["survival"]["unobserved"] == 500
    assert before["value"] == 1.0 and before["band"] == [0.149634, 1.0]
    later = [*history, current, current, current]
    after = compute_pressure(current, later)
    assert after["survival"]["unobserved"] == 0 and after["value"] == 0.254239
    assert before["band"][0] <= after["value"] <= before["band"][1]
    assert after["band"][1] - after["band"][0] < before["band"][1] - before["band"][0]


def test_accepted_candidates_move_pressure_below_what_noise_alone_says() -> None:
    """Six noisy no-op runs (8 flips over 30 pairs): survival 0.304171, pressure 0.695829.
    Then 20 of 20 candidates pass: F <= S kept it there (the audit's ledger: 0.749), with a
    band that excluded what was observed. Now F = (20 + S)/21: pressure 0.033135, and the band reaches 0 (the
    observed 20/20)."""
    flips = {(1, 0), (2, 3), (3, 6), (4, 9), (5, 12), (1, 15), (2, 18), (3, 21)}
    history = [
        record(
            {f"L{j}": pair([0 if (i, j) in flips else 1, 1]) for j in range(30)},
            candidate="B",
            baseline=None,
        )
        for i in range(6)
    ]
    current = record(suite(30, [1, 1]), candidate="B")
    noise = compute_pressure(current, history)
    assert noise["value"] == 0.695829 and noise["survival"]["value"] == 0.304171
    passed = compute_pressure(current, history + candidates(20, 0, like=current))
    assert passed["value"] == 0.033135 and passed["band"][0] == 0.0
    assert passed["value"] == pytest.approx(1 - (20 + 0.304171) / 21, abs=1e-6)
    rejected = compute_pressure(current, history + candidates(0, 20, like=current))
    assert rejected["value"] > noise["value"] and rejected["band"][1] == 1.0


def test_epsilon_is_undefined_when_no_pair_is_active() -> None:
    """Every pair retired: epsilon was shown as 0.000 for 0/0; now it is null, "undefined"."""
    retired = record(suite(2, [1, 1]), retired=["L0", "L1"])
    epsilon = compute_pressure(retired, [])["epsilon"]
    assert epsilon == {"value": None, "failing": 0, "passing": 0, "share": None}
    line = next(x for x in pressure_lines({"value": 0.0, "epsilon": epsilon}) if "epsilon" in x)
    assert "undefined" in line and "0.000" not in line


def test_a_partial_run_in_the_history_is_no_evidence() -> None:
    """Partial runs (pairs deselected) are skipped by compute_pressure itself: three
    rejections and a noisy no-op run, all marked partial, leave pressure at 0.0 as with no
    history."""
    current = record(suite(4, [1, 1]), candidate="B")
    partial = [{**run, "partial": True} for run in candidates(0, 3)]
    flips = {**record(suite(4, [2, 3]), candidate="B"), "partial": True}
    assert compute_pressure(current, [*partial, flips]) == compute_pressure(current, [])


def test_an_acceptance_on_a_smaller_suite_counts_as_its_chance_on_todays() -> None:
    """Five candidates accepted on L0..L3, before ten noisy pairs joined: they never met
    those, so each counts as prod p_i over them (0.331 here), not as a pass on today's suite.
    The world "100 pairs join" of ``benchmarks/pressure_soundness.py`` held the true pressure
    in the band 42 % of the time without this (200 worlds), 99.9 % with it (1000)."""
    grown = {**suite(4, [1, 1]), **{f"N{i}": pair([9, 10]) for i in range(10)}}
    got = compute_pressure(record(grown, candidate="B"), candidates(5, 0))
    # Re-runs of B (both sides): L pairs 1 of 1 each, N pairs 17 of 19 each.
    mu = Fraction(4 * 1 + 10 * 17 + 1, 4 * 1 + 10 * 19 + 1)
    k = Fraction(NOISE_PULL).limit_denominator()
    p_l, p_n = (1 + k * mu) / (1 + k), (17 + k * mu) / (19 + k)
    survival = p_l**4 * p_n**10
    assert got["survival"]["value"] == pytest.approx(float(survival), abs=1e-6)
    assert got["acceptance"]["passes_today"] == pytest.approx(float(5 * p_n**10), abs=1e-6)
    assert got["value"] == pytest.approx(float(1 - (5 * p_n**10 + survival) / 6), abs=1e-6)
    assert got["band"][0] == 0.0  # no candidate failed: F's high end is 1


def test_only_the_fresh_part_of_a_pooled_baseline_is_evidence() -> None:
    """The sampled gate's baseline pool: 10 cached samples plus 10 drawn in this run. Only
    the 10 fresh ones are re-runs; counting the pool would count the cached 10 twice."""
    pooled = {
        "L0": pair([19, 20], [10, 10], baseline_fresh=[9, 10]),
        "L1": pair([10, 10]),
    }
    got = compute_pressure(record(pooled, candidate="B"), [])
    # Re-runs of B on both sides: L0 fresh 9 of 10 (+ its candidate side 10 of 10), L1 10+10.
    assert got["survival"]["reruns"] == (10 + 10 - 1) + (20 - 1)
    assert got["survival"]["rerun_failures"] == 1
