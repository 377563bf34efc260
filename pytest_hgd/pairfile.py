"""Pair files (``*.hgd.yaml``) to model objects, with line numbers and schema validation."""

from __future__ import annotations

import copy
import json
import numbers
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .checks import CheckType
from .errors import PairFileError
from .model import Check, Kind, Outcome, Pair, Turn

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


# A fast yes-or-don't-know check of the same schema, compiled to closures. jsonschema spends
# ~0.2 ms per pair; this ~20 times less. It says True only when jsonschema would find no
# error; any keyword it does not know exactly makes the whole schema uncompiled (None), and a
# document it rejects is validated again by jsonschema, which words the error.
Validate = Callable[[Any], bool]
_ANNOTATIONS = frozenset({"$comment", "$defs", "title", "description", "default"})


class _Unsupported(Exception):
    pass


def _is_integer(value: Any) -> bool:  # as jsonschema's type checker: 1.0 is an integer
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _equal(option: str | float | None, value: Any) -> bool:
    """jsonschema's equality of an enum's scalar option and a value: True is not 1."""
    if isinstance(option, str) or isinstance(value, str):
        return bool(option == value)
    if isinstance(option, bool) or isinstance(value, bool):
        return option is value
    return bool(option == value)


_TYPES: dict[str, Validate] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, numbers.Number) and not isinstance(v, bool),
    "integer": _is_integer,
}
_BOUNDS: dict[str, tuple[str, Callable[[Any, Any], bool]]] = {  # kind, and when it fails
    "minLength": ("string", lambda v, n: len(v) < n),
    "maxLength": ("string", lambda v, n: len(v) > n),
    "minItems": ("array", lambda v, n: len(v) < n),
    "maxItems": ("array", lambda v, n: len(v) > n),
    "minProperties": ("object", lambda v, n: len(v) < n),
    "maxProperties": ("object", lambda v, n: len(v) > n),
    "minimum": ("number", lambda v, n: v < n),
    "maximum": ("number", lambda v, n: v > n),
    "exclusiveMinimum": ("number", lambda v, n: v <= n),
    "exclusiveMaximum": ("number", lambda v, n: v >= n),
}
_PLAIN: dict[str, type] = {"object": dict, "array": list, "string": str}


def _all_of(tests: Sequence[Validate]) -> Validate:
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        first, second = tests
        return lambda v: first(v) and second(v)
    return lambda v: all(test(v) for test in tests)


class _Compiler:
    def __init__(self, root: Mapping[str, Any]) -> None:
        self.defs: Mapping[str, Any] = root.get("$defs", {})
        self.compiled: dict[str, Validate] = {}

    def schema(self, schema: Any) -> Validate:
        if schema is True:
            return lambda v: True
        if schema is False:
            return lambda v: False
        if not isinstance(schema, dict):
            raise _Unsupported
        tests = [self.keyword(k, a, schema) for k, a in schema.items() if k not in _ANNOTATIONS]
        return _all_of(tests) if tests else lambda v: True

    def keyword(self, key: str, arg: Any, schema: Mapping[str, Any]) -> Validate:
        if key == "type":
            kinds = [_TYPES[t] for t in ([arg] if isinstance(arg, str) else arg)]
            if len(kinds) == 1:
                return kinds[0]
            return lambda v: any(kind(v) for kind in kinds)
        if key in ("enum", "const"):
            options = [arg] if key == "const" else list(arg)
            if not all(o is None or isinstance(o, str | int | float) for o in options):
                raise _Unsupported
            return lambda v: any(_equal(o, v) for o in options)
        if key in _BOUNDS and isinstance(arg, int | float) and not isinstance(arg, bool):
            kind, fails = _BOUNDS[key]
            plain = _PLAIN.get(kind)
            if plain is not None:
                return lambda v: not (isinstance(v, plain) and fails(v, arg))
            applies = _TYPES[kind]
            return lambda v: not (applies(v) and fails(v, arg))
        if key == "required" and all(isinstance(name, str) for name in arg):
            return lambda v: not isinstance(v, dict) or all(name in v for name in arg)
        if key == "properties" or (key == "additionalProperties" and "properties" not in schema):
            if "patternProperties" in schema:
                raise _Unsupported
            return self.properties(schema)
        if key == "additionalProperties":  # checked with "properties"
            return lambda v: True
        if key == "items" and "prefixItems" not in schema:
            item = self.schema(arg)
            return lambda v: not isinstance(v, list) or all(item(x) for x in v)
        if key in ("oneOf", "anyOf", "allOf"):
            subs = [self.schema(sub) for sub in arg]
            if key == "oneOf":
                return lambda v: sum(1 for sub in subs if sub(v)) == 1
            if key == "anyOf":
                return lambda v: any(sub(v) for sub in subs)
            return lambda v: all(sub(v) for sub in subs)
        if key == "$ref" and isinstance(arg, str) and arg.startswith("#/$defs/"):
            return self.reference(arg.removeprefix("#/$defs/"))
        raise _Unsupported

    def properties(self, schema: Mapping[str, Any]) -> Validate:
        known = {name: self.schema(sub) for name, sub in schema.get("properties", {}).items()}
        extra = self.schema(schema.get("additionalProperties", True))

        def check(v: Any) -> bool:
            if isinstance(v, dict):
                for name, value in v.items():
                    if not known.get(name, extra)(value):
                        return False
            return True

        return check

    def reference(self, name: str) -> Validate:
        if name not in self.defs or "/" in name or "~" in name:
            raise _Unsupported
        if name not in self.compiled:
            self.compiled[name] = lambda v: True  # placeholder while a recursive def compiles
            self.compiled[name] = self.schema(self.defs[name])
        compiled = self.compiled
        return lambda v: compiled[name](v)


def compile_schema(schema: Mapping[str, Any]) -> Validate | None:
    """A fast ``is_valid`` for a Draft 2020-12 schema, or None when it uses a keyword this
    compiler does not know. True only when jsonschema finds no error; False when it finds one
    (ask jsonschema which)."""
    root = dict(schema)
    root.pop("$id", None)  # the root's own id and dialect: "#/$defs/..." resolve in it
    if root.pop("$schema", None) not in (None, "https://json-schema.org/draft/2020-12/schema"):
        return None
    try:
        return _Compiler(root).schema(root)
    except Exception:  # a schema this compiler cannot read: jsonschema alone decides
        return None


@lru_cache(maxsize=8)
def _fast_validator(check_schemas: tuple[tuple[str, str], ...]) -> Validate | None:
    schema: Any = _validator(check_schemas).schema
    return compile_schema(schema)


class _Reader:
    """Turns a composed YAML node tree into plain values, remembering each value's line."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lines: dict[Location, int] = {}
        self.nodes = 0
        self.constructor = yaml.SafeLoader("")

    def value(self, node: yaml.Node, where: Location, depth: int = 0) -> Any:
        self.nodes += 1
        line = node.start_mark.line + 1
        if self.nodes > MAX_NODES:
            raise PairFileError(
                self.path,
                line,
                f"the document expands to more than {MAX_NODES} values.",
                "Pair files hold one conversation; YAML aliases that multiply content are refused.",
            )
        if depth > MAX_DEPTH:
            raise PairFileError(self.path, line, f"nesting deeper than {MAX_DEPTH} levels.")
        self.lines.setdefault(where, line)
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
                if not isinstance(key, str | int) or isinstance(key, bool):
                    raise PairFileError(
                        self.path,
                        key_node.start_mark.line + 1,
                        f"mapping key {key!r} is not a name.",
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
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            raise PairFileError(
                self.path,
                line,
                f"unsupported YAML tag {node.tag!r}.",
                "Pair files hold plain strings, numbers, lists and mappings.",
            ) from exc

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
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PairFileError(display, None, f"cannot be read: {exc.strerror}.") from exc
    if len(data) > MAX_BYTES:
        raise PairFileError(
            display,
            None,
            f"is {len(data)} bytes, over the {MAX_BYTES}-byte limit for a pair file.",
            "Split the conversation's pairs over several files.",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PairFileError(display, line, "is not UTF-8 text.", "Save the file as UTF-8.") from exc
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at: int | None = mark.line + 1 if mark is not None else None
        problem = f"is not valid YAML: {exc.problem or exc}."
        context = exc.context_mark
        if context is not None and at is not None and context.line + 1 != at:
            problem += f" ({exc.context} started at line {context.line + 1})"
        raise PairFileError(display, at, problem) from exc
    except yaml.YAMLError as exc:
        raise PairFileError(display, None, f"is not valid YAML: {exc}.") from exc
    if root is None:
        raise PairFileError(display, 1, "is empty.", "A pair file needs `outcome:` and `pairs:`.")
    reader = _Reader(display)
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
    return _build(path, display, document, reader, registry)


def _build(
    path: Path,
    display: str,
    document: dict[str, Any],
    reader: _Reader,
    registry: Mapping[str, CheckType],
) -> list[Pair]:
    outcome = Outcome(document["outcome"])
    default_kind = Kind.LOCKED if outcome is Outcome.LEAD else Kind.CORRECTED
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
        checks = []
        for c_index, raw_check in enumerate(raw.get("checks", [])):
            ((name, arg),) = raw_check.items()
            c_line = reader.line((*where, "checks", c_index))
            validate = registry[name].validate
            problem = validate(arg) if validate else None
            if problem:
                raise PairFileError(
                    display, c_line, f"pairs[{index}].checks[{c_index}]: {problem}."
                )
            if name == "similar" and "reply" not in raw and not (arg or {}).get("to"):
                raise PairFileError(
                    display,
                    c_line,
                    f"pairs[{index}].checks[{c_index}]: `similar` needs a `reply` to compare with.",
                    "Add `reply:` to the pair or `to:` to the check.",
                )
            checks.append(Check(name, arg, c_line))
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
                checks=tuple(checks),
                tags=tuple(tags),
                line=line,
                retired=raw.get("retired"),
                review=raw.get("review"),
                samples=raw.get("samples"),
            )
        )
    return pairs
