"""OpenAI chat-format records for ``hgd ingest`` (no pytest).

One conversation a line, ``{"id": ..., "messages": [{"role": ..., "content": ...}, ...]}``,
becomes the same :class:`~pytest_hgd.suite.ingest.Conversation` an hgd-format line does:
the agent's and the customer's messages are its turns (``assistant`` and ``user`` unless
mapped otherwise); system messages (the prompt is what is under test), tool calls, tool
results, empty messages and content parts other than text are left out and counted. The
outcome comes from a key of the record or from a separate file of ``id,outcome`` (CSV or
JSON Lines); a conversation without one is a bad line, never guessed.
"""

from __future__ import annotations

import csv
import io
import json
import shlex
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from pytest_hgd.suite.ingest import (
    BadLine,
    Conversation,
    conversation_id,
    load_record,
    record_tags,
)
from pytest_hgd.suite.suite_stats import Turn

OUTCOMES = ("lead", "no_lead")
SYSTEM_ROLES = ("system", "developer")  # the prompt: what the gate tests, never a pair
TOOL_ROLES = ("tool", "function")  # tool results ("function": the older API's name)
CHAT_KEYS = frozenset({"id", "messages", "tags"})
PART_SEPARATOR = "\n"  # between the text parts of one message
MAX_PROBLEMS = 20  # problems of an outcomes file listed before "... and N more"
Row = tuple[int, tuple[str, Any] | str]  # an outcomes file's line: (id, value), or the problem

# What a message left out was: the summary's words, in the order it lists them.
SYSTEM, TOOL_CALL, TOOL_RESULT = "system message", "tool call", "tool result"
EMPTY, NON_TEXT = "empty message", "non-text part"
SKIPPED_KINDS = (SYSTEM, TOOL_CALL, TOOL_RESULT, EMPTY, NON_TEXT)


class NoOutcome(BadLine):
    """A conversation whose outcome is not recorded: reported, never guessed."""


class OutcomesFileError(ValueError):
    """An outcomes file that cannot be used; ``problems`` are ``path:line: problem``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Roles:
    """Which chat roles are the agent's and the customer's."""

    agent: str = "assistant"
    customer: str = "user"


@dataclass(frozen=True)
class OutcomeRule:
    """How a recorded value becomes ``lead`` or ``no_lead``.

    Without lead values, the value must be ``lead`` or ``no_lead``; with them, a value among
    them is ``lead`` and any other ``no_lead``. Values are compared without case and
    surrounding spaces; JSON ``true``/``false`` and numbers as they are written in JSON."""

    lead_values: frozenset[str] | None = None

    @classmethod
    def of(cls, lead_values: list[str] | None) -> OutcomeRule:
        if not lead_values:
            return cls(None)
        return cls(frozenset(v.strip().casefold() for v in lead_values))

    def outcome(self, text: str) -> str:
        """``lead`` or ``no_lead`` for a value (not blank). ValueError for an unknown one."""
        value = text.strip().casefold()
        if self.lead_values is not None:
            return "lead" if value in self.lead_values else "no_lead"
        if value in OUTCOMES:
            return value
        raise ValueError(
            f"unknown outcome {text!r} (expected 'lead' or 'no_lead'; or give --lead-value "
            "once for each value that means lead, e.g. --lead-value lead --lead-value "
            f"{shlex.quote(text.strip())}: every other value is then no_lead)"
        )


def outcome_text(value: Any) -> str | None:
    """A recorded outcome as text: None when absent or blank. ValueError for a list or object."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        text = str(value)
        return text if text.strip() else None
    raise ValueError(f"an outcome must be a string, a number or a boolean, not {_kind(value)}")


def _kind(value: Any) -> str:
    return "an object" if isinstance(value, dict) else "a list"  # what JSON has besides scalars


def detect_format(line: bytes | None, number: int) -> tuple[str, str]:
    """``("chat" | "hgd", why)`` from the first non-blank line of a batch (None: none)."""
    if line is None:
        return "hgd", "the batch has no lines"
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):
        return "hgd", f"line {number} is not JSON"
    if isinstance(data, dict) and "turns" in data:
        return "hgd", f"line {number} has 'turns'"
    if isinstance(data, dict) and "messages" in data:
        return "chat", f"line {number} has 'messages'"
    return "hgd", f"line {number} has neither 'turns' nor 'messages'"


def _lookup(data: dict[str, Any], key: str) -> Any:
    """``data[key]``, or a nested value by a dotted key (``metadata.result``); None if absent."""
    if key in data:
        return data[key]
    value: Any = data
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def message_text(content: Any, where: str, skipped: Counter[str]) -> str:
    """A message's text: a string, None (no text), or a list of parts whose ``text`` parts
    are joined (other parts counted as skipped). Raises BadLine."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise BadLine(f"{where}: 'content' must be a string, null or a list of parts")
    texts = []
    for index, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise BadLine(f"{where}.content[{index}]: a part must be an object with a 'type'")
        if part["type"] != "text":
            skipped[NON_TEXT] += 1
        elif isinstance(part.get("text"), str):
            texts.append(part["text"])
        else:
            raise BadLine(f"{where}.content[{index}]: a text part's 'text' must be a string")
    return PART_SEPARATOR.join(texts)


def _tool_calls(message: dict[str, Any], where: str) -> int:
    """How many tool calls a message makes (``tool_calls``, or the older ``function_call``)."""
    calls = message.get("tool_calls")
    if calls is not None and not isinstance(calls, list):
        raise BadLine(f"{where}: 'tool_calls' must be a list")
    return len(calls or ()) + (message.get("function_call") is not None)


def chat_turns(messages: Any, roles: Roles) -> tuple[tuple[Turn, ...], Counter[str]]:
    """The agent's and the customer's messages with text, oldest first, and what was left
    out, by kind. Raises BadLine naming the message."""
    if not isinstance(messages, list):
        raise BadLine("'messages' must be a list")
    turns: list[Turn] = []
    skipped: Counter[str] = Counter()
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise BadLine(f"{where}: a message must be an object with a string 'role'")
        role = message["role"]
        if role in (roles.agent, roles.customer):
            who = "agent" if role == roles.agent else "customer"
        elif role in SYSTEM_ROLES or role in TOOL_ROLES:
            skipped[SYSTEM if role in SYSTEM_ROLES else TOOL_RESULT] += 1
            continue
        else:
            raise BadLine(
                f"{where}: unknown role {role!r} (expected {roles.agent!r} for the agent, "
                f"{roles.customer!r} for the customer, 'system', 'developer' or 'tool'; "
                "--agent-role and --customer-role map other roles)"
            )
        text = message_text(message.get("content"), where, skipped)
        calls = _tool_calls(message, where)
        skipped[TOOL_CALL] += calls
        if text.strip():
            turns.append((who, text))
        elif not calls:
            skipped[EMPTY] += 1
    return tuple(turns), skipped


@dataclass
class ChatReader:
    """Reads one chat-format line into a Conversation (``ingest(..., parse=reader)``).

    With ``outcomes`` (from :func:`load_outcomes`) the outcome is looked up by id and
    ``unmatched`` keeps the ids not met so far; otherwise it is the record's
    ``outcome_key``. ``without_outcome`` counts the lines that had none."""

    roles: Roles = field(default_factory=Roles)
    rule: OutcomeRule = field(default_factory=OutcomeRule)
    outcome_key: str = "outcome"
    outcomes: dict[str, str | None] | None = None
    outcomes_source: str = ""
    unmatched: set[str] = field(default_factory=set)
    without_outcome: int = 0

    def __post_init__(self) -> None:
        if self.outcomes is not None:
            self.unmatched = set(self.outcomes)

    def __call__(self, line: str) -> Conversation:
        data = load_record(line)
        if "id" not in data:
            raise BadLine("missing field 'id' (a chat record needs one: its file is named for it)")
        cid = conversation_id(data)
        self.unmatched.discard(cid)  # in the batch, whether or not the line is good
        if "messages" not in data:
            raise BadLine("missing field 'messages'")
        turns, skipped = chat_turns(data["messages"], self.roles)
        outcome = self._outcome(data, cid)
        known = CHAT_KEYS if self.outcomes is not None else CHAT_KEYS | {self.outcome_key}
        metadata = {k: v for k, v in data.items() if k not in known}
        return Conversation(cid, outcome, turns, record_tags(data), metadata, dict(skipped))

    def _outcome(self, data: dict[str, Any], cid: str) -> str:
        if self.outcomes is not None:
            if cid not in self.outcomes:
                self._missing(f"{cid!r} is not in {self.outcomes_source}")
            outcome = self.outcomes[cid]
            if outcome is None:
                self._missing(f"{cid!r} has a blank outcome in {self.outcomes_source}")
            return outcome
        try:
            text = outcome_text(_lookup(data, self.outcome_key))
        except ValueError as exc:
            raise BadLine(f"{self.outcome_key!r}: {exc}") from None
        if text is None:
            self._missing(f"no {self.outcome_key!r} in the record (nor --outcomes FILE)")
        try:
            return self.rule.outcome(text)
        except ValueError as exc:
            raise BadLine(f"{self.outcome_key!r}: {exc}") from None

    def _missing(self, why: str) -> NoReturn:
        self.without_outcome += 1
        raise NoOutcome(f"no outcome: {why}")


def load_outcomes(path: Path, rule: OutcomeRule) -> dict[str, str | None]:
    """``{id: "lead" | "no_lead" | None (blank)}`` from a CSV (``id,outcome``, a header
    row naming them optional) or JSON Lines (``{"id": ..., "outcome": ...}``) file, told
    apart by its first non-blank character. Raises OSError, or OutcomesFileError listing
    every problem (up to MAX_PROBLEMS)."""
    with path.open(encoding="utf-8-sig", newline="") as file:
        try:
            text = file.read()
        except UnicodeDecodeError as exc:
            raise OutcomesFileError([f"{path}: not UTF-8 text ({exc.reason})"]) from None
    rows = _jsonl_rows(text) if text.lstrip().startswith("{") else _csv_rows(text)
    outcomes: dict[str, str | None] = {}
    first_line: dict[str, int] = {}
    problems: list[str] = []
    for number, row in rows:
        if isinstance(row, str):
            problems.append(f"{path}:{number}: {row}")
            continue
        cid, value = row
        try:
            text_value = outcome_text(value)
            outcome = None if text_value is None else rule.outcome(text_value)
        except ValueError as exc:
            problems.append(f"{path}:{number}: {cid!r}: {exc}")
            continue
        if cid in outcomes and outcomes[cid] != outcome:
            problems.append(
                f"{path}:{number}: {cid!r} has another outcome on line {first_line[cid]}"
            )
        first_line.setdefault(cid, number)
        outcomes.setdefault(cid, outcome)
    if problems:
        more = len(problems) - MAX_PROBLEMS
        raise OutcomesFileError(problems[:MAX_PROBLEMS] + [f"... and {more} more"] * (more > 0))
    return outcomes


def _row_id(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return value.strip() if isinstance(value, str) and value.strip() else None


def _jsonl_rows(text: str) -> Iterator[Row]:
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except (ValueError, RecursionError):
            yield number, "not valid JSON"
            continue
        if not isinstance(data, dict) or "outcome" not in data:
            yield number, "expected an object with 'id' and 'outcome'"
        elif (cid := _row_id(data.get("id"))) is None:
            yield number, "'id' must be a non-empty string"
        else:
            yield number, (cid, data["outcome"])


def _csv_rows(text: str) -> Iterator[Row]:
    reader = csv.reader(io.StringIO(text))
    columns: tuple[int, int] | None = None  # until the first row: a header, or id,outcome
    try:
        for row in reader:
            number = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if columns is None:
                names = [cell.strip().casefold() for cell in row]
                if "id" in names and "outcome" in names:
                    columns = (names.index("id"), names.index("outcome"))
                    continue
                if len(row) != 2:
                    yield number, "expected a header naming 'id' and 'outcome', or rows id,outcome"
                    return
                columns = (0, 1)
            if max(columns) >= len(row):
                yield number, f"expected {max(columns) + 1} fields, found {len(row)}"
            elif (cid := _row_id(row[columns[0]])) is None:
                yield number, "the id is blank"
            else:
                yield number, (cid, row[columns[1]])
    except csv.Error as exc:
        yield reader.line_num, f"not CSV ({exc})"
