"""Each pair's evidence in JUnit XML: ``<property>`` entries CI systems show."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from conftest import Gate, conversation


def _properties(hgd: Gate) -> dict[str, dict[str, str]]:
    tree = ET.parse(hgd.path / "junit.xml")
    return {
        case.get("name", ""): {p.get("name", ""): p.get("value", "") for p in case.iter("property")}
        for case in tree.iter("testcase")
    }


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
def test_each_pair_carries_its_delta_pass_rates_and_failed_check(hgd: Gate, xdist: bool) -> None:
    hgd.prompt("base.txt", {"a": "hello", "b": "hello", "c": "RAISE"})
    hgd.prompt("cand.txt", {"a": "hello", "b": "bye", "c": "RAISE"})
    hgd.pairs("x.hgd.yaml", conversation(
        *({"id": q, "customer": q, "checks": [{"contains": "hello"}]} for q in "abc"),
        {"id": "old", "customer": "a", "reply": "x", "retired": "superseded"},
    ))  # fmt: skip
    args = ["--hgd-candidate=cand.txt", "--hgd-baseline=base.txt", "--junitxml=junit.xml"]
    if xdist:
        pytest.importorskip("xdist")
        args += ["-p", "xdist", "-n", "2"]
    hgd.run(*args)
    found = _properties(hgd)
    assert found["a"] == {"hgd_delta": "kept", "hgd_kind": "locked",
                          "hgd_baseline_pass_rate": "1/1", "hgd_candidate_pass_rate": "1/1"}  # fmt: skip
    assert found["b"]["hgd_delta"] == "regressed"
    assert found["b"]["hgd_candidate_failed_check"] == "contains: missing 'hello'"
    assert found["c"]["hgd_delta"] == "error" and "the agent broke" in found["c"]["hgd_error"]
    assert found["old"] == {
        "hgd_delta": "retired",
        "hgd_kind": "locked",
        "hgd_reason": "superseded",
    }


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
def test_a_rollout_carries_its_delta_and_where_it_failed(hgd: Gate, xdist: bool) -> None:
    hgd.prompt("base.txt", {"a": "hello", "b": "hello"})
    hgd.prompt("cand.txt", {"a": "hello", "b": "bye"})
    hgd.pairs("x.hgd.yaml", conversation(
        {"id": "first", "customer": "a", "checks": [{"contains": "hello"}]},
        {"id": "second", "customer": "b", "history": [{"customer": "a"}, {"agent": "hello"}],
         "checks": [{"contains": "hello"}]},
        rollout=True,
    ))  # fmt: skip
    args = ["--hgd-candidate=cand.txt", "--hgd-baseline=base.txt", "--junitxml=junit.xml"]
    if xdist:
        pytest.importorskip("xdist")
        args += ["-p", "xdist", "-n", "2"]
    hgd.run(*args).assert_outcomes(passed=1, failed=2)
    found = _properties(hgd)
    assert found["rollout"] == {
        "hgd_delta": "regressed",
        "hgd_baseline_passed": "true",
        "hgd_candidate_passed": "false",
        "hgd_candidate_failed_turn": "2",
        "hgd_candidate_failed_check": "contains: missing 'hello'",
    }
    assert found["second"]["hgd_candidate_pass_rate"] == "0/1"
