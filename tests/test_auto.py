"""``--hgd-samples=auto``: a screen of 2 samples a pair, the rest of K only for pairs whose
outcome is still open, decided by the exact conditional test (docs/statistics.md)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from conftest import Gate, conversation

CHECK = [{"contains": "good"}]
GOOD = {f"k{i}": "good" for i in range(8)}


def suite(hgd: Gate, candidate: dict[str, str], name: str = "cand.txt") -> tuple[str, ...]:
    hgd.prompt("base.txt", {**GOOD, "drop": "good"})
    hgd.prompt(name, candidate)
    keys = sorted([*GOOD, "drop"])
    hgd.pairs(
        "c.hgd.yaml",
        conversation(*({"id": key, "customer": key, "checks": CHECK} for key in keys)),
    )
    return ("--hgd-baseline=base.txt", f"--hgd-candidate={name}", "--hgd-report=report.json")


def calls_by_prompt(hgd: Gate) -> Counter[tuple[str, str]]:
    """(baseline or candidate, customer message) -> agent calls made."""
    base = (hgd.path / "base.txt").read_text(encoding="utf-8")
    return Counter(
        ("baseline" if c["prompt"] == base else "candidate", c["messages"][-1]["content"])
        for c in hgd.calls()
    )


def pairs(hgd: Gate) -> dict[str, dict]:
    return {p["id"].split("::")[1]: p for p in hgd.report()["pairs"]}


def test_pairs_that_pass_the_screen_stop_and_a_drop_draws_all_k(hgd: Gate) -> None:
    args = suite(hgd, {**GOOD, "drop": "bad"})
    result = hgd.run(*args, "--hgd-samples=auto")
    result.assert_outcomes(passed=8, failed=1)
    calls = calls_by_prompt(hgd)
    # cold baseline: each stopped pair drew 2 + 2; the drop went on to 10 + 10
    assert calls[("candidate", "k0")] == calls[("baseline", "k0")] == 2
    assert calls[("candidate", "drop")] == calls[("baseline", "drop")] == 10
    assert sum(calls.values()) == 8 * 4 + 20
    decided = pairs(hgd)
    assert decided["drop"]["delta"] == "regressed"
    assert decided["drop"]["screen"] == {
        "design": [2, 8, 2, 8], "candidate": 0, "baseline": 2, "went_on": True
    }  # fmt: skip
    assert decided["drop"]["p_value"] < 0.001 and decided["drop"]["samples"] == 10
    k0 = decided["k0"]
    assert k0["delta"] == "kept" and k0["screen"]["went_on"] is False
    assert (k0["candidate"]["runs"], k0["baseline"]["runs"], k0.get("p_value")) == (2, 2, None)
    result.stdout.fnmatch_lines(
        [
            "hgd: auto samples: 8 pairs decided at the screen, 1 went on, 0 undecided;"
            " 52 agent calls made",
            "*regressed: locked pair c.hgd.yaml::drop*",
            "auto samples: 8 pairs decided at the screen of 2, 1 went on to K = 10",
            "agent calls: baseline 26 (+0 cached), candidate 26 (+0 cached); for the screened"
            " pairs a fixed K = 10 run would make 180, auto made 52 (128 saved)",
        ]
    )


def test_a_warm_baseline_is_the_screen_and_costs_nothing(hgd: Gate) -> None:
    """Run 1 caches the baseline's replies. A new candidate then draws only its own
    samples; the drop is close with a cached baseline, so it also draws K fresh baseline
    samples, which confirm it."""
    hgd.run(*suite(hgd, GOOD | {"drop": "good"}), "--hgd-samples=auto").assert_outcomes(passed=9)
    hgd.reset_calls()
    args = suite(hgd, {**GOOD, "drop": "bad"}, name="cand2.txt")
    hgd.run(*args, "--hgd-samples=auto").assert_outcomes(passed=8, failed=1)
    calls = calls_by_prompt(hgd)
    assert calls[("candidate", "k0")] == 2 and calls[("baseline", "k0")] == 0
    assert calls[("candidate", "drop")] == 10
    decided = pairs(hgd)
    # the drop's baseline: 2 cached samples at the screen, 8 more, then 10 fresh to confirm
    assert decided["drop"]["screen"]["design"] == [2, 8, 2, 8]
    assert decided["drop"]["delta"] == "regressed"
    assert calls[("baseline", "drop")] == 8 + 10
    assert decided["drop"]["baseline"]["confirm"] == [10, 10]


def test_auto_matches_a_decision_made_again_from_the_report(hgd: Gate) -> None:
    """The screen and the design ride on each pair's payload: `decide_run` alone, as the
    xdist controller or a merge would, reproduces every delta and p-value."""
    from pytest_hgd.core.pairs import decide_pairs

    args = suite(hgd, {**GOOD, "k0": "CYCLE:good,bad", "drop": "bad"})
    hgd.run(*args, "--hgd-samples=auto", "--hgd-max-samples=6")
    report = hgd.report()
    again = decide_pairs(report["pairs"], 0.05)
    assert [(p["delta"], p.get("p_value")) for p in again] == [
        (p["delta"], p.get("p_value")) for p in report["pairs"]
    ]
    k0 = pairs(hgd)["k0"]
    assert k0["screen"]["went_on"] is True and k0["candidate"]["runs"] == 6
    assert json.loads(json.dumps(report))["samples"]["max"] == 6


@pytest.mark.parametrize("value", ["auto", "AUTO"])
def test_auto_from_the_ini_file_and_a_pairs_own_samples_win(hgd: Gate, value: str) -> None:
    args = suite(hgd, {**GOOD, "drop": "bad"})
    hgd.pytester.makeini(f"[pytest]\nhgd_agent = hgd_agent:reply\nhgd_samples = {value}\n")
    hgd.run(*args).assert_outcomes(passed=8, failed=1)
    assert pairs(hgd)["k0"]["screen"]["went_on"] is False


def test_auto_under_xdist_gives_the_serial_decision(hgd: Gate) -> None:
    pytest.importorskip("xdist")
    args = (*suite(hgd, {**GOOD, "drop": "bad"}), "--hgd-samples=auto", "--hgd-no-cache")
    hgd.run(*args).assert_outcomes(passed=8, failed=1)
    serial = [
        (p["id"], p["delta"], p.get("p_value"), p.get("screen")) for p in hgd.report()["pairs"]
    ]
    hgd.reset_calls()
    hgd.run(*args, "-p", "xdist", "-n", "2").assert_outcomes(passed=8, failed=1)
    split = [
        (p["id"], p["delta"], p.get("p_value"), p.get("screen")) for p in hgd.report()["pairs"]
    ]
    assert split == serial and len(hgd.calls()) == 8 * 4 + 20


def test_bad_max_samples_is_a_usage_error(hgd: Gate) -> None:
    hgd.prompt("p.txt", {"*": "good"})
    result = hgd.run("--hgd-candidate=p.txt", "--hgd-samples=auto", "--hgd-max-samples=0")
    result.stderr.fnmatch_lines(["*--hgd-max-samples='0': expected a whole number from 1 to 1000*"])
    result = hgd.run("--hgd-candidate=p.txt", "--hgd-samples=often")
    result.stderr.fnmatch_lines(["*--hgd-samples='often': expected auto or a whole number*"])


def test_a_call_budget_leaves_pairs_undecided_and_they_fail_the_gate(hgd: Gate) -> None:
    """Nine pairs at two calls each, a budget of 10: five are decided, four are
    ``undecided`` (no call made for them), which fails the verdict unless allowed."""
    args = (
        *suite(hgd, GOOD | {"drop": "good", "other": "x"}),
        "--hgd-no-cache",
        "--hgd-markdown=s.md",
    )
    result = hgd.run(*args, "--hgd-max-calls=10")
    result.assert_outcomes(passed=5, failed=4)
    assert len(hgd.calls()) == 10
    report = hgd.report()
    assert report["counts"]["undecided"] == 4 and report["verdict"] == "fail"
    assert report["verdict_reasons"] == ["4 undecided"]
    undecided = [p for p in report["pairs"] if p["delta"] == "undecided"]
    assert all("--hgd-max-calls" in p["undecided"] for p in undecided)
    assert all(p["candidate"] is None for p in undecided)
    result.stdout.fnmatch_lines(
        [
            "*undecided: locked pair c.hgd.yaml::*budget*",
            "hgd: --hgd-max-calls=10: 10 spent, 0 left",
            "deltas: 5 kept, 4 undecided",
            "  undecided  c.hgd.yaml::k4",
            "*undecided: the --hgd-max-calls budget could not pay for its next 2 agent calls",
            "next: 4 pairs are undecided: raise --hgd-max-calls (or drop it) and run again",
        ]
    )
    assert "undecided" in (hgd.path / "s.md").read_text(encoding="utf-8")
    hgd.reset_calls()
    allowed = hgd.run(*args, "--hgd-max-calls=10", "--hgd-allow-undecided")
    allowed.assert_outcomes(passed=5, skipped=4)
    assert hgd.report()["verdict"] == "pass" and len(hgd.calls()) == 10
    allowed.stdout.fnmatch_lines(["next: not a full verdict: 4 pairs are undecided*"])


def test_under_auto_the_budget_pays_for_screens_first(hgd: Gate) -> None:
    """Screens cost 4 calls a pair (cold baseline): 36 for nine pairs. The drop goes on and
    needs 16 more, which a budget of 40 cannot pay: it is undecided, its screen shown; the
    pairs that stopped at the screen are decided."""
    args = (*suite(hgd, {**GOOD, "drop": "bad"}), "--hgd-no-cache", "--hgd-samples=auto")
    result = hgd.run(*args, "--hgd-max-calls=40")
    result.assert_outcomes(passed=8, failed=1)
    assert len(hgd.calls()) == 36
    drop = pairs(hgd)["drop"]
    assert drop["delta"] == "undecided" and drop["screen"]["went_on"] is True
    assert (drop["candidate"]["passes"], drop["candidate"]["runs"]) == (0, 2)
    assert hgd.report()["verdict_reasons"] == ["1 undecided"]


USAGE_AGENT = """
def reply(prompt, messages):
    text = "good" if "good" in prompt else "bad"
    return {"text": text, "usage": {"input_tokens": 100, "output_tokens": 7}}
"""


def test_a_python_agent_reports_usage_and_prices_make_a_cost(hgd: Gate) -> None:
    hgd.pytester.makepyfile(usage_agent=USAGE_AGENT)
    hgd.pytester.makeini(
        "[pytest]\nhgd_agent = usage_agent:reply\n"
        "hgd_prices =\n    other-model: 9 9\n    *: 1.5 10\n"
    )
    (hgd.path / "base.txt").write_text("good", encoding="utf-8")
    (hgd.path / "cand.txt").write_text("good too", encoding="utf-8")
    hgd.pairs(
        "c.hgd.yaml",
        conversation(*({"id": f"q{i}", "customer": f"q{i}", "checks": CHECK} for i in range(3))),
    )
    args = ("--hgd-baseline=base.txt", "--hgd-candidate=cand.txt", "--hgd-report=report.json")
    result = hgd.run(*args, "--hgd-samples=auto", "--hgd-markdown=s.md")
    result.assert_outcomes(passed=3)
    report = hgd.report()
    usage = report["usage"]
    assert usage["candidate"] == {"input_tokens": 600, "output_tokens": 42, "calls": 6}
    assert usage["baseline"] == usage["candidate"]  # two screen samples a pair, cold
    assert usage["cost"]["total"] == pytest.approx(2 * (600 * 1.5 + 42 * 10) / 1e6)
    assert report["calls"]["fixed_k"] == {"baseline": 30, "candidate": 30, "auto": 12}
    result.stdout.fnmatch_lines(
        [
            "hgd: auto samples: 3 pairs decided at the screen, 0 went on, 0 undecided; 12 agent calls made",
            "agent calls: baseline 6 (+0 cached), candidate 6 (+0 cached); for the screened"
            " pairs a fixed K = 10 run would make 60, auto made 12 (48 saved)",
            "tokens: baseline 600 in / 42 out, candidate 600 in / 42 out; "
            "cost 0.00264 at usage_agent:reply's price",
        ]
    )
    assert "auto made 12 (48 saved)" in (hgd.path / "s.md").read_text(encoding="utf-8")
    hgd.pytester.makeini("[pytest]\nhgd_agent = usage_agent:reply\nhgd_prices = gpt 1\n")
    bad = hgd.run(*args)
    bad.stderr.fnmatch_lines(["*ini hgd_prices: 'gpt 1': expected 'MODEL: INPUT OUTPUT'*"])


def test_the_ledger_keeps_calls_and_tokens_and_hgd_stats_sums_them(hgd: Gate) -> None:
    from pytest_hgd.storage.ledger import read_ledger

    hgd.pytester.makepyfile(usage_agent=USAGE_AGENT)
    hgd.pytester.makeini("[pytest]\nhgd_agent = usage_agent:reply\nhgd_prices = *: 1 1\n")
    (hgd.path / "base.txt").write_text("good", encoding="utf-8")
    (hgd.path / "cand.txt").write_text("good too", encoding="utf-8")
    hgd.pairs("c.hgd.yaml", conversation({"id": "q", "customer": "q", "checks": CHECK}))
    args = ("--hgd-baseline=base.txt", "--hgd-candidate=cand.txt", "--hgd-samples=auto")
    hgd.run(*args).assert_outcomes(passed=1)
    hgd.run(*args, "--hgd-html=r.html").assert_outcomes(passed=1)  # all from the cache now
    ledger = hgd.path / ".hgd" / "ledger.jsonl"
    first, second = read_ledger(ledger).records
    assert first["calls"]["candidate"] == 2 and first["calls"]["fixed_k"]["candidate"] == 10
    assert first["usage"]["candidate"]["input_tokens"] == 200
    assert second["calls"]["candidate"] == 0 and second["usage"]["cost"]["total"] == 0
    html = (hgd.path / "r.html").read_text(encoding="utf-8")
    assert "agent calls" in html and "(+2 cached)" in html
    assert "agent calls over these runs: 4 made; cost 0.000428" in html


def test_hgd_stats_prints_calls_and_cost_over_the_ledger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_hgd.cli import main
    from pytest_hgd.core.record import new_record

    ledger = tmp_path / "ledger.jsonl"
    runs = [
        {"calls": {"baseline": 4, "candidate": 4, "cache_hits": {"baseline": 0, "candidate": 0},
                   "fixed_k": {"baseline": 20, "candidate": 20}},
         "usage": {"baseline": {"input_tokens": 10, "output_tokens": 2, "calls": 4},
                   "candidate": {"input_tokens": 10, "output_tokens": 2, "calls": 4},
                   "cost": {"baseline": 0.5, "candidate": 0.5, "total": 1.0}}},
        {"calls": {"baseline": 0, "candidate": 2, "cache_hits": {"baseline": 4, "candidate": 2}}},
    ]  # fmt: skip
    records = [new_record(candidate_hash="c" * 64, verdict="pass", pairs={}, **r) for r in runs]
    ledger.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    (tmp_path / "suite").mkdir()
    assert main(["stats", str(tmp_path / "suite"), "--ledger", str(ledger)]) == 0
    out = capsys.readouterr().out
    assert (
        "agent calls over 2 ledger runs: 10 made, 6 from the cache; fixed K would have made 42"
        in out
    )
    assert "tokens: 20 in / 4 out; cost 1" in out


def test_auto_with_rollouts_and_last_failed(hgd: Gate) -> None:
    args = (*suite(hgd, {**GOOD, "drop": "bad"}), "--hgd-samples=auto", "--hgd-rollout")
    first = hgd.run(*args, "-p", "cacheprovider")
    first.assert_outcomes(passed=8, failed=2)  # the drop, and the conversation's rollout
    assert hgd.report()["rollouts"][0]["delta"] == "regressed"
    again = hgd.run(*args, "-p", "cacheprovider", "--lf")
    again.assert_outcomes(failed=2)
    report = hgd.report()
    assert report["partial"] is True and pairs(hgd)["drop"]["delta"] == "regressed"
    assert pairs(hgd)["drop"]["screen"]["went_on"] is True


def test_a_larger_screen_draws_more_before_stopping(hgd: Gate) -> None:
    args = (*suite(hgd, {**GOOD, "drop": "bad"}), "--hgd-samples=auto", "--hgd-no-cache")
    hgd.run(*args, "--hgd-screen-samples=3", "--hgd-max-samples=6").assert_outcomes(
        passed=8, failed=1
    )
    calls = calls_by_prompt(hgd)
    assert calls[("candidate", "k0")] == calls[("baseline", "k0")] == 3
    assert calls[("candidate", "drop")] == calls[("baseline", "drop")] == 6
    assert pairs(hgd)["drop"]["screen"]["design"] == [3, 3, 3, 3]


def test_a_warm_cache_saves_nothing_and_is_not_counted_as_saved(hgd: Gate) -> None:
    """After a fixed K = 10 run every sample is cached: auto and fixed K both call nothing."""
    args = suite(hgd, {**GOOD, "drop": "good"})
    hgd.run(*args, "--hgd-samples=10").assert_outcomes(passed=9)
    hgd.run(*args, "--hgd-samples=auto").assert_outcomes(passed=9)
    assert hgd.report()["calls"]["fixed_k"] == {"baseline": 0, "candidate": 0, "auto": 0}


@pytest.mark.parametrize(
    ("ini", "message"),
    [
        ("hgd_prices = *: nan 1", "*ini hgd_prices: '*: nan 1': expected*"),
        ("hgd_prices = *: 1 inf", "*ini hgd_prices: '*: 1 inf': expected*"),
        ("hgd_prices =\n    m: 1 1\n    m: 2 2", "*ini hgd_prices: 'm' is priced twice*"),
        (
            "hgd_samples = auto\nhgd_max_samples = 2",
            "*--hgd-max-samples=2 must be above --hgd-screen-samples=2 with --hgd-samples=auto*",
        ),
    ],
)
def test_settings_that_cannot_work_are_usage_errors(hgd: Gate, ini: str, message: str) -> None:
    hgd.prompt("p.txt", {"*": "good"})
    hgd.pytester.makeini(f"[pytest]\nhgd_agent = hgd_agent:reply\n{ini}\n")
    result = hgd.run("--hgd-candidate=p.txt")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_prices_without_a_line_for_the_model_say_so(hgd: Gate) -> None:
    hgd.pytester.makepyfile(usage_agent=USAGE_AGENT)
    hgd.pytester.makeini("[pytest]\nhgd_agent = usage_agent:reply\nhgd_prices = gpt-4o: 1 2\n")
    hgd.prompt("p.txt", {"*": "good"})
    hgd.pairs("c.hgd.yaml", conversation({"id": "q", "customer": "q", "checks": CHECK}))
    result = hgd.run("--hgd-candidate=p.txt", "--hgd-report=report.json")
    result.assert_outcomes(passed=1)
    assert hgd.report()["usage"]["cost"] is None
    result.stdout.fnmatch_lines(
        ["hgd: hgd_prices has no line for 'usage_agent:reply' and no '*' line: no cost"]
    )
