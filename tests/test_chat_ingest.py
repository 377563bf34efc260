"""`hgd ingest` of OpenAI chat-format records: turns from messages, outcomes from a key or a
file, role mapping, format detection, exit codes; and the pair files it writes pass the gate."""

from __future__ import annotations

import io
import json
import re
import shlex
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cli import LEAD, FakeTerminal, batch, load

from pytest_hgd.cli import Progress, main
from pytest_hgd.ingest_cli import fraction_read
from pytest_hgd.suite.chat_format import ChatReader
from pytest_hgd.suite.ingest import BadLine
from pytest_hgd.suite.suite_stats import load_suite

ROOT = Path(__file__).resolve().parent.parent
SYSTEM = {"role": "system", "content": "You are Sam from Acme Motors."}


def chat(cid: Any, *messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": cid, **extra, "messages": [SYSTEM, *messages]}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def assistant(content: Any, **extra: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": content, **extra}


TOOL_CALL = assistant(
    None,
    tool_calls=[{"id": "t1", "type": "function", "function": {"name": "price", "arguments": "{}"}}],
)
TOOL_RESULT = {"role": "tool", "tool_call_id": "t1", "content": "29250"}
SALE = chat(
    "c-1",
    assistant("Hi, this is Sam."),
    user(
        [
            {"type": "text", "text": "How much is"},
            {"type": "image_url", "image_url": {"url": "https://example.com/rav4.jpg"}},
            {"type": "text", "text": "this RAV4?"},
        ]
    ),
    TOOL_CALL,
    TOOL_RESULT,
    assistant([{"type": "text", "text": "It starts at $29,250."}]),
    user("Monday, please."),
    assistant("Booked.", tool_calls=[]),
    outcome="lead",
    tags=["suv"],
    model="gpt-4o",
)
LOST = chat("c-2", user("Do you lease trucks?"), assistant("No."), outcome="no_lead")


def ingest(*args: str | Path) -> int:
    return main(["ingest", *(str(a) for a in args)])


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, list[str], list[str]]:
    code = ingest(*args)
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err.splitlines()


# --- turns from messages -------------------------------------------------------------------


def test_list_contents_tool_messages_and_system_prompts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "s"
    code, lines, err = run(capsys, batch(tmp_path, SALE, LOST), "--out", out)
    assert (code, err) == (0, [])
    assert "  read as chat format (auto: line 1 has 'messages')" in lines
    assert lines[2] == (
        "  left out of the turns: 2 system messages, 1 tool call, 1 tool result, 1 non-text part"
    )
    assert "  wrote 1 file in" in lines[3] and "2 locked pairs" in lines[3]
    pairs = load(out / "c-1.hgd.yaml")
    assert [(p.id, p.customer, p.reply) for p in pairs] == [
        ("turn-1", "How much is\nthis RAV4?", "It starts at $29,250."),
        ("turn-3", "Monday, please.", "Booked."),
    ]
    assert [(t.speaker, t.text) for t in pairs[1].history] == [
        ("agent", "Hi, this is Sam."),
        ("customer", "How much is\nthis RAV4?"),
        ("agent", "It starts at $29,250."),
    ]
    text = (out / "c-1.hgd.yaml").read_text(encoding="utf-8")
    assert "tags:\n- suv\nmetadata:\n  model: gpt-4o\n" in text  # no outcome, no messages
    review = load(out / "review" / "c-2.hgd.yaml")
    assert review[0].customer == "Do you lease trucks?"


def test_null_and_empty_contents_and_tool_calls_with_text() -> None:
    reader = ChatReader()
    line = chat(
        "c-3",
        user(None),  # an empty message: left out, counted
        user("Any hybrids?"),
        assistant("Let me look.", tool_calls=[{"id": "a"}, {"id": "b"}]),  # text kept
        {"role": "tool", "content": "x"},
        {"role": "function", "name": "f", "content": "y"},  # the older API's tool result
        assistant(None, function_call={"name": "f", "arguments": "{}"}),
        assistant([{"type": "input_audio", "input_audio": {}}]),  # no text: empty
        user("   "),
        {"role": "developer", "content": "Be brief."},
        outcome="lead",
    )
    conversation = reader(json.dumps(line))
    assert conversation.turns == (("customer", "Any hybrids?"), ("agent", "Let me look."))
    assert conversation.skipped == {
        "system message": 2,
        "empty message": 3,
        "tool call": 3,
        "tool result": 2,
        "non-text part": 1,
    }


BAD_LINES = [
    ({"messages": []}, "missing field 'id'"),
    ({"id": "", "messages": [], "outcome": "lead"}, "'id' must be a non-empty string"),
    ({"id": "x", "outcome": "lead"}, "missing field 'messages'"),
    ({"id": "x", "outcome": "lead", "messages": {}}, "'messages' must be a list"),
    ({"id": "x", "outcome": "lead", "messages": ["hi"]}, "messages[0]: a message must be an"),
    (chat("x", {"role": "bot", "content": "hi"}, outcome="lead"), "messages[1]: unknown role"),
    (chat("x", user(3), outcome="lead"), "messages[1]: 'content' must be a string, null or"),
    (chat("x", user(["hi"]), outcome="lead"), "messages[1].content[0]: a part must be"),
    (chat("x", user([{"type": "text"}]), outcome="lead"), "a text part's 'text' must be"),
    (chat("x", assistant("a", tool_calls="t"), outcome="lead"), "'tool_calls' must be a list"),
    (chat("x", outcome="won"), "unknown outcome 'won' (expected 'lead' or 'no_lead'; "),
    (chat("x", outcome=["lead"]), "an outcome must be a string, a number or a boolean"),
    (chat("x", outcome="lead", tags="suv"), "'tags' must be a list of non-empty strings"),
]


@pytest.mark.parametrize(("record", "problem"), BAD_LINES)
def test_a_bad_record_is_a_line_numbered_error_and_the_rest_is_ingested(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], record: dict[str, Any], problem: str
) -> None:
    source = batch(tmp_path, SALE, record, LOST)
    code, lines, err = run(capsys, source, "--out", tmp_path / "s")
    assert code == 1
    assert len(err) == 1 and err[0].startswith(f"{source}:2: skipped: ") and problem in err[0]
    assert "Traceback" not in err[0]
    assert "hgd ingest: 2 conversations" in lines[0]
    assert len(load_suite(tmp_path / "s").pairs) == 3


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=12,
)
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "tool", "bot", 3])},
    optional={"content": JSON, "tool_calls": JSON, "function_call": JSON},
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    record=st.fixed_dictionaries(
        {},
        optional={
            "id": JSON | st.just("c"),
            "messages": st.lists(MESSAGE, max_size=4) | JSON,
            "outcome": JSON | st.sampled_from(["lead", "no_lead"]),
            "tags": JSON,
        },
    )
)
def test_any_record_is_a_conversation_or_a_bad_line(record: dict[str, Any]) -> None:
    """Bad input never crashes: whatever the record holds, the reader returns a conversation
    or raises BadLine (which ingest reports with the line number)."""
    try:
        conversation = ChatReader()(json.dumps(record))
    except BadLine:
        return
    assert conversation.outcome in ("lead", "no_lead")
    assert all(role in ("agent", "customer") and text.strip() for role, text in conversation.turns)


# --- roles -----------------------------------------------------------------------------------


def test_roles_can_be_mapped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = {
        "id": "c-9",
        "outcome": "lead",
        "messages": [
            {"role": "human", "content": "Any vans?"},
            {"role": "bot", "content": "The Sienna."},
        ],
    }
    source = batch(tmp_path, record)
    code, _, err = run(capsys, source, "--out", tmp_path / "a")
    assert code == 1 and "unknown role 'human'" in err[0] and "--agent-role" in err[0]
    args = ["--agent-role", "bot", "--customer-role", "human"]
    assert run(capsys, source, "--out", tmp_path / "b", *args)[0] == 0
    [pair] = load(tmp_path / "b" / "c-9.hgd.yaml")
    assert (pair.customer, pair.reply) == ("Any vans?", "The Sienna.")
    # the customer's role as the agent's: the conversation read the other way round
    swapped = ["--agent-role", "user", "--customer-role", "assistant"]
    assert run(capsys, batch(tmp_path, LOST), "--out", tmp_path / "c", *swapped)[0] == 0
    assert load_suite(tmp_path / "c").pairs == []  # the customer speaks last: no pair
    code, _, err = run(capsys, source, "--out", tmp_path / "d", "--agent-role", "user")
    assert code == 2 and err == [
        "hgd ingest: error: --agent-role and --customer-role are both 'user'"
    ]


# --- outcomes ------------------------------------------------------------------------------


def test_outcome_key_and_lead_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = [
        chat("a", user("Hi?"), assistant("Hello."), crm={"result": "Converted "}),
        chat("b", user("Price?"), assistant("$1."), crm={"result": "lost"}),
        chat("c", user("Vans?"), assistant("Yes."), crm={"result": True}),
        chat("d", user("Trucks?"), assistant("No."), crm={}),
    ]
    out = tmp_path / "s"
    args = ["--outcome-key", "crm.result", "--lead-value", "converted", "--lead-value", "true"]
    code, lines, err = run(capsys, batch(tmp_path, *records), "--out", out, *args)
    assert code == 1
    assert err == [
        f"{tmp_path / 'b.jsonl'}:4: skipped: no outcome: no 'crm.result' in the record (nor --outcomes FILE)"
    ]
    assert "  1 conversation without an outcome, not ingested (listed on stderr)" in lines
    assert sorted(p.name for p in out.glob("*.hgd.yaml")) == ["a.hgd.yaml", "c.hgd.yaml"]
    assert [p.name for p in (out / "review").glob("*.hgd.yaml")] == ["b.hgd.yaml"]
    assert "crm:\n    result: 'Converted '" in (out / "a.hgd.yaml").read_text(encoding="utf-8")


def test_an_unknown_outcome_value_names_lead_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = chat("a", user("Hi?"), assistant("Hello."), outcome="closed won")
    code, _, err = run(capsys, batch(tmp_path, record), "--out", tmp_path / "s")
    assert code == 1
    assert err[0].endswith(
        "skipped: 'outcome': unknown outcome 'closed won' (expected 'lead' or 'no_lead'; or "
        "give --lead-value once for each value that means lead, e.g. --lead-value lead "
        "--lead-value 'closed won': every other value is then no_lead)"
    )


OUTCOME_FILES = {
    "outcomes.csv": "id,outcome\nc-1,converted\nc-2, lost\nc-4,converted\nc-5,\n",
    "headerless.csv": "c-1,converted\r\nc-2,lost\r\n\r\nc-4,converted\r\nc-5,\r\n",
    "columns.csv": "\ufeffagent,Outcome,ID\nsam,converted,c-1\nsam,lost,c-2\nx,converted,c-4\nx,,c-5\n",
    "outcomes.jsonl": '{"id": "c-1", "outcome": "converted"}\n{"id": "c-2", "outcome": "lost"}\n'
    '\n{"id": "c-4", "outcome": "converted"}\n{"id": "c-5", "outcome": null}\n',
}


@pytest.mark.parametrize("name", OUTCOME_FILES)
def test_outcomes_from_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    outcomes = tmp_path / name
    outcomes.write_text(OUTCOME_FILES[name], encoding="utf-8")
    no_outcome = chat("c-3", user("Hi?"), assistant("Hello."))
    blank = chat("c-5", user("Hey?"), assistant("Hi."))
    out = tmp_path / "s"
    source = batch(tmp_path, SALE, LOST, no_outcome, blank)  # their own outcome keys ignored
    args = ["--outcomes", outcomes, "--lead-value", "converted"]
    code, lines, err = run(capsys, source, "--out", out, *args)
    assert code == 1
    assert err == [
        f"{source}:3: skipped: no outcome: 'c-3' is not in {outcomes}",
        f"{source}:4: skipped: no outcome: 'c-5' has a blank outcome in {outcomes}",
        f"hgd ingest: warning: 1 id of {outcomes} not in the batch: 'c-4'",
    ]
    assert "  2 conversations without an outcome, not ingested (listed on stderr)" in lines
    assert (out / "c-1.hgd.yaml").exists() and (out / "review" / "c-2.hgd.yaml").exists()
    # the record's own key is kept under metadata when the outcomes come from a file
    assert "metadata:\n  outcome: lead\n" in (out / "c-1.hgd.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        (
            "id,outcome\nc-1,won\nc-2,lead\nc-3,maybe\n",
            [":2: 'c-1': unknown outcome 'won'", ":4: 'c-3': unknown outcome 'maybe'"],
        ),
        ("id,outcome\nc-1,lead\nc-1,no_lead\n", [":3: 'c-1' has another outcome on line 2"]),
        (
            "id;outcome;x\nc-1;lead;y\n",
            [":1: expected a header naming 'id' and 'outcome', or rows"],
        ),
        ("id,outcome\nc-1\n,lead\n", [":2: expected 2 fields, found 1", ":3: the id is blank"]),
        (
            '{"id": "c-1", "outcome": "lead"}\n{"id": 1, "outcome": "x"}\nnope\n[1]\n{"outcome": 1}\n',
            [
                ":2: '1': unknown outcome 'x'",
                ":3: not valid JSON",
                ":4: expected an object with 'id' and 'outcome'",
                ":5: 'id' must be a non-empty string",
            ],
        ),
        (
            "id,outcome\n" + "".join(f"c-{i},x\n" for i in range(30)),
            [":2: 'c-0'", ":21: 'c-19'", "... and 10 more"],
        ),
    ],
)
def test_an_outcomes_file_with_problems_is_a_usage_error_naming_the_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, problems: list[str]
) -> None:
    outcomes = tmp_path / "outcomes.txt"
    outcomes.write_text(text, encoding="utf-8")
    code, lines, err = run(
        capsys, batch(tmp_path, SALE), "--out", tmp_path / "s", "--outcomes", outcomes
    )
    assert code == 2 and lines == []
    for problem in problems:
        assert any(problem in line for line in err), (problem, err)
    assert (
        err[-1] == f"--outcomes {outcomes} cannot be used: nothing ingested. Fix the lines above."
    )
    assert not (tmp_path / "s").exists()


def test_outcomes_file_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = batch(tmp_path, SALE)
    out = tmp_path / "s"
    code, _, err = run(capsys, source, "--out", out, "--outcomes", tmp_path / "nosuch.csv")
    assert code == 2 and err == [
        f"hgd ingest: error: cannot read --outcomes {tmp_path / 'nosuch.csv'}: No such file or directory"
    ]
    code, _, err = run(capsys, source, "--out", out, "--outcomes", tmp_path)
    assert code == 2 and "is not a regular file" in err[0]
    (tmp_path / "latin.csv").write_bytes(b"id,outcome\ncaf\xe9,lead\n")
    code, _, err = run(capsys, source, "--out", out, "--outcomes", tmp_path / "latin.csv")
    assert code == 2 and "latin.csv: not UTF-8 text" in err[0]
    both = ["--outcomes", tmp_path / "latin.csv", "--outcome-key", "result"]
    code, _, err = run(capsys, source, "--out", out, *both)
    assert code == 2 and err == [
        "hgd ingest: error: --outcomes and --outcome-key: give one of them"
    ]
    assert not out.exists()


# --- formats -------------------------------------------------------------------------------


def test_format_auto_is_stated_and_explicit_formats_are_obeyed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hgd_batch = batch(tmp_path, "", LEAD, name="hgd.jsonl")
    code, lines, _ = run(capsys, hgd_batch, "--out", tmp_path / "a")
    assert code == 0 and lines[1] == "  read as hgd format (auto: line 2 has 'turns')"
    chat_batch = batch(tmp_path, SALE, name="chat.jsonl")
    code, lines, _ = run(capsys, chat_batch, "--out", tmp_path / "b", "--format", "chat")
    assert code == 0 and lines[1] == "  read as chat format (--format chat)"
    code, _, err = run(capsys, chat_batch, "--out", tmp_path / "c", "--format", "hgd")
    assert code == 1 and err == [f"{chat_batch}:1: skipped: missing field 'turns'"]
    code, _, err = run(capsys, hgd_batch, "--out", tmp_path / "d", "--format", "chat")
    assert code == 1 and err == [f"{hgd_batch}:2: skipped: missing field 'messages'"]
    for first, why in [("nope", "line 1 is not JSON"), ({"id": 1}, "line 1 has neither")]:
        code, lines, _ = run(capsys, batch(tmp_path, first, SALE), "--out", tmp_path / "e")
        assert code == 1 and lines[1].startswith(f"  read as hgd format (auto: {why}")
    code, lines, _ = run(capsys, batch(tmp_path), "--out", tmp_path / "f")
    assert code == 0 and lines[1] == "  read as hgd format (auto: the batch has no lines)"


def test_chat_options_on_hgd_input_are_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hgd_batch = batch(tmp_path, LEAD)
    code, lines, err = run(capsys, hgd_batch, "--out", tmp_path / "s", "--lead-value", "won")
    assert (code, lines) == (2, [])
    assert err == [
        f"hgd ingest: error: --lead-value: only for chat-format input, and {hgd_batch} is read "
        "as hgd format (auto: line 1 has 'turns'). Hint: --format chat reads it as chat format."
    ]
    assert not (tmp_path / "s").exists()


def test_chat_options_make_an_empty_or_odd_batch_chat(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outcomes = tmp_path / "outcomes.csv"
    outcomes.write_text("id,outcome\na,lead\n")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    code, _, err = run(capsys, empty, "--out", tmp_path / "s", "--outcomes", outcomes)
    assert code == 0, err  # a nightly export with nothing in it is no error
    record = chat("a", user("Hi?"), assistant("Hello."))
    odd = tmp_path / "odd.jsonl"
    odd.write_text("not json\n" + json.dumps(record) + "\n")
    code, _, err = run(capsys, odd, "--out", tmp_path / "s", "--outcomes", outcomes)
    assert code == 1  # line 1 is a bad line; line 2 is read as the chat record it is
    assert any("odd.jsonl:1:" in line for line in err)
    assert (tmp_path / "s").exists()


def test_auto_detection_reads_the_batch_as_a_stream() -> None:
    """Detection holds the blank lines and the first line only; the rest is read as ingest
    goes (a huge batch is never held)."""
    from pytest_hgd.cli import build_parser
    from pytest_hgd.ingest_cli import prepare

    read = []

    def lines() -> Iterator[bytes]:
        for i, line in enumerate([b"", b"  ", json.dumps(SALE).encode(), b"x", b"y"]):
            read.append(i)
            yield line

    args = build_parser().parse_args(["ingest", "b.jsonl", "--out", "s"])
    reading = prepare(args, lines(), "b.jsonl")
    assert (reading.format, read) == ("chat", [0, 1, 2])
    assert list(reading.lines)[2:] == [json.dumps(SALE).encode(), b"x", b"y"]


def test_stdin_and_dedupe_across_formats(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "s"
    same_as_lead = {
        "id": "call-1-chat",
        "outcome": "lead",
        "messages": [
            {"role": "assistant" if t["role"] == "agent" else "user", "content": t["text"]}
            for t in LEAD["turns"]
        ],
    }
    assert run(capsys, batch(tmp_path, LEAD), "--out", out)[0] == 0
    data = json.dumps(same_as_lead).encode() + b"\n"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))
    code, lines, _ = run(capsys, "-", "--out", out)
    assert code == 0 and "  skipped 2 pairs already in the suite" in lines
    assert "  read as chat format (auto: line 1 has 'messages')" in lines
    assert len(load_suite(out).pairs) == 2


def test_progress_bar_for_a_file(tmp_path: Path) -> None:
    path = batch(tmp_path, SALE, LOST)
    with path.open("rb") as stream:
        fraction = fraction_read(stream)
        assert fraction is not None and fraction() == 0.0
        stream.readline()
        terminal = FakeTerminal()
        progress = Progress(terminal, delay=0.0, interval=0.0)
        progress.fraction = fraction
        progress("ingesting: line 1, 1 files")
    share = len(json.dumps(SALE)) + 1
    share_percent = f"{share / path.stat().st_size:4.0%}"
    bar = "#" * round(share / path.stat().st_size * 20)
    assert terminal.getvalue() == f"\rhgd: [{bar:.<20}] {share_percent} ingesting: line 1, 1 files"
    assert fraction_read(io.BytesIO(b"")) is None  # no file behind it: no bar, the text alone


# --- the README's commands, and the gate -------------------------------------------------


def _readme_ingest_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## `hgd ingest`", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^(hgd ingest examples/.*?)(?:\s+#.*)?$", section, re.MULTILINE)
    assert len(commands) == 2 and any("--outcomes" in c for c in commands), commands
    return commands


REPLAY_AGENT = """
import json, pathlib
REPLIES = {}
for name in ("conversations.jsonl", "chat.jsonl"):
    for line in pathlib.Path(__file__).with_name(name).read_text().splitlines():
        record = json.loads(line)
        turns = record.get("turns") or [
            {"role": {"assistant": "agent", "user": "customer"}.get(m["role"]), "text": m["content"]}
            for m in record["messages"]
        ]
        for i in range(len(turns) - 1):
            text = turns[i]["text"]
            if isinstance(text, list):
                text = "\\n".join(p["text"] for p in text if p["type"] == "text")
            if turns[i]["role"] == "customer":
                for later in turns[i + 1:]:
                    if later["role"] == "agent" and later["text"]:
                        REPLIES[text] = later["text"]
                        break

def reply(prompt, messages):
    return REPLIES.get(messages[-1]["content"], "no idea")
"""


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
def test_the_readme_commands_work_and_the_gate_collects_their_pairs(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str], xdist: bool
) -> None:
    shutil.copytree(ROOT / "examples" / "ingest", pytester.path / "examples" / "ingest")
    for command in _readme_ingest_commands():
        argv = shlex.split(command)[1:]
        assert main(argv) == 0, command
        out = capsys.readouterr().out
        assert "chat format" in out if "chat.jsonl" in command else "hgd format" in out
    for name in ("conversations.jsonl", "chat.jsonl"):
        shutil.copy(pytester.path / "examples" / "ingest" / name, pytester.path / name)
    pytester.makepyfile(replay=REPLAY_AGENT)
    (pytester.path / "p.txt").write_text("You are Sam.", encoding="utf-8")
    args = ["--hgd", "--hgd-agent=replay:reply", "--hgd-candidate=p.txt", "-p", "no:cacheprovider"]
    if xdist:
        pytest.importorskip("xdist")
        args += ["-p", "xdist", "-n", "2"]
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=8, skipped=2)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*HGD gate*", "*skipped: 0 retired, 2 pending review*"])
    assert len(list((pytester.path / "pairs").rglob("chat-*.hgd.yaml"))) == 3
