"""The JSON and Markdown reports, read back; the JSON validated against the shipped schema."""

from __future__ import annotations

import json

import jsonschema
import pytest
from conftest import Gate, conversation

from pytest_hgd.reports.report import json_text, report_schema, validate


def setup_suite(hgd: Gate) -> tuple[str, ...]:
    hgd.prompt("base.txt", {"kept": "good", "fixed": "bad", "broken": "good", "old": "bad"})
    hgd.prompt("cand.txt", {"kept": "good", "fixed": "good", "broken": "bad", "old": "bad"})
    check = [{"contains": "good"}]
    hgd.pairs(
        "leads.hgd.yaml",
        conversation(
            {"id": "kept", "customer": "kept", "checks": check, "tags": ["suv"]},
            {"id": "broken", "customer": "broken", "checks": check, "tags": ["pricing"]},
            {"id": "retired", "customer": "x", "reply": "x", "retired": "offer ended"},
            tags=["lead"],
        ),
    )
    hgd.pairs(
        "noleads.hgd.yaml",
        conversation(
            {"id": "fixed", "customer": "fixed", "checks": check, "tags": ["suv"]},
            {"id": "old", "customer": "old", "checks": check},
            {"id": "todo", "customer": "y", "review": "write the reply"},
            outcome="no_lead",
        ),
    )
    return (
        "--hgd-baseline=base.txt",
        "--hgd-candidate=cand.txt",
        "--hgd-report=report.json",
        "--hgd-markdown=summary.md",
    )


def test_json_report(hgd: Gate) -> None:
    result = hgd.run(*setup_suite(hgd))
    result.assert_outcomes(passed=2, failed=1, xfailed=1, skipped=2)
    assert result.ret == 1
    report = hgd.report()  # validated against the shipped schema
    assert report["schema_version"] == 1
    assert report["verdict"] == "fail"
    assert report["counts"] == {
        "kept": 1,
        "fixed": 1,
        "regressed": 1,
        "still_failing": 1,
        "new_pass": 0,
        "new_fail": 0,
        "error": 0,
        "undecided": 0,
    }
    by_id = {p["id"]: p for p in report["pairs"]}
    assert all(len(p.pop("pair_hash")) == 64 for p in report["pairs"])
    assert by_id["leads.hgd.yaml::broken"] == {
        "id": "leads.hgd.yaml::broken",
        "kind": "locked",
        "delta": "regressed",
        "samples": 1,
        "tags": ["lead", "pricing"],
        "conversation": "leads",
        "baseline": {
            "passes": 1,
            "runs": 1,
            "interval": [0.2065, 1.0],
            "failed_check": None,
            "message": None,
            "reply": "good",
            "called": 1,
        },
        "candidate": {
            "passes": 0,
            "runs": 1,
            "interval": [0.0, 0.7935],
            "failed_check": "contains",
            "message": "missing 'good'",
            "reply": "bad",
            "called": 1,
        },
        "error": None,
    }
    assert by_id["noleads.hgd.yaml::fixed"]["kind"] == "corrected"
    assert {(s["id"], s["status"], s["reason"]) for s in report["skipped"]} == {
        ("leads.hgd.yaml::retired", "retired", "offer ended"),
        ("noleads.hgd.yaml::todo", "pending_review", "write the reply"),
    }
    assert report["tags"]["suv"] == {
        "pairs": 2,
        "baseline_pass_rate": 0.5,
        "candidate_pass_rate": 1.0,
    }
    assert report["prompts"]["baseline"]["source"] == "base.txt"
    assert len(report["prompts"]["candidate"]["sha256"]) == 64
    assert report["agent"]["target"] == "hgd_agent:reply"
    assert 0.0 <= report["pressure"]["value"] <= 1.0
    result.stdout.fnmatch_lines(
        [
            "*= HGD gate =*",
            "deltas: 1 kept, 1 fixed, 1 regressed, 1 still_failing",
            "skipped: 1 retired, 1 pending review",
            "*suv * 50% → 100%  (2 pairs)",
            "verdict: FAIL (1 regressed)",
            "next: fix the prompt, then rerun the failing pairs first: pytest *",
        ]
    )


def test_the_json_report_is_indented_with_one_line_per_pair(hgd: Gate) -> None:
    hgd.run(*setup_suite(hgd))
    text = (hgd.path / "report.json").read_text(encoding="utf-8")
    report = json.loads(text)
    assert text == json_text(report)
    lines = text.splitlines()
    assert lines[:3] == ["{", '  "schema_version": 1,', '  "verdict": "fail",']
    start = lines.index('  "pairs": [') + 1
    end = start + len(report["pairs"])
    assert [json.loads(row.rstrip(",")) for row in lines[start:end]] == report["pairs"]
    assert lines[end] == "  ],"


@pytest.mark.parametrize(
    "value",
    [
        {"a": [], "b": {}, "c": [1, {"x": "ünï ✓"}], "d": None},
        {"pairs": [{"id": "a\nb", "reply": 'say "hi"\u2028'}], "nested": {"k": [1, 2]}},
        {},
    ],
)
def test_json_text_reads_back_as_the_same_value(value: dict[str, object]) -> None:
    assert json.loads(json_text(value)) == value


def test_markdown_report(hgd: Gate) -> None:
    hgd.run(*setup_suite(hgd))
    markdown = (hgd.path / "summary.md").read_text(encoding="utf-8")
    assert markdown.startswith("## ❌ HGD gate: fail\n")
    assert "| regressed | 1 |" in markdown
    assert (
        "| leads.hgd.yaml::broken | regressed | contains: missing 'good' — reply: 'bad' |"
        in markdown
    )
    assert "| suv | 2 | 50% | 100% |" in markdown
    assert "### Constraint pressure" in markdown


def test_report_schema_rejects_a_broken_report() -> None:
    jsonschema.Draft202012Validator.check_schema(report_schema())
    with pytest.raises(jsonschema.ValidationError):
        validate(
            {
                "schema_version": 1,
                "verdict": "maybe",
                "counts": {},
                "pairs": [],
                "pressure": {"value": 0.1, "warning": False},
            }
        )


def test_html_report_through_the_plugin(hgd: Gate) -> None:
    result = hgd.run(*setup_suite(hgd), "--hgd-html=report.html")
    html = (hgd.path / "report.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert "leads.hgd.yaml::broken" in html or "broken" in html
    assert "http://" not in html and "https://" not in html
    result.stdout.fnmatch_lines(["HTML report written to *report.html"])
