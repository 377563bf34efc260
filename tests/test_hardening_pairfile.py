"""Hardening: every pair file gives pairs or one clear collection error, never a crash.

Property tests drive ``load_pairs`` with generated documents (near the schema, mutated) and
raw text and bytes; hostile files (alias bombs, huge, deep, tagged) are refused quickly.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Gate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_hgd.core.checks import BUILTIN_CHECKS
from pytest_hgd.core.errors import PairFileError
from pytest_hgd.core.model import Pair
from pytest_hgd.suite.pairfile import MAX_BYTES, load_pairs

REGISTRY = {c.name: c for c in BUILTIN_CHECKS}
DISPLAY = "pairs/gen.hgd.yaml"
FAST = 3.0  # seconds: "refused quickly", with room for a loaded CI machine
EXAMPLES = int(os.environ.get("HGD_FUZZ_EXAMPLES", "150"))  # more for a deeper search
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# -- generated documents -----------------------------------------------------------------

ODD_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\u200b",
        "\ufeff",
        "e\u0301",
        "\U0001f697",
        "\u202e",
        "null",
        "~",
        "yes",
        "0x1F",
        "1e400",
        ".nan",
        "- x",
        "a: b",
        "&a",
        "*a",
        "!!python/object:os.system",
        "'",
        '"',
        "\\",
        "\t",
        "\r\n",
        "\x85",
        "\u2028",
        "((",
        "[",
        "$\\d",
    ]
)
TEXT = st.one_of(st.text(max_size=30), ODD_TEXT)
SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**300), max_value=10**300),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
)
JUNK = st.recursive(
    SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(TEXT, st.integers(-5, 5)), inner, max_size=4),
    ),
    max_leaves=12,
)
CHECK = st.one_of(
    st.builds(lambda s: {"contains": s}, st.one_of(TEXT, st.lists(TEXT, max_size=3))),
    st.builds(lambda s: {"not_contains": s}, st.one_of(TEXT, st.lists(TEXT, max_size=3))),
    st.builds(lambda s: {"regex": s}, TEXT),
    st.builds(lambda n: {"max_chars": n}, st.integers(-3, 10**30)),
    st.builds(lambda s: {"json_schema": s}, JUNK),
    st.builds(
        lambda m, t: {"similar": {"min": m, **({"to": t} if t is not None else {})}},
        st.floats(-1, 2, allow_nan=False),
        st.one_of(st.none(), TEXT),
    ),
    st.dictionaries(TEXT, JUNK, max_size=2),  # unknown check, several names, none
)
TURN = st.one_of(
    st.builds(lambda s: {"agent": s}, TEXT), st.builds(lambda s: {"customer": s}, TEXT)
)
PAIR = st.fixed_dictionaries(
    {"customer": TEXT},
    optional={
        "id": st.one_of(TEXT, st.integers(-3, 10**20)),
        "kind": st.sampled_from(["locked", "corrected", "other"]),
        "history": st.lists(TURN, max_size=3),
        "reply": TEXT,
        "checks": st.lists(CHECK, max_size=3),
        "tags": st.lists(TEXT, max_size=3),
        "retired": TEXT,
        "review": TEXT,
        "samples": st.integers(-2, 20),
        "metadata": JUNK,
    },
)
DOCUMENT = st.fixed_dictionaries(
    {"outcome": st.sampled_from(["lead", "no_lead"]), "pairs": st.lists(PAIR, max_size=4)},
    optional={
        "conversation": TEXT,
        "tags": st.lists(TEXT, max_size=3),
        "rollout": st.booleans(),
        "metadata": JUNK,
    },
)


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    """A document close to the schema, with a few random mutations at random places."""
    document: Any = draw(DOCUMENT)
    for _ in range(draw(st.integers(0, 3))):
        containers = list(_containers(document))
        target = draw(st.sampled_from(containers))
        if isinstance(target, dict) and target:
            key = draw(st.sampled_from(sorted(target, key=str)))
            action = draw(st.sampled_from(["delete", "replace", "add"]))
            if action == "delete":
                del target[key]
            elif action == "replace":
                target[key] = draw(JUNK)
            else:
                target[draw(st.one_of(TEXT, st.integers(-3, 3)))] = draw(JUNK)
        elif isinstance(target, list) and target:
            index = draw(st.integers(0, len(target) - 1))
            target[index] = draw(JUNK)
    if draw(st.integers(0, 9)) == 0:
        document = draw(JUNK)  # the whole document replaced: a list, a scalar, ...
    return document


def _containers(value: Any) -> Any:
    if isinstance(value, dict | list):
        yield value
        for child in value.values() if isinstance(value, dict) else value:
            yield from _containers(child)


def _dump(document: Any, flow: bool, unicode: bool) -> str:
    return yaml.safe_dump(
        document, sort_keys=False, default_flow_style=flow, allow_unicode=unicode, width=60
    )


def _load(path: Path, data: bytes) -> list[Pair] | PairFileError:
    """The loader's answer: pairs, or the PairFileError it raised (anything else fails)."""
    path.write_bytes(data)
    try:
        pairs = load_pairs(path, DISPLAY, REGISTRY)
    except PairFileError as exc:
        assert str(exc).startswith(DISPLAY), str(exc)
        assert exc.path == DISPLAY
        assert "Traceback" not in str(exc)
        return exc
    assert isinstance(pairs, list)
    ids = [pair.id for pair in pairs]
    assert len(ids) == len(set(ids))
    for pair in pairs:
        assert isinstance(pair, Pair)
        assert isinstance(pair.customer, str)
        assert pair.reply is None or isinstance(pair.reply, str)
        assert pair.reply is not None or pair.checks or pair.review is not None
        pair.content_hash()  # the hash every run takes: must not raise
        for check in pair.checks:
            assert check.name in REGISTRY
    return pairs


def _finite(value: Any) -> bool:
    """No NaN or infinity outside the free-form ``metadata`` (carried, never interpreted)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for k, v in value.items() if k != "metadata")
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


@PROPERTY
@given(document=mutated(), flow=st.booleans(), unicode=st.booleans())
def test_generated_documents_give_pairs_or_a_clear_error(
    tmp_path: Path, document: Any, flow: bool, unicode: bool
) -> None:
    answer = _load(tmp_path / "gen.hgd.yaml", _dump(document, flow, unicode).encode("utf-8"))
    if not isinstance(answer, PairFileError):
        assert _finite(document), "a NaN or infinity was accepted"


@PROPERTY
@given(document=DOCUMENT)
def test_documents_within_the_schema_load(tmp_path: Path, document: dict[str, Any]) -> None:
    """Near-miss generation must still produce valid files often: the loader accepts them."""
    answer = _load(tmp_path / "gen.hgd.yaml", _dump(document, False, True).encode("utf-8"))
    if isinstance(answer, PairFileError):
        assert any(
            word in str(answer)
            for word in (
                "needs a `reply`",
                "duplicate pair id",
                "does not compile",
                "json_schema",
                "similar",
                "unknown check",
                "exactly one check",
                "is not one of",
                "expected",
                "minimum",
                "non-empty",
                "should be non-empty",
                "is too short",
                "not a finite",
                "is less than",
                "does not have enough properties",
                "duplicate key",
                "invisible or control character",
                "holds '::'",
                "an empty string is in every reply",
                "has no pairs",
            )
        ), str(answer)


YAML_TOKENS = st.sampled_from(
    [
        "outcome: lead\n",
        "pairs:\n",
        "  - ",
        "customer: hi\n",
        "    reply: x\n",
        "    checks: [",
        "{contains: a}",
        "]",
        "[",
        "{",
        "}",
        ", ",
        "- ",
        "? ",
        ": ",
        "&a ",
        "*a ",
        "!!python/object:os.system ",
        "!!binary ",
        "!!set ",
        "!custom ",
        "<<: ",
        "'",
        '"',
        "|\n",
        ">-\n",
        "# c\n",
        "---\n",
        "...\n",
        "%YAML 1.1\n",
        "%TAG !p! tag:yaml.org,2002:python/\n",
        "\t",
        "  ",
        "\n",
        "\\u",
        "\x00",
        "\ufeff",
        "\x85",
        ".nan",
        "99999999999999999999",
        "9" * 4400,
        "- " * 40,
        "1e999",
        "2024-01-01",
        "0o17",
        "yes",
    ]
)


@PROPERTY
@given(tokens=st.lists(YAML_TOKENS, max_size=40))
def test_yaml_token_soup(tmp_path: Path, tokens: list[str]) -> None:
    _load(tmp_path / "gen.hgd.yaml", "".join(tokens).encode("utf-8", "surrogatepass"))


@PROPERTY
@given(text=st.text(max_size=200))
def test_arbitrary_text(tmp_path: Path, text: str) -> None:
    _load(tmp_path / "gen.hgd.yaml", text.encode("utf-8", "surrogatepass"))


@PROPERTY
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes(tmp_path: Path, data: bytes) -> None:
    _load(tmp_path / "gen.hgd.yaml", data)


# -- hostile files -------------------------------------------------------------------------

LAUGHS = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
    for prev, name in zip([None, *"abcdefgh"], "abcdefghi", strict=True)
)
HOSTILE = {
    "billion laughs": (LAUGHS.encode(), "expands to more than"),
    "alias bomb in a pair": (
        (
            "outcome: lead\nx: &x [a, a, a, a, a, a, a, a, a, a]\n"
            + "".join(f"y{i}: &y{i} [*{'x' if i == 0 else f'y{i - 1}'}] \n" for i in range(3))
            + "pairs: [{customer: hi, reply: x, metadata: {m: [*y2, *y2, *y2]}}]\n"
        ).encode(),
        "",  # small: loads or is refused, but quickly
    ),
    "alias amplification of long strings": (  # 2 MB expanding to 2 GB of text
        b"outcome: lead\nlong: &s '"
        + b"x" * 2_000_000
        + b"'\n"
        + b"many: &m ["
        + b"*s, " * 999
        + b"*s]\n"
        + b"pairs: [{customer: hi, reply: x, metadata: {m: *m}}]\n",
        "expands to more than 20000000 characters",
    ),
    "50 MB file": (b"outcome: lead\npairs: []\n" + b"# padding\n" * 5_000_000, "byte limit"),
    "10 MB of list items": (b"- x\n" * (MAX_BYTES // 4 - 1), "expands to more than"),
    "10 MB flow list": (b"[" + b"1," * (MAX_BYTES // 2 - 2) + b"]", "expands to more than"),
    "10 MB mapping": (
        b"".join(b"k%07d: v\n" for i in range(MAX_BYTES // 11)),
        "expands to more than",
    ),
    "deep flow nesting": (b"[" * 100_000 + b"]" * 100_000, "nesting deeper than"),
    "deep unclosed nesting": (b"{a: " * 200_000, "nesting deeper than"),
    "deep block sequences": (b"- " * 100_000 + b"x\n", "nesting deeper than"),
    "deep block mappings": (
        b"".join(b" " * i + b"a:\n" for i in range(2_000)),
        "nesting deeper than",
    ),
    "recursive alias": (b"outcome: lead\npairs: &p [*p]\n", "nesting deeper than"),
    "non-UTF-8 bytes": (b"outcome: lead\npairs:\n  - customer: \xff\xfe\n", "is not UTF-8"),
    "UTF-16": ("outcome: lead\npairs: []\n".encode("utf-16"), "is not UTF-8"),
    "NUL byte": (b"outcome: lead\x00\npairs: []\n", "control characters"),
    "a list": (b"- outcome: lead\n- pairs: []\n", "must be a mapping"),
    "a scalar": (b"just some text\n", "must be a mapping"),
    "a number": (b"42\n", "must be a mapping"),
    "null": (b"~\n", "must be a mapping"),
    "empty": (b"", "is empty"),
    "only a comment": (b"# nothing\n", "is empty"),
    "python object tag": (
        b"outcome: lead\npairs:\n  - customer: !!python/object/apply:os.system [echo hi]\n"
        b"    reply: x\n",
        "unsupported YAML tag",
    ),
    "python tag on a mapping": (
        b"outcome: lead\npairs:\n  - !!python/object:builtins.dict {customer: hi, reply: x}\n",
        "unsupported YAML tag",
    ),
    "python tag on the document": (
        b"!!python/object/new:os.system\noutcome: lead\npairs: []\n",
        "unsupported YAML tag",
    ),
    "python tag through %TAG": (
        b"%TAG !p! tag:yaml.org,2002:python/\n---\noutcome: !p!name:os.system lead\npairs: []\n",
        "unsupported YAML tag",
    ),
    "python module tag": (b"outcome: !!python/module:os lead\npairs: []\n", "unsupported"),
    "custom tag": (b"outcome: !secret lead\npairs: []\n", "unsupported YAML tag"),
    "set": (b"outcome: lead\npairs: !!set {a, b}\n", "unsupported YAML tag"),
    "omap": (b"outcome: lead\npairs: !!omap [a: 1]\n", "unsupported YAML tag"),
    "merge key": (b"x: &x {outcome: lead}\n<<: *x\npairs: []\n", "unsupported YAML tag"),
    "huge integer": (
        b"outcome: lead\npairs:\n  - customer: hi\n    reply: x\n    samples: "
        + b"9" * 5000
        + b"\n",
        "too many digits",
    ),
    "NaN": (
        b"outcome: lead\npairs:\n  - customer: hi\n    reply: x\n    checks: [{similar: {min: .nan}}]\n",
        "is not a finite number",
    ),
    "infinity": (
        b"outcome: lead\npairs:\n  - customer: hi\n    checks: [{json_schema: {maximum: .inf}}]\n",
        "is not a finite number",
    ),
    "NaN in metadata": (  # carried, never interpreted: accepted
        b"outcome: lead\nmetadata: {x: .nan}\npairs:\n  - {customer: hi, reply: x, metadata: {y: .inf}}\n",
        "",
    ),
    "bad bool": (b"outcome: !!bool maybe\npairs: []\n", "cannot read 'maybe' as bool"),
    "bad timestamp": (b"outcome: !!timestamp 2024-13-45\npairs: []\n", "cannot read"),
    "float key": (b"outcome: lead\npairs: []\n1.5: x\n", "is not a name"),
    "two documents": (b"outcome: lead\npairs: []\n---\nouch: 1\n", "another document"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_files_are_refused_quickly(tmp_path: Path, name: str) -> None:
    data, expected = HOSTILE[name]
    path = tmp_path / "gen.hgd.yaml"
    path.write_bytes(data)
    started = time.perf_counter()
    try:
        load_pairs(path, DISPLAY, REGISTRY)
    except PairFileError as exc:
        message = str(exc)
    else:
        message = ""
    seconds = time.perf_counter() - started
    assert seconds < FAST, f"{name}: took {seconds:.2f} s"
    if expected:
        assert message.startswith(DISPLAY), message
        assert expected in message, message


@pytest.mark.parametrize("depth", [400, 100_000])
def test_deep_nesting_with_the_pure_python_parser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, depth: int
) -> None:
    """Without libyaml, PyYAML's composer recurses in Python: a RecursionError, caught."""
    monkeypatch.setattr("pytest_hgd.suite.yamlreader._Loader", yaml.SafeLoader)
    path = tmp_path / "gen.hgd.yaml"
    path.write_bytes(b"[" * depth + b"]" * depth)
    started = time.perf_counter()
    with pytest.raises(PairFileError, match="nesting deeper than 64 levels"):
        load_pairs(path, DISPLAY, REGISTRY)
    assert time.perf_counter() - started < FAST


def test_hostile_nesting_does_not_crash_the_interpreter(hgd: Gate) -> None:
    """Deep nesting crashed libyaml's recursive composer (SIGSEGV) before it was scanned."""
    hgd.prompt("p.txt", {"*": "x"})
    (hgd.path / "deep.hgd.yaml").write_bytes(b"[" * 60_000 + b"]" * 60_000)
    (hgd.path / "ok.hgd.yaml").write_text(
        "outcome: lead\npairs:\n  - customer: hi\n    reply: x\n", encoding="utf-8"
    )
    result = hgd.run_subprocess("--hgd-candidate=p.txt", "--hgd-report=report.json")
    assert result.ret == pytest.ExitCode.INTERRUPTED  # pytest's "errors during collection"
    result.stdout.fnmatch_lines(["*deep.hgd.yaml:1: nesting deeper than 64 levels.*"])
    assert "Traceback" not in result.stdout.str()


# -- the plugin on generated files ---------------------------------------------------------


@settings(
    max_examples=max(6, EXAMPLES // 25), deadline=None, suppress_health_check=list(HealthCheck)
)
@given(documents=st.lists(mutated(), min_size=1, max_size=3), flow=st.booleans())
def test_generated_files_through_pytest(hgd: Gate, documents: list[Any], flow: bool) -> None:
    hgd.prompt("p.txt", {"*": "x"})
    for old in hgd.path.glob("*.hgd.yaml"):
        old.unlink()
    for index, document in enumerate(documents):
        hgd.pairs(f"g{index}.hgd.yaml", _dump(document, flow, True))
    result = hgd.run("--hgd-candidate=p.txt", "--hgd-no-ledger", "--hgd-no-cache")
    output = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in output
    assert "Traceback" not in output
    assert result.ret in (0, 1, 2, 5), output  # passed, failed, collection error, no pairs
    if result.ret == pytest.ExitCode.INTERRUPTED:  # collection errors name their file
        result.stdout.fnmatch_lines(["*ERROR collecting g*.hgd.yaml*", "g*.hgd.yaml*: *"])
