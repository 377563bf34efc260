"""The scheduler as users meet it: -x stops the calls, Ctrl-C stops the run cleanly."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import time

from conftest import Gate, conversation

from pytest_hgd.cache import DATABASE

CHECK = [{"contains": "good"}]


def test_x_stops_scheduling_after_the_first_failure(hgd: Gate) -> None:
    hgd.prompt("p.txt", {"*": "SLEEP:0.2", "a00": "bad"})
    pairs = [{"id": f"a{i:02}", "customer": f"a{i:02}", "checks": CHECK} for i in range(30)]
    hgd.pairs("c.hgd.yaml", conversation(*pairs))
    result = hgd.run("--hgd-candidate=p.txt", "--hgd-concurrency=2", "-x")
    result.assert_outcomes(failed=1)
    assert len(hgd.calls()) < 10  # the queued calls were cancelled, not made


def test_ctrl_c_stops_promptly_and_leaves_no_partial_files(hgd: Gate) -> None:
    hgd.prompt("p.txt", {"*": "SLEEP:0.5"})
    pairs = [{"id": f"a{i:02}", "customer": f"a{i:02}", "checks": CHECK} for i in range(40)]
    hgd.pairs("c.hgd.yaml", conversation(*pairs))
    process = hgd.start("--hgd-candidate=p.txt", "--hgd-concurrency=2", "--hgd-report=report.json")
    time.sleep(2.5)
    process.send_signal(signal.SIGINT)
    started = time.monotonic()
    output, _ = process.communicate(timeout=30)
    assert time.monotonic() - started < 10, "the run hung after Ctrl-C"
    assert process.returncode == 2, output  # pytest's INTERRUPTED
    assert "KeyboardInterrupt" in output
    assert len(hgd.calls()) < 40
    leftovers = [p for p in hgd.path.rglob("*.tmp")]
    assert leftovers == []
    assert not (hgd.path / "report.json").exists()  # a partial run writes no report
    assert not (hgd.path / ".hgd" / "ledger.jsonl").exists()  # nor a ledger record
    # every cached reply that exists is complete
    database = hgd.path / ".hgd" / "cache" / DATABASE
    if database.exists():
        with contextlib.closing(sqlite3.connect(database)) as db:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            replies = db.execute("SELECT reply FROM replies").fetchall()
        assert set(replies) <= {("slept",)}
