"""Prompts beyond the candidate, tried at the gate's end on the controller: the pressure
probe's mutants and the candidate search (``--hgd-search``)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_hgd.core.errors import PairFileError
from pytest_hgd.core.pressure import ProbeResult
from pytest_hgd.core.search import parse_policy, split_holdout
from pytest_hgd.core.settings import SearchOptions
from pytest_hgd.plugin.advice import SEARCH_ONLY, without_options
from pytest_hgd.plugin.proposers import Proposers
from pytest_hgd.run.probe import ProbePlan, probe_plan, run_probe
from pytest_hgd.run.search import Search, SearchPlan, SearchResult
from pytest_hgd.storage.search_out import SearchOutput

if TYPE_CHECKING:
    from pytest_hgd.plugin.session import HGDSession


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
    session.say(
        f"hgd: search: up to {options.count} candidates, {options.policy}, "
        f"{len(search_plan.train)} training pairs, {len(search_plan.holdout)} held out"
    )
    return _run(session, search_plan, options)


def _run(session: HGDSession, plan: SearchPlan, options: SearchOptions) -> SearchResult | None:
    notes: list[str] = []  # the proposers' faults: the search's own notes
    if options.holdout and not plan.holdout:
        notes.append("no files held out (the suite has one file): nothing says it generalises")
    with Proposers(session.config, options.proposer, session.settings.timeout, notes) as pool:
        try:
            found = Search(
                plan,
                session.candidate.text,
                scheduler=session.scheduler,
                registry=session.registry,
                propose=pool.propose,
                output=SearchOutput(options.out),
                progress=lambda line: session.say(line, transient=True),
            ).run()
        except OSError as exc:  # the output directory: the gate's result stands
            session.notes.append(
                f"search stopped: cannot write to {options.out}: {exc.strerror or exc}"
            )
            return None
    found.notes[:0] = notes
    found.proposer = pool.usage()
    return found


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


REPLACED = ("--hgd-candidate", "--hgd-baseline", "--lf", "--last-failed", "--hgd")


def gate_command(session: HGDSession, out: Path) -> str:
    """The command that gates the search's best prompt: this run's own arguments (its
    paths, samples, agent...) without the search's, with the best as the candidate and the
    reference (the baseline, else the start) as the baseline."""
    here = session.config.invocation_params.dir
    settings = session.settings
    if settings.baseline and settings.baseline.startswith("git:"):
        reference = settings.baseline
    elif settings.baseline:
        reference = os.path.relpath(settings.baseline_base / settings.baseline, here)
    else:
        reference = os.path.relpath(settings.candidate_base / settings.candidate, here)
    best = os.path.relpath(out / "best.txt", here)
    kept = without_options(list(session.config.invocation_params.args), SEARCH_ONLY + REPLACED)
    words = ["pytest", "--hgd", *kept, f"--hgd-candidate={best}", f"--hgd-baseline={reference}"]
    return shlex.join(words)
