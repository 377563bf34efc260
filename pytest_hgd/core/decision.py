"""One run's decision, a pure function of its evidence and the gate's policy.

The session gathers the evidence (the payloads the pairs and rollouts reported, what was
skipped, the prompts' hashes, the agent, which pairs ran); `decide_run` turns it, the
ledger's earlier runs and the probe's result into the decision: every pair's and rollout's
delta made again from their counts (`core.pairs.decide_pairs`: one corrected family over
all the run's pairs, whichever worker or shard ran them), counts per delta, the verdict and
its reasons, the pressure, the ledger record. The ledger, the terminal summary
and the JSON, Markdown and HTML reports read the decision; none recomputes a count or a
verdict. No pytest and no I/O here, so a serial run, the xdist controller, a merge of CI
shards or a search step can all call it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_hgd.core import gate
from pytest_hgd.core import record as records
from pytest_hgd.core.model import Delta
from pytest_hgd.core.pairs import decide_pairs
from pytest_hgd.core.pressure import ProbeResult, compute_pressure

Payload = Mapping[str, Any]
TREND_RUNS = 50  # ledger runs shown in the report's pressure trend
EVIDENCE_VERSION = 1


@dataclass(frozen=True)
class RunEvidence:
    """What one run observed, as plain data."""

    pairs: Sequence[Payload]
    skipped: Sequence[Payload]
    rollouts: Sequence[Payload]
    baseline_hash: str | None
    candidate_hash: str
    agent: Mapping[str, object]
    commit: str | None = None
    selection: Mapping[str, Any] = field(
        default_factory=lambda: {"ran": 0, "enforced": 0, "why": [], "at_least": False}
    )

    @property
    def partial(self) -> bool:
        """Enforced pairs were left out (`-k`, `--lf`, `-x`, ...): no gate verdict."""
        return bool(self.selection.get("why"))

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data, as the shipped schema describes it (``$defs/evidence`` of the
        report schema; ``reports.report.validate_evidence`` checks it)."""
        return {
            "evidence_version": EVIDENCE_VERSION,
            "pairs": [dict(p) for p in self.pairs],
            "skipped": [dict(s) for s in self.skipped],
            "rollouts": [dict(r) for r in self.rollouts],
            "baseline_hash": self.baseline_hash,
            "candidate_hash": self.candidate_hash,
            "agent": dict(self.agent),
            "commit": self.commit,
            "selection": dict(self.selection),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunEvidence:
        """The evidence ``to_json`` wrote (validate it first: this trusts its shape)."""
        return cls(
            pairs=list(data["pairs"]),
            skipped=list(data["skipped"]),
            rollouts=list(data["rollouts"]),
            baseline_hash=data["baseline_hash"],
            candidate_hash=data["candidate_hash"],
            agent=dict(data["agent"]),
            commit=data.get("commit"),
            selection=dict(data["selection"]),
        )


@dataclass(frozen=True)
class Policy:
    """The gate's rules: what fails it, and how pressure is read."""

    strict: bool = False
    alpha: float = 0.05
    max_pressure: float | None = None
    pressure_window: int = 20
    pressure_warn: float = 0.7
    allow_undecided: bool = False  # --hgd-allow-undecided: undecided pairs do not fail it
    prices: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # model: in, out


@dataclass(frozen=True)
class RunDecision:
    """Everything the outputs read: made once, by `decide_run`. ``pairs`` and ``rollouts``
    are the evidence's payloads with their deltas (and p-values) as decided here;
    ``redecided`` names the pairs whose test outcome said otherwise (under xdist, a worker
    decides its items' outcomes on its share of the error budget)."""

    pairs: list[dict[str, Any]]
    rollouts: list[dict[str, Any]]
    redecided: list[str]
    counts: dict[str, int]
    rollout_counts: dict[str, int]
    reasons: list[str]
    verdict: str
    pressure: dict[str, Any]
    record: dict[str, Any]  # the ledger record, verdict and pressure included
    trend: list[dict[str, Any]]
    calls: dict[str, Any]
    samples: dict[str, Any]
    usage: dict[str, Any] = field(default_factory=dict)


def decide_run(
    evidence: RunEvidence,
    policy: Policy,
    history: Sequence[Mapping[str, Any]] = (),
    probe: ProbeResult | None = None,
) -> RunDecision:
    """The run's decision. ``history`` is the ledger before this run; partial runs in it are
    no evidence (pressure leaves them out)."""
    pairs = decide_pairs(evidence.pairs, policy.alpha)
    rollouts = [_rollout(r) for r in evidence.rollouts]
    counts = gate.count_deltas(p["delta"] for p in pairs)
    rollout_counts = gate.count_deltas(r["delta"] for r in rollouts)
    found = gate.evidence_reasons(counts, rollout_counts, policy.strict, policy.allow_undecided)
    record = records.ledger_record(
        pairs,
        evidence.skipped,
        baseline_hash=evidence.baseline_hash,
        candidate_hash=evidence.candidate_hash,
        agent=evidence.agent,
        verdict=gate.verdict(found),  # what the pairs and rollouts say: pressure's input
        alpha=policy.alpha,
        commit=evidence.commit,
        partial=evidence.partial,
    )
    record = {**record, **_change([*pairs, *rollouts], policy.strict, found)}
    pressure = compute_pressure(
        record,
        history,
        window=policy.pressure_window,
        probe=probe,
        warn_at=policy.pressure_warn,
    )
    reasons = list(found)
    limit = policy.max_pressure
    if limit is not None and pressure["value"] > limit:
        reasons.append(f"pressure {pressure['value']:.2f} above --hgd-max-pressure={limit:g}")
    verdict = gate.verdict(reasons)
    calls, usage = _calls(pairs, rollouts), _usage(pairs, evidence.agent, policy.prices)
    record = {**record, "verdict": verdict, "pressure": pressure, "calls": calls, "usage": usage}
    points = (records.trend_point(r) for r in [*history, record])
    return RunDecision(
        pairs=pairs,
        rollouts=rollouts,
        redecided=[
            str(p["id"])
            for p, d in zip(evidence.pairs, pairs, strict=True)
            if p["delta"] != d["delta"]
        ],
        counts=counts,
        rollout_counts=rollout_counts,
        reasons=reasons,
        verdict=verdict,
        pressure=pressure,
        record=record,
        trend=[point for point in points if point is not None][-TREND_RUNS:],
        calls=calls,
        usage=usage,
        samples=_samples(pairs, policy.alpha),
    )


def _calls(pairs: Sequence[Payload], rollouts: Sequence[Payload]) -> dict[str, Any]:
    calls = records.calls(pairs, rollouts)
    fixed = records.fixed_k_calls(pairs)
    return calls if fixed is None else {**calls, "fixed_k": fixed}


def _usage(
    pairs: Sequence[Payload],
    agent: Mapping[str, object],
    prices: Mapping[str, tuple[float, float]],
) -> dict[str, Any]:
    """Tokens per prompt, and their cost at the agent's model's price (ini ``hgd_prices``;
    a ``*`` entry prices any model)."""
    tokens = records.usage(pairs)
    model = str(agent.get("model") or agent.get("target") or "")
    price = prices.get(model, prices.get("*"))
    return {**tokens, "model": model or None, "cost": records.cost(tokens, price)}


def _rollout(rollout: Payload) -> dict[str, Any]:
    """A rollout's payload with its delta made again from its sides (the one-shot table);
    an agent error stays ``error``."""
    baseline, candidate = rollout.get("baseline"), rollout.get("candidate")
    if rollout.get("error") or not candidate:
        return {**rollout, "delta": Delta.ERROR.value}
    delta = gate.one_shot_delta(baseline["passed"] if baseline else None, candidate["passed"])
    return {**rollout, "delta": delta.value}


def _change(items: Sequence[Payload], strict: bool, reasons: Sequence[str]) -> dict[str, Any]:
    """What the run says of its change, from its pairs and rollouts alone (before
    ``--hgd-max-pressure``): ``accepted``; ``rejected`` when something the gate enforces
    failed (``other_blockers`` counts what is not a regressed pair: a rollout, a strict
    still_failing); ``inconclusive`` when only errors (or undecided pairs) failed it.
    Pressure reads it."""
    rejecting = [
        item
        for item in items
        if item["delta"] not in ("error", "undecided")
        and gate.fails_gate(Delta(item["delta"]), strict)
    ]
    undecided = any(item["delta"] == "undecided" for item in items)
    accepted = not reasons and not undecided  # an untested pair is no acceptance
    change = "accepted" if accepted else "rejected" if rejecting else "inconclusive"
    others = sum(1 for item in rejecting if item.get("rollout") or item["delta"] != "regressed")
    return {"change": change, "other_blockers": others}


def _samples(pairs: Sequence[Payload], alpha: float) -> dict[str, Any]:
    """K, alpha, and the largest baseline pool when it holds more than K samples."""
    samples: dict[str, Any] = {"max": records.max_samples(pairs), "alpha": alpha}
    pool = records.max_pool(pairs)
    if pool > samples["max"]:
        samples["pool"] = pool
    return samples
