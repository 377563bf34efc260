"""Built-in checks on an agent reply, as plain functions with the schema of their argument."""

from __future__ import annotations

import inspect
import json
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

from .model import Check, CheckResult, Pair

DEFAULT_SIMILAR_MIN = 0.6
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
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(arg).iter_errors(document)
    )
    if error is None:
        return True, ""
    return False, f"JSON does not match the schema: {error.message}"


def _schema_problem(arg: Any) -> str | None:
    import jsonschema

    try:
        jsonschema.Draft202012Validator.check_schema(arg)
    except jsonschema.exceptions.SchemaError as exc:
        return f"json_schema is not a valid JSON Schema: {exc.message}"
    return None


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
    CheckType("contains", check_contains, _STRINGS),
    CheckType("not_contains", check_not_contains, _STRINGS),
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
    for check in pair.checks or (DEFAULT_CHECK,):
        outcome = registry[check.name].function(reply, check.arg, pair)
        if type(outcome) is not tuple and inspect.isawaitable(outcome):
            if resolve is None:
                raise TypeError(f"check {check.name!r} is asynchronous: it needs the gate's loop")
            outcome = resolve(outcome)
        passed, message = outcome
        if passed is True:
            results.append(_passed(check.name))
        else:
            results.append(CheckResult(check.name, passed, "" if passed else message))
    return tuple(results)


@lru_cache(maxsize=256)
def _passed(name: str) -> CheckResult:
    """The result of a check that passed: the same for every pair, so made once."""
    return CheckResult(name, True, "")
