"""The scheduler on its own (`run/runner.py`): concurrent calls up to the limit, identical
calls made once, replies written to the cache and served from it, agent faults as replies."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pytest_hgd.core.model import Role
from pytest_hgd.run.runner import CallSettings, Scheduler
from pytest_hgd.storage.cache import ReplyCache


class SlowAgent:
    """Answers ``echo: <message>`` after a pause, counting how many calls run at once."""

    def __init__(self, pause: float = 0.05) -> None:
        self.identity = {"kind": "test", "name": "slow"}
        self.pause = pause
        self.running = 0
        self.most = 0
        self.calls: list[str] = []

    async def reply(self, prompt: str, messages: list[dict[str, str]]) -> str:
        message = messages[-1]["content"]
        self.calls.append(message)
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(self.pause)
            if message == "boom":
                raise RuntimeError("the model is down")
            return f"echo: {message}"
        finally:
            self.running -= 1

    async def aclose(self) -> None:
        return None


def settings(concurrency: int = 4, cache: bool = False) -> CallSettings:
    return CallSettings(
        timeout=5, concurrency=concurrency, agent_version=None, read_cache=cache, write_cache=cache
    )


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_calls_run_concurrently_up_to_the_limit_and_identical_calls_are_made_once() -> None:
    agent = SlowAgent()
    scheduler = Scheduler(agent, None, settings(concurrency=3))
    try:
        futures = [scheduler.submit(Role.CANDIDATE, "P", ask(f"q{i}"), 0) for i in range(9)]
        again = scheduler.submit(Role.CANDIDATE, "P", ask("q0"), 0)
        replies = [f.result(timeout=10) for f in futures]
        assert [r.text for r in replies] == [f"echo: q{i}" for i in range(9)]
        assert again.result(timeout=10).text == "echo: q0"
        assert agent.most == 3 and sorted(agent.calls) == sorted(f"q{i}" for i in range(9))
        other_sample = scheduler.submit(Role.CANDIDATE, "P", ask("q0"), 1)
        assert other_sample.result(timeout=10).text == "echo: q0" and len(agent.calls) == 10
    finally:
        scheduler.close()


def test_an_agent_fault_is_a_reply_with_an_error_not_a_crash() -> None:
    scheduler = Scheduler(SlowAgent(), None, settings())
    try:
        reply = scheduler.submit(Role.BASELINE, "P", ask("boom"), 0).result(timeout=10)
    finally:
        scheduler.close()
    assert reply.text is None and reply.error is not None
    assert "RuntimeError: the model is down" in reply.error


def test_replies_are_cached_and_the_next_scheduler_reads_them(tmp_path: Path) -> None:
    first_agent = SlowAgent()
    scheduler = Scheduler(first_agent, ReplyCache(tmp_path / "cache"), settings(cache=True))
    try:
        assert scheduler.submit(Role.BASELINE, "P", ask("q"), 0).result(timeout=10).cached is False
        assert scheduler.at_hand("P", ask("q"), 1) is None  # nothing called for it
        scheduler.flush()
    finally:
        scheduler.close()
    agent = SlowAgent()
    scheduler = Scheduler(agent, ReplyCache(tmp_path / "cache"), settings(cache=True))
    try:
        reply = scheduler.submit(Role.BASELINE, "P", ask("q"), 0).result(timeout=10)
        at_hand = scheduler.at_hand("P", ask("q"), 0)
        assert at_hand is not None and at_hand.result().text == "echo: q"
    finally:
        scheduler.close()
    assert (reply.text, reply.cached) == ("echo: q", True)
    assert agent.calls == [] and first_agent.calls == ["q"]


def test_cancelling_pending_calls_leaves_none_running() -> None:
    """Twenty calls of 0.5 s one at a time; cancelled after the first: the rest are never
    made (a loaded machine may have started a few more meanwhile)."""
    agent = SlowAgent(pause=0.5)
    scheduler = Scheduler(agent, None, settings(concurrency=1))
    try:
        futures = [scheduler.submit(Role.CANDIDATE, "P", ask(f"q{i}"), 0) for i in range(20)]
        futures[0].result(timeout=30)
        cancelled = scheduler.cancel_pending()
        assert cancelled >= 1 and sum(f.cancelled() for f in futures) == cancelled
    finally:
        scheduler.close()
    assert len(agent.calls) < 20


@pytest.mark.parametrize("concurrency", [1, 8])
def test_every_call_is_answered_whatever_the_concurrency(concurrency: int) -> None:
    agent = SlowAgent(pause=0.001)
    scheduler = Scheduler(agent, None, settings(concurrency=concurrency))
    try:
        futures = [scheduler.submit(Role.CANDIDATE, "P", ask("q"), s) for s in range(40)]
        assert all(f.result(timeout=10).text == "echo: q" for f in futures)
    finally:
        scheduler.close()
    assert len(agent.calls) == 40 and agent.most <= concurrency


def test_a_budget_counts_distinct_new_calls_and_refuses_past_it(tmp_path: Path) -> None:
    agent = SlowAgent(pause=0.001)
    scheduler = Scheduler(agent, ReplyCache(tmp_path / "cache"), settings(cache=True))
    try:
        scheduler.submit(Role.CANDIDATE, "P", ask("q"), 0).result(timeout=10)
        draws = [("P", ask("q"), 0), ("P", ask("q"), 1), ("P", ask("q"), 1), ("Q", ask("q"), 0)]
        assert scheduler.new_calls(draws) == 2  # sample 0 asked already; sample 1 once
        scheduler.budget = 2
        assert not scheduler.reserve(3) and scheduler.budget == 2
        assert scheduler.reserve(1) and scheduler.budget == 1
        assert scheduler.submit(Role.CANDIDATE, "P", ask("r"), 0).result(timeout=10).text
        refused = scheduler.submit(Role.CANDIDATE, "P", ask("s"), 0).result(timeout=10)
        assert refused.text is None and refused.error is not None
        assert "--hgd-max-calls" in refused.error
        assert scheduler.submit(Role.CANDIDATE, "P", ask("q"), 0).result().text == "echo: q"
    finally:
        scheduler.close()
    assert agent.calls == ["q", "r"]
