"""The `hgd` command: ingest (partition, lock in, review queue, dedup), review, stats."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_hgd.cli import Progress, main
from pytest_hgd.core.checks import BUILTIN_CHECKS
from pytest_hgd.core.model import Kind, Pair
from pytest_hgd.core.record import new_record
from pytest_hgd.storage.ledger import append_record
from pytest_hgd.suite.ingest import render, sanitise
from pytest_hgd.suite.pairfile import load_pairs

REGISTRY = {c.name: c for c in BUILTIN_CHECKS}


def conv(cid: str, outcome: str, *texts: str, first: str = "agent", **extra: Any) -> dict[str, Any]:
    """A conversation whose turns alternate, starting with `first`."""
    other = {"agent": "customer", "customer": "agent"}
    roles = [first if i % 2 == 0 else other[first] for i in range(len(texts))]
    turns = [{"role": r, "text": t} for r, t in zip(roles, texts, strict=True)]
    return {"id": cid, "outcome": outcome, "turns": turns, **extra}


LEAD = conv(
    "call-1",
    "lead",
    "Hi, this is Sam from Acme Motors.",
    "I'm looking at SUVs.",
    "Great. Which models?",
    "How much is the RAV4?",
    "It starts at $29,250. Shall a sales rep call you?",
    "Yes, Monday.",
    tags=["suv"],
    channel="phone",
    score=0.9,
)
NO_LEAD = conv(
    "call-2",
    "no_lead",
    "Hi, this is Sam from Acme Motors.",
    "Do you lease trucks?",
    "No.",
    tags=["truck"],
)


def batch(tmp_path: Path, *lines: dict[str, Any] | str | bytes, name: str = "b.jsonl") -> Path:
    path = tmp_path / name
    data = b""
    for line in lines:
        if isinstance(line, dict):
            line = json.dumps(line)
        data += (line if isinstance(line, bytes) else line.encode()) + b"\n"
    path.write_bytes(data)
    return path


def load(path: Path) -> list[Pair]:
    return load_pairs(path, str(path), REGISTRY)


def snapshot(directory: Path) -> dict[str, tuple[int, int, bytes]]:
    files = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            stat = path.stat()
            files[str(path)] = (stat.st_size, stat.st_mtime_ns, path.read_bytes())
    return files


def ingest(*args: str | Path) -> int:
    return main(["ingest", *(str(a) for a in args)])


# --- help, entry points ------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["ingest"], ["review"], ["stats"]])
def test_help_of_each_command(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: hgd" in capsys.readouterr().out


def test_no_command_and_a_usage_error_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["ingest", "x.jsonl"])  # --out missing
    assert exit_info.value.code == 2
    assert "--out" in capsys.readouterr().err


def test_python_m_and_console_script_help() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "pytest_hgd", "--help"], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0 and "ingest" in run.stdout and "review" in run.stdout
    script = shutil.which("hgd", path=str(Path(sys.executable).parent))  # this venv's, not PATH's
    if script is None:
        pytest.skip("the hgd console script is not installed")
    run = subprocess.run([script, "ingest", "--help"], capture_output=True, text=True, check=False)
    assert run.returncode == 0 and "--dry-run" in run.stdout


# --- ingest: partition and lock in ---------------------------------------------------------


def test_lead_conversation_becomes_locked_pairs(tmp_path: Path) -> None:
    out = tmp_path / "suite"
    assert ingest(batch(tmp_path, LEAD), "--out", out) == 0
    (path,) = out.glob("*.hgd.yaml")
    assert path.name == "call-1.hgd.yaml"
    pairs = load(path)
    assert [p.id for p in pairs] == ["turn-1", "turn-3"]  # the last customer turn has no reply
    assert all(p.kind is Kind.LOCKED and p.review is None for p in pairs)
    assert [(t.speaker, t.text) for t in pairs[1].history] == [
        ("agent", "Hi, this is Sam from Acme Motors."),
        ("customer", "I'm looking at SUVs."),
        ("agent", "Great. Which models?"),
    ]
    assert pairs[1].customer == "How much is the RAV4?"
    assert pairs[1].reply == "It starts at $29,250. Shall a sales rep call you?"
    assert pairs[0].tags == ("suv",) and pairs[0].conversation == "call-1"
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert document["metadata"] == {"channel": "phone", "score": 0.9}


def test_customer_turn_without_an_agent_reply_is_not_a_pair(tmp_path: Path) -> None:
    roles = ["customer", "customer", "agent", "customer"]
    texts = ["hello?", "still there?", "Yes! How can I help?", "bye"]
    line = {
        "id": "c",
        "outcome": "lead",
        "turns": [{"role": r, "text": t} for r, t in zip(roles, texts, strict=True)],
    }
    assert ingest(batch(tmp_path, line), "--out", tmp_path / "s") == 0
    (pair,) = load(tmp_path / "s" / "c.hgd.yaml")
    assert pair.customer == "still there?"
    assert [(t.speaker, t.text) for t in pair.history] == [("customer", "hello?")]


def test_no_lead_conversation_goes_to_the_review_queue(tmp_path: Path) -> None:
    out = tmp_path / "suite"
    assert ingest(batch(tmp_path, NO_LEAD), "--out", out) == 0
    assert not list(out.glob("*.hgd.yaml"))
    path = out / "review" / "call-2.hgd.yaml"
    (pair,) = load(path)  # loads with the real loader
    assert pair.kind is Kind.CORRECTED and pair.review and pair.reply is None
    assert pair.customer == "Do you lease trucks?"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))["pairs"][0]
    assert raw["metadata"] == {"recorded_reply": "No."}


def test_reviewed_pair_loads_once_the_mark_is_replaced_by_a_reply(tmp_path: Path) -> None:
    out = tmp_path / "suite"
    ingest(batch(tmp_path, NO_LEAD), "--out", out)
    path = out / "review" / "call-2.hgd.yaml"
    text = path.read_text(encoding="utf-8")
    review_line = next(line for line in text.splitlines() if "review:" in line)
    path.write_text(text.replace(review_line, "  reply: Not today, but our SUVs can tow."))
    (pair,) = load(path)
    assert pair.review is None and pair.reply == "Not today, but our SUVs can tow."


def test_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = batch(tmp_path, LEAD, NO_LEAD).read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert ingest("-", "--out", tmp_path / "s") == 0
    assert (tmp_path / "s" / "call-1.hgd.yaml").exists()
    assert (tmp_path / "s" / "review" / "call-2.hgd.yaml").exists()


def test_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ingest(batch(tmp_path, LEAD, NO_LEAD), "--out", tmp_path / "s")
    out = capsys.readouterr().out
    assert "2 conversations" in out and "1 lead, 1 no-lead" in out
    assert "2 locked pairs" in out and "1 pair pending review" in out


# --- dedup ---------------------------------------------------------------------------------


def test_second_ingest_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, out = batch(tmp_path, LEAD, NO_LEAD), tmp_path / "s"
    assert ingest(source, "--out", out) == 0
    before = snapshot(out)
    capsys.readouterr()
    assert ingest(source, "--out", out) == 0
    assert snapshot(out) == before  # not a byte, not an mtime, the index included
    assert "skipped 3 pairs already in the suite" in capsys.readouterr().out


def test_shared_opening_and_folded_whitespace_and_case_count_once(tmp_path: Path) -> None:
    other = conv(
        "call-9",
        "lead",
        "hi,  this is SAM from Acme Motors.",
        "i'm looking at suvs. ",
        "Great. Which models?",
        "Any hybrids?",
        "Yes, the RAV4 hybrid.",
    )
    out = tmp_path / "s"
    assert ingest(batch(tmp_path, LEAD, other), "--out", out) == 0
    assert [p.id for p in load(out / "call-9.hgd.yaml")] == ["turn-3"]


def test_a_no_lead_pair_that_is_locked_already_is_skipped(tmp_path: Path) -> None:
    same_start = conv("call-3", "no_lead", *[t["text"] for t in LEAD["turns"][:3]], "Bye.", "Bye.")
    out = tmp_path / "s"
    ingest(batch(tmp_path, LEAD, same_start), "--out", out)
    assert [p.id for p in load(out / "review" / "call-3.hgd.yaml")] == ["turn-3"]


def test_dedup_against_pairs_a_person_wrote(tmp_path: Path) -> None:
    out = tmp_path / "s"
    out.mkdir()
    (out / "hand.hgd.yml").write_text(
        "outcome: lead\npairs:\n  - history:\n      - agent: Hi, this is Sam from Acme Motors.\n"
        "    customer: I'M LOOKING AT SUVS.\n    checks:\n      - contains: model\n",
        encoding="utf-8",
    )
    assert ingest(batch(tmp_path, LEAD), "--out", out) == 0
    assert [p.id for p in load(out / "call-1.hgd.yaml")] == ["turn-3"]


def test_a_file_a_person_edited_is_read_again(tmp_path: Path) -> None:
    out = tmp_path / "s"
    ingest(batch(tmp_path, LEAD), "--out", out)
    path = out / "call-1.hgd.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("How much is the RAV4?", "What does the RAV4 cost?"))
    edited = path.read_text(encoding="utf-8")
    again = conv(
        "call-5",
        "lead",
        *[t["text"] for t in LEAD["turns"][:3]],
        "What does the RAV4 cost?",
        "A lot.",
    )
    original = conv("call-6", "lead", *[t["text"] for t in LEAD["turns"][:5]])
    assert ingest(batch(tmp_path, again, original), "--out", out) == 0
    assert not (out / "call-5.hgd.yaml").exists()  # the edited text is in the suite now
    assert [p.id for p in load(out / "call-6.hgd.yaml")] == ["turn-3"]  # the old one is not
    assert path.read_text(encoding="utf-8") == edited


def test_a_damaged_index_cache_only_costs_a_rescan(tmp_path: Path) -> None:
    source, out = batch(tmp_path, LEAD, NO_LEAD), tmp_path / "s"
    ingest(source, "--out", out)
    index = out / ".hgd" / "ingest-index.json"
    index.write_text('{"version": 1, "files": {"call-1.hgd.yaml": [1, 2, 3, [7]]}}')
    before = {p: p.read_bytes() for p in out.rglob("*.hgd.yaml")}
    assert ingest(source, "--out", out) == 0
    assert {p: p.read_bytes() for p in out.rglob("*.hgd.yaml")} == before
    assert json.loads(index.read_text())["files"]["call-1.hgd.yaml"][3] != [7]


def test_a_broken_pair_file_refuses_the_ingest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "s"
    out.mkdir()
    (out / "broken.hgd.yaml").write_text("outcome: lead\npairs: [\n", encoding="utf-8")
    assert ingest(batch(tmp_path, LEAD), "--out", out) == 1
    err = capsys.readouterr().err
    assert "broken.hgd.yaml:" in err and "refused, nothing written" in err
    assert sorted(p.name for p in out.iterdir()) == ["broken.hgd.yaml"]


# --- names ---------------------------------------------------------------------------------


def test_sanitise() -> None:
    assert sanitise("call-1") == "call-1"
    assert sanitise("../../etc/passwd") == "etc_passwd"
    assert sanitise("crm:42 / Jane Doe") == "crm_42_Jane_Doe"
    assert sanitise("...") == "conversation"
    assert len(sanitise("x" * 500)) <= 80


def test_ids_that_sanitise_alike_do_not_clobber(tmp_path: Path) -> None:
    a = conv("crm/1", "lead", "hi", "price?", "$10.")
    b = conv("crm:1", "lead", "hi", "colour?", "Blue.")
    c = conv("CRM_1", "lead", "hi", "size?", "Big.")
    out = tmp_path / "s"
    assert ingest(batch(tmp_path, a, b, c), "--out", out) == 0
    names = sorted(p.name for p in out.glob("*.hgd.yaml"))
    assert names == ["CRM_1-3.hgd.yaml", "crm_1-2.hgd.yaml", "crm_1.hgd.yaml"]
    conversations = {load(p)[0].conversation for p in out.glob("*.hgd.yaml")}
    assert conversations == {"crm/1", "crm:1", "CRM_1"}


def test_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "s"
    out.mkdir()
    mine = "# mine\noutcome: lead\npairs:\n  - customer: unrelated\n    reply: fine\n"
    (out / "call-1.hgd.yaml").write_text(mine, encoding="utf-8")
    assert ingest(batch(tmp_path, LEAD), "--out", out) == 0
    assert (out / "call-1.hgd.yaml").read_text(encoding="utf-8") == mine
    assert [p.id for p in load(out / "call-1-2.hgd.yaml")] == ["turn-1", "turn-3"]


# --- bad lines, exit status, dry run, progress ---------------------------------------------


def test_bad_lines_are_reported_and_the_good_ones_ingested(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = batch(
        tmp_path,
        "{not json",
        LEAD,
        {"outcome": "lead", "turns": []},
        {"id": "x", "outcome": "lead", "turns": [{"role": "bot", "text": "hi"}]},
        {"id": "y", "outcome": "maybe", "turns": []},
        "",
        b"\xff\xfe",
        "[1, 2]",
        {"id": "z", "outcome": "lead", "turns": [{"role": "agent"}]},
        {"id": "t", "outcome": "lead", "turns": [], "tags": "suv"},
        NO_LEAD,
    )
    assert ingest(source, "--out", tmp_path / "s") == 1
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    assert err == [
        f"{source}:1: skipped: not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))",
        f"{source}:3: skipped: missing field 'id'",
        f"{source}:4: skipped: turns[0]: unknown role 'bot' (expected 'agent' or 'customer')",
        f"{source}:5: skipped: 'outcome' must be 'lead' or 'no_lead', not 'maybe'",
        f"{source}:7: skipped: not UTF-8 text",
        f"{source}:8: skipped: a conversation must be a JSON object, not list",
        f"{source}:9: skipped: turns[0]: 'text' must be a string",
        f"{source}:10: skipped: 'tags' must be a list of non-empty strings",
    ]
    assert "skipped 8 bad lines" in captured.out
    assert (tmp_path / "s" / "call-1.hgd.yaml").exists()
    assert (tmp_path / "s" / "review" / "call-2.hgd.yaml").exists()


def test_a_lone_surrogate_is_a_bad_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = '{"id": "s", "outcome": "lead", "turns": [{"role": "customer", "text": "\\ud800"}]}'
    assert ingest(batch(tmp_path, line), "--out", tmp_path / "s") == 1
    assert "lone surrogate" in capsys.readouterr().err


def test_unreadable_input_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ingest(tmp_path / "missing.jsonl", "--out", tmp_path / "s") == 2
    assert "cannot read" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert ingest(batch(tmp_path, LEAD), "--out", tmp_path / "file") == 2


def test_dry_run_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s"
    assert ingest(batch(tmp_path, LEAD, NO_LEAD), "--out", out, "--dry-run") == 0
    assert not out.exists()
    lines = capsys.readouterr().out.splitlines()
    assert f"would write {out / 'call-1.hgd.yaml'}: 2 locked pairs" in lines
    assert f"would write {out / 'review' / 'call-2.hgd.yaml'}: 1 pair for review" in lines


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_line_only_on_a_terminal() -> None:
    terminal = FakeTerminal()
    progress = Progress(terminal, delay=0.0, interval=0.0)
    progress("ingesting: line 1")
    progress("ingesting: line 20")
    progress.close()
    text = terminal.getvalue()
    assert text.startswith("\rhgd: ingesting: line 1\rhgd: ingesting: line 20")
    assert text.endswith("\r")
    plain = io.StringIO()
    quiet = Progress(plain, delay=0.0, interval=0.0)
    quiet("x")
    quiet.close()
    assert plain.getvalue() == ""


# --- the YAML written ----------------------------------------------------------------------

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    texts=st.lists(TEXT, min_size=2, max_size=6),
    meta=st.dictionaries(
        st.text(min_size=1, max_size=5),
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
        max_size=3,
    ),
)
def test_written_yaml_is_safe_dump_and_round_trips(
    tmp_path_factory: pytest.TempPathFactory, texts: list[str], meta: dict[str, Any]
) -> None:
    meta = {k: v for k, v in meta.items() if k not in ("id", "outcome", "turns", "tags")}
    line = conv("h", "lead", *texts, first="customer", **meta)
    document: dict[str, Any] = {
        "conversation": "h",
        "outcome": "lead",
        "metadata": meta,
        "pairs": [{"history": [{"agent": t}], "customer": t} for t in texts],
    }
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # what render() builds on
    expected_text = yaml.dump(
        document, Dumper=dumper, sort_keys=False, allow_unicode=True, width=100
    )
    assert render(document) == expected_text
    tmp = tmp_path_factory.mktemp("rt")
    assert ingest(batch(tmp, line), "--out", tmp / "s") == 0
    files = list((tmp / "s").glob("*.hgd.yaml"))
    pairs = [p for f in files for p in load(f)]
    expected = [(texts[:i], texts[i], texts[i + 1]) for i in range(0, len(texts) - 1, 2)]
    seen = set()  # pairs equal after folding are ingested once
    unique = []
    for history, customer, reply in expected:
        key = tuple(" ".join(t.split()).casefold() for t in [*history, customer])
        if key not in seen:
            seen.add(key)
            unique.append((history, customer, reply))
    assert [([t.text for t in p.history], p.customer, p.reply) for p in pairs] == unique


# --- review and stats ----------------------------------------------------------------------


def test_review_lists_pending_pairs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s"
    other = conv("call-7", "no_lead", "Hello.", "Price?", "Dunno.", "Bye.", "Bye.")
    ingest(batch(tmp_path, LEAD, NO_LEAD, other), "--out", out)
    capsys.readouterr()
    assert main(["review", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        f"{out / 'review' / 'call-2.hgd.yaml'}:6: turn-1: no lead: write the reply the agent "
        "should have given (or checks), then delete this line"
    )
    assert lines[1].startswith(f"{out / 'review' / 'call-7.hgd.yaml'}:4: turn-1: no lead")
    assert lines[-1] == "3 pairs pending review in 2 files"


def test_review_reports_files_that_do_not_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.hgd.yaml").write_text("outcome: lead\npairs:\n  - reply: x\n")
    assert main(["review", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "bad.hgd.yaml:3: pairs[0]: missing required field 'customer'" in captured.err
    assert "no pairs pending review" in captured.out
    assert main(["review", str(tmp_path / "nope")]) == 2


def test_stats_by_kind_tag_and_growth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s"
    ingest(batch(tmp_path, LEAD, NO_LEAD), "--out", out)
    ledger = tmp_path / "ledger.jsonl"
    for day, size in ((1, 8), (2, 8), (3, 15)):
        record = new_record(
            candidate_hash="c",
            verdict="pass",
            pairs={},
            time=f"2026-03-0{day}T09:00:00+00:00",
            pressure={"value": 0.2, "constraints": {"value": size}},
        )
        append_record(ledger, record)
    capsys.readouterr()
    assert main(["stats", str(out), "--ledger", str(ledger)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == [
        f"suite {out}: 3 pairs in 2 files",
        "  by kind:   locked 2, corrected 1",
        "  by status: enforced 2, pending review 1, retired 0",
    ]
    assert "    suv         2  (locked 2, corrected 0)" in lines
    assert "    truck       1  (locked 0, corrected 1)" in lines
    assert "growth over 3 ledger runs: 8 -> 15 enforced pairs (+7)" in lines
    assert lines[-3:] == [
        "  2026-03-01T09:00:00+00:00       8  +0",
        "  2026-03-02T09:00:00+00:00       8  +0",
        "  2026-03-03T09:00:00+00:00      15  +7",
    ]
    assert main(["stats", str(out), "--ledger", str(ledger), "--last", "1"]) == 0
    assert "  ... 2 earlier runs" in capsys.readouterr().out.splitlines()


# --- end to end: ingest, then the gate -----------------------------------------------------

REPLAY_AGENT = """
import json, pathlib
REPLIES = {}
for line in pathlib.Path(__file__).with_name("batch.jsonl").read_text().splitlines():
    turns = json.loads(line)["turns"]
    for i in range(len(turns) - 1):
        if turns[i]["role"] == "customer" and turns[i + 1]["role"] == "agent":
            REPLIES[turns[i]["text"]] = turns[i + 1]["text"]

def reply(prompt, messages):
    return REPLIES.get(messages[-1]["content"], "no idea")
"""


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
def test_ingest_then_the_gate_passes_locked_pairs_and_skips_pending(
    pytester: pytest.Pytester, tmp_path: Path, xdist: bool
) -> None:
    other = conv(
        "call-3",
        "lead",
        "Hello.",
        "Do you sell vans?",
        "Yes, the Sienna.",
        "Nice.",
        "Shall a rep call?",
    )
    source = batch(tmp_path, LEAD, NO_LEAD, other, conv("call-4", "no_lead", "Hi.", "Nope.", "OK."))
    out = tmp_path / "suite"
    assert main(["ingest", str(source), "--out", str(out)]) == 0
    shutil.copytree(out, pytester.path / "suite")
    shutil.copy(source, pytester.path / "batch.jsonl")
    pytester.makepyfile(replay=REPLAY_AGENT)
    (pytester.path / "p.txt").write_text("You are Sam.", encoding="utf-8")
    args = ["--hgd", "--hgd-agent=replay:reply", "--hgd-candidate=p.txt", "-p", "no:cacheprovider"]
    if xdist:
        pytest.importorskip("xdist")
        args += ["-p", "xdist", "-n", "2"]
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=4, skipped=2)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*HGD gate*", "*skipped: 0 retired, 2 pending review*"])


def test_stats_with_a_missing_ledger_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: `hgd stats --ledger nosuch.jsonl` exited 0 as if the ledger were empty."""
    out = tmp_path / "s"
    ingest(batch(tmp_path, LEAD), "--out", out)
    capsys.readouterr()
    assert main(["stats", str(out), "--ledger", str(tmp_path / "nosuch.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "--ledger" in err and "nosuch.jsonl does not exist" in err
    assert main(["stats", str(out), "--ledger", str(tmp_path)]) == 2
    assert "is not a file" in capsys.readouterr().err
