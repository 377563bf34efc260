"""The input formats of ``hgd ingest``: its ``--format`` options, how a batch is read, and
what the summary says about it (the rest of the command is in ``cli.py``)."""

from __future__ import annotations

import argparse
import itertools
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pytest_hgd.suite.chat_format import (
    SKIPPED_KINDS,
    ChatReader,
    OutcomeRule,
    OutcomesFileError,
    Roles,
    detect_format,
    load_outcomes,
)
from pytest_hgd.suite.ingest import Conversation, IngestResult, parse_conversation

FORMATS = ("auto", "hgd", "chat")
CHAT_OPTIONS = ("outcomes", "outcome_key", "lead_value", "agent_role", "customer_role")
SHOWN_IDS = 5  # ids of an outcomes file not in the batch, named in the warning


class UsageProblem(Exception):
    """Options that do not fit together, or an input that cannot be used (exit 2)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--format`` and the chat format's options of ``hgd ingest``."""
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="auto",
        help="hgd: {id, outcome, turns} a line; chat: OpenAI chat format {id, messages}; "
        "auto (default): by the first line's keys ('turns' or 'messages')",
    )
    chat = parser.add_argument_group("chat format")
    chat.add_argument(
        "--outcomes",
        metavar="FILE",
        type=Path,
        help="each conversation's outcome, from a file of its own: CSV rows id,outcome or JSON "
        "Lines {id, outcome} (instead of --outcome-key)",
    )
    chat.add_argument(
        "--outcome-key",
        metavar="KEY",
        help="the record's key holding its outcome (default outcome; a.b for a nested key)",
    )
    chat.add_argument(
        "--lead-value",
        metavar="VALUE",
        action="append",
        help="an outcome value that means lead (repeatable); any other value is then no_lead. "
        "Without it, outcomes must be lead or no_lead",
    )
    chat.add_argument(
        "--agent-role", metavar="ROLE", help="the agent's messages' role (default assistant)"
    )
    chat.add_argument(
        "--customer-role", metavar="ROLE", help="the customer's messages' role (default user)"
    )


@dataclass
class Reading:
    """How a batch is read: its lines, the line parser, the format and why."""

    lines: Iterator[bytes]
    parse: Callable[[str], Conversation]
    format: str
    why: str
    chat: ChatReader | None = None

    def summary(self, result: IngestResult, lines: list[str]) -> list[str]:
        """The summary's lines, with what it says about the input after the first."""
        return [*lines[:1], *self._input_lines(result), *lines[1:]]

    def _input_lines(self, result: IngestResult) -> list[str]:
        lines = [f"  read as {self.format} format ({self.why})"]
        skipped = [
            f"{result.skipped[kind]} {kind}{'s' * (result.skipped[kind] != 1)}"
            for kind in SKIPPED_KINDS
            if result.skipped[kind]
        ]
        if skipped:
            lines.append(f"  left out of the turns: {', '.join(skipped)}")
        if self.chat is not None and self.chat.without_outcome:
            count = self.chat.without_outcome
            lines.append(
                f"  {count} conversation{'s' * (count != 1)} without an outcome, not ingested "
                "(listed on stderr)"
            )
        return lines

    def warnings(self) -> list[str]:
        """Ids of the outcomes file that no line of the batch had."""
        if self.chat is None or not self.chat.unmatched:
            return []
        ids = sorted(self.chat.unmatched)
        shown = ", ".join(repr(i) for i in ids[:SHOWN_IDS]) + ", ..." * (len(ids) > SHOWN_IDS)
        return [
            f"hgd ingest: warning: {len(ids)} id{'s' * (len(ids) != 1)} of "
            f"{self.chat.outcomes_source} not in the batch: {shown}"
        ]


def _peek(lines: Iterator[bytes]) -> tuple[bytes | None, int, Iterator[bytes]]:
    """The first non-blank line, its number, and every line again (the first ones held)."""
    held = []
    for line in lines:
        held.append(line)
        if line.strip():
            return line, len(held), itertools.chain(held, lines)
    return None, len(held), iter(held)


def prepare(args: argparse.Namespace, lines: Iterator[bytes], source: str) -> Reading:
    """The reading of a batch for these options. Raises UsageProblem."""
    chosen = [f"--{name.replace('_', '-')}" for name in CHAT_OPTIONS if getattr(args, name)]
    if args.format == "auto":
        try:
            first, number, lines = _peek(lines)
        except OSError as exc:
            raise UsageProblem(f"cannot read {source}: {exc.strerror}") from None
        fmt, why = detect_format(first, number)
        if fmt == "hgd" and chosen and "'turns'" not in why:  # no sign of hgd format, and
            fmt, why = "chat", f"{why}, and {', '.join(chosen)} are chat-format options"
        why = f"auto: {why}"
    else:
        fmt, why = args.format, f"--format {args.format}"
    if fmt == "hgd":
        if chosen:
            hint = " Hint: --format chat reads it as chat format." if args.format == "auto" else ""
            raise UsageProblem(
                f"{', '.join(chosen)}: only for chat-format input, and {source} is read as "
                f"hgd format ({why}).{hint}"
            )
        return Reading(lines, parse_conversation, fmt, why)
    reader = chat_reader(args)
    return Reading(lines, reader, fmt, why, reader)


def chat_reader(args: argparse.Namespace) -> ChatReader:
    """The chat-format line reader for these options. Raises UsageProblem."""
    roles = Roles(args.agent_role or Roles.agent, args.customer_role or Roles.customer)
    if roles.agent == roles.customer:
        raise UsageProblem(f"--agent-role and --customer-role are both {roles.agent!r}")
    rule = OutcomeRule.of(args.lead_value)
    if args.outcomes is None:
        return ChatReader(roles, rule, args.outcome_key or "outcome")
    if args.outcome_key:
        raise UsageProblem("--outcomes and --outcome-key: give one of them")
    path: Path = args.outcomes
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise UsageProblem(f"--outcomes {path} is not a regular file")
        outcomes = load_outcomes(path, rule)
    except OSError as exc:
        raise UsageProblem(f"cannot read --outcomes {path}: {exc.strerror}") from None
    except OutcomesFileError as exc:
        raise UsageProblem(
            f"{exc}\n--outcomes {path} cannot be used: nothing ingested. Fix the lines above."
        ) from None
    return ChatReader(roles, rule, outcomes=outcomes, outcomes_source=str(path))


def fraction_read(stream: BinaryIO) -> Callable[[], float | None] | None:
    """How much of a regular file has been read (for the progress bar); None for a pipe."""
    try:
        size = os.fstat(stream.fileno()).st_size
        stream.tell()
    except (OSError, ValueError):
        return None
    if size <= 0:
        return None
    return lambda: min(stream.tell() / size, 1.0)
