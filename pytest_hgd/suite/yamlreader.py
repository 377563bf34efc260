"""YAML text to plain JSON values, remembering each value's line; hostile input refused.

The composer builds a node tree (libyaml's C parser when present); this module turns it into
strings, finite numbers, booleans, null, lists and mappings, and refuses anything else, too
deep or too large with a ``PairFileError`` carrying the line, before it is built. A plain
document (the usual pair file) is built straight from the parser's events instead, with the
same values and lines; anything else takes the node tree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import yaml

from pytest_hgd.core.errors import PairFileError

try:  # the C parser when libyaml is present: same results, several times faster
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

MAX_NODES = 200_000
MAX_CHARS = 20_000_000  # characters of text a document expands to (aliases repeat theirs)
MAX_DEPTH = 64

Location = tuple[str | int, ...]
_STR = "tag:yaml.org,2002:str"


class _NoDocument:
    def __repr__(self) -> str:
        return "NO_DOCUMENT"


NO_DOCUMENT: Any = _NoDocument()  # what ``YamlReader.read`` returns for a text with no document


class _NotPlain(Exception):
    """The fast reader met something only the general one handles (or words)."""


class YamlReader:
    """Turns YAML text (``read``) or a composed node tree (``value``) into plain values,
    remembering each value's line.

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
        self.chars = 0
        self._constructor: yaml.SafeLoader | None = None

    @property
    def constructor(self) -> yaml.SafeLoader:
        """What builds non-string scalars (numbers, booleans, null), made on first use."""
        if self._constructor is None:
            self._constructor = yaml.SafeLoader("")
        return self._constructor

    def read(self, text: str) -> Any:
        """The document's value, or ``NO_DOCUMENT`` when the text holds none; PairFileError
        for bad YAML or a refused value.

        A plain document of up to SCAN_CHARS characters (no anchors, aliases or explicit
        tags; string keys; nothing refused) is built straight from the parser's events, ~1.5
        times faster than through a node tree and with no tree left for the garbage
        collector; anything else, valid or not, is read again the general way, which finds
        and words its first problem."""
        if len(text) <= self.SCAN_CHARS:  # longer: no ordinary pair file; scanned first
            try:
                return self._read_plain(text)
            except _NotPlain:
                self.lines.clear()
                self.nodes = self.chars = 0
        root = self.compose(text)
        return NO_DOCUMENT if root is None else self.value(root, ())

    def _read_plain(self, text: str) -> Any:
        loader = _Loader(text)
        try:
            return self._build_plain(loader)
        except Exception:  # not plain, or not valid: the general way decides and words it
            raise _NotPlain from None
        finally:
            loader.dispose()

    def _build_plain(self, loader: Any) -> Any:
        # long: collection's hot path (benchmarks/fast_gate.py): a call per node costs
        """Values from the event stream of a plain document; ``_NotPlain`` for anything else.

        Records the lines ``value`` records: a mapping entry at its key's line, a sequence
        item and the root at their own. (The hot loop of collection: names are local.)"""
        if loader.yaml_path_resolvers:
            raise _NotPlain
        get = loader.get_event
        resolve = loader.resolve
        scalar_event = yaml.ScalarEvent
        mapping_start, sequence_start = yaml.MappingStartEvent, yaml.SequenceStartEvent
        mapping_end, sequence_end = yaml.MappingEndEvent, yaml.SequenceEndEvent
        scalar_node, str_tag = yaml.ScalarNode, _STR
        tags: dict[str, str] = {}  # plain scalar -> its resolved tag (keys repeat a lot)
        lines = self.lines
        if type(get()) is not yaml.StreamStartEvent:
            raise _NotPlain
        kind = type(get())
        if kind is yaml.StreamEndEvent:
            return NO_DOCUMENT
        if kind is not yaml.DocumentStartEvent:
            raise _NotPlain
        nodes = 0
        result: Any = NO_DOCUMENT
        # the open collections: value, location, whether a mapping, and for a mapping the
        # key whose value comes next (None while a key is expected)
        stack: list[tuple[Any, Location, bool, str | None]] = []
        container: Any = None
        where: Location = ()
        in_mapping = False
        key: str | None = None
        while True:
            event = get()
            kind = type(event)
            if kind is mapping_end or kind is sequence_end:
                container, where, in_mapping, key = stack.pop()
                continue
            nodes += 1
            if kind is scalar_event:
                if event.anchor is not None or (event.tag is not None and event.tag != "!"):
                    raise _NotPlain
                text = event.value
                if event.implicit[0]:
                    tag = tags.get(text)
                    if tag is None:
                        tag = tags[text] = resolve(scalar_node, text, event.implicit)
                else:
                    tag = str_tag
                line = event.start_mark.line + 1
                if nodes > MAX_NODES or len(stack) > MAX_DEPTH:
                    raise _NotPlain  # too large or too deep: the general way says where
                if in_mapping:
                    if key is None:  # this scalar is a key
                        if tag != str_tag or text in container:
                            raise _NotPlain
                        key = text
                        location: Location = (*where, key)
                        lines[location] = line
                        continue
                    if tag == str_tag:
                        container[key] = text
                    else:
                        node = scalar_node(tag, text, event.start_mark, event.end_mark)
                        container[key] = self._scalar(node, (*where, key), line)
                    key = None
                elif container is not None:
                    location = (*where, len(container))
                    lines[location] = line
                    if tag == str_tag:
                        container.append(text)
                    else:
                        node = scalar_node(tag, text, event.start_mark, event.end_mark)
                        container.append(self._scalar(node, location, line))
                else:  # the document is one scalar
                    lines[()] = line
                    if tag == str_tag:
                        result = text
                    else:
                        node = scalar_node(tag, text, event.start_mark, event.end_mark)
                        result = self._scalar(node, (), line)
            elif kind is mapping_start or kind is sequence_start:
                if event.anchor is not None or (event.tag is not None and event.tag != "!"):
                    raise _NotPlain
                if nodes > MAX_NODES or len(stack) > MAX_DEPTH:
                    raise _NotPlain
                line = event.start_mark.line + 1
                value: Any = {} if kind is mapping_start else []
                if in_mapping:
                    if key is None:  # a mapping or a list as a key
                        raise _NotPlain
                    location = (*where, key)
                    container[key] = value
                elif container is not None:
                    location = (*where, len(container))
                    lines[location] = line
                    container.append(value)
                else:
                    location = ()
                    lines[location] = line
                    result = value
                stack.append((container, where, in_mapping, None))
                container, where, in_mapping, key = value, location, kind is mapping_start, None
            elif kind is yaml.DocumentEndEvent:
                nodes -= 1  # an end, not a value
                break
            else:  # an alias, or anything unexpected
                raise _NotPlain
        if type(get()) is not yaml.StreamEndEvent:  # a second document
            raise _NotPlain
        self.nodes = nodes
        return result

    def compose(self, text: str) -> yaml.Node | None:
        """The document's node tree; PairFileError for bad YAML or a document too large."""
        try:
            if len(text) > self.SCAN_CHARS or sum(map(text.count, "[{-?:")) > self.SCAN_INDICATORS:
                self.scan(text)
            return yaml.compose(text, Loader=_Loader)
        except yaml.MarkedYAMLError as exc:
            self.refuse_if_too_deep_before(text, exc.problem_mark)
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

    def refuse_if_too_deep_before(self, text: str, mark: yaml.Mark | None) -> None:
        """The loader stopped at ``mark``: if the document is too deep or too large before that
        point, refuse it for that, whichever layer noticed first.

        libyaml 0.2.6 (PyYAML 6.0.4) has a nesting limit of its own, and its scanner reads far
        ahead of the events ``scan`` counts (a ``[`` may start a key), so it can stop first. The
        text before its mark is within its limit: counted here, our limits decide."""
        index = getattr(mark, "index", None)
        if not isinstance(index, int) or index <= 0:
            return
        try:
            self.scan(text[:index])
        except yaml.YAMLError:  # cut mid-way: no verdict of ours, the loader's problem stands
            return

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

    def _too_large(self, line: int | None) -> PairFileError:
        return PairFileError(
            self.path,
            line,
            f"the document expands to more than {MAX_CHARS} characters of text.",
            "Pair files hold one conversation; YAML aliases that repeat long text are refused.",
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
            self.chars += len(node.value)
            if self.chars > MAX_CHARS:  # an alias repeats a long string: bounded in size too
                raise self._too_large(line)
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
