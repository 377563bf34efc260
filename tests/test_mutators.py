"""Prompt mutators for the probe: sentence splitting, the built-in operations, determinism."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_hgd.core.mutators import (
    BUILTIN_MUTATORS,
    NEUTRAL_SENTENCES,
    Mutant,
    drop_sentence,
    duplicate_sentence,
    insert_sentence,
    make_mutants,
    reorder_sentences,
    split_sentences,
)

PROMPT = (
    "You are Sam from Acme Motors. Be polite!\n\n"
    "Rules:\n"
    "- Never promise discounts.\n"
    "- Offer a call from a sales rep.\n"
    "  - Mention today's offers.\n"
    "Thanks."
)


def test_split_sentences_keeps_the_whitespace_after_each_sentence() -> None:
    assert split_sentences(PROMPT) == [
        "You are Sam from Acme Motors. ",
        "Be polite!\n\n",
        "Rules:\n",
        "- Never promise discounts.\n",
        "- Offer a call from a sales rep.\n",
        "  - Mention today's offers.\n",
        "Thanks.",
    ]
    assert split_sentences('He said "Go." Then left?  Yes') == [
        'He said "Go." ',
        "Then left?  ",
        "Yes",
    ]
    assert split_sentences("") == []
    assert split_sentences("  \n") == ["  \n"]
    assert split_sentences("\n\nLeading space. Two.") == ["\n\nLeading space. ", "Two."]


@given(st.text(alphabet=st.sampled_from("ab .!?\n\t\"')"), max_size=60))
def test_split_sentences_joins_back_to_the_text(text: str) -> None:
    units = split_sentences(text)
    assert "".join(units) == text
    assert all(u for u in units)


def _apply(op: object, text: str, seed: int = 0) -> tuple[str, str]:
    assert callable(op)
    units, description = op(split_sentences(text), random.Random(seed))
    return "".join(units), description


def test_drop_keeps_the_paragraph_break() -> None:
    text = "One. Two.\n\nThree."
    results = {_apply(drop_sentence, text, seed)[0] for seed in range(30)}
    assert results == {"Two.\n\nThree.", "One.\n\nThree.", "One. Two.\n\n"}
    assert _apply(drop_sentence, "Only one.") == ("Only one.", "")


def test_reorder_swaps_sentences_but_not_the_layout() -> None:
    text, description = _apply(reorder_sentences, "A. B.\n\nC.", seed=3)
    assert sorted(text.replace("\n\n", " ").split()) == ["A.", "B.", "C."]
    assert text.count("\n\n") == 1 and text != "A. B.\n\nC."
    assert description.startswith("swap sentences")
    assert _apply(reorder_sentences, "Same. Same.") == ("Same. Same.", "")


def test_duplicate_repeats_in_line_or_as_its_own_line() -> None:
    assert _apply(duplicate_sentence, "Hello.")[0] == "Hello. Hello."
    lines = "- a.\n  - b.\n"
    results = {_apply(duplicate_sentence, lines, seed)[0] for seed in range(20)}
    assert results == {"- a.\n- a.\n  - b.\n", "- a.\n  - b.\n  - b.\n"}


def test_insert_adds_one_neutral_sentence() -> None:
    for seed in range(20):
        text, description = _apply(insert_sentence, "A. B.", seed)
        added = [s for s in NEUTRAL_SENTENCES if s in text]
        assert len(added) == 1 and text.replace(added[0], "").split() == ["A.", "B."]
        assert description.startswith("insert")
    assert _apply(insert_sentence, "")[0] in NEUTRAL_SENTENCES


def test_make_mutants_is_deterministic_distinct_and_uses_every_operation() -> None:
    mutants = make_mutants(PROMPT, 12, seed=7)
    assert mutants == make_mutants(PROMPT, 12, seed=7)
    assert mutants != make_mutants(PROMPT, 12, seed=8)
    assert len(mutants) == 12 and all(isinstance(m, Mutant) for m in mutants)
    texts = [m.text for m in mutants]
    assert PROMPT not in texts and len(set(texts)) == 12
    assert {m.operation for m in mutants} == set(BUILTIN_MUTATORS)
    assert all(m.description for m in mutants)
    assert make_mutants(PROMPT, 5, seed=7) == mutants[:5]  # a longer probe extends a shorter


def test_make_mutants_of_a_one_sentence_prompt_still_changes_it() -> None:
    mutants = make_mutants("Be brief.", 4, seed=0)
    assert len(mutants) == 4 and len({m.text for m in mutants}) == 4
    assert {m.operation for m in mutants} <= {"duplicate", "insert"}


def test_make_mutants_takes_extra_mutators_and_rejects_bad_counts() -> None:
    def shout(units: list[str], rng: random.Random) -> tuple[list[str], str]:
        return [u.upper() for u in units], "upper-case everything"

    mutants = make_mutants("Hi there.", 3, seed=1, mutators={"shout": shout})
    assert [m.text for m in mutants] == ["HI THERE."] * 3  # only one change is possible
    assert make_mutants("Hi.", 0, seed=1) == []
    assert make_mutants("hi", 2, seed=1, mutators={"noop": lambda u, r: (u, "")}) == []
    with pytest.raises(ValueError, match="count"):
        make_mutants("Hi.", -1, seed=1)
    with pytest.raises(ValueError, match="mutators"):
        make_mutants("Hi.", 1, seed=1, mutators={})


@settings(max_examples=60)
@given(st.text(max_size=120), st.integers(0, 6), st.integers(0, 2**32))
def test_every_mutant_differs_from_the_prompt(prompt: str, count: int, seed: int) -> None:
    mutants = make_mutants(prompt, count, seed)
    assert len(mutants) == count
    assert all(m.text != prompt for m in mutants)
    assert mutants == make_mutants(prompt, count, seed)
