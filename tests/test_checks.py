"""Each built-in check, passing and failing, as a unit and through the plugin."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Gate, conversation

from pytest_hgd.core.checks import BUILTIN_CHECKS, run_checks, similarity
from pytest_hgd.core.model import Check, Kind, Outcome, Pair

REGISTRY = {c.name: c for c in BUILTIN_CHECKS}
REPLY = 'Our SUV starts at $29,250. A Sales Rep can call you. {"ok": true}'

CASES: list[tuple[str, Any, bool]] = [
    ("contains", "sales rep", True),
    ("contains", ["SUV", "$29,250"], True),
    ("contains", ["suv", "guarantee"], False),
    ("not_contains", "guarantee", True),
    ("not_contains", ["GUARANTEE", "sales REP"], False),
    ("regex", r"\$\d", True),
    ("regex", r"^\d+$", False),
    ("max_chars", 400, True),
    ("max_chars", 10, False),
    ("similar", {"min": 0.5, "to": "Our SUV starts at $29,250. A sales rep can call you."}, True),
    ("similar", {"min": 0.9, "to": "Completely different words here"}, False),
]


def make_pair(checks: tuple[Check, ...], reply: str | None = None) -> Pair:
    return Pair("f.hgd.yaml", "c", Outcome.LEAD, "p", Kind.LOCKED, (), "q", reply, checks, ())


@pytest.mark.parametrize(("name", "arg", "passes"), CASES)
def test_check_unit(name: str, arg: Any, passes: bool) -> None:
    (result,) = run_checks(REPLY, make_pair((Check(name, arg),)), REGISTRY)
    assert result.passed is passes
    assert (result.message == "") is passes


@pytest.mark.parametrize(
    ("reply", "passes"),
    [('{"lead": true}', True), ('{"lead": "yes"}', False), ("not json", False)],
)
def test_json_schema_check(reply: str, passes: bool) -> None:
    schema = {"type": "object", "properties": {"lead": {"type": "boolean"}}, "required": ["lead"]}
    (result,) = run_checks(reply, make_pair((Check("json_schema", schema),)), REGISTRY)
    assert result.passed is passes


def test_similarity_formula() -> None:
    assert similarity("", "") == 1.0
    assert similarity("a b c d", "a b c d") == 1.0
    assert similarity("A b", "c d") == 0.0
    # A = {a, b, b}, B = {b, c}: |A∩B| = 1 → 2·1 / (3 + 2)
    assert similarity("a b b", "B, c!") == pytest.approx(0.4)


def test_default_check_is_similar_to_the_recorded_reply() -> None:
    pair = make_pair((), reply="The RAV4 starts at $29,250.")
    (same,) = run_checks("the rav4 starts at $29,250", pair, REGISTRY)
    (other,) = run_checks("We sell boats.", pair, REGISTRY)
    assert same.passed and same.name == "similar"
    assert not other.passed
    assert "similarity 0.00 < 0.60" in other.message


def test_every_check_through_the_plugin(hgd: Gate) -> None:
    cases = [*CASES, ("json_schema", {"type": "string"}, False)]
    hgd.prompt("p.txt", {"*": REPLY})
    pairs = [
        {
            "id": f"{i}-{name}-{'pass' if passes else 'fail'}",
            "customer": "q",
            "checks": [{name: arg}],
        }
        for i, (name, arg, passes) in enumerate(cases)
    ]
    hgd.pairs("c.hgd.yaml", conversation(*pairs))
    result = hgd.run("--hgd-candidate=p.txt", "--hgd-report=report.json")
    failing = sum(1 for *_, passes in cases if not passes)
    result.assert_outcomes(passed=len(cases) - failing, failed=failing)
    deltas = {p["id"].split("::")[1]: p["delta"] for p in hgd.report()["pairs"]}
    for pair_id, delta in deltas.items():
        assert delta == ("new_pass" if pair_id.endswith("pass") else "new_fail"), pair_id
