"""Soundness of constraint pressure: does its band cover the truth, and can repetition move it?

Each simulated world has a suite of locked pairs with known pass rates (most steady, some
flaky) and a known systematic pass rate A of proposed changes. Its true pressure is
1 - F, F = A * prod(p_i): the chance that a change passes the one-shot gate. The ledger
is written the way the plugin writes it: H no-op runs of the baseline without the cache
(the noise evidence), then n candidates with the baseline cached, each broken for real with
probability 1 - A and facing the same noise. ``pytest_hgd.core.pressure.compute_pressure`` (the
plugin's own code) reads the ledger; the row reports how often its band held the true
pressure (target: at least its 90 % confidence) and the mean error of the point estimate.

The repetition rows replay the audit of issue 18: re-running one candidate 100 times must
not move the pressure at all.

    python benchmarks/pressure_soundness.py               # 1000 worlds per row, ~1 min
    python benchmarks/pressure_soundness.py --worlds 200  # quicker

Exit status 0 when every coverage row reaches the target and every repetition row is exact.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from random import Random
from typing import Any

from pytest_hgd.core.pressure import compute_pressure

TARGET = 0.90  # the band's confidence


@dataclass(frozen=True)
class World:
    name: str
    pairs: int
    flaky_share: float  # share of pairs that flip, each at a rate drawn from FLAKY_RATES
    systematic: float  # A: chance that a change breaks nothing for real
    noop_runs: int  # H: no-op runs of the baseline without the cache
    candidates: int  # n
    new_pairs: int = 0  # pairs that join in the last run, with no re-run yet


FLAKY_RATES = (0.7, 0.95)
WORLDS = (
    World("steady agent, few changes pass", 30, 0.0, 0.3, 3, 10),
    World("some flaky pairs, most changes fine", 30, 0.1, 0.9, 3, 10),
    World("flaky pairs, long history", 30, 0.1, 0.7, 6, 20),
    World("many pairs, little noise evidence", 200, 0.02, 0.8, 2, 10),
    World("100 pairs join, no re-run yet", 20, 0.05, 0.8, 3, 10, new_pairs=100),
)


def _entry(base: int | None, cand: int, *, cached: bool) -> dict[str, Any]:
    """A ledger pair entry for one run a side (1 = passed); the delta follows the table."""
    if base is None:
        delta = "new_pass" if cand else "new_fail"
        return {"kind": "locked", "delta": delta, "baseline": None, "candidate": [cand, 1]}
    delta = {(1, 1): "kept", (1, 0): "regressed", (0, 1): "fixed", (0, 0): "still_failing"}
    return {
        "kind": "locked",
        "delta": delta[(base, cand)],
        "baseline": [base, 1],
        "candidate": [cand, 1],
        "baseline_cached": cached,
    }


def _record(
    pairs: dict[str, dict[str, Any]], baseline: str | None, candidate: str
) -> dict[str, Any]:
    regressed = sorted(pid for pid, e in pairs.items() if e["delta"] == "regressed")
    return {
        "schema_version": 1,
        "baseline_hash": baseline,
        "candidate_hash": candidate,
        "verdict": "fail" if regressed else "pass",
        "regressed": regressed,
        "pairs": pairs,
        "retired": [],
        "pending_review": 0,
    }


def one_world(world: World, rng: Random) -> tuple[float, dict[str, Any]]:
    """The true pressure of a random world of this kind, and what the plugin estimates."""
    total = world.pairs + world.new_pairs
    rates = [
        rng.uniform(*FLAKY_RATES) if rng.random() < world.flaky_share else 1.0 for _ in range(total)
    ]
    ids = [f"p{i}" for i in range(total)]
    old = ids[: world.pairs]
    history = []
    for _ in range(world.noop_runs):  # the baseline re-run without the cache: noise evidence
        pairs = {pid: _entry(None, int(rng.random() < rates[i]), cached=False)
                 for i, pid in enumerate(old)}  # fmt: skip
        history.append(_record(pairs, None, "B"))
    records = []
    for c in range(world.candidates):
        suite = old if c < world.candidates - 1 else ids  # new pairs join in the last run
        broken = rng.randrange(len(suite)) if rng.random() >= world.systematic else -1
        pairs = {}
        for i, pid in enumerate(suite):
            passes = i != broken and rng.random() < rates[i]
            pairs[pid] = _entry(1, int(passes), cached=True)  # the cached baseline passed
        records.append(_record(pairs, "B", f"X{c}"))
    truth = 1.0 - world.systematic * math.prod(rates)
    return truth, compute_pressure(records[-1], [*history, *records[:-1]])


@dataclass(frozen=True)
class Row:
    world: World
    worlds: int
    coverage: float
    mean_error: float
    mean_width: float

    @property
    def ok(self) -> bool:
        return self.coverage >= TARGET


def coverage_row(world: World, worlds: int, seed: int) -> Row:
    rng = Random(f"{seed}:{world.name}")
    held = 0
    error = width = 0.0
    for _ in range(worlds):
        truth, got = one_world(world, rng)
        low, high = got["band"]
        held += low - 1e-9 <= truth <= high + 1e-9
        error += got["value"] - truth
        width += high - low
    return Row(world, worlds, held / worlds, error / worlds, width / worlds)


def repetition_rows() -> list[tuple[str, float, float]]:
    """(case, pressure after one run, pressure after 100 repeats): must be equal."""
    rng = Random(7)
    steady = {f"p{i}": _entry(1, 1, cached=True) for i in range(10)}
    broken = {**steady, "p0": _entry(1, 0, cached=True)}
    noise = [
        _record({f"p{i}": _entry(None, int(rng.random() < 0.9), cached=False) for i in range(10)},
                None, "B")
        for _ in range(3)
    ]  # fmt: skip
    current = _record(steady, "B", "B")  # a no-op re-run reads the ledger
    out = []
    for case, pairs in (("an accepted candidate", steady), ("a rejected candidate", broken)):
        run = _record(pairs, "B", "X")
        once = compute_pressure(current, [*noise, run])["value"]
        many = compute_pressure(current, [*noise, *[run] * 100])["value"]
        out.append((f"{case}, re-run 100 times", once, many))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--worlds", type=int, default=1000, help="simulated worlds per row")
    parser.add_argument("--seed", type=int, default=20261204)
    args = parser.parse_args(argv)
    ok = True
    print(f"band coverage of the true pressure, {args.worlds} worlds per row "
          f"(target >= {TARGET:.0%})")  # fmt: skip
    print("| world | pairs | H | n | coverage | mean error | mean width | |")
    print("|---|---|---|---|---|---|---|---|")
    for world in WORLDS:
        row = coverage_row(world, args.worlds, args.seed)
        ok &= row.ok
        pairs = f"{world.pairs}" + (f" + {world.new_pairs} new" if world.new_pairs else "")
        print(
            f"| {world.name} | {pairs} | {world.noop_runs} | {world.candidates} "
            f"| {row.coverage:.1%} | {row.mean_error:+.3f} | {row.mean_width:.3f} "
            f"| {'ok' if row.ok else 'MISS'} |"
        )
    print()
    print("repetition: pressure after one run and after 100 repeats (must be equal)")
    for case, once, many in repetition_rows():
        same = once == many
        ok &= same
        print(f"  {case}: {once:.6f} -> {many:.6f} {'ok' if same else 'MOVED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
