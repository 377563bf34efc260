"""CI shards: which shard a pair belongs to, what a shard writes, and how shards merge.

A pair's shard follows from a stable hash of its node id, so adding pairs moves no other
pair. A shard run with ``--hgd-partial=PATH`` writes its evidence (`RunEvidence`) with what
must match across shards: the decision's settings, the prompts, the agent, the suite. `merge`
checks that the partials belong together and gives back the one run's evidence, which
`decision.decide_run` decides as it would a serial run's. Pure: the caller reads and writes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

from pytest_hgd.core.decision import Policy, RunEvidence

PARTIAL_VERSION = 1
_MUST_MATCH = {
    "settings": "their settings (alpha, samples, strictness, pressure, prices)",
    "collected": "the suite they collected (run every shard on the same commit, with the same "
    "files and options)",
    "prompt_files": "their prompts",
}


class MergeRefused(Exception):
    """The partials do not make one run; the message says which and why."""


def parse_shard(text: str) -> tuple[int, int]:
    """``I/N`` (1 <= I <= N) into (I, N); ValueError otherwise."""
    index, sep, count = text.partition("/")
    if not sep:
        raise ValueError(text)
    shard = (int(index), int(count))
    if not 1 <= shard[0] <= shard[1]:
        raise ValueError(text)
    return shard


def shard_of(node_id: str, count: int) -> int:
    """The shard (1-based, of ``count``) a pair or rollout belongs to: a stable hash of its
    node id, independent of every other pair."""
    digest = hashlib.sha256(node_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def suite_digest(entries: Sequence[tuple[str, str]]) -> str:
    """One hash of the whole suite: every (node id, content hash) a shard collected."""
    hasher = hashlib.sha256()
    for node_id, content in sorted(entries):
        hasher.update(f"{node_id}\0{content}\n".encode())
    return hasher.hexdigest()


def partial_document(
    evidence: RunEvidence,
    *,
    shard: tuple[int, int],
    settings: Mapping[str, Any],
    suite: Mapping[str, Any],
    prompts: Mapping[str, Any],
) -> dict[str, Any]:
    """What ``--hgd-partial`` writes (``$defs/partial`` of the report schema)."""
    return {
        "partial_version": PARTIAL_VERSION,
        "shard": list(shard),
        "settings": dict(settings),
        "collected": dict(suite),  # not "suite"/"prompts": the report's keys mean other things
        "prompt_files": dict(prompts),
        "evidence": evidence.to_json(),
    }


def policy_settings(policy: Policy) -> dict[str, Any]:
    """The gate's rules as a partial's settings hold them (plain JSON)."""
    rules = {field.name: getattr(policy, field.name) for field in fields(Policy)}
    rules["prices"] = {model: list(price) for model, price in policy.prices.items()}
    return rules


def policy_of(settings: Mapping[str, Any]) -> Policy:
    """The gate's rules from a partial's settings (`policy_settings`, read back)."""
    rules = {field.name: settings[field.name] for field in fields(Policy)}
    rules["prices"] = {model: (pair[0], pair[1]) for model, pair in settings["prices"].items()}
    return Policy(**rules)


def merge(partials: Sequence[tuple[str, Mapping[str, Any]]]) -> RunEvidence:
    """The one run's evidence from (name, partial) of every shard; MergeRefused when they
    are not the shards of one run: different settings, prompts, agent or suite, a shard
    twice, one missing."""
    if not partials:
        raise MergeRefused("no partials given")
    first_name, first = partials[0]
    count = first["shard"][1]
    seen: dict[int, str] = {}
    for name, partial in partials:
        index, total = partial["shard"]
        for what, said in _MUST_MATCH.items():
            if partial[what] != first[what]:
                raise MergeRefused(f"{name} and {first_name} differ in {said}")
        if partial["evidence"]["agent"] != first["evidence"]["agent"]:
            raise MergeRefused(f"{name} and {first_name} ran different agents")
        if total != count:
            raise MergeRefused(
                f"{name} is shard {index} of {total} but {first_name} is one of {count}"
            )
        if index in seen:
            raise MergeRefused(f"shard {index}/{count} is given twice: {seen[index]}, {name}")
        seen[index] = name
    missing = sorted(set(range(1, count + 1)) - set(seen))
    if missing:
        raise MergeRefused(
            f"shard(s) {', '.join(f'{i}/{count}' for i in missing)} missing: merge needs all"
        )
    return _combined([RunEvidence.from_json(p["evidence"]) for _, p in partials], first)


def _combined(shards: Sequence[RunEvidence], first: Mapping[str, Any]) -> RunEvidence:
    why = [  # what left pairs out of a shard, other than the sharding itself
        reason
        for s in shards
        for reason in s.selection.get("why", [])
        if not reason.startswith("--hgd-shard=")
    ]
    ran = sum(len(s.pairs) for s in shards)
    enforced = int(first["collected"]["enforced"])
    return RunEvidence(
        pairs=[pair for s in shards for pair in s.pairs],
        skipped=[skip for s in shards for skip in s.skipped],
        rollouts=[rollout for s in shards for rollout in s.rollouts],
        baseline_hash=shards[0].baseline_hash,
        candidate_hash=shards[0].candidate_hash,
        agent=shards[0].agent,
        commit=shards[0].commit,
        selection={
            "ran": ran,
            "enforced": max(ran, enforced),
            "why": why,
            "at_least": any(s.selection.get("at_least") for s in shards),
        },
    )
