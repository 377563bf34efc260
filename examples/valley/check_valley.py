"""Is prompts/start.txt in a valley? Brute force over every single-instruction edit and
every held-out split, with pytest-hgd's own pair loader and checks (no pytest run).

    python examples/valley/check_valley.py [--budget 3] [--holdout 0.2] [--seeds 100]

Exit 0 when the valley holds: no edit gains (net, in passing pairs) without regressing a
locked pair; some edit gains while regressing at most R locked pairs; and every edit that
budget:R could keep, on any split, gains on that split's held-out files too.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import combinations
from math import comb
from pathlib import Path

from pytest_hgd.core import model
from pytest_hgd.core.checks import BUILTIN_CHECKS, run_checks
from pytest_hgd.core.mutators import make_mutants
from pytest_hgd.suite.pairfile import load_pairs

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from agent import reply, single_edits  # noqa: E402

from pytest_hgd.core.search import split_holdout  # noqa: E402  (the search's own draw)


@dataclass(frozen=True)
class Pair:
    id: str
    file: str
    locked: bool
    test: model.Pair


@dataclass(frozen=True)
class Edit:
    """A candidate prompt and, per file, its locked pairs regressed and net gain vs start."""

    name: str
    text: str
    regressed: dict[str, int]  # locked pairs passing under the start, failing here
    fixed: dict[str, int]  # pairs failing under the start, passing here
    net: dict[str, int]  # pairs passing here minus pairs passing under the start

    def total(self, files: Iterable[str] | None = None) -> tuple[int, int]:
        keys = self.net if files is None else files
        return sum(self.regressed[f] for f in keys), sum(self.net[f] for f in keys)


def load_suite() -> list[Pair]:
    registry = {check.name: check for check in BUILTIN_CHECKS}
    pairs = []
    for path in sorted((HERE / "pairs").glob("*.hgd.yaml")):
        rel = path.relative_to(HERE).as_posix()
        for pair in load_pairs(path, rel, registry):
            pairs.append(Pair(f"{rel}::{pair.id}", rel, pair.kind == "locked", pair))
    return pairs


def passing(prompt: str, pairs: list[Pair]) -> dict[str, bool]:
    """Per pair id: do all its checks pass on the agent's reply under `prompt`?"""
    registry = {check.name: check for check in BUILTIN_CHECKS}
    out = {}
    for pair in pairs:
        text = reply(prompt, pair.test.messages())
        out[pair.id] = all(r.passed for r in run_checks(text, pair.test, registry))
    return out


def measure(name: str, text: str, start: dict[str, bool], pairs: list[Pair]) -> Edit:
    result = passing(text, pairs)
    files = sorted({p.file for p in pairs})
    regressed, fixed, net = (dict.fromkeys(files, 0) for _ in range(3))
    for p in pairs:
        regressed[p.file] += p.locked and start[p.id] and not result[p.id]
        fixed[p.file] += result[p.id] and not start[p.id]
        net[p.file] += result[p.id] - start[p.id]
    return Edit(name, text, regressed, fixed, net)


def candidates(start_text: str, start: dict[str, bool], pairs: list[Pair]) -> list[Edit]:
    """The single-instruction edits, then the built-in mutators' 40 mutants (seed 0)."""
    edits = [measure(name, text, start, pairs) for name, text in single_edits(start_text)]
    seen = {e.text for e in edits}
    for mutant in make_mutants(start_text, 40, 0):
        if mutant.text not in seen:
            seen.add(mutant.text)
            name = f"{mutant.operation}: {mutant.description}"
            edits.append(measure(name, mutant.text, start, pairs))
    return edits


def report_edits(pairs: list[Pair], start: dict[str, bool], edits: list[Edit]) -> None:
    locked = [p for p in pairs if p.locked]
    corrected = [p for p in pairs if not p.locked]
    files = sorted({p.file for p in pairs})
    print(f"suite: {len(files)} files, {len(pairs)} pairs", end=" ")
    print(f"({len(locked)} locked, {len(corrected)} corrected)")
    print(
        f"start: locked {sum(start[p.id] for p in locked)}/{len(locked)} pass,"
        f" corrected {sum(start[p.id] for p in corrected)}/{len(corrected)} pass"
    )
    print("\nlocked regressed  fixed  net gain  files hit  edit")
    idle = []
    for edit in edits:
        regressed, net = edit.total()
        fixed = sum(edit.fixed.values())
        if ":" in edit.name.split()[0] and not (regressed or fixed):
            idle.append(edit)  # a built-in mutant that changes no reply
            continue
        hit = sum(1 for f in files if edit.regressed[f])
        print(f"{regressed:>16} {fixed:>6} {net:>+9} {hit:>10}  {edit.name[:72]}")
    if idle:
        kinds = sorted({e.name.split(":")[0] for e in idle})
        print(f"{0:>16} {0:>6} {0:>+9} {0:>10}  {len(idle)} other built-in mutants", end=" ")
        print(f"({', '.join(kinds)}; seed 0): no reply changes")


def held_out_extremes(edit: Edit, count: int) -> tuple[int, int, int]:
    """Over every `count`-file held-out set: min held-out net, max held-out net, max
    held-out locked regressions (each is the sum of the `count` extreme files)."""
    nets = sorted(edit.net.values())
    most = sorted(edit.regressed.values(), reverse=True)
    return sum(nets[:count]), sum(nets[-count:]), sum(most[:count])


def strict_moves(edit: Edit, start_len: int, files: list[str], count: int) -> set[frozenset[str]]:
    """The held-out sets on whose training split `strict` would keep this edit over the start
    (no locked pair regressed on training, more training pairs passing or as many and shorter)."""
    walls = frozenset(f for f in files if edit.regressed[f])
    if len(walls) > count:
        return set()
    total = edit.total()[1]
    if not walls and total - held_out_extremes(edit, count)[0] < (len(edit.text) >= start_len):
        return set()  # even the training split most in its favour does not gain
    rest = [f for f in files if f not in walls]
    moves = set()
    for extra in combinations(rest, count - len(walls)):
        held = walls | frozenset(extra)
        train_net = total - sum(edit.net[f] for f in held)
        if train_net > 0 or (train_net == 0 and len(edit.text) < start_len):
            moves.add(held)
    return moves


@dataclass(frozen=True)
class Suite:
    files: list[str]
    passed: dict[str, int]  # per file: pairs passing under the start prompt
    size: dict[str, int]  # per file: pairs
    start_len: int


def best(edits: list[Edit], suite: Suite, held: frozenset[str], budget: int | None) -> Edit | None:
    """The search's pick on the training split (None: the start stays): strict (budget None)
    keeps no locked pair regressed; budget:R up to R, for a positive net gain. More training
    pairs passing wins; a tie goes to the shorter prompt."""
    train = [f for f in suite.files if f not in held]
    top: tuple[int, int] = (0, -suite.start_len)
    pick = None
    for edit in edits:
        regressed, net = edit.total(train)
        if budget is None and regressed:
            continue
        if budget is not None and (regressed > budget or net <= 0):
            continue
        if (net, -len(edit.text)) > top:
            top, pick = (net, -len(edit.text)), edit
    return pick


def summary(edit: Edit | None, suite: Suite, held: frozenset[str]) -> str:
    """Like the search report's S: training and held-out passing pairs, locked regressed."""
    parts = []
    for label, files in (("train", [f for f in suite.files if f not in held]), ("holdout", held)):
        regressed, net = edit.total(files) if edit else (0, 0)
        passed = sum(suite.passed[f] for f in files) + net
        parts.append(f"{label} {passed}/{sum(suite.size[f] for f in files)}")
        parts.append(f"locked regressed {regressed}")
    return ", ".join(parts)


def check_splits(edits: list[Edit], suite: Suite, fraction: float, budget: int) -> list[str]:
    """Every held-out split of this size, exactly; returns the valley's failures."""
    files, problems = suite.files, []
    count = len(split_holdout(files, fraction, 0))
    splits = comb(len(files), count)
    print(f"\nevery split: {count} of {len(files)} files held out, {splits:,} ways")
    moves: set[frozenset[str]] = set()
    for edit in edits:
        moves |= strict_moves(edit, suite.start_len, files, count)
    print(f"  strict stays put on {splits - len(moves):,} of them ({1 - len(moves) / splits:.2%})")
    escapes = []
    for edit in edits:
        regressed, net = edit.total()
        min_held, max_held, most_held = held_out_extremes(edit, count)
        if regressed - most_held > budget or net - min_held <= 0:
            continue  # budget:R keeps it on no split
        print(
            f"  budget:{budget} may keep {edit.name[:60]!r}: held-out net gain"
            f" {min_held:+} to {max_held:+} over every split"
        )
        if min_held <= 0:
            problems.append(f"{edit.name}: no gain on some split's held-out files")
        if regressed <= budget and net - max_held > 0:
            escapes.append(edit)
    if not escapes:
        problems.append(f"no edit that budget:{budget} keeps on every split")
    for edit in escapes:
        walls = sorted(stem(f) for f in files if edit.regressed[f])
        print(f"  budget:{budget} keeps {edit.name[:60]!r} on every split")
        print(f"  strict escapes too only where all of {', '.join(walls)} are held out")
    return problems


def stem(path: str) -> str:
    return Path(path).name.removesuffix(".hgd.yaml")


def check_seeds(edits: list[Edit], suite: Suite, fraction: float, budget: int, seeds: int) -> None:
    """The splits `--hgd-seed=0..seeds-1` draw, as the search would see them."""
    moved, gains = [], 0
    for seed in range(seeds):
        held = split_holdout(suite.files, fraction, seed)
        if best(edits, suite, held, None) is not None:
            moved.append(seed)
        pick = best(edits, suite, held, budget)
        gains += bool(pick and pick.total(held)[1] > 0)
        if seed == 0:
            print(f"\n--hgd-seed=0 holds out {', '.join(sorted(stem(f) for f in held))}")
            print(f"  start:     {summary(None, suite, held)}")
            strict = best(edits, suite, held, None)
            print(f"  strict:    {strict.name if strict else 'stays put (the start prompt)'}")
            print(f"  budget:{budget}:  {pick.name if pick else 'stays put'}")
            print(f"             {summary(pick, suite, held)}")
    print(f"\nseeds 0-{seeds - 1}: strict stays put on {seeds - len(moved)}", end="")
    print(f" (not on seeds {moved})" if moved else "", end="")
    print(f"; budget:{budget} escapes and gains on the held-out files on {gains}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=int, default=3, help="R of budget:R (default 3)")
    parser.add_argument("--holdout", type=float, default=0.2, help="held-out fraction (0.2)")
    parser.add_argument("--seeds", type=int, default=100, help="search seeds to replay (100)")
    args = parser.parse_args(argv)
    pairs = load_suite()
    start_text = (HERE / "prompts" / "start.txt").read_text(encoding="utf-8")
    start = passing(start_text, pairs)
    edits = candidates(start_text, start, pairs)
    report_edits(pairs, start, edits)
    files = sorted({p.file for p in pairs})
    suite = Suite(
        files,
        {f: sum(start[p.id] for p in pairs if p.file == f) for f in files},
        {f: sum(1 for p in pairs if p.file == f) for f in files},
        len(start_text),
    )
    problems = [f"{e.name} gains {e.total()[1]:+} with no locked pair regressed" for e in edits
                if e.total() [0] == 0 and e.total()[1] > 0]  # fmt: skip
    problems += check_splits(edits, suite, args.holdout, args.budget)
    check_seeds(edits, suite, args.holdout, args.budget, args.seeds)
    for problem in problems:
        print(f"NOT A VALLEY: {problem}")
    print("\nvalley: " + ("no" if problems else "yes"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
