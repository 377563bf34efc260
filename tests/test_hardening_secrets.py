"""Hardening: the HTTP agent's key is in no file pytest-hgd writes and no line it prints,
whatever the server answers (errors that echo it, drops, malformed bodies, replies)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

import pytest
from conftest import Gate, conversation
from openai_server import Fault, OpenAIServer

from pytest_hgd.cache import DATABASE

KEY = "sk-hardening-Zq9xV2pL7mK4wR8t"
HEADER = "org-hardening-Hd7fK2mQ9pXw"  # a header value: secret too (>= 8 characters)
SECRETS = (KEY, HEADER)


def _every_file(root: Path) -> dict[Path, bytes]:
    """Every file under ``root`` but the ini file, where the test itself put the header: the
    cache database and any write-ahead log beside it too, byte for byte (free pages as well)."""
    return {
        path: path.read_bytes()
        for path in root.rglob("*")
        if path.is_file() and path.name != "tox.ini"
    }


def _assert_nowhere(root: Path, *texts: str) -> None:
    for secret in SECRETS:
        for text in texts:
            assert secret not in text, f"the secret is in the output: {text!r}"
        for path, data in _every_file(root).items():
            assert secret.encode() not in data, f"the secret is in {path}"
            assert json.dumps(secret)[1:-1].encode() not in data


def test_the_http_agents_key_is_never_written_or_printed(
    hgd: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HGD_HARDENING_KEY", KEY)
    (hgd.path / "p.txt").write_text("Answer briefly.", encoding="utf-8")
    pairs = [
        {"id": f"p{i}", "customer": f"m{i}", "checks": [{"contains": "Re:"}]} for i in range(9)
    ]
    hgd.pairs("c.hgd.yaml", conversation(*pairs))
    with OpenAIServer() as server:
        hgd.pytester.makeini(
            "[pytest]\nhgd_agent = openai:m\n"
            f"hgd_base_url = {server.base_url}\n"
            "hgd_api_key_env = HGD_HARDENING_KEY\n"
            f"hgd_headers =\n    X-Org: {HEADER}\n"
            "hgd_max_retries = 1\n"
        )
        echo = f"Incorrect API key provided: {KEY} (org {HEADER})"
        server.push(  # concurrency 1: one pair after the other meets these, in order
            Fault(status=401, message=echo),  # p0: not retried
            Fault(status=500, message=echo),  # p1: retried once, then given up
            Fault(status=503, body=f"<html>{KEY}</html>"),
            Fault(drop=True),  # p2: dropped twice
            Fault(drop=True),
            Fault(body=f"not JSON {KEY}"),  # p3: a 200 that does not parse
            Fault(body=json.dumps({"choices": [], "echo": KEY})),  # p4: no reply text
            Fault(status=400, body=json.dumps({"detail": echo})),  # p5
            Fault(content=f"Re: m6, your key is {KEY} and org {HEADER}"),  # p6: a reply
        )
        result = hgd.pytester.runpytest_subprocess(
            "--hgd",
            "-p",
            "no:cacheprovider",
            "--hgd-candidate=p.txt",
            "--hgd-concurrency=1",
            "--hgd-report=report.json",
            "--hgd-markdown=report.md",
            "--hgd-html=report.html",
            "--junitxml=junit.xml",
            "--log-level=DEBUG",
            "--log-cli-level=DEBUG",
            "-rA",
            "-vv",
            timeout=60,
        )
        first = server.requests[0]
    assert first.headers["authorization"] == f"Bearer {KEY}"  # the key was sent, and used
    assert first.headers["x-org"] == HEADER
    result.assert_outcomes(errors=6, passed=3)
    result.stdout.fnmatch_lines(["*HTTP 401 from *: Incorrect API key provided: *** (org ***)*"])
    report = hgd.report()
    assert report["counts"]["error"] == 6
    (p6,) = [p for p in report["pairs"] if p["id"].endswith("::p6")]
    assert p6["candidate"]["reply"] == "Re: m6, your key is *** and org ***"
    assert (hgd.path / ".hgd" / "ledger.jsonl").exists()
    with contextlib.closing(sqlite3.connect(hgd.path / ".hgd" / "cache" / DATABASE)) as db:
        cached = [reply for (reply,) in db.execute("SELECT reply FROM replies")]
    assert "Re: m6, your key is *** and org ***" in cached  # the cache holds the redacted reply
    _assert_nowhere(hgd.path, result.stdout.str(), result.stderr.str())


PYTHON_AGENT = """
import os


def leaky(prompt, messages):
    raise RuntimeError("could not log in with " + os.environ["THE_KEY"])
"""


def test_a_python_agents_own_messages_are_reported_as_they_are(
    hgd: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The boundary: pytest-hgd reads no key for a Python agent and cannot know what its
    messages hold. An exception's message is the agent's own output, shown verbatim so it
    can be debugged; keeping secrets out of it is the agent's job (docs/guarantees.md)."""
    monkeypatch.setenv("THE_KEY", KEY)
    with (hgd.path / "hgd_agent.py").open("a", encoding="utf-8") as module:
        module.write(PYTHON_AGENT)
    hgd.prompt("p.txt", {"*": "x"})
    hgd.pairs("c.hgd.yaml", conversation({"id": "a", "customer": "a", "reply": "x"}))
    result = hgd.run("--hgd-candidate=p.txt", "--hgd-agent=hgd_agent:leaky")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*agent raised RuntimeError: could not log in with {KEY}*"])
    assert "Traceback" not in result.stdout.str()
