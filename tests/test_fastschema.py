"""The compiled schema check agrees with jsonschema on every schema it compiles.

``compile_schema`` answers the common case (a valid pair file or report) without jsonschema;
a wrong True would let a bad file through, a wrong False would only cost time, but both are
bugs: generated schemas and values, judged by both.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_hgd.core.checks import BUILTIN_CHECKS
from pytest_hgd.core.fastschema import compile_schema
from pytest_hgd.reports.report import report_schema
from pytest_hgd.suite.pairschema import schema_for

NAMES = st.sampled_from(["a", "b", "c", "id", "0"])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.0, 1.0, 1.5, -2.5]),
    st.sampled_from(["", "a", "b", "ab", "abc"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(NAMES, inner, max_size=3)),
    max_leaves=8,
)
TYPES = st.sampled_from(["object", "array", "string", "boolean", "null", "number", "integer"])
BOUND = st.integers(0, 3) | st.sampled_from([0.5, 2.0])


def _schemas(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    keyword = st.one_of(
        st.builds(
            lambda t: {"type": t}, TYPES | st.lists(TYPES, min_size=1, max_size=3, unique=True)
        ),
        st.builds(lambda o: {"enum": o}, st.lists(SCALARS, min_size=1, max_size=3)),
        st.builds(lambda o: {"const": o}, SCALARS),
        st.builds(
            lambda k, n: {k: n},
            st.sampled_from(["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"]),
            BOUND,
        ),
        st.builds(
            lambda k, n: {k: int(n)},
            st.sampled_from(
                ["minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"]
            ),
            st.integers(0, 3),
        ),
        st.builds(lambda r: {"required": r}, st.lists(NAMES, max_size=2, unique=True)),
        st.builds(
            lambda p, a: {"properties": p, **({} if a is None else {"additionalProperties": a})},
            st.dictionaries(NAMES, inner, max_size=3),
            st.none() | st.booleans() | inner,
        ),
        st.builds(lambda a: {"additionalProperties": a}, st.booleans() | inner),
        st.builds(lambda i: {"items": i}, st.booleans() | inner),
        st.builds(
            lambda k, subs: {k: subs},
            st.sampled_from(["oneOf", "anyOf", "allOf"]),
            st.lists(inner, min_size=1, max_size=3),
        ),
    )
    return st.lists(keyword, max_size=4).map(
        lambda parts: {k: v for p in parts for k, v in p.items()}
    )


SCHEMAS = st.recursive(st.booleans() | st.just({}), _schemas, max_leaves=6)
PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))


def _agree(schema: Any, values: list[Any]) -> None:
    fast = compile_schema(schema if isinstance(schema, dict) else {"allOf": [schema]})
    if fast is None:
        return
    full = jsonschema.Draft202012Validator(schema)
    for value in values:
        assert fast(value) == full.is_valid(value), (schema, value)


@PROPERTY
@given(schema=SCHEMAS, values=st.lists(VALUES, min_size=1, max_size=8))
def test_compiled_schemas_agree_with_jsonschema(schema: Any, values: list[Any]) -> None:
    _agree(schema, values)


@PROPERTY
@given(
    schema=SCHEMAS,
    definition=SCHEMAS,
    values=st.lists(VALUES, min_size=1, max_size=8),
)
def test_references_agree_with_jsonschema(schema: Any, definition: Any, values: list[Any]) -> None:
    root = {"$defs": {"d": definition}, "allOf": [{"$ref": "#/$defs/d"}, schema]}
    _agree(root, values)


def test_a_recursive_definition_compiles_and_agrees() -> None:
    tree = {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
                "additionalProperties": False,
            }
        },
        "$ref": "#/$defs/node",
    }
    values = [
        {},
        {"children": []},
        {"children": [{"children": [{}]}]},
        {"children": [{"children": [{"x": 1}]}]},
        {"children": [1]},
        [],
    ]
    assert compile_schema(tree) is not None
    _agree(tree, values)


@pytest.mark.parametrize(
    "schema",
    [
        {"patternProperties": {"a": {}}},
        {"type": "object", "minProperties": None},
        {"format": "email"},
        {"$ref": "https://example.com/schema"},
    ],
)
def test_keywords_it_does_not_know_leave_the_schema_to_jsonschema(schema: Any) -> None:
    assert compile_schema(schema) is None


def test_the_shipped_schemas_compile() -> None:
    registry = {c.name: c for c in BUILTIN_CHECKS}
    assert compile_schema(schema_for(registry).schema) is not None
    assert compile_schema(report_schema()) is not None
