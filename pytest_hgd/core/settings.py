"""What ``pytest --hgd`` was asked to do, as plain frozen dataclasses (no pytest here).

``options.py`` reads the command line and the ini file into these; everything else (the
run, the agents, their worker processes) takes them as plain values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_TIMEOUT = 60.0
DEFAULT_CONCURRENCY = 16
DEFAULT_MAX_REPLY_CHARS = 1_000_000  # a reply longer than this is an error, not a reply
# The worker's pipes need asyncio's POSIX pipe transports; elsewhere calls stay in-process.
DEFAULT_HTTP_WORKERS = 1 if os.name == "posix" else 0


@dataclass(frozen=True)
class JudgeSettings:
    """Where the `judge:` check asks its model (no secret: the key's env var name)."""

    model: str | None
    base_url: str
    api_key_env: str | None
    timeout: float


def is_http_spec(spec: str) -> bool:
    """True for the built-in HTTP agent's ``openai:MODEL``, false for ``module:function``."""
    return spec.startswith("openai:")


@dataclass(frozen=True)
class HTTPOptions:
    base_url: str
    api_key_env: str | None
    temperature: float | None
    max_tokens: int | None
    headers: tuple[tuple[str, str], ...]
    max_retries: int
    workers: int = 1
    rate: float | None = None  # --hgd-rate: requests a second at most


@dataclass(frozen=True)
class ProposerOptions:
    """The LLM proposer of candidate search (ini ``hgd_proposer = openai:MODEL``)."""

    model: str
    base_url: str
    api_key_env: str | None
    headers: tuple[tuple[str, str], ...]  # the agent's ini hgd_headers, on its own server only
    template: str | None  # the text of ini hgd_proposer_template's file; None: the default


@dataclass(frozen=True)
class SearchOptions:
    """``--hgd-search=N`` and its settings (``run/search.py``)."""

    count: int  # N: candidates to evaluate at most
    policy: str  # strict | budget:R (``core.search.parse_policy``)
    holdout: float  # fraction of the conversation files held out
    out: Path  # --hgd-search-out: best.txt and log.jsonl
    proposer: ProposerOptions | None = None


@dataclass(frozen=True)
class Settings:
    """What ``pytest --hgd`` was asked to do. Paths are absolute; prompt specs stay as given
    with the directory they are relative to."""

    agent: str
    candidate: str
    candidate_base: Path
    baseline: str | None
    baseline_base: Path
    strict: bool
    timeout: float
    concurrency: int
    agent_version: str | None
    cache_dir: Path
    read_cache: bool
    write_cache: bool
    clear_cache: bool
    report: Path | None
    markdown: Path | None
    http: HTTPOptions
    samples: int = 1  # K: with auto_samples, the most a screened pair draws
    auto_samples: bool = False  # --hgd-samples=auto: the screened design (core.screen)
    screen_samples: int = 2  # candidate samples of a screen (core.screen)
    shard: tuple[int, int] | None = None  # --hgd-shard=I/N: (I, N)
    partial: Path | None = None  # --hgd-partial: write this shard's evidence, not a verdict
    max_calls: int | None = None  # --hgd-max-calls: new agent calls the run may make
    allow_undecided: bool = False  # undecided pairs skip instead of failing the gate
    prices: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # per M tokens
    alpha: float = 0.05
    html: Path | None = None
    rollout: bool = False
    judge: JudgeSettings = field(
        default_factory=lambda: JudgeSettings(None, "https://api.openai.com/v1", None, 60.0)
    )
    ledger: Path | None = None
    probe: int = 0
    blame: bool | None = None  # --hgd-blame / --hgd-no-blame; None: on for 2 to 20 hunks
    seed: int = 0
    pressure_warn: float = 0.7
    max_pressure: float | None = None
    pressure_window: int = 20
    max_reply_chars: int = DEFAULT_MAX_REPLY_CHARS
    search: SearchOptions | None = None  # --hgd-search=N
