"""Blame, the pure part: which hunks of a prompt change a regressed pair depends on, found by
adaptive group testing, and where a regressed rollout first parts from the baseline's.

The search asks an oracle whether a pair passes again with a set of hunks reverted; the
caller (``run.blame``) answers with agent calls. No pytest and no I/O here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_hgd.core.hunks import Hunk

SINGLES = 6  # a set of at most this many hunks is tried hunk by hunk, a larger one by halves
AUTO_HUNKS = (2, 20)  # blame is on by default for a change of this many hunks

Query = tuple[str, frozenset[int]]  # (pair id, the hunks reverted)
# Answers every query: True when the pair passes with those hunks reverted, False when it
# does not, None when that is not known (an agent error, or the call budget is spent).
Oracle = Callable[[Sequence[Query]], Mapping[Query, bool | None]]


@dataclass
class ReportBlame:
    """What blame adds to the report's entries, by id: a regressed pair's ``blame`` (and
    ``blame_note``), a regressed rollout's ``diverged``."""

    pairs: dict[str, dict[str, Any]] = field(default_factory=dict)
    rollouts: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Culprits:
    """What one regressed pair depends on."""

    hunks: tuple[int, ...] = ()  # each one, reverted alone, makes the pair pass again
    together: tuple[tuple[int, ...], ...] = ()  # sets that pass reverted together, not alone
    complete: bool = True  # False: an error or the call budget cut the search short


def search(pair_ids: Sequence[str], hunks: Sequence[int], oracle: Oracle) -> dict[str, Culprits]:
    """Each pair's culprits among ``hunks``; reverting them all (the baseline) is taken to
    make every pair pass, as it did in the gate.

    Every single hunk that makes the pair pass reverted alone is found (``_explore``: by
    group testing, about 2 d log2(h) queries for d culprits among h hunks, not h). When the
    other hunks, reverted together, make it pass too, they hold a joint cause: it is
    searched for the same way, and each joint cause found is shrunk to the hunks it needs
    (``_shrink``).
    """
    found: dict[str, set[int]] = {pair: set() for pair in pair_ids}
    joint: list[Query] = []
    short: set[str] = set()
    roots = [(pair, frozenset(hunks)) for pair in pair_ids] if hunks else []
    while roots:
        singles = _explore(roots, oracle, joint, short)
        rests = [(pair, root - singles[pair]) for pair, root in roots if singles[pair] < root]
        rests = [(pair, rest) for pair, rest in rests if singles[pair]]
        answers = oracle(sorted(rests, key=_order)) if rests else {}
        for pair, _ in roots:
            found[pair] |= singles[pair]
        roots = []
        for query in rests:
            answer = answers.get(query)
            if answer is None:
                short.add(query[0])
            elif answer:
                roots.append(query)
    together: dict[str, set[tuple[int, ...]]] = {pair: set() for pair in pair_ids}
    for pair, group in _shrink(joint, oracle, short):
        if len(group) == 1:
            found[pair] |= group
        else:
            together[pair].add(tuple(sorted(group)))
    return {
        pair: Culprits(tuple(sorted(found[pair])), tuple(sorted(together[pair])), pair not in short)
        for pair in pair_ids
    }


def _explore(
    roots: Sequence[Query], oracle: Oracle, joint: list[Query], short: set[str]
) -> dict[str, set[int]]:
    """The single culprits under each (pair, set that makes it pass): the set split (hunk by
    hunk when small, else in halves), each part tried, the passing parts split again, every
    pair's queries of a round asked at once. A set none of whose parts passes goes to
    ``joint``."""
    singles: dict[str, set[int]] = {pair: set() for pair, _ in roots}
    frontier = list(roots)
    while frontier:
        parts = {(pair, known): _parts(known) for pair, known in frontier}
        queries = sorted(
            {(pair, part) for (pair, known), ps in parts.items() for part in ps if part != known},
            key=_order,
        )
        answers = oracle(queries) if queries else {}
        frontier = []
        for (pair, known), ps in parts.items():
            passing = []
            for part in ps:
                answer = True if part == known else answers.get((pair, part))
                if answer is None:
                    short.add(pair)
                elif answer:
                    passing.append(part)
            for part in passing:
                if len(part) == 1:
                    singles[pair] |= part
                else:
                    frontier.append((pair, part))
            if not passing and pair not in short:
                joint.append((pair, known))
    return singles


def _shrink(joint: Sequence[Query], oracle: Oracle, short: set[str]) -> list[Query]:
    """Each joint cause made 1-minimal: each of its hunks tried out in turn (one query a
    cause a round) and left out while the rest, reverted, still make the pair pass."""
    kept = [set(group) for _, group in joint]
    untried = [sorted(group) for _, group in joint]
    while True:
        trying = [
            (n, untried[n].pop(0)) for n in range(len(joint)) if untried[n] and len(kept[n]) > 1
        ]
        if not trying:
            return [(pair, frozenset(group)) for (pair, _), group in zip(joint, kept, strict=True)]
        asked = {n: (joint[n][0], frozenset(kept[n] - {h})) for n, h in trying}
        answers = oracle(sorted(set(asked.values()), key=_order))
        for n, h in trying:
            answer = answers.get(asked[n])
            if answer is None:
                short.add(joint[n][0])
                untried[n].clear()
            elif answer:
                kept[n].discard(h)


def _order(query: Query) -> tuple[str, list[int]]:
    return query[0], sorted(query[1])


def _parts(hunks: frozenset[int]) -> list[frozenset[int]]:
    ordered = sorted(hunks)
    if len(ordered) <= SINGLES:
        return [frozenset({h}) for h in ordered]
    half = len(ordered) // 2
    return [frozenset(ordered[:half]), frozenset(ordered[half:])]


def auto_blames(hunk_count: int) -> bool:
    """Blame's default: on for a change of 2 to 20 hunks."""
    low, high = AUTO_HUNKS
    return low <= hunk_count <= high


def blame_entries(culprits: Culprits, hunks: Sequence[Hunk]) -> dict[str, Any]:
    """A regressed pair's ``blame`` (and ``blame_note``) in the report: one entry a hunk
    that reverted alone makes it pass, then one a hunk of each joint cause, with the hunks
    it must be reverted ``together_with``."""
    by_index = {h.index: h for h in hunks}
    listed: list[tuple[int, tuple[int, ...]]] = [(i, ()) for i in culprits.hunks]
    listed += [(i, tuple(j for j in group if j != i)) for group in culprits.together for i in group]
    entries = []
    for index, others in listed:
        hunk = by_index[index]
        entry: dict[str, Any] = {
            "hunk": index,
            "text": hunk.label,
            "baseline": hunk.baseline,
            "candidate": hunk.candidate,
        }
        if others:
            entry["together_with"] = list(others)
        entries.append(entry)
    found: dict[str, Any] = {"blame": entries}
    note = blame_note(culprits)
    if note:
        found["blame_note"] = note
    return found


def blame_note(culprits: Culprits) -> str | None:
    """What a reader must know beyond the list of hunks, if anything."""
    note = None
    if not culprits.hunks and not culprits.together:
        note = "not explained: reverting hunks was not seen to make it pass"
    if not culprits.complete:
        cut = "blame cut short (an agent error or the --hgd-max-calls budget)"
        note = f"{note}; {cut}" if note else cut
    return note


def first_divergence(
    baseline: Sequence[Mapping[str, Any]], candidate: Sequence[Mapping[str, Any]]
) -> dict[str, Any] | None:
    """The first agent turn (1-based, counting customer turns, as ``first_failed_turn``)
    whose reply differs between two rollouts' transcripts, with both replies (None where
    a rollout has no reply there); None when every reply is the same."""
    old, new = _replies(baseline), _replies(candidate)
    for turn in range(1, max(len(old), len(new)) + 1):
        before = old[turn - 1] if turn <= len(old) else None
        after = new[turn - 1] if turn <= len(new) else None
        if before != after:
            return {"turn": turn, "baseline": before, "candidate": after}
    return None


def _replies(transcript: Sequence[Mapping[str, Any]]) -> list[str]:
    """The agent's reply to each customer turn, in order (the recorded opener left out)."""
    replies: list[str] = []
    customers = 0
    for turn in transcript:
        if turn.get("speaker") == "customer":
            customers += 1
        elif customers and len(replies) < customers:
            replies.append(str(turn.get("text", "")))
    return replies
