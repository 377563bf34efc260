"""Hardening: an agent that misbehaves is an error on its own item; the run and its report
complete. Runs are subprocesses with a time limit, so a regression shows as a failure, not
as a hung test suite."""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Gate, conversation
from openai_server import Fault, OpenAIServer

LIMIT = 60  # seconds a run may take before the test calls it hung

FAULTY_AGENT = """
import asyncio, pathlib, sys, time


class Stringy:
    def __str__(self):
        raise RuntimeError("even str() fails")


def _answer(message):
    if message == "none":
        return None
    if message == "int":
        return 42
    if message == "bytes":
        return b"good"
    if message == "object":
        return Stringy()
    if message == "surrogate":
        return "good \\ud800"
    if message == "raise":
        raise RuntimeError("the agent broke")
    if message == "exit":
        sys.exit("the agent called sys.exit")
    if message == "keyboard":
        raise KeyboardInterrupt
    if message == "recursion":
        return _answer(message)
    return "good"


def reply(prompt, messages):
    message = messages[-1]["content"]
    if message == "hang":
        release = pathlib.Path(__file__).with_name("release")
        for _ in range(600):  # a call stuck far past --hgd-timeout
            if release.exists():
                break
            time.sleep(0.05)
        return "late"
    return _answer(message)


async def areply(prompt, messages):
    message = messages[-1]["content"]
    if message == "hang":
        await asyncio.sleep(600)
    if message == "cancel":
        raise asyncio.CancelledError()
    return _answer(message)
"""

EXPECTED = {
    "none": "returned NoneType, not a str",
    "int": "returned int, not a str",
    "bytes": "returned bytes, not a str",
    "object": "returned Stringy, not a str",
    "surrogate": "a str that is not valid Unicode",
    "raise": "agent raised RuntimeError: the agent broke (at *hgd_agent.py:*)",
    "exit": "agent raised SystemExit: the agent called sys.exit (at *hgd_agent.py:*)",
    "keyboard": "agent raised KeyboardInterrupt (at *hgd_agent.py:*)",
    "recursion": "agent raised RecursionError: maximum recursion depth exceeded*",
    "hang": "agent call timed out after 1 s (--hgd-timeout)",
    "cancel": "agent raised CancelledError (at *hgd_agent.py:*)",
}


def _faulty(hgd: Gate, messages: list[str]) -> None:
    with (hgd.path / "hgd_agent.py").open("a", encoding="utf-8") as module:
        module.write(FAULTY_AGENT)
    (hgd.path / "p.txt").write_text("the prompt", encoding="utf-8")
    pairs = [{"id": m, "customer": m, "checks": [{"contains": "good"}]} for m in messages]
    hgd.pairs("c.hgd.yaml", conversation(*pairs))


def _run(hgd: Gate, *args: str) -> pytest.RunResult:
    return hgd.pytester.runpytest_subprocess(
        "--hgd", "-p", "no:cacheprovider", "--hgd-candidate=p.txt", *args, timeout=LIMIT
    )


def _assert_errors(result: pytest.RunResult, errors: list[str], passed: int) -> None:
    output = result.stdout.str()
    result.assert_outcomes(errors=len(errors), passed=passed)
    for message in errors:
        result.stdout.fnmatch_lines(
            [f"*ERROR at setup of * pair {message} *", "*agent error under the candidate prompt: *"]
        )
        result.stdout.fnmatch_lines([f"*{EXPECTED[message]}*"])
    assert "INTERNALERROR" not in output
    assert "Traceback" not in output + result.stderr.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_sync_agent_faults_are_item_errors(hgd: Gate) -> None:
    faults = ["none", "int", "bytes", "object", "surrogate", "raise", "exit", "keyboard"]
    faults.append("recursion")
    _faulty(hgd, ["ok-1", *faults, "ok-2"])
    result = _run(
        hgd, "--hgd-agent=hgd_agent:reply", "--hgd-concurrency=3", "--hgd-report=report.json"
    )
    _assert_errors(result, faults, passed=2)
    report = hgd.report()
    assert report["counts"]["error"] == len(faults)
    errors = {p["id"].split("::")[1]: p["error"] for p in report["pairs"] if p["delta"] == "error"}
    assert set(errors) == set(faults)


def test_async_agent_faults_are_item_errors(hgd: Gate) -> None:
    faults = ["none", "int", "raise", "exit", "keyboard", "hang", "cancel"]
    _faulty(hgd, ["ok-1", *faults, "ok-2"])
    result = _run(
        hgd, "--hgd-agent=hgd_agent:areply", "--hgd-timeout=1", "--hgd-report=report.json"
    )
    _assert_errors(result, faults, passed=2)
    assert hgd.report()["counts"]["error"] == len(faults)


def _wait_for(path: Path, process: subprocess.Popen[str], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() or process.poll() is not None:
            return path.exists()
        time.sleep(0.05)
    return False


def _start_hanging_run(hgd: Gate) -> subprocess.Popen[str]:
    _faulty(hgd, ["ok-1", "hang", "ok-2"])
    return hgd.start("--hgd-candidate=p.txt", "--hgd-timeout=1", "--hgd-report=report.json")


def test_a_sync_call_past_the_timeout_is_an_error_and_the_report_is_written(hgd: Gate) -> None:
    process = _start_hanging_run(hgd)
    try:
        assert _wait_for(hgd.path / "report.json", process, LIMIT), "no report was written"
        report = hgd.report()
    finally:
        (hgd.path / "release").touch()  # let the stuck call end, whatever happened
        output, _ = process.communicate(timeout=LIMIT)
    assert report["counts"]["error"] == 1
    assert report["counts"]["new_pass"] == 2
    (error,) = [p["error"] for p in report["pairs"] if p["delta"] == "error"]
    assert "timed out after 1 s (--hgd-timeout)" in error
    assert process.returncode == 1, output
    assert "Traceback" not in output


def test_a_sync_call_stuck_past_the_timeout_does_not_hold_the_process_open(hgd: Gate) -> None:
    process = _start_hanging_run(hgd)
    try:
        assert _wait_for(hgd.path / "report.json", process, LIMIT), "no report was written"
        # The report is the run's last act: pytest exits now. A held process would wait for
        # "release" forever; 10 s leaves room for a loaded machine.
        process.wait(timeout=10)
    finally:
        (hgd.path / "release").touch()
        process.communicate(timeout=LIMIT)


def test_http_server_that_drops_the_connection_mid_reply(
    hgd: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    (hgd.path / "p.txt").write_text("prompt", encoding="utf-8")
    pairs = [
        {"id": f"p{i}", "customer": f"m{i}", "checks": [{"contains": "Re:"}]} for i in range(4)
    ]
    hgd.pairs("c.hgd.yaml", conversation(*pairs))
    with OpenAIServer() as server:
        hgd.pytester.makeini(
            f"[pytest]\nhgd_agent = openai:m\nhgd_base_url = {server.base_url}\n"
            "hgd_max_retries = 1\n"
        )
        # concurrency 1: requests in item order, so the first pair meets both drops
        server.push(Fault(drop=True), Fault(drop=True))
        result = _run(hgd, "--hgd-concurrency=1", "--hgd-report=report.json")
    result.assert_outcomes(errors=1, passed=3)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of hgd locked pair p0*",
            "*agent error under the candidate prompt: openai agent: connection to "
            "http://127.0.0.1:*/v1/chat/completions failed: RemoteProtocolError: *"
            "(gave up after 2 attempts)*",
        ]
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    report = hgd.report()
    assert report["counts"] == {**dict.fromkeys(report["counts"], 0), "new_pass": 3, "error": 1}
    assert json.loads((hgd.path / "report.json").read_text(encoding="utf-8"))["verdict"] == "fail"


BLOCKING_ASYNC_AGENT = """
import asyncio, time

async def reply(prompt, messages):
    if messages[-1]["content"].startswith("block"):
        time.sleep(float(prompt))  # blocks its event loop: a bug, but a common one
    else:
        await asyncio.sleep(0)
    return "good"
"""


def test_an_async_agent_that_blocks_its_loop_times_out_call_by_call(hgd: Gate) -> None:
    """Before: `time.sleep(5)` inside `async def` with --hgd-timeout=2 ran the calls one
    after another and counted them all as passes; with sleep(30) the run hung for minutes."""
    hgd.pytester.makepyfile(blocking=BLOCKING_ASYNC_AGENT)
    (hgd.path / "p.txt").write_text("30", encoding="utf-8")
    checks = [{"contains": "good"}]
    hgd.pairs(
        "b.hgd.yaml",
        conversation(
            *({"id": f"block-{i}", "customer": f"block {i}", "checks": checks} for i in range(4)),
        ),
    )
    started = time.monotonic()
    result = _run(
        hgd,
        "--hgd-agent=blocking:reply",
        "--hgd-timeout=1",
        "--hgd-concurrency=4",
        "--hgd-report=report.json",
    )
    seconds = time.monotonic() - started
    assert seconds < 20, seconds  # 4 calls x 30 s if they ran, 1 s each given up
    result.assert_outcomes(errors=4)
    result.stdout.fnmatch_lines(["*agent call timed out after 1 s (--hgd-timeout)*"])
    assert hgd.report()["counts"]["error"] == 4


@pytest.fixture
def endless_server() -> Iterator[str]:
    """An OpenAI-compatible URL on 127.0.0.1 whose responses never end (a chunked body of
    zeros, sent until the client hangs up)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"0" * 65536
            start = b'{"choices": [{"message": {"content": "'
            try:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(start), start))
                while True:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except OSError:
                pass

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("workers", ["0", "1"])
def test_an_endless_http_body_is_an_error_not_read_past_the_cap(
    hgd: Gate, endless_server: str, workers: str
) -> None:
    """Before: no size cap (1.85 GB read in 5 s)."""
    hgd.prompt("p.txt", {})
    hgd.pairs("h.hgd.yaml", conversation({"customer": "hi", "checks": [{"contains": "x"}]}))
    started = time.monotonic()
    result = hgd.run_subprocess(
        "--hgd-agent=openai:m",
        f"--hgd-base-url={endless_server}",
        "--hgd-candidate=p.txt",
        "--hgd-max-reply-chars=1000",
        f"--hgd-http-workers={workers}",
        "--hgd-timeout=30",
    )
    assert time.monotonic() - started < 25
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*passed 71536 bytes and was not read further*"])


def test_a_python_agents_reply_over_the_cap_is_an_error(hgd: Gate) -> None:
    hgd.pytester.makepyfile(big="def reply(prompt, messages):\n    return 'x' * 5000\n")
    hgd.prompt("p.txt", {})
    hgd.pairs("b.hgd.yaml", conversation({"customer": "hi", "checks": [{"contains": "x"}]}))
    result = _run(
        hgd, "--hgd-agent=big:reply", "--hgd-candidate=p.txt", "--hgd-max-reply-chars=4999"
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*agent returned 5000 characters, over the limit of 4999 (--hgd-max-reply-chars)*"]
    )
    ok = _run(hgd, "--hgd-agent=big:reply", "--hgd-candidate=p.txt", "--hgd-max-reply-chars=5000")
    ok.assert_outcomes(passed=1)


EXITING_AGENT = """
import os

def reply(prompt, messages):
    if messages[-1]["content"] == "exit":
        os._exit(0)
    return "good"

async def areply(prompt, messages):
    return reply(prompt, messages)
"""


@pytest.mark.parametrize("function", ["reply", "areply"])
def test_an_agent_calling_os_exit_is_an_error_not_a_silent_pass(hgd: Gate, function: str) -> None:
    """Before: os._exit(0) in the agent ended pytest with status 0 and nothing written."""
    hgd.pytester.makepyfile(exiting=EXITING_AGENT)
    hgd.prompt("p.txt", {})
    checks = [{"contains": "good"}]
    hgd.pairs(
        "x.hgd.yaml",
        conversation(
            {"id": "ok", "customer": "hi", "checks": checks},
            {"id": "exit", "customer": "exit", "checks": checks},
        ),
    )
    result = hgd.run_subprocess(
        f"--hgd-agent=exiting:{function}", "--hgd-candidate=p.txt", "--hgd-report=report.json"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*agent raised SystemExit: the agent called os._exit(0)*"])
    assert hgd.report()["verdict"] == "fail"
