"""A prompt change as hunks that can be reverted one by one (no pytest here).

``split_hunks(baseline, candidate)`` diffs the two prompts line by line (difflib) and cuts
each changed block as finely as it can while every hunk stays revertible on its own:

- in a block that replaces m lines by n, lines that still look alike (difflib's ratio of
  their words at least ``MATCH``) are paired in order as replacements; the others become
  one removal or one insertion hunk each;
- a line replaced by one line is cut again into sentences
  (``core.mutators.split_sentences``) when that is finer, the same way;
- a piece that changes only whitespace joins the hunk next to it in its block.

Every hunk knows the baseline text it replaces, the candidate text it adds and where that
text starts in the candidate, so ``revert(candidate, hunks, reverted)`` rebuilds the
candidate with any set of hunks put back: all of them give the baseline exactly, none the
candidate.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from pytest_hgd.core.mutators import split_sentences

MATCH = 0.5  # similarity of their words at which two lines are one line reworded
MAX_PAIRING = 2500  # a block of m x n lines above this is cut into removals and insertions
LABEL_CHARS = 160
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Hunk:
    """One revertible piece of the change, numbered from 1 in the order of the candidate."""

    index: int
    baseline: str  # the baseline text it replaces ("" for an insertion)
    candidate: str  # the candidate text it adds ("" for a removal)
    start: int  # where ``candidate`` starts in the candidate prompt

    @property
    def kind(self) -> str:
        if not self.baseline:
            return "added"
        return "removed" if not self.candidate else "replaced"

    @property
    def label(self) -> str:
        """One line: ``+ added``, ``- removed`` or ``"old" → "new"``."""
        old, new = _one_line(self.baseline), _one_line(self.candidate)
        if self.kind == "added":
            return f"+ {new}"
        if self.kind == "removed":
            return f"- {old}"
        return f'"{old}" → "{new}"'


@dataclass(frozen=True)
class _Piece:
    baseline: str
    candidate: str
    start: int


def split_hunks(baseline: str, candidate: str) -> list[Hunk]:
    """The change from ``baseline`` to ``candidate`` as hunks, in the candidate's order."""
    pieces = _pieces(
        baseline.splitlines(keepends=True), candidate.splitlines(keepends=True), 0, True
    )
    return [Hunk(i, p.baseline, p.candidate, p.start) for i, p in enumerate(pieces, start=1)]


def revert(candidate: str, hunks: Sequence[Hunk], reverted: Collection[int]) -> str:
    """The candidate with the hunks whose index is in ``reverted`` put back to the baseline."""
    out = []
    cursor = 0
    for hunk in sorted(hunks, key=lambda h: (h.start, h.index)):
        out.append(candidate[cursor : hunk.start])
        out.append(hunk.baseline if hunk.index in reverted else hunk.candidate)
        cursor = hunk.start + len(hunk.candidate)
    out.append(candidate[cursor:])
    return "".join(out)


def _pieces(old: list[str], new: list[str], offset: int, lines: bool) -> list[_Piece]:
    """The changed pieces between two token lists (lines, or a line's sentences); ``offset``
    is where ``new`` starts in the candidate."""
    starts = [offset]
    for token in new:
        starts.append(starts[-1] + len(token))
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    pieces: list[_Piece] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        block: list[_Piece] = []
        for (a1, a2), (b1, b2) in _pair_up(old[i1:i2], new[j1:j2]):
            base, cand = old[i1 + a1 : i1 + a2], new[j1 + b1 : j1 + b2]
            start = starts[j1 + b1]
            finer = (
                _sentences(base[0], cand[0], start) if lines and len(base) == len(cand) == 1 else []
            )
            block += finer or [_Piece("".join(base), "".join(cand), start)]
        pieces += _merge_whitespace(block)
    return pieces


def _sentences(old: str, new: str, start: int) -> list[_Piece]:
    """A replaced line as sentence pieces, when that cuts it finer; else []."""
    old_units, new_units = split_sentences(old), split_sentences(new)
    if len(old_units) < 2 and len(new_units) < 2:
        return []
    pieces = _pieces(old_units, new_units, start, False)
    changed = sum(len(p.baseline) + len(p.candidate) for p in pieces)
    return pieces if len(pieces) > 1 or changed < len(old) + len(new) else []


def _pair_up(old: list[str], new: list[str]) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """A replaced block cut into ((old start, stop), (new start, stop)) steps, in order:
    alike tokens paired one to one (the pairing of most total similarity that keeps the
    order), every other token alone."""
    m, n = len(old), len(new)
    if m * n > MAX_PAIRING:
        return [((i, i + 1), (0, 0)) for i in range(m)] + [((m, m), (j, j + 1)) for j in range(n)]
    alike = [[_similarity(a, b) for b in new] for a in old]
    best = [[0.0] * (n + 1) for _ in range(m + 1)]
    for i in range(m - 1, -1, -1):
        for j in range(n - 1, -1, -1):
            paired = alike[i][j] + best[i + 1][j + 1] if alike[i][j] >= MATCH else -1.0
            best[i][j] = max(paired, best[i + 1][j], best[i][j + 1])
    steps = []
    i = j = 0
    while i < m or j < n:
        if (
            i < m
            and j < n
            and alike[i][j] >= MATCH
            and best[i][j] == alike[i][j] + best[i + 1][j + 1]
        ):
            steps.append(((i, i + 1), (j, j + 1)))
            i, j = i + 1, j + 1
        elif i < m and (j == n or best[i][j] == best[i + 1][j]):
            steps.append(((i, i + 1), (j, j)))
            i += 1
        else:
            steps.append(((i, i), (j, j + 1)))
            j += 1
    return steps


def _similarity(a: str, b: str) -> float:
    """How alike two lines' words are (difflib's ratio over their case-folded words)."""
    return difflib.SequenceMatcher(None, _WORD.findall(a.lower()), _WORD.findall(b.lower())).ratio()


def _merge_whitespace(block: list[_Piece]) -> list[_Piece]:
    """Pieces that change only whitespace joined to the piece before them (or after, for the
    first) when the two touch: pieces of one block are apart only by sentences both prompts
    share, never empty, so touching in the candidate is touching in the baseline too."""
    merged: list[_Piece] = []
    for piece in block:
        last = merged[-1] if merged else None
        touching = last is not None and last.start + len(last.candidate) == piece.start
        if last is not None and touching and (_blank(piece) or _blank(last)):
            merged[-1] = _Piece(
                last.baseline + piece.baseline, last.candidate + piece.candidate, last.start
            )
        else:
            merged.append(piece)
    return merged


def _blank(piece: _Piece) -> bool:
    """True when the piece changes only whitespace (the same words on both sides)."""
    return piece.baseline.split() == piece.candidate.split()


def _one_line(text: str) -> str:
    words = " ".join(text.split())
    if not words:
        return "(whitespace)" if text else "(nothing)"
    return words if len(words) <= LABEL_CHARS else words[: LABEL_CHARS - 1] + "…"
