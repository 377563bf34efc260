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


HOSTILE_REPLY = (
    "<img src=x onerror=alert(1)> ![tracker](http://127.0.0.1:9/x.png) [click](http://e) a|b\u202e"
)

LYING_AGENT = """
def reply(prompt, messages):
    if messages[-1]["content"] == "boom":
        raise RuntimeError("broke\\nc.hgd.yaml::fine PASSED\\x1b[2K")
    return prompt
"""


def test_the_markdown_report_shows_replies_as_text(hgd: Gate) -> None:
    """Before: HTML and `![img](…)` from a reply rendered in the pull-request comment."""
    hgd.pytester.makepyfile(lying=LYING_AGENT)
    (hgd.path / "p.txt").write_text(HOSTILE_REPLY, encoding="utf-8")
    hgd.pairs(
        "c.hgd.yaml", conversation({"id": "x", "customer": "hi", "checks": [{"contains": "nope"}]})
    )
    result = hgd.run("--hgd-agent=lying:reply", "--hgd-candidate=p.txt", "--hgd-markdown=pr.md")
    assert result.ret == 1
    markdown = (hgd.path / "pr.md").read_text(encoding="utf-8")
    for raw in ("<img", "![tracker]", "[click](", "a|b", "\u202e"):
        assert raw not in markdown, raw
    assert "&lt;img src=x onerror=alert(1)&gt;" in markdown
    assert "\\!\\[tracker\\](http://127.0.0.1:9/x.png)" in markdown
    assert "\\u202e" in markdown


def test_an_agents_message_cannot_fake_a_line_on_the_terminal(hgd: Gate) -> None:
    """An error message with a line break and an escape sequence is shown escaped."""
    hgd.pytester.makepyfile(lying=LYING_AGENT)
    hgd.prompt("p.txt", {})
    hgd.pairs(
        "c.hgd.yaml",
        conversation({"id": "boom", "customer": "boom", "checks": [{"contains": "x"}]}),
    )
    result = hgd.run("--hgd-agent=lying:reply", "--hgd-candidate=p.txt")
    assert result.ret == 1
    output = result.stdout.str()
    assert "\x1b[2K" not in output
    assert not any(line.startswith("c.hgd.yaml::fine PASSED") for line in result.stdout.lines)
    assert "broke\\nc.hgd.yaml::fine PASSED\\x1b[2K" in output


def test_a_huge_reply_is_excerpted_in_the_failure_text_and_junit(hgd: Gate) -> None:
    """Before: a 100 MB reply was printed whole (one terminal line of 104 million
    characters) and written whole to junit.xml."""
    hgd.pytester.makepyfile(huge="def reply(prompt, messages):\n    return 'word ' * 200_000\n")
    hgd.prompt("p.txt", {})
    hgd.pairs(
        "c.hgd.yaml",
        conversation({"id": "big", "customer": "hi", "checks": [{"contains": "nope"}]}),
    )
    result = hgd.run("--hgd-agent=huge:reply", "--hgd-candidate=p.txt", "--junitxml=junit.xml")
    assert result.ret == 1
    assert max(len(line) for line in result.stdout.lines) < 2_000
    assert (hgd.path / "junit.xml").stat().st_size < 20_000
