"""Constraint pressure through the real plugin: several gate runs on one ledger."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Gate, conversation

from pytest_hgd.storage.ledger import read_ledger

CHECK = [{"contains": "good"}]


def ledger(hgd: Gate) -> list[dict[str, Any]]:
    return read_ledger(hgd.path / ".hgd" / "ledger.jsonl").records


def pairs(hgd: Gate, n: int, **extra: Any) -> None:
    hgd.pairs(
        "c.hgd.yaml",
        conversation(
            *({"id": f"q{i}", "customer": f"q{i}", "checks": CHECK, **extra} for i in range(n))
        ),
    )


def gate(
    hgd: Gate, candidate: dict[str, str], *args: str
) -> tuple[pytest.RunResult, dict[str, Any]]:
    hgd.prompt("cand.txt", candidate)
    result = hgd.run(
        "--hgd-baseline=base.txt", "--hgd-candidate=cand.txt", "--hgd-report=report.json", *args
    )
    return result, hgd.report()


def test_every_run_appends_a_ledger_record(hgd: Gate) -> None:
    hgd.prompt("base.txt", {"*": "good"})
    pairs(hgd, 3)
    gate(hgd, {"*": "good", "q1": "bad"})
    gate(hgd, {"*": "good!"})
    records = ledger(hgd)
    assert len(records) == 2
    first, second = records
    assert first["schema_version"] == 1
    assert first["verdict"] == "fail" and first["regressed"] == ["c.hgd.yaml::q1"]
    assert first["counts"]["kept"] == 2 and first["counts"]["regressed"] == 1
    assert first["pairs"]["c.hgd.yaml::q0"]["baseline"] == [1, 1]
    assert len(first["baseline_hash"]) == 64 and first["baseline_hash"] != first["candidate_hash"]
    assert second["pairs"]["c.hgd.yaml::q0"]["baseline_cached"] is True
    assert 0 <= first["pressure"]["value"] <= 1
    assert first["agent"]["target"] == "hgd_agent:reply"
    hgd.run("--hgd-baseline=base.txt", "--hgd-candidate=cand.txt", "--hgd-no-ledger")
    assert len(ledger(hgd)) == 2


def test_rejected_candidates_raise_pressure_and_accepted_ones_lower_it(hgd: Gate) -> None:
    hgd.prompt("base.txt", {"*": "good"})
    pairs(hgd, 4)
    values = []
    for i in range(4):  # four candidates, each breaking a pair
        result, report = gate(hgd, {"*": "good", f"q{i}": "bad"})
        values.append(report["pressure"]["value"])
    assert values == sorted(values) and values[0] < values[-1]
    # F = (accepted + S) / (candidates + 1) = (0 + 1) / 5: pressure 0.8 ≥ hgd_pressure_warn
    assert values[-1] == pytest.approx(0.8)
    assert report["pressure"]["warning"] is True
    result.stdout.fnmatch_lines(
        [
            "*warnings summary*",
            "*ledger.jsonl:0: HGDPressureWarning: constraint pressure: pressure 0.80 has reached*",
            "constraint pressure 0.80 *",
            "  acceptance: 0.00 * (0 of 4 candidates passed, each at its latest run; mean 1.0 *",
            "  HGDPressureWarning: pressure 0.80 has reached hgd_pressure_warn 0.70",
            "  HGDPressureWarning: pressure rose in each of the last 3 runs (0.50 -> 0.67 -> 0.75 -> 0.80)",
        ]
    )
    for i in range(6):  # a run of accepted candidates
        result, report = gate(hgd, {"*": f"good {i}"})
        values.append(report["pressure"]["value"])
    assert values[4:] == sorted(values[4:], reverse=True)
    assert values[-1] < 0.7
    assert report["pressure"]["warning"] is False
    assert "HGDPressureWarning" not in result.stdout.str()
    binding = {b["id"]: b["blocked"] for b in report["pressure"]["binding"]}
    assert binding == {f"c.hgd.yaml::q{i}": 1 for i in range(4)}


def test_retiring_the_binding_pairs_lowers_pressure(hgd: Gate) -> None:
    hgd.prompt("base.txt", {"*": "good"})
    pairs(hgd, 3)
    for _ in range(3):
        _, report = gate(hgd, {"*": "good", "q0": "bad"})
    before = report["pressure"]["value"]
    hgd.pairs(
        "c.hgd.yaml",
        conversation(
            {"id": "q0", "customer": "q0", "checks": CHECK, "retired": "policy changed"},
            *({"id": f"q{i}", "customer": f"q{i}", "checks": CHECK} for i in (1, 2)),
        ),
    )
    result, report = gate(hgd, {"*": "good", "q0": "bad"})
    result.assert_outcomes(passed=2, skipped=1)
    assert report["verdict"] == "pass"
    assert report["pressure"]["value"] < before
    assert report["pressure"]["constraints"]["retired"] == 1
    result.stdout.fnmatch_lines(
        ["skipped: 1 retired, 0 pending review", "  constraints: 2 (*, 1 retired,*"]
    )


def noisy_history_then_gate(hgd: Gate, n: int) -> dict[str, Any]:
    """Sampled runs of the unchanged baseline give re-run evidence of noise (4/5 per pair);
    then a one-shot gate of a candidate reads it from its own ledger."""
    hgd.prompt("base.txt", {"*": "CYCLE:good,good,good,good,bad"})
    pairs(hgd, n)
    ledger_path = f"--hgd-ledger=ledger-{n}.jsonl"
    hgd.run("--hgd-candidate=base.txt", "--hgd-samples=5", "--hgd-no-cache", ledger_path)
    _, report = gate(hgd, {"*": "good"}, ledger_path, "--hgd-no-cache")
    pressure: dict[str, Any] = report["pressure"]
    assert pressure["constraints"]["value"] == n
    assert pressure["survival"]["reruns"] == 5 * n  # 4 in the sampled run, 1 fresh baseline call
    return pressure


def test_more_locked_pairs_at_the_same_pass_rate_raise_pressure(hgd: Gate) -> None:
    few, many = noisy_history_then_gate(hgd, 3), noisy_history_then_gate(hgd, 12)
    assert many["survival"]["value"] < few["survival"]["value"] < 1
    assert many["value"] > few["value"]


def test_survival_collapses_with_a_stochastic_agent_over_many_pairs(hgd: Gate) -> None:
    pressure = noisy_history_then_gate(hgd, 60)
    survival = pressure["survival"]["value"]
    assert survival < 0.01
    # The steady candidate passed: one observed change, against one pseudo-change at S.
    assert pressure["value"] == pytest.approx(1 - (1 + survival) / 2, abs=1e-6)
    assert pressure["band"][0] == 0.0  # every change seen passed: the band reaches 0


PROBE_AGENT = """
def reply(prompt, messages):
    if EXACT:  # a brittle agent: any change to the prompt breaks it
        return "good" if prompt == PROMPT else "bad"
    return "good" if "Say hello." in prompt else "bad"
"""


@pytest.mark.parametrize(("exact", "direction"), [(True, "high"), (False, "low")])
def test_probe_mutants_that_break_pairs_raise_pressure(
    hgd: Gate, exact: bool, direction: str
) -> None:
    prompt = "Say hello.\nOffer a call.\nBe brief.\nBe kind.\n"
    hgd.pytester.makepyfile(probe_agent=f"EXACT = {exact}\nPROMPT = {prompt!r}\n" + PROBE_AGENT)
    (hgd.path / "p.txt").write_text(prompt, encoding="utf-8")
    pairs(hgd, 3)
    result = hgd.run(
        "--hgd-agent=probe_agent:reply",
        "--hgd-baseline=p.txt",
        "--hgd-candidate=p.txt",
        "--hgd-probe=8",
        "--hgd-seed=3",
        "--hgd-report=report.json",
        "--hgd-no-ledger",
    )
    probe = hgd.report()["pressure"]["probe"]
    assert probe["mutants"] == 8
    result.stdout.fnmatch_lines(
        ["hgd: probe: 8/8 mutants judged", "  probe: * of 8 mutants of the candidate passed*"]
    )
    if direction == "high":
        assert probe["passed"] == 0
        assert hgd.report()["pressure"]["value"] > 0.8
    else:
        assert probe["passed"] >= 6


def test_max_pressure_fails_the_gate(hgd: Gate) -> None:
    hgd.prompt("base.txt", {"*": "good"})
    pairs(hgd, 2)
    gate(hgd, {"*": "good", "q0": "bad"})
    result, report = gate(hgd, {"*": "good"}, "--hgd-max-pressure=0.1")
    assert report["verdict"] == "fail"
    assert result.ret == 1
    result.stdout.fnmatch_lines(["verdict: FAIL (pressure 0.* above --hgd-max-pressure=0.1)"])


def test_truncated_ledger_line_is_reported_not_fatal(hgd: Gate) -> None:
    hgd.prompt("base.txt", {"*": "good"})
    pairs(hgd, 1)
    gate(hgd, {"*": "good"})
    path: Path = hgd.path / ".hgd" / "ledger.jsonl"
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"schema_version": 1, "time": "2026-')
    result, _ = gate(hgd, {"*": "good"})
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["hgd: ledger: *ledger.jsonl:2: skipped: truncated last line*"])
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 and json.loads(lines[2])["verdict"] == "pass"
