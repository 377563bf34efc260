"""The lean run protocol (plugin/lean.py): the same outcomes and reports as pytest's own, and
pytest's own whenever something could tell them apart."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from conftest import Gate, conversation

STATE = """
def pytest_sessionfinish(session):
    lean = session.config.pluginmanager.get_plugin("hgd-lean")
    print("\\nLEAN:", getattr(lean, "active", None))
"""


def _suite(hgd: Gate, conftest: str = "") -> None:
    hgd.pytester.makeconftest(STATE + conftest)
    hgd.prompt("base.txt", {"a": "hello", "b": "hello", "c": "hello", "d": "RAISE"})
    hgd.prompt("cand.txt", {"a": "hello", "b": "bye", "c": "bye", "d": "RAISE"})
    hgd.pairs("x.hgd.yaml", conversation(
        *({"id": q, "customer": q, "checks": [{"contains": "hello"}]} for q in "abcd"),
        {"id": "old", "customer": "a", "reply": "x", "retired": "superseded"},
    ))  # fmt: skip


def _junit(hgd: Gate, name: str) -> list[tuple[str, str]]:
    tree = ET.parse(hgd.path / name)
    return sorted(
        (case.get("name", ""), ",".join(child.tag for child in case))
        for case in tree.iter("testcase")
    )


def test_the_lean_protocol_reports_what_pytests_own_does(hgd: Gate) -> None:
    args = ("--hgd-candidate=cand.txt", "--hgd-baseline=base.txt", "--hgd-no-ledger")
    _suite(hgd)
    lean = hgd.run(*args, "--junitxml=lean.xml", "--hgd-report=lean.json")
    lean.stdout.fnmatch_lines(["LEAN: True"])
    _suite(hgd, "def pytest_runtest_setup(item):\n    pass\n")
    full = hgd.run(*args, "--junitxml=full.xml", "--hgd-report=full.json")
    full.stdout.fnmatch_lines(["LEAN: False"])  # a conftest hooks a phase: pytest's protocol
    assert lean.parseoutcomes() == full.parseoutcomes()
    assert lean.parseoutcomes() == {"passed": 1, "failed": 2, "errors": 1, "skipped": 1}
    assert _junit(hgd, "lean.xml") == _junit(hgd, "full.xml")
    pairs = [{k: p[k] for k in ("id", "delta")} for p in hgd.report("lean.json")["pairs"]]
    assert pairs == [{k: p[k] for k in ("id", "delta")} for p in hgd.report("full.json")["pairs"]]


def test_x_stops_the_lean_run_at_the_first_failure(hgd: Gate) -> None:
    _suite(hgd)
    result = hgd.run("--hgd-candidate=cand.txt", "--hgd-baseline=base.txt", "-x")
    result.stdout.fnmatch_lines(["LEAN: True"])
    assert result.parseoutcomes()["failed"] == 1 and "errors" not in result.parseoutcomes()


@pytest.mark.parametrize(
    "why",
    ["a Python test in the run", "--setup-show", "a skip mark on a pair"],
)
def test_pytests_own_protocol_runs_when_it_could_differ(hgd: Gate, why: str) -> None:
    _suite(hgd)
    args = ["--hgd-candidate=cand.txt", "--hgd-baseline=base.txt"]
    if why == "a Python test in the run":
        hgd.pytester.makepyfile(test_plain="def test_plain():\n    print('out')\n")
    elif why == "--setup-show":
        args.append("--setup-show")
    else:
        hgd.pytester.makeconftest(
            STATE + "import pytest\ndef pytest_collection_modifyitems(items):\n"
            "    items[0].add_marker(pytest.mark.skip(reason='not today'))\n"
        )
    result = hgd.run(*args)
    result.stdout.fnmatch_lines(["LEAN: False"])
    if why == "a skip mark on a pair":
        assert result.parseoutcomes()["skipped"] == 2  # the mark was honoured
