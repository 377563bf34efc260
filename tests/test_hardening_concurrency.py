"""Hardening: runs at the same time share a ledger and a cache without losing a record;
xdist gives the serial run's report."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import Gate, conversation

from pytest_hgd.storage.cache import DATABASE
from pytest_hgd.storage.ledger import read_ledger

CHECK = [{"contains": "good"}]


def test_two_runs_at_once_share_one_ledger_and_one_cache(hgd: Gate) -> None:
    pairs = [{"id": f"q{i:02}", "customer": f"q{i:02}", "checks": CHECK} for i in range(40)]
    hgd.pairs("c.hgd.yaml", conversation(*pairs))
    hgd.prompt("base.txt", {"*": "SLEEP:0.02"})  # both runs write these keys, at once
    hgd.prompt("one.txt", {"*": "good one"})
    hgd.prompt("two.txt", {"*": "good two", "q05": "bad"})
    shared = hgd.path / "shared"

    def start(candidate: str, report: str) -> subprocess.Popen[str]:
        return hgd.start(
            "--hgd-baseline=base.txt",
            f"--hgd-candidate={candidate}",
            f"--hgd-ledger={shared / 'ledger.jsonl'}",
            f"--hgd-cache-dir={shared / 'cache'}",
            f"--hgd-report={report}",
            "--hgd-concurrency=2",
        )

    runs = [start("one.txt", "one.json"), start("two.txt", "two.json")]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    for run, output in zip(runs, outputs, strict=True):
        assert "INTERNALERROR" not in output and "Traceback" not in output, output
        assert run.returncode in (0, 1), output
    ledger = read_ledger(shared / "ledger.jsonl")
    assert ledger.problems == []
    assert len(ledger.records) == 2
    assert {r["candidate_hash"] for r in ledger.records} == {
        hgd.report(name)["prompts"]["candidate"]["sha256"] for name in ("one.json", "two.json")
    }
    with contextlib.closing(sqlite3.connect(shared / "cache" / DATABASE)) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        replies = db.execute("SELECT reply FROM replies").fetchall()
    assert len(replies) == 3 * 40  # the baseline's, written by both runs at once, and each
    assert {reply for (reply,) in replies} == {"slept", "good one", "good two", "bad"}
    assert sorted(p.name for p in (shared / "cache").iterdir()) == [DATABASE]  # all merged


APPENDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from pytest_hgd.storage.ledger import append_record

    path, writer = Path(sys.argv[1]), int(sys.argv[2])
    for n in range(40):
        append_record(path, {"schema_version": 1, "writer": writer, "n": n, "pad": "x" * 70_000})
    """
)


def test_ledger_appends_from_many_processes_lose_no_record(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    writers = [
        subprocess.Popen([sys.executable, "-c", APPENDER, str(ledger), str(w)]) for w in range(4)
    ]
    assert [w.wait(timeout=60) for w in writers] == [0, 0, 0, 0]
    read = read_ledger(ledger)
    assert read.problems == []
    for writer in range(4):  # every record, each writer's in its own order
        assert [r["n"] for r in read.records if r["writer"] == writer] == list(range(40))


def test_xdist_gives_the_serial_report(hgd: Gate) -> None:
    pytest.importorskip("xdist")
    hgd.prompt("base.txt", {"*": "good", "fix": "bad", "still": "bad", "err-b": "RAISE"})
    hgd.prompt("cand.txt", {"*": "good", "reg": "bad", "still": "bad", "err-c": "NONE"})
    names = ["keep", "fix", "reg", "still", "err-b", "err-c"]
    for index in range(4):
        pairs = [{"id": n, "customer": n, "checks": CHECK} for n in names]
        pairs += [
            {"id": f"k{i}", "customer": f"k{i}", "checks": CHECK, "tags": [f"t{i % 3}"]}
            for i in range(6)
        ]
        pairs.append({"id": "old", "customer": "old", "reply": "x", "retired": "obsolete"})
        pairs.append({"id": "rev", "customer": "rev", "review": "needs a reply"})
        hgd.pairs(f"c{index}.hgd.yaml", conversation(*pairs, tags=[f"file{index}"]))
    args = ("--hgd-baseline=base.txt", "--hgd-candidate=cand.txt", "--hgd-no-ledger")
    serial_run = hgd.run(*args, "--hgd-report=serial.json", "--hgd-no-cache")
    parallel_run = hgd.run(
        *args, "--hgd-report=xdist.json", "--hgd-no-cache", "-p", "xdist", "-n", "2"
    )
    assert serial_run.ret == parallel_run.ret == pytest.ExitCode.TESTS_FAILED
    serial, parallel = hgd.report("serial.json"), hgd.report("xdist.json")
    assert parallel["counts"] == serial["counts"]
    assert serial["counts"] == {
        **dict.fromkeys(serial["counts"], 0),
        "kept": 28,
        "fixed": 4,
        "regressed": 4,
        "still_failing": 4,
        "error": 8,
    }

    assert {p["id"]: p["delta"] for p in parallel["pairs"]} == {
        p["id"]: p["delta"] for p in serial["pairs"]
    }
    # The same evidence pair by pair; `called` aside: identical calls within one process
    # are made once and served again, so which pair counts the call depends on the split.
    assert _without_calls(parallel["pairs"]) == _without_calls(serial["pairs"])
    assert parallel["skipped"] == serial["skipped"]
    assert parallel["tags"] == serial["tags"]
    assert parallel["verdict"] == serial["verdict"] == "fail"


def _without_calls(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            **pair,
            **{
                role: {k: v for k, v in (pair.get(role) or {}).items() if k != "called"}
                for role in ("baseline", "candidate")
            },
        }
        for pair in pairs
    ]
