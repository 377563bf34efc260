"""Pair files (``*.hgd.yaml``) to model objects, with line numbers and schema validation."""

from __future__ import annotations

import os
import stat
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_hgd.core.checks import CheckType
from pytest_hgd.core.errors import PairFileError
from pytest_hgd.core.model import Check, Conversation, Kind, Outcome, Pair, Turn
from pytest_hgd.core.text import printable
from pytest_hgd.suite.pairschema import fast_validator, schema_key, validator
from pytest_hgd.suite.yamlreader import NO_DOCUMENT, Location, YamlReader

if TYPE_CHECKING:  # jsonschema is imported only when a file breaks the schema: slow to import
    import jsonschema

SUFFIXES = (".hgd.yaml", ".hgd.yml")
MAX_BYTES = 10 * 1024 * 1024


def _unprintable(text: str) -> str | None:
    """The first character of ``text`` that does not print as itself (control, format and
    bidi characters, line breaks, unusual spaces), described; None when there is none."""
    if text.isprintable():
        return None
    for char in text:
        category = unicodedata.category(char)
        if not char.isprintable() and category in _INVISIBLE:
            return f"U+{ord(char):04X} ({unicodedata.name(char, category)})"
    return None  # only characters this Python's Unicode does not know yet: they print


_INVISIBLE = {"Cc", "Cf", "Cs", "Zl", "Zp", "Zs"}  # controls, format/bidi, odd spaces
NAME_HINT = "Use letters, digits, - and _."


def _refuse_unprintable(text: str, what: str, display: str, line: int | None, hint: str) -> None:
    bad = _unprintable(text)
    if bad is not None:
        raise PairFileError(
            display,
            line,
            f"{what} {printable(text)!r} has the invisible or control character {bad}: it would "
            "print like another name, or rewrite the terminal line.",
            hint,
        )


def is_pair_file(path: Path) -> bool:
    return path.name.endswith(SUFFIXES)


def conversation_name(path: Path) -> str:
    name = path.name
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def describe(where: Sequence[str | int]) -> str:
    text = ""
    for part in where:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "the file"


def _type_name(value: Any) -> str:
    names = {
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        list: "a list",
        dict: "a mapping",
        type(None): "nothing",
    }
    return names.get(type(value), type(value).__name__)


def _problem(
    error: jsonschema.ValidationError, registry: Mapping[str, CheckType]
) -> tuple[str, str]:
    """A readable problem and hint for one schema violation."""
    instance: Any = error.instance
    schema: Any = error.schema
    expected: Any = error.validator_value
    where = describe(list(error.absolute_path))
    parent = list(error.absolute_path)[-2:-1]
    if error.validator == "required":
        missing = [k for k in expected if k not in instance]
        field = missing[0] if missing else "?"
        return f"{where}: missing required field {field!r}.", f"Add `{field}:` to it."
    if error.validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(str(k) for k in instance if k not in allowed)
        if parent == ["checks"]:
            return (
                f"{where}: unknown check {extra[0]!r}.",
                f"Known checks: {', '.join(sorted(registry))}.",
            )
        return f"{where}: unknown field {extra[0]!r}.", f"Allowed fields: {', '.join(allowed)}."
    if error.validator in ("minProperties", "maxProperties") and parent == ["checks"]:
        return (
            f"{where}: a check is a mapping with exactly one check name.",
            'Write e.g. `- contains: "sales rep"`.',
        )
    if error.validator in ("minProperties", "maxProperties"):
        return (
            f"{where}: a history turn is a one-key mapping.",
            'Write `- agent: "..."` or `- customer: "..."`.',
        )
    if error.validator == "type":
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return f"{where}: expected {expected}, got {_type_name(instance)}.", ""
    if error.validator == "enum":
        options = ", ".join(str(v) for v in expected)
        return f"{where}: {instance!r} is not one of: {options}.", ""
    if error.validator == "oneOf":
        return (
            f"{where}: expected a string or a non-empty list of strings, "
            f"got {_type_name(instance)}.",
            "",
        )
    return f"{where}: {error.message}.", ""


class _Histories:
    """One file's histories, each turn and each identical history built once and shared.

    A conversation's pairs repeat its earlier turns (pair k's history is pair k-1's plus two
    turns): shared, they cost memory and garbage-collector time linear in the conversation's
    length, not quadratic."""

    def __init__(self) -> None:
        self.turns: dict[tuple[str, str], Turn] = {}
        self.histories: dict[tuple[tuple[str, str], ...], tuple[Turn, ...]] = {}

    def __call__(self, raw: list[dict[str, str]]) -> tuple[Turn, ...]:
        written = tuple(item for turn in raw for item in turn.items())
        history = self.histories.get(written)
        if history is None:
            turns = self.turns
            history = self.histories[written] = tuple(
                turns.get(item) or turns.setdefault(item, Turn(*item)) for item in written
            )
        return history


def read_pair_file(path: Path, display: str) -> bytes:
    """A pair file's bytes, at most MAX_BYTES; PairFileError for anything but a regular file
    within the limit. Opened without blocking: a FIFO or a device named ``*.hgd.yaml`` is
    refused at once, never waited on nor read without end (``/dev/zero``)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise PairFileError(display, None, f"cannot be read: {exc.strerror or exc}.") from exc
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise PairFileError(
                display,
                None,
                "is not a regular file (a FIFO, a socket or a device).",
                "Pair files are plain files; move this one out of the suite.",
            )
        size = info.st_size
        limit = MAX_BYTES + 1
        try:
            # a buffer of the file's size, not of the limit (allocating 10 MB costs ~30 us)
            data = handle.read(min(size + 1, limit))
            if len(data) == size + 1 < limit:  # longer than its size said (growing)
                data += handle.read(limit - len(data))
        except OSError as exc:
            raise PairFileError(display, None, f"cannot be read: {exc.strerror or exc}.") from exc
    if len(data) > MAX_BYTES:
        raise PairFileError(
            display,
            None,
            f"is {max(size, len(data))} bytes, over the {MAX_BYTES}-byte limit for a pair file.",
            "Split the conversation's pairs over several files.",
        )
    return data


def load_pairs(path: Path, display: str, registry: Mapping[str, CheckType]) -> list[Pair]:
    """Read one pair file into pairs. Raises PairFileError for anything malformed."""
    return list(load_conversation(path, display, registry).pairs)


def load_conversation(path: Path, display: str, registry: Mapping[str, CheckType]) -> Conversation:
    """Read one pair file: its pairs and its rollout settings. Raises PairFileError."""
    _refuse_unprintable(display, "the file name", printable(display), None, "Rename the file.")
    data = read_pair_file(path, display)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PairFileError(display, line, "is not UTF-8 text.", "Save the file as UTF-8.") from exc
    reader = YamlReader(display)
    document = reader.read(text)
    if document is NO_DOCUMENT:
        raise PairFileError(display, 1, "is empty.", "A pair file needs `outcome:` and `pairs:`.")
    if not isinstance(document, dict):
        raise PairFileError(
            display,
            1,
            f"must be a mapping with `outcome:` and `pairs:`, not {_type_name(document)}.",
        )
    key = schema_key(registry)
    fast = fast_validator(key)
    errors = (
        []
        if fast is not None and fast(document)
        else sorted(
            validator(key).iter_errors(document),
            key=lambda e: (reader.line(list(e.absolute_path)) or 0, len(e.absolute_path)),
        )
    )
    if errors:
        error = errors[0]
        problem, hint = _problem(error, registry)
        where = list(error.absolute_path)
        if error.validator == "additionalProperties":  # point at the unexpected key itself
            allowed = error.schema.get("properties", {})
            where += [next((k for k in error.instance if k not in allowed), "")]
        raise PairFileError(display, reader.line(where), problem, hint)
    if not document["pairs"]:
        raise PairFileError(
            display,
            reader.line(("pairs",)),
            "has no pairs (`pairs:` is empty): it would run nothing and say so nowhere.",
            "Add the conversation's pairs, or delete the file.",
        )
    pairs = _build(path, display, document, reader, registry)
    final = _checks(document.get("final", []), ("final",), True, display, reader, registry)
    return Conversation(
        path=display,
        name=pairs[0].conversation if pairs else conversation_name(path),
        pairs=tuple(pairs),
        rollout=bool(document.get("rollout", False)),
        final=final,
    )


def _checks(
    raw_checks: list[dict[str, Any]],
    where: Location,
    has_reply: bool,
    display: str,
    reader: YamlReader,
    registry: Mapping[str, CheckType],
) -> tuple[Check, ...]:
    """The checks written at ``where``, each validated by its check type."""
    checks = []
    in_pair = where[0] == "pairs"
    for c_index, raw_check in enumerate(raw_checks):
        ((name, arg),) = raw_check.items()
        c_line = reader.line((*where, "checks", c_index) if in_pair else (*where, c_index))
        validate = registry[name].validate
        problem = validate(arg) if validate else None
        if problem:
            raise PairFileError(display, c_line, f"{_label(where, c_index)}: {problem}.")
        if name == "similar" and not has_reply and not (arg or {}).get("to"):
            raise PairFileError(
                display,
                c_line,
                f"{_label(where, c_index)}: `similar` needs a `reply` to compare with.",
                "Add `reply:` to the pair or `to:` to the check.",
            )
        checks.append(Check(name, arg, c_line))
    return tuple(checks)


def _label(where: Location, c_index: int) -> str:
    if where[0] == "pairs":
        return f"{describe(where)}.checks[{c_index}]"
    return f"final[{c_index}]"


def _build(
    path: Path,
    display: str,
    document: dict[str, Any],
    reader: YamlReader,
    registry: Mapping[str, CheckType],
) -> list[Pair]:
    # long: one pair's fields in file order, each checked where its line is known
    outcome = Outcome(document["outcome"])
    default_kind = Kind.LOCKED if outcome == Outcome.LEAD else Kind.CORRECTED
    file_tags = list(document.get("tags", []))
    only_file_tags = tuple(dict.fromkeys(file_tags))
    conversation = str(document.get("conversation") or conversation_name(path))
    for t_index, tag in enumerate(file_tags):
        _refuse_unprintable(tag, "tag", display, reader.line(("tags", t_index)), NAME_HINT)
    if "conversation" in document:
        line = reader.line(("conversation",))
        _refuse_unprintable(conversation, "conversation", display, line, NAME_HINT)
    history = _Histories()
    pairs: list[Pair] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(document["pairs"]):
        where: Location = ("pairs", index)
        line = reader.line(where)
        pair_id = str(raw.get("id", index))
        if "id" in raw:
            id_line = reader.line((*where, "id")) or line
            _refuse_unprintable(pair_id, "pair id", display, id_line, NAME_HINT)
            if "::" in pair_id:
                raise PairFileError(
                    display,
                    id_line,
                    f"pair id {pair_id!r} holds '::', which separates the parts of a test id.",
                    NAME_HINT,
                )
        if pair_id in seen:
            raise PairFileError(
                display,
                reader.line((*where, "id")) or line,
                f"pairs[{index}]: duplicate pair id {pair_id!r} "
                f"(first used at line {seen[pair_id]}).",
                "Pair ids must be unique within a file; "
                "a pair without `id:` is named by its index.",
            )
        seen[pair_id] = line or 0
        checks = _checks(raw.get("checks", []), where, "reply" in raw, display, reader, registry)
        if "reply" not in raw and not checks and "review" not in raw:
            raise PairFileError(
                display,
                line,
                f"pairs[{index}]: needs a `reply` or `checks`.",
                "Write the reply the agent should give, or checks it must pass.",
            )
        if "tags" in raw:
            for t_index, tag in enumerate(raw["tags"]):
                tag_line = reader.line((*where, "tags", t_index)) or line
                _refuse_unprintable(tag, "tag", display, tag_line, NAME_HINT)
        tags = tuple(dict.fromkeys([*file_tags, *raw["tags"]])) if "tags" in raw else only_file_tags
        pairs.append(
            Pair(
                path=display,
                conversation=conversation,
                outcome=outcome,
                id=pair_id,
                kind=Kind(raw["kind"]) if "kind" in raw else default_kind,
                history=history(raw.get("history", [])),
                customer=raw["customer"],
                reply=raw.get("reply"),
                checks=checks,
                tags=tags,
                line=line,
                retired=raw.get("retired"),
                review=raw.get("review"),
                samples=raw.get("samples"),
            )
        )
    return pairs
