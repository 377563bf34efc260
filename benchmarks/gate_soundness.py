"""Soundness of the sampled gate: false blocks on no-op changes, detection of real drops.

Synthetic stochastic pairs each pass with a known probability. Every simulated gate run draws
the pass counts under both prompts and is decided by ``pytest_hgd.core.stats.decide`` (the plugin's
own decision code); the gate blocks when any pair is ``regressed``. K = 1 is the strict
one-shot gate (same function: one run per side follows the one-shot rule).

The ``e2e`` source runs each scenario through the real plugin: a fresh ``pytest --hgd`` child
per gate run, in a temporary suite of 200 pairs in 10 real pair files (each pair checks
``contains: "PASS"``), a baseline and a candidate prompt file, and a real Python callable agent that replies "PASS" with the pair's
known probability under that prompt. Its draws are a hash of (run seed, prompt, message, call
number), so every run is reproducible. For each run, ``decide()`` is fed the pass counts the
plugin reports and must reproduce every pair's delta and p-values exactly, and the counts must
be the agent's known draws. The e2e block rate should agree with the simulated one (their
Wilson 95 % intervals overlap).

Further sections, simulated with the plugin's own functions: (c) ten ``samples: 1`` pairs in
a sampled run, with the rule before issue 18 (one-shot pairs outside the family) and now;
(d) the exact detection rate at K = 3 for 200 to 2000 pairs; (e) one cached baseline reused
run after run: the no-op block rate conditional on each of 30 caches, reused as is and with
the pool growth and confirmation of ``stats.decide_pooled``, at each of 5 consecutive runs
(mean and worst over the caches), and detection when the baseline comes from a cache.

    python benchmarks/gate_soundness.py                # simulation, 100-150 s on 2 cores
    python benchmarks/gate_soundness.py --cache-draws 0  # without (e): ~25 s
    python benchmarks/gate_soundness.py --sequential     # and (f), --hgd-samples=auto: ~15 min

With ``--e2e``, section (e) also runs ``--e2e-caches`` caches (default 3) through the real
plugin with its reply cache on: each reused run's report must be reproduced exactly by
``decide_pooled`` from the pools before and after it.
    python benchmarks/gate_soundness.py --e2e          # and 10 real gate runs per row, minutes
    python benchmarks/gate_soundness.py --runs 200 --e2e --e2e-runs 20 --jobs 1

The e2e part is off by default: its 120 pytest children (4 scenarios, K = 1, 5, 10) take
about 1.8 s of CPU each, about 220 s of CPU in all (7.6 min wall, measured on 2 shared cores). Exit status 0 when every target is
met and decide() reproduced every e2e run, 1 otherwise; an e2e rate outside the simulated
interval is flagged (FLAG, with the blocking runs' pairs) but does not change it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from random import Random
from typing import Any

import pytest_hgd
from pytest_hgd.core.stats import (
    DEFAULT_ALPHA,
    MAX_POOL,
    POOL_GROWTH,
    PassCounts,
    close,
    decide,
    decide_pooled,
    fisher_one_sided_less,
    wilson_interval,
)

SAMPLE_SIZES = (3, 5, 10, 20)
PAIRS = 200


@dataclass(frozen=True)
class Scenario:
    """A suite of pairs with known pass probabilities under each prompt."""

    name: str
    description: str
    baseline: tuple[float, ...]
    candidate: tuple[float, ...]
    drops: bool  # True when some pair really got worse (blocking is right)


def _noop(rate: float) -> Scenario:
    return Scenario(
        f"noop-{rate:g}",
        f"(a) no-op change, {PAIRS} locked pairs at p = {rate:g}",
        (rate,) * PAIRS,
        (rate,) * PAIRS,
        drops=False,
    )


SCENARIOS = (
    _noop(0.97),
    _noop(0.8),
    _noop(0.5),
    Scenario(
        "drop-5",
        f"(b) 5 of {PAIRS} pairs drop from p = 0.95 to 0.30",
        (0.95,) * PAIRS,
        (0.30,) * 5 + (0.95,) * (PAIRS - 5),
        drops=True,
    ),
)

# (scenario kind, K) -> block-rate target: at most (no-op) or at least (real drop).
TARGETS: dict[tuple[bool, int], float] = {
    (False, 5): 0.05,
    (False, 10): 0.05,
    (True, 5): 0.60,
    (True, 10): 0.95,
}


@dataclass(frozen=True)
class Row:
    """Block count of one gate on one scenario."""

    scenario: str
    samples: int  # K; 1 is the strict one-shot gate
    runs: int
    blocks: int
    source: str  # "simulation" or "e2e"
    exact: float | None = None  # mean P(block | margins) under a no-op change, if known
    agreed: int | None = None  # e2e: runs whose deltas and counts decide() reproduced
    problems: tuple[str, ...] = ()  # e2e: what did not agree, one line per run
    blocked_by: tuple[str, ...] = ()  # e2e: each blocking run's regressed pairs and counts

    @property
    def rate(self) -> float:
        return self.blocks / self.runs


def _binomial_cdf(samples: int, rate: float) -> list[float]:
    """P(passes <= k) for k = 0..samples, for inverse-CDF sampling."""
    cdf = list(
        accumulate(
            math.comb(samples, k) * rate**k * (1.0 - rate) ** (samples - k)
            for k in range(samples + 1)
        )
    )
    cdf[-1] = 1.0
    return cdf


def simulate(scenario: Scenario, samples: int, runs: int, seed: int, alpha: float) -> Row:
    """Block count over ``runs`` simulated gate runs of ``scenario`` at K = ``samples``."""
    rng = Random(f"{seed}/{scenario.name}/{samples}")
    base_cdfs = [_binomial_cdf(samples, p) for p in scenario.baseline]
    cand_cdfs = [_binomial_cdf(samples, p) for p in scenario.candidate]
    blocks = 0
    exact = 0.0
    for _ in range(runs):
        pairs = [
            (
                PassCounts(bisect_left(base_cdf, rng.random()), samples),
                PassCounts(bisect_left(cand_cdf, rng.random()), samples),
            )
            for base_cdf, cand_cdf in zip(base_cdfs, cand_cdfs, strict=True)
        ]
        decisions = decide(pairs, alpha)
        if any(d.delta == "regressed" for d in decisions):
            blocks += 1
        if not scenario.drops and samples > 1:
            exact += _null_block_probability(pairs, min(d.threshold for d in decisions))
    null_rate = None if scenario.drops or samples == 1 else exact / runs
    return Row(scenario.name, samples, runs, blocks, "simulation", null_rate)


def _null_block_probability(pairs: Sequence[tuple[PassCounts, PassCounts]], level: float) -> float:
    """P(some pair's p_regress <= level | every pair's margins) when nothing changed.

    Given its margins a pair's p-value takes finitely many values, so under the null
    P(p <= level) is the largest of them not above ``level``; pairs are independent.
    ``level`` is the first step of decide()'s step-down, the only one a no-op run can reach.
    """
    margins = Counter((c.runs, b.runs, c.passes + b.passes) for b, c in pairs)
    survive = 1.0
    for (cand_runs, base_runs, total), count in margins.items():
        attainable = (
            fisher_one_sided_less(PassCounts(x, cand_runs), PassCounts(total - x, base_runs))
            for x in range(max(0, total - base_runs), min(cand_runs, total) + 1)
        )
        size = max((p for p in attainable if p <= level), default=0.0)
        survive *= (1.0 - size) ** count
    return 1.0 - survive


def simulation_rows(runs: int, seed: int, alpha: float, jobs: int) -> list[Row]:
    """One-shot and sampled rows for every scenario, spread over ``jobs`` processes."""
    tasks = [(s, k) for s in SCENARIOS for k in (1, *SAMPLE_SIZES)]
    if jobs <= 1:
        return [simulate(s, k, runs, seed, alpha) for s, k in tasks]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(simulate, s, k, runs, seed, alpha) for s, k in tasks]
        return [f.result() for f in futures]


# -- (c) one-shot pairs in a sampled run, (d) the power of K = 3 -------------------------

ONE_SHOT_PAIRS = 10
ONE_SHOT_RATE = 0.97


def one_shot_pairs_rows(
    runs: int, seed: int, alpha: float, samples: int = 10
) -> tuple[list[str], bool]:
    """No-op runs of 190 pairs at K = ``samples`` and 10 pairs with ``samples: 1``, p = 0.97:
    block rate with the one-shot pairs outside the family (the rule before issue 18) and
    inside it (now), on the same draws; and whether the rate now is at most ``alpha``."""
    rng = Random(f"{seed}/one-shot-pairs/{samples}")
    sampled = _binomial_cdf(samples, ONE_SHOT_RATE)
    single = _binomial_cdf(1, ONE_SHOT_RATE)
    before = after = 0
    for _ in range(runs):
        pairs = [
            (
                PassCounts(bisect_left(sampled, rng.random()), samples),
                PassCounts(bisect_left(sampled, rng.random()), samples),
            )
            for _ in range(PAIRS - ONE_SHOT_PAIRS)
        ]
        pairs += [
            (
                PassCounts(bisect_left(single, rng.random()), 1),
                PassCounts(bisect_left(single, rng.random()), 1),
            )
            for _ in range(ONE_SHOT_PAIRS)
        ]
        before += any(d.delta == "regressed" for d in decide(pairs, alpha, one_shot=True))
        after += any(d.delta == "regressed" for d in decide(pairs, alpha))
    alone = 1.0 - (1.0 - ONE_SHOT_RATE * (1.0 - ONE_SHOT_RATE)) ** ONE_SHOT_PAIRS
    lines = [
        f"(c) one-shot pairs in a sampled run: {PAIRS - ONE_SHOT_PAIRS} pairs at K = {samples} "
        f"and {ONE_SHOT_PAIRS} with samples: 1, all p = {ONE_SHOT_RATE:g}, no-op change",
        f"{'rule':<44} {'runs':>5} {'blocked':>9} {'95 % CI':>15}",
    ]
    for name, blocks in (
        ("one-shot rule outside the family (before)", before),
        ("every pair in one family (now)", after),
    ):
        low, high = wilson_interval(blocks, runs)
        lines.append(
            f"{name:<44} {runs:>5} {_percent(blocks / runs):>9} {_interval(low, high):>15}"
        )
    lines.append(
        f"the {ONE_SHOT_PAIRS} one-shot pairs alone, outside the family: "
        f"1 - (1 - p(1 - p))^{ONE_SHOT_PAIRS} = {_percent(alone).strip()}"
    )
    met = after / runs <= alpha
    lines.append(f"target: now <= {_percent(alpha).strip()}: {'met' if met else 'NOT met'}")
    return lines, met


def k3_detection(pairs: int, drops: int = 5, before: float = 0.95, after: float = 0.30) -> float:
    """Exact chance that a K = 3 run blocks when ``drops`` of ``pairs`` fall from ``before``
    to ``after`` (the rest stay at ``before``).

    At K = 3 the only attainable p-value <= 0.05 is 1/20, that of 3/3 -> 0/3, and only tables
    with 3 passes in 6 runs can reach it; each costs 1/20 of the budget, so one is rejected
    only when it is the one such table in the run. P(block) = sum over pairs i of
    P(i is 3/3 -> 0/3) * prod over j != i of P(j has no 3 passes in 6).
    """

    def three_of_six(base: float, cand: float) -> float:
        return sum(
            math.comb(3, x) * cand**x * (1 - cand) ** (3 - x)
            * math.comb(3, 3 - x) * base ** (3 - x) * (1 - base) ** x
            for x in range(4)
        )  # fmt: skip

    rates = [(before, after)] * drops + [(before, before)] * (pairs - drops)
    free = [1.0 - three_of_six(b, c) for b, c in rates]
    total = 0.0
    for i, (base, cand) in enumerate(rates):
        others = math.prod(free[:i]) * math.prod(free[i + 1 :])
        total += base**3 * (1.0 - cand) ** 3 * others
    return total


def k3_rows() -> list[str]:
    lines = ["(d) power at K = 3: 5 pairs drop from p = 0.95 to 0.30, the rest stay at 0.95"]
    for pairs in (200, 500, 1000, 2000):
        lines.append(f"  {pairs:>5} pairs: detection {_percent(k3_detection(pairs))} (exact)")
    return lines


# -- (e) one cached baseline, reused run after run -----------------------------------------

CACHES = 30
CACHE_RUNS = 5
CACHE_SAMPLES = 10
CACHE_MIX = (2.0, 0.5)  # Beta(a, b) of the pairs' pass rates
CACHE_TARGET = (0.05, 0.08)  # by the last run: mean and worst over the caches


@dataclass(frozen=True)
class CacheRow:
    """Block rates conditional on each of ``CACHES`` caches, at one run of their use."""

    rule: str
    run: int  # 1 = the first run that reuses the cache
    rates: tuple[float, ...]  # one per cache
    fresh: float  # mean fresh baseline samples drawn per run (pool growth)

    @property
    def mean(self) -> float:
        return math.fsum(self.rates) / len(self.rates)

    @property
    def worst(self) -> float:
        return max(self.rates)


def _cache_run(
    rng: Random,
    cand_cdfs: Sequence[list[float]],
    grow_cdfs: Sequence[list[float]],
    pool: list[tuple[int, int]],
    alpha: float,
    grow: bool,
    estimate: bool,
) -> tuple[bool, list[tuple[int, int]], int]:
    """One no-op gate run on the cached baseline ``pool`` (passes, runs per pair): whether it
    blocked, the pool afterwards and the fresh baseline samples it drew. With ``grow`` it is
    the plugin's rule: close pairs (``stats.close``) draw K fresh baseline samples (up to
    ``MAX_POOL`` K) and ``decide_pooled`` decides (first look, pooled look, confirmation). With ``estimate`` (a draw for the
    conditional rate, not the cache's own next run) a first look without a regression ends
    the run at once: it cannot block."""
    samples = CACHE_SAMPLES
    first = [
        (PassCounts(*base), PassCounts(bisect_left(cdf, rng.random()), samples))
        for base, cdf in zip(pool, cand_cdfs, strict=True)
    ]
    decisions = decide(first, alpha, one_shot=False)
    regressed = any(d.delta == "regressed" for d in decisions)
    if not grow or (estimate and not regressed):
        return regressed, pool, 0
    step = POOL_GROWTH * samples
    grown = list(pool)
    fresh: list[PassCounts | None] = [None] * len(pool)
    for i, decision in enumerate(decisions):
        if close(decision, alpha) and pool[i][1] + step <= MAX_POOL * samples:
            drawn = PassCounts(bisect_left(grow_cdfs[i], rng.random()), step)
            fresh[i] = drawn
            grown[i] = (pool[i][0] + drawn.passes, pool[i][1] + step)
    calls = sum(g[1] - b[1] for g, b in zip(grown, pool, strict=True))
    if not calls:
        return regressed, pool, 0
    pooled = [(PassCounts(*base), cand) for base, (_, cand) in zip(grown, first, strict=True)]
    blocked = any(d.delta == "regressed" for d in decide_pooled(first, pooled, fresh, alpha))
    return blocked, grown, calls


def cache_trajectory(
    cache: int, draws: int, seed: int, alpha: float
) -> tuple[float, list[float], list[int]]:
    """One cache of ``CACHE_SAMPLES`` baseline samples per pair, reused for ``CACHE_RUNS``
    runs: the block rate conditional on it as it is (no growth: the same at every run), and,
    with pool growth, the rate conditional on the cache as it stands before each run, each
    from ``draws`` candidate draws; and the fresh baseline samples each real run drew."""
    rng = Random(f"{seed}/cache/{cache}")
    rates = [rng.betavariate(*CACHE_MIX) for _ in range(PAIRS)]
    cand_cdfs = [_binomial_cdf(CACHE_SAMPLES, p) for p in rates]
    grow_cdfs = [_binomial_cdf(POOL_GROWTH * CACHE_SAMPLES, p) for p in rates]
    pool = [(bisect_left(cdf, rng.random()), CACHE_SAMPLES) for cdf in cand_cdfs]
    estimates = Random(f"{seed}/cache/{cache}/as-is")
    as_is = sum(
        _cache_run(estimates, cand_cdfs, grow_cdfs, pool, alpha, False, True)[0]
        for _ in range(draws)
    )
    conditional, fresh = [], []
    for run in range(CACHE_RUNS):
        estimates = Random(f"{seed}/cache/{cache}/{run}")
        blocks = sum(
            _cache_run(estimates, cand_cdfs, grow_cdfs, pool, alpha, True, True)[0]
            for _ in range(draws)
        )
        conditional.append(blocks / draws)
        _, pool, drawn = _cache_run(rng, cand_cdfs, grow_cdfs, pool, alpha, True, False)
        fresh.append(drawn)
    return as_is / draws, conditional, fresh


def cache_rows(draws: int, seed: int, alpha: float, jobs: int) -> list[CacheRow]:
    """Conditional-on-cache rows: the cache reused as is, then each run with pool growth."""
    if jobs <= 1:
        results = [cache_trajectory(c, draws, seed, alpha) for c in range(CACHES)]
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(cache_trajectory, c, draws, seed, alpha) for c in range(CACHES)]
            results = [f.result() for f in futures]
    rows = [CacheRow("reused as is (before)", 0, tuple(r[0] for r in results), 0.0)]
    for run in range(CACHE_RUNS):
        fresh = math.fsum(r[2][run] for r in results) / CACHES
        rows.append(
            CacheRow("grow and confirm (now)", run + 1, tuple(r[1][run] for r in results), fresh)
        )
    return rows


def cached_detection(samples: int, runs: int, seed: int, alpha: float) -> tuple[int, int]:
    """Scenario (b) with the baseline's K samples taken from a cache (a new one each run, so
    no luck carries over): blocks before (no growth) and now (growth and confirmation)."""
    rng = Random(f"{seed}/cached-drop/{samples}")
    scenario = SCENARIOS[-1]
    base_cdfs = [_binomial_cdf(samples, p) for p in scenario.baseline]
    cand_cdfs = [_binomial_cdf(samples, p) for p in scenario.candidate]
    grow_cdfs = [_binomial_cdf(POOL_GROWTH * samples, p) for p in scenario.baseline]
    before = after = 0
    for _ in range(runs):
        pool = [(bisect_left(cdf, rng.random()), samples) for cdf in base_cdfs]
        first = [
            (PassCounts(*base), PassCounts(bisect_left(cdf, rng.random()), samples))
            for base, cdf in zip(pool, cand_cdfs, strict=True)
        ]
        decisions = decide(first, alpha, one_shot=False)
        before += any(d.delta == "regressed" for d in decisions)
        fresh = [
            PassCounts(bisect_left(cdf, rng.random()), POOL_GROWTH * samples)
            if close(d, alpha)
            else None
            for d, cdf in zip(decisions, grow_cdfs, strict=True)
        ]
        pooled = [
            (b if f is None else PassCounts(b.passes + f.passes, b.runs + f.runs), c)
            for (b, c), f in zip(first, fresh, strict=True)
        ]
        looks = decide_pooled(first, pooled, fresh, alpha)
        after += any(d.delta == "regressed" for d in looks)
    return before, after


def render_cache_rows(rows: Sequence[CacheRow], draws: int) -> tuple[list[str], bool]:
    """The (e) section's lines, and whether the last run meets ``CACHE_TARGET``."""
    mean_target, worst_target = CACHE_TARGET
    calls = 2 * PAIRS * CACHE_SAMPLES
    lines = [
        f"(e) one cached baseline reused run after run: {CACHES} caches of {PAIRS} pairs, "
        f"K = {CACHE_SAMPLES}, rates from Beta{CACHE_MIX}, no-op change; block rate "
        f"conditional on each cache, {draws} candidate draws per cache and run",
        f"{'rule':<30} {'run':>4} {'mean':>8} {'worst':>8} {'> 5 %':>6} {'fresh':>7}  target",
    ]
    met = True
    for row in rows:
        over = sum(rate > 0.05 for rate in row.rates)
        target = ""
        if row.run == CACHE_RUNS:
            met = row.mean <= mean_target and row.worst <= worst_target
            target = (
                f"mean <= {_percent(mean_target).strip()}, worst <= "
                f"{_percent(worst_target).strip()}: {'met' if met else 'NOT met'}"
            )
        run = "1-5" if row.run == 0 else str(row.run)
        lines.append(
            f"{row.rule:<30} {run:>4} {_percent(row.mean):>8} {_percent(row.worst):>8} "
            f"{over:>3}/{len(row.rates):<2} {row.fresh:>7.1f}  {target}".rstrip()
        )
    lines.append(
        f"fresh: mean fresh baseline samples the cache's own run drew (of {calls} per run "
        f"with nothing cached)"
    )
    return lines, met


def render_cached_detection(runs: int, seed: int, alpha: float) -> list[str]:
    lines = [f"(e) detection, {SCENARIOS[-1].description[4:]}, baseline samples from a cache"]
    for samples in (5, 10):
        before, after = cached_detection(samples, runs, seed, alpha)
        lines.append(
            f"  K = {samples:>2}: before {_percent(before / runs)}, now {_percent(after / runs)} "
            f"({runs} runs)"
        )
    return lines


# -- end to end: the real plugin ---------------------------------------------------------

E2E_SAMPLE_SIZES = (1, 5, 10)
E2E_CONCURRENCY = 16
PAIRS_PER_FILE = 20
BASELINE_PROMPT = "You are Sam from Acme Motors. Be brief.\n"
CANDIDATE_PROMPT = "You are Sam from Acme Motors. Be brief and friendly.\n"

AGENT_MODULE = """\
\"\"\"A stochastic agent: "PASS" with the pair's known probability under the prompt.

The draw for a call is a hash of (run seed, prompt, message, call number), the call number
counting this process's calls with that prompt and message, so a run is reproducible whatever
order the plugin's threads call in.
\"\"\"

import hashlib
import json
import threading
from pathlib import Path

_CONFIG = json.loads((Path(__file__).parent / "rates.json").read_text())
_LOCK = threading.Lock()
_CALLS = {}


def reply(prompt, messages):
    message = messages[-1]["content"]
    with _LOCK:
        call = _CALLS.get((prompt, message), 0)
        _CALLS[(prompt, message)] = call + 1
    rate = _CONFIG["rates"][prompt][int(message.rpartition(" ")[2])]
    key = f"{_CONFIG['seed']}|{prompt}|{message}|{call}".encode()
    draw = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64
    return "PASS" if draw < rate else "FAIL"
"""


def _message(index: int) -> str:
    return f"Customer question for pair {index}"


def _known_passes(run_seed: str, prompt: str, index: int, rate: float, samples: int) -> int:
    """The agent's passes for one pair and prompt over ``samples`` calls (its draws, again)."""
    passes = 0
    for call in range(samples):
        key = f"{run_seed}|{prompt}|{_message(index)}|{call}".encode()
        passes += int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64 < rate
    return passes


def _write_suite(directory: Path, scenario: Scenario, run_seed: str) -> None:
    """Pair files, prompt files, the agent and its rates, and pytest.ini, in ``directory``."""
    for start in range(0, PAIRS, PAIRS_PER_FILE):
        lines = [f"conversation: call-{start // PAIRS_PER_FILE:03d}", "outcome: lead", "pairs:"]
        for index in range(start, min(start + PAIRS_PER_FILE, PAIRS)):
            lines += [
                f"  - id: p{index:03d}",
                f'    customer: "{_message(index)}"',
                "    checks:",
                '      - contains: "PASS"',
            ]
        (directory / f"call-{start // PAIRS_PER_FILE:03d}.hgd.yaml").write_text(
            "\n".join(lines) + "\n"
        )
    (directory / "base.txt").write_text(BASELINE_PROMPT)
    (directory / "cand.txt").write_text(CANDIDATE_PROMPT)
    (directory / "agent.py").write_text(AGENT_MODULE)
    rates = {BASELINE_PROMPT: scenario.baseline, CANDIDATE_PROMPT: scenario.candidate}
    (directory / "rates.json").write_text(json.dumps({"seed": run_seed, "rates": rates}))
    (directory / "pytest.ini").write_text("[pytest]\nhgd_agent = agent:reply\n")


def _disagreement(
    report: Mapping[str, Any], scenario: Scenario, run_seed: str, samples: int, alpha: float
) -> str | None:
    """Why the plugin's report does not match decide() on its own counts and the agent's
    known draws, or None when every pair matches exactly."""
    pairs = report["pairs"]
    if len(pairs) != PAIRS or report["counts"]["error"]:
        return f"{len(pairs)} pairs reported, {report['counts']['error']} errors"
    counts = [
        (
            PassCounts(p["baseline"]["passes"], p["baseline"]["runs"]),
            PassCounts(p["candidate"]["passes"], p["candidate"]["runs"]),
        )
        for p in pairs
    ]
    for pair, (base, cand), ours in zip(pairs, counts, decide(counts, alpha), strict=True):
        index = int(str(pair["id"]).rpartition("::p")[2])
        known = (
            _known_passes(run_seed, BASELINE_PROMPT, index, scenario.baseline[index], samples),
            _known_passes(run_seed, CANDIDATE_PROMPT, index, scenario.candidate[index], samples),
        )
        if (base.passes, cand.passes) != known or base.runs != samples or cand.runs != samples:
            return f"{pair['id']}: plugin counted {base}/{cand}, the agent drew {known}"
        theirs = (pair["delta"], pair.get("p_value"), pair.get("p_fix"))
        if theirs != (ours.delta, ours.p_regress, ours.p_fix):
            return f"{pair['id']}: plugin {theirs}, decide() {ours}"
    regressed = report["counts"]["regressed"] > 0
    if regressed != (report["verdict"] == "fail"):
        return f"verdict {report['verdict']} with {report['counts']['regressed']} regressed"
    return None


def _child_env() -> dict[str, str]:
    """The environment of a pytest child: only pytest-hgd (other installed plugins' hooks are
    not part of the gate), imported from where this benchmark imports it (a worktree on
    PYTHONPATH, not whichever checkout is installed)."""
    package_root = str(Path(pytest_hgd.__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONPATH": path}


def e2e_run(
    scenario: Scenario, samples: int, run: int, seed: int, alpha: float, directory: Path
) -> tuple[bool, str | None, str]:
    """One real gate run: (blocked, disagreement or None, its regressed pairs and counts)."""
    run_seed = f"{seed}/{scenario.name}/{samples}/{run}"
    directory.mkdir()
    _write_suite(directory, scenario, run_seed)
    status, tail = _pytest_gate(directory, samples, alpha, "--hgd-no-cache")
    report_path = directory / "report.json"
    if status not in (0, 1) or not report_path.exists():
        return False, f"{run_seed}: pytest exited {status}: {tail}", ""
    report = json.loads(report_path.read_text())
    blocked = report["verdict"] == "fail"
    problem = _disagreement(report, scenario, run_seed, samples, alpha)
    if problem is None and status != int(blocked):
        problem = f"exit status {status} with verdict {report['verdict']}"
    regressed = ", ".join(
        f"{p['id'].rpartition('::')[2]} {p['baseline']['passes']}/{samples} -> "
        f"{p['candidate']['passes']}/{samples}"
        for p in report["pairs"]
        if p["delta"] == "regressed"
    )
    return blocked, None if problem is None else f"{run_seed}: {problem}", regressed


def e2e_rows(runs: int, seed: int, alpha: float, jobs: int) -> list[Row]:
    """Rows from ``runs`` real gate runs per scenario and K, ``jobs`` pytest children at once."""
    with (
        tempfile.TemporaryDirectory(prefix="hgd-soundness-") as tmp,
        ThreadPoolExecutor(max_workers=max(1, jobs)) as pool,
    ):
        futures = {
            (s, k): [
                pool.submit(e2e_run, s, k, r, seed, alpha, Path(tmp) / f"{s.name}-k{k}-{r}")
                for r in range(runs)
            ]
            for s in SCENARIOS
            for k in E2E_SAMPLE_SIZES
        }
        results = {key: [f.result() for f in fs] for key, fs in futures.items()}
    rows = []
    for (scenario, k), outcomes in results.items():
        problems = tuple(p for _, p, _ in outcomes if p is not None)
        blocks = sum(blocked for blocked, _, _ in outcomes)
        blocked_by = tuple(
            f"run {run}: {regressed}" for run, (_, _, regressed) in enumerate(outcomes) if regressed
        )
        rows.append(
            Row(
                scenario.name,
                k,
                runs,
                blocks,
                "e2e",
                None,
                runs - len(problems),
                problems,
                blocked_by,
            )
        )
    return rows


def _pytest_gate(directory: Path, samples: int, alpha: float, *extra: str) -> tuple[int, str]:
    """Run ``pytest --hgd`` in ``directory``: its exit status and the tail of its output."""
    command = [
        sys.executable, "-m", "pytest", "-p", "pytest_hgd.plugin", "--hgd",
        "--hgd-agent=agent:reply", "--hgd-baseline=base.txt", "--hgd-candidate=cand.txt",
        f"--hgd-samples={samples}", f"--hgd-alpha={alpha}", "--hgd-no-ledger",
        f"--hgd-concurrency={E2E_CONCURRENCY}", "--hgd-report=report.json",
        "-p", "no:cacheprovider", "-q", *extra,
    ]  # fmt: skip
    done = subprocess.run(
        command,
        cwd=directory,
        env=_child_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return done.returncode, " | ".join((done.stdout + done.stderr).strip().splitlines()[-5:])


def e2e_cache_trajectory(
    cache: int, runs: int, seed: int, alpha: float, directory: Path
) -> tuple[int, int, list[str], int]:
    """One cache through the real plugin, its reply cache on: run 0 draws the baseline (K =
    ``CACHE_SAMPLES``, rates from Beta``CACHE_MIX``), runs 1..``runs`` reuse it, each with a
    new candidate prompt (so fresh candidate draws) and a new agent seed. Each reused run's
    report must be reproduced by ``decide_pooled`` from the previous run's pools (the first
    look), this run's pools and the difference (the fresh samples), and the candidate and
    fresh baseline counts must be the agent's own draws. Returns (blocked runs, runs
    reproduced, problems, fresh baseline calls)."""
    rng = Random(f"{seed}/e2e-cache/{cache}")
    rates = tuple(rng.betavariate(*CACHE_MIX) for _ in range(PAIRS))
    directory.mkdir()
    _write_suite(directory, Scenario(f"cache-{cache}", "", rates, rates, False), "")
    samples = CACHE_SAMPLES
    blocks = agreed = fresh_calls = 0
    problems: list[str] = []
    before: list[PassCounts] | None = None
    for run in range(runs + 1):
        run_seed = f"{seed}/e2e-cache/{cache}/{run}"
        candidate = f"{CANDIDATE_PROMPT}(candidate {run})\n"
        (directory / "cand.txt").write_text(candidate)
        config = {"seed": run_seed, "rates": {BASELINE_PROMPT: rates, candidate: rates}}
        (directory / "rates.json").write_text(json.dumps(config))
        status, tail = _pytest_gate(directory, samples, alpha)
        if status not in (0, 1) or not (directory / "report.json").exists():
            problems.append(f"{run_seed}: pytest exited {status}: {tail}")
            return blocks, agreed, problems, fresh_calls
        report = json.loads((directory / "report.json").read_text())
        pairs = sorted(report["pairs"], key=lambda p: int(str(p["id"]).rpartition("::p")[2]))
        pools = [PassCounts(p["baseline"]["passes"], p["baseline"]["runs"]) for p in pairs]
        cands = [PassCounts(p["candidate"]["passes"], p["candidate"]["runs"]) for p in pairs]
        problem = None
        if len(pairs) != PAIRS or report["counts"]["error"]:
            problem = f"{len(pairs)} pairs, {report['counts']['error']} errors"
        elif before is None:  # the cache's first run: every sample fresh, decide() decides
            first = list(zip(pools, cands, strict=True))
            decisions = decide(first, alpha)
            drawn = [(_known_passes(run_seed, BASELINE_PROMPT, i, r, samples), samples)
                     for i, r in enumerate(rates)]  # fmt: skip
            if [(b.passes, b.runs) for b in pools] != drawn:
                problem = "baseline counts are not the agent's draws"
        else:
            first = list(zip(before, cands, strict=True))
            fresh: list[PassCounts | None] = []
            for i, (old, new) in enumerate(zip(before, pools, strict=True)):
                step = new.runs - old.runs
                drew = PassCounts(new.passes - old.passes, step) if step else None
                known = _known_passes(run_seed, BASELINE_PROMPT, i, rates[i], step)
                if drew is not None and (step != samples or drew.passes != known):
                    problem = f"pair {i}: fresh baseline {drew}, the agent drew {known}/{step}"
                fresh.append(drew)
                fresh_calls += step
            pooled = list(zip(pools, cands, strict=True))
            decisions = decide_pooled(first, pooled, fresh, alpha)
        for i, (pair, cand) in enumerate(zip(pairs, cands, strict=True)):
            known = _known_passes(run_seed, candidate, i, rates[i], samples)
            if problem is None and (cand.passes, cand.runs) != (known, samples):
                problem = f"{pair['id']}: candidate {cand}, the agent drew {known}/{samples}"
        if problem is None:
            for pair, ours in zip(pairs, decisions, strict=True):
                theirs = (pair["delta"], pair.get("p_value"), pair.get("p_fix"))
                if theirs != (ours.delta, ours.p_regress, ours.p_fix):
                    problem = f"{pair['id']}: plugin {theirs}, ours {ours}"
                    break
        blocked = report["verdict"] == "fail"
        if problem is None and blocked != (report["counts"]["regressed"] > 0):
            problem = f"verdict {report['verdict']} with {report['counts']['regressed']} regressed"
        if problem is not None:
            problems.append(f"{run_seed}: {problem}")
        elif run:
            agreed += 1
        blocks += blocked if run else 0
        before = pools
    return blocks, agreed, problems, fresh_calls


def e2e_cache_lines(
    caches: int, runs: int, seed: int, alpha: float, jobs: int
) -> tuple[list[str], bool]:
    """Section (e) through the real plugin: lines, and whether every run was reproduced."""
    with (
        tempfile.TemporaryDirectory(prefix="hgd-soundness-cache-") as tmp,
        ThreadPoolExecutor(max_workers=max(1, jobs)) as pool,
    ):
        futures = [
            pool.submit(e2e_cache_trajectory, c, runs, seed, alpha, Path(tmp) / f"cache-{c}")
            for c in range(caches)
        ]
        results = [f.result() for f in futures]
    total = caches * runs
    blocks = sum(r[0] for r in results)
    agreed = sum(r[1] for r in results)
    fresh = sum(r[3] for r in results)
    lines = [
        f"(e) e2e: {caches} caches through pytest --hgd with its reply cache, {runs} reused "
        f"runs each (K = {CACHE_SAMPLES}, a new candidate each run)",
        f"  blocked {blocks}/{total} no-op runs; decide_pooled() reproduced {agreed}/{total} "
        f"runs; {fresh / total:.1f} fresh baseline calls per run",
    ]
    lines += [f"DISAGREE {problem}" for r in results for problem in r[2]]
    return lines, agreed == total


def rates_agree(e2e: Row, simulated: Row) -> bool:
    """True when the two block rates' Wilson 95 % intervals overlap."""
    e_low, e_high = wilson_interval(e2e.blocks, e2e.runs)
    s_low, s_high = wilson_interval(simulated.blocks, simulated.runs)
    return e_low <= s_high and s_low <= e_high


def _percent(value: float) -> str:
    return f"{100.0 * value:5.1f} %"


def _interval(low: float, high: float) -> str:
    return f"{100.0 * low:4.1f}-{100.0 * high:5.1f} %"


def _e2e_status(row: Row, simulated: Row | None) -> str:
    """ "NO" unless decide() reproduced every run; then "FLAG" when the block rate's interval
    misses the simulated one's, else "yes"."""
    if row.agreed != row.runs:
        return "NO"
    return "yes" if simulated is None or rates_agree(row, simulated) else "FLAG"


def render_table(rows: Sequence[Row]) -> tuple[list[str], bool]:
    """Table lines, and whether every target with a row is met and decide() reproduced every
    e2e run (column ``decide()``). An e2e row whose rate's interval misses the simulated one's
    is flagged (``FLAG``), with its blocking runs listed, but does not fail the table: with a
    dozen rows a chance miss is expected now and then, and the runs show whether it is one.
    """
    by_key = {(r.scenario, r.samples, r.source): r for r in rows}
    header = (
        f"{'scenario':<9} {'source':<10} {'K':>3} {'runs':>5} {'one-shot':>9} "
        f"{'sampled':>9} {'95 % CI':>15} {'exact':>7} {'target':>9} {'ratio':>6}  met  decide()"
    )
    lines = [header, "-" * len(header)]
    e2e = {r: _e2e_status(r, by_key.get((r.scenario, r.samples, "simulation"))) for r in rows}
    all_met = all(r.agreed == r.runs for r in rows if r.source == "e2e")
    for scenario in SCENARIOS:
        lines.append(scenario.description)
        for source in ("simulation", "e2e"):
            one_shot = by_key.get((scenario.name, 1, source))
            for k in SAMPLE_SIZES:
                row = by_key.get((scenario.name, k, source))
                if row is None:
                    continue
                low, high = wilson_interval(row.blocks, row.runs)
                target = TARGETS.get((scenario.drops, k))
                agreed = ""
                if source == "e2e":
                    simulated = by_key.get((scenario.name, k, "simulation"))
                    target_text, ratio_text = "≈ sim", "-"
                    if simulated is not None and simulated.blocks:
                        ratio_text = f"{row.rate / simulated.rate:.2f}"
                    met_text = e2e[row]
                    agreed = f"{row.agreed}/{row.runs}"
                elif target is None:
                    target_text, ratio_text, met_text = "-", "-", ""
                else:
                    met = row.rate >= target if scenario.drops else row.rate <= target
                    all_met = all_met and met
                    target_text = ("≥" if scenario.drops else "≤") + _percent(target)
                    ratio_text = f"{row.rate / target:.2f}"
                    met_text = "yes" if met else "NO"
                if one_shot is None:
                    shot = "-"
                elif source == "e2e":  # K = 1 through the plugin, checked like any e2e row
                    shot = f"{one_shot.blocks}/{one_shot.runs}"
                    shot += "" if e2e[one_shot] == "yes" else "!"
                else:
                    shot = _percent(one_shot.rate)
                exact = "-" if row.exact is None else f"{100.0 * row.exact:5.2f}%"
                lines.append(
                    f"{scenario.name:<9} {source:<10} {k:>3} {row.runs:>5} {shot:>9} "
                    f"{_percent(row.rate):>9} {_interval(low, high):>15} {exact:>7} "
                    f"{target_text:>9} {ratio_text:>6}  {met_text:<4} {agreed}".rstrip()
                )
    return lines, all_met


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=2000, help="simulated gate runs per row")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    parser.add_argument("--jobs", type=int, default=2, help="worker processes / pytest children")
    parser.add_argument(
        "--e2e",
        action="store_true",
        help="also run every scenario through the real plugin (120 pytest runs, minutes)",
    )
    parser.add_argument("--e2e-runs", type=int, default=10, help="real gate runs per e2e row")
    parser.add_argument(
        "--e2e-caches",
        type=int,
        default=3,
        help="with --e2e: caches run through the plugin with its reply cache (0: none)",
    )
    parser.add_argument(
        "--cache-draws",
        type=int,
        default=400,
        help="candidate draws per cache and run for the conditional-on-cache rows (0: skip)",
    )
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="also section (f): --hgd-samples=auto against fixed K = 10 (sequential_sampling.py)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.e2e_runs < 1 or args.cache_draws < 0:
        parser.error("--runs and --e2e-runs must be >= 1, --cache-draws >= 0")

    started = time.perf_counter()
    rows = simulation_rows(args.runs, args.seed, args.alpha, args.jobs)
    one_shot_lines, one_shot_met = one_shot_pairs_rows(args.runs, args.seed, args.alpha)
    cache_lines: list[str] = []
    cache_met = True
    if args.cache_draws:
        cache = cache_rows(args.cache_draws, args.seed, args.alpha, args.jobs)
        cache_lines, cache_met = render_cache_rows(cache, args.cache_draws)
        cache_lines += render_cached_detection(args.runs, args.seed, args.alpha)
    sim_seconds = time.perf_counter() - started
    if args.e2e:
        rows += e2e_rows(args.e2e_runs, args.seed, args.alpha, args.jobs)
    if args.e2e and args.e2e_caches > 0:
        e2e_cache, e2e_cache_met = e2e_cache_lines(
            args.e2e_caches, CACHE_RUNS, args.seed, args.alpha, args.jobs
        )
        cache_lines += e2e_cache
        cache_met = cache_met and e2e_cache_met
    elapsed = time.perf_counter() - started
    lines, all_met = render_table(rows)
    print(
        f"gate soundness: {PAIRS} pairs, alpha = {args.alpha:g}, {args.runs} runs per row, "
        f"seed {args.seed}" + (f"; e2e: {args.e2e_runs} real gate runs per row" if args.e2e else "")
    )
    print(
        "one-shot: strict K = 1 gate; sampled: decide() at K, with a Wilson 95 % CI; exact: "
        "mean over the runs of P(block | margins), the no-op block rate without sampling noise"
    )
    if args.e2e:
        print(
            "e2e: pytest --hgd on real pair files and a real agent (one-shot: blocks/runs at "
            "K = 1); met: the e2e and simulated 95 % CIs overlap; decide(): runs whose every "
            "delta and p-value decide() reproduced from the reported counts, which were the "
            "agent's own draws"
        )
    for line in lines:
        print(line)
    all_met = all_met and one_shot_met and cache_met
    for line in [*one_shot_lines, *k3_rows(), *cache_lines]:
        print(line)
    e2e = [r for r in rows if r.source == "e2e"]
    simulated_rows = {(r.scenario, r.samples): r for r in rows if r.source == "simulation"}
    for row in e2e:
        for problem in row.problems:
            print(f"DISAGREE {problem}")
        simulated = simulated_rows[(row.scenario, row.samples)]
        if not rates_agree(row, simulated):
            low, high = wilson_interval(simulated.blocks, simulated.runs)
            print(
                f"FLAG {row.scenario} K = {row.samples}: e2e {row.blocks}/{row.runs} blocked, "
                f"simulated {_percent(simulated.rate).strip()} ({_interval(low, high).strip()})"
            )
            for blocked in row.blocked_by:
                print(f"  {blocked}")
    if e2e:
        agreed = sum(r.agreed or 0 for r in e2e)
        total = sum(r.runs for r in e2e)
        print(
            f"e2e agreement: decide() reproduced the plugin in {agreed}/{total} runs "
            f"({100.0 * agreed / total:.0f} %), K in {', '.join(map(str, E2E_SAMPLE_SIZES))}"
        )
    print(
        f"targets {'all met' if all_met else 'NOT all met'} "
        f"(simulation {sim_seconds:.1f} s, total {elapsed:.1f} s)"
    )
    if args.sequential:
        import sequential_sampling  # beside this script: section (f)

        runs = ["--runs", str(args.runs), "--alpha", str(args.alpha), "--jobs", str(args.jobs)]
        all_met = sequential_sampling.main(runs) == 0 and all_met
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
