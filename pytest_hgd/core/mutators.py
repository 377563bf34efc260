"""Prompt mutators for the pressure probe: small sentence-level changes to a prompt (no pytest).

A prompt is split into sentences, each carrying the whitespace that follows it, so that
``"".join(split_sentences(text)) == text``. A mutator takes that list and a seeded
``random.Random`` and returns a new list and a one-line description; it returns the list
unchanged (and ``""``) when it cannot apply, e.g. dropping from a one-sentence prompt.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

Mutator = Callable[[list[str], random.Random], tuple[list[str], str]]

NEUTRAL_SENTENCES: tuple[str, ...] = (
    "Read each message carefully.",
    "These instructions apply to the whole conversation.",
    "Keep these instructions in mind.",
    "This note is for context only.",
    "Take a moment before you answer.",
)

MAX_ATTEMPTS = 25
_END = re.compile(r"""[.!?]+["'\u201d\u2019)\]]*(?=\s)|\n""")
_SPACE = re.compile(r"\s*")


@dataclass(frozen=True)
class Mutant:
    """One perturbed prompt: its text, the operation that made it, and what changed."""

    text: str
    operation: str
    description: str


def split_sentences(text: str) -> list[str]:
    """Sentences (ended by . ! ? before whitespace, or by a line break) with trailing space."""
    lead = len(text) - len(text.lstrip())
    if lead == len(text):
        return [text] if text else []
    units: list[str] = []
    start = lead
    for match in _END.finditer(text, lead):
        if match.start() < start:
            continue  # inside whitespace already taken by the previous sentence
        space = _SPACE.match(text, match.end())
        end = space.end() if space else match.end()
        newline = text.rfind("\n", match.start(), end)
        if newline >= 0:
            end = newline + 1  # a line's indentation belongs to the sentence on it
        units.append(text[start:end])
        start = end
    if start < len(text):
        units.append(text[start:])
    units[0] = text[:lead] + units[0]
    return units


def _parts(unit: str) -> tuple[str, str, str]:
    """Leading whitespace, body, trailing whitespace."""
    body = unit.strip()
    if not body:
        return unit, "", ""
    lead = unit[: len(unit) - len(unit.lstrip())]
    trail = unit[len(unit.rstrip()) :]
    return lead, body, trail


def _excerpt(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= width else text[: width - 1] + "\u2026")


def _whole_line(units: list[str], index: int) -> bool:
    """Does the sentence fill its line (a bullet, a heading)?"""
    before = index == 0 or "\n" in _parts(units[index - 1])[2]
    return before and "\n" in _parts(units[index])[2]


def drop_sentence(units: list[str], rng: random.Random) -> tuple[list[str], str]:
    """Remove one sentence; the stronger break (more newlines) around it is kept."""
    if sum(1 for u in units if u.strip()) < 2:
        return units, ""
    index = rng.choice([i for i, u in enumerate(units) if u.strip()])
    lead, body, trail = _parts(units[index])
    rest = units[:index] + units[index + 1 :]
    if index > 0:
        p_lead, p_body, p_trail = _parts(rest[index - 1])
        keep = trail if trail.count("\n") > p_trail.count("\n") else p_trail
        rest[index - 1] = p_lead + p_body + keep
    else:
        _, n_body, n_trail = _parts(rest[0])
        rest[0] = lead + n_body + n_trail
    return rest, f"drop sentence {index + 1}: {_excerpt(body)}"


def reorder_sentences(units: list[str], rng: random.Random) -> tuple[list[str], str]:
    """Swap two different sentences; the whitespace between them stays where it was."""
    indexes = [i for i, u in enumerate(units) if u.strip()]
    if len({_parts(units[i])[1] for i in indexes}) < 2:
        return units, ""
    while True:
        first, second = sorted(rng.sample(indexes, 2))
        a, b = _parts(units[first]), _parts(units[second])
        if a[1] != b[1]:
            break
    out = list(units)
    out[first] = a[0] + b[1] + a[2]
    out[second] = b[0] + a[1] + b[2]
    what = f"{_excerpt(a[1])} <-> {_excerpt(b[1])}"
    return out, f"swap sentences {first + 1} and {second + 1}: {what}"


def duplicate_sentence(units: list[str], rng: random.Random) -> tuple[list[str], str]:
    """Repeat one sentence right after itself (on its own line when it fills a line)."""
    indexes = [i for i, u in enumerate(units) if u.strip()]
    if not indexes:
        return units, ""
    index = rng.choice(indexes)
    lead, body, trail = _parts(units[index])
    sep = trail if _whole_line(units, index) else " "
    copy = (lead if sep == trail else "") + body + trail
    out = [*units[:index], lead + body + sep, copy, *units[index + 1 :]]
    return out, f"duplicate sentence {index + 1}: {_excerpt(body)}"


def insert_sentence(units: list[str], rng: random.Random) -> tuple[list[str], str]:
    """Insert a neutral sentence (from NEUTRAL_SENTENCES) at the start or after a sentence."""
    sentence = rng.choice(NEUTRAL_SENTENCES)
    if not any(u.strip() for u in units):
        return [*units, sentence], f"insert {_excerpt(sentence)}"
    position = rng.randrange(len(units) + 1)
    out = list(units)
    if position == 0:
        lead, body, trail = _parts(out[0])
        out[0:1] = [lead + sentence + " ", body + trail]
        return out, f"insert {_excerpt(sentence)} at the start"
    lead, body, trail = _parts(out[position - 1])
    out[position - 1 : position] = [lead + body + " ", sentence + trail]
    return out, f"insert {_excerpt(sentence)} after sentence {position}"


BUILTIN_MUTATORS: dict[str, Mutator] = {
    "drop": drop_sentence,
    "reorder": reorder_sentences,
    "duplicate": duplicate_sentence,
    "insert": insert_sentence,
}


def make_mutants(
    prompt: str, count: int, seed: int, mutators: Mapping[str, Mutator] | None = None
) -> list[Mutant]:
    """``count`` mutants of ``prompt``, the same for the same seed, cycling through the
    operations; each differs from the prompt and, where the mutators allow, from the others.

    Mutant ``j`` depends only on the seed, ``j`` and the mutants before it, so a longer list
    starts with the shorter one. Fewer than ``count`` come back only if no operation can
    change the prompt at all.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, not {count}")
    table = dict(mutators if mutators is not None else BUILTIN_MUTATORS)
    if not table:
        raise ValueError("no prompt mutators to choose from")
    names = list(table)
    units = split_sentences(prompt)
    offset = random.Random(f"hgd-probe:{seed}").randrange(len(names))
    mutants: list[Mutant] = []
    seen = {prompt}
    for j in range(count):
        fallback: Mutant | None = None
        for attempt in range(MAX_ATTEMPTS):
            name = names[(offset + j + attempt) % len(names)]
            rng = random.Random(f"hgd-probe:{seed}:{j}:{attempt}")
            new_units, description = table[name](list(units), rng)
            text = "".join(new_units)
            if text == prompt:
                continue
            mutant = Mutant(text=text, operation=name, description=description)
            if text not in seen:
                fallback = mutant
                break
            fallback = fallback or mutant
        if fallback is not None:
            mutants.append(fallback)
            seen.add(fallback.text)
    return mutants
