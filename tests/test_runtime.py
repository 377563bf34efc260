"""The scheduler as users meet it: -x stops the calls, Ctrl-C stops the run cleanly."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import time

from conftest import Gate, conversation

from pytest_hgd.storage.cache import DATABASE

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


QUEUEING_AGENT = """
import asyncio, pathlib
import pytest

class Queueing:
    identity = {"kind": "queueing"}
    queues_calls = True  # bounds and times its calls itself

    def __init__(self):
        self.held = self.most = 0

    async def reply(self, prompt, messages):
        self.held += 1
        self.most = max(self.most, self.held)
        try:
            await asyncio.sleep(0.3 if messages[-1]["content"] == "slow" else 0.01)
            return "good"
        finally:
            self.held -= 1

    async def aclose(self):
        pathlib.Path("most.txt").write_text(str(self.most))

@pytest.hookimpl(optionalhook=True)
def pytest_hgd_make_agent(config, spec):
    return Queueing() if spec == "queueing" else None
"""


def test_an_agent_that_queues_calls_holds_eight_times_the_concurrency_and_its_own_timeout(
    hgd: Gate,
) -> None:
    hgd.pytester.makeconftest(QUEUEING_AGENT)
    hgd.prompt("p.txt", {"*": "good"})
    pairs = [{"id": f"a{i:02}", "customer": f"a{i:02}", "checks": CHECK} for i in range(60)]
    hgd.pairs(
        "c.hgd.yaml", conversation(*pairs, {"id": "slow", "customer": "slow", "checks": CHECK})
    )
    args = ("--hgd-agent=queueing", "--hgd-candidate=p.txt", "--hgd-concurrency=2")
    result = hgd.run(*args, "--hgd-timeout=0.1", "--hgd-no-cache")
    result.assert_outcomes(passed=61)  # the scheduler left the 0.1 s timeout to the agent
    assert (hgd.path / "most.txt").read_text() == "16"  # 8 x 2 calls handed over at a time


def test_an_agent_that_queues_calls_and_stops_answering_cannot_hang_the_run(hgd: Gate) -> None:
    hgd.pytester.makeconftest("""
import asyncio
import pytest

class Silent:
    identity = {"kind": "silent"}
    queues_calls = True  # promises to time its calls itself, and does not

    async def reply(self, prompt, messages):
        await asyncio.Event().wait()

    async def aclose(self):
        pass

@pytest.hookimpl(optionalhook=True)
def pytest_hgd_make_agent(config, spec):
    return Silent() if spec == "silent" else None
""")
    hgd.prompt("p.txt", {"*": "good"})
    hgd.pairs("c.hgd.yaml", conversation({"id": "a", "customer": "a", "checks": CHECK}))
    started = time.monotonic()
    result = hgd.run("--hgd-agent=silent", "--hgd-candidate=p.txt", "--hgd-timeout=0.2")
    assert time.monotonic() - started < 20
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*agent call not answered after 2.8 s: the agent queues its calls*--hgd-timeout=0.2*"]
    )
