"""What the gate prints and writes cannot be forged by a pair file or a reply."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Gate, conversation

INVISIBLE_IDS = {
    "separator": ("a::b", "holds '::'"),
    "newline": ("ok\nPASSED fake", "U+000A"),
    "escape": ("\x1b[32mPASSED", "U+001B"),
    "zero width": ("refund\u200b", "U+200B (ZERO WIDTH SPACE)"),
    "bidi override": ("x\u202eDESSAP", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
}


@pytest.mark.parametrize("name", list(INVISIBLE_IDS))
def test_a_pair_id_that_would_print_as_another_is_refused(hgd: Gate, name: str) -> None:
    """Before: `refund\\u200b` (FAILED) printed exactly like `refund` (PASSED), and an id
    with a newline or an escape sequence printed a fake `PASSED` line."""
    pair_id, problem = INVISIBLE_IDS[name]
    hgd.prompt("p.txt", {"*": "good"})
    hgd.pairs(
        "ids.hgd.yaml",
        conversation(
            {"id": "refund", "customer": "hi", "checks": [{"contains": "good"}]},
            {"id": pair_id, "customer": "hi", "checks": [{"contains": "good"}]},
        ),
    )
    result = hgd.run("--hgd-candidate=p.txt")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    output = result.stdout.str()
    assert "ids.hgd.yaml:7: pair id" in output and problem in output
    assert "\x1b[32mPASSED" not in output and "\u202e" not in output and "\u200b" not in output


@pytest.mark.parametrize("where", ["pair", "file", "conversation"])
def test_invisible_characters_in_tags_and_names_are_refused(hgd: Gate, where: str) -> None:
    hgd.prompt("p.txt", {"*": "good"})
    pair: dict[str, Any] = {"customer": "hi", "checks": [{"contains": "good"}]}
    extra: dict[str, Any] = {}
    if where == "pair":
        pair["tags"] = ["vip\u200b"]
    elif where == "file":
        extra["tags"] = ["vip\u2066"]
    else:
        extra["conversation"] = "call\u202e1"
    hgd.pairs("t.hgd.yaml", conversation(pair, **extra))
    result = hgd.run("--hgd-candidate=p.txt")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["t.hgd.yaml:*has the invisible or control character U+*"])


def test_a_file_name_with_a_bidi_character_is_refused(hgd: Gate) -> None:
    hgd.prompt("p.txt", {"*": "good"})
    hgd.pairs("x\u202elmay.dgh.hgd.yaml", conversation({"customer": "hi", "reply": "good"}))
    result = hgd.run("--hgd-candidate=p.txt")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        ["*x\\u202elmay.dgh.hgd.yaml: the file name * U+202E (RIGHT-TO-LEFT OVERRIDE)*"]
    )
