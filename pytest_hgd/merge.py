"""``hgd merge PATH...``: the one gate decision over the partials of a run's CI shards.

Each shard ran ``pytest --hgd --hgd-shard=I/N --hgd-partial=PATH``. The partials must belong
together (`core.shards.merge`); their evidence, combined, is decided by the same
`core.decision.decide_run` as a serial run, so the reports and the ledger record are a
single run's over the same replies (the probe aside: a merge calls no agent).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pytest_hgd.core.decision import decide_run
from pytest_hgd.core.shards import MergeRefused, merge, policy_of
from pytest_hgd.reports.report import NotAPartial, build_report, validate_partial, write_json
from pytest_hgd.reports.summary import render_terminal, write_markdown
from pytest_hgd.storage.ledger import append_record, read_ledger

EXIT_PASS, EXIT_FAIL, EXIT_REFUSED = 0, 1, 2


def add_parser(commands: Any) -> None:
    """The ``merge`` subcommand of ``hgd``."""
    parser = commands.add_parser(
        "merge",
        help="decide the gate over the partials of every CI shard",
        description="Check that the partials (pytest --hgd --hgd-shard=I/N "
        "--hgd-partial=PATH) are every shard of one run, then make the gate's one decision "
        "over all their pairs. Exit status: 0 the gate passes, 1 it fails, 2 the partials "
        "do not belong together (or cannot be read).",
    )
    parser.add_argument("partials", metavar="PATH", type=Path, nargs="+", help="the partials")
    for flag, what in (
        ("--report", "the JSON report"),
        ("--markdown", "the Markdown summary"),
        ("--html", "the HTML report"),
        ("--ledger", "the ledger to read history from and append the run to (none unless given)"),
    ):
        parser.add_argument(flag, metavar="PATH", type=Path, help=what)
    parser.set_defaults(handler=run_merge)


def _refuse(message: str) -> int:
    print(f"hgd merge: error: {message}", file=sys.stderr)
    return EXIT_REFUSED


def _read(paths: list[Path]) -> list[tuple[str, dict[str, Any]]] | str:
    """Each partial, or why one cannot be used."""
    partials = []
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            validate_partial(data)
        except OSError as exc:
            return f"cannot read {path}: {exc.strerror or exc}"
        except ValueError as exc:
            return f"{path} is not JSON ({exc})"
        except NotAPartial as exc:
            return (
                f"{path} is not a shard's partial: {exc}. Hint: write "
                "partials with pytest --hgd --hgd-shard=I/N --hgd-partial=PATH"
            )
        partials.append((str(path), data))
    return partials


def run_merge(args: argparse.Namespace) -> int:
    read = _read(list(args.partials))
    if isinstance(read, str):
        return _refuse(read)
    try:
        evidence = merge(read)
    except MergeRefused as exc:
        return _refuse(f"{exc}. Hint: merge the partials of one run, every shard once")
    first = read[0][1]
    history = []
    if args.ledger is not None and args.ledger.exists():
        ledger = read_ledger(args.ledger)
        for problem in ledger.problems:
            print(f"hgd: ledger: {problem}", file=sys.stderr)
        history = ledger.records
    decision = decide_run(evidence, policy_of(first["settings"]), history)
    if args.ledger is not None:
        append_record(args.ledger, decision.record)
    report = build_report(
        evidence, decision, strict=first["settings"]["strict"], prompts=first["prompt_files"]
    )
    _write(report, args)
    advice = "see the failing pairs above" if report["verdict"] == "fail" else "merge it"
    print("=" * 30 + " HGD gate (merged) " + "=" * 30)
    for text, _ in render_terminal(report, advice):
        print(text)
    return EXIT_PASS if report["verdict"] == "pass" else EXIT_FAIL


def _write(report: dict[str, Any], args: argparse.Namespace) -> None:
    from pytest_hgd.reports.html_report import write_html

    writers = (("JSON report", args.report, write_json), ("Markdown report", args.markdown,
               write_markdown), ("HTML report", args.html, write_html))  # fmt: skip
    for kind, path, write in writers:
        if path is not None:
            write(report, path)
            print(f"{kind} written to {path}")
