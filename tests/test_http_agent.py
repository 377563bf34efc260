"""The OpenAI-compatible agent against a real loopback server (tests/openai_server.py)."""

from __future__ import annotations

import asyncio
import email.utils
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai_server import Fault, OpenAIServer, echo_reply

from pytest_hgd.agents.http_agent import HTTPAgent, HTTPAgentSettings, retry_after_seconds
from pytest_hgd.core.errors import AgentError
from pytest_hgd.plugin.ini_lists import parse_headers

KEY = "sk-test-SECRET-123"
ENV = {"OPENAI_API_KEY": KEY}
MESSAGES = [
    {"role": "assistant", "content": "Hi, this is Sam from Acme Motors."},
    {"role": "user", "content": "How much is the RAV4?"},
]


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as srv:
        yield srv


def make_agent(base_url: str, **overrides: Any) -> HTTPAgent:
    fields: dict[str, Any] = {"model": "gpt-test", "base_url": base_url, "backoff_base": 0.01}
    fields.update(overrides)
    return HTTPAgent(HTTPAgentSettings(**fields), env=ENV)


def run(agent: HTTPAgent, prompt: str = "Be brief.", messages: Any = None) -> str:
    async def call() -> str:
        try:
            return await agent.reply(prompt, MESSAGES if messages is None else messages)
        finally:
            await agent.aclose()

    return asyncio.run(call())


def fail(agent: HTTPAgent) -> AgentError:
    with pytest.raises(AgentError) as info:
        run(agent)
    return info.value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_reply_is_the_message_content(server: OpenAIServer) -> None:
    reply = run(make_agent(server.base_url), prompt="Rule one.\nMention the sales rep.")
    assert reply.startswith("Re: How much is the RAV4? | Mention the sales rep. [prompt ")
    assert reply == echo_reply(server.requests[0].body)


def test_request_carries_prompt_messages_parameters_and_headers(server: OpenAIServer) -> None:
    agent = make_agent(
        server.base_url + "/",
        temperature=0.2,
        max_tokens=64,
        headers=parse_headers("X-Team: sales\nOpenAI-Organization: org-1"),
    )
    run(agent, prompt="SYSTEM")
    (request,) = server.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.body == {
        "model": "gpt-test",
        "messages": [{"role": "system", "content": "SYSTEM"}, *MESSAGES],
        "temperature": 0.2,
        "max_tokens": 64,
    }
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["x-team"] == "sales"
    assert request.headers["openai-organization"] == "org-1"


def test_a_configured_authorization_header_replaces_the_key(server: OpenAIServer) -> None:
    run(make_agent(server.base_url, headers=(("authorization", "Token abc"),)))
    assert server.requests[0].headers["authorization"] == "Token abc"


def test_unset_parameters_and_missing_key_are_not_sent(server: OpenAIServer) -> None:
    agent = HTTPAgent(HTTPAgentSettings(model="llama3", base_url=server.base_url), env={})
    run(agent)
    (request,) = server.requests
    assert "authorization" not in request.headers
    assert set(request.body) == {"model", "messages"}
    assert repr(agent).endswith("api_key=unset)")


def test_reply_slower_than_the_timeout_is_an_error(server: OpenAIServer) -> None:
    server.push(Fault(delay=2.0))
    started = time.monotonic()
    error = fail(make_agent(server.base_url, timeout=0.3))
    assert time.monotonic() - started < 1.5
    assert "timed out after 0.3 s" in str(error)


def test_429_waits_for_retry_after_then_succeeds(server: OpenAIServer) -> None:
    server.push(Fault(status=429, retry_after="1", message="Rate limit reached"))
    started = time.monotonic()
    assert run(make_agent(server.base_url)).startswith("Re: ")
    first, second = server.requests
    assert 0.9 <= second.received_at - first.received_at < 1.8
    assert time.monotonic() - started < 2.5


def test_retry_after_is_capped(server: OpenAIServer) -> None:
    server.push(Fault(status=503, retry_after="3600"))
    started = time.monotonic()
    run(make_agent(server.base_url, retry_after_max=0.2))
    assert server.calls == 2
    assert time.monotonic() - started < 1.5


def test_500_then_success(server: OpenAIServer) -> None:
    server.push(Fault(status=500), Fault(status=502))
    assert run(make_agent(server.base_url)).startswith("Re: ")
    assert server.calls == 3


def test_retries_are_bounded(server: OpenAIServer) -> None:
    server.push(*[Fault(status=500, message="engine overloaded")] * 5)
    error = fail(make_agent(server.base_url, max_retries=2))
    assert server.calls == 3
    assert "HTTP 500" in str(error)
    assert "engine overloaded" in str(error)
    assert "gave up after 3 attempts" in str(error)


def test_a_retry_that_would_pass_the_timeout_gives_up_at_once(server: OpenAIServer) -> None:
    server.push(Fault(status=429, retry_after="30"))
    started = time.monotonic()
    error = fail(make_agent(server.base_url, timeout=5.0))
    assert time.monotonic() - started < 1.0
    assert server.calls == 1
    assert "would pass the 5 s timeout" in str(error)


def test_400_fails_at_once_with_the_server_message(server: OpenAIServer) -> None:
    server.push(Fault(status=400, message="Unknown model 'gpt-test'"))
    error = fail(make_agent(server.base_url))
    assert server.calls == 1
    assert "HTTP 400" in str(error)
    assert "Unknown model 'gpt-test'" in str(error)


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        ('{"error": "model not found"}', "model not found"),  # Ollama's shape
        ('{"detail": "Not authenticated"}', "Not authenticated"),
        ("<html>gateway says no</html>", "<html>gateway says no</html>"),
        ("x" * 5000, "x" * 100 + "..."),
    ],
)
def test_non_openai_error_bodies_are_shown_briefly(
    server: OpenAIServer, body: str, shown: str
) -> None:
    server.push(Fault(status=404, body=body))
    message = str(fail(make_agent(server.base_url)))
    assert shown[-100:] in message
    assert len(message) < 500


def test_malformed_json_is_an_error(server: OpenAIServer) -> None:
    server.push(Fault(malformed=True))
    error = fail(make_agent(server.base_url))
    assert "malformed JSON" in str(error)
    assert server.calls == 1


@pytest.mark.parametrize(
    "body",
    ['{"choices": []}', '{"choices": [{"message": {"content": null}}]}', "[1, 2]"],
)
def test_a_reply_without_content_is_an_error(server: OpenAIServer, body: str) -> None:
    server.push(Fault(body=body))
    with pytest.raises(AgentError, match=r"no text at choices\[0\]\.message\.content"):
        run(make_agent(server.base_url))


def test_dropped_connection_is_retried(server: OpenAIServer) -> None:
    server.push(Fault(drop=True))
    assert run(make_agent(server.base_url)).startswith("Re: ")
    assert server.calls == 2


def test_connection_refused_fails_after_retries() -> None:
    agent = make_agent(f"http://127.0.0.1:{free_port()}/v1", max_retries=2)
    error = fail(agent)
    assert "connection to http://127.0.0.1:" in str(error)
    assert "ConnectError" in str(error)
    assert "gave up after 3 attempts" in str(error)


def test_the_key_never_shows(server: OpenAIServer) -> None:
    echoed = json.dumps({"error": {"message": f"Incorrect API key provided: Bearer {KEY}"}})
    server.push(Fault(status=401, body=echoed))
    agent = make_agent(server.base_url, headers=(("X-Api-Key", "hdr-SECRET-456789"),))
    error = fail(agent)
    server.push(Fault(status=500, body=f"upstream saw {KEY} and hdr-SECRET-456789" * 20))
    error_500 = fail(make_agent(server.base_url, max_retries=0, headers=agent.settings.headers))
    server.push(Fault(status=200, body=f"not json {KEY}"))
    error_200 = fail(agent)
    shown = [
        str(error),
        repr(error),
        str(error_500),
        str(error_200),
        repr(agent),
        repr(agent.settings),
        json.dumps(agent.identity),
    ]
    for text in shown:
        assert KEY not in text
        assert "SECRET" not in text
    assert "Incorrect API key provided: Bearer ***" in str(error)
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_identity_names_what_shapes_the_reply() -> None:
    settings = HTTPAgentSettings(
        model="m", base_url="http://h/v1/", temperature=0.0, headers=(("B", "1"), ("A", "2"))
    )
    assert HTTPAgent(settings, env=ENV).identity == {
        "kind": "openai",
        "model": "m",
        "base_url": "http://h/v1",
        "temperature": 0.0,
        "max_tokens": None,
        "headers": ["A", "B"],
    }


def test_concurrent_calls_share_a_pool() -> None:
    async def burst(agent: HTTPAgent) -> list[str]:
        try:
            calls = [
                agent.reply("p", [{"role": "user", "content": f"question {i}"}]) for i in range(64)
            ]
            return await asyncio.gather(*calls)
        finally:
            await agent.aclose()

    with OpenAIServer(latency=0.05) as srv:
        agent = make_agent(srv.base_url, max_connections=32)
        started = time.monotonic()
        replies = asyncio.run(burst(agent))
        elapsed = time.monotonic() - started
        assert [r.split(" | ")[0] for r in replies] == [f"Re: question {i}" for i in range(64)]
        assert elapsed < 1.5, elapsed
        assert srv.connections <= 32
        assert 8 < srv.peak_in_flight <= 32


def test_start_makes_the_client_without_calling_the_server(server: OpenAIServer) -> None:
    agent = make_agent(server.base_url)

    async def started_then_called() -> tuple[int, str]:
        try:
            await agent.start()
            client = agent._client
            connections = server.connections
            reply = await agent.reply("Be brief.", MESSAGES)
            assert agent._client is client  # the call used the client start made
            return connections, reply
        finally:
            await agent.aclose()

    connections, reply = asyncio.run(started_then_called())
    assert connections == 0 and server.calls == 1
    assert reply.startswith("Re: ")


def test_the_agent_is_usable_again_after_aclose(server: OpenAIServer) -> None:
    agent = make_agent(server.base_url)
    assert run(agent) == run(agent)
    assert server.calls == 2


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"base_url": "localhost:8080/v1"}, "base_url must start with http"),
        ({"timeout": 0}, "timeout must be > 0"),
        ({"max_connections": 0}, "max_connections must be >= 1"),
        ({"model": ""}, "model must not be empty"),
    ],
)
def test_bad_settings_are_refused(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        HTTPAgentSettings(**{"model": "m", **fields})


def test_parse_headers() -> None:
    assert parse_headers(["", " X-A: 1 ", "X-B:two: parts"]) == (
        ("X-A", "1"),
        ("X-B", "two: parts"),
    )
    with pytest.raises(ValueError, match="Name: value"):
        parse_headers("no colon here")


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "2"}, 2.0),
        ({"Retry-After": "1.5", "retry-after-ms": "250"}, 0.25),
        ({"Retry-After": "-3"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_forms(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after_seconds(httpx.Headers(headers)) == seconds


def test_retry_after_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    wait = retry_after_seconds(httpx.Headers({"Retry-After": when}))
    assert wait is not None and 25 < wait <= 31
