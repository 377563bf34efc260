"""The probe: mutants of the candidate prompt, each run through the gate (no pytest here)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_hgd.core import stats
from pytest_hgd.core.checks import CheckType
from pytest_hgd.core.model import Pair
from pytest_hgd.core.mutators import Mutant, Mutator, make_mutants
from pytest_hgd.core.pressure import ProbeResult
from pytest_hgd.run.evaluator import Evaluator
from pytest_hgd.run.prompts import Prompt
from pytest_hgd.run.runner import Scheduler
from pytest_hgd.suite.pairfile import load_pairs


@dataclass(frozen=True)
class ProbePlan:
    """What the probe needs: the pairs, their counts under the gate's reference prompt."""

    pairs: Sequence[tuple[str, Pair]]
    reference: Mapping[str, stats.PassCounts]
    samples: int  # the gate's default; a pair's own `samples:` wins, as in the gate


def run_probe(
    plan: ProbePlan,
    candidate: str,
    count: int,
    seed: int,
    *,
    scheduler: Scheduler,
    registry: dict[str, CheckType],
    alpha: float,
    mutators: Mapping[str, Mutator] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ProbeResult:
    """Run ``count`` mutants of the candidate through the gate against the reference.

    A mutant passes when no pair regresses against the reference (the same one-shot or
    sampled decision as the gate) and no agent call fails: a pair that could not be
    checked is not a pass. All mutants' calls are started at once, bounded by the
    scheduler's concurrency.
    """
    mutants = make_mutants(candidate, count, seed, mutators)
    evaluators = []
    for mutant in mutants:
        prompt = Prompt(f"probe:{mutant.operation}", mutant.text)
        evaluator = Evaluator(scheduler, registry, prompt, None, plan.samples, alpha)
        for node_id, pair in plan.pairs:
            evaluator.submit(node_id, pair)
        evaluators.append(evaluator)
    details = []
    for index, (mutant, evaluator) in enumerate(zip(mutants, evaluators, strict=True)):
        details.append(_judge(mutant, evaluator, plan, alpha))
        if progress is not None:
            progress(index + 1, len(mutants))
    passed = sum(1 for d in details if d["passed"])
    return ProbeResult(passed=passed, total=len(mutants), details=details)


def _judge(
    mutant: Mutant, evaluator: Evaluator, plan: ProbePlan, alpha: float
) -> dict[str, object]:
    counts = []
    errors = 0
    for node_id, pair in plan.pairs:
        _, evaluation = evaluator.evaluate(node_id, pair)
        if evaluation.error is not None or node_id in evaluator.undecided:
            errors += 1  # not checked (an agent error, or --hgd-max-calls spent): no pass
            continue
        mutant_counts = stats.PassCounts(evaluation.passes, evaluation.runs)
        counts.append((plan.reference[node_id], mutant_counts))
    regressed = sum(1 for d in stats.decide(counts, alpha) if d.delta == "regressed")
    return {
        "operation": mutant.operation,
        "description": mutant.description,
        "regressed": regressed,
        "errors": errors,
        "passed": regressed == 0 and errors == 0,
    }


def probe_plan(
    pairs: Sequence[Mapping[str, Any]],
    rootpath: Path,
    registry: dict[str, CheckType],
    *,
    role: str,
    samples: int,
) -> ProbePlan:
    """The pairs that ran (their payloads), loaded again from their files (under xdist the
    controller collected nothing), with their counts under the gate's reference ``role``."""
    reference = {
        str(p["id"]): stats.PassCounts(p[role]["passes"], p[role]["runs"])
        for p in pairs
        if p.get(role)
    }
    by_file: dict[str, set[str]] = {}
    for node_id in reference:
        path, _, pair_id = node_id.rpartition("::")
        by_file.setdefault(path, set()).add(pair_id)
    loaded = []
    for path, ids in sorted(by_file.items()):
        for pair in load_pairs(rootpath / path, path, registry):
            if pair.id in ids:
                loaded.append((f"{path}::{pair.id}", pair))
    return ProbePlan(loaded, reference, samples)
