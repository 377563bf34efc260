"""Prompts beyond the candidate, tried at the gate's end on the controller: the pressure
probe's mutants and the candidate search (``--hgd-search``)."""

from __future__ import annotations

import copy
import os
import random
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_hgd.agents.proposer import LLMProposer
from pytest_hgd.core.errors import PairFileError
from pytest_hgd.core.pressure import ProbeResult
from pytest_hgd.core.search import parse_policy, split_holdout
from pytest_hgd.plugin.search_options import proposer_settings
from pytest_hgd.run.probe import ProbePlan, probe_plan, run_probe
from pytest_hgd.run.replies import describe_exception
from pytest_hgd.run.search import Proposal, Propose, Search, SearchPlan, SearchResult
from pytest_hgd.storage.search_out import SearchOutput

if TYPE_CHECKING:
    from pytest_hgd.plugin.session import HGDSession

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


def _plan(session: HGDSession, what: str) -> ProbePlan | None:
    """The pairs that ran, loaded again, with their counts under the reference prompt."""
    try:
        return probe_plan(
            session.pairs,
            session.config.rootpath,
            session.registry,
            role="baseline" if session.baseline else "candidate",
            samples=session.settings.samples,
        )
    except PairFileError as exc:  # a pair file edited during the run
        session.notes.append(f"{what} skipped: {exc}")
        return None


def probe(session: HGDSession) -> ProbeResult | None:
    """``--hgd-probe=M``: M mutants of the candidate through the gate."""
    if not session.settings.probe or not session.pairs:
        return None
    plan = _plan(session, "probe")
    if plan is None:
        return None
    return run_probe(
        plan,
        session.candidate.text,
        session.settings.probe,
        session.settings.seed,
        scheduler=session.scheduler,
        registry=session.registry,
        alpha=session.settings.alpha,
        mutators=session.mutators,
        progress=lambda done, total: session.say(f"hgd: probe: {done}/{total} mutants judged"),
    )


def search(session: HGDSession, partial: bool) -> SearchResult | None:
    """``--hgd-search=N`` from the candidate; None when not asked or not possible (noted)."""
    options = session.settings.search
    if options is None or not session.pairs:
        return None
    if partial:
        session.notes.append(
            "search skipped: the run left pairs out (-k, --lf, ...); search the whole suite"
        )
        return None
    plan = _plan(session, "search")
    if plan is None:
        return None
    held = split_holdout((pid.rpartition("::")[0] for pid, _ in plan.pairs), options.holdout,
                         session.settings.seed)  # fmt: skip
    search_plan = SearchPlan(
        train=[(pid, pair) for pid, pair in plan.pairs if pid.rpartition("::")[0] not in held],
        holdout=[(pid, pair) for pid, pair in plan.pairs if pid.rpartition("::")[0] in held],
        reference=plan.reference,
        samples=plan.samples,
        alpha=session.settings.alpha,
        policy=parse_policy(options.policy),
        count=options.count,
        seed=session.settings.seed,
    )
    llm = None
    if options.proposer is not None:
        llm = LLMProposerPlugin(
            LLMProposer(proposer_settings(options.proposer, session.settings.timeout))
        )
        session.config.pluginmanager.register(llm, "hgd-llm-proposer")
    try:
        found = Search(
            search_plan,
            session.candidate.text,
            scheduler=session.scheduler,
            registry=session.registry,
            propose=pooled(session.config, session.notes),
            output=SearchOutput(options.out),
            progress=lambda line: session.say(line, transient=True),
        ).run()
    finally:
        if llm is not None:
            session.config.pluginmanager.unregister(llm)
            llm.proposer.close()
    if llm is not None:
        found.proposer = {"name": llm.hgd_proposer_name, "calls": llm.proposer.calls,
                          "usage": list(llm.proposer.usage)}  # fmt: skip
    return found


def pooled(config: pytest.Config, notes: list[str]) -> Propose:
    """Every ``pytest_hgd_propose`` implementation's proposals, one list each, named by its
    plugin (the search takes a few from each in turn); one that raises is noted (once) and
    skipped."""
    failed: set[str] = set()

    def propose(
        prompt: str, failures: list[dict[str, Any]], rng: random.Random, n: int
    ) -> list[list[Proposal]]:
        groups: list[list[Proposal]] = []
        for impl in reversed(config.hook.pytest_hgd_propose.get_hookimpls()):
            if impl.hookwrapper or getattr(impl, "wrapper", False):
                continue
            name = getattr(impl.plugin, "hgd_proposer_name", None) or proposer_name(
                impl.plugin_name, config.rootpath
            )
            given = {"config": config, "prompt": prompt, "failures": copy.deepcopy(failures),
                     "rng": random.Random(rng.getrandbits(64)), "n": n}  # fmt: skip
            try:
                answer = impl.function(*(given[a] for a in impl.argnames))
            except Exception as exc:  # a proposer's fault is a note, not a crash
                if name not in failed:
                    failed.add(name)
                    notes.append(f"search: proposer {name} raised {describe_exception(exc)}")
                continue
            texts = answer if isinstance(answer, list | tuple) else ()
            groups.append([Proposal(t, name) for t in texts if isinstance(t, str)])
        return groups

    return propose


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


def with_search(probed: ProbeResult | None, found: SearchResult | None) -> ProbeResult | None:
    """The probe's result with the search's complete candidates added: both sample the
    region of prompt changes the gate allows (pressure's Beta posterior)."""
    if found is None or not found.complete:
        return probed
    base = probed or ProbeResult(0, 0)
    return ProbeResult(
        passed=base.passed + found.passed_gate,
        total=base.total + found.complete,
        details=base.details,
        searched=(found.passed_gate, found.complete),
    )


def search_record(found: SearchResult, policy: str) -> dict[str, Any]:
    """What the ledger keeps of a search."""
    report = found.report(parse_policy(policy))
    keep = ("evaluated", "policy", "start", "best", "calls")
    return {**{k: report[k] for k in keep}, "best_sha256": found.best.sha256}


def search_report(session: HGDSession, found: SearchResult) -> dict[str, Any]:
    """The JSON report's ``search`` object, with where its files are and the command that
    gates the best prompt."""
    options = session.settings.search
    assert options is not None
    return {
        **found.report(parse_policy(options.policy)),
        "out": str(options.out),
        "best_path": os.path.relpath(
            options.out / "best.txt", session.config.invocation_params.dir
        ),
        "command": gate_command(session, options.out),
    }


def gate_command(session: HGDSession, out: Path) -> str:
    """The command that gates the search's best prompt as a candidate."""
    here = session.config.invocation_params.dir
    settings = session.settings
    best = os.path.relpath(out / "best.txt", here)
    if settings.baseline and settings.baseline.startswith("git:"):
        reference = settings.baseline
    elif settings.baseline:
        reference = os.path.relpath(settings.baseline_base / settings.baseline, here)
    else:
        reference = os.path.relpath(settings.candidate_base / settings.candidate, here)
    words: Sequence[str] = ["pytest", "--hgd", f"--hgd-candidate={best}",
                            f"--hgd-baseline={reference}"]  # fmt: skip
    return shlex.join(words)
