"""The LLM proposer of candidate search: an OpenAI-compatible model rewrites the prompt.

`LLMProposer.propose` shows the model the prompt and a sample of the pairs it fails (drawn
with the caller's `random.Random`, so a seed gives the same sample), with the instruction
template of `proposer_template` (replaceable by a file), in ONE chat-completions call,
and returns up to n rewritten prompts. Retries 408/409/429, 5xx and connection errors a
couple of times, honouring `Retry-After` up to a few seconds. Every error names the model
and the base URL and holds no secret: the API key and the header values are masked
(`core.redact`) in whatever the server echoes back. No pytest here.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from pytest_hgd.agents.http_agent import (
    error_text,
    excerpt,
    retry_after_seconds,
    secret_forms,
)
from pytest_hgd.agents.proposer_template import (
    DEFAULT_TEMPLATE,
    ProposerTemplateError,
    parse_prompts,
    render_failures,
    render_request,
    template_problem,
)
from pytest_hgd.core.errors import AgentError
from pytest_hgd.core.model import Usage, usage_of
from pytest_hgd.core.redact import Redactor, secrets_from

__all__ = [
    "DEFAULT_TEMPLATE",
    "LLMProposer",
    "ProposerError",
    "ProposerSettings",
    "ProposerTemplateError",
]

_RETRY_STATUSES = frozenset({408, 409, 429})


class ProposerError(AgentError):
    """The proposer model could not be asked, or answered no usable prompts. The message
    names the model and the base URL and never holds a secret."""


@dataclass(frozen=True, repr=False)
class ProposerSettings:
    """How to reach the proposer model and what to show it. Holds no secret: the API key is
    named by its environment variable."""

    model: str
    base_url: str = "https://api.openai.com/v1"
    api_key_env: str | None = "OPENAI_API_KEY"
    timeout: float = 120.0  # one call writes several whole prompts
    temperature: float | None = 1.0  # varied rewrites; None: the server's default
    max_tokens: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    template: str = DEFAULT_TEMPLATE
    max_failures: int = 8  # failures shown per call, sampled with the caller's rng
    max_chars: int = 400  # per shown text (a message, a reply, a check's message)
    max_messages: int = 6  # the last messages of each shown conversation
    max_retries: int = 2
    retry_after_max: float = 5.0  # a longer Retry-After is cut to this
    backoff_base: float = 0.5

    def __post_init__(self) -> None:
        problems = []
        if not self.model:
            problems.append("model must not be empty")
        if not self.base_url.startswith(("http://", "https://")):
            problems.append(f"base_url must start with http:// or https://, got {self.base_url!r}")
        if not self.timeout > 0:
            problems.append(f"timeout must be > 0, got {self.timeout!r}")
        if self.max_tokens is not None and self.max_tokens < 1:
            problems.append(f"max_tokens must be >= 1, got {self.max_tokens!r}")
        for name in ("max_failures", "max_chars", "max_messages"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.max_retries < 0 or min(self.retry_after_max, self.backoff_base) < 0:
            problems.append("max_retries, retry_after_max and backoff_base must be >= 0")
        template = template_problem(self.template)
        if template is not None:
            problems.append(f"template: {template}")
        if problems:
            raise ValueError("; ".join(problems))

    def __repr__(self) -> str:
        names = sorted(name for name, _ in self.headers)
        return (
            f"ProposerSettings(model={self.model!r}, base_url={self.base_url!r}, "
            f"api_key_env={self.api_key_env!r}, temperature={self.temperature!r}, "
            f"max_tokens={self.max_tokens!r}, headers={names!r} (values hidden), "
            f"template=<{len(self.template)} chars, sha256 {template_digest(self.template)}>, "
            f"max_failures={self.max_failures!r}, timeout={self.timeout!r})"
        )


def template_digest(template: str) -> str:
    return hashlib.sha256(template.encode("utf-8")).hexdigest()[:12]


class LLMProposer:
    """Asks an OpenAI-compatible model for rewrites of a prompt; one call per `propose`.

    ``usage`` is the (input, output) tokens of every call so far that reported them,
    ``last_usage`` those of the last call (None when it reported none), ``calls`` how
    many requests were sent (retries included)."""

    def __init__(
        self,
        settings: ProposerSettings,
        transport: httpx.BaseTransport | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        source = os.environ if env is None else env
        key = source.get(settings.api_key_env) if settings.api_key_env else None
        self._settings = settings
        self._key = key or None
        self._transport = transport
        self._url = settings.base_url.rstrip("/") + "/chat/completions"
        secrets = [
            *secret_forms(self._key, [value for _, value in settings.headers]),
            *secrets_from(source, [settings.api_key_env], settings.headers),
        ]
        self._redactor = Redactor(secrets)
        self._client: httpx.Client | None = None
        self._jitter = random.Random()  # never the caller's rng: retries must not move it
        self.usage: Usage = (0, 0)
        self.last_usage: Usage | None = None
        self.calls = 0

    @property
    def settings(self) -> ProposerSettings:
        return self._settings

    @property
    def identity(self) -> dict[str, object]:
        """What proposed (for the search log): no secret, only names and a template hash."""
        s = self._settings
        return {
            "kind": "openai",
            "model": s.model,
            "base_url": s.base_url.rstrip("/"),
            "temperature": s.temperature,
            "max_tokens": s.max_tokens,
            "headers": sorted(name for name, _ in s.headers),
            "template": template_digest(s.template),
        }

    def __repr__(self) -> str:
        s = self._settings
        key = "set" if self._key else "unset"
        return f"LLMProposer(model={s.model!r}, base_url={s.base_url!r}, api_key={key})"

    def __enter__(self) -> LLMProposer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool; a later `propose` opens a new one."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def sample(
        self, failures: Sequence[Mapping[str, Any]], rng: random.Random
    ) -> list[Mapping[str, Any]]:
        """Up to ``max_failures`` of ``failures``, drawn with ``rng``, in their given order."""
        limit = self._settings.max_failures
        if len(failures) <= limit:
            return list(failures)
        return [failures[i] for i in sorted(rng.sample(range(len(failures)), limit))]

    def request_text(
        self, prompt: str, failures: Sequence[Mapping[str, Any]], rng: random.Random, n: int
    ) -> str:
        """The instruction `propose` sends: the template filled with a sample of failures."""
        s = self._settings
        shown = render_failures(self.sample(failures, rng), s.max_chars, s.max_messages)
        return render_request(s.template, prompt, shown, n)

    def propose(
        self, prompt: str, failures: Sequence[Mapping[str, Any]], rng: random.Random, n: int
    ) -> list[str]:
        """Up to ``n`` rewrites of ``prompt`` (stripped, distinct, none equal to ``prompt``),
        from one call. No call, and no candidate, when ``n`` < 1 or nothing fails."""
        if n < 1 or not failures:
            return []
        s = self._settings
        body: dict[str, Any] = {
            "model": s.model,
            "messages": [{"role": "user", "content": self.request_text(prompt, failures, rng, n)}],
        }
        if s.temperature is not None:
            body["temperature"] = s.temperature
        if s.max_tokens is not None:
            body["max_tokens"] = s.max_tokens
        self.last_usage = None
        content = self._post_with_retries(body)
        try:
            found = parse_prompts(content)
        except ValueError:
            raise self.error(f"the reply is not JSON: {self._excerpt(content)!r}") from None
        if not found:
            raise self.error(
                'the reply has no prompts (expected {"prompts": ["...", ...]}): '
                f"{self._excerpt(content)!r}"
            )
        kept: list[str] = []
        for candidate in found:
            if candidate != prompt.strip() and candidate not in kept:
                kept.append(candidate)
        return kept[:n]

    def error(self, problem: str) -> ProposerError:
        """A ProposerError naming the model and the base URL, every secret masked."""
        s = self._settings
        return ProposerError(self._redactor.text(f"proposer {s.model} at {s.base_url}: {problem}"))

    # -- the call ------------------------------------------------------------------------

    def _client_now(self) -> httpx.Client:
        if self._client is None:
            headers = httpx.Headers({"Accept": "application/json"})
            if self._key:
                headers["Authorization"] = f"Bearer {self._key}"
            headers.update(httpx.Headers(list(self._settings.headers)))  # replaces case-blind
            self._client = httpx.Client(
                headers=headers,
                timeout=httpx.Timeout(self._settings.timeout),
                transport=self._transport,
            )
        return self._client

    def _post_with_retries(self, body: dict[str, Any]) -> str:
        s = self._settings
        attempt = 0
        while True:
            outcome = self._attempt(body, attempt)
            if isinstance(outcome, str):
                return outcome
            problem, wait = outcome
            attempt += 1
            if attempt > s.max_retries:
                raise self.error(f"{problem} (gave up after {attempt} attempts)")
            time.sleep(wait)

    def _attempt(self, body: dict[str, Any], attempt: int) -> str | tuple[str, float]:
        """One POST: the reply's text, or (problem, seconds to wait) when worth a retry."""
        s = self._settings
        try:
            self.calls += 1
            response = self._client_now().post(self._url, json=body)
        except httpx.TimeoutException:
            raise self.error(f"timed out after {s.timeout:g} s") from None
        except httpx.TransportError as exc:
            problem = f"connection to {self._url} failed: {type(exc).__name__}: {exc}"
            return problem, self._backoff(attempt)
        status = response.status_code
        if response.is_success:
            return self._content(response)
        problem = f"HTTP {status} from {self._url}: {self._error_text(response)}"
        if status not in _RETRY_STATUSES and status < 500:
            raise self.error(problem)
        retry_after = retry_after_seconds(response.headers)
        if retry_after is None:
            return problem, self._backoff(attempt)
        return problem, min(retry_after, s.retry_after_max)

    def _backoff(self, attempt: int) -> float:
        s = self._settings
        return self._jitter.uniform(0.0, min(s.retry_after_max, s.backoff_base * 2.0**attempt))

    def _content(self, response: httpx.Response) -> str:
        try:
            data = response.json()
        except ValueError:
            raise self.error(
                f"the response (HTTP {response.status_code}) is not JSON: "
                f"{self._excerpt(response.text)!r}"
            ) from None
        self.last_usage = usage_of(data.get("usage")) if isinstance(data, dict) else None
        if self.last_usage is not None:
            self.usage = (self.usage[0] + self.last_usage[0], self.usage[1] + self.last_usage[1])
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            content = None
        if not isinstance(content, str):
            raise self.error(
                "the response has no text at choices[0].message.content: "
                f"{self._excerpt(json.dumps(data))!r}"
            )
        return content

    def _excerpt(self, text: str) -> str:
        return excerpt(text, self._redactor.text)

    def _error_text(self, response: httpx.Response) -> str:
        return error_text(response, self._excerpt)
