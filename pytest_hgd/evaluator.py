"""From pairs to deltas: submit the calls, check the replies, decide (one-shot or sampled).

No pytest here: the session hands in pairs by node id and gets evaluations and deltas back.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from . import gate, stats
from .checks import CheckType, Outcome, run_checks
from .errors import AgentError
from .model import Delta, Evaluation, Pair, Reply, Role
from .prompts import Prompt
from .runner import ReplyFuture, Scheduler, describe_exception

Evaluations = tuple[Evaluation | None, Evaluation]
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Decision:
    delta: Delta
    sampled: stats.SampledDecision | None = None


class Evaluator:
    """Every pair's replies under each prompt, their checks, and the pair's delta."""

    def __init__(
        self,
        scheduler: Scheduler,
        registry: dict[str, CheckType],
        candidate: Prompt,
        baseline: Prompt | None,
        samples: int,
        alpha: float,
    ) -> None:
        self.scheduler = scheduler
        self.registry = registry
        self.prompts = [(Role.CANDIDATE, candidate)]
        if baseline is not None:
            self.prompts.insert(0, (Role.BASELINE, baseline))
        self.default_samples = samples
        self.alpha = alpha
        self.futures: dict[str, dict[Role, list[ReplyFuture]]] = {}
        self.evaluated: dict[str, Evaluations] = {}
        self.decisions: dict[str, Decision] = {}

    def samples(self, pair: Pair) -> int:
        return pair.samples or self.default_samples

    def submit(self, node_id: str, pair: Pair) -> dict[Role, list[ReplyFuture]]:
        """Start (once) the pair's calls: every prompt, every sample. The futures of a pair
        already evaluated are forgotten (its replies are in its evaluations): none left."""
        futures = self.futures.get(node_id)
        if futures is None:
            if node_id in self.evaluated:
                return {}
            messages = pair.messages()
            futures = {
                role: [
                    self.scheduler.submit(role, prompt.text, messages, sample)
                    for sample in range(self.samples(pair))
                ]
                for role, prompt in self.prompts
            }
            self.futures[node_id] = futures
        return futures

    def evaluate(self, node_id: str, pair: Pair) -> Evaluations:
        """Wait for the pair's replies and check them (once)."""
        evaluated = self.evaluated.get(node_id)
        if evaluated is None:
            futures = self.submit(node_id, pair)
            evaluations = {role: self._check(pair, fs) for role, fs in futures.items()}
            evaluated = (evaluations.get(Role.BASELINE), evaluations[Role.CANDIDATE])
            self.evaluated[node_id] = evaluated
            del self.futures[node_id]  # fewer objects for the garbage collector to walk
        return evaluated

    def _check(self, pair: Pair, futures: list[ReplyFuture]) -> Evaluation:
        replies = []
        for future in futures:
            try:
                replies.append(future.result())
            except concurrent.futures.CancelledError:
                replies.append(Reply(None, "agent call cancelled (the run is stopping)"))
        if any(r.error is not None for r in replies):
            return Evaluation(tuple(replies))
        try:
            results = tuple(
                run_checks(r.text or "", pair, self.registry, self._resolve) for r in replies
            )
        except AgentError as exc:  # a judge that failed or answered nonsense
            return Evaluation((*replies, Reply(None, str(exc))))
        except Exception as exc:  # a check's own fault is an error on the item, not a crash
            return Evaluation((*replies, Reply(None, f"check raised {describe_exception(exc)}")))
        return Evaluation(tuple(replies), results)

    def _resolve(self, awaitable: Awaitable[Outcome]) -> Outcome:
        async def wait() -> Outcome:
            return await awaitable

        return self.scheduler.run_coroutine(wait()).result()

    def decide_batch(
        self, batch: Sequence[tuple[str, Pair]], alpha: float, progress: Progress | None = None
    ) -> None:
        """Sampled gate: wait for every sample of the batch, then decide its pairs as one
        family at level ``alpha`` (pairs whose agent calls failed are errors, not tested). Every
        pair with a baseline is in the family, one run a side included (it cannot be called
        regressed there: see ``stats.decide``)."""
        pending = [
            f for node_id, pair in batch for fs in self.submit(node_id, pair).values() for f in fs
        ]
        total = len(pending)
        while pending:
            _done, not_done = concurrent.futures.wait(pending, timeout=1.0)
            pending = list(not_done)
            if progress is not None:
                progress(total - len(pending), total)
        family: list[str] = []
        counts: list[tuple[stats.PassCounts | None, stats.PassCounts]] = []
        for node_id, pair in batch:
            baseline, candidate = self.evaluate(node_id, pair)
            if candidate.error or (baseline is not None and baseline.error):
                continue
            family.append(node_id)
            counts.append((_counts(baseline), stats.PassCounts(candidate.passes, candidate.runs)))
        for node_id, sampled in zip(
            family, stats.decide(counts, alpha, one_shot=False), strict=True
        ):
            self.decisions[node_id] = Decision(Delta(sampled.delta), sampled)

    def decision(
        self, node_id: str, baseline: Evaluation | None, candidate: Evaluation
    ) -> Decision:
        """The pair's delta: from its batch when sampled, else the one-shot table."""
        decided = self.decisions.get(node_id)
        if decided is not None:
            return decided
        return Decision(
            gate.one_shot_delta(baseline.passed if baseline else None, candidate.passed)
        )


def _counts(evaluation: Evaluation | None) -> stats.PassCounts | None:
    return None if evaluation is None else stats.PassCounts(evaluation.passes, evaluation.runs)
