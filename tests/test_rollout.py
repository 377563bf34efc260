"""Rollouts: conversations replayed with the agent's own replies as their history."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import Gate

# Prices depend on the model the AGENT named earlier in the call: an early drift breaks a
# later turn only when the agent's own replies form the history.
ROLLOUT_AGENT = """
import json

def reply(prompt, messages):
    rules = json.loads(prompt)
    last = messages[-1]["content"]
    if last == "RAISE":
        raise RuntimeError("agent broke")
    if last.startswith("price"):
        said = " ".join(m["content"] for m in messages if m["role"] == "assistant")
        for model, price in rules["prices"].items():
            if model in said:
                return f"The {model} costs {price}. Shall a sales rep call you?"
        return "Which model do you mean?"
    return rules["replies"].get(last, "Sorry?")
"""

PRICES = {"Ridge": "$27,900"}
BASELINE = {"prices": PRICES, "replies": {"suv?": "We have the Ridge SUV."}}
DRIFTING = {"prices": PRICES, "replies": {"suv?": "We have a great SUV."}}


def call(rollout: bool = True, **extra: Any) -> dict[str, Any]:
    opener = {"agent": "Hi, Acme Motors."}
    return {
        "outcome": "lead",
        **({"rollout": True} if rollout else {}),
        **extra,
        "pairs": [
            {"id": "suv", "history": [opener], "customer": "suv?", "checks": [{"contains": "SUV"}]},
            {
                "id": "price",
                "history": [opener, {"customer": "suv?"}, {"agent": "We have the Ridge SUV."}],
                "customer": "price please",
                "checks": [{"contains": "$27,900"}],
            },
        ],
    }


def set_up_rollout(
    hgd: Gate, candidate: dict[str, Any], document: dict[str, Any]
) -> tuple[str, ...]:
    hgd.pytester.makepyfile(rollout_agent=ROLLOUT_AGENT)
    (hgd.path / "base.txt").write_text(json.dumps(BASELINE), encoding="utf-8")
    (hgd.path / "cand.txt").write_text(json.dumps(candidate), encoding="utf-8")
    hgd.pairs("call.hgd.yaml", document)
    return (
        "--hgd-agent=rollout_agent:reply",
        "--hgd-baseline=base.txt",
        "--hgd-candidate=cand.txt",
        "--hgd-report=report.json",
        "--hgd-no-ledger",
    )


def test_rollout_that_passes(hgd: Gate) -> None:
    result = hgd.run(*set_up_rollout(hgd, BASELINE | {"x": 1}, call()))
    result.assert_outcomes(passed=3)
    (rollout,) = hgd.report()["rollouts"]
    assert rollout["id"] == "call.hgd.yaml::rollout" and rollout["delta"] == "kept"
    assert rollout["candidate"]["passed"] is True
    assert [t["text"] for t in rollout["candidate"]["transcript"]] == [
        "Hi, Acme Motors.",
        "suv?",
        "We have the Ridge SUV.",
        "price please",
        "The Ridge costs $27,900. Shall a sales rep call you?",
    ]


def test_a_later_turn_fails_only_because_of_an_earlier_reply(hgd: Gate) -> None:
    result = hgd.run(*set_up_rollout(hgd, DRIFTING, call()))
    result.assert_outcomes(passed=2, failed=1)  # both pairs pass teacher-forced
    assert result.ret == 1
    report = hgd.report()
    assert report["counts"]["kept"] == 2 and report["verdict"] == "fail"
    assert "1 rollout regressed" in report["verdict_reasons"]
    (rollout,) = report["rollouts"]
    assert rollout["delta"] == "regressed"
    assert rollout["baseline"]["passed"] is True
    candidate = rollout["candidate"]
    assert candidate["first_failed_turn"] == 2
    assert candidate["failed_check"] == "contains"
    assert candidate["transcript"][-1]["text"] == "Which model do you mean?"
    summary = report["rollout_summary"]
    assert summary["teacher_forced_pass_rate"] == 1.0 and summary["free_running_pass_rate"] == 0.0
    assert [h["conversation"] for h in summary["pairs_pass_rollout_fails"]] == ["call"]
    result.stdout.fnmatch_lines(
        [
            "*regressed: rollout of call (call.hgd.yaml::rollout)*",
            "*candidate: failed at turn 2: contains: missing '$27,900'*",
            "*  agent: Which model do you mean?*",
            "rollouts: 1 regressed; candidate pass rate teacher-forced (pairs) 100%, free-running (rollouts) 0%",
            "every pair passes but the rollout fails (compounding errors):",
            "  call (call.hgd.yaml::rollout): fails at turn 2, contains: missing '$27,900'",
        ]
    )


@pytest.mark.parametrize(
    ("pattern", "passes"), [("sales rep call you\\?$", True), ("goodbye", False)]
)
def test_final_checks_read_the_whole_transcript(hgd: Gate, pattern: str, passes: bool) -> None:
    document = call(final=[{"regex": pattern}, {"contains": "customer: price please"}])
    result = hgd.run(*set_up_rollout(hgd, BASELINE | {"x": 1}, document))
    (rollout,) = hgd.report()["rollouts"]
    assert rollout["candidate"]["passed"] is passes
    if not passes:
        assert rollout["delta"] == "still_failing"
        assert rollout["candidate"]["failed_check"] == "final regex"
        assert rollout["candidate"]["first_failed_turn"] is None
        result.assert_outcomes(passed=2, xfailed=1)


def test_rollout_flag_and_keyword(hgd: Gate) -> None:
    args = set_up_rollout(hgd, BASELINE | {"x": 1}, call(rollout=False))
    hgd.run(*args).assert_outcomes(passed=2)
    result = hgd.run(*args, "--hgd-rollout", "-k", "rollout")
    result.assert_outcomes(passed=1, deselected=2)


def test_customer_simulator_hook(hgd: Gate) -> None:
    hgd.pytester.makeconftest("""
import pytest

@pytest.hookimpl(optionalhook=True)
def pytest_hgd_customer_turn(config, conversation, transcript, recorded):
    return "price for me?" if recorded.startswith("price") else None
""")
    hgd.run(*set_up_rollout(hgd, BASELINE | {"x": 1}, call()))
    (rollout,) = hgd.report()["rollouts"]
    assert rollout["candidate"]["transcript"][3]["text"] == "price for me?"
    assert rollout["candidate"]["passed"] is True


def test_agent_error_in_a_rollout_is_an_error(hgd: Gate) -> None:
    document = call()
    document["pairs"][1]["customer"] = "RAISE"
    result = hgd.run(*set_up_rollout(hgd, BASELINE | {"x": 1}, document))
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*agent error in the rollout under the baseline prompt: agent raised RuntimeError: agent broke*"
        ]
    )
    assert hgd.report()["rollouts"][0]["delta"] == "error"


def test_rollout_id_is_reserved(hgd: Gate) -> None:
    document = call()
    document["pairs"][0]["id"] = "rollout"
    result = hgd.run(*set_up_rollout(hgd, BASELINE, document))
    result.stdout.fnmatch_lines(
        ["*pair id 'rollout' is reserved for the conversation's rollout item*"]
    )


def test_rollouts_under_xdist(hgd: Gate) -> None:
    pytest.importorskip("xdist")
    result = hgd.run(*set_up_rollout(hgd, DRIFTING, call()), "-p", "xdist", "-n", "2")
    result.assert_outcomes(passed=2, failed=1)
    assert hgd.report()["rollouts"][0]["candidate"]["first_failed_turn"] == 2
