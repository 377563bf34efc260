"""One verdict, computed once and read by every consumer; a partial run is no gate verdict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Gate, conversation
from test_rollout import DRIFTING, call, set_up_rollout


def ledger(hgd: Gate) -> list[dict[str, Any]]:
    path = hgd.path / ".hgd" / "ledger.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_rollout_only_regression_fails_in_the_ledger_and_trend_too(hgd: Gate) -> None:
    """Before: the ledger computed its verdict from the pairs alone and recorded `pass`
    (a `pass` point in the trend) while the report and the exit status said `fail`."""
    args = [a for a in set_up_rollout(hgd, DRIFTING, call()) if a != "--hgd-no-ledger"]
    result = hgd.run(*args, "--hgd-markdown=summary.md")
    assert result.ret == 1
    report = hgd.report()
    assert report["verdict"] == "fail" and report["counts"]["regressed"] == 0
    assert report["verdict_reasons"] == ["1 rollout regressed"]
    (record,) = ledger(hgd)
    assert record["verdict"] == "fail"
    assert report["trend"][-1]["verdict"] == "fail"
    assert (hgd.path / "summary.md").read_text(encoding="utf-8").startswith("## ❌ HGD gate: fail")
    result.stdout.fnmatch_lines(["verdict: FAIL (1 rollout regressed)"])


def test_max_pressure_fails_the_ledger_record_as_it_fails_the_run(hgd: Gate) -> None:
    args = suite(hgd)
    hgd.run(*args)  # a rejected candidate: pressure rises
    hgd.prompt("cand.txt", {"*": "good"})
    result = hgd.run(*args, "--hgd-max-pressure=0.1")
    assert result.ret == 1
    assert hgd.report()["verdict"] == "fail" and hgd.report()["counts"]["regressed"] == 0
    assert ledger(hgd)[-1]["verdict"] == "fail"


def suite(hgd: Gate) -> tuple[str, ...]:
    """Three locked pairs; the candidate breaks `broken`."""
    hgd.prompt("base.txt", {"*": "good"})
    hgd.prompt("cand.txt", {"*": "good", "b": "bad"})
    checks = [{"contains": "good"}]
    hgd.pairs(
        "leads.hgd.yaml",
        conversation(
            {"id": "broken", "customer": "b", "checks": checks},
            {"id": "one", "customer": "x", "checks": checks},
            {"id": "two", "customer": "y", "checks": checks},
        ),
    )
    return ("--hgd-baseline=base.txt", "--hgd-candidate=cand.txt", "--hgd-report=report.json")


def assert_partial(hgd: Gate, result: pytest.RunResult, ran: int, of: int) -> dict[str, Any]:
    output = result.stdout.str()
    assert "verdict: PASS" not in output and "merge it" not in output
    result.stdout.fnmatch_lines(
        [
            f"partial run: {ran} of {of} enforced pairs ran (*",
            "verdict: NONE for the gate (a partial run)*",
            "next: run every enforced pair *",
        ]
    )
    report = hgd.report()
    assert report["partial"] is True
    assert report["selection"]["ran"] == ran and report["selection"]["enforced"] == of
    assert ledger(hgd)[-1]["partial"] is True
    return report


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
def test_a_deselected_run_is_partial_and_never_passes_the_gate(hgd: Gate, xdist: bool) -> None:
    """Before: `-k` over the pairs that passed printed `verdict: PASS` and `merge it`, and the
    ledger took the subset for the suite (enforced pairs 35 -> 3 in `hgd stats`)."""
    args = suite(hgd)
    extra = ("-p", "xdist", "-n", "2") if xdist else ()
    full = hgd.run(*args, *extra)
    assert full.ret == 1 and hgd.report()["partial"] is False
    result = hgd.run(*args, *extra, "-k", "one or two")
    assert result.ret == 0  # the selected pairs pass: pytest's status, but no gate verdict
    report = assert_partial(hgd, result, ran=2, of=3)
    assert report["verdict"] == "pass"
    assert "deselected" in report["selection"]["why"][0]
    markdown = hgd.run(*args, *extra, "-k", "one", "--hgd-markdown=summary.md")
    assert markdown.ret == 0
    text = (hgd.path / "summary.md").read_text(encoding="utf-8")
    assert text.startswith("## ⚠️ HGD gate: no verdict (partial run)")


def test_partial_runs_stay_out_of_pressure_trends_and_growth(hgd: Gate) -> None:
    args = suite(hgd)
    hgd.run(*args)
    hgd.run(*args, "-k", "one")
    hgd.run(*args)
    records = ledger(hgd)
    assert [r.get("partial", False) for r in records] == [False, True, False]
    report = hgd.report()
    assert len(report["trend"]) == 2  # the partial run is no point of the trend
    assert report["pressure"]["constraints"]["value"] == 3
    assert report["pressure"]["constraints"]["growth"] == 0
    from pytest_hgd.suite.suite_stats import growth_series

    assert [size for _, size in growth_series(records)] == [3, 3]


def test_node_ids_and_x_make_a_partial_run(hgd: Gate) -> None:
    args = suite(hgd)
    result = hgd.run(*args, "leads.hgd.yaml::one")
    assert_partial(hgd, result, ran=1, of=1)  # only the named pair was collected
    assert "node ids on the command line" in hgd.report()["selection"]["why"]
    stopped = hgd.run(*args, "-x", "-p", "no:randomly")
    assert stopped.ret == 1
    report = hgd.report()
    assert report["partial"] is True and report["verdict"] == "fail"
    assert any("not run" in why for why in report["selection"]["why"])
    assert "verdict: NONE for the gate (a partial run); the pairs that ran fail it" in (
        stopped.stdout.str()
    )


def test_last_failed_is_partial_and_next_never_repeats_lf(pytester: pytest.Pytester) -> None:
    hgd = Gate(pytester)
    args = suite(hgd)
    first = pytester.runpytest("--hgd", *args)  # pytest's cache on: --lf can be suggested
    assert first.ret == 1
    first.stdout.fnmatch_lines(["next: fix the prompt, then rerun the failing pairs first: *--lf"])
    again = pytester.runpytest("--hgd", *args, "--lf")
    assert again.ret == 1
    report = hgd.report()
    assert report["partial"] is True
    assert report["selection"]["ran"] == 1 and report["selection"]["at_least"] is True
    again.stdout.fnmatch_lines(["partial run: 1 of at least 1 enforced pairs ran (*--lf*"])
    line = next(x for x in again.stdout.lines if x.startswith("next: "))
    assert line.count("--lf") == 1, line


def test_next_without_pytests_cache_does_not_suggest_lf(hgd: Gate) -> None:
    result = hgd.run(*suite(hgd))  # -p no:cacheprovider: --lf would do nothing
    line = next(x for x in result.stdout.lines if x.startswith("next: "))
    assert "--lf" not in line and line.startswith("next: fix the prompt")


def test_agent_errors_are_advised_on_the_agent_not_the_prompt(hgd: Gate) -> None:
    hgd.prompt("p.txt", {"*": "RAISE"})
    hgd.pairs("a.hgd.yaml", conversation({"customer": "hi", "checks": [{"contains": "x"}]}))
    result = hgd.run("--hgd-candidate=p.txt")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["verdict: FAIL (1 error)", "next: check the agent or its endpoint*"]
    )
    assert "fix the prompt" not in result.stdout.str()


def test_a_full_run_is_not_partial(hgd: Gate, tmp_path: Path) -> None:
    args = suite(hgd)
    result = hgd.run(*args)
    report = hgd.report()
    assert report["partial"] is False
    assert report["selection"] == {"ran": 3, "enforced": 3, "why": [], "at_least": False}
    assert "partial run" not in result.stdout.str()
    assert "partial" not in ledger(hgd)[-1]


def test_every_agent_call_is_counted_rollouts_included(hgd: Gate) -> None:
    """Before: a counting agent saw 89 calls where the summary and JSON `calls` said 35 + 35:
    the rollouts' calls were left out."""
    hgd.prompt("base.txt", {"*": "good"})
    hgd.prompt("cand.txt", {"*": "good", "later": "fine"})
    opener = {"agent": "Hi, how can I help?"}
    document = conversation(
        {"id": "first", "history": [opener], "customer": "hello", "checks": [{"contains": "good"}]},
        {
            "id": "second",
            "history": [opener, {"customer": "hello"}, {"agent": "recorded words"}],
            "customer": "later",
            "reply": "good",
            "checks": [{"contains": "good"}],
        },
        rollout=True,
    )
    hgd.pairs("call.hgd.yaml", document)
    args = ("--hgd-baseline=base.txt", "--hgd-candidate=cand.txt", "--hgd-report=report.json")
    hgd.run(*args)
    calls = hgd.report()["calls"]
    made = len(hgd.calls())
    assert made > 4  # the pairs' 4 and the rollouts' own
    assert calls["baseline"] + calls["candidate"] == made
    assert calls["rollouts"]["baseline"] + calls["rollouts"]["candidate"] > 0
    hgd.reset_calls()
    hgd.run(*args)  # everything from the cache now
    again = hgd.report()["calls"]
    assert hgd.calls() == [] and again["baseline"] == again["candidate"] == 0
    hits = again["cache_hits"]
    assert hits["baseline"] + hits["candidate"] >= made


def test_a_gate_that_collects_no_pair_file_is_an_error_not_a_pass(hgd: Gate) -> None:
    """`testpaths` pointing away from the pairs (or no pair file yet): --hgd gated nothing."""
    hgd.prompt("p.txt", {"*": "hello"})
    hgd.pytester.makepyfile(test_unit="def test_unit():\n    pass\n")
    hgd.pairs("pairs/x.hgd.yaml", conversation({"id": "a", "customer": "a", "reply": "hello"}))
    result = hgd.run("--hgd-candidate=p.txt", "test_unit.py")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.fnmatch_lines(["hgd: error: no pair file (*.hgd.yaml, *.hgd.yml) was collected*"])
    deselected = hgd.run("--hgd-candidate=p.txt", "-k", "nothing")  # a partial run, not this
    assert "no pair file" not in deselected.stdout.str()
