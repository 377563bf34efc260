"""Monte Carlo of the candidate search's acceptance rule (docs/search.md, "Is a gain real?").

Run: python benchmarks/search_soundness.py [--runs 400] [--seed 1]   (about 5 minutes)

A suite of P pairs; each pair's true pass rate under the start prompt is drawn from the mix
the other benchmarks use (Beta(2, 0.5): most pairs pass often, some rarely). The start
prompt's K samples a pair are drawn once; a candidate's K are drawn from its own rates.
``core.search.acceptable`` then decides, as the search does, at level alpha / N.

(a) Candidates with no net gain: no-ops (the same rates as the start), and trades that fix
    as many pairs as they break. How often is one accepted under a budget that allows any
    number of locked regressions, and how often at least one of N (a search over N of them)?
    With samples the rule promises at most alpha for the N together, exactly for no-ops;
    with K = 1 it promises nothing (one reply a pair: noise alone "gains" about half the
    time).
(b) Real trades: a candidate that fixes F pairs (rate 0.1 -> 0.9) and breaks B locked
    pairs (0.95 -> 0.1): how often is it accepted (power), with budget:B.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_hgd.core.search import SearchPolicy, acceptable, score
from pytest_hgd.core.stats import PassCounts

ALPHA = 0.05


def _draw(rng: random.Random, rate: float, k: int) -> PassCounts:
    return PassCounts(sum(rng.random() < rate for _ in range(k)), k)


def _suite(rng: random.Random, pairs: int) -> list[float]:
    return [rng.betavariate(2, 0.5) for _ in range(pairs)]


def _scores(rng: random.Random, start_rates: list[float], cand_rates: list[float], k: int,
            tries: int) -> tuple[Any, list[Any]]:  # fmt: skip
    """The start's score and ``tries`` candidates' (fresh samples each), as the search makes
    them: against the start as the reference, locked = the pairs the start mostly passes."""
    ids = [f"p{i}" for i in range(len(start_rates))]
    sampled = k > 1
    start_counts = {pid: _draw(rng, r, k) for pid, r in zip(ids, start_rates, strict=True)}
    locked = {pid for pid, c in start_counts.items() if c.mostly_passes}
    start = score(start_counts, start_counts, locked, ALPHA, sampled)
    cands = []
    for _ in range(tries):
        counts = {pid: _draw(rng, r, k) for pid, r in zip(ids, cand_rates, strict=True)}
        cands.append(score(counts, start_counts, locked, ALPHA, sampled))
    return start, cands


def no_ops(runs: int, seed: int, pairs: int, k: int, n: int, trade: int = 0) -> tuple[float, float]:
    """(a): the chance one candidate is accepted at alpha / n, and that any of n is. With
    ``trade``, the candidate fixes ``trade`` pairs (0.5 -> 1) and breaks as many (0.5 -> 0):
    no net gain, yet a change."""
    rng = random.Random(seed)
    single = any_of_n = 0
    for _ in range(runs):
        rates = _suite(rng, pairs)
        start_rates = [0.5 if i < 2 * trade else r for i, r in enumerate(rates)]
        cand_rates = [1.0 if i < trade else 0.0 if i < 2 * trade else r
                      for i, r in enumerate(start_rates)]  # fmt: skip
        start, cands = _scores(rng, start_rates, cand_rates, k, n)
        hits = [acceptable(c, start, SearchPolicy(pairs), sampled=k > 1, level=ALPHA / n)
                for c in cands]  # fmt: skip
        single += hits[0]
        any_of_n += any(hits)
    return single / runs, any_of_n / runs


def power(runs: int, seed: int, pairs: int, k: int, fixes: int, breaks: int) -> float:
    """(b): the chance a real trade (``fixes`` pairs fixed, ``breaks`` locked broken) is
    accepted under budget:breaks at alpha / 20."""
    rng = random.Random(seed)
    accepted = 0
    for _ in range(runs):
        rates = _suite(rng, pairs)
        start_rates = [0.1 if i < fixes else 0.95 if i < fixes + breaks else r
                       for i, r in enumerate(rates)]  # fmt: skip
        cand_rates = [0.9 if i < fixes else 0.1 if i < fixes + breaks else r
                      for i, r in enumerate(rates)]  # fmt: skip
        start, (cand,) = _scores(rng, start_rates, cand_rates, k, 1)
        accepted += acceptable(cand, start, SearchPolicy(breaks), sampled=k > 1, level=ALPHA / 20)
    return accepted / runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    print(f"(a) candidates with no net gain, budget:P (any number of locked pairs), alpha {ALPHA},"
          f" {args.runs} runs a row")  # fmt: skip
    print("    pairs   K    N  trade   one accepted   any of N accepted   promise")
    worst = 0.0
    rows = ((50, 10, 20, 0), (200, 10, 20, 0), (200, 5, 20, 0), (200, 10, 20, 5),
            (200, 10, 20, 20), (200, 1, 20, 0))  # fmt: skip
    for pairs, k, n, trade in rows:
        one, any_n = no_ops(args.runs, args.seed, pairs, k, n, trade)
        promise = (f"<= {ALPHA} (exact)" if not trade else "~ (approximate)") if k > 1 else "none"
        if k > 1:
            worst = max(worst, any_n)
        print(
            f"    {pairs:>5} {k:>3} {n:>4} {trade:>6}   {one:>12.4f}   {any_n:>17.4f}   {promise}"
        )
    print(
        f"    worst rate with samples: {worst:.4f} (target <= {ALPHA}; ratio {worst / ALPHA:.2f})"
    )
    print(f"(b) real trades at K = 10, budget:B, level alpha / 20, {args.runs} runs a row")
    print("    pairs   fixes F  breaks B   accepted")
    for pairs, fixes, breaks in ((200, 10, 3), (200, 6, 3), (200, 4, 3), (200, 10, 0)):
        rate = power(args.runs, args.seed, pairs, 10, fixes, breaks)
        print(f"    {pairs:>5} {fixes:>9} {breaks:>9}   {rate:>8.3f}")
    print(f"took {time.perf_counter() - began:.1f} s")
    return 0 if worst <= ALPHA else 1


if __name__ == "__main__":
    raise SystemExit(main())
