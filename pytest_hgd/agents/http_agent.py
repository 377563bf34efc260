"""The OpenAI-compatible chat-completions agent (OpenAI, vLLM, Ollama, llama.cpp, LiteLLM).

One shared `httpx.AsyncClient` per agent, created lazily on the running loop, pools
connections for many concurrent `reply` calls, on the lean transport of `http_transport`
(httpx's own where an environment proxy applies). Retries connection errors, 408/409/429
and 5xx with exponential backoff and full jitter, honouring `Retry-After`, all within
the per-call timeout. The API key is read once from the environment, kept in memory
only, and scrubbed from every message built from server output. Replies are returned as
the server sent them (checks must see them whole); `redact` masks secrets in what is
written and printed, and keeps a reply that holds one out of the cache.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from pytest_hgd.agents.http_transport import BodyTooLarge, LeanTransport, proxied
from pytest_hgd.agents.pacing import Pacer
from pytest_hgd.core.deadline import within
from pytest_hgd.core.errors import AgentError
from pytest_hgd.core.model import AgentReply, usage_of

__all__ = ["HTTPAgent", "HTTPAgentSettings"]

log = logging.getLogger(__name__)

_RETRY_STATUSES = frozenset({408, 409, 429})
_EXCERPT = 300
_MASK = "***"


@dataclass(frozen=True, repr=False)
class HTTPAgentSettings:
    """How to reach an OpenAI-compatible endpoint. Holds no secret, only env var names."""

    model: str
    base_url: str = "https://api.openai.com/v1"
    api_key_env: str | None = "OPENAI_API_KEY"
    temperature: float | None = None
    max_tokens: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = 60.0
    max_retries: int = 4
    max_connections: int = 32
    max_body_bytes: int | None = None  # a response body past this is not read further
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    retry_after_max: float = 30.0
    rate: float | None = None  # --hgd-rate: requests a second at most (agents/pacing.py)
    rate_share: float = 1.0  # this process's share of the provider's rate limit

    def __post_init__(self) -> None:
        problems = []
        if not self.model:
            problems.append("model must not be empty")
        if not self.base_url.startswith(("http://", "https://")):
            problems.append(f"base_url must start with http:// or https://, got {self.base_url!r}")
        if not self.timeout > 0:
            problems.append(f"timeout must be > 0, got {self.timeout!r}")
        if self.max_retries < 0:
            problems.append(f"max_retries must be >= 0, got {self.max_retries!r}")
        if self.max_connections < 1:
            problems.append(f"max_connections must be >= 1, got {self.max_connections!r}")
        if self.max_tokens is not None and self.max_tokens < 1:
            problems.append(f"max_tokens must be >= 1, got {self.max_tokens!r}")
        if min(self.backoff_base, self.backoff_max, self.retry_after_max) < 0:
            problems.append("backoff_base, backoff_max and retry_after_max must be >= 0")
        if problems:
            raise ValueError("; ".join(problems))

    def __repr__(self) -> str:
        names = sorted(name for name, _ in self.headers)
        return (
            f"HTTPAgentSettings(model={self.model!r}, base_url={self.base_url!r}, "
            f"api_key_env={self.api_key_env!r}, temperature={self.temperature!r}, "
            f"max_tokens={self.max_tokens!r}, headers={names!r} (values hidden), "
            f"timeout={self.timeout!r}, max_retries={self.max_retries!r}, "
            f"max_connections={self.max_connections!r})"
        )


class HTTPAgent:
    """An agent that asks an OpenAI-compatible `/chat/completions` endpoint for the reply."""

    def __init__(self, settings: HTTPAgentSettings, env: Mapping[str, str] | None = None) -> None:
        source = os.environ if env is None else env
        key = source.get(settings.api_key_env) if settings.api_key_env else None
        self._settings = settings
        self._key = key or None
        self._secrets = secret_forms(self._key, [value for _, value in settings.headers])
        self._url = settings.base_url.rstrip("/") + "/chat/completions"
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._identity: dict[str, object] | None = None
        self._pacer = self._new_pacer()

    @property
    def settings(self) -> HTTPAgentSettings:
        return self._settings

    @property
    def identity(self) -> dict[str, object]:
        """Asked once per call (the cache key): made once, a copy handed out."""
        if self._identity is None:
            s = self._settings
            self._identity = {
                "kind": "openai",
                "model": s.model,
                "base_url": s.base_url.rstrip("/"),
                "temperature": s.temperature,
                "max_tokens": s.max_tokens,
                "headers": sorted(name for name, _ in s.headers),
            }
        return dict(self._identity)

    def __repr__(self) -> str:
        s = self._settings
        key = "set" if self._key else "unset"
        return f"HTTPAgent(model={s.model!r}, base_url={s.base_url!r}, api_key={key})"

    async def reply(self, prompt: str, messages: list[dict[str, str]]) -> str:
        """Return the assistant's reply to `messages` under the system `prompt`."""
        s = self._settings
        body: dict[str, Any] = {
            "model": s.model,
            "messages": [{"role": "system", "content": prompt}, *messages],
        }
        if s.temperature is not None:
            body["temperature"] = s.temperature
        if s.max_tokens is not None:
            body["max_tokens"] = s.max_tokens
        try:
            return await within(s.timeout, self._post_with_retries(body))
        except asyncio.TimeoutError:
            raise self._timed_out() from None

    async def start(self) -> None:
        """Make the client now (its headers, transport and pool), not on the first call."""
        self._client_for_this_loop()

    async def aclose(self) -> None:
        """Close the pooled connections; the next `reply` opens new ones."""
        client, self._client, self._loop = self._client, None, None
        if client is not None:
            await client.aclose()

    def _client_for_this_loop(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            s = self._settings
            headers = httpx.Headers({"Accept": "application/json"})
            if self._key:
                headers["Authorization"] = f"Bearer {self._key}"
            headers.update(httpx.Headers(list(s.headers)))  # replaces names case-blind
            timeout = httpx.Timeout(s.timeout)
            if proxied(self._url):  # httpx's own transport, which speaks to the proxy
                limits = httpx.Limits(
                    max_connections=s.max_connections,
                    max_keepalive_connections=s.max_connections,
                )
                self._client = httpx.AsyncClient(headers=headers, timeout=timeout, limits=limits)
            else:
                transport = LeanTransport(s.max_connections, max_body=s.max_body_bytes)
                self._client = httpx.AsyncClient(
                    headers=headers, timeout=timeout, transport=transport
                )
            self._loop = loop
            self._pacer = self._new_pacer()  # its waits belong to this loop
        return self._client

    def _new_pacer(self) -> Pacer:
        s = self._settings
        return Pacer(s.max_connections, s.rate, s.retry_after_max, s.rate_share)

    async def _post_with_retries(self, body: dict[str, Any]) -> str:
        s = self._settings
        client = self._client_for_this_loop()
        deadline = time.monotonic() + s.timeout
        attempt = limited = 0
        while True:
            outcome = await self._attempt(client, body, attempt)
            if isinstance(outcome, str):
                return outcome
            problem, wait = outcome
            if problem.startswith("HTTP 429 "):  # the provider's pace: the deadline bounds it
                limited += 1
            else:
                attempt += 1
            if attempt > s.max_retries:
                raise self.error(f"{problem} (gave up after {attempt} attempts)")
            if time.monotonic() + wait > deadline:
                raise self.error(
                    f"{problem} (gave up after {attempt + limited} attempts: the next retry, "
                    f"in {wait:.1f} s, would pass the {s.timeout:g} s timeout)"
                )
            log.debug("%s; retry %d in %.2f s", self._scrub(problem), attempt, wait)
            await asyncio.sleep(wait)

    async def _attempt(
        self, client: httpx.AsyncClient, body: dict[str, Any], attempt: int
    ) -> str | tuple[str, float]:
        """One POST: the reply, or (problem, seconds to wait) when it is worth a retry."""
        try:
            async with self._pacer.slot():
                response = await client.post(self._url, json=body)
        except httpx.TimeoutException:
            raise self._timed_out() from None
        except BodyTooLarge as exc:
            raise self.error(
                f"the response from {self._url} passed {exc.limit} bytes and was not read "
                "further (the limit follows --hgd-max-reply-chars)"
            ) from None
        except httpx.TransportError as exc:
            problem = f"connection to {self._url} failed: {type(exc).__name__}: {exc}"
            return problem, self._backoff(attempt)
        status = response.status_code
        retry_after = retry_after_seconds(response.headers)
        if retry_after is not None:
            retry_after = min(retry_after, self._settings.retry_after_max)
        self._pacer.observe(status, response.headers, retry_after)
        if response.is_success:
            return self._content(response)
        problem = f"HTTP {status} from {self._url}: {self._error_text(response)}"
        if status not in _RETRY_STATUSES and status < 500:
            raise self.error(problem)
        if retry_after is None:
            return problem, self._backoff(attempt)
        return problem, retry_after

    def _backoff(self, attempt: int) -> float:
        s = self._settings
        return random.uniform(0.0, min(s.backoff_max, s.backoff_base * 2.0**attempt))

    def _content(self, response: httpx.Response) -> str:
        try:
            data = response.json()
        except ValueError:
            raise self.error(
                f"malformed JSON from {self._url} (HTTP {response.status_code}): "
                f"{self._excerpt(response.text)!r}"
            ) from None
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            content = None
        if not isinstance(content, str):
            raise self.error(
                f"reply from {self._url} has no text at choices[0].message.content: "
                f"{self._excerpt(json.dumps(data))!r}"
            )
        # as returned: checks see it whole; output is scrubbed (redact.py)
        return AgentReply(content, usage_of(data.get("usage")))

    def _timed_out(self) -> AgentError:
        s = self._settings
        return self.error(f"{s.model} at {self._url} timed out after {s.timeout:g} s")

    def error(self, problem: str) -> AgentError:
        """An AgentError for ``problem``, named as this agent's and with every secret masked."""
        return AgentError(f"openai agent: {self._scrub(problem)}")

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, _MASK)
        return text

    def _excerpt(self, text: str) -> str:
        return excerpt(text, self._scrub)

    def _error_text(self, response: httpx.Response) -> str:
        return error_text(response, self._excerpt)


def excerpt(text: str, scrub: Callable[[str], str]) -> str:
    """``text`` on one line and cut short, scrubbed first, so that cutting it cannot leave
    part of a secret."""
    text = " ".join(scrub(text).split())
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 3] + "..."


def error_text(response: httpx.Response, excerpt: Callable[[str], str]) -> str:
    """An OpenAI-compatible server's own error message, else a short excerpt of the body
    (every text through ``excerpt``)."""
    try:
        data = response.json()
    except ValueError:
        return excerpt(response.text) or response.reason_phrase
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return excerpt(error["message"])
        for candidate in (error, data.get("message"), data.get("detail")):
            if isinstance(candidate, str):
                return excerpt(candidate)
    return excerpt(response.text)


def secret_forms(key: str | None, header_values: list[str]) -> tuple[str, ...]:
    """The key and header values long enough to be secrets, as sent and JSON-escaped."""
    secrets = [v for v in header_values if len(v) >= 8]
    if key:
        secrets.append(key)
    forms = {form for s in secrets for form in (s, json.dumps(s)[1:-1])}
    return tuple(sorted(forms, key=len, reverse=True))


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (seconds or HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
