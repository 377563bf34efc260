"""Every ``--hgd-*`` option and ``hgd_*`` ini key, resolved once into frozen settings."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pytest_hgd.core.settings import (
    DEFAULT_CONCURRENCY,
    DEFAULT_HTTP_WORKERS,
    DEFAULT_MAX_REPLY_CHARS,
    DEFAULT_TIMEOUT,
    HTTPOptions,
    JudgeSettings,
    Settings,
)
from pytest_hgd.core.shards import parse_shard
from pytest_hgd.plugin.ini_lists import headers_from_ini, parse_prices
from pytest_hgd.plugin.option_parsing import (
    Resolver,
    fraction,
    non_negative,
    positive_float,
    positive_int,
    samples_count,
    samples_or_auto,
    unit,
)
from pytest_hgd.plugin.search_options import add_search_options, resolve_search

# (flag, ini key or "", help)
_VALUE_OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("--hgd-agent", "hgd_agent", "agent: package.module:function, or openai:MODEL"),
    ("--hgd-candidate", "", "candidate prompt file (default: ini hgd_prompt)"),
    ("--hgd-baseline", "hgd_baseline", "baseline prompt: PATH or git:REV:PATH"),
    (
        "--hgd-timeout",
        "hgd_timeout",
        f"seconds per agent call (default {DEFAULT_TIMEOUT:g})",
    ),
    (
        "--hgd-concurrency",
        "hgd_concurrency",
        f"agent calls in flight at once (default {DEFAULT_CONCURRENCY})",
    ),
    (
        "--hgd-samples",
        "hgd_samples",
        "replies per pair and prompt, or auto: a screen of 2, more only where the outcome is"
        " open (default 1)",
    ),
    (
        "--hgd-max-samples",
        "hgd_max_samples",
        "K of --hgd-samples=auto: the most replies per pair and prompt (default 10)",
    ),
    (
        "--hgd-screen-samples",
        "hgd_screen_samples",
        "--hgd-samples=auto: samples of a pair's screen under each prompt (default 2; 3"
        " catches a single sharp drop about as often as fixed K = 10, for 1.1 to 1.5 more"
        " calls a pair)",
    ),
    (
        "--hgd-rate",
        "hgd_rate",
        "HTTP agent: requests a second at most (default none; it also slows down on 429)",
    ),
    ("--hgd-shard", "", "run only shard I of N (I/N, 1-based; a stable hash of each pair id)"),
    (
        "--hgd-partial",
        "",
        "write this shard's evidence as JSON to PATH instead of deciding (then: hgd merge)",
    ),
    (
        "--hgd-max-calls",
        "hgd_max_calls",
        "hard budget of new agent calls in the run; pairs it cannot pay for are undecided",
    ),
    (
        "--hgd-max-reply-chars",
        "hgd_max_reply_chars",
        f"longest reply accepted, in characters (default {DEFAULT_MAX_REPLY_CHARS})",
    ),
    ("--hgd-alpha", "hgd_alpha", "significance level of the sampled gate (default 0.05)"),
    ("--hgd-ledger", "hgd_ledger", "ledger of gate runs, JSON Lines (default .hgd/ledger.jsonl)"),
    ("--hgd-probe", "hgd_probe", "run M mutants of the candidate through the gate (default 0)"),
    ("--hgd-seed", "hgd_seed", "seed of the probe's mutations (default 0)"),
    ("--hgd-max-pressure", "hgd_max_pressure", "fail the gate when pressure is above X"),
    ("--hgd-report", "", "write the gate report as JSON to this path"),
    ("--hgd-markdown", "", "write the gate summary as Markdown to this path"),
    ("--hgd-html", "", "write a self-contained HTML report to this path"),
    ("--hgd-cache-dir", "hgd_cache_dir", "reply cache directory (default .hgd/cache)"),
    (
        "--hgd-base-url",
        "hgd_base_url",
        "OpenAI-compatible base URL (default https://api.openai.com/v1)",
    ),
    (
        "--hgd-http-workers",
        "hgd_http_workers",
        "processes making the HTTP agent's calls (default 1; 0: the pytest process)",
    ),
)


def add_options(parser: pytest.Parser) -> None:
    # long: a flat list of the options, one call each, in the README table's order
    group = parser.getgroup("hgd", "pytest-hgd: the regression gate for agent prompts")
    group.addoption(
        "--hgd",
        action="store_true",
        default=False,
        help="collect *.hgd.yaml pair files and run the prompt gate",
    )
    for flag, ini, text in _VALUE_OPTIONS:
        group.addoption(flag, action="store", default=None, metavar="VALUE", help=text)
        if ini:
            parser.addini(ini, text, type="string", default=None)
    group.addoption(
        "--hgd-strict",
        action="store_true",
        default=None,
        help="still-failing pairs fail instead of xfail",
    )
    group.addoption(
        "--hgd-allow-undecided",
        action="store_true",
        default=None,
        help="undecided pairs (--hgd-max-calls) skip instead of failing the gate",
    )
    group.addoption(
        "--hgd-rollout",
        action="store_true",
        default=None,
        help="also replay every conversation with the agent's own replies (rollout items)",
    )
    blame = "name the prompt change's hunks each regressed pair depends on (default: when 2-20)"
    group.addoption("--hgd-blame", action="store_true", default=None, help=blame)
    group.addoption("--hgd-no-blame", action="store_false", dest="hgd_blame", default=None)
    group.addoption(
        "--hgd-no-ledger",
        action="store_true",
        default=False,
        help="do not read or append the ledger",
    )
    group.addoption(
        "--hgd-no-cache",
        action="store_true",
        default=False,
        help="neither read nor write the reply cache",
    )
    group.addoption(
        "--hgd-refresh-cache",
        action="store_true",
        default=False,
        help="call the agent for every reply and overwrite the cache",
    )
    group.addoption(
        "--hgd-clear-cache",
        action="store_true",
        default=False,
        help="delete every cached reply before the run (says how many)",
    )
    add_search_options(parser, group)
    parser.addini(
        "hgd_prompt", "candidate prompt file for local iteration", type="string", default=None
    )
    parser.addini("hgd_rollout", "roll out every conversation", type="bool", default=False)
    parser.addini(
        "hgd_allow_undecided", "undecided pairs do not fail the gate", type="bool", default=False
    )
    parser.addini(
        "hgd_strict", "still-failing pairs fail instead of xfail", type="bool", default=False
    )
    parser.addini(
        "hgd_agent_version", "bump to invalidate cached replies", type="string", default=None
    )
    parser.addini(
        "hgd_api_key_env",
        "env var holding the HTTP agent's API key (default OPENAI_API_KEY; empty: none)",
        type="string",
        default=None,
    )
    parser.addini("hgd_temperature", "HTTP agent temperature", type="string", default=None)
    parser.addini("hgd_max_tokens", "HTTP agent max_tokens", type="string", default=None)
    parser.addini("hgd_max_retries", "HTTP agent retries (default 4)", type="string", default=None)
    parser.addini("hgd_pressure_warn", "pressure that warns (default 0.7)", type="string")
    parser.addini(
        "hgd_pressure_window", "ledger runs the pressure looks at (default 20)", type="string"
    )
    parser.addini("hgd_judge_model", "model of the `judge:` check", type="string")
    parser.addini(
        "hgd_judge_base_url", "judge's OpenAI-compatible URL (default hgd_base_url)", type="string"
    )
    parser.addini(
        "hgd_judge_api_key_env",
        "env var of the judge's key (default hgd_api_key_env)",
        type="string",
    )
    parser.addini(
        "hgd_headers", "extra HTTP headers, one 'Name: value' a line", type="linelist", default=[]
    )
    parser.addini(
        "hgd_prices",
        "prices per million tokens, one 'MODEL: INPUT OUTPUT' a line (MODEL * for any)",
        type="linelist",
        default=[],
    )


def resolve(config: pytest.Config) -> Settings:
    # long: one line per setting, read and checked in the options table's order
    """Read and check every option; a bad value is a UsageError naming it."""
    r = Resolver(config)
    one: int | None = 1
    samples = r.parsed(
        "--hgd-samples",
        "hgd_samples",
        samples_or_auto,
        one,
        "auto or a whole number from 1 to 1000",
    )
    max_samples = r.parsed(
        "--hgd-max-samples", "hgd_max_samples", samples_count, 10, "a whole number from 1 to 1000"
    )
    screen = r.parsed(
        "--hgd-screen-samples",
        "hgd_screen_samples",
        samples_count,
        2,
        "a whole number from 1 to 1000",
    )
    if samples is None and max_samples <= screen:
        raise pytest.UsageError(
            f"--hgd-max-samples={max_samples} must be above --hgd-screen-samples={screen} with "
            "--hgd-samples=auto: a pair that goes on past its screen draws up to K samples"
        )
    agent, _, _ = r.raw("--hgd-agent", "hgd_agent")
    if not agent:
        raise pytest.UsageError(
            "pytest --hgd needs an agent: --hgd-agent=package.module:function "
            "(or openai:MODEL), or `hgd_agent = ...` in the ini file"
        )
    candidate, candidate_base, _ = r.raw("--hgd-candidate", "hgd_prompt")
    if not candidate:
        raise pytest.UsageError(
            "pytest --hgd needs a candidate prompt: --hgd-candidate=PATH, "
            "or `hgd_prompt = PATH` in the ini file"
        )
    baseline, baseline_base, _ = r.raw("--hgd-baseline", "hgd_baseline")
    no_cache = bool(config.getoption("hgd_no_cache"))
    strict = config.getoption("hgd_strict")
    api_key_env, _, _ = r.raw("", "hgd_api_key_env")
    base_url = r.raw("--hgd-base-url", "hgd_base_url")[0] or "https://api.openai.com/v1"
    key_env = (api_key_env if api_key_env is not None else "OPENAI_API_KEY") or None
    judge_key_env = r.raw("", "hgd_judge_api_key_env")[0]
    timeout = r.parsed(
        "--hgd-timeout", "hgd_timeout", positive_float, DEFAULT_TIMEOUT, "a number of seconds > 0"
    )
    settings = Settings(
        agent=agent,
        candidate=candidate,
        candidate_base=candidate_base,
        baseline=baseline,
        baseline_base=baseline_base,
        strict=bool(strict) if strict is not None else bool(config.getini("hgd_strict")),
        timeout=timeout,
        concurrency=r.parsed(
            "--hgd-concurrency",
            "hgd_concurrency",
            positive_int,
            DEFAULT_CONCURRENCY,
            "a whole number > 0",
        ),
        agent_version=r.raw("", "hgd_agent_version")[0],
        max_reply_chars=r.parsed(
            "--hgd-max-reply-chars",
            "hgd_max_reply_chars",
            positive_int,
            DEFAULT_MAX_REPLY_CHARS,
            "a whole number of characters > 0",
        ),
        cache_dir=r.path("--hgd-cache-dir", "hgd_cache_dir", ".hgd/cache") or Path(),
        read_cache=not no_cache and not config.getoption("hgd_refresh_cache"),
        write_cache=not no_cache,
        clear_cache=bool(config.getoption("hgd_clear_cache")),
        report=r.path("--hgd-report", "", None),
        markdown=r.path("--hgd-markdown", "", None),
        html=r.path("--hgd-html", "", None),
        rollout=bool(config.getoption("hgd_rollout") or config.getini("hgd_rollout")),
        judge=JudgeSettings(
            model=r.raw("", "hgd_judge_model")[0],
            base_url=r.raw("", "hgd_judge_base_url")[0] or base_url,
            api_key_env=key_env if judge_key_env is None else (judge_key_env or None),
            timeout=timeout,
        ),
        samples=samples if samples is not None else max_samples,
        auto_samples=samples is None,
        screen_samples=screen,
        shard=r.parsed("--hgd-shard", "", parse_shard, None, "I/N with 1 <= I <= N, e.g. 2/4"),
        partial=r.path("--hgd-partial", "", None),
        max_calls=r.parsed(
            "--hgd-max-calls", "hgd_max_calls", non_negative, None, "a whole number >= 0"
        ),
        allow_undecided=bool(
            config.getoption("hgd_allow_undecided") or config.getini("hgd_allow_undecided")
        ),
        prices=parse_prices(config.getini("hgd_prices")),
        alpha=r.parsed("--hgd-alpha", "hgd_alpha", fraction, 0.05, "a number in (0, 1)"),
        ledger=None
        if config.getoption("hgd_no_ledger")
        else r.path("--hgd-ledger", "hgd_ledger", ".hgd/ledger.jsonl"),
        probe=r.parsed("--hgd-probe", "hgd_probe", non_negative, 0, "a whole number >= 0"),
        seed=r.parsed("--hgd-seed", "hgd_seed", int, 0, "a whole number"),
        blame=config.getoption("hgd_blame"),
        pressure_warn=r.parsed("", "hgd_pressure_warn", unit, 0.7, "a number in [0, 1]"),
        max_pressure=r.parsed(
            "--hgd-max-pressure", "hgd_max_pressure", unit, None, "a number in [0, 1]"
        ),
        pressure_window=r.parsed("", "hgd_pressure_window", positive_int, 20, "a whole number > 0"),
        http=HTTPOptions(
            base_url=base_url,
            api_key_env=key_env,
            temperature=r.parsed("", "hgd_temperature", float, None, "a number"),
            max_tokens=r.parsed("", "hgd_max_tokens", positive_int, None, "a whole number > 0"),
            headers=headers_from_ini(list(config.getini("hgd_headers"))),
            max_retries=r.parsed("", "hgd_max_retries", int, 4, "a whole number"),
            rate=r.parsed("--hgd-rate", "hgd_rate", positive_float, None, "a number > 0"),
            workers=r.parsed(
                "--hgd-http-workers",
                "hgd_http_workers",
                non_negative,
                DEFAULT_HTTP_WORKERS,
                "a whole number >= 0",
            ),
        ),
    )
    return dataclasses.replace(settings, search=resolve_search(r, settings.http))
