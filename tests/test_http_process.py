"""The HTTP agent's worker processes (`hgd_http_workers`), against the loopback server."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Gate, conversation
from openai_server import Fault, OpenAIServer, echo_reply

from pytest_hgd.agents.http_agent import HTTPAgent, HTTPAgentSettings
from pytest_hgd.agents.http_process import ProcessHTTPAgent
from pytest_hgd.agents.http_spawn import SpareWorkers
from pytest_hgd.core.errors import AgentError

KEY = "sk-test-SECRET-worker-77"
MESSAGES = [{"role": "user", "content": "How much is the RAV4?"}]


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as srv:
        yield srv


def settings(base_url: str, **overrides: Any) -> HTTPAgentSettings:
    fields: dict[str, Any] = {
        "model": "gpt-test",
        "base_url": base_url,
        "api_key_env": "HGD_WORKER_KEY",
        "backoff_base": 0.01,
        "max_retries": 1,
    }
    fields.update(overrides)
    return HTTPAgentSettings(**fields)


def reply_once(agent: ProcessHTTPAgent) -> str:
    """One call to ``agent`` on a loop of its own, then the agent closed."""

    async def call() -> str:
        try:
            return await agent.reply("p", MESSAGES)
        finally:
            await agent.aclose()

    return asyncio.run(call())


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        ppid = next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:"))
        if int(ppid) == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_replies_come_from_the_worker_with_the_same_identity_and_key(
    server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HGD_WORKER_KEY", KEY)
    agent = ProcessHTTPAgent(settings(server.base_url), workers=2)
    assert agent.identity == HTTPAgent(settings(server.base_url)).identity  # one reply cache
    assert KEY not in repr(agent)

    async def calls() -> list[str]:
        try:
            return await asyncio.gather(
                *(agent.reply(f"Be brief.\nline {i}", MESSAGES) for i in range(20))
            )
        finally:
            await agent.aclose()

    replies = asyncio.run(calls())
    bodies = [request.body for request in server.requests]
    assert len(bodies) == 20
    assert sorted(replies) == sorted(echo_reply(body) for body in bodies)
    assert replies[3].startswith("Re: How much is the RAV4? | line 3")
    assert {request.headers["authorization"] for request in server.requests} == {f"Bearer {KEY}"}
    assert all(body["messages"][1:] == MESSAGES for body in bodies)


def test_errors_and_retries_cross_the_pipe_scrubbed(
    server: OpenAIServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HGD_WORKER_KEY", KEY)
    server.push(
        Fault(status=500, message=f"busy, key {KEY}"),  # retried: its log line reaches us
        Fault(status=400, message=f"bad request with {KEY}"),  # not retried: the error
    )
    agent = ProcessHTTPAgent(settings(server.base_url), workers=1)
    with (
        caplog.at_level(logging.DEBUG, logger="pytest_hgd.agents.http_agent"),
        pytest.raises(AgentError) as info,
    ):
        reply_once(agent)
    message = str(info.value)
    assert message.startswith("openai agent: HTTP 400 from ")
    assert "bad request with ***" in message and KEY not in message
    retries = [r.getMessage() for r in caplog.records if "retry 1 in" in r.getMessage()]
    assert len(retries) == 1 and "busy, key ***" in retries[0] and KEY not in retries[0]


def test_a_cancelled_call_is_stopped_in_the_worker_and_the_rest_go_on(
    server: OpenAIServer,
) -> None:
    server.push(Fault(delay=30))
    agent = ProcessHTTPAgent(settings(server.base_url), workers=1)

    async def calls() -> str:
        try:
            slow = asyncio.ensure_future(agent.reply("slow", MESSAGES))
            while not server.requests:  # the worker has sent it
                await asyncio.sleep(0.01)
            slow.cancel()
            with pytest.raises(asyncio.CancelledError):
                await slow
            return await agent.reply("fast", MESSAGES)
        finally:
            await agent.aclose()

    started = time.monotonic()
    assert asyncio.run(calls()).startswith("Re: How much is the RAV4? | fast")
    assert time.monotonic() - started < 10  # neither the call nor closing waited for it


def test_the_workers_split_the_concurrency_exactly_and_hold_the_queue() -> None:
    """Three slots over two workers (2 + 1): never more than three calls in flight, all of
    twelve 0.25 s calls queued at once, and none timed out by the 0.6 s it waited."""

    async def calls(agent: ProcessHTTPAgent) -> list[str]:
        try:
            return await asyncio.gather(
                *(agent.reply(f"Be brief.\nline {i}", MESSAGES) for i in range(12))
            )
        finally:
            await agent.aclose()

    with OpenAIServer(latency=0.25) as srv:
        agent = ProcessHTTPAgent(settings(srv.base_url, max_connections=3, timeout=0.6), 2)
        assert agent.queues_calls
        replies = asyncio.run(calls(agent))
        assert srv.peak_in_flight == 3
        assert srv.calls == 12
    assert [r.split(" | ")[1].split(" [")[0] for r in replies] == [f"line {i}" for i in range(12)]


def test_a_call_past_the_timeout_raises_timeout_error_from_the_worker(
    server: OpenAIServer,
) -> None:
    server.push(Fault(delay=5))
    agent = ProcessHTTPAgent(settings(server.base_url, timeout=0.3), workers=1)
    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        reply_once(agent)
    assert time.monotonic() - started < 3


def test_a_worker_that_dies_fails_its_calls_with_the_reason(server: OpenAIServer) -> None:
    server.push(Fault(delay=30))
    agent = ProcessHTTPAgent(settings(server.base_url), workers=1)

    async def calls() -> tuple[str, str]:
        try:
            waiting = asyncio.ensure_future(agent.reply("slow", MESSAGES))
            while not server.requests:
                await asyncio.sleep(0.01)
            (worker,) = children_of(os.getpid())
            os.kill(worker, signal.SIGKILL)
            with pytest.raises(AgentError) as first:
                await waiting
            with pytest.raises(AgentError) as later:
                await agent.reply("again", MESSAGES)
            return str(first.value), str(later.value)
        finally:
            await agent.aclose()

    first, later = asyncio.run(calls())
    assert "the HTTP agent's worker process stopped: it exited, status -9" in first
    assert later == first


def test_the_worker_imports_the_package_not_the_current_directorys_modules(
    server: OpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "httpx.py").write_text("raise ImportError('shadowed')\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    agent = ProcessHTTPAgent(settings(server.base_url), workers=1)
    assert reply_once(agent).startswith("Re: How much is the RAV4?")


def test_the_worker_exits_when_its_parent_is_killed(server: OpenAIServer, tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(
        "import asyncio, sys\n"
        "from pytest_hgd.agents.http_agent import HTTPAgentSettings\n"
        "from pytest_hgd.agents.http_process import ProcessHTTPAgent\n"
        "agent = ProcessHTTPAgent(HTTPAgentSettings(model='m', base_url=sys.argv[1]), 1)\n"
        "async def main():\n"
        "    print(await agent.reply('p', [{'role': 'user', 'content': 'hi'}]), flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n",
        encoding="utf-8",
    )
    parent = subprocess.Popen(
        [sys.executable, str(script), server.base_url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().startswith("Re: hi")
        (worker,) = children_of(parent.pid)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while alive(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(worker)
    finally:
        parent.kill()


def test_ctrl_c_stops_the_gate_and_its_worker(hgd: Gate) -> None:
    (hgd.path / "p.txt").write_text("p", encoding="utf-8")
    hgd.pairs("c.hgd.yaml", conversation(*({"customer": f"m{i}", "reply": "r"} for i in range(40))))
    with OpenAIServer(latency=5) as server:
        hgd.pytester.makeini(
            f"[pytest]\nhgd_agent = openai:m\nhgd_base_url = {server.base_url}\nhgd_api_key_env =\n"
        )
        gate = hgd.start("--hgd-candidate=p.txt")
        deadline = time.monotonic() + 30
        while len(server.requests) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        workers = children_of(gate.pid)
        assert len(workers) == 1
        gate.send_signal(signal.SIGINT)
        output, _ = gate.communicate(timeout=30)
    assert gate.returncode == 2, output  # interrupted
    assert "KeyboardInterrupt" in output
    assert not any(alive(pid) for pid in workers)
    assert "http_process" not in output  # no traceback from the worker


@pytest.mark.parametrize(
    "args",
    [["--hgd-http-workers=0"], ["--hgd-http-workers=2"], ["-p", "xdist", "-n", "2"]],
    ids=["in-process", "two-workers", "xdist"],
)
def test_the_gate_gives_the_same_outcome_in_and_out_of_process(hgd: Gate, args: list[str]) -> None:
    (hgd.path / "p.txt").write_text("Be brief.\nsay hello", encoding="utf-8")
    hgd.pairs(
        "c.hgd.yaml",
        conversation(
            {"id": "ok", "customer": "hi", "checks": [{"contains": "hello"}]},
            {"id": "no", "customer": "yo", "checks": [{"contains": "goodbye"}]},
        ),
    )
    with OpenAIServer() as server:
        hgd.pytester.makeini(
            f"[pytest]\nhgd_agent = openai:m\nhgd_base_url = {server.base_url}\nhgd_api_key_env =\n"
        )
        result = hgd.run_subprocess("--hgd-candidate=p.txt", "--hgd-report=r.json", *args)
    result.assert_outcomes(passed=1, failed=1)
    deltas = {p["id"]: p["delta"] for p in hgd.report("r.json")["pairs"]}
    assert deltas == {"c.hgd.yaml::ok": "new_pass", "c.hgd.yaml::no": "new_fail"}


def test_a_bad_worker_count_is_a_usage_error(hgd: Gate) -> None:
    (hgd.path / "p.txt").write_text("p", encoding="utf-8")
    hgd.pairs("c.hgd.yaml", conversation({"customer": "hi"}))
    result = hgd.run("--hgd-agent=openai:m", "--hgd-candidate=p.txt", "--hgd-http-workers=-1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--hgd-http-workers*-1*a whole number >= 0*"])


def test_an_agents_start_runs_while_pytest_collects_and_not_for_collect_only(
    hgd: Gate,
) -> None:
    hgd.pytester.makeconftest("""
import pathlib, time
import pytest

EVENTS = pathlib.Path("events.txt")

def note(what):
    with EVENTS.open("a") as log:
        log.write(what + "\\n")

class Slow:
    identity = {"kind": "slow-start"}

    async def start(self):
        note("start")

    async def reply(self, prompt, messages):
        note("reply")
        return "ok"

    async def aclose(self):
        pass

def pytest_collect_file(file_path, parent):
    if file_path.name.endswith(".hgd.yaml"):
        time.sleep(0.5)  # collection is slow: the agent's start has run by its end
        note("collected " + file_path.name)

@pytest.hookimpl(optionalhook=True)
def pytest_hgd_make_agent(config, spec):
    return Slow() if spec == "slow" else None
""")
    (hgd.path / "p.txt").write_text("p", encoding="utf-8")
    hgd.pairs("c.hgd.yaml", conversation({"customer": "hi", "checks": [{"contains": "ok"}]}))
    events = hgd.path / "events.txt"
    hgd.run("--hgd-agent=slow", "--hgd-candidate=p.txt", "--collect-only")
    assert events.read_text().split() == ["collected", "c.hgd.yaml"]
    events.unlink()
    hgd.run("--hgd-agent=slow", "--hgd-candidate=p.txt", "--hgd-no-cache").assert_outcomes(passed=1)
    assert events.read_text().splitlines() == ["start", "collected c.hgd.yaml", "reply"]


WATCH_CHILDREN = """
import os, pathlib
import pytest

def children():
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        ppid = next(l.split()[1] for l in status.splitlines() if l.startswith("PPid:"))
        if entry.name.isdigit() and int(ppid) == os.getpid():
            found.append(entry.name)
    return found

def note(when):
    with open("children.txt", "a") as log:
        log.write(when + " " + " ".join(sorted(children())) + "\\n")

def pytest_sessionstart(session):
    note("start")

def pytest_runtest_teardown(item):
    note("test")
"""


def noted_children(hgd: Gate) -> list[tuple[str, set[int]]]:
    lines = (hgd.path / "children.txt").read_text().splitlines()
    return [(when, {int(pid) for pid in pids}) for when, *pids in map(str.split, lines)]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_workers_started_before_collection_are_the_ones_that_answer(hgd: Gate) -> None:
    hgd.pytester.makeconftest(WATCH_CHILDREN)
    (hgd.path / "p.txt").write_text("p", encoding="utf-8")
    pairs = [{"id": f"q{i}", "customer": f"m{i}", "checks": [{"contains": "Re"}]} for i in range(6)]
    hgd.pairs("c.hgd.yaml", conversation(*pairs))
    with OpenAIServer() as server:
        hgd.pytester.makeini(
            f"[pytest]\nhgd_agent = openai:m\nhgd_base_url = {server.base_url}\n"
            "hgd_api_key_env =\nhgd_http_workers = 2\n"
        )
        result = hgd.run_subprocess("--hgd-candidate=p.txt", "-p", "no:randomly")
        calls = server.calls
    result.assert_outcomes(passed=6)
    assert calls == 6
    noted = noted_children(hgd)
    (when, at_start), *during = noted
    assert when == "start" and len(at_start) == 2  # both started before pytest collected
    assert all(pids == at_start for _, pids in during)  # and no others were started
    assert not any(alive(pid) for pid in at_start)  # nor do they outlive the run


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_no_worker_starts_for_collect_only(hgd: Gate) -> None:
    hgd.pytester.makeconftest(WATCH_CHILDREN)
    (hgd.path / "p.txt").write_text("p", encoding="utf-8")
    hgd.pairs("c.hgd.yaml", conversation({"customer": "hi", "checks": [{"contains": "Re"}]}))
    hgd.pytester.makeini("[pytest]\nhgd_agent = openai:m\nhgd_base_url = http://127.0.0.1:9/v1\n")
    result = hgd.run_subprocess("--hgd-candidate=p.txt", "--collect-only")
    assert result.ret == pytest.ExitCode.OK
    assert noted_children(hgd) == [("start", set())]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_workers_started_early_that_no_agent_takes_are_stopped(hgd: Gate) -> None:
    """A conftest makes the ``openai:`` agent itself: the worker started for the built-in
    one is left over, and stopped when pytest ends."""
    hgd.pytester.makeconftest(
        WATCH_CHILDREN
        + """
class Own:
    identity = {"kind": "own"}

    async def reply(self, prompt, messages):
        return "Re: mine"

    async def aclose(self):
        pass

@pytest.hookimpl(optionalhook=True)
def pytest_hgd_make_agent(config, spec):
    return Own()
"""
    )
    (hgd.path / "p.txt").write_text("p", encoding="utf-8")
    hgd.pairs("c.hgd.yaml", conversation({"customer": "hi", "checks": [{"contains": "Re"}]}))
    hgd.pytester.makeini("[pytest]\nhgd_agent = openai:m\nhgd_base_url = http://127.0.0.1:9/v1\n")
    result = hgd.run_subprocess("--hgd-candidate=p.txt")
    result.assert_outcomes(passed=1)
    (_, spares), *_ = noted_children(hgd)
    assert len(spares) == 1
    assert not any(alive(pid) for pid in spares)


def test_spare_workers_are_taken_alive_and_the_rest_stopped_on_close() -> None:
    spares = SpareWorkers()
    spares.start(3)
    first = spares.take()
    assert first is not None and first.poll() is None
    second = spares.take()
    assert second is not None
    second.kill()
    second.wait()
    third = spares.take()  # the next live one
    assert third is not None and third.poll() is None
    spares.start(1)
    fourth = spares._workers[0]
    spares.close()
    assert fourth.poll() is not None  # stopped, and waited for
    assert spares.take() is None
    for worker in (first, third):
        assert worker.stdin is not None
        worker.stdin.close()  # end of input: a worker exits by itself
        assert worker.wait(timeout=10) == 0
