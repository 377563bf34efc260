"""pytest-hgd extended from a conftest: a custom check and a custom agent.

`optionalhook=True` lets this conftest load in runs without pytest-hgd installed.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from pytest_hgd.core.checks import CheckType
from pytest_hgd.core.model import Pair

WORDS = re.compile(r"\w+")


def max_words(reply: str, arg: int, pair: Pair) -> tuple[bool, str]:
    """A reply a caller can take in over the phone: at most ``arg`` words."""
    count = len(WORDS.findall(reply))
    return count <= arg, f"{count} words, at most {arg} allowed"


@pytest.hookimpl(optionalhook=True)
def pytest_hgd_checks(config: pytest.Config) -> list[CheckType]:
    return [CheckType("max_words", max_words, {"type": "integer", "minimum": 1})]


class ScriptedAgent:
    """A stand-in for a real agent: answers from `KEYWORD => reply` lines of the prompt."""

    def __init__(self, fallback: str) -> None:
        self.fallback = fallback

    @property
    def identity(self) -> dict[str, object]:
        return {"kind": "scripted", "fallback": self.fallback}

    async def reply(self, prompt: str, messages: list[dict[str, str]]) -> str:
        question = messages[-1]["content"].lower()
        for line in prompt.splitlines():
            keyword, sep, answer = line.partition("=>")
            if sep and keyword.strip().lower() in question:
                return answer.strip()
        return self.fallback

    async def aclose(self) -> None:
        pass


@pytest.hookimpl(optionalhook=True)
def pytest_hgd_make_agent(config: pytest.Config, spec: str) -> Any:
    if spec.startswith("scripted:"):
        return ScriptedAgent(fallback=spec.partition(":")[2])
    return None  # let the built-ins handle package.module:function and openai:MODEL
