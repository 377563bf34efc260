"""The pair-file JSON Schema: as shipped, with the registered check types filled in, and
its validators (the compiled fast path first, jsonschema for the messages)."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from pytest_hgd.core.checks import CheckType
from pytest_hgd.core.fastschema import Validate, compile_schema

if TYPE_CHECKING:  # jsonschema is imported only when a file breaks the schema: slow to import
    import jsonschema


def base_schema() -> dict[str, Any]:
    """The pair-file JSON Schema as shipped (checks not yet filled in)."""
    text = resources.files("pytest_hgd").joinpath("schemas/pairfile.schema.json").read_text()
    return dict(json.loads(text))


@lru_cache(maxsize=8)
def _schema(check_schemas: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    schema = copy.deepcopy(base_schema())
    schema["$defs"]["check"]["properties"] = {
        name: json.loads(text) for name, text in check_schemas
    }
    schema["$defs"]["check"]["additionalProperties"] = False
    return schema


@lru_cache(maxsize=8)
def validator(check_schemas: tuple[tuple[str, str], ...]) -> jsonschema.Draft202012Validator:
    import jsonschema

    return jsonschema.Draft202012Validator(_schema(check_schemas))


def schema_key(registry: Mapping[str, CheckType]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((name, ct.schema_text) for name, ct in registry.items()))


def schema_for(registry: Mapping[str, CheckType]) -> jsonschema.Draft202012Validator:
    """The validator for pair files whose checks are the registered check types."""
    return validator(schema_key(registry))


@lru_cache(maxsize=8)
def fast_validator(check_schemas: tuple[tuple[str, str], ...]) -> Validate | None:
    return compile_schema(_schema(check_schemas))
