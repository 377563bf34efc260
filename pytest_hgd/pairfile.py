"""Pair files (``*.hgd.yaml``) to model objects, with line numbers and schema validation."""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .checks import CheckType
from .errors import PairFileError
from .fastschema import Validate, compile_schema
from .model import Check, Conversation, Kind, Outcome, Pair, Turn

try:  # the C parser when libyaml is present: same results, several times faster
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

SUFFIXES = (".hgd.yaml", ".hgd.yml")
MAX_NODES = 200_000
MAX_DEPTH = 64
MAX_BYTES = 10 * 1024 * 1024

Location = tuple[str | int, ...]
_STR = "tag:yaml.org,2002:str"


def is_pair_file(path: Path) -> bool:
    return path.name.endswith(SUFFIXES)


def conversation_name(path: Path) -> str:
    name = path.name
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def base_schema() -> dict[str, Any]:
    """The pair-file JSON Schema as shipped (checks not yet filled in)."""
    text = resources.files("pytest_hgd").joinpath("schemas/pairfile.schema.json").read_text()
    return dict(json.loads(text))


@lru_cache(maxsize=8)
def _validator(check_schemas: tuple[tuple[str, str], ...]) -> jsonschema.Draft202012Validator:
    schema = copy.deepcopy(base_schema())
    schema["$defs"]["check"]["properties"] = {
        name: json.loads(text) for name, text in check_schemas
    }
    schema["$defs"]["check"]["additionalProperties"] = False
    return jsonschema.Draft202012Validator(schema)


def _schema_key(registry: Mapping[str, CheckType]) -> tuple[tuple[str, str], ...]:
    return tuple(
        sorted((name, json.dumps(ct.schema, sort_keys=True)) for name, ct in registry.items())
    )


def schema_for(registry: Mapping[str, CheckType]) -> jsonschema.Draft202012Validator:
    """The validator for pair files whose checks are the registered check types."""
    return _validator(_schema_key(registry))


@lru_cache(maxsize=8)
def _fast_validator(check_schemas: tuple[tuple[str, str], ...]) -> Validate | None:
    schema: Any = _validator(check_schemas).schema
    return compile_schema(schema)


class _Reader:
    """Turns a composed YAML node tree into plain values, remembering each value's line.

    The values are JSON's: strings, finite numbers (NaN and infinity only in the free-form
    ``metadata``), booleans, null, lists and mappings with string keys (an integer key is
    read as its string, as in JSON); anything else is refused with its line, never built.
    """

    # Below these sizes the C composer cannot nest deep enough to exhaust the C stack (it
    # crashes past ~20,000 levels) nor build enough nodes to be slow; above, a scan of the
    # event stream first refuses a document too deep or too large, before a node is built.
    SCAN_CHARS = 50_000
    SCAN_INDICATORS = 1_000
    COLLECTION_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")

    def __init__(self, path: str) -> None:
        self.path = path
        self.lines: dict[Location, int] = {}
        self.nodes = 0
        self.constructor = yaml.SafeLoader("")

    def compose(self, text: str) -> yaml.Node | None:
        """The document's node tree; PairFileError for bad YAML or a document too large."""
        try:
            if len(text) > self.SCAN_CHARS or sum(map(text.count, "[{-?:")) > self.SCAN_INDICATORS:
                self.scan(text)
            return yaml.compose(text, Loader=_Loader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            at: int | None = mark.line + 1 if mark is not None else None
            problem = f"is not valid YAML: {exc.problem or exc}."
            context = exc.context_mark
            if context is not None and at is not None and context.line + 1 != at:
                problem += f" ({exc.context} started at line {context.line + 1})"
            raise PairFileError(self.path, at, problem) from exc
        except yaml.reader.ReaderError as exc:  # a character YAML does not allow
            line = text.count("\n", 0, max(exc.position, 0)) + 1
            char = f" #x{exc.character:04x}" if isinstance(exc.character, int) else ""
            problem = f"is not valid YAML: {exc.reason}{char}."
            raise PairFileError(self.path, line, problem, "Remove the character.") from exc
        except yaml.YAMLError as exc:
            raise PairFileError(self.path, None, f"is not valid YAML: {exc}.") from exc
        except RecursionError as exc:  # the pure-Python composer, on deep nesting
            raise self._too_deep(None) from exc

    def scan(self, text: str) -> None:
        """Walk the event stream (flat, no recursion): refuse deep or huge documents."""
        depth = nodes = 0
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise self._too_deep(self._line_of(event))
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
                continue
            elif not isinstance(event, yaml.NodeEvent):
                continue
            nodes += 1
            if nodes > MAX_NODES:
                raise self._too_many(self._line_of(event))

    @staticmethod
    def _line_of(event: yaml.Event) -> int | None:
        return event.start_mark.line + 1 if event.start_mark is not None else None

    def _too_deep(self, line: int | None) -> PairFileError:
        return PairFileError(
            self.path,
            line,
            f"nesting deeper than {MAX_DEPTH} levels.",
            "Pair files hold one conversation: lists and mappings a few levels deep.",
        )

    def _too_many(self, line: int | None) -> PairFileError:
        return PairFileError(
            self.path,
            line,
            f"the document expands to more than {MAX_NODES} values.",
            "Pair files hold one conversation; YAML aliases that multiply content are refused.",
        )

    def _unsupported_tag(self, node: yaml.Node) -> PairFileError:
        return PairFileError(
            self.path,
            node.start_mark.line + 1,
            f"unsupported YAML tag {node.tag!r}.",
            "Pair files hold plain strings, numbers, lists and mappings.",
        )

    def value(self, node: yaml.Node, where: Location, depth: int = 0) -> Any:
        self.nodes += 1
        line = node.start_mark.line + 1
        if self.nodes > MAX_NODES:
            raise self._too_many(line)
        if depth > MAX_DEPTH:
            raise self._too_deep(line)
        self.lines.setdefault(where, line)
        if isinstance(node, yaml.CollectionNode) and node.tag not in self.COLLECTION_TAGS:
            raise self._unsupported_tag(node)  # !!set, !!omap, !!python/object:... and such
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if (  # the common case, a plain string key, without the general path's work
                    key_node.tag == _STR
                    and isinstance(key_node, yaml.ScalarNode)
                    and self.nodes < MAX_NODES
                    and depth < MAX_DEPTH
                ):
                    self.nodes += 1
                    key = key_node.value
                else:
                    key = self.value(key_node, (*where, "<key>"), depth + 1)
                    if isinstance(key, int) and not isinstance(key, bool):
                        key = str(key)  # JSON's keys are strings: `200:` is "200"
                if not isinstance(key, str):
                    raise PairFileError(
                        self.path,
                        key_node.start_mark.line + 1,
                        f"mapping key {key!r} is not a name.",
                        "Write keys as names; quote one that YAML reads as something else.",
                    )
                if key in result:
                    raise PairFileError(
                        self.path,
                        key_node.start_mark.line + 1,
                        f"duplicate key {key!r}.",
                        "Each key may appear once in a mapping.",
                    )
                location = (*where, key)
                self.lines[location] = key_node.start_mark.line + 1
                result[key] = self.value(value_node, location, depth + 1)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.value(item, (*where, i), depth + 1) for i, item in enumerate(node.value)]
        if node.tag == _STR:  # what the constructor would return
            return node.value
        return self._scalar(node, where, line)

    def _scalar(self, node: yaml.Node, where: Location, line: int) -> Any:
        try:
            value = self.constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            raise self._unsupported_tag(node) from exc
        except Exception as exc:  # `!!int x`, `!!bool maybe`, an integer of 5000 digits
            text = str(node.value)
            shown = text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"
            tag = str(node.tag).rpartition(":")[2]
            reason = (
                "too many digits"
                if tag == "int" and len(text) > 1000
                else f"{type(exc).__name__}: {exc}"
            )
            raise PairFileError(
                self.path,
                line,
                f"cannot read {shown!r} as {tag}: {reason}.",
                "Quote the value to make it a string.",
            ) from exc
        metadata = where[:1] == ("metadata",) or where[2:3] == ("metadata",)
        if isinstance(value, float) and not math.isfinite(value) and not metadata:
            raise PairFileError(  # a NaN passes every schema bound, and then fails every check
                self.path,
                line,
                f"{node.value!r} is not a finite number.",
                "Pair files hold JSON values; quote it to make it a string.",
            )
        return value

    def line(self, where: Sequence[str | int]) -> int | None:
        location = tuple(where)
        while location not in self.lines and location:
            location = location[:-1]
        return self.lines.get(location)


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


def _turns(raw: list[dict[str, str]]) -> tuple[Turn, ...]:
    return tuple(Turn(speaker, text) for turn in raw for speaker, text in turn.items())


def load_pairs(path: Path, display: str, registry: Mapping[str, CheckType]) -> list[Pair]:
    """Read one pair file into pairs. Raises PairFileError for anything malformed."""
    return list(load_conversation(path, display, registry).pairs)


def load_conversation(path: Path, display: str, registry: Mapping[str, CheckType]) -> Conversation:
    """Read one pair file: its pairs and its rollout settings. Raises PairFileError."""
    try:
        with path.open("rb") as handle:  # never more than the limit, whatever the file is
            data = handle.read(MAX_BYTES + 1)
            size = max(len(data), os.fstat(handle.fileno()).st_size)
    except OSError as exc:
        raise PairFileError(display, None, f"cannot be read: {exc.strerror or exc}.") from exc
    if len(data) > MAX_BYTES:
        raise PairFileError(
            display,
            None,
            f"is {size} bytes, over the {MAX_BYTES}-byte limit for a pair file.",
            "Split the conversation's pairs over several files.",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PairFileError(display, line, "is not UTF-8 text.", "Save the file as UTF-8.") from exc
    reader = _Reader(display)
    root = reader.compose(text)
    if root is None:
        raise PairFileError(display, 1, "is empty.", "A pair file needs `outcome:` and `pairs:`.")
    document = reader.value(root, ())
    if not isinstance(document, dict):
        raise PairFileError(
            display,
            1,
            f"must be a mapping with `outcome:` and `pairs:`, not {_type_name(document)}.",
        )
    key = _schema_key(registry)
    fast = _fast_validator(key)
    errors = (
        []
        if fast is not None and fast(document)
        else sorted(
            _validator(key).iter_errors(document),
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
    reader: _Reader,
    registry: Mapping[str, CheckType],
) -> tuple[Check, ...]:
    """The checks written at ``where``, each validated by its check type."""
    checks = []
    for c_index, raw_check in enumerate(raw_checks):
        ((name, arg),) = raw_check.items()
        c_line = reader.line(
            (*where, "checks", c_index) if where[0] == "pairs" else (*where, c_index)
        )
        label = (
            f"{describe(where)}.checks[{c_index}]" if where[0] == "pairs" else f"final[{c_index}]"
        )
        validate = registry[name].validate
        problem = validate(arg) if validate else None
        if problem:
            raise PairFileError(display, c_line, f"{label}: {problem}.")
        if name == "similar" and not has_reply and not (arg or {}).get("to"):
            raise PairFileError(
                display,
                c_line,
                f"{label}: `similar` needs a `reply` to compare with.",
                "Add `reply:` to the pair or `to:` to the check.",
            )
        checks.append(Check(name, arg, c_line))
    return tuple(checks)


def _build(
    path: Path,
    display: str,
    document: dict[str, Any],
    reader: _Reader,
    registry: Mapping[str, CheckType],
) -> list[Pair]:
    outcome = Outcome(document["outcome"])
    default_kind = Kind.LOCKED if outcome == Outcome.LEAD else Kind.CORRECTED
    file_tags = list(document.get("tags", []))
    conversation = document.get("conversation") or conversation_name(path)
    pairs: list[Pair] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(document["pairs"]):
        where: Location = ("pairs", index)
        line = reader.line(where)
        pair_id = str(raw.get("id", index))
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
        tags = list(dict.fromkeys([*file_tags, *raw.get("tags", [])]))
        pairs.append(
            Pair(
                path=display,
                conversation=str(conversation),
                outcome=outcome,
                id=pair_id,
                kind=Kind(raw.get("kind", default_kind.value)),
                history=_turns(raw.get("history", [])),
                customer=raw["customer"],
                reply=raw.get("reply"),
                checks=checks,
                tags=tuple(tags),
                line=line,
                retired=raw.get("retired"),
                review=raw.get("review"),
                samples=raw.get("samples"),
            )
        )
    return pairs
