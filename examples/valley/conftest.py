"""A proposer for candidate search standing in for a person's single-instruction edits.

`pytest --hgd --hgd-search=N` pools every `pytest_hgd_propose` implementation's prompts with
the built-in mutators' (drop, reorder, duplicate, insert a sentence). This one proposes, in an
order drawn from `rng` (so a seed gives the same proposals), each prompt made by dropping one
instruction the agent knows or adding one from its catalogue (agent.CATALOGUE). Run with
`--noconftest` to search with the built-in mutators alone.
"""

from __future__ import annotations

import random

import pytest
from agent import single_edits


@pytest.hookimpl(optionalhook=True)
def pytest_hgd_propose(
    config: pytest.Config, prompt: str, failures: list[dict], rng: random.Random, n: int
) -> list[str]:
    proposals = [text for _, text in single_edits(prompt)]
    rng.shuffle(proposals)
    return proposals[:n]
