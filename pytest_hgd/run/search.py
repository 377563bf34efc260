"""Candidate search: propose prompts, evaluate them on the training split, keep the best
under the policy (no pytest here: the session hands in the plan and the proposers).

A greedy local search in rounds. Each round asks the proposers for up to ``ROUND`` new
prompts derived from the best prompt so far (shown its failures on the training split), and
evaluates them together, so their calls run concurrently. A proposal is first asked only
the pairs the best prompt fails; one that fixes none of them cannot beat it (unless it is
shorter), so it is dropped there, before the calls on the pairs the best already passes. The
rest are asked every training pair and scored against the reference prompt
(``core/search.py``). The held-out files are asked only of the start prompt and of each new
best (the curve), never to choose. docs/search.md has the argument.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_hgd.core.checks import CheckType
from pytest_hgd.core.model import Evaluation, Kind, Pair
from pytest_hgd.core.search import (
    Score,
    SearchPolicy,
    acceptable,
    better,
    diff,
    plain,
    score,
    summary,
)
from pytest_hgd.core.stats import PassCounts
from pytest_hgd.run.evaluator import Evaluator
from pytest_hgd.run.prompts import Prompt
from pytest_hgd.run.runner import Scheduler
from pytest_hgd.storage.search_out import SearchOutput

ROUND = 5  # proposals evaluated together
STALE_ROUNDS = 2  # rounds in a row with nothing new to try end the search
MAX_FAILURES = 50  # failures shown to the proposers a round

Pairs = Sequence[tuple[str, Pair]]


@dataclass(frozen=True)
class Proposal:
    text: str
    proposer: str


# (prompt, failures, rng, n) -> each proposer's proposals, a list each
Propose = Callable[[str, list[dict[str, Any]], random.Random, int], list[list[Proposal]]]


@dataclass(frozen=True)
class SearchPlan:
    """The pairs (split), the reference prompt's counts, and the search's settings."""

    train: Pairs
    holdout: Pairs
    reference: Mapping[str, PassCounts]
    samples: int
    alpha: float
    policy: SearchPolicy
    count: int  # N: candidates to evaluate at most
    seed: int


@dataclass
class Candidate:
    """One evaluated prompt. ``train`` is None for a proposal dropped after the pairs its
    parent fails (``screen``: its passes among them)."""

    index: int
    text: str
    parent: int | None
    proposer: str
    train: Score | None = None
    screen: tuple[int, int] = (0, 0)
    holdout: Score | None = None
    calls: int = 0
    acceptable: bool = False
    unchecked: int = 0  # pairs the --hgd-max-calls budget could not pay for
    evaluations: dict[str, Evaluation] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


@dataclass
class SearchResult:
    start: Candidate
    best: Candidate
    evaluated: int = 0
    calls: int = 0
    curve: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    complete: int = 0  # candidates asked every training pair
    passed_gate: int = 0  # of those, regressing no pair and with every pair checked
    holdout_files: list[str] = field(default_factory=list)
    interrupted: bool = False  # Ctrl-C (or SIGTERM) stopped it: what it found so far
    proposer: dict[str, Any] | None = None  # the LLM proposer's calls and tokens

    def report(self, policy: SearchPolicy) -> dict[str, Any]:
        """The JSON report's ``search`` object."""
        return {
            "evaluated": self.evaluated,
            "policy": policy.name,
            "start": _summary(self.start),
            "best": _summary(self.best),
            "best_is_start": self.best is self.start,
            "holdout_files": self.holdout_files,
            "interrupted": self.interrupted,
            **({"proposer": self.proposer} if self.proposer else {}),
            "calls": self.calls,
            "curve": self.curve,
            "notes": self.notes,
            "best_prompt": {
                "sha256": self.best.sha256,
                "diff": diff(self.start.text, self.best.text),
            },
        }


def _summary(candidate: Candidate) -> dict[str, Any]:
    assert candidate.train is not None  # the start and the best are complete
    return summary(candidate.train, candidate.holdout)


class Search:
    """One search run over a plan (``run`` once)."""

    def __init__(
        self,
        plan: SearchPlan,
        start: str,
        *,
        scheduler: Scheduler,
        registry: dict[str, CheckType],
        propose: Propose,
        output: SearchOutput,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.plan = plan
        self.start_text = start
        self.scheduler = scheduler
        self.registry = registry
        self.propose = propose
        self.output = output
        self.progress = progress
        self.locked = frozenset(
            pid for pid, pair in [*plan.train, *plan.holdout] if pair.kind is Kind.LOCKED
        )
        self.sampled = plan.samples > 1 or any(
            (pair.samples or 1) > 1 for _, pair in [*plan.train, *plan.holdout]
        )
        self.level = plan.alpha / max(1, plan.count)  # Bonferroni over the candidates
        self.seen: set[str] = {plain(start)}  # prompts asked, whitespace aside
        self.texts: dict[int, str] = {0: start}  # every evaluated prompt, by index
        self.exhausted = False

    # evaluation ---------------------------------------------------------------------------
    def _evaluator(self, index: int, text: str) -> Evaluator:
        prompt = Prompt(f"search:{index}", text)
        return Evaluator(
            self.scheduler, self.registry, prompt, None, self.plan.samples, self.plan.alpha
        )

    def _submit(self, evaluator: Evaluator, pairs: Pairs) -> int:
        """Start the pairs' calls; how many new agent calls that started (those the budget
        paid for, not cached, not asked already)."""
        before = self.scheduler.made
        for node_id, pair in pairs:
            evaluator.submit(node_id, pair)
        return self.scheduler.made - before

    def _collect(
        self, evaluator: Evaluator, pairs: Pairs, candidate: Candidate
    ) -> dict[str, Evaluation | None]:
        """Each pair's evaluation; None when the budget could not pay for it (counted in
        ``candidate.unchecked``)."""
        found: dict[str, Evaluation | None] = {}
        for node_id, pair in pairs:
            if node_id in evaluator.undecided:
                self.exhausted = True
                candidate.unchecked += 1
                found[node_id] = None
                continue
            found[node_id] = evaluator.evaluate(node_id, pair)[1]
        return found

    def _score(self, evaluations: Mapping[str, Evaluation | None]) -> Score:
        counts = {
            pid: None if ev is None or ev.error else PassCounts(ev.passes, ev.runs)
            for pid, ev in evaluations.items()
        }
        return score(counts, self.plan.reference, self.locked, self.plan.alpha, self.sampled)

    def _whole(self, candidate: Candidate, pairs: Pairs) -> tuple[Score, dict[str, Any]]:
        evaluator = self._evaluator(candidate.index, candidate.text)
        candidate.calls += self._submit(evaluator, pairs)
        evaluations = self._collect(evaluator, pairs, candidate)
        return self._score(evaluations), {k: v for k, v in evaluations.items() if v}

    def _held_out(self, candidate: Candidate) -> None:
        if self.plan.holdout and candidate.holdout is None:
            candidate.holdout, _ = self._whole(candidate, self.plan.holdout)

    # the search ---------------------------------------------------------------------------
    def run(self) -> SearchResult:
        start = Candidate(0, self.start_text, None, "start")
        start.train, start.evaluations = self._whole(start, self.plan.train)
        start.acceptable = True
        self._held_out(start)
        held = sorted({pid.rpartition("::")[0] for pid, _ in self.plan.holdout})
        result = SearchResult(start, start, calls=start.calls, holdout_files=held)
        self.output.best(start.text)
        self.output.log(self._entry(start, result))
        result.curve.append(_point(0, start))
        try:
            self._rounds(result)
        except KeyboardInterrupt:  # stop here: what was found is kept, and reported
            self.scheduler.cancel_pending()
            result.interrupted = True
            result.notes.append(f"interrupted after {result.evaluated} candidates")
        if self.exhausted:
            result.notes.append(
                f"the --hgd-max-calls budget ran out after {result.evaluated} candidates"
            )
        return result

    def _rounds(self, result: SearchResult) -> None:
        rng = random.Random(f"hgd-search:{self.plan.seed}")
        stale = 0
        while result.evaluated < self.plan.count and not self.exhausted:
            wanted = min(ROUND, self.plan.count - result.evaluated)
            proposals = self._proposals(result.best, rng, wanted)
            if not proposals:
                stale += 1
                if stale >= STALE_ROUNDS:
                    result.notes.append(
                        f"the proposers had nothing new after {result.evaluated} candidates"
                    )
                    break
                continue
            stale = 0
            self._round(proposals, result)

    def _proposals(self, best: Candidate, rng: random.Random, wanted: int) -> list[Proposal]:
        """Up to ``wanted`` proposals never evaluated before, a few from each proposer in
        turn (a proposer that repeats itself does not crowd out the others)."""
        groups = [
            [p for p in group if plain(p.text) not in self.seen and p.text.strip()]
            for group in self.propose(best.text, self.failures(best), rng, wanted)
        ]
        fresh: list[Proposal] = []
        for proposal in itertools.chain.from_iterable(itertools.zip_longest(*groups)):
            if len(fresh) == wanted:
                break
            if proposal is not None and plain(proposal.text) not in self.seen:
                self.seen.add(plain(proposal.text))  # taken: evaluated this round
                fresh.append(proposal)
        return fresh

    def failures(self, candidate: Candidate) -> list[dict[str, Any]]:
        """What the proposers are shown: the training pairs the prompt fails."""
        shown = []
        for node_id, pair in self.plan.train:
            evaluation = candidate.evaluations.get(node_id)
            if evaluation is None or evaluation.error or evaluation.passed:
                continue
            first = evaluation.first_failure()
            shown.append(
                {
                    "id": node_id,
                    "kind": pair.kind.value,
                    "messages": pair.messages(),
                    "reply": first[1] if first else (evaluation.replies[0].text or ""),
                    "recorded": pair.reply,
                    "problems": sorted(
                        {c.message for checks in evaluation.results for c in checks if not c.passed}
                    ),
                }
            )
        return shown[:MAX_FAILURES]

    def _round(self, proposals: Sequence[Proposal], result: SearchResult) -> None:
        # long: the two stages of a round, in order, then the log and the best
        parent = result.best
        assert parent.train is not None and result.start.train is not None
        passing = parent.train.passing
        first = [(pid, pair) for pid, pair in self.plan.train if pid not in passing]
        rest = [(pid, pair) for pid, pair in self.plan.train if pid in passing]
        candidates = []
        for offset, proposal in enumerate(proposals):
            index = result.evaluated + offset + 1
            candidate = Candidate(index, proposal.text, parent.index, proposal.proposer)
            evaluator = self._evaluator(index, proposal.text)
            candidate.calls += self._submit(evaluator, first)
            candidates.append((candidate, evaluator))
        going_on = []
        for candidate, evaluator in candidates:
            screened = self._collect(evaluator, first, candidate)
            passed = self._score(screened).passed
            candidate.screen = (passed, len(first))
            if candidate.unchecked:
                continue  # the budget ran out: not evaluated, not dropped
            if passed > 0 or len(candidate.text) < len(parent.text) or not first:
                candidate.calls += self._submit(evaluator, rest)
                going_on.append((candidate, evaluator, screened))
        for candidate, evaluator, screened in going_on:
            evaluations = {**screened, **self._collect(evaluator, rest, candidate)}
            candidate.train = self._score(evaluations)
            candidate.evaluations = {k: v for k, v in evaluations.items() if v}
            candidate.acceptable = acceptable(
                candidate.train,
                result.start.train,
                self.plan.policy,
                sampled=self.sampled,
                level=self.level,
            )
            if not candidate.unchecked:  # asked every training pair: pressure's evidence
                result.complete += 1
                result.passed_gate += candidate.train.errors == 0 and not candidate.train.regressed
        for candidate, _ in candidates:
            result.evaluated += 1
            best = result.best
            assert best.train is not None
            if (
                candidate.acceptable
                and candidate.train is not None
                and better(candidate.train, candidate.text, best.train, best.text)
            ):
                result.best = candidate
                best.evaluations = {}  # only the best's failures are shown again
                self._held_out(candidate)
                self.output.best(candidate.text)
                result.curve.append(_point(result.evaluated, candidate))
            else:
                candidate.evaluations = {}
            result.calls += candidate.calls
            self.texts[candidate.index] = candidate.text
            self.output.log(self._entry(candidate, result))
            if self.progress is not None:
                self.progress(self._status(result))

    def _status(self, result: SearchResult) -> str:
        start, best = result.start.train, result.best.train
        assert start is not None and best is not None
        return (
            f"hgd: search: {result.evaluated}/{self.plan.count} candidates evaluated; best "
            f"passes {best.passed}/{best.total} training pairs (start {start.passed})"
        )

    def _entry(self, candidate: Candidate, result: SearchResult) -> dict[str, Any]:
        parent_text = self.texts.get(candidate.parent or 0, self.start_text)
        train = candidate.train
        return {
            "index": candidate.index,
            "parent": candidate.parent,
            "proposer": candidate.proposer,
            "sha256": candidate.sha256,
            "chars": len(candidate.text),
            "diff": diff(parent_text, candidate.text),
            "train": train.totals()
            if train
            else {"passed": candidate.screen[0], "total": candidate.screen[1]},
            "dropped_early": train is None and not candidate.unchecked and candidate.index > 0,
            "unchecked": candidate.unchecked,
            "holdout": candidate.holdout.totals() if candidate.holdout else None,
            "locked_regressed": train.locked_regressed if train else None,
            "regressed": len(train.regressed) if train else None,
            "errors": train.errors if train else None,
            "acceptable": candidate.acceptable,
            "best": result.best is candidate,
            "calls": candidate.calls,
        }


def _point(evaluated: int, best: Candidate) -> dict[str, Any]:
    """A point of the search's curve: the best's training and held-out pass rates."""
    train, holdout = best.train, best.holdout
    return {
        "evaluated": evaluated,
        "train": _rate(train),
        "holdout": _rate(holdout),
    }


def _rate(score_: Score | None) -> float | None:
    if score_ is None or not score_.total:
        return None
    return round(score_.passed / score_.total, 4)
