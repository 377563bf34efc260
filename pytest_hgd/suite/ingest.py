"""`hgd ingest`: conversations (JSON Lines) to pair files, and a review queue (no pytest).

Lead conversations become ``DIR/<name>.hgd.yaml`` (locked pairs); no-lead conversations
become ``DIR/review/<name>.hgd.yaml`` (corrected pairs marked ``review:``). A pair whose
normalised history and customer message is already in the suite under DIR is skipped, and no
existing file is ever written to.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_hgd.storage.cache import write_atomic
from pytest_hgd.suite.pairfile import MAX_BYTES
from pytest_hgd.suite.pairwriter import render
from pytest_hgd.suite.suite_stats import ROLES, KeyBuilder, SuiteIndex, Turn
from pytest_hgd.suite.yamlreader import MAX_NODES

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

REVIEW_DIR = "review"
REVIEW_REASON = (
    "no lead: write the reply the agent should have given (or checks), then delete this line"
)
KNOWN_KEYS = frozenset({"id", "outcome", "turns", "tags"})
MAX_NAME = 80
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


MAX_LINE_BYTES = 16 * 1024 * 1024  # a batch line (one conversation) longer is reported bad


class IngestRefused(Exception):
    """The output folder cannot be written safely; the message says why and what to do."""


def refuse_redirected_folders(directory: Path) -> None:
    """``review/`` and ``.hgd/`` inside the output folder must be folders of its own, not
    symbolic links: ingest would write wherever they point."""
    for name in (REVIEW_DIR, ".hgd"):
        path = directory / name
        if path.is_symlink():
            raise IngestRefused(
                f"{path} is a symbolic link; ingest writes only inside {directory}. "
                "Replace it with a folder."
            )


@contextlib.contextmanager
def _ingest_lock(directory: Path, progress: Callable[[str], None] | None) -> Iterator[None]:
    """One ingest at a time into a folder: an exclusive ``flock`` on the folder itself, held
    from reading the suite's keys to saving its index, so a second ingest waits and then
    sees every pair the first wrote (no file replaced, no pair lost). Without ``fcntl``
    (Windows) there is no lock: run one ingest at a time there."""
    if fcntl is None:
        yield
        return
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))  # nothing created
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if progress is not None:
                progress(f"waiting for another hgd ingest into {directory} to finish")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


class BadLine(ValueError):
    """One input line that is not a conversation; the message says why."""


@dataclass(frozen=True)
class Conversation:
    id: str
    outcome: str  # "lead" | "no_lead"
    turns: tuple[Turn, ...]
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)  # messages left out, by what they were


@dataclass(frozen=True)
class PlannedFile:
    """A pair file ingest wrote (or, with ``--dry-run``, would write)."""

    path: Path
    conversation: str
    outcome: str
    pairs: int


@dataclass
class IngestResult:
    conversations: int = 0
    lead: int = 0
    no_lead: int = 0
    files: list[PlannedFile] = field(default_factory=list)
    locked_pairs: int = 0
    review_pairs: int = 0
    duplicates: int = 0
    bad_lines: list[str] = field(default_factory=list)
    suite_problems: list[str] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)  # of ingested conversations


def _string(value: Any) -> bool:
    return isinstance(value, str)


def load_record(line: str) -> dict[str, Any]:
    """One JSON line to an object that can be written as UTF-8. Raises BadLine."""
    try:
        data = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise BadLine(f"not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise BadLine(f"a conversation must be a JSON object, not {type(data).__name__}")
    if "\\u" in line:  # a lone surrogate escape cannot be written as UTF-8
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise BadLine("holds an invalid Unicode escape (a lone surrogate)") from None
    return data


def conversation_id(data: dict[str, Any]) -> str:
    """The record's ``id``: a non-empty string (an integer is made one). Raises BadLine."""
    raw_id = data["id"]
    if isinstance(raw_id, int) and not isinstance(raw_id, bool):
        raw_id = str(raw_id)
    if not _string(raw_id) or not raw_id:
        raise BadLine("'id' must be a non-empty string")
    return str(raw_id)


def parse_conversation(line: str) -> Conversation:
    """One JSON line to a conversation. Raises BadLine saying what is wrong."""
    data = load_record(line)
    for name in ("id", "outcome", "turns"):
        if name not in data:
            raise BadLine(f"missing field {name!r}")
    raw_id = conversation_id(data)
    if data["outcome"] not in ("lead", "no_lead"):
        raise BadLine(f"'outcome' must be 'lead' or 'no_lead', not {data['outcome']!r}")
    if not isinstance(data["turns"], list):
        raise BadLine("'turns' must be a list")
    turns = []
    for index, turn in enumerate(data["turns"]):
        if not isinstance(turn, dict):
            raise BadLine(f"turns[{index}]: a turn must be an object with 'role' and 'text'")
        role = turn.get("role")
        if role not in ROLES:
            raise BadLine(f"turns[{index}]: unknown role {role!r} (expected 'agent' or 'customer')")
        if not _string(turn.get("text")):
            raise BadLine(f"turns[{index}]: 'text' must be a string")
        turns.append((role, turn["text"]))
    metadata = {k: v for k, v in data.items() if k not in KNOWN_KEYS}
    return Conversation(raw_id, data["outcome"], tuple(turns), record_tags(data), metadata)


def record_tags(data: dict[str, Any]) -> tuple[str, ...]:
    """The record's ``tags`` (none when absent), each once. Raises BadLine."""
    tags = data.get("tags", [])
    if not isinstance(tags, list) or not all(_string(t) and t for t in tags):
        raise BadLine("'tags' must be a list of non-empty strings")
    return tuple(dict.fromkeys(tags))


def sanitise(conversation_id: str) -> str:
    """A file-name stem for a conversation id: ASCII letters, digits, ``.``, ``_``, ``-``."""
    name = _UNSAFE.sub("_", conversation_id).strip("._-")[:MAX_NAME].rstrip("._-")
    return name or "conversation"


def _render(conversation: Conversation, pairs: list[dict[str, Any]]) -> str:
    document: dict[str, Any] = {"conversation": conversation.id, "outcome": conversation.outcome}
    if conversation.tags:
        document["tags"] = list(conversation.tags)
    if conversation.metadata:
        document["metadata"] = conversation.metadata
    document["pairs"] = pairs
    return render(document)


class TooBig(ValueError):
    """A conversation too long for one pair file, found before its pairs are built."""


def plan_pairs(
    conversation: Conversation, index: SuiteIndex
) -> tuple[list[dict[str, Any]], list[str], int]:
    """The new pairs of a conversation (as pair-file mappings), their keys, and the skipped.

    Each pair repeats the history before it, so a file grows with the square of its
    conversation's length: its size is bounded first, from the turns alone (what `_too_big`
    would measure, or less), and TooBig raised before anything is built. A conversation of
    10,000 turns is refused in milliseconds, not built to gigabytes."""
    lead = conversation.outcome == "lead"
    turns = conversation.turns
    builder = KeyBuilder()
    new: list[tuple[int, str]] = []
    seen: set[str] = set()
    duplicates = nodes = size = history_bytes = 0
    for i, (role, text) in enumerate(turns):
        builder.add(role, text)
        if role == "customer" and i + 1 < len(turns) and turns[i + 1][0] == "agent":
            key = builder.key()
            if key in index.keys or key in seen:
                duplicates += 1
            else:
                seen.add(key)
                new.append((i, key))
                nodes += 20 + 3 * i  # as `_too_big` counts a pair of i history turns
                size += history_bytes  # its history's text alone: at most the file's size
        history_bytes += len(text.encode("utf-8", "surrogatepass"))
    if nodes > MAX_NODES or size > MAX_BYTES:
        raise TooBig(
            f"the conversation is too long for one pair file (~{nodes} values, over {size} "
            f"bytes; limits {MAX_BYTES} bytes, {MAX_NODES} values): split it, or shorten it"
        )
    index.keys.update(seen)
    pairs = []
    for i, _ in new:
        pair: dict[str, Any] = {"id": f"turn-{i}", "kind": "locked" if lead else "corrected"}
        if not lead:
            pair["review"] = REVIEW_REASON
        pair["history"] = [{r: t} for r, t in turns[:i]]
        pair["customer"] = turns[i][1]
        if lead:
            pair["reply"] = turns[i + 1][1]
        else:
            pair["metadata"] = {"recorded_reply": turns[i + 1][1]}
        pairs.append(pair)
    return pairs, [key for _, key in new], duplicates


def _too_big(text: str, pairs: list[dict[str, Any]]) -> str | None:
    size = len(text.encode("utf-8"))
    nodes = sum(20 + 3 * len(p["history"]) for p in pairs)
    if size > MAX_BYTES or nodes > MAX_NODES:
        return (
            "the conversation is too long for one pair file "
            f"({size} bytes, ~{nodes} values; limits {MAX_BYTES} bytes, {MAX_NODES} values)"
        )
    return None


def ingest(
    lines: Iterable[bytes],
    source: str,
    directory: Path,
    *,
    dry_run: bool = False,
    progress: Callable[[str], None] | None = None,
    parse: Callable[[str], Conversation] = parse_conversation,
) -> IngestResult:
    """Ingest a batch: write new pair files under directory and report what happened.

    Refuses (``suite_problems`` set, nothing written) when a pair file under directory
    cannot be read: its pairs would be missing from the dedup index. ``parse`` reads one
    line (the hgd format by default; ``chat_format.ChatReader`` for chat records).
    """
    refuse_redirected_folders(directory)
    if dry_run:
        return _ingest(lines, source, directory, True, progress, parse)
    directory.mkdir(parents=True, exist_ok=True)
    with _ingest_lock(directory, progress):
        return _ingest(lines, source, directory, False, progress, parse)


def _ingest(
    lines: Iterable[bytes],
    source: str,
    directory: Path,
    dry_run: bool,
    progress: Callable[[str], None] | None,
    parse: Callable[[str], Conversation],
) -> IngestResult:
    # long: one streaming pass over the batch; its steps share the counters
    result = IngestResult()
    index = SuiteIndex(directory)
    index.load(progress)
    if index.problems:
        result.suite_problems = index.problems
        return result
    review = directory / REVIEW_DIR
    for number, raw in enumerate(lines, 1):
        if len(raw) > MAX_LINE_BYTES:
            result.bad_lines.append(
                f"{source}:{number}: skipped: longer than {MAX_LINE_BYTES} bytes "
                "(one conversation a line)"
            )
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            result.bad_lines.append(f"{source}:{number}: skipped: not UTF-8 text")
            continue
        if not text.strip():
            continue
        try:
            conversation = parse(text)
        except BadLine as exc:
            result.bad_lines.append(f"{source}:{number}: skipped: {exc}")
            continue
        try:
            pairs, keys, duplicates = plan_pairs(conversation, index)
        except TooBig as exc:
            result.bad_lines.append(f"{source}:{number}: skipped: {exc}")
            continue
        if pairs:
            document = _render(conversation, pairs)
            problem = _too_big(document, pairs)
            if problem is not None:
                index.keys.difference_update(keys)
                result.bad_lines.append(f"{source}:{number}: skipped: {problem}")
                continue
        result.conversations += 1
        result.duplicates += duplicates
        result.skipped.update(conversation.skipped)
        lead = conversation.outcome == "lead"
        result.lead += lead
        result.no_lead += not lead
        if pairs:
            path = index.reserve(directory if lead else review, sanitise(conversation.id))
            if not dry_run:
                write_atomic(path, document)
                index.record(path, keys)
            result.files.append(
                PlannedFile(path, conversation.id, conversation.outcome, len(pairs))
            )
            if lead:
                result.locked_pairs += len(pairs)
            else:
                result.review_pairs += len(pairs)
        if progress is not None:
            progress(f"ingesting: line {number}, {len(result.files)} files")
    if index.changed and not dry_run:
        index.save()
    return result
