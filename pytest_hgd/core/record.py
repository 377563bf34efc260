"""A finished run as plain values: its agent calls and its ledger record (no pytest, no I/O;
``storage.ledger`` reads and appends the records)."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_hgd.core.model import ALL_DELTAS

SCHEMA_VERSION = 1  # of a ledger record
Payload = Mapping[str, Any]
ROLES = ("baseline", "candidate")


def calls(pairs: Sequence[Payload], rollouts: Sequence[Payload] = ()) -> dict[str, Any]:
    """Agent calls made and replies taken from the cache, per prompt: every call, the
    rollouts' included (``rollouts`` holds their share of ``baseline``/``candidate``)."""
    made = dict.fromkeys(ROLES, 0)
    hits = dict.fromkeys(ROLES, 0)
    in_rollouts = dict.fromkeys(ROLES, 0)
    for item in (*pairs, *rollouts):
        for role in ROLES:
            result = item.get(role)
            if result:
                called = result.get("called", 0)
                made[role] += called
                # a pair's results count runs; a rollout's, the replies it took from the cache
                hits[role] += result["cached"] if "cached" in result else result["runs"] - called
                if item.get("rollout"):
                    in_rollouts[role] += called
    return {**made, "cache_hits": hits, "rollouts": in_rollouts}


def fixed_k_calls(pairs: Sequence[Payload]) -> dict[str, int] | None:
    """With screened pairs (``--hgd-samples=auto``): the new calls a run of fixed K would
    have made for the screened pairs that were decided, per prompt (their K samples the cache
    did not hold when the run began: ``fixed_k`` in each payload), and ``auto``, what this
    run made for those same samples (a confirmation's fresh baseline samples, which either
    run draws for a close pair, left out of both). None when no pair was screened."""
    screened = [p for p in pairs if p.get("fixed_k") and p.get("delta") != "undecided"]
    if not screened:
        return None
    fixed = {role: sum(p["fixed_k"].get(role, 0) for p in screened) for role in ROLES}
    made = 0
    for pair in screened:
        for role in ROLES:
            result = pair.get(role) or {}
            made += result.get("called", 0) - (result.get("confirm") or [0, 0])[1]
    return {**fixed, "auto": made}


def usage(pairs: Sequence[Payload]) -> dict[str, dict[str, int]]:
    """Tokens per prompt over the pairs' calls that reported them."""
    total = {role: {"input_tokens": 0, "output_tokens": 0, "calls": 0} for role in ROLES}
    for pair in pairs:
        for role in ROLES:
            reported = (pair.get(role) or {}).get("usage")
            if reported:
                for key in total[role]:
                    total[role][key] += reported[key]
    return total


def cost(
    tokens: Mapping[str, Mapping[str, int]], price: tuple[float, float] | None
) -> dict[str, float] | None:
    """What the tokens cost at ``price`` (input, output per million tokens); None without."""
    if price is None:
        return None
    each = {
        role: round((t["input_tokens"] * price[0] + t["output_tokens"] * price[1]) / 1e6, 9)
        for role, t in tokens.items()
    }
    return {**each, "total": round(sum(each.values()), 9)}


def max_samples(pairs: Sequence[Payload]) -> int:
    """K: the most samples a pair asked for or ran under the candidate (a screened pair may
    stop short of it; a sampled baseline's pool can hold more, from the cache: `max_pool`)."""
    runs = (p["candidate"]["runs"] for p in pairs if p.get("candidate"))
    asked = (p["samples"] for p in pairs if isinstance(p.get("samples"), int))
    return max((*runs, *asked), default=1)


def max_pool(pairs: Sequence[Payload]) -> int:
    """The largest baseline pool of the run: cached samples and this run's together."""
    return max((p["baseline"]["runs"] for p in pairs if p.get("baseline")), default=0)


def _side(result: Mapping[str, Any] | None) -> list[int] | None:
    return [result["passes"], result["runs"]] if result else None


def ledger_record(
    pairs: Sequence[Payload],
    skipped: Sequence[Payload],
    *,
    baseline_hash: str | None,
    candidate_hash: str,
    agent: Mapping[str, object],
    verdict: str,
    alpha: float,
    commit: str | None,
    partial: bool = False,
) -> dict[str, Any]:
    """This run in the ledger's format (``pressure`` is added once it is computed).

    ``verdict`` is the gate's, made once (`gate.verdict`); a ``partial`` run (pairs left
    out) is marked so that pressure, trends and growth leave it out."""
    entries: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        entry: dict[str, Any] = {"kind": pair["kind"], "delta": pair["delta"]}
        for role in ROLES:
            result = pair.get(role)
            entry[role] = _side(result)
            if result and result.get("called", 1) == 0:
                entry[f"{role}_cached"] = True
            elif result and result.get("fresh"):
                entry[f"{role}_fresh"] = list(result["fresh"])  # the rest was cached
        if pair.get("pair_hash"):
            entry["pair_hash"] = pair["pair_hash"]
        entries[str(pair["id"])] = entry
    samples = max_samples(pairs)
    extra: dict[str, Any] = {"agent": dict(agent)}
    if samples > 1:
        extra["gate"] = {"samples": samples, "alpha": alpha}
    if partial:
        extra["partial"] = True
    return new_record(
        candidate_hash=candidate_hash,
        baseline_hash=baseline_hash,
        verdict=verdict,
        pairs=entries,
        commit=commit,
        retired=[str(s["id"]) for s in skipped if s["status"] == "retired"],
        pending_review=sum(1 for s in skipped if s["status"] == "pending_review"),
        **extra,
    )


def trend_point(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """One ledger run as a point of the pressure trend, or None when it has no pressure (or
    is a partial run, no evidence of the suite)."""
    pressure = record.get("pressure")
    if record.get("partial") is True or not isinstance(pressure, Mapping):
        return None
    if not isinstance(pressure.get("value"), int | float):
        return None
    constraints = pressure.get("constraints")
    count = constraints.get("value") if isinstance(constraints, Mapping) else None
    calls = record.get("calls")
    made = [calls.get(r) for r in ROLES] if isinstance(calls, Mapping) else []
    cost = (
        (record.get("usage") or {}).get("cost")
        if isinstance(record.get("usage"), Mapping)
        else None
    )
    return {
        "time": record.get("time"),
        "pressure": pressure["value"],
        "constraints": count if isinstance(count, int) else None,
        "verdict": record.get("verdict"),
        "candidate": record.get("baseline_hash") not in (None, record.get("candidate_hash")),
        "calls": sum(made) if made and all(isinstance(x, int) for x in made) else None,
        "cost": cost.get("total") if isinstance(cost, Mapping) else None,
    }


def now_iso() -> str:
    """The current time, UTC, ISO-8601 with seconds."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def new_record(
    *,
    candidate_hash: str,
    verdict: str,
    pairs: Mapping[str, Mapping[str, Any]],
    baseline_hash: str | None = None,
    commit: str | None = None,
    retired: Sequence[str] = (),
    pending_review: int = 0,
    time: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A ledger record with counts and regressed ids derived from ``pairs``; extra keys kept."""
    counts = dict.fromkeys(ALL_DELTAS, 0)
    for entry in pairs.values():
        delta = entry.get("delta")
        if isinstance(delta, str) and delta in counts:
            counts[delta] += 1
    record: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "time": time if time is not None else now_iso(),
        "commit": commit,
        "baseline_hash": baseline_hash,
        "candidate_hash": candidate_hash,
        "counts": counts,
        "verdict": verdict,
        "regressed": sorted(pid for pid, e in pairs.items() if e.get("delta") == "regressed"),
        "pairs": {pid: dict(entry) for pid, entry in pairs.items()},
        "retired": sorted(retired),
        "pending_review": pending_review,
    }
    record.update(extra)
    return record
