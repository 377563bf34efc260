"""The HTTP agent through the plugin, against a real OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest
from conftest import Gate, conversation
from openai_server import Fault, OpenAIServer

from pytest_hgd.storage.cache import DATABASE

SECRET = "sk-test-SECRET-e2e-4242"


def http_ini(hgd: Gate, server: OpenAIServer, extra: str = "") -> None:
    hgd.pytester.makeini(
        "[pytest]\n"
        "hgd_agent = openai:test-model\n"
        f"hgd_base_url = {server.base_url}\n"
        "hgd_api_key_env = HGD_E2E_KEY\n"
        "hgd_temperature = 0.2\n" + extra
    )


def every_written_text(root: Path) -> str:
    return "\n".join(
        p.read_text(encoding="utf-8", errors="replace") for p in root.rglob("*") if p.is_file()
    )


def test_http_gate_end_to_end_and_the_key_stays_secret(
    hgd: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HGD_E2E_KEY", SECRET)
    (hgd.path / "base.txt").write_text("Be brief.\nsay hello", encoding="utf-8")
    (hgd.path / "cand.txt").write_text("Be brief.\nsay goodbye", encoding="utf-8")
    hgd.pairs(
        "c.hgd.yaml",
        conversation(
            {"id": "greet", "customer": "hi", "checks": [{"contains": "hello"}]},
            {"id": "bye", "customer": "bye", "checks": [{"contains": "Re: bye"}]},
            {"id": "broken", "customer": "err", "checks": [{"contains": "x"}]},
        ),
    )
    with OpenAIServer() as server:
        http_ini(hgd, server)
        server.push()  # no faults: replies are "Re: <msg> | <last prompt line> [prompt …]"
        result = hgd.run_subprocess(
            "--hgd-baseline=base.txt",
            "--hgd-candidate=cand.txt",
            "--hgd-report=report.json",
            "--hgd-markdown=summary.md",
            "-rA",
        )
        calls = server.calls
        requests = server.requests
    result.assert_outcomes(passed=1, failed=1, xfailed=1)
    deltas = {p["id"].split("::")[1]: p["delta"] for p in hgd.report()["pairs"]}
    assert deltas == {"greet": "regressed", "bye": "kept", "broken": "still_failing"}
    assert calls == 6
    first = requests[0]
    assert first.headers["authorization"] == f"Bearer {SECRET}"
    assert first.body["model"] == "test-model" and first.body["temperature"] == 0.2
    assert first.body["messages"][0]["role"] == "system"
    # the key is in no output and no file the plugin wrote (report, markdown, cache)
    assert SECRET not in result.stdout.str() + result.stderr.str()
    assert SECRET not in every_written_text(hgd.path)
    with contextlib.closing(sqlite3.connect(hgd.path / ".hgd" / "cache" / DATABASE)) as db:
        (cached,) = db.execute("SELECT count(*) FROM replies").fetchone()
    assert cached == 6  # every reply, under both prompts


def test_http_errors_are_item_errors_without_the_key(
    hgd: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HGD_E2E_KEY", SECRET)
    (hgd.path / "p.txt").write_text("prompt", encoding="utf-8")
    hgd.pairs(
        "c.hgd.yaml",
        conversation(
            {"id": "a", "customer": "a", "checks": [{"contains": "Re"}]},
        ),
    )
    with OpenAIServer() as server:
        http_ini(hgd, server)
        server.push(Fault(status=400, message=f"bad key {SECRET} for model"))
        result = hgd.run_subprocess("--hgd-candidate=p.txt", "--hgd-report=report.json")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*agent error under the candidate prompt*400*bad key ****"])
    assert SECRET not in result.stdout.str() + every_written_text(hgd.path)
    assert hgd.report()["counts"]["error"] == 1


def test_http_calls_run_concurrently(hgd: Gate, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HGD_E2E_KEY", raising=False)
    (hgd.path / "p.txt").write_text("prompt", encoding="utf-8")
    pairs = [
        {"id": f"p{i}", "customer": f"m{i}", "checks": [{"contains": f"Re: m{i}"}]}
        for i in range(40)
    ]
    hgd.pairs("c.hgd.yaml", conversation(*pairs))
    with OpenAIServer(latency=0.2) as server:
        http_ini(hgd, server)
        result = hgd.run_subprocess("--hgd-candidate=p.txt", "--hgd-concurrency=20")
        peak = server.peak_in_flight
        auth = server.requests[0].headers.get("authorization")
    result.assert_outcomes(passed=40)
    assert peak >= 10  # calls overlap: not one at a time
    assert peak <= 20  # and the bound holds
    assert auth is None  # no key in the environment: no Authorization header


@pytest.mark.parametrize("workers", ["0", "1", "2"])
def test_a_slow_reply_times_out_and_queued_calls_wait_without_their_clock_running(
    hgd: Gate, workers: str
) -> None:
    """At concurrency 1, four calls of 0.3 s wait 0.9 s in turn under a 0.8 s timeout: each
    call's clock starts when it does, wherever the queue is (with workers, in them)."""
    (hgd.path / "p.txt").write_text("prompt", encoding="utf-8")
    pairs = [{"id": f"p{i}", "customer": f"m{i}", "checks": [{"contains": "Re"}]} for i in range(4)]
    hgd.pairs(
        "c.hgd.yaml",
        conversation(*pairs, {"id": "slow", "customer": "s", "checks": [{"contains": "Re"}]}),
    )
    with OpenAIServer(latency=0.3) as server:
        http_ini(hgd, server, f"hgd_http_workers = {workers}\n")
        server.push(*[Fault()] * 4, Fault(delay=5))
        result = hgd.run_subprocess(
            "--hgd-candidate=p.txt",
            "--hgd-concurrency=1",
            "--hgd-timeout=0.8",
            "--hgd-report=report.json",
        )
        peak = server.peak_in_flight
    result.assert_outcomes(passed=4, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of hgd locked pair slow*",
            "*agent call timed out after 0.8 s (--hgd-timeout)",
        ]
    )
    assert peak == 1
    assert hgd.report()["counts"]["error"] == 1


def test_connection_refused_is_an_error(hgd: Gate) -> None:
    (hgd.path / "p.txt").write_text("prompt", encoding="utf-8")
    hgd.pairs(
        "c.hgd.yaml", conversation({"id": "a", "customer": "a", "checks": [{"contains": "x"}]})
    )
    hgd.pytester.makeini(
        "[pytest]\nhgd_agent = openai:m\nhgd_base_url = http://127.0.0.1:9/v1\n"
        "hgd_max_retries = 1\n"
    )
    result = hgd.run_subprocess("--hgd-candidate=p.txt", "--hgd-timeout=5")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*agent error under the candidate prompt: openai agent:*"])


def test_the_http_agent_reads_each_calls_usage_into_the_report(
    hgd: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loopback server reports tokens as words (the messages' in, the reply's out); they
    cross the worker process and add up per prompt, priced by ini hgd_prices."""
    monkeypatch.setenv("HGD_E2E_KEY", SECRET)
    (hgd.path / "p.txt").write_text("one two three", encoding="utf-8")
    hgd.pairs(
        "c.hgd.yaml",
        conversation(
            *(
                {"id": f"q{i}", "customer": "four five", "checks": [{"contains": "Re"}]}
                for i in range(2)
            )
        ),
    )
    with OpenAIServer() as server:
        http_ini(hgd, server, "hgd_prices = test-model: 1000000 0\n")
        server.push()
        result = hgd.run_subprocess("--hgd-candidate=p.txt", "--hgd-report=report.json")
    result.assert_outcomes(passed=2)
    usage = hgd.report()["usage"]
    # one call (both pairs ask the same): 3 + 2 words in
    assert usage["candidate"]["calls"] == 1 and usage["candidate"]["input_tokens"] == 5
    assert usage["model"] == "test-model" and usage["cost"]["total"] == pytest.approx(5.0)


def test_auto_samples_with_the_http_agent(hgd: Gate, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every reply passes: each pair stops at its screen of 2 calls."""
    monkeypatch.setenv("HGD_E2E_KEY", SECRET)
    (hgd.path / "p.txt").write_text("prompt", encoding="utf-8")
    hgd.pairs(
        "c.hgd.yaml",
        conversation(
            *(
                {"id": f"q{i}", "customer": f"q{i}", "checks": [{"contains": "Re"}]}
                for i in range(3)
            )
        ),
    )
    with OpenAIServer() as server:
        http_ini(hgd, server)
        server.push()
        result = hgd.run_subprocess(
            "--hgd-candidate=p.txt", "--hgd-report=report.json", "--hgd-samples=auto"
        )
        calls = server.calls
    result.assert_outcomes(passed=3)
    assert calls == 6
    report = hgd.report()
    assert all(
        p["screen"]["went_on"] is False and p["delta"] == "new_pass" for p in report["pairs"]
    )
    assert report["calls"]["fixed_k"] == {"baseline": 0, "candidate": 30, "auto": 6}
