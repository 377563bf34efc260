"""The event-stream reader of plain documents agrees with the general node-tree reader.

``YamlReader.read`` builds a plain document straight from the parser's events and hands
anything else to the general way (``compose`` then ``value``). Both must give the same
values, the same lines and the same errors, on any text.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_hardening_pairfile import DOCUMENT, HOSTILE, YAML_TOKENS, _dump, mutated

from pytest_hgd.core.errors import PairFileError
from pytest_hgd.suite.yamlreader import NO_DOCUMENT, Location, YamlReader

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))

Answer = tuple[str, str, dict[Location, int] | None]


def _general(text: str) -> Answer:
    reader = YamlReader("f.hgd.yaml")
    try:
        root = reader.compose(text)
        value = NO_DOCUMENT if root is None else reader.value(root, ())
    except PairFileError as exc:
        return "error", str(exc), None
    return "value", repr(value), reader.lines  # repr: NaN (in metadata) equals itself


def _read(text: str) -> Answer:
    reader = YamlReader("f.hgd.yaml")
    try:
        value = reader.read(text)
    except PairFileError as exc:
        return "error", str(exc), None
    return "value", repr(value), reader.lines


def _agree(text: str) -> None:
    assert _read(text) == _general(text), text


@PROPERTY
@given(document=DOCUMENT, flow=st.booleans(), unicode=st.booleans())
def test_documents_near_the_schema(document: Any, flow: bool, unicode: bool) -> None:
    _agree(_dump(document, flow, unicode))


@PROPERTY
@given(document=mutated(), flow=st.booleans())
def test_mutated_documents(document: Any, flow: bool) -> None:
    _agree(_dump(document, flow, True))


@PROPERTY
@given(tokens=st.lists(YAML_TOKENS, max_size=40))
def test_token_soup(tokens: list[str]) -> None:
    _agree("".join(tokens).encode("utf-8", "surrogatepass").decode("utf-8", "replace"))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "# only a comment\n",
        "~\n",
        "42\n",
        "just text\n",
        "outcome: lead\npairs: []\n",
        "a: 1\nb: [1, 2.5, true, null, x]\nc: {d: e}\n",
        "a: &x 1\nb: *x\n",  # anchors and aliases: the general way
        "a: !!str 1\n",  # explicit tags: the general way
        "200: ok\n",  # a number as key
        "[1, 2]: x\n",  # a list as key
        "a: 1\na: 2\n",  # duplicate key
        "a: 1\n---\nb: 2\n",  # two documents
        "a: [1, 2\n",  # bad YAML
        "metadata: {x: .nan}\n",
        "pairs: [{samples: .inf}]\n",
        "a: 0x_\n",  # resolves to int, does not construct
        "x: " + "[" * 70 + "]" * 70 + "\n",  # too deep
        *(data.decode("utf-8", "replace") for data, _ in HOSTILE.values() if len(data) < 10**5),
    ],
    ids=lambda text: repr(text[:30]),
)
def test_edge_cases(text: str) -> None:
    _agree(text)


def test_a_plain_document_never_takes_the_general_way(monkeypatch: pytest.MonkeyPatch) -> None:
    def general(self: YamlReader, text: str) -> None:
        raise AssertionError("the general way")

    monkeypatch.setattr(YamlReader, "compose", general)
    text = (
        "conversation: c\noutcome: lead\ntags: [a]\npairs:\n"
        "  - id: q0\n    history:\n      - agent: 'Hi'\n      - customer: hello\n"
        "    customer: price?\n    reply: '$5'\n"
        "    checks:\n      - contains: ['$']\n      - max_chars: 400\n      - similar: {min: 0.5}\n"
    )
    reader = YamlReader("f.hgd.yaml")
    document = reader.read(text)
    assert document["pairs"][0]["checks"][1] == {"max_chars": 400}
    assert reader.line(("pairs", 0, "checks", 2)) == 14
    assert reader.line(("pairs", 0, "history", 1, "customer")) == 8
