"""Hardening: a ledger, cache or report path that cannot be written is a clear line, never a
traceback, and one file that cannot be written does not cost the others."""

from __future__ import annotations

import pytest
from conftest import Gate, conversation


def _suite(hgd: Gate) -> None:
    hgd.prompt("p.txt", {"*": "good"})
    hgd.pairs("c.hgd.yaml", conversation({"id": "a", "customer": "a", "reply": "good"}))
    (hgd.path / "adir").mkdir()
    (hgd.path / "afile").write_text("not a directory", encoding="utf-8")


def test_an_unwritable_cache_never_fails_the_run(hgd: Gate) -> None:
    _suite(hgd)
    result = hgd.run("--hgd-candidate=p.txt", "--hgd-cache-dir=afile")
    result.assert_outcomes(passed=1)
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_an_unwritable_cache_is_reported(hgd: Gate) -> None:
    _suite(hgd)
    result = hgd.run("--hgd-candidate=p.txt", "--hgd-cache-dir=afile")
    result.stdout.fnmatch_lines(
        ["hgd: cannot write the reply cache: */afile/replies.sqlite3: *choose another*"]
    )


def test_an_unwritable_ledger_is_a_note_and_the_report_is_still_written(hgd: Gate) -> None:
    _suite(hgd)
    result = hgd.run("--hgd-candidate=p.txt", "--hgd-ledger=adir", "--hgd-report=report.json")
    output = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in output and "INTERNALERROR" not in output
    result.stdout.fnmatch_lines(["hgd: ledger: *adir*"])
    assert hgd.report()["verdict"] == "pass"


def test_an_unwritable_report_is_a_clear_error(hgd: Gate) -> None:
    _suite(hgd)
    result = hgd.run("--hgd-candidate=p.txt", "--hgd-report=adir", "--hgd-markdown=summary.md")
    output = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in output and "INTERNALERROR" not in output
    assert "adir" in output
    assert result.ret != pytest.ExitCode.OK
    assert (hgd.path / "summary.md").exists()
