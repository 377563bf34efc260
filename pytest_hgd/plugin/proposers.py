"""The search's proposers: every ``pytest_hgd_propose`` implementation, and the built-in LLM
proposer (ini ``hgd_proposer``) registered while the search runs."""

from __future__ import annotations

import copy
import os
import random
from pathlib import Path
from typing import Any

import pytest

from pytest_hgd.agents.proposer import LLMProposer
from pytest_hgd.core.settings import ProposerOptions
from pytest_hgd.plugin.search_options import proposer_settings
from pytest_hgd.run.replies import describe_exception
from pytest_hgd.run.search import Proposal

BUILTIN_PROPOSERS = {"hgd-builtins": "mutators"}


class LLMProposerPlugin:
    """The built-in LLM proposer (ini ``hgd_proposer``), registered while a search runs."""

    def __init__(self, proposer: LLMProposer) -> None:
        self.proposer = proposer
        self.hgd_proposer_name = f"llm:{proposer.settings.model}"

    @pytest.hookimpl(trylast=True)
    def pytest_hgd_propose(
        self, prompt: str, failures: list[dict[str, Any]], rng: random.Random, n: int
    ) -> list[str]:
        proposed = self.proposer.propose(prompt, failures, rng, n)  # stripped
        end = "\n" if prompt.endswith("\n") else ""  # a file's last line break, kept
        return [text + end for text in proposed]


class Proposers:
    """Asks every ``pytest_hgd_propose`` implementation, one list each, named by its plugin.
    One that raises is noted and not asked again; one that answers something other than a
    list of strings is noted (once) and its answer ignored."""

    def __init__(
        self,
        config: pytest.Config,
        llm: ProposerOptions | None,
        timeout: float,
        notes: list[str],
    ) -> None:
        self.config = config
        self.notes = notes
        self.failed: set[str] = set()
        self.odd: set[str] = set()
        self.llm = None if llm is None else LLMProposerPlugin(
            LLMProposer(proposer_settings(llm, timeout))
        )  # fmt: skip

    def __enter__(self) -> Proposers:
        if self.llm is not None:
            self.config.pluginmanager.register(self.llm, "hgd-llm-proposer")
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.llm is not None:
            self.config.pluginmanager.unregister(self.llm)
            self.llm.proposer.close()

    def usage(self) -> dict[str, Any] | None:
        """The LLM proposer's calls and tokens (None without one)."""
        if self.llm is None:
            return None
        proposer = self.llm.proposer
        return {"name": self.llm.hgd_proposer_name, "calls": proposer.calls,
                "usage": list(proposer.usage)}  # fmt: skip

    def propose(
        self, prompt: str, failures: list[dict[str, Any]], rng: random.Random, n: int
    ) -> list[list[Proposal]]:
        groups: list[list[Proposal]] = []
        for impl in reversed(self.config.hook.pytest_hgd_propose.get_hookimpls()):
            name = getattr(impl.plugin, "hgd_proposer_name", None) or proposer_name(
                impl.plugin_name, self.config.rootpath
            )
            if impl.hookwrapper or getattr(impl, "wrapper", False) or name in self.failed:
                continue
            given = {"config": self.config, "prompt": prompt, "failures": copy.deepcopy(failures),
                     "rng": random.Random(rng.getrandbits(64)), "n": n}  # fmt: skip
            try:
                answer = impl.function(*(given[a] for a in impl.argnames))
            except Exception as exc:  # a proposer's fault is a note, not a crash
                self.failed.add(name)
                self.notes.append(
                    f"proposer {name} raised {describe_exception(exc)}; not asked again"
                )
                continue
            groups.append([Proposal(t, name) for t in self._texts(name, answer)])
        return groups

    def _texts(self, name: str, answer: object) -> list[str]:
        """The prompts in a proposer's answer: a list (or tuple) of strings; None is none."""
        if answer is None:
            return []
        texts = list(answer) if isinstance(answer, list | tuple) else []
        strings = [t for t in texts if isinstance(t, str)]
        if (len(strings) != len(texts) or not isinstance(answer, list | tuple)) and (
            name not in self.odd
        ):
            self.odd.add(name)
            what = type(answer).__name__ if not texts else "items that are not strings"
            self.notes.append(
                f"proposer {name} answered {what}: pytest_hgd_propose returns a list of "
                "prompt strings (the rest is ignored)"
            )
        return strings


def proposer_name(plugin_name: str, rootpath: Path) -> str:
    """A proposer's name in the log: the built-ins' own, a conftest's path from the rootdir."""
    if plugin_name in BUILTIN_PROPOSERS:
        return BUILTIN_PROPOSERS[plugin_name]
    if os.path.isabs(plugin_name):
        try:
            return Path(plugin_name).relative_to(rootpath).as_posix()
        except ValueError:
            return Path(plugin_name).name
    return plugin_name
