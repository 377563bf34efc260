"""The run's decision as a pure function of its evidence: counts, verdict, reasons, ledger
record and pressure made once, and the report reading them unchanged."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest
from conftest import Gate, conversation

from pytest_hgd.core.decision import Policy, RunEvidence, decide_run
from pytest_hgd.reports.report import build_report, validate, validate_evidence

AGENT = {"kind": "python", "target": "agent:reply", "source_sha256": "a" * 64}
PROMPTS = {"candidate": {"source": "c.txt", "sha256": "c" * 64}, "baseline": None}


def payload(pid: str, delta: str, base: int | None = 1, cand: int = 1, **extra: Any) -> dict:
    side = {"passes": cand, "runs": 1, "called": 1, "checks": []}
    out = {
        "id": f"pairs/a.hgd.yaml::{pid}",
        "kind": "locked",
        "delta": delta,
        "tags": [],
        "candidate": side,
        "baseline": None if base is None else {**side, "passes": base},
        "pair_hash": pid * 8,
    }
    if delta == "error":
        out.update(baseline=None, candidate=None, error="candidate: agent timed out")
    return {**out, **extra}


def rollout(delta: str, base: bool = True, cand: bool = True) -> dict:
    def side(passed: bool) -> dict:
        return {"passed": passed, "turns": 2, "first_failed_turn": None, "transcript": [],
                "called": 2, "cached": 0}  # fmt: skip

    return {
        "id": "pairs/a.hgd.yaml::rollout",
        "conversation": "a",
        "rollout": True,
        "delta": delta,
        "baseline": side(base),
        "candidate": side(cand),
        "error": None,
    }


def evidence(
    *pairs: dict, rollouts: tuple[dict, ...] = (), why: list[str] | None = None
) -> RunEvidence:
    return RunEvidence(
        pairs=list(pairs),
        skipped=[],
        rollouts=list(rollouts),
        baseline_hash="b" * 64,
        candidate_hash="c" * 64,
        agent=AGENT,
        selection={"ran": len(pairs), "enforced": len(pairs), "why": why or [], "at_least": False},
    )


def test_counts_reasons_and_verdict_come_from_the_evidence() -> None:
    run = evidence(
        payload("a", "kept"), payload("b", "regressed", cand=0), payload("c", "fixed", 0)
    )
    decision = decide_run(run, Policy())
    assert decision.counts["kept"] == decision.counts["regressed"] == decision.counts["fixed"] == 1
    assert decision.reasons == ["1 regressed"] and decision.verdict == "fail"
    assert decision.record["verdict"] == "fail" and decision.record["regressed"] == [
        "pairs/a.hgd.yaml::b"
    ]
    assert decision.record["pressure"] == decision.pressure


def test_still_failing_fails_only_a_strict_gate() -> None:
    run = evidence(payload("a", "still_failing", 0, 0))
    assert decide_run(run, Policy()).verdict == "pass"
    strict = decide_run(run, Policy(strict=True))
    assert strict.reasons == ["1 still_failing (--hgd-strict)"] and strict.verdict == "fail"


def test_a_failing_rollout_fails_the_gate() -> None:
    drift = rollout("regressed", cand=False)
    decision = decide_run(evidence(payload("a", "kept"), rollouts=(drift,)), Policy())
    assert decision.rollout_counts["regressed"] == 1
    assert decision.reasons == ["1 rollout regressed"] and decision.verdict == "fail"


def test_max_pressure_fails_the_verdict_but_not_the_evidence_pressure_reads() -> None:
    history = [
        decide_run(evidence(payload("a", "regressed", cand=0)), Policy()).record for _ in range(3)
    ]  # the same rejected candidate: one candidate, counted once
    history = [{**r, "candidate_hash": str(i) * 64} for i, r in enumerate(history)]
    decision = decide_run(evidence(payload("a", "kept")), Policy(max_pressure=0.1), history)
    assert decision.pressure["value"] > 0.1
    assert decision.reasons == [f"pressure {decision.pressure['value']:.2f} above "
                                "--hgd-max-pressure=0.1"]  # fmt: skip
    assert decision.verdict == decision.record["verdict"] == "fail"
    assert decision.pressure["acceptance"]["accepted"] == 1  # this run passed on its evidence


def test_a_partial_run_is_marked_in_its_record_and_no_evidence_for_the_next() -> None:
    partial = decide_run(evidence(payload("a", "regressed", cand=0), why=["-k"]), Policy())
    assert partial.record["partial"] is True
    after = decide_run(evidence(payload("a", "kept")), Policy(), [partial.record])
    alone = decide_run(evidence(payload("a", "kept")), Policy())
    assert after.pressure == alone.pressure
    assert after.trend == alone.trend  # a partial run is no point of the trend either


def test_the_decision_is_pure_and_the_report_reads_it_unchanged() -> None:
    run = evidence(payload("a", "kept"), payload("b", "regressed", cand=0))
    history = [decide_run(run, Policy()).record]
    frozen = copy.deepcopy((run, history))
    first, second = decide_run(run, Policy(), history), decide_run(run, Policy(), history)
    assert first == second and (run, history) == frozen  # same in, same out; inputs untouched
    report = build_report(run, first, strict=False, prompts=PROMPTS)
    validate(report)
    assert report["counts"] == first.counts and report["verdict"] == first.verdict
    assert report["verdict_reasons"] == first.reasons and report["pressure"] == first.pressure
    assert report["calls"] == first.calls and report["trend"] == first.trend


@pytest.mark.parametrize("window", [0, -1])
def test_a_bad_policy_is_refused(window: int) -> None:
    with pytest.raises(ValueError, match="window"):
        decide_run(evidence(payload("a", "kept")), Policy(pressure_window=window))


def test_evidence_round_trips_through_its_schema() -> None:
    run = evidence(
        payload("a", "kept"), payload("b", "regressed", cand=0), rollouts=(rollout("kept"),)
    )
    data = json.loads(json.dumps(run.to_json()))
    validate_evidence(data)
    again = RunEvidence.from_json(data)
    assert again == run and decide_run(again, Policy()) == decide_run(run, Policy())
    broken = {**data, "pairs": [{**data["pairs"][0], "delta": "maybe"}]}
    with pytest.raises(jsonschema.ValidationError):
        validate_evidence(broken)
    with pytest.raises(jsonschema.ValidationError):
        validate_evidence({k: v for k, v in data.items() if k != "candidate_hash"})


@pytest.mark.parametrize("workers", [(), ("-p", "xdist", "-n", "2")], ids=["serial", "xdist"])
def test_a_real_runs_report_decides_again_to_the_same_decision(
    hgd: Gate, workers: tuple[str, ...]
) -> None:
    """The evidence a run reports, decided again by `decide_run` alone (as a merge would),
    gives the run's own counts, verdict, reasons, pressure and calls."""
    hgd.prompt("base.txt", {"*": "good"})
    hgd.prompt("cand.txt", {"*": "good", "q1": "bad", "q2": "bad"})
    hgd.pairs(
        "c.hgd.yaml",
        conversation(
            *(
                {"id": f"q{i}", "customer": f"q{i}", "checks": [{"contains": "good"}]}
                for i in range(5)
            ),
            {"id": "old", "customer": "old", "reply": "good", "retired": "no longer offered"},
        ),
    )
    args = ("--hgd-baseline=base.txt", "--hgd-candidate=cand.txt", "--hgd-report=report.json")
    result = hgd.run(*args, "--hgd-no-ledger", *workers)
    result.assert_outcomes(passed=3, failed=2, skipped=1)
    report = hgd.report()
    run = RunEvidence(
        pairs=report["pairs"],
        skipped=report["skipped"],
        rollouts=report["rollouts"],
        baseline_hash=report["prompts"]["baseline"]["sha256"],
        candidate_hash=report["prompts"]["candidate"]["sha256"],
        agent=report["agent"],
        selection=report["selection"],
    )
    validate_evidence(run.to_json())
    again = decide_run(run, Policy())
    assert again.counts == report["counts"] and again.verdict == report["verdict"] == "fail"
    assert again.reasons == report["verdict_reasons"] == ["2 regressed"]
    assert again.calls == report["calls"] and again.samples == report["samples"]
    assert again.pressure == report["pressure"]


def test_what_a_run_says_of_its_change_is_in_its_record() -> None:
    """A candidate failed only by a rollout was read as "failed on errors" (inconclusive)
    and left out of acceptance; one failed only by --hgd-max-pressure likewise. The record
    now says what the pairs and rollouts said: `change` and `other_blockers`."""
    drift = rollout("regressed", cand=False)
    rolled = decide_run(evidence(payload("a", "kept"), rollouts=(drift,)), Policy()).record
    assert (rolled["verdict"], rolled["change"], rolled["other_blockers"]) == (
        "fail",
        "rejected",
        1,
    )
    errored = decide_run(evidence(payload("a", "error")), Policy()).record
    assert (errored["change"], errored["other_blockers"]) == ("inconclusive", 0)
    strict = decide_run(evidence(payload("a", "still_failing", 0, 0)), Policy(strict=True))
    assert (strict.record["change"], strict.record["other_blockers"]) == ("rejected", 1)
    history = [{**rolled, "candidate_hash": "x" * 64}]
    pressured = decide_run(evidence(payload("a", "kept")), Policy(max_pressure=0.0), history)
    assert pressured.verdict == "fail" and pressured.record["change"] == "accepted"
    # Read back as history, each counts as what it said.
    later = decide_run(evidence(payload("a", "kept")), Policy(), [*history, pressured.record])
    acceptance = later.pressure["acceptance"]
    assert (acceptance["accepted"], acceptance["rejected"], acceptance["inconclusive"]) == (1, 1, 0)
    assert later.pressure["binding"] == []  # a rollout is not a pair: no binding constraint
