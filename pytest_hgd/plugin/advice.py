"""The summary's last line: the exact next command to run, from the report and the
command line this run was started with."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any


def next_command(
    report: Mapping[str, Any], args: list[str], *, has_baseline: bool, lf_works: bool
) -> str:
    """What to do next. ``lf_works``: pytest's cache provider is on, so ``--lf`` works."""
    search = report.get("search")
    if search and not search.get("best_is_start") and search.get("command"):
        return f"gate the search's best prompt: {search['command']}"
    undecided = (report.get("counts") or {}).get("undecided", 0)
    budget = f"{undecided} pairs are undecided: raise --hgd-max-calls (or drop it) and run again"
    if report["verdict"] == "fail":
        failing = [*report["pairs"], *report["rollouts"]]
        if undecided and not any(p["delta"] in ("regressed", "new_fail", "error") for p in failing):
            return budget
        if any(p["delta"] == "error" for p in failing) and not any(
            p["delta"] in ("regressed", "new_fail") for p in failing
        ):
            what = "check the agent or its endpoint (the errors above say what it did)"
        else:
            what = "fix the prompt"
        return f"{what}, then rerun the failing pairs first: {_rerun_failing(args, lf_works)}"
    if report.get("partial"):
        return (
            "run every enforced pair (no -k, -m, --lf, --deselect, node ids or -x) "
            "for the gate's verdict"
        )
    if undecided:
        return f"not a full verdict: {budget}"
    if not has_baseline:
        command = shlex.join(["pytest", *args])
        return f"compare against the champion: {command} --hgd-baseline=git:main:PATH"
    return "the candidate passes the gate: merge it to make it the champion"


SEARCH_ONLY = ("--hgd-search", "--hgd-search-policy", "--hgd-holdout", "--hgd-search-out")


def _rerun_failing(args: list[str], lf_works: bool) -> str:
    """The command again (without the search's options: a run of the failing pairs alone
    cannot search), with ``--lf`` unless it has it or pytest's cache is off."""
    args = without_options(args, SEARCH_ONLY)
    if any(arg in ("--lf", "--last-failed") for arg in args) or not lf_works:
        return shlex.join(["pytest", *args])
    return shlex.join(["pytest", *args, "--lf"])


def without_options(args: list[str], names: Sequence[str]) -> list[str]:
    """``args`` without the options ``names`` (``--name=value``, or ``--name value`` for
    those that take one, or a bare flag)."""
    flags = {"--hgd", "--lf", "--last-failed"}
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in names:
            skip = "=" not in arg and name not in flags
            continue
        kept.append(arg)
    return kept
