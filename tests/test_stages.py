"""The pipeline's stages one at a time, without pytest running a gate: the evaluator (with
the real scheduler and a tiny agent), the ledger record, the summary and the advice."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from openai_server import OpenAIServer

from pytest_hgd.agents.judge import Judge, JudgeError
from pytest_hgd.core import gate
from pytest_hgd.core.checks import BUILTIN_CHECKS
from pytest_hgd.core.model import Check, Conversation, Delta, Kind, Outcome, Pair, Role, Turn
from pytest_hgd.core.record import calls, ledger_record, trend_point
from pytest_hgd.core.settings import JudgeSettings
from pytest_hgd.core.stats import PassCounts
from pytest_hgd.plugin.advice import next_command
from pytest_hgd.reports.summary import pressure_components, pressure_lines
from pytest_hgd.run.evaluator import Evaluator
from pytest_hgd.run.probe import ProbePlan, run_probe
from pytest_hgd.run.prompts import Prompt
from pytest_hgd.run.rollout import RolloutRunner
from pytest_hgd.run.runner import CallSettings, Scheduler
from pytest_hgd.storage.cache import ReplyCache

REGISTRY = {check.name: check for check in BUILTIN_CHECKS}


class Script:
    """An agent that answers from a table: (prompt, customer message) -> reply."""

    def __init__(self, answers: dict[tuple[str, str], str]) -> None:
        self.identity = {"kind": "test", "name": "script"}
        self.answers = answers
        self.calls: list[tuple[str, str]] = []

    async def reply(self, prompt: str, messages: list[dict[str, str]]) -> str:
        self.calls.append((prompt, messages[-1]["content"]))
        return self.answers[(prompt, messages[-1]["content"])]

    async def aclose(self) -> None:
        return None


def pair(pid: str, samples: int | None = None) -> Pair:
    return Pair(
        path="c.hgd.yaml",
        conversation="c",
        outcome=Outcome.LEAD,
        id=pid,
        kind=Kind.LOCKED,
        history=(),
        customer=pid,
        reply=None,
        checks=(Check("contains", "good"),),
        tags=(),
        samples=samples,
    )


def prompt(text: str) -> Prompt:
    return Prompt(source=f"{text}.txt", text=text)


@pytest.fixture
def scheduler_for() -> Any:
    made: list[Scheduler] = []

    def make(agent: Script) -> Scheduler:
        settings = CallSettings(
            timeout=5, concurrency=4, agent_version=None, read_cache=False, write_cache=False
        )
        made.append(Scheduler(agent, None, settings))
        return made[-1]

    yield make
    for scheduler in made:
        scheduler.close()


def test_the_evaluator_gives_each_pair_its_one_shot_delta(scheduler_for: Any) -> None:
    agent = Script(
        {("B", "kept"): "good", ("C", "kept"): "good", ("B", "drop"): "good",
         ("C", "drop"): "bad", ("B", "fix"): "bad", ("C", "fix"): "good"}
    )  # fmt: skip
    evaluator = Evaluator(scheduler_for(agent), REGISTRY, prompt("C"), prompt("B"), 1, 0.05)
    deltas = {}
    for pid in ("kept", "drop", "fix"):
        baseline, candidate = evaluator.evaluate(pid, pair(pid))
        deltas[pid] = evaluator.decision(pid, baseline, candidate).delta
    assert deltas == {"kept": Delta.KEPT, "drop": Delta.REGRESSED, "fix": Delta.FIXED}
    assert sorted(agent.calls) == sorted(agent.answers)  # one call per pair and prompt


def test_the_evaluator_decides_a_sampled_batch_as_one_family(scheduler_for: Any) -> None:
    answers = {("B", f"p{i}"): "good" for i in range(3)}
    answers |= {("C", "p0"): "bad", ("C", "p1"): "good", ("C", "p2"): "good"}
    evaluator = Evaluator(
        scheduler_for(Script(answers)), REGISTRY, prompt("C"), prompt("B"), 5, 0.05
    )
    batch = [(f"p{i}", pair(f"p{i}")) for i in range(3)]
    seen: list[tuple[int, int]] = []
    evaluator.decide_batch(batch, 0.05, lambda done, total: seen.append((done, total)))
    decided = {pid: evaluator.decisions[pid] for pid, _ in batch}
    assert decided["p0"].delta == Delta.REGRESSED and decided["p1"].delta == Delta.KEPT
    assert decided["p0"].sampled is not None and decided["p0"].sampled.p_regress == pytest.approx(
        1 / 252
    )
    assert seen and seen[-1] == (30, 30)  # 3 pairs, 2 prompts, 5 samples: progress to the end
    baseline, candidate = evaluator.evaluate("p0", batch[0][1])
    assert baseline is not None and (baseline.passes, candidate.passes) == (5, 0)


def test_a_ledger_record_holds_each_pairs_counts_and_what_came_from_the_cache() -> None:
    payloads = [
        {"id": "c::a", "kind": "locked", "delta": "kept", "pair_hash": "h",
         "baseline": {"passes": 1, "runs": 1, "called": 0},
         "candidate": {"passes": 1, "runs": 1, "called": 1}},
        {"id": "c::b", "kind": "locked", "delta": "regressed",
         "baseline": {"passes": 5, "runs": 10, "called": 5, "fresh": [0, 5]},
         "candidate": {"passes": 0, "runs": 5, "called": 5}},
    ]  # fmt: skip
    record = ledger_record(
        payloads, [{"id": "c::old", "status": "retired", "reason": "stale"}],
        baseline_hash="b", candidate_hash="c", agent={"kind": "test"}, verdict="fail",
        alpha=0.05, commit=None,
    )  # fmt: skip
    assert record["pairs"]["c::a"] == {
        "kind": "locked", "delta": "kept", "baseline": [1, 1], "candidate": [1, 1],
        "baseline_cached": True, "pair_hash": "h",
    }  # fmt: skip
    assert record["pairs"]["c::b"]["baseline_fresh"] == [0, 5]
    assert record["regressed"] == ["c::b"] and record["retired"] == ["c::old"]
    assert record["gate"] == {"samples": 5, "alpha": 0.05}  # K; the pool holds 10
    assert calls(payloads)["baseline"] == 5 and calls(payloads)["cache_hits"]["baseline"] == 6
    assert trend_point({**record, "pressure": {"value": 0.5}})["candidate"] is True
    assert trend_point({**record, "partial": True, "pressure": {"value": 0.5}}) is None


def test_gate_rules_in_one_place() -> None:
    assert gate.one_shot_delta(None, True) == Delta.NEW_PASS
    assert gate.one_shot_delta(True, False) == Delta.REGRESSED
    assert gate.fails_gate(Delta.STILL_FAILING, strict=True)
    assert not gate.fails_gate(Delta.STILL_FAILING, strict=False)
    counts = gate.count_deltas(["regressed", "error", "kept"])
    assert gate.verdict_reasons(counts, strict=False) == ["1 regressed", "1 error"]
    assert gate.verdict([]) == "pass" and gate.verdict(["1 error"]) == "fail"


def test_the_summary_shows_each_pressure_component_once() -> None:
    pressure = {
        "constraints": {"value": 5, "locked": 4, "corrected": 1, "growth": 2, "runs": 3},
        "epsilon": {"value": None, "failing": 0, "passing": 0, "share": None},
        "survival": {"value": 0.9, "band": [0.8, 1.0], "reruns": 12, "unobserved": 1},
        "binding": [],
    }
    rows = {name: (value, detail) for name, value, detail in pressure_components(pressure)}
    assert rows["constraints"][0] == "5" and "4 locked + 1 corrected" in rows["constraints"][1]
    assert rows["epsilon"][0] == "undefined"
    assert rows["survival"] == (
        "0.900 [0.80, 1.00]",
        "chance the unchanged baseline passes every enforced pair again; 12 re-runs seen, "
        "1 pairs without one yet",
    )
    assert set(rows) == {"constraints", "epsilon", "survival"}  # none made up


@pytest.mark.parametrize(
    ("report", "baseline", "lf_works", "expected"),
    [
        ({"verdict": "fail", "pairs": [{"delta": "regressed"}], "rollouts": []}, True, True,
         "fix the prompt, then rerun the failing pairs first: pytest --hgd --lf"),
        ({"verdict": "fail", "pairs": [{"delta": "error"}], "rollouts": []}, True, False,
         "check the agent or its endpoint (the errors above say what it did), then rerun the "
         "failing pairs first: pytest --hgd"),
        ({"verdict": "pass", "partial": True, "pairs": [], "rollouts": []}, True, True,
         "run every enforced pair (no -k, -m, --lf, --deselect, node ids or -x) for the gate's "
         "verdict"),
        ({"verdict": "pass", "pairs": [], "rollouts": []}, False, True,
         "compare against the champion: pytest --hgd --hgd-baseline=git:main:PATH"),
        ({"verdict": "pass", "pairs": [], "rollouts": []}, True, True,
         "the candidate passes the gate: merge it to make it the champion"),
    ],
)  # fmt: skip
def test_the_next_command(
    report: dict[str, Any], baseline: bool, lf_works: bool, expected: str
) -> None:
    assert next_command(report, ["--hgd"], has_baseline=baseline, lf_works=lf_works) == expected


class Echo(Script):
    """Answers "good" unless the prompt has lost the sentence the pairs need."""

    def __init__(self) -> None:
        super().__init__({})

    async def reply(self, prompt: str, messages: list[dict[str, str]]) -> str:
        self.calls.append((prompt, messages[-1]["content"]))
        return "good" if "Say good." in prompt else "bad"


def test_the_probe_counts_the_mutants_that_pass_against_the_reference(
    scheduler_for: Any,
) -> None:
    candidate = "Say good.\nBe brief.\nBe kind.\nThank them.\n"
    plan = ProbePlan([(f"c::{p}", pair(p)) for p in ("a", "b")], {
        "c::a": PassCounts(1, 1), "c::b": PassCounts(1, 1)
    }, samples=1)  # fmt: skip
    agent = Echo()
    seen: list[tuple[int, int]] = []
    result = run_probe(
        plan, candidate, 8, 3, scheduler=scheduler_for(agent), registry=REGISTRY, alpha=0.05,
        progress=lambda done, total: seen.append((done, total)),
    )  # fmt: skip
    prompts = {prompt for prompt, _ in agent.calls}
    assert result.total == len(prompts) == 8 and len(agent.calls) == 2 * 8  # a call per pair
    # A mutant passes exactly when it kept the sentence both pairs need.
    assert result.passed == sum(1 for prompt in prompts if "Say good." in prompt)
    assert 0 < result.passed < 8 and seen[-1] == (8, 8)
    assert all(d["regressed"] in (0, 2) for d in result.details)


class Drifting(Script):
    """Fine on the first turn; from the second on, fine only when its own earlier reply
    stayed on script (a compounding error the recorded history hides)."""

    def __init__(self, first: str) -> None:
        super().__init__({})
        self.first = first

    async def reply(self, prompt: str, messages: list[dict[str, str]]) -> str:
        self.calls.append((prompt, messages[-1]["content"]))
        own = [m["content"] for m in messages if m["role"] == "assistant"]
        if not own:
            return self.first if prompt == "C" else "good"
        return "good" if own[-1] == "good" else "lost"


def test_a_rollout_replays_the_agents_own_replies_and_finds_the_compounding_error(
    scheduler_for: Any,
) -> None:
    first = pair("t1")
    second = dataclasses.replace(
        first, id="t2", customer="t2", history=(Turn("customer", "t1"), Turn("agent", "good"))
    )
    conversation = Conversation("c.hgd.yaml", "c", (first, second), rollout=True)
    agent = Drifting(first="good, mostly")  # passes `contains: good` on turn 1, then drifts
    runner = RolloutRunner(
        scheduler_for(agent), [(Role.BASELINE, prompt("B")), (Role.CANDIDATE, prompt("C"))],
        REGISTRY, None,
    )  # fmt: skip
    baseline, candidate = runner.results("c.hgd.yaml::rollout", conversation)
    assert baseline is not None and baseline.passed and baseline.called == 2
    assert not candidate.passed and candidate.first_failed_turn == 2
    assert candidate.failed_check == "contains" and candidate.called == 2
    assert [t.text for t in candidate.transcript] == ["t1", "good, mostly", "t2", "lost"]


def test_the_judge_asks_once_per_question_and_refuses_a_non_verdict(tmp_path: Path) -> None:
    """The judge on its own, against a loopback OpenAI-compatible server: a verdict is
    parsed and cached (the same question is not asked again), a nonsense answer is an
    error and never cached."""

    def verdict(body: dict[str, Any]) -> str:
        said = body["messages"][-1]["content"]
        if "rambles" in said:
            return "I think it is fine?"
        passed = "reply:\nA sales rep" in said  # the reply, not the criterion, says it
        return json.dumps({"verdict": "pass" if passed else "fail", "reason": "r"})

    with OpenAIServer(reply=verdict) as server:
        settings = JudgeSettings("judge-model", server.base_url, None, 10.0)
        judge = Judge(settings, ReplyCache(tmp_path / "cache"))
        criterion = {"criterion": "offers a sales rep"}

        async def ask(reply: str) -> tuple[bool, str]:
            return await judge.check(reply, criterion, pair("q"))

        async def all_questions() -> list[Any]:
            try:
                first = await ask("A sales rep will call you.")
                again = await ask("A sales rep will call you.")
                other = await ask("Bye.")
                with pytest.raises(JudgeError, match="not a verdict"):
                    await ask("It rambles.")
                return [first, again, other]
            finally:
                await judge.aclose()

        first, again, other = asyncio.run(all_questions())
        assert first == again and first[0] is True and other[0] is False
        assert "criterion: 'offers a sales rep'" in first[1]
        assert len(server.requests) == 3  # the repeated question came from the cache


def test_the_summary_says_when_binding_constraints_are_cut() -> None:
    binding = [{"id": f"c::p{i}", "blocked": 9 - i, "kind": "locked"} for i in range(7)]
    (line,) = [x for x in pressure_lines({"value": 0.5, "binding": binding}) if "binding" in x]
    assert line.endswith("c::p4 (5); +2 more in the JSON report")


def test_auto_samples_check_each_reply_once(scheduler_for: Any) -> None:
    """A screened pair's screen replies are checked to decide whether it goes on; the
    pair's evaluation then checks only the rest (a judge is asked once per reply)."""
    from pytest_hgd.core.checks import CheckType, check_contains

    checked: list[str] = []

    def counting(reply: str, arg: Any, pair: Pair) -> tuple[bool, str]:
        checked.append(reply)
        return check_contains(reply, arg, pair)

    registry = {"contains": CheckType("contains", counting, {"type": "string"})}
    answers = {("B", "drop"): "good", ("C", "drop"): "bad", ("B", "flat"): "good",
               ("C", "flat"): "good"}  # fmt: skip
    evaluator = Evaluator(
        scheduler_for(Script(answers)), registry, prompt("C"), prompt("B"), 6, 0.05, auto=True
    )
    batch = [("drop", pair("drop")), ("flat", pair("flat"))]
    evaluator.decide_batch(batch, 0.05)
    baseline, candidate = evaluator.evaluate("drop", pair("drop"))
    assert baseline is not None and (baseline.runs, candidate.runs) == (6, 6)
    assert evaluator.decisions["drop"].delta == Delta.REGRESSED
    flat = evaluator.evaluate("flat", pair("flat"))
    assert flat[1].runs == 2  # stopped at the screen
    assert len(checked) == 6 + 6 + 2 + 2  # every reply once
