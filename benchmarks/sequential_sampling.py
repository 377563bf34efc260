"""``--hgd-samples=auto`` against fixed K = 10: false blocks, detection and agent calls.

Section (f) of ``benchmarks/gate_soundness.py`` (run on its own too). Synthetic pairs each
pass with a known probability under each prompt. Every simulated gate run draws what the
plugin draws and decides with the plugin's own functions: the screened design of
``pytest_hgd.core.screen`` (``design_for``: 2 candidate samples at the screen, the rest of
K = 10 only for pairs that go on) decided by ``stats.decide(..., screens=...)``, and fixed
K = 10 decided by ``stats.decide``. A warm baseline has 10 cached samples a pair (free); a
cold one draws its samples (2 at the screen, the rest when the pair goes on; fixed K draws
10). The gate blocks when any pair is ``regressed``. Calls are new agent calls per pair.

Rows: suites of 10, 200 and 2000 pairs; pass rates .97, .8, .5 and a mix drawn from
Beta(2, 0.5) (one draw per pair, fixed for the row); the no-op candidate (same rates), and
(a) 5 pairs .95 -> .30, (b) 1 pair .95 -> .30, (c) 5 % of the pairs (at least 1) each
dropping by .15, over the .97 and the Beta-mix suites.

    python benchmarks/sequential_sampling.py              # 2000 runs a row, ~10 min, 2 cores
    python benchmarks/sequential_sampling.py --runs 200   # a quick look
    python benchmarks/sequential_sampling.py --e2e 5 --only none   # the plugin itself, ~1 min

``--e2e R`` also runs the real plugin R times per row (``pytest --hgd --hgd-samples=auto`` in
a child process) on 200 pairs of the Beta mix, with the agent of ``gate_soundness.py``'s e2e
rows (replies drawn by hash with each pair's known rate), cold (``--hgd-no-cache``) and warm
(the baseline's 10 samples cached by a first run, a new candidate prompt with the same
rates). It counts the calls the plugin reports, compares them with the simulated row, and
checks that ``core.pairs.decide_pairs`` reproduces every reported delta and p-value.

Targets (issue 20): no-op block rate's 95 % upper end <= 5 % in every row; detection within
3 points of fixed K = 10 or better; mean new candidate calls a pair with a warm baseline
<= 3 at .97, <= 6 at .8, <= 5 on the mix; total new calls a pair with a cold baseline <= 7
at .97. Exit status 0 when every target is met.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from random import Random
from typing import Any

from pytest_hgd.core import stats
from pytest_hgd.core.screen import SCREEN, design_for
from pytest_hgd.core.stats import DEFAULT_ALPHA, PassCounts, Screened, decide, wilson_interval

K = 10
SIZES = (10, 200, 2000)
RATES = (".97", ".8", ".5", "mix")
CALL_TARGETS = {".97": 3.0, ".8": 6.0, "mix": 5.0}  # warm: mean new candidate calls a pair
COLD_TARGET = 7.0  # cold, at .97: total new calls a pair


@dataclass(frozen=True)
class Case:
    size: int
    rates: str
    scenario: str  # noop, a, b, c
    warm: bool


@dataclass(frozen=True)
class Result:
    case: Case
    runs: int
    auto_blocks: int
    fixed_blocks: int
    auto_candidate_calls: float  # a pair, mean over runs
    auto_baseline_calls: float
    fixed_calls: float  # candidate and baseline, a pair
    exact: tuple[float, float] | None = None  # no-op: mean conditional block chance, its SE


def suite_rates(case: Case, seed: int) -> tuple[list[float], list[float]]:
    """(baseline, candidate) pass rate of every pair: fixed for the row."""
    rng = Random(f"{seed}/{case.size}/{case.rates}")
    if case.rates == "mix":
        base = [rng.betavariate(2.0, 0.5) for _ in range(case.size)]
    else:
        base = [float(case.rates)] * case.size
    cand = list(base)
    if case.scenario in ("a", "b"):
        for i in range(min(case.size, 5 if case.scenario == "a" else 1)):
            base[i], cand[i] = 0.95, 0.30
    elif case.scenario == "c":
        for i in range(max(1, round(0.05 * case.size))):
            cand[i] = max(0.0, base[i] - 0.15)
    return base, cand


def _draw(rng: Random, runs: int, rate: float) -> int:
    return sum(rng.random() < rate for _ in range(runs))


def null_block_chance(
    pairs: Sequence[tuple[PassCounts | None, PassCounts]],
    screens: Sequence[Screened | None],
    alpha: float,
) -> float:
    """P(the auto gate blocks | every pair's screen and margins) when nothing changed.

    Given them, each tested pair's p-value has a known discrete law (``screened_tails``),
    and a no-op run blocks exactly when some p-value is at most the step-down's first
    level; pairs are independent. The exact chance, averaged over runs, estimates the
    block rate with far less noise than counting blocks."""
    tests = [
        stats._key(base, cand, screen, alpha)[0]
        for (base, cand), screen in zip(pairs, screens, strict=True)
        if base is not None and stats._went_on(screen)
    ]
    level = stats._family_level(Counter(tests), alpha, "less")
    survive = 1.0
    for key in tests:
        survive *= 1.0 - stats._size(key, level, "less")
    return 1.0 - survive


def one_run(
    rng: Random,
    base: Sequence[float],
    cand: Sequence[float],
    warm: bool,
    alpha: float,
    screen: int = SCREEN,
) -> tuple[bool, bool, int, int, int, float]:
    """One gate run each way: (auto blocks, fixed blocks, auto candidate calls, auto
    baseline calls, fixed calls, auto's exact null block chance given the run's margins)."""
    auto_pairs: list[tuple[PassCounts | None, PassCounts]] = []
    screens: list[Screened | None] = []
    fixed_pairs: list[tuple[PassCounts | None, PassCounts]] = []
    cand_calls = base_calls = fixed_calls = 0
    for pb, pc in zip(base, cand, strict=True):
        design = design_for(K, K if warm else 0, screen)
        s_b = _draw(rng, design.screen_baseline, pb)
        r_b = _draw(rng, design.more_baseline, pb)  # drawn only when the pair goes on
        s_c = _draw(rng, design.screen_candidate, pc)
        r_c = _draw(rng, design.more_candidate, pc)
        cand_calls += design.screen_candidate
        base_calls += 0 if warm else design.screen_baseline
        if design.goes_on(s_c, s_b):
            cand_calls += design.more_candidate
            base_calls += design.more_baseline
            auto_pairs.append(
                (
                    PassCounts(s_b + r_b, design.screen_baseline + design.more_baseline),
                    PassCounts(s_c + r_c, K),
                )
            )
        else:
            auto_pairs.append(
                (
                    PassCounts(s_b, design.screen_baseline),
                    PassCounts(s_c, design.screen_candidate),
                )
            )
        screens.append((design, s_c, s_b))
        # fixed K = 10 on the same draws where they overlap: the warm pool, all 10 samples
        fixed_pairs.append((PassCounts(s_b + r_b, K), PassCounts(s_c + r_c, K)))
        fixed_calls += K + (0 if warm else K)
    auto = decide(auto_pairs, alpha, one_shot=False, screens=screens)
    fixed = decide(fixed_pairs, alpha, one_shot=False)
    return (
        any(d.delta == "regressed" for d in auto),
        any(d.delta == "regressed" for d in fixed),
        cand_calls,
        base_calls,
        fixed_calls,
        null_block_chance(auto_pairs, screens, alpha),
    )


def run_case(case: Case, runs: int, seed: int, alpha: float, screen: int = SCREEN) -> Result:
    base, cand = suite_rates(case, seed)
    rng = Random(f"{seed}/{case}")
    auto_blocks = fixed_blocks = 0
    cand_calls = base_calls = fixed_calls = 0
    chances = []
    for _ in range(runs):
        a, f, c, b, fc, chance = one_run(rng, base, cand, case.warm, alpha, screen)
        auto_blocks += a
        fixed_blocks += f
        cand_calls += c
        base_calls += b
        fixed_calls += fc
        chances.append(chance)
    per = runs * case.size
    exact = None
    if case.scenario == "noop":
        mean = sum(chances) / runs
        spread = math.sqrt(sum((x - mean) ** 2 for x in chances) / max(1, runs - 1) / runs)
        exact = (mean, spread)
    return Result(
        case,
        runs,
        auto_blocks,
        fixed_blocks,
        cand_calls / per,
        base_calls / per,
        fixed_calls / per,
        exact,
    )


def cases() -> list[Case]:
    out = [Case(n, r, "noop", w) for n in SIZES for r in RATES for w in (True, False)]
    out += [
        Case(n, r, s, w)
        for s in ("a", "b", "c")
        for n in SIZES
        for r in (".97", "mix")
        for w in (True, False)
    ]
    return out


def _pct(blocks: int, runs: int) -> str:
    low, high = wilson_interval(blocks, runs)
    return f"{100 * blocks / runs:5.1f} % [{100 * low:4.1f}, {100 * high:4.1f}]"


def _exact(result: Result) -> str:
    if result.exact is None:
        return "—"
    mean, spread = result.exact
    return f"{100 * mean:.2f} % [{100 * (mean - 1.96 * spread):.2f}, {100 * (mean + 1.96 * spread):.2f}]"


def check(result: Result) -> list[str]:
    """The targets this row misses."""
    case, misses = result.case, []
    if case.scenario == "noop" and result.exact is not None:
        high = result.exact[0] + 1.96 * result.exact[1]
        if high > DEFAULT_ALPHA:
            misses.append(f"no-op block rate upper end {100 * high:.2f} % > 5 %")
    else:
        gap = (result.fixed_blocks - result.auto_blocks) / result.runs
        if gap > 0.03:
            misses.append(f"detection {100 * gap:.1f} points below fixed K = 10")
    warm_row = case.warm and case.rates in CALL_TARGETS and case.scenario == "noop"
    if warm_row and result.auto_candidate_calls > CALL_TARGETS[case.rates]:
        misses.append(f"candidate calls {result.auto_candidate_calls:.2f} a pair")
    if not case.warm and case.rates == ".97" and case.scenario == "noop":
        total = result.auto_candidate_calls + result.auto_baseline_calls
        if total > COLD_TARGET:
            misses.append(f"total calls {total:.2f} a pair")
    return misses


def render(results: Sequence[Result]) -> tuple[list[str], bool]:
    lines = [
        "| scenario | pairs | rates | baseline | auto: blocks [95 %] | auto: exact no-op rate "
        "[95 %] | fixed K=10: blocks [95 %] | auto calls a pair: candidate + baseline "
        "| fixed K=10 calls a pair | target |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    met = True
    for r in results:
        c = r.case
        misses = check(r)
        met = met and not misses
        lines.append(
            f"| {c.scenario} | {c.size} | {c.rates} | {'warm' if c.warm else 'cold'} "
            f"| {_pct(r.auto_blocks, r.runs)} | {_exact(r)} | {_pct(r.fixed_blocks, r.runs)} "
            f"| {r.auto_candidate_calls:.2f} + {r.auto_baseline_calls:.2f} | {r.fixed_calls:.0f} "
            f"| {'; '.join(misses) or 'met'} |"
        )
    return lines, met


def e2e_rows(runs: int, seed: int, alpha: float) -> tuple[list[str], bool]:
    """The plugin itself on the Beta mix, no-op and with five drops, cold and warm."""
    import gate_soundness as gs  # beside this script: its e2e suite and agent

    from pytest_hgd.core.pairs import decide_pairs

    lines = [
        "| e2e scenario | baseline | runs | blocked | candidate + baseline calls a pair "
        "(simulated) | decide_pairs reproduced |",
        "|---|---|---|---|---|---|",
    ]
    ok = True
    for scenario in ("noop", "a"):
        for warm in (False, True):
            case = Case(gs.PAIRS, "mix", scenario, warm)
            base, cand = suite_rates(case, seed)
            simulated = run_case(case, 200, seed, alpha)
            rows = [_e2e_run(gs, case, base, cand, f"{seed}/{r}", alpha) for r in range(runs)]
            reproduced = sum(
                [(p["delta"], p.get("p_value")) for p in decide_pairs(report["pairs"], alpha)]
                == [(p["delta"], p.get("p_value")) for p in report["pairs"]]
                for report in rows
            )
            ok = ok and reproduced == runs
            per = runs * gs.PAIRS
            made_c = sum(r["calls"]["candidate"] for r in rows) / per
            made_b = sum(r["calls"]["baseline"] for r in rows) / per
            blocked = sum(r["counts"]["regressed"] > 0 for r in rows)
            lines.append(
                f"| {scenario} | {'warm' if warm else 'cold'} | {runs} | {blocked} "
                f"| {made_c:.2f} + {made_b:.2f} ({simulated.auto_candidate_calls:.2f} + "
                f"{simulated.auto_baseline_calls:.2f}) | {reproduced}/{runs} |"
            )
    return lines, ok


def _e2e_run(
    gs: Any, case: Case, base: list[float], cand: list[float], run_seed: str, alpha: float
) -> dict[str, Any]:
    """One real gate run; warm: a first run caches the baseline's 10 samples a pair."""
    scenario = gs.Scenario(case.scenario, "", tuple(base), tuple(cand), case.scenario != "noop")
    with tempfile.TemporaryDirectory() as temp:
        directory = Path(temp)
        gs._write_suite(directory, scenario, run_seed)
        if not case.warm:
            gs._pytest_gate(directory, "auto", alpha, "--hgd-no-cache")
        else:
            gs._pytest_gate(directory, K, alpha)  # caches 10 samples under both prompts
            fresh = gs.CANDIDATE_PROMPT + "Thank the customer.\n"
            rates = json.loads((directory / "rates.json").read_text())
            rates["rates"][fresh] = list(cand)
            (directory / "rates.json").write_text(json.dumps(rates))
            (directory / "cand.txt").write_text(fresh)
            gs._pytest_gate(directory, "auto", alpha)
        report: dict[str, Any] = json.loads((directory / "report.json").read_text())
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=2000, help="simulated gate runs per row")
    parser.add_argument("--seed", type=int, default=20261204)
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--screen", type=int, default=SCREEN, help="candidate screen samples")
    parser.add_argument("--only", default="", help="scenarios to run, e.g. noop,b (default all)")
    parser.add_argument("--e2e", type=int, default=0, help="real plugin runs per e2e row")
    args = parser.parse_args(argv)
    sizes = {int(s) for s in args.sizes.split(",")}
    only = set(filter(None, args.only.split(",")))
    todo = [c for c in cases() if c.size in sizes and (not only or c.scenario in only)]
    settings = [(args.runs, args.seed, args.alpha, args.screen)] * len(todo)
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(run_case, todo, *zip(*settings, strict=True)))
    lines, met = render(results) if results else ([], True)
    if args.e2e:
        e2e_lines, e2e_ok = e2e_rows(args.e2e, args.seed, args.alpha)
        lines += ["", *e2e_lines]
        met = met and e2e_ok
    print(
        f"(f) --hgd-samples=auto (screen {args.screen}) against fixed K = {K}: "
        f"{args.runs} runs a row, alpha {args.alpha}"
    )
    print("\n".join(lines))
    print("every target met" if met else "TARGETS MISSED (see the last column)")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
