"""The parts of a gate run, made from the settings and the registered hooks; every problem
a user can cause is a ``pytest.UsageError`` naming the option."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_hgd.agents.agent import Agent, AgentSpecError
from pytest_hgd.core.checks import CheckType
from pytest_hgd.core.decision import Policy
from pytest_hgd.core.mutators import Mutator
from pytest_hgd.core.settings import Settings
from pytest_hgd.run.prompts import Prompt, PromptError, load_prompt
from pytest_hgd.run.runner import CallSettings


def policy(settings: Settings) -> Policy:
    """The gate's rules, from the settings."""
    return Policy(
        strict=settings.strict,
        alpha=settings.alpha,
        max_pressure=settings.max_pressure,
        pressure_window=settings.pressure_window,
        pressure_warn=settings.pressure_warn,
        allow_undecided=settings.allow_undecided,
        prices=settings.prices,
    )


def call_settings(settings: Settings) -> CallSettings:
    """How the scheduler calls the agent, from the settings."""
    return CallSettings(
        timeout=settings.timeout,
        concurrency=settings.concurrency,
        agent_version=settings.agent_version,
        read_cache=settings.read_cache,
        write_cache=settings.write_cache,
        max_reply_chars=settings.max_reply_chars,
    )


def prompt_option(spec: str, base: Path, option: str) -> Prompt:
    """The prompt ``option`` names (``PATH`` or ``git:REV:PATH``)."""
    try:
        return load_prompt(spec, base)
    except PromptError as exc:
        raise pytest.UsageError(f"{option}: {exc}") from None


def registered_checks(config: pytest.Config) -> dict[str, CheckType]:
    """Every registered check type by name; a name registered twice is a usage error."""
    registry: dict[str, CheckType] = {}
    for check_types in config.hook.pytest_hgd_checks(config=config):
        for check_type in check_types:
            if check_type.name in registry:
                raise pytest.UsageError(
                    f"check {check_type.name!r} is registered twice (pytest_hgd_checks)"
                )
            registry[check_type.name] = check_type
    return registry


def registered_mutators(config: pytest.Config) -> dict[str, Mutator]:
    """Every prompt mutator by name; a later plugin's replaces an earlier one's."""
    mutators: dict[str, Mutator] = {}
    for found in reversed(config.hook.pytest_hgd_mutators(config=config)):
        mutators.update(found)
    return mutators


def made_agent(config: pytest.Config, spec: str) -> Agent:
    """The agent ``--hgd-agent`` names, made by the first plugin that knows the spec."""
    try:
        agent: Agent | None = config.hook.pytest_hgd_make_agent(config=config, spec=spec)
    except AgentSpecError as exc:
        raise pytest.UsageError(f"--hgd-agent={spec}: {exc}") from None
    if agent is None:
        raise pytest.UsageError(f"--hgd-agent={spec}: no plugin makes this agent")
    return agent


@contextlib.contextmanager
def quiet_on_interrupt() -> Iterator[None]:
    """Ctrl-C or SIGTERM while the gate finishes: pytest's interrupted status and one line,
    not a traceback. Every file is written atomically, so each is complete or untouched."""
    try:
        yield
    except KeyboardInterrupt:
        pytest.exit(
            "pytest-hgd: interrupted while finishing the gate; each report and the ledger "
            "record is complete or was not written",
            returncode=pytest.ExitCode.INTERRUPTED,
        )
