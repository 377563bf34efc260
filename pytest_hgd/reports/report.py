"""The gate report: built from the pairs' results, checked against its schema, written as
JSON. Its terminal and Markdown renderings are `summary`'s."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_hgd.core import gate, stats
from pytest_hgd.core.blame import ReportBlame
from pytest_hgd.core.decision import RunDecision, RunEvidence
from pytest_hgd.core.fastschema import Validate, compile_schema
from pytest_hgd.core.suite_test import suite_comparison
from pytest_hgd.storage.cache import write_atomic

if TYPE_CHECKING:  # imported only for a report the compiled check rejects: slow to import
    import jsonschema

SCHEMA_VERSION = 1


@lru_cache(maxsize=1)
def report_schema() -> dict[str, Any]:
    text = resources.files("pytest_hgd").joinpath("schemas/report.schema.json").read_text()
    return dict(json.loads(text))


def build_report(
    evidence: RunEvidence,
    decision: RunDecision,
    *,
    strict: bool,
    prompts: Mapping[str, Any],
    blame: ReportBlame | None = None,
) -> dict[str, Any]:
    """The report of a run: its evidence, and the decision `decision.decide_run` made of it
    (counts, verdict, pressure: read, never recomputed); ``blame`` adds what ``--hgd-blame``
    found to the regressed pairs and rollouts."""
    pairs = sorted(decision.pairs, key=lambda p: str(p["id"]))
    rollouts = decision.rollouts
    selection = dict(evidence.selection)
    blamed = blame or ReportBlame()
    return {
        "schema_version": SCHEMA_VERSION,
        "verdict": decision.verdict,
        "verdict_reasons": list(decision.reasons),
        "partial": evidence.partial,
        "selection": selection,
        "strict": strict,
        "counts": dict(decision.counts),
        "pairs": [{**p, **blamed.pairs.get(str(p["id"]), {})} for p in pairs],
        "skipped": sorted((dict(s) for s in evidence.skipped), key=lambda s: str(s["id"])),
        "tags": gate.tag_pass_rates(pairs),
        "prompts": dict(prompts),
        "agent": dict(evidence.agent),
        "calls": dict(decision.calls),
        "usage": dict(decision.usage),
        "pressure": dict(decision.pressure),
        "samples": dict(decision.samples),
        "trend": [dict(point) for point in decision.trend],
        "rollouts": sorted(
            ({**r, **blamed.rollouts.get(str(r["id"]), {})} for r in rollouts),
            key=lambda r: str(r["id"]),
        ),
        "rollout_summary": _rollout_summary(pairs, rollouts, decision.rollout_counts)
        if rollouts
        else None,
        "suite": _suite(pairs),
        "flaky": [
            {"id": p["id"], "passes": p["baseline"]["passes"], "runs": p["baseline"]["runs"]}
            for p in pairs
            if p.get("flaky")
        ],
    }


def _rollout_summary(
    pairs: Sequence[Mapping[str, Any]],
    rollouts: Sequence[Mapping[str, Any]],
    counts: Mapping[str, int],
) -> dict[str, Any]:
    """Teacher-forced (pairs) against free-running (rollouts) over the same conversations."""
    files = {str(r["id"]).rpartition("::")[0]: r for r in rollouts}
    forced = [p for p in pairs if str(p["id"]).rpartition("::")[0] in files]
    runs = sum(p["candidate"]["runs"] for p in forced if p.get("candidate"))
    passes = sum(p["candidate"]["passes"] for p in forced if p.get("candidate"))
    free = [r for r in rollouts if r.get("candidate")]
    hidden = []
    for path, rollout in sorted(files.items()):
        own = [p for p in forced if str(p["id"]).startswith(path + "::")]
        candidate = rollout.get("candidate")
        all_pass = bool(own) and all(
            p.get("candidate") and p["candidate"]["passes"] == p["candidate"]["runs"] for p in own
        )
        if candidate and not candidate["passed"] and all_pass:
            hidden.append(
                {
                    "id": rollout["id"],
                    "conversation": rollout["conversation"],
                    "first_failed_turn": candidate["first_failed_turn"],
                    "failed_check": candidate["failed_check"],
                    "message": candidate["message"],
                }
            )
    return {
        "counts": dict(counts),
        "teacher_forced_pass_rate": round(passes / runs, 4) if runs else None,
        "free_running_pass_rate": round(
            sum(1 for r in free if r["candidate"]["passed"]) / len(free), 4
        )
        if free
        else None,
        "pairs_pass_rollout_fails": hidden,
    }


def _suite(pairs: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The paired sign test over the pairs that ran under both prompts."""
    counted = [
        (
            stats.PassCounts(p["baseline"]["passes"], p["baseline"]["runs"]),
            stats.PassCounts(p["candidate"]["passes"], p["candidate"]["runs"]),
        )
        for p in pairs
        if p.get("baseline") and p.get("candidate") and p["delta"] != "undecided"
    ]
    return dict(suite_comparison(counted)) if counted else None


@lru_cache(maxsize=1)
def _fast_validator() -> Validate | None:
    return compile_schema(report_schema())


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    import jsonschema

    return jsonschema.Draft202012Validator(report_schema())


@lru_cache(maxsize=2)
def _part_validator(definition: str) -> jsonschema.Draft202012Validator:
    """A validator of one ``$defs`` entry; its parts are the report's: one definition each."""
    import jsonschema

    root = report_schema()
    schema = {"$defs": root["$defs"], "properties": root["properties"]}
    return jsonschema.Draft202012Validator({**schema, "$ref": f"#/$defs/{definition}"})


def _raise_first(validator: jsonschema.Draft202012Validator, data: Mapping[str, Any]) -> None:
    import jsonschema

    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        raise error


class NotAPartial(Exception):
    """A document that breaks ``$defs/partial``: where (a JSON path) and what is wrong. Our
    own type, so a caller catches it whichever copy of jsonschema made the check."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"at {where}: {problem}")
        self.where, self.problem = where, problem


def validate_partial(partial: Mapping[str, Any]) -> None:
    """Raise `NotAPartial` when a shard's partial (``--hgd-partial``) breaks ``$defs/partial``
    of the shipped schema."""
    import jsonschema

    error = jsonschema.exceptions.best_match(_part_validator("partial").iter_errors(partial))
    if error is not None:
        raise NotAPartial("/".join(map(str, error.absolute_path)) or "the top level", error.message)


def write_partial(partial: Mapping[str, Any], path: Path) -> None:
    validate_partial(partial)
    write_atomic(path, json_text(partial))


def validate_evidence(evidence: Mapping[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` when ``RunEvidence.to_json()`` output (a shard's
    evidence, say) breaks the shipped schema (``$defs/evidence`` of the report schema)."""
    _raise_first(_part_validator("evidence"), evidence)


def validate(report: Mapping[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` when the report breaks the shipped schema.

    The compiled check answers the common case (a valid report) in a fraction of the time;
    jsonschema judges, and words the error of, anything it does not pass."""
    fast = _fast_validator()
    if fast is not None and fast(report):
        return
    _raise_first(_validator(), report)


def write_json(report: Mapping[str, Any], path: Path) -> None:
    validate(report)
    write_atomic(path, json_text(report))


def json_text(report: Mapping[str, Any]) -> str:
    """The report as JSON indented by two spaces, except that each element of a top-level
    list (a pair, a rollout) is one line: as easy to read and to diff, and written by the
    json module's C encoder, which indented output does not use (4x faster for 1000 pairs).
    """
    fields = []
    for key, value in report.items():
        if isinstance(value, list) and value:
            rows = ",\n".join(f"    {_one_line(element)}" for element in value)
            text = f"[\n{rows}\n  ]"
        else:
            text = json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n  ")
        fields.append(f"  {json.dumps(key, ensure_ascii=False)}: {text}")
    return "{\n" + ",\n".join(fields) + "\n}\n"


def _one_line(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
