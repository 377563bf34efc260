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

from pytest_hgd.storage.cache import DATABASE

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


# a gate run that writes every report and prints every section (one call at a time)
EVERY_OUTPUT = (
    "--hgd",
    "-p",
    "no:cacheprovider",
    "--hgd-candidate=p.txt",
    "--hgd-concurrency=1",
    "--hgd-report=report.json",
    "--hgd-markdown=report.md",
    "--hgd-html=report.html",
    "--junitxml=junit.xml",
    "-rA",
)


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
            *EVERY_OUTPUT,
            "--log-level=DEBUG",
            "--log-cli-level=DEBUG",
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
    assert not any("Re: m6" in reply for reply in cached)  # a reply holding a key: not cached
    _assert_nowhere(hgd.path, result.stdout.str(), result.stderr.str())


PYTHON_AGENT = """
import os


def leaky(prompt, messages):
    raise RuntimeError("could not log in with " + os.environ["THE_KEY"])
"""


def test_a_python_agents_messages_are_masked_of_keys_from_the_environment(
    hgd: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Python agent reads its own key; an environment variable named like one (`THE_KEY`)
    holding a value shaped like one is masked in everything shown (redact.py's rule)."""
    monkeypatch.setenv("THE_KEY", KEY)
    with (hgd.path / "hgd_agent.py").open("a", encoding="utf-8") as module:
        module.write(PYTHON_AGENT)
    hgd.prompt("p.txt", {"*": "x"})
    hgd.pairs("c.hgd.yaml", conversation({"id": "a", "customer": "a", "reply": "x"}))
    result = hgd.run("--hgd-candidate=p.txt", "--hgd-agent=hgd_agent:leaky")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*agent raised RuntimeError: could not log in with [*][*][*] *"])
    assert "Traceback" not in result.stdout.str() and KEY not in result.stdout.str()


def test_scrubbing_never_changes_what_is_checked(
    hgd: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: replies were scrubbed before their checks. A header `X-Team: sales rep`
    turned "a sales rep will call you" into "a *** will call you" (its `contains` failed),
    and a short key mangled ordinary replies. Now checks see the reply as returned; output
    masks only secrets, whole, split in pieces or spaced out."""
    monkeypatch.setenv("HGD_SHORT_KEY", "abc")  # too short to be a secret: never masked
    (hgd.path / "p.txt").write_text("Answer briefly.", encoding="utf-8")
    hgd.pairs(
        "c.hgd.yaml",
        conversation(
            {"id": "rep", "customer": "m0", "checks": [{"contains": ["sales rep", "abc"]}]},
            {"id": "leak", "customer": "m1", "checks": [{"contains": "nothing like it"}]},
        ),
    )
    half = len(KEY) // 2
    leak = f"part one {KEY[:half]} part two {KEY[half:]} spaced {' '.join(KEY)} org {HEADER}"
    with OpenAIServer() as server:
        hgd.pytester.makeini(
            "[pytest]\nhgd_agent = openai:m\n"
            f"hgd_base_url = {server.base_url}\n"
            "hgd_api_key_env = HGD_HARDENING_KEY\n"
            f"hgd_headers =\n    X-Team: sales rep\n    X-Org: {HEADER}\n"
        )
        monkeypatch.setenv("HGD_HARDENING_KEY", KEY)
        server.push(Fault(content="abc: a sales rep will call you"), Fault(content=leak))
        result = hgd.pytester.runpytest_subprocess(*EVERY_OUTPUT, timeout=60)
    result.assert_outcomes(passed=1, failed=1)
    report = hgd.report()
    (rep,) = [p for p in report["pairs"] if p["id"].endswith("::rep")]
    assert rep["candidate"]["reply"] == "abc: a sales rep will call you"
    (leaked,) = [p for p in report["pairs"] if p["id"].endswith("::leak")]
    assert leaked["candidate"]["reply"] == "part one *** part two *** spaced *** org ***"
    _assert_nowhere(hgd.path, result.stdout.str(), result.stderr.str())
    for text in (result.stdout.str(), *(f.read_text("utf-8") for f in hgd.path.glob("report.*"))):
        assert KEY[:half] not in text and KEY[half:] not in text and " ".join(KEY) not in text


def test_a_long_token_in_the_environment_is_masked_at_linear_cost() -> None:
    """A 2,000-character token (CI runners hold such: cloud session tokens) is found and
    masked, whole or in pieces, with a pattern linear in its length (not one alternative
    per run of its characters: that took minutes and gigabytes)."""
    import random
    import string
    import time

    from pytest_hgd.core.redact import Redactor, secrets_from

    chooser = random.Random(7)
    token = "".join(
        chooser.choice(string.ascii_letters + string.digits + "/+") for _ in range(2000)
    )
    started = time.perf_counter()
    redactor = Redactor(secrets_from({"AWS_SESSION_TOKEN": token}, (), ()))
    assert time.perf_counter() - started < 0.5
    assert redactor.text(f"a {token} b") == "a *** b"
    assert redactor.text(f"a {token[:1000]} b {token[1000:]} c") == "a *** b *** c"
    assert redactor.text("a sales rep will call") == "a sales rep will call"
