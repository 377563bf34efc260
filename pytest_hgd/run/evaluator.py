"""From pairs to deltas: submit the calls, check the replies, decide (one-shot or sampled).

No pytest here: the session hands in pairs by node id and gets evaluations and deltas back.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from pytest_hgd.core import stats
from pytest_hgd.core.checks import CheckType, Outcome, run_checks
from pytest_hgd.core.errors import AgentError
from pytest_hgd.core.model import Delta, Evaluation, Pair, Reply, Role
from pytest_hgd.core.pairs import PairCounts, decide_counts, draws_confirmation
from pytest_hgd.core.screen import SCREEN, Design, design_for
from pytest_hgd.run.prompts import Prompt
from pytest_hgd.run.replies import describe_exception
from pytest_hgd.run.runner import ReplyFuture, Scheduler

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
        auto: bool = False,
        screen: int = SCREEN,
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
        self.confirmations: dict[str, stats.PassCounts] = {}  # fresh samples of close pairs
        self.auto = auto  # --hgd-samples=auto: pairs without their own `samples:` are screened
        self.screen = screen  # candidate samples of a screen
        self.designs: dict[str, Design] = {}
        self.screens: dict[str, stats.Screened] = {}  # a screened pair: design, screen passes
        self.undecided: dict[str, str] = {}  # pairs the call budget left short: why
        self._looked: dict[str, dict[Role, Evaluation]] = {}  # screens checked, not evaluated
        self.fixed_k: dict[str, dict[str, int]] = {}  # a screened pair: a fixed-K run's calls

    def samples(self, pair: Pair) -> int:
        return pair.samples or self.default_samples

    def screened(self, pair: Pair) -> bool:
        """True when the pair is drawn by the screened design (core.screen)."""
        return self.auto and pair.samples is None and self.default_samples > 1

    def submit(self, node_id: str, pair: Pair) -> dict[Role, list[ReplyFuture]]:
        """Start (once) the pair's calls: every prompt, every sample; for a screened pair,
        its screen only. The futures of a pair already evaluated are forgotten (its replies
        are in its evaluations): none left."""
        futures = self.futures.get(node_id)
        if futures is None:
            if node_id in self.evaluated:
                return {}
            whole = [(role, 0, self.samples(pair)) for role, _ in self.prompts]
            if self.screened(pair):
                futures = self._submit_screen(node_id, pair)
            elif self._afford(node_id, pair, whole):
                futures = {role: self._draw(role, pair, start, stop) for role, start, stop in whole}
            else:
                futures = {}
            self.futures[node_id] = futures
        return futures

    def _draw(self, role: Role, pair: Pair, start: int, stop: int) -> list[ReplyFuture]:
        """Submit samples ``start`` to ``stop`` (their new calls reserved by ``_afford``)."""
        prompt = dict(self.prompts)[role].text
        messages = pair.messages()
        return [
            self.scheduler.submit(role, prompt, messages, sample, reserved=True)
            for sample in range(start, stop)
        ]

    def _afford(
        self, node_id: str, pair: Pair, draws: Sequence[tuple[Role, int, int]], need: bool = True
    ) -> bool:
        """Reserve the new agent calls of these draws (role, start, stop) in the
        ``--hgd-max-calls`` budget, all or none; when it cannot and the pair ``need`` them,
        the pair is undecided."""
        if self.scheduler.budget is None:
            return True
        messages = pair.messages()
        needed = self.scheduler.new_calls(
            (dict(self.prompts)[role].text, messages, sample)
            for role, start, stop in draws
            for sample in range(start, stop)
        )
        if self.scheduler.reserve(needed):
            return True
        if not need:
            return False
        self.undecided[node_id] = (
            f"the --hgd-max-calls budget could not pay for its next {needed} agent calls"
        )
        return False

    def _submit_screen(self, node_id: str, pair: Pair) -> dict[Role, list[ReplyFuture]]:
        """The screen: ``self.screen`` candidate samples; the baseline's cached pool, drawn
        up to as many when the cache holds fewer. The pair's design follows the cache."""
        samples = self.samples(pair)
        screen = min(self.screen, samples)
        pool: list[ReplyFuture] = []
        cached: int | None = None
        draws = [(Role.CANDIDATE, 0, screen)]
        if len(self.prompts) == 2:
            self._add_pool(pair, pool)
            cached = len(pool)
            draws.append((Role.BASELINE, cached, max(cached, screen)))
        messages = pair.messages()
        self.fixed_k[node_id] = {  # what a fixed-K run would call, the cache as it is now
            role.value: self.scheduler.new_calls(
                (prompt.text, messages, sample) for sample in range(samples)
            )
            for role, prompt in self.prompts
        }
        if not self._afford(node_id, pair, draws):
            return {}
        futures = {role: self._draw(role, pair, start, stop) for role, start, stop in draws}
        if Role.BASELINE in futures:
            futures[Role.BASELINE] = pool + futures[Role.BASELINE]
        self.designs[node_id] = design_for(samples, cached, self.screen)
        return futures

    def _go_on(self, batch: Sequence[tuple[str, Pair]], progress: Progress | None) -> None:
        """After the screen: each screened pair either stops or draws the rest of its K
        samples under each prompt (``Design.goes_on``: a per-pair rule)."""
        more: list[ReplyFuture] = []
        for node_id, pair in batch:
            design = self.designs.get(node_id)
            futures = self.futures.get(node_id)
            if design is None or futures is None or node_id in self.screens:
                continue
            looked = {role: self._check(pair, fs) for role, fs in futures.items()}
            if any(e.error for e in looked.values()):
                continue  # an error: evaluated as one, never tested
            base = looked.get(Role.BASELINE)
            passes = (looked[Role.CANDIDATE].passes, base.passes if base else 0)
            self.screens[node_id] = (design, *passes)
            self._looked[node_id] = looked  # checked once: `evaluate` checks only the rest
            if not design.goes_on(*passes):
                continue
            drawn = {
                Role.CANDIDATE: (design.screen_candidate, design.more_candidate),
                Role.BASELINE: (design.screen_baseline, design.more_baseline),
            }
            rest = [(role, start, start + count) for role, (start, count) in drawn.items()]
            if not self._afford(node_id, pair, [d for d in rest if d[0] in futures]):
                continue
            for role, fs in futures.items():
                start, count = drawn[role]
                fs += self._draw(role, pair, start, start + count)
                more += fs[start:]
        _wait(more, progress)

    def evaluate(self, node_id: str, pair: Pair) -> Evaluations:
        """Wait for the pair's replies and check them (once)."""
        evaluated = self.evaluated.get(node_id)
        if evaluated is None:
            futures = self.submit(node_id, pair) or {role: [] for role, _ in self.prompts}
            looked = self._looked.pop(node_id, {})
            evaluations = {
                role: _joined(looked[role], self._check(pair, fs[looked[role].runs :]))
                if role in looked
                else self._check(pair, fs)
                for role, fs in futures.items()
            }
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
        family at level ``alpha`` (``core.pairs.decide_counts``; pairs whose agent calls
        failed are errors, not tested).

        The baseline side of a pair is its pool: the K samples of this run and every further
        sample in the cache (indices K, K + 1, ... up to ``stats.MAX_POOL`` K). A close pair
        (``core.pairs.draws_confirmation``, at the run's own alpha whatever the batch's share)
        whose pool holds replies reused from the cache draws K fresh baseline samples, which
        the cache keeps for the next runs (docs/statistics.md)."""
        pending = []
        for node_id, pair in batch:
            futures = self.submit(node_id, pair)
            if node_id not in self.designs and Role.BASELINE in futures:
                self._add_pool(pair, futures[Role.BASELINE])
            pending += [f for fs in futures.values() for f in fs]
        _wait(pending, progress)
        self._go_on(batch, progress)
        first = {
            node_id: counts
            for node_id, pair in batch
            if (counts := self._counts(node_id, pair)) is not None
        }
        growing = {
            node_id: self._grow(node_id, pair)
            for node_id, pair in batch
            if node_id in first
            and draws_confirmation(first[node_id], self.alpha)
            and self._may_grow(node_id, pair)
        }
        _wait([f for fs in growing.values() for f in fs], progress)
        family = {
            node_id: counts
            for node_id, pair in batch
            if node_id in first
            and (counts := self._confirmed(node_id, pair, growing.get(node_id))) is not None
        }
        decided = decide_counts(list(family.values()), alpha, sampled=True)
        for node_id, decision in zip(family, decided, strict=True):
            self.decisions[node_id] = Decision(Delta(decision.delta), decision.sampled)

    def screen_status(self) -> str:
        """Where the screened pairs stand: decided at the screen, gone on, undecided."""
        went_on = sum(
            1
            for node_id, (design, c, b) in self.screens.items()
            if design.goes_on(c, b) and node_id not in self.undecided
        )
        stopped = sum(1 for design, c, b in self.screens.values() if not design.goes_on(c, b))
        made = sum(
            1
            for sides in self.evaluated.values()
            for side in sides
            if side is not None
            for reply in side.replies
            if not reply.cached
        )
        return (
            f"hgd: auto samples: {stopped} pairs decided at the screen, "
            f"{went_on} went on, {len(self.undecided)} undecided; {made} agent calls made"
        )

    def _counts(self, node_id: str, pair: Pair) -> PairCounts | None:
        """The pair's counts, None when an agent call failed (an error, not tested)."""
        baseline, candidate = self.evaluate(node_id, pair)
        if candidate.error or (baseline is not None and baseline.error):
            return None
        if node_id in self.undecided:
            return None
        return PairCounts(
            stats.PassCounts(candidate.passes, candidate.runs),
            _counts(baseline),
            screen=self.screens.get(node_id),
        )

    def _confirmed(
        self, node_id: str, pair: Pair, drawn: list[ReplyFuture] | None
    ) -> PairCounts | None:
        """The pair's counts with its confirming samples (``drawn``) checked and added to its
        pool; None when one of them failed (an error, not tested)."""
        baseline, candidate = self.evaluated[node_id]
        if drawn is None or baseline is None:
            return self._counts(node_id, pair)
        more = self._check(pair, drawn)
        baseline = _joined(baseline, more)
        self.evaluated[node_id] = (baseline, candidate)
        if baseline.error:
            return None
        confirm = stats.PassCounts(more.passes, more.runs)
        self.confirmations[node_id] = confirm
        return PairCounts(
            stats.PassCounts(candidate.passes, candidate.runs),
            _counts(baseline),
            confirm,
            self.screens.get(node_id),
        )

    def _add_pool(self, pair: Pair, pool: list[ReplyFuture]) -> None:
        """Append to the baseline's futures its cached samples beyond those asked for."""
        prompt = self.prompts[0][1].text
        messages = pair.messages()
        while len(pool) < stats.MAX_POOL * self.samples(pair):
            future = self.scheduler.at_hand(prompt, messages, len(pool))
            if future is None:
                return
            pool.append(future)

    def _may_grow(self, node_id: str, pair: Pair) -> bool:
        """True when the pair's baseline pool reuses cached replies and has room to grow,
        and the call budget pays for it (without it the first look stands: its bound holds)."""
        baseline, _ = self.evaluated[node_id]
        if baseline is None or not any(r.cached for r in baseline.replies):
            return False
        step = stats.POOL_GROWTH * self.samples(pair)
        if baseline.runs + step > stats.MAX_POOL * self.samples(pair):
            return False
        start = len(baseline.replies)
        return self._afford(node_id, pair, [(Role.BASELINE, start, start + step)], need=False)

    def _grow(self, node_id: str, pair: Pair) -> list[ReplyFuture]:
        """Start the fresh baseline samples of a close pair, past the end of its pool."""
        baseline, _ = self.evaluated[node_id]
        start = 0 if baseline is None else len(baseline.replies)
        return self._draw(
            Role.BASELINE, pair, start, start + stats.POOL_GROWTH * self.samples(pair)
        )

    def decision(
        self, node_id: str, baseline: Evaluation | None, candidate: Evaluation
    ) -> Decision:
        """The pair's delta: from its batch when sampled, else the one-shot table."""
        decided = self.decisions.get(node_id)
        if decided is not None:
            return decided
        counts = PairCounts(stats.PassCounts(candidate.passes, candidate.runs), _counts(baseline))
        return Decision(Delta(decide_counts([counts], self.alpha, sampled=False)[0].delta))


def _wait(futures: list[ReplyFuture], progress: Progress | None) -> None:
    """Wait for every future, reporting (done, total) about once a second."""
    total = len(futures)
    pending = futures
    while pending:
        _done, not_done = concurrent.futures.wait(pending, timeout=1.0)
        pending = list(not_done)
        if progress is not None:
            progress(total - len(pending), total)


def _joined(first: Evaluation, more: Evaluation) -> Evaluation:
    """Two evaluations of consecutive samples as one (no results when either failed)."""
    ok = first.error is None and more.error is None
    return Evaluation(first.replies + more.replies, first.results + more.results if ok else ())


def _counts(evaluation: Evaluation | None) -> stats.PassCounts | None:
    return None if evaluation is None else stats.PassCounts(evaluation.passes, evaluation.runs)
