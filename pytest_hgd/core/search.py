"""Candidate search's rules (no pytest, no I/O): the policies, the held-out split, a
prompt's score against the reference prompt, and which candidate is best.

The search itself (proposals, calls) is ``run/search.py``; docs/search.md has the argument.
"""

from __future__ import annotations

import difflib
import math
import random
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass

from pytest_hgd.core.pairs import PairCounts, decide_counts
from pytest_hgd.core.stats import PassCounts


@dataclass(frozen=True)
class SearchPolicy:
    """``strict`` (budget None): a candidate may regress no locked pair on the training
    split. ``budget:R``: up to R locked pairs, when its net gain in passing training pairs
    is positive (and, with samples, beyond the agent's noise: ``significant_gain``)."""

    budget: int | None = None

    @property
    def name(self) -> str:
        return "strict" if self.budget is None else f"budget:{self.budget}"


def parse_policy(text: str) -> SearchPolicy:
    """``strict`` or ``budget:R`` (R a whole number >= 0); ValueError otherwise."""
    value = text.strip().lower()
    if value == "strict":
        return SearchPolicy()
    kind, _, budget = value.partition(":")
    if kind == "budget" and budget.strip().isdigit():
        return SearchPolicy(int(budget))
    raise ValueError(text)


def split_holdout(paths: Iterable[str], fraction: float, seed: int) -> frozenset[str]:
    """The files held out: ``round(fraction * files)`` of them (at least one when the
    fraction is above 0, and never every file), drawn with the seed. Whole files, so no
    conversation is on both sides."""
    files = sorted(set(paths))
    if fraction <= 0 or len(files) < 2:
        return frozenset()
    count = min(len(files) - 1, max(1, round(fraction * len(files))))
    return frozenset(random.Random(f"hgd-holdout:{seed}").sample(files, count))


@dataclass(frozen=True)
class Score:
    """A prompt's results on a set of pairs, against the reference prompt's results."""

    passing: frozenset[str]  # pairs that mostly pass
    total: int  # pairs asked
    errors: int  # pairs not checked: an agent error, or the call budget ran out
    regressed: frozenset[str]  # pairs regressed against the reference (the gate's rule)
    locked: frozenset[str]  # the locked pairs among those asked
    counts: Mapping[str, PassCounts]  # the checked pairs' counts

    @property
    def passed(self) -> int:
        return len(self.passing)

    @property
    def locked_regressed(self) -> int:
        return len(self.regressed & self.locked)

    def totals(self) -> dict[str, int]:
        return {"passed": self.passed, "total": self.total}


def score(
    results: Mapping[str, PassCounts | None],
    reference: Mapping[str, PassCounts],
    locked: Set[str],
    alpha: float,
    sampled: bool,
) -> Score:
    """Score ``results`` (per pair id: the prompt's counts, None when not checked): a
    regression is the gate's own decision against the reference's counts, one corrected
    family over these pairs when ``sampled``, else the one-shot table."""
    checked = {pid: counts for pid, counts in results.items() if counts is not None}
    compared = [pid for pid in checked if pid in reference]
    decided = decide_counts(
        [PairCounts(checked[pid], reference[pid]) for pid in compared], alpha, sampled=sampled
    )
    return Score(
        passing=frozenset(pid for pid, counts in checked.items() if counts.mostly_passes),
        total=len(results),
        errors=len(results) - len(checked),
        regressed=frozenset(
            pid for pid, d in zip(compared, decided, strict=True) if d.delta == "regressed"
        ),
        locked=frozenset(pid for pid in results if pid in locked),
        counts=checked,
    )


def acceptable(
    candidate: Score, start: Score, policy: SearchPolicy, *, sampled: bool, level: float
) -> bool:
    """May the search keep this candidate (a complete score on the training split)?

    Every pair must have been checked. ``strict``: no locked pair regressed. ``budget:R``:
    at most R, and more training pairs pass than under the start prompt. With samples, a
    candidate that passes more training pairs than the start (under either policy) must also
    show that gain beyond the agent's noise (``significant_gain`` at ``level``)."""
    if candidate.errors:
        return False
    if policy.budget is None:
        if candidate.locked_regressed:
            return False
    elif candidate.locked_regressed > policy.budget or candidate.passed <= start.passed:
        return False
    gains = candidate.passed > start.passed
    return not (sampled and gains) or significant_gain(candidate, start, level)


def significant_gain(candidate: Score, start: Score, level: float) -> bool:
    """Is the candidate's gain in passes over the start beyond the agent's noise? The exact
    stratified test of ``sum(c_i)`` (``stratified_p``) over the pairs both prompts were asked,
    at ``level``: exact when the candidate is a no-op (docs/search.md)."""
    tables = [
        (cand, start.counts[pid]) for pid, cand in candidate.counts.items() if pid in start.counts
    ]
    return stratified_p(tables) <= level


def stratified_p(tables: Sequence[tuple[PassCounts, PassCounts]]) -> float:
    """One-sided p-value that the candidate passes more, over pairs (candidate, start).

    Under a no-op every pair's samples under both prompts are alike, so given the pair's
    passes t out of n, the candidate's share is hypergeometric, independently across pairs:
    the exact law of ``sum(c_i)`` is the convolution of those (the exact form of the
    Cochran-Mantel-Haenszel test). p = P(sum >= observed)."""
    law = [1.0]  # law[j]: chance the candidate's passes sum to (its least possible) + j
    observed = lowest = 0
    for cand, base in tables:
        n, t, k = cand.runs + base.runs, cand.passes + base.passes, cand.runs
        least, most = max(0, t - base.runs), min(t, k)
        observed += cand.passes
        lowest += least
        if least == most:
            continue  # the pair's margins leave no freedom: no evidence either way
        whole = math.comb(n, t)
        pmf = [math.comb(k, c) * math.comb(n - k, t - c) / whole for c in range(least, most + 1)]
        moved = [0.0] * (len(law) + len(pmf) - 1)
        for i, chance in enumerate(law):
            if chance:
                for j, share in enumerate(pmf):
                    moved[i + j] += chance * share
        law = moved
    return min(1.0, sum(law[max(0, observed - lowest) :]))


def better(candidate: Score, text: str, than: Score, than_text: str) -> bool:
    """More passing training pairs wins; on a tie, fewer locked pairs regressed, then the
    shorter prompt."""
    return (candidate.passed, -candidate.locked_regressed, -len(text)) > (
        than.passed,
        -than.locked_regressed,
        -len(than_text),
    )


def summary(train: Score, holdout: Score | None) -> dict[str, object]:
    """The report's ``S``: training and held-out counts and the locked pairs regressed on
    the training split (with the held-out split's beside them)."""
    return {
        "train": train.totals(),
        "holdout": holdout.totals() if holdout else {"passed": 0, "total": 0},
        "locked_regressed": train.locked_regressed,
        "holdout_locked_regressed": holdout.locked_regressed if holdout else 0,
    }


def diff(before: str, after: str) -> str:
    """A unified diff of two prompts (empty when equal)."""
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), "parent", "candidate"
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def plain(text: str) -> str:
    """A prompt with its whitespace at line ends and at both ends folded: two prompts that
    differ only there are one prompt to the search."""
    return "\n".join(line.rstrip() for line in text.strip().splitlines())
