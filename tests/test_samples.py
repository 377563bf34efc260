"""The sampled gate: K replies per pair, pass rates, regressions only when significant."""

from __future__ import annotations

import pytest
from conftest import Gate, conversation

CHECK = [{"contains": "good"}]


def suite(hgd: Gate, baseline: dict[str, str], candidate: dict[str, str]) -> tuple[str, ...]:
    hgd.prompt("base.txt", baseline)
    hgd.prompt("cand.txt", candidate)
    hgd.pairs(
        "c.hgd.yaml",
        conversation(*({"id": key, "customer": key, "checks": CHECK} for key in sorted(baseline))),
    )
    return ("--hgd-baseline=base.txt", "--hgd-candidate=cand.txt", "--hgd-report=report.json")


def test_significant_drop_regresses_and_noise_does_not(hgd: Gate) -> None:
    args = suite(
        hgd,
        {"drop": "good", "noise": "CYCLE:good,good,good,good,bad", "flat": "good"},
        {"drop": "bad", "noise": "CYCLE:good,good,good,bad,bad", "flat": "good"},
    )
    result = hgd.run(*args, "--hgd-samples=5", "--hgd-markdown=summary.md")
    result.assert_outcomes(passed=2, failed=1)
    assert len(hgd.calls()) == 30
    markdown = (hgd.path / "summary.md").read_text(encoding="utf-8")
    assert "(5/5 → 0/5 passed, p = 0.00397)" in markdown
    assert (
        "- suite sign test: 0 improved, 2 worsened" in markdown
    )  # 3 pairs x 2 prompts x 5 samples
    report = hgd.report()
    pairs = {p["id"].split("::")[1]: p for p in report["pairs"]}
    assert pairs["drop"]["delta"] == "regressed"
    assert pairs["drop"]["p_value"] == pytest.approx(1 / 252)
    assert pairs["noise"]["delta"] == "kept"  # 4/5 -> 3/5 is not significant
    assert pairs["noise"]["baseline"]["passes"] == 4 and pairs["noise"]["candidate"]["passes"] == 3
    assert pairs["noise"]["flaky"] is True and pairs["flat"]["flaky"] is False
    assert report["flaky"] == [{"id": "c.hgd.yaml::noise", "passes": 4, "runs": 5}]
    assert report["suite"]["worsened"] == 2 and report["suite"]["unchanged"] == 1
    assert report["samples"] == {"max": 5, "alpha": 0.05}
    low, high = pairs["noise"]["baseline"]["interval"]
    assert low < 0.8 < high
    result.stdout.fnmatch_lines(
        [
            "hgd: sampling: 30/30 replies in",
            "*regressed: locked pair c.hgd.yaml::drop*",
            "*candidate: passed 0/5; failed check `contains`*",
            "*one-sided exact test: p = 0.00397*",
            "*(5/5 → 0/5 passed, p = 0.00397) contains: missing 'good'*",
            "samples: up to 5 per pair and prompt, alpha 0.05",
            "suite sign test: 0 improved, 2 worsened, 1 unchanged; p = 0.25 that the candidate is worse",
            "flaky pairs (baseline pass rate strictly between 0 and 1): 1",
            "  c.hgd.yaml::noise: 4/5",
        ]
    )


def test_one_shot_gate_would_block_the_same_noise(hgd: Gate) -> None:
    args = suite(hgd, {"noise": "CYCLE:good,bad"}, {"noise": "CYCLE:bad,good"})
    hgd.run(*args).assert_outcomes(failed=1)  # K = 1: good -> bad is a regression
    hgd.reset_calls()
    result = hgd.run(*args, "--hgd-samples=4")  # a 3/4 vs 1/4 split is not significant
    result.assert_outcomes(passed=1)
    assert hgd.report()["pairs"][0]["delta"] == "kept"
    assert len(hgd.calls()) == 6  # sample 0 of each prompt came from the cache


def test_mostly_failing_under_both_is_still_failing_and_fixes_are_tested(hgd: Gate) -> None:
    args = suite(
        hgd,
        {"bad": "CYCLE:bad,bad,bad,good", "fix": "bad"},
        {"bad": "CYCLE:bad,bad,good,bad", "fix": "good"},
    )
    result = hgd.run(*args, "--hgd-samples=8")
    result.assert_outcomes(passed=1, xfailed=1)
    pairs = {p["id"].split("::")[1]: p for p in hgd.report()["pairs"]}
    assert pairs["bad"]["delta"] == "still_failing"
    assert pairs["fix"]["delta"] == "fixed"
    assert pairs["fix"]["p_fix"] < 0.05


def test_per_pair_samples_and_the_cache_keyed_by_sample(hgd: Gate) -> None:
    hgd.prompt("p.txt", {"*": "good"})
    hgd.pairs(
        "c.hgd.yaml",
        conversation(
            {"id": "many", "customer": "a", "checks": CHECK, "samples": 6},
            {"id": "one", "customer": "b", "checks": CHECK},
        ),
    )
    hgd.run("--hgd-candidate=p.txt", "--hgd-report=report.json").assert_outcomes(passed=2)
    assert len(hgd.calls()) == 7
    runs = {p["id"].split("::")[1]: p["candidate"]["runs"] for p in hgd.report()["pairs"]}
    assert runs == {"many": 6, "one": 1}
    hgd.reset_calls()
    hgd.run("--hgd-candidate=p.txt", "--hgd-samples=3").assert_outcomes(passed=2)
    assert len(hgd.calls()) == 2  # "one" gets samples 1 and 2; "many" keeps its 6


def test_bad_samples_and_alpha_are_usage_errors(hgd: Gate) -> None:
    hgd.prompt("p.txt", {"*": "good"})
    result = hgd.run("--hgd-candidate=p.txt", "--hgd-samples=0")
    result.stderr.fnmatch_lines(
        ["*--hgd-samples='0': expected auto or a whole number from 1 to 1000*"]
    )
    result = hgd.run("--hgd-candidate=p.txt", "--hgd-alpha=1.5")
    result.stderr.fnmatch_lines(["*--hgd-alpha='1.5': expected a number in (0, 1)*"])


def test_sampled_gate_under_xdist(hgd: Gate) -> None:
    pytest.importorskip("xdist")
    baseline = {f"k{i}": "good" for i in range(6)} | {"drop": "good"}
    candidate = {f"k{i}": "good" for i in range(6)} | {"drop": "bad"}
    args = suite(hgd, baseline, candidate)
    result = hgd.run(*args, "--hgd-samples=10", "-p", "xdist", "-n", "2")
    result.assert_outcomes(passed=6, failed=1)
    assert hgd.report()["counts"]["regressed"] == 1
    assert len(hgd.calls()) == 140


def test_xdist_reports_the_one_decision_of_a_serial_run(hgd: Gate) -> None:
    """A drop to 1/5 (p = 0.0238) in a suite of 10 pairs: a serial run's family calls it
    regressed. Under xdist a worker decides its items in small batches at their share of
    alpha and passes the item, but the controller decides every pair again as one family:
    the same report and verdict as the serial run, and a note naming the pair."""
    pytest.importorskip("xdist")
    baseline = {f"k{i}": "good" for i in range(9)} | {"drop": "good"}
    candidate = {f"k{i}": "good" for i in range(9)} | {"drop": "CYCLE:good,bad,bad,bad,bad"}
    args = (
        *suite(hgd, baseline, candidate),
        "--hgd-samples=5",
        "--hgd-no-ledger",
        "--hgd-no-cache",
    )

    def decided() -> list[tuple[str, str, object, object]]:
        report = hgd.report()
        assert report["verdict"] == "fail" and report["counts"]["regressed"] == 1
        return [(p["id"], p["delta"], p.get("p_value"), p.get("testable")) for p in report["pairs"]]

    serial = hgd.run(*args)
    serial.assert_outcomes(passed=9, failed=1)
    expected = decided()
    (hgd.path / "report.json").unlink()
    split = hgd.run(*args, "--hgd-concurrency=1", "-p", "xdist", "-n", "2")
    assert split.ret == 1
    assert decided() == expected
    # the worker's batch (at most 3 pairs at --hgd-concurrency=1: alpha 0.015) kept it
    split.assert_outcomes(passed=10)
    split.stdout.fnmatch_lines(["*1 pair's test outcome was decided by an xdist worker*"
                                "differs for: c.hgd.yaml::drop*"])  # fmt: skip
