"""The built-in checks, agents and mutators, registered through pytest-hgd's own hooks.

They are ``trylast`` implementations, so a conftest or plugin that answers the same hook
comes first (an agent spec it recognises, say) and adds to the rest.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from pytest_hgd.agents.agent import Agent, AgentSpecError, load_python_agent
from pytest_hgd.agents.http_agent import HTTPAgent, HTTPAgentSettings
from pytest_hgd.agents.http_process import ProcessHTTPAgent
from pytest_hgd.agents.http_spawn import SpareWorkers
from pytest_hgd.agents.judge import Judge
from pytest_hgd.core.checks import BUILTIN_CHECKS, CheckType
from pytest_hgd.core.mutators import BUILTIN_MUTATORS, Mutator, make_mutants
from pytest_hgd.core.settings import Settings, is_http_spec
from pytest_hgd.plugin.wiring import registered_mutators


def make_agent(settings: Settings, rootdir: Path, spares: SpareWorkers | None = None) -> Agent:
    """The agent named by ``--hgd-agent``: ``openai:MODEL`` or ``package.module:function``.
    The HTTP agent's worker processes start from ``spares``, those started early."""
    if not is_http_spec(settings.agent):
        return load_python_agent(settings.agent, rootdir, settings.concurrency)
    http = settings.http
    try:
        http_settings = HTTPAgentSettings(
            model=settings.agent.partition(":")[2],
            base_url=http.base_url,
            api_key_env=http.api_key_env,
            temperature=http.temperature,
            max_tokens=http.max_tokens,
            headers=http.headers,
            timeout=settings.timeout,
            max_retries=http.max_retries,
            max_connections=settings.concurrency,
            rate=http.rate,
            # JSON may spell a character in up to 6 bytes (\uXXXX), plus the envelope
            max_body_bytes=6 * settings.max_reply_chars + 65_536,
        )
    except ValueError as exc:
        raise AgentSpecError(str(exc)) from None
    if http.workers:
        return ProcessHTTPAgent(http_settings, http.workers, spares)
    return HTTPAgent(http_settings)


class Builtins:
    """Registered as the plugin ``hgd-builtins`` while ``pytest --hgd`` runs."""

    def __init__(self, settings: Settings, judge: Judge, spares: SpareWorkers | None) -> None:
        self.settings = settings
        self.judge = judge
        self.spares = spares

    @pytest.hookimpl(trylast=True)
    def pytest_hgd_checks(self, config: pytest.Config) -> Sequence[CheckType]:
        return [*BUILTIN_CHECKS, self.judge.check_type()]

    @pytest.hookimpl(trylast=True)
    def pytest_hgd_make_agent(self, config: pytest.Config, spec: str) -> Agent | None:
        if spec != self.settings.agent:  # the built-ins read their settings from the options
            return None
        return make_agent(self.settings, config.rootpath, self.spares)

    @pytest.hookimpl(trylast=True)
    def pytest_hgd_mutators(self, config: pytest.Config) -> Mapping[str, Mutator]:
        return BUILTIN_MUTATORS

    @pytest.hookimpl(trylast=True)
    def pytest_hgd_propose(
        self,
        config: pytest.Config,
        prompt: str,
        failures: list[dict[str, Any]],
        rng: random.Random,
        n: int,
    ) -> list[str]:
        """The probe's mutators (every registered one) as a proposer."""
        mutators = registered_mutators(config)
        return [m.text for m in make_mutants(prompt, n, rng.getrandbits(32), mutators)]
