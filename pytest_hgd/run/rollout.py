"""Rollout: replay a conversation with the agent's own earlier replies as its history.

Pair tests are teacher-forced: each pair sees the recorded history. A rollout replays the
recorded customer turns in order and lets every later turn see what the agent itself said,
so an early drift shows up in the turns after it. No pytest here.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_hgd.core.checks import DEFAULT_CHECK, CheckType
from pytest_hgd.core.errors import AgentError
from pytest_hgd.core.model import Check, CheckResult, Conversation, Pair, Role, Turn
from pytest_hgd.run.prompts import Prompt
from pytest_hgd.run.runner import Scheduler

# (messages) -> the agent's reply, or raises AgentError
Ask = Callable[[list[dict[str, str]]], Awaitable[str]]
# (conversation, transcript so far, the recorded customer turn) -> the turn to use
Customer = Callable[[Conversation, list[dict[str, str]], str], str | None]


@dataclass(frozen=True)
class RolloutResult:
    """One prompt's rollout of one conversation."""

    passed: bool
    transcript: tuple[Turn, ...]
    turns: int
    first_failed_turn: int | None = None  # 1-based, counting customer turns
    failed_check: str | None = None
    message: str | None = None
    error: str | None = None
    results: tuple[tuple[int, CheckResult], ...] = field(default=())
    called: int = 0  # agent calls made for this rollout
    cached: int = 0  # replies taken from the cache instead

    def payload(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "turns": self.turns,
            "first_failed_turn": self.first_failed_turn,
            "failed_check": self.failed_check,
            "message": self.message,
            "error": self.error,
            "transcript": [{"speaker": t.speaker, "text": t.text} for t in self.transcript],
            "called": self.called,
            "cached": self.cached,
        }


def recorded_turns(conversation: Conversation) -> list[Turn]:
    """The whole recorded call: the longest pair's history and its customer message."""
    last = max(conversation.pairs, key=lambda p: len(p.history))
    return [*last.history, Turn("customer", last.customer)]


def pairs_by_turn(conversation: Conversation) -> dict[int, Pair]:
    """The pair asked at each customer turn (0-based), by the customer turns before it."""
    asked: dict[int, Pair] = {}
    for pair in conversation.pairs:
        if pair.retired is None and pair.review is None:
            asked.setdefault(sum(1 for t in pair.history if t.speaker == "customer"), pair)
    return asked


def render_transcript(transcript: list[Turn] | tuple[Turn, ...]) -> str:
    """What ``final:`` checks read: ``speaker: text`` lines."""
    return "\n".join(f"{turn.speaker}: {turn.text}" for turn in transcript)


async def _run(
    checks: tuple[Check, ...], text: str, pair: Pair, registry: Mapping[str, CheckType]
) -> list[CheckResult]:
    results = []
    for check in checks:
        outcome = registry[check.name].function(text, check.arg, pair)
        passed, message = await outcome if inspect.isawaitable(outcome) else outcome
        results.append(CheckResult(check.name, passed, "" if passed else message))
    return results


async def roll_out(
    conversation: Conversation,
    ask: Ask,
    registry: Mapping[str, CheckType],
    customer: Customer | None = None,
) -> RolloutResult:
    """Replay the conversation's customer turns; check each reply and the whole transcript."""
    asked = pairs_by_turn(conversation)
    transcript: list[Turn] = []
    customer_turns = 0
    results: list[tuple[int, CheckResult]] = []
    for turn in recorded_turns(conversation):
        if turn.speaker == "agent":
            if customer_turns == 0:
                transcript.append(turn)  # the recorded opener of the call
            continue
        text = turn.text
        if customer is not None:
            text = customer(conversation, [t.message() for t in transcript], turn.text) or text
        transcript.append(Turn("customer", text))
        customer_turns += 1
        try:
            reply = await ask([t.message() for t in transcript])
        except Exception as exc:  # the agent's fault: the rollout has no verdict
            return RolloutResult(False, tuple(transcript), customer_turns, error=str(exc))
        transcript.append(Turn("agent", reply))
        pair = asked.get(customer_turns - 1)
        if pair is not None:
            checks = pair.checks or (DEFAULT_CHECK,)
            for result in await _run(checks, reply, pair, registry):
                results.append((customer_turns, result))
    if conversation.final:
        anchor = conversation.pairs[0]
        for result in await _run(
            conversation.final, render_transcript(transcript), anchor, registry
        ):
            results.append((0, result))
    failure = next(((n, r) for n, r in results if not r.passed), None)
    if failure is None:
        return RolloutResult(True, tuple(transcript), customer_turns, results=tuple(results))
    turn_number, result = failure
    return RolloutResult(
        False,
        tuple(transcript),
        customer_turns,
        first_failed_turn=turn_number or None,
        failed_check=("final " if turn_number == 0 else "") + result.name,
        message=result.message,
        results=tuple(results),
    )


RolloutFuture = concurrent.futures.Future[RolloutResult]


class RolloutRunner:
    """Starts each conversation's rollout under every prompt on the scheduler's loop."""

    def __init__(
        self,
        scheduler: Scheduler,
        prompts: Sequence[tuple[Role, Prompt]],
        registry: Mapping[str, CheckType],
        customer: Customer | None,
    ) -> None:
        self.scheduler = scheduler
        self.prompts = prompts
        self.registry = registry
        self.customer = customer
        self.futures: dict[str, dict[Role, RolloutFuture]] = {}
        # (key, role) -> [calls made, replies from the cache]: every call is counted
        self.calls: dict[tuple[str, Role], list[int]] = {}

    def start(self, key: str, conversation: Conversation) -> dict[Role, RolloutFuture]:
        futures = self.futures.get(key)
        if futures is None:
            futures = {}
            for role, prompt in self.prompts:
                counts = self.calls.setdefault((key, role), [0, 0])
                ask = self._asker(role, prompt.text, counts)
                futures[role] = self.scheduler.run_coroutine(
                    roll_out(conversation, ask, self.registry, self.customer)
                )
            self.futures[key] = futures
        return futures

    def _asker(self, role: Role, prompt: str, counts: list[int]) -> Ask:
        async def ask(messages: list[dict[str, str]]) -> str:
            reply = await asyncio.wrap_future(self.scheduler.submit(role, prompt, messages, 0))
            counts[1 if reply.cached else 0] += 1
            if reply.error is not None or reply.text is None:
                raise AgentError(reply.error or "no reply")
            return reply.text

        return ask

    def results(
        self, key: str, conversation: Conversation
    ) -> tuple[RolloutResult | None, RolloutResult]:
        """Wait for the rollout under each prompt: (baseline or None, candidate)."""
        results: dict[Role, RolloutResult] = {}
        for role, future in self.start(key, conversation).items():
            try:
                result = future.result()
            except concurrent.futures.CancelledError:
                result = RolloutResult(False, (), 0, error="cancelled (the run is stopping)")
            called, cached = self.calls.get((key, role), (0, 0))
            results[role] = dataclasses.replace(result, called=called, cached=cached)
        return results.get(Role.BASELINE), results[Role.CANDIDATE]
