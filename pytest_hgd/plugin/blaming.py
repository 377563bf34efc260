"""``--hgd-blame``: the session's glue. After the decision, on the controller only (never an
xdist worker) and before the report is built, the regressed pairs are re-run with hunks of
the prompt change reverted (``run.blame``), and each regressed rollout gets the first turn
whose reply parts from the baseline's rollout (``core.blame.first_divergence``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_hgd.core.blame import ReportBlame, auto_blames, blame_entries, first_divergence
from pytest_hgd.core.decision import RunDecision
from pytest_hgd.core.errors import PairFileError
from pytest_hgd.core.hunks import Hunk, split_hunks
from pytest_hgd.run.blame import blame_pairs, blame_summary
from pytest_hgd.run.probe import probe_plan

if TYPE_CHECKING:
    from pytest_hgd.plugin.session import HGDSession


def blame_decision(session: HGDSession, decision: RunDecision) -> ReportBlame | None:
    """What the report adds for ``--hgd-blame`` (None when blame is off or has nothing to
    say); notes for the terminal go to ``session.notes``."""
    if session.settings.blame and session.baseline is None:
        session.notes.append("blame: needs a baseline (--hgd-baseline) to compare with")
    if session.settings.blame is False or session.baseline is None:
        return None
    blame = ReportBlame(rollouts=_divergences(decision))
    regressed = [p for p in decision.pairs if p["delta"] == "regressed"]
    if regressed:
        hunks = split_hunks(session.baseline.text, session.candidate.text)
        if session.settings.blame or auto_blames(len(hunks)):
            blame.pairs.update(_blame_pairs(session, decision, regressed, hunks))
        elif len(hunks) > 1:
            session.notes.append(
                f"blame: off by default for a change of {len(hunks)} hunks "
                "(--hgd-blame turns it on)"
            )
    return blame if blame.pairs or blame.rollouts else None


def _blame_pairs(
    session: HGDSession,
    decision: RunDecision,
    regressed: list[dict[str, object]],
    hunks: list[Hunk],
) -> dict[str, dict[str, object]]:
    settings = session.settings
    try:
        plan = probe_plan(
            regressed,
            session.config.rootpath,
            session.registry,
            role="baseline",
            samples=settings.samples,
        )
    except PairFileError as exc:  # a pair file edited during the run
        session.notes.append(f"blame skipped: {exc}")
        return {}
    scheduler = session.scheduler
    if settings.max_calls is not None:  # under xdist the workers spent theirs
        made = int(decision.calls.get("baseline", 0)) + int(decision.calls.get("candidate", 0))
        left = max(0, settings.max_calls - made)
        scheduler.budget = left if scheduler.budget is None else min(scheduler.budget, left)
    session.say(f"hgd: blame: {len(hunks)} hunks of the change, {len(plan.pairs)} regressed pairs")
    run = blame_pairs(
        plan,
        session.candidate.text,
        hunks,
        scheduler=scheduler,
        registry=session.registry,
        alpha=settings.alpha,
    )
    session.notes.append(blame_summary(run))
    # prompt text, but masked like every output in case a prompt holds a configured secret
    return {
        pair_id: session.redactor.value(blame_entries(c, hunks))
        for pair_id, c in run.culprits.items()
    }


def _divergences(decision: RunDecision) -> dict[str, dict[str, object]]:
    """Each regressed rollout's first turn whose reply differs from the baseline's rollout."""
    found: dict[str, dict[str, object]] = {}
    for rollout in decision.rollouts:
        baseline, candidate = rollout.get("baseline"), rollout.get("candidate")
        if rollout["delta"] != "regressed" or not baseline or not candidate:
            continue
        diverged = first_divergence(baseline["transcript"], candidate["transcript"])
        if diverged is not None:
            found[str(rollout["id"])] = {"diverged": diverged}
    return found
