"""YAML text to plain JSON values, remembering each value's line; hostile input refused.

The composer builds a node tree (libyaml's C parser when present); this module turns it into
strings, finite numbers, booleans, null, lists and mappings, and refuses anything else, too
deep or too large with a ``PairFileError`` carrying the line, before it is built.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import yaml

from .errors import PairFileError

try:  # the C parser when libyaml is present: same results, several times faster
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

MAX_NODES = 200_000
MAX_DEPTH = 64

Location = tuple[str | int, ...]
_STR = "tag:yaml.org,2002:str"


class YamlReader:
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
