"""The ``judge:`` check: an OpenAI-compatible model judges a reply against a criterion."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Mapping
from typing import Any

from pytest_hgd.agents.http_agent import HTTPAgent, HTTPAgentSettings
from pytest_hgd.core.checks import CheckType, excerpt
from pytest_hgd.core.errors import AgentError
from pytest_hgd.core.model import Pair
from pytest_hgd.core.settings import JudgeSettings
from pytest_hgd.storage.cache import CacheError, ReplyCache, reply_key

RUBRIC_VERSION = "judge-rubric-1"
RUBRIC = """You judge one reply of a customer-service agent on a phone call.
You get the conversation so far, the agent's reply, and one criterion.
Decide whether the reply meets the criterion. Judge only that criterion.
Answer with one JSON object and nothing else:
{"verdict": "pass" or "fail", "reason": "<one sentence>"}"""

SCHEMA: Mapping[str, Any] = {
    "oneOf": [
        {"type": "string", "minLength": 1},
        {
            "type": "object",
            "required": ["criterion"],
            "properties": {"criterion": {"type": "string", "minLength": 1}},
            "additionalProperties": False,
        },
    ]
}


class JudgeError(AgentError):
    """The judge could not be asked, or answered something that is not a verdict."""


def criterion_of(arg: str | Mapping[str, str]) -> str:
    return arg if isinstance(arg, str) else arg["criterion"]


def judge_prompt(pair: Pair, reply: str, criterion: str) -> str:
    """The user message the judge reads: conversation, reply, criterion."""
    lines = [f"{turn.speaker}: {turn.text}" for turn in pair.history]
    lines.append(f"customer: {pair.customer}")
    return (
        "Conversation so far:\n" + "\n".join(lines) + f"\n\nThe agent's reply:\n{reply}\n\n"
        f"Criterion:\n{criterion}"
    )


_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def parse_verdict(text: str) -> tuple[bool, str]:
    """``(passed, reason)`` from the judge's answer; JudgeError when it is not a verdict."""
    match = _JSON_OBJECT.search(text)
    try:
        data = json.loads(match.group(0)) if match else None
    except ValueError:
        data = None
    verdict = data.get("verdict") if isinstance(data, dict) else None
    if not isinstance(verdict, str) or verdict.strip().lower() not in ("pass", "fail"):
        raise JudgeError(f"judge answered something that is not a verdict: {excerpt(text)!r}")
    reason = data.get("reason") if isinstance(data, dict) else None
    return verdict.strip().lower() == "pass", str(reason or "(no reason given)")


class Judge:
    """Asks the judge model, through the reply cache: the same question is asked once."""

    def __init__(self, settings: JudgeSettings, cache: ReplyCache | None) -> None:
        self.settings = settings
        self.cache = cache
        self._agent: HTTPAgent | None = None

    @property
    def started(self) -> bool:
        return self._agent is not None

    @property
    def configured(self) -> bool:
        return bool(self.settings.model)

    def agent(self) -> HTTPAgent:
        if self._agent is None:
            if not self.settings.model:
                raise JudgeError("the judge check needs `hgd_judge_model` in the ini file")
            self._agent = HTTPAgent(
                HTTPAgentSettings(
                    model=self.settings.model,
                    base_url=self.settings.base_url,
                    api_key_env=self.settings.api_key_env,
                    temperature=0.0,
                    timeout=self.settings.timeout,
                )
            )
        return self._agent

    async def check(self, reply: str, arg: str | Mapping[str, str], pair: Pair) -> tuple[bool, str]:
        agent = self.agent()
        criterion = criterion_of(arg)
        messages = [{"role": "user", "content": judge_prompt(pair, reply, criterion)}]
        key = reply_key(agent.identity, RUBRIC_VERSION, RUBRIC, messages, 0)
        answer = self.cache.get(key) if self.cache else None
        if answer is None:
            answer = await agent.reply(RUBRIC, messages)
            passed, reason = parse_verdict(answer)  # a nonsense answer is never cached
            if self.cache:
                # off the loop: a write may wait for another run's commit. A verdict not
                # cached is asked again next run; the cache keeps the error for the note.
                with contextlib.suppress(CacheError):
                    await asyncio.to_thread(self.cache.put, key, answer)
        else:
            passed, reason = parse_verdict(answer)
        return passed, f"{reason} (criterion: {criterion!r})"

    def validate(self, arg: Any) -> str | None:
        if not self.configured:
            return "the `judge` check needs a judge model: set `hgd_judge_model` in the ini file"
        return None

    def check_type(self) -> CheckType:
        return CheckType("judge", self.check, SCHEMA, self.validate)

    async def aclose(self) -> None:
        if self._agent is not None:
            await self._agent.aclose()
