"""The HTTP agent's pace (`agents/pacing.py`): a cap in requests a second, and a concurrency
that halves on 429/503 and grows back, against a loopback server that rate-limits."""

from __future__ import annotations

import asyncio
import time

import pytest
from conftest import Gate, conversation
from openai_server import OpenAIServer

from pytest_hgd.agents.pacing import Pacer, parse_duration

SECRET = "sk-test-pacing"


def test_reset_durations_as_openai_writes_them() -> None:
    assert parse_duration("1s") == 1.0 and parse_duration("20ms") == pytest.approx(0.02)
    assert parse_duration("6m0s") == 360.0 and parse_duration("1.5s") == 1.5
    assert parse_duration("soon") is None and parse_duration("") is None


def test_the_rate_cap_spaces_the_starts() -> None:
    async def run() -> float:
        pacer = Pacer(max_concurrency=8, rate=100.0)
        started = time.monotonic()

        async def one() -> None:
            async with pacer.slot():
                pass

        await asyncio.gather(*(one() for _ in range(21)))
        return time.monotonic() - started

    assert asyncio.run(run()) >= 0.19  # 21 starts, 10 ms apart


def test_the_limit_halves_on_429_and_grows_back() -> None:
    pacer = Pacer(max_concurrency=32)
    pacer.observe(429, {}, 0.05)
    assert pacer.limit == 16 and pacer.paused_until > time.monotonic()
    pacer.observe(429, {}, None)  # within the cool-down: one cut per 0.2 s
    assert pacer.limit == 16 and pacer.limited == 2
    for _ in range(200):
        pacer.observe(200, {}, None)
    assert 16 < pacer.limit <= 32
    before = pacer.paused_until
    pacer.observe(200, {"x-ratelimit-remaining-requests": "0",
                        "x-ratelimit-reset-requests": "250ms"}, None)  # fmt: skip
    assert pacer.paused_until >= before and pacer.paused_until > time.monotonic() + 0.2


def test_the_providers_own_limit_sets_the_pace() -> None:
    pacer = Pacer(max_concurrency=64, share=0.5)
    assert pacer.effective_rate is None
    pacer.observe(200, {"x-ratelimit-limit-requests": "12000"}, None)  # 200 a second
    assert pacer.effective_rate == pytest.approx(0.95 * 200 * 0.5)
    capped = Pacer(max_concurrency=64, rate=50.0)
    capped.observe(200, {"x-ratelimit-limit-requests": "12000"}, None)
    assert capped.effective_rate == 50.0


def http_suite(hgd: Gate, server: OpenAIServer, pairs: int, extra: str = "") -> None:
    hgd.pytester.makeini(
        "[pytest]\nhgd_agent = openai:test-model\n"
        f"hgd_base_url = {server.base_url}\nhgd_api_key_env = HGD_E2E_KEY\n{extra}"
    )
    (hgd.path / "p.txt").write_text("prompt", encoding="utf-8")
    hgd.pairs(
        "c.hgd.yaml",
        conversation(
            *({"id": f"q{i}", "customer": f"q{i}", "checks": [{"contains": "Re"}]}
              for i in range(pairs))
        ),
    )  # fmt: skip


def test_a_rate_limited_provider_slows_the_gate_down_without_errors(
    hgd: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provider at 100 requests a second, 120 pairs at concurrency 32: the agent backs off
    on 429, honours retry-after-ms, and every pair passes."""
    monkeypatch.setenv("HGD_E2E_KEY", SECRET)
    with OpenAIServer(latency=0.01, rate_limit=100) as server:
        http_suite(hgd, server, 120)
        result = hgd.run_subprocess("--hgd-candidate=p.txt", "--hgd-concurrency=32")
        limited, calls = server.limited, server.calls
    result.assert_outcomes(passed=120)
    assert calls - limited == 120 and limited < calls


def test_a_rate_cap_below_the_limit_meets_no_429(
    hgd: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HGD_E2E_KEY", SECRET)
    with OpenAIServer(latency=0.01, rate_limit=100) as server:
        http_suite(hgd, server, 60, "hgd_rate = 80\n")
        started = time.monotonic()
        result = hgd.run_subprocess("--hgd-candidate=p.txt", "--hgd-concurrency=32")
        elapsed = time.monotonic() - started
        limited = server.limited
    result.assert_outcomes(passed=60)
    assert limited == 0 and elapsed > 60 / 80 * 0.9
