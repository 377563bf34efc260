"""The options of candidate search (``--hgd-search=N``) and its LLM proposer."""

from __future__ import annotations

import pytest

from pytest_hgd.agents.proposer import DEFAULT_TEMPLATE, ProposerSettings
from pytest_hgd.agents.proposer_template import ProposerTemplateError, load_template
from pytest_hgd.core.search import parse_policy
from pytest_hgd.core.settings import HTTPOptions, ProposerOptions, SearchOptions, is_http_spec
from pytest_hgd.plugin.option_parsing import Resolver, non_negative, within

# (flag, ini key or "", help)
_SEARCH_OPTIONS: tuple[tuple[str, str, str], ...] = (
    (
        "--hgd-search",
        "",
        "propose and evaluate up to N candidate prompts from the candidate; keep the best"
        " (default 0: no search)",
    ),
    (
        "--hgd-search-policy",
        "hgd_search_policy",
        "strict (no locked pair regressed; default) or budget:R (up to R, for a net gain)",
    ),
    (
        "--hgd-holdout",
        "hgd_holdout",
        "fraction of the conversation files the search holds out (default 0.2)",
    ),
    (
        "--hgd-search-out",
        "hgd_search_out",
        "directory of the search's best.txt and log.jsonl (default .hgd/search)",
    ),
)

_PROPOSER_INI: tuple[tuple[str, str], ...] = (
    ("hgd_proposer", "LLM proposer of candidate prompts: openai:MODEL (default none)"),
    ("hgd_proposer_base_url", "the proposer's OpenAI-compatible URL (default hgd_base_url)"),
    ("hgd_proposer_api_key_env", "env var of the proposer's key (default hgd_api_key_env)"),
    ("hgd_proposer_template", "file replacing the proposer's instruction template"),
)

PROPOSER_TIMEOUT = 120.0  # seconds at least: one call writes several whole prompts
holdout_fraction = within(float, lambda v: 0 <= v < 1)


def add_search_options(parser: pytest.Parser, group: pytest.OptionGroup) -> None:
    for flag, ini, text in _SEARCH_OPTIONS:
        group.addoption(flag, action="store", default=None, metavar="VALUE", help=text)
        if ini:
            parser.addini(ini, text, type="string", default=None)
    for ini, text in _PROPOSER_INI:
        parser.addini(ini, text, type="string", default=None)


def resolve_search(r: Resolver, http: HTTPOptions) -> SearchOptions | None:
    """The search's settings, None without ``--hgd-search`` (or with 0)."""
    count = r.parsed("--hgd-search", "", non_negative, 0, "a whole number >= 0")
    policy = r.parsed(
        "--hgd-search-policy", "hgd_search_policy", parse_policy, None, "strict or budget:R"
    )
    holdout = r.parsed("--hgd-holdout", "hgd_holdout", holdout_fraction, 0.2, "a number in [0, 1)")
    out = r.path("--hgd-search-out", "hgd_search_out", ".hgd/search")
    if not count:
        return None
    return SearchOptions(
        count=count,
        policy=policy.name if policy else "strict",
        holdout=holdout,
        out=out or r.rootdir / ".hgd/search",
        proposer=_proposer(r, http),
    )


def _proposer(r: Resolver, http: HTTPOptions) -> ProposerOptions | None:
    """The LLM proposer's settings, checked now (a bad template file is a usage error)."""
    spec, _, name = r.raw("", "hgd_proposer")
    if not spec:
        return None
    if not is_http_spec(spec) or not spec.partition(":")[2].strip():
        raise pytest.UsageError(
            f"{name}={spec!r}: expected openai:MODEL (an OpenAI-compatible chat model)"
        )
    key_env = r.raw("", "hgd_proposer_api_key_env")[0]
    base_url = r.raw("", "hgd_proposer_base_url")[0] or http.base_url
    template_path = r.path("", "hgd_proposer_template", None)
    try:
        template = load_template(template_path) if template_path else None
    except ProposerTemplateError as exc:
        raise pytest.UsageError(f"ini hgd_proposer_template: {exc}") from None
    options = ProposerOptions(
        model=spec.partition(":")[2].strip(),
        base_url=base_url,
        api_key_env=http.api_key_env if key_env is None else (key_env or None),
        headers=http.headers if base_url == http.base_url else (),  # never to another host
        template=template,
    )
    try:
        proposer_settings(options, timeout=1.0)
    except ValueError as exc:
        raise pytest.UsageError(f"ini hgd_proposer: {exc}") from None
    return options


def proposer_settings(options: ProposerOptions, timeout: float) -> ProposerSettings:
    """The LLM proposer's settings from the options (``ValueError`` for bad ones)."""
    return ProposerSettings(
        model=options.model,
        base_url=options.base_url,
        api_key_env=options.api_key_env,
        headers=options.headers,
        template=options.template or DEFAULT_TEMPLATE,
        timeout=max(timeout, PROPOSER_TIMEOUT),
    )
