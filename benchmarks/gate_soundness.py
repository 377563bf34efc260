"""Soundness of the sampled gate: false blocks on no-op changes, detection of real drops.

Synthetic stochastic pairs each pass with a known probability. Every simulated gate run draws
the pass counts under both prompts and is decided by ``pytest_hgd.stats.decide`` (the plugin's
own decision code); the gate blocks when any pair is ``regressed``. K = 1 is the strict
one-shot gate (same function: one run per side follows the one-shot rule).

    python benchmarks/gate_soundness.py                # default: 2000 runs per row, 2 processes
    python benchmarks/gate_soundness.py --runs 200 --jobs 1

Exit status 0 when every target is met, 1 otherwise.

The rows are ``Row`` objects from a *source*; this file has the ``simulation`` source. An
end-to-end source (each scenario through the real plugin, >= 10 runs per row) is to be added as
another function returning ``Row`` objects, selected by an ``--e2e`` flag, and rendered by the
same ``render_table``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import accumulate
from random import Random

from pytest_hgd.stats import (
    DEFAULT_ALPHA,
    PassCounts,
    decide,
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
    source: str  # "simulation" (later also "e2e")
    exact: float | None = None  # mean P(block | margins) under a no-op change, if known

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


def _percent(value: float) -> str:
    return f"{100.0 * value:5.1f} %"


def _interval(low: float, high: float) -> str:
    return f"{100.0 * low:4.1f}-{100.0 * high:5.1f} %"


def render_table(rows: Sequence[Row]) -> tuple[list[str], bool]:
    """Table lines, and whether every target with a row is met."""
    by_key = {(r.scenario, r.samples, r.source): r for r in rows}
    header = (
        f"{'scenario':<9} {'source':<10} {'K':>3} {'runs':>5} {'one-shot':>9} "
        f"{'sampled':>9} {'95 % CI':>15} {'exact':>7} {'target':>9} {'ratio':>6}  met"
    )
    lines = [header, "-" * len(header)]
    all_met = True
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
                if target is None:
                    target_text, ratio_text, met_text = "-", "-", ""
                else:
                    met = row.rate >= target if scenario.drops else row.rate <= target
                    all_met = all_met and met
                    target_text = ("≥" if scenario.drops else "≤") + _percent(target)
                    ratio_text = f"{row.rate / target:.2f}"
                    met_text = "yes" if met else "NO"
                shot = _percent(one_shot.rate) if one_shot else "-"
                exact = "-" if row.exact is None else f"{100.0 * row.exact:5.2f}%"
                lines.append(
                    f"{scenario.name:<9} {source:<10} {k:>3} {row.runs:>5} {shot:>9} "
                    f"{_percent(row.rate):>9} {_interval(low, high):>15} {exact:>7} "
                    f"{target_text:>9} {ratio_text:>6}  {met_text}".rstrip()
                )
    return lines, all_met


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=2000, help="simulated gate runs per row")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be >= 1")

    started = time.perf_counter()
    rows = simulation_rows(args.runs, args.seed, args.alpha, args.jobs)
    elapsed = time.perf_counter() - started
    lines, all_met = render_table(rows)
    print(
        f"gate soundness: {PAIRS} pairs, alpha = {args.alpha:g}, {args.runs} runs per row, "
        f"seed {args.seed}"
    )
    print(
        "one-shot: strict K = 1 gate; sampled: decide() at K, with a Wilson 95 % CI; exact: "
        "mean over the runs of P(block | margins), the no-op block rate without sampling noise"
    )
    for line in lines:
        print(line)
    print(f"targets {'all met' if all_met else 'NOT all met'} ({elapsed:.1f} s)")
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
