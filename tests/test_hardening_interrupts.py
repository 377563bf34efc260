"""Hardening: a run stopped by SIGINT, SIGTERM or SIGKILL leaves the ledger, the cache and
the reports complete or untouched, never truncated."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import Gate, conversation

from pytest_hgd.reports.report import validate
from pytest_hgd.storage.cache import DATABASE
from pytest_hgd.storage.ledger import read_ledger

REPORTS = ("report.json", "report.md", "report.html")
# What an atomic write leaves when the process dies between creating its temporary file and
# renaming it: a hidden ``.<name>.<pid>.<thread>.tmp`` beside the final name.
STRAY = re.compile(r"^\.(?P<name>.+)\.\d+\.[0-9a-f]+\.tmp$")  # .<name>.<pid>.<random>.tmp


def _run_args(prompt: str) -> list[str]:
    return [
        "--hgd",
        "-p",
        "no:cacheprovider",
        f"--hgd-candidate={prompt}",
        "--hgd-concurrency=4",
        *(
            f"--hgd-{kind}={name}"
            for kind, name in zip(("report", "markdown", "html"), REPORTS, strict=True)
        ),
    ]


def _cached_replies(cache: Path) -> list[str]:
    """Every reply the cache database holds: none before a run has created it."""
    if not (cache / DATABASE).exists():
        return []
    with contextlib.closing(sqlite3.connect(cache / DATABASE)) as db:
        try:
            return [reply for (reply,) in db.execute("SELECT reply FROM replies")]
        except sqlite3.OperationalError:  # the run is creating it: no table yet
            return []


def _snapshot(root: Path) -> dict[str, bytes]:
    return {name: (root / name).read_bytes() for name in REPORTS}


def _check_files(root: Path, before: dict[str, bytes], records_before: int) -> list[Path]:
    """Every file complete (the old one or a new one); returns the stray temporary files."""
    ledger = read_ledger(root / ".hgd" / "ledger.jsonl")
    assert ledger.problems == []
    assert len(ledger.records) in (records_before, records_before + 1)
    with contextlib.closing(sqlite3.connect(root / ".hgd" / "cache" / DATABASE)) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    replies = _cached_replies(root / ".hgd" / "cache")
    assert replies and set(replies) <= {"yes", "slept"}  # each one whole
    report = json.loads((root / "report.json").read_text(encoding="utf-8"))
    validate(report)
    for name in REPORTS:
        data = (root / name).read_bytes()
        if data != before[name]:  # rewritten, by a run that finished: then completely
            assert len(ledger.records) == records_before + 1
            assert data.rstrip().endswith(b"</html>") if name.endswith(".html") else data
    strays = [p for p in root.rglob("*.tmp")]
    for path in strays:
        match = STRAY.match(path.name)
        assert match, f"{path} is not a hidden temporary file"
        assert (path.parent / match["name"]).suffix in (".json", ".md", ".html", ".jsonl")
    return strays


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_mid_run_leaves_every_file_complete_or_untouched(
    hgd: Gate, signum: signal.Signals
) -> None:
    pairs = [
        {"id": f"a{i:02}", "customer": f"a{i:02}", "checks": [{"contains": "s"}]} for i in range(60)
    ]
    hgd.pairs("c.hgd.yaml", conversation(*pairs))
    hgd.prompt("fast.txt", {"*": "yes"})
    first = subprocess.run(
        [sys.executable, "-m", "pytest", *_run_args("fast.txt")],
        cwd=hgd.path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert first.returncode == 0, first.stdout
    before = _snapshot(hgd.path)
    hgd.prompt("slow.txt", {"*": "SLEEP:0.1"})
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", *_run_args("slow.txt")],
        cwd=hgd.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # a shell without job control starts background jobs with SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    cache = hgd.path / ".hgd" / "cache"
    deadline = time.monotonic() + 30
    while len(_cached_replies(cache)) < 70 and time.monotonic() < deadline:
        time.sleep(0.02)  # until the slow run has cached some replies of its own
    process.send_signal(signum)
    output, _ = process.communicate(timeout=30)
    # pytest --hgd turns SIGTERM (a CI timeout) into the same clean stop as Ctrl-C
    assert process.returncode == pytest.ExitCode.INTERRUPTED, output
    strays = _check_files(hgd.path, before, records_before=1)
    assert strays == []  # a Python exception: every temporary file was removed
    assert _snapshot(hgd.path) == before  # an interrupted run writes no report
    slept = _cached_replies(cache).count("slept")
    assert slept >= 10
    calls_before = len(hgd.calls())
    again = subprocess.run(
        [sys.executable, "-m", "pytest", *_run_args("slow.txt")],
        cwd=hgd.path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0, again.stdout
    assert len(hgd.calls()) - calls_before == 60 - slept  # it used what the cache holds
    assert len(read_ledger(hgd.path / ".hgd" / "ledger.jsonl").records) == 2


WRITER = textwrap.dedent(
    """
    import itertools, sys
    from pathlib import Path
    from pytest_hgd.storage.cache import write_atomic
    from pytest_hgd.storage.ledger import append_record

    target, mode = Path(sys.argv[1]), sys.argv[2]
    for i in itertools.count():
        if mode == "file":
            write_atomic(target, '{"n": %d, "pad": "%s"}' % (i, "x" * 2_000_000))
        else:
            append_record(target, {"schema_version": 1, "n": i, "pad": "x" * 200_000})
        if i == 0:
            print("started", flush=True)
    """
)


def _kill_while_writing(tmp_path: Path, target: Path, mode: str, after: float) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target), mode],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "started\n"
    time.sleep(after)
    process.kill()
    process.wait(timeout=10)


@pytest.mark.parametrize("after", [0.0, 0.013, 0.05, 0.11])
def test_sigkill_during_atomic_writes_leaves_a_complete_file(tmp_path: Path, after: float) -> None:
    target = tmp_path / "report.json"
    _kill_while_writing(tmp_path, target, "file", after)
    document = json.loads(target.read_text(encoding="utf-8"))  # complete, whichever it is
    assert len(document["pad"]) == 2_000_000
    for stray in tmp_path.glob("*.tmp"):
        assert STRAY.match(stray.name) and stray.name.startswith(".report.json.")


@pytest.mark.parametrize("after", [0.0, 0.017, 0.07])
def test_sigkill_during_ledger_appends_loses_at_most_the_record_being_written(
    tmp_path: Path, after: float
) -> None:
    from pytest_hgd.storage.ledger import append_record

    ledger = tmp_path / "ledger.jsonl"
    _kill_while_writing(tmp_path, ledger, "ledger", after)
    read = read_ledger(ledger)
    numbers = [r["n"] for r in read.records]
    assert numbers == list(range(len(numbers)))  # every complete record, in order
    assert len(read.problems) <= 1  # at most the line the kill cut short...
    assert all("truncated last line" in problem for problem in read.problems)
    append_record(ledger, {"schema_version": 1, "n": "next"})  # ...and the next run's is whole
    assert read_ledger(ledger).records[-1] == {"schema_version": 1, "n": "next"}


SLOW_REPORT_HOOK = """
import pathlib, time

def pytest_hgd_report(config, report):
    pathlib.Path("finishing").write_text("x")
    time.sleep(60)
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_the_gate_finishes_is_a_quiet_interrupted_exit(
    hgd: Gate, signum: signal.Signals
) -> None:
    """Before: a signal during the session's finish printed a traceback and exited 130."""
    hgd.pytester.makeconftest(SLOW_REPORT_HOOK)
    hgd.prompt("p.txt", {"*": "yes"})
    hgd.pairs("c.hgd.yaml", conversation({"customer": "hi", "checks": [{"contains": "yes"}]}))
    process = hgd.start("--hgd-candidate=p.txt", "--hgd-report=report.json")
    deadline = time.monotonic() + 60
    while not (hgd.path / "finishing").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signum)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "Traceback" not in output
    assert "interrupted while finishing the gate" in output
    report = hgd.report()  # written before the hook ran: complete
    assert report["verdict"] == "pass"
    assert not list(hgd.path.glob("**/*.tmp")) and not list(hgd.path.glob("**/.*.tmp"))
