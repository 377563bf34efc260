"""Built-in checks on an agent reply, as plain functions with the schema of their argument."""

from __future__ import annotations

import contextlib
import inspect
import json
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

from pytest_hgd.core.model import Check, CheckResult, Pair

DEFAULT_SIMILAR_MIN = 0.6
CHECK_SECONDS = 2.0  # the time limit of one check on one reply (see CheckClock)
# Built-in checks that take time linear in the reply: no clock is set for a pair of them only
LINEAR_CHECKS = frozenset({"contains", "not_contains", "max_chars", "similar"})
EXCERPT_CHARS = 120

Outcome = tuple[bool, str]
CheckFunction = Callable[[str, Any, Pair], Outcome | Awaitable[Outcome]]
"""(reply, argument, pair) -> (passed, message), or an awaitable of it. The message explains
a failure."""
Resolver = Callable[[Awaitable[Outcome]], Outcome]


@dataclass(frozen=True)
class CheckType:
    """A named check: its function, the JSON Schema of its argument, an optional validator.

    ``validate`` returns a problem text when an argument that passed the schema is still
    unusable (a regex that does not compile, say), else None.
    """

    name: str
    function: CheckFunction
    schema: Mapping[str, Any]
    validate: Callable[[Any], str | None] | None = None

    @cached_property
    def schema_text(self) -> str:
        """The argument's schema as canonical JSON: what pair-file validators are keyed by."""
        return json.dumps(self.schema, sort_keys=True)


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _as_list(arg: str | list[str]) -> list[str]:
    return [arg] if isinstance(arg, str) else list(arg)


def check_contains(reply: str, arg: str | list[str], pair: Pair) -> tuple[bool, str]:
    folded = reply.casefold()
    missing = [s for s in _as_list(arg) if s.casefold() not in folded]
    return not missing, f"missing {', '.join(repr(s) for s in missing)}"


def check_not_contains(reply: str, arg: str | list[str], pair: Pair) -> tuple[bool, str]:
    folded = reply.casefold()
    found = [s for s in _as_list(arg) if s.casefold() in folded]
    return not found, f"contains forbidden {', '.join(repr(s) for s in found)}"


def _needles_problem(arg: Any) -> str | None:
    if any(not needle for needle in _as_list(arg)):
        return "an empty string is in every reply, so it checks nothing; write the text to look for"
    return None


def check_regex(reply: str, arg: str, pair: Pair) -> tuple[bool, str]:
    return re.search(arg, reply) is not None, f"no match for /{arg}/"


def _regex_problem(arg: Any) -> str | None:
    try:
        re.compile(arg)
    except re.error as exc:
        return f"regex {arg!r} does not compile: {exc}"
    return None


def check_max_chars(reply: str, arg: int, pair: Pair) -> tuple[bool, str]:
    return len(reply) <= arg, f"{len(reply)} characters, at most {arg} allowed"


def check_json_schema(reply: str, arg: Mapping[str, Any], pair: Pair) -> tuple[bool, str]:
    import jsonschema  # only when a pair has this check: it is slow to import

    try:
        document = json.loads(reply)
    except ValueError as exc:
        return False, f"reply is not JSON: {exc}"
    validator = jsonschema.Draft202012Validator(arg, registry=_no_retrieval())
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    if error is None:
        return True, ""
    return False, f"JSON does not match the schema: {error.message}"


def _schema_problem(arg: Any) -> str | None:
    import jsonschema

    try:
        jsonschema.Draft202012Validator.check_schema(arg)
    except jsonschema.exceptions.SchemaError as exc:
        return f"json_schema is not a valid JSON Schema: {exc.message}"
    outside = next(_outside_references(arg), None)
    if outside is not None:
        return (
            f"json_schema: $ref {outside!r} points outside the schema; only references inside "
            "it (`#/$defs/...`) are resolved, never a URL or a file. Copy what it points to "
            "under `$defs`"
        )
    return None


def _outside_references(schema: Any) -> Iterator[str]:
    """Every ``$ref`` / ``$dynamicRef`` that does not point inside the schema itself."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("$ref", "$dynamicRef") and isinstance(value, str):
                    if not value.startswith("#"):
                        yield value
                else:
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)


@lru_cache(maxsize=1)
def _no_retrieval() -> Any:
    """An empty registry: a reference outside the schema is unresolvable, never fetched
    (jsonschema's default retrieves URLs)."""
    import referencing

    return referencing.Registry()


WORD = re.compile(r"\w+")


def similarity(a: str, b: str) -> float:
    """Dice coefficient of the two texts' word multisets: 2·|A∩B| / (|A| + |B|).

    Words are runs of ``\\w`` characters, case-folded. Two empty texts are identical (1.0).
    """
    words_a, count_a = _count_words(a)
    words_b, count_b = _word_counts(b)
    if count_a + count_b == 0:
        return 1.0
    common = 0
    for word, n in words_a.items():
        m = words_b.get(word, 0)
        common += n if n < m else m
    return 2 * common / (count_a + count_b)


def _count_words(text: str) -> tuple[Mapping[str, int], int]:
    words = Counter(WORD.findall(text.casefold()))
    return words, sum(words.values())


# The recorded reply (``b``) is compared with every reply the pair gets: its counts are
# kept. A reply is compared once: caching it would only keep objects alive.
_word_counts = lru_cache(maxsize=4096)(_count_words)


def check_similar(reply: str, arg: Mapping[str, Any] | None, pair: Pair) -> tuple[bool, str]:
    arg = arg or {}
    threshold = float(arg.get("min", DEFAULT_SIMILAR_MIN))
    reference = arg.get("to", pair.reply) or ""
    score = similarity(reply, reference)
    return score >= threshold, f"similarity {score:.2f} < {threshold:.2f} to {excerpt(reference)!r}"


_STRINGS: Mapping[str, Any] = {
    "oneOf": [
        {"type": "string"},
        {"type": "array", "items": {"type": "string"}, "minItems": 1},
    ]
}

BUILTIN_CHECKS: tuple[CheckType, ...] = (
    CheckType("contains", check_contains, _STRINGS, _needles_problem),
    CheckType("not_contains", check_not_contains, _STRINGS, _needles_problem),
    CheckType("regex", check_regex, {"type": "string"}, _regex_problem),
    CheckType("max_chars", check_max_chars, {"type": "integer", "minimum": 0}),
    CheckType("json_schema", check_json_schema, {"type": ["object", "boolean"]}, _schema_problem),
    CheckType(
        "similar",
        check_similar,
        {
            "type": ["object", "null"],
            "properties": {
                "min": {"type": "number", "minimum": 0, "maximum": 1},
                "to": {"type": "string"},
            },
            "additionalProperties": False,
        },
    ),
)

DEFAULT_CHECK = Check("similar", None)


def run_checks(
    reply: str,
    pair: Pair,
    registry: Mapping[str, CheckType],
    resolve: Resolver | None = None,
) -> tuple[CheckResult, ...]:
    """Every check of the pair (``similar`` to the recorded reply when it lists none).

    An asynchronous check's awaitable is handed to ``resolve`` (the gate runs it on its event
    loop); without one, asynchronous checks are an error.
    """
    results = []
    checks = pair.checks or (DEFAULT_CHECK,)
    bounded = any(check.name not in LINEAR_CHECKS for check in checks)
    with CheckClock(len(checks) if bounded else 0) as clock:
        for check in checks:
            clock.current = check.name
            outcome = registry[check.name].function(reply, check.arg, pair)
            if type(outcome) is not tuple and inspect.isawaitable(outcome):
                if resolve is None:
                    raise TypeError(
                        f"check {check.name!r} is asynchronous: it needs the gate's loop"
                    )
                with clock.paused():  # waiting on the loop (a judge's call) is not CPU
                    outcome = resolve(outcome)
            passed, message = outcome
            if passed is True:
                results.append(_passed(check.name))
            else:
                results.append(CheckResult(check.name, passed, "" if passed else message))
    return tuple(results)


class CheckTimeout(Exception):
    """A check ran past its time limit (a regex that backtracks without end, say)."""


class CheckClock:
    """A time limit on a reply's checks: CHECK_SECONDS each, as one SIGALRM timer (none for
    ``checks=0``: a pair whose checks are all LINEAR_CHECKS needs none).

    CPython's regex engine polls for signals, so the alarm's handler stops a runaway
    ``regex:`` check or schema ``pattern`` with `CheckTimeout`, naming the check. Only the
    main thread receives signals: elsewhere (a rollout's checks, on the gate's event loop),
    and where there is no SIGALRM (Windows), checks run without a limit. A timer set by
    someone else (pytest-timeout, say) is put back afterwards, less the time spent here."""

    def __init__(self, checks: int) -> None:
        self.seconds = CHECK_SECONDS * checks
        self.current = ""
        self.armed = (
            checks > 0
            and hasattr(signal, "setitimer")
            and threading.current_thread() is threading.main_thread()
        )
        self._previous: Any = None
        self._timer: tuple[float, float] = (0.0, 0.0)
        self._started = 0.0

    def _alarm(self, signum: int, frame: object) -> None:
        raise CheckTimeout(
            f"check {self.current!r} ran past the {CHECK_SECONDS:g} s limit of a check "
            "(a regex that backtracks without end?)"
        )

    def __enter__(self) -> CheckClock:
        if self.armed:
            self._started = time.monotonic()
            self._previous = signal.signal(signal.SIGALRM, self._alarm)
            self._timer = signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous)
            delay, interval = self._timer
            if delay > 0:
                left = delay - (time.monotonic() - self._started)
                signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3), interval)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        if not self.armed:
            yield
            return
        left, _ = signal.setitimer(signal.ITIMER_REAL, 0)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3))


@lru_cache(maxsize=256)
def _passed(name: str) -> CheckResult:
    """The result of a check that passed: the same for every pair, so made once."""
    return CheckResult(name, True, "")
