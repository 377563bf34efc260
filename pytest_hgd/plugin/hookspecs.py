"""pytest-hgd's own hooks: implement them in a conftest.py or an installed plugin.

Built-in checks, agents and mutators are registered through these same hooks (as
``trylast`` implementations in ``pytest_hgd.plugin.builtins``). A conftest that must also load
without pytest-hgd installed marks its implementations ``@pytest.hookimpl(optionalhook=True)``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_hgd.agents.agent import Agent
    from pytest_hgd.core.checks import CheckType
    from pytest_hgd.core.model import Conversation
    from pytest_hgd.core.mutators import Mutator


@pytest.hookspec
def pytest_hgd_checks(config: pytest.Config) -> Sequence[CheckType]:
    """Return the check types to register.

    A ``CheckType(name, function, schema, validate=None)``: ``function(reply, arg, pair)``
    returns ``(passed, message)`` (or an awaitable of it: it then runs on the gate's event
    loop); ``schema`` is the JSON Schema of the argument a pair file writes after the name
    (``- name: arg``), enforced at collection; ``validate(arg)`` may return a problem text
    for an argument the schema cannot judge. Every implementation's check types are
    registered; a name registered twice is a usage error.
    """
    raise NotImplementedError


@pytest.hookspec(firstresult=True)
def pytest_hgd_make_agent(config: pytest.Config, spec: str) -> Agent | None:
    """Return the agent for an ``--hgd-agent`` spec string, or None to let others try.

    An agent has an ``identity`` property (JSON-able, secret-free: part of the reply-cache
    key), ``async def reply(prompt, messages) -> str`` and ``async def aclose()``. The
    built-ins (``openai:MODEL`` and ``package.module:function``) run last.
    """
    raise NotImplementedError


@pytest.hookspec
def pytest_hgd_mutators(config: pytest.Config) -> Mapping[str, Mutator]:
    """Return prompt mutators for the probe, by name: ``f(sentences, rng) -> (sentences,
    description)`` where ``sentences`` is the prompt split by
    ``pytest_hgd.core.mutators.split_sentences`` (joined back with ``"".join``)."""
    raise NotImplementedError


@pytest.hookspec
def pytest_hgd_propose(
    config: pytest.Config,
    prompt: str,
    failures: list[dict[str, Any]],
    rng: random.Random,
    n: int,
) -> list[str]:
    """Return up to n candidate prompts derived from prompt (``--hgd-search``).

    ``failures`` lists the training pairs the prompt fails, each a dict with ``id``,
    ``kind`` (locked or corrected), ``messages`` (chat format, ending with the customer's
    message), ``reply`` (the agent's, under ``prompt``), ``recorded`` (the pair's reply, or
    None) and ``problems`` (the failed checks' messages). Held-out pairs are never shown.
    Draw any randomness from ``rng`` (seeded by ``--hgd-seed``). Every implementation's
    proposals are pooled, a few from each in turn; the built-ins are the probe's mutators and,
    with ini ``hgd_proposer``, an LLM. An exception is shown as a note and the search goes
    on with the other proposers.
    """
    raise NotImplementedError


@pytest.hookspec
def pytest_hgd_report(config: pytest.Config, report: Mapping[str, Any]) -> None:
    """Receive the finished gate report (the JSON report's content) on the controller,
    after the reports were written: post it somewhere, say. Exceptions are shown as a
    warning, never lost, and never change the verdict."""
    raise NotImplementedError


@pytest.hookspec(firstresult=True)
def pytest_hgd_customer_turn(
    config: pytest.Config,
    conversation: Conversation,
    transcript: list[dict[str, str]],
    recorded: str,
) -> str | None:
    """Write the customer's next turn of a rollout, or None to replay the recorded one.

    ``transcript`` is the rollout so far in chat format (the agent's own replies as
    ``assistant``); ``recorded`` is what the customer said at this point of the real call.
    Called on the gate's event-loop thread: keep it quick, or call your simulator there.
    """
    raise NotImplementedError
