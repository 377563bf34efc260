"""Blame: re-run the regressed pairs under the candidate with hunks of the change reverted
(no pytest here).

``core.blame.search`` chooses which sets of hunks to revert; this module answers it: one
``Evaluator`` per variant prompt, every call of a round submitted before any is awaited (so
they run concurrently, bounded by the scheduler), each pair judged against its baseline
counts by the gate's own rule (``core.stats.decide``, as the probe does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pytest_hgd.core import stats
from pytest_hgd.core.blame import Culprits, Query, search
from pytest_hgd.core.checks import CheckType
from pytest_hgd.core.hunks import Hunk, revert
from pytest_hgd.core.model import Pair
from pytest_hgd.run.evaluator import Evaluator
from pytest_hgd.run.probe import ProbePlan
from pytest_hgd.run.prompts import Prompt
from pytest_hgd.run.runner import Scheduler


@dataclass
class BlameRun:
    """The culprits of each regressed pair, and what finding them cost."""

    hunks: list[Hunk]
    culprits: dict[str, Culprits] = field(default_factory=dict)
    variants: int = 0  # distinct prompts tried (each with some hunks reverted)
    calls: int = 0  # new agent calls made
    reused: int = 0  # replies reused (from the cache, or asked already in this run)

    @property
    def complete(self) -> bool:
        return all(c.complete for c in self.culprits.values())


class _Oracle:
    """Answers ``core.blame.search``'s queries with agent calls, one round at a time."""

    def __init__(
        self,
        run: BlameRun,
        plan: ProbePlan,
        candidate: str,
        scheduler: Scheduler,
        registry: dict[str, CheckType],
        alpha: float,
    ) -> None:
        self.run = run
        self.plan = plan
        self.pairs: dict[str, Pair] = dict(plan.pairs)
        self.candidate = candidate
        self.scheduler = scheduler
        self.registry = registry
        self.alpha = alpha
        self.seen: set[frozenset[int]] = set()

    def __call__(self, queries: Sequence[Query]) -> dict[Query, bool | None]:
        by_variant: dict[frozenset[int], list[str]] = {}
        for pair_id, reverted in queries:
            by_variant.setdefault(reverted, []).append(pair_id)
        evaluators = []
        for reverted, pair_ids in by_variant.items():
            text = revert(self.candidate, self.run.hunks, reverted)
            numbers = ",".join(str(i) for i in sorted(reverted))
            evaluator = Evaluator(
                self.scheduler,
                self.registry,
                Prompt(f"blame:-{numbers}", text),
                None,
                self.plan.samples,
                self.alpha,
            )
            for pair_id in pair_ids:
                evaluator.submit(pair_id, self.pairs[pair_id])
            evaluators.append((reverted, pair_ids, evaluator))
            self.seen.add(reverted)
        self.run.variants = len(self.seen)
        answers: dict[Query, bool | None] = {}
        for reverted, pair_ids, evaluator in evaluators:
            for pair_id in pair_ids:
                answers[(pair_id, reverted)] = self._passes(evaluator, pair_id)
        return answers

    def _passes(self, evaluator: Evaluator, pair_id: str) -> bool | None:
        """True when the variant keeps the pair (no regression against its baseline counts by
        the gate's rule), None when it could not be checked."""
        _, evaluation = evaluator.evaluate(pair_id, self.pairs[pair_id])
        made = sum(1 for reply in evaluation.replies if not reply.cached)  # a reply asked
        self.run.calls += made  # again in this run is marked cached: each call counts once
        self.run.reused += len(evaluation.replies) - made
        if evaluation.error is not None or pair_id in evaluator.undecided:
            return None
        counts = stats.PassCounts(evaluation.passes, evaluation.runs)
        decided = stats.decide([(self.plan.reference[pair_id], counts)], self.alpha)
        return decided[0].delta != "regressed"


def blame_pairs(
    plan: ProbePlan,
    candidate: str,
    hunks: Sequence[Hunk],
    *,
    scheduler: Scheduler,
    registry: dict[str, CheckType],
    alpha: float,
) -> BlameRun:
    """The hunks each of the plan's pairs (the regressed ones) depends on."""
    run = BlameRun(list(hunks))
    oracle = _Oracle(run, plan, candidate, scheduler, registry, alpha)
    pair_ids = [pair_id for pair_id, _ in plan.pairs]
    run.culprits = search(pair_ids, [h.index for h in hunks], oracle)
    return run


def blame_summary(run: BlameRun) -> str:
    """One line for the terminal: what blame did and what it cost."""
    text = (
        f"blame: {len(run.hunks)} hunks, {len(run.culprits)} regressed pairs, "
        f"{run.variants} variant prompts, {run.calls} agent calls (+{run.reused} reused)"
    )
    if not run.complete:
        text += "; cut short for some pairs (an agent error or the --hgd-max-calls budget)"
    return text
