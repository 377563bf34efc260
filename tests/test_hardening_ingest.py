"""Hardening of `hgd ingest`, `review` and `stats`: concurrent ingests lose nothing, long
conversations are refused fast, FIFOs and devices never hang or exhaust memory, and ingest
writes only inside its output folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_cli import LEAD, batch, conv

from pytest_hgd.cli import main
from pytest_hgd.suite.suite_stats import load_suite

HGD = [sys.executable, "-m", "pytest_hgd"]


def _conversations(prefix: str, count: int) -> list[dict[str, Any]]:
    return [
        conv(
            f"call-{i}",  # the same ids in both batches: both runs want the same file names
            "lead",
            "Hi, this is Sam.",
            f"{prefix} question {i}?",
            f"{prefix} answer {i}.",
            "Thanks.",
            "Bye.",
        )
        for i in range(count)
    ]


def test_two_ingests_at_once_into_one_folder_keep_every_pair(tmp_path: Path) -> None:
    """Before: in 4 of 15 tries pairs were lost (10 to 61 of 4,000): each run reserved names
    in memory and replaced the other's files, and the last index won. 20 rounds here."""
    first = batch(tmp_path, *_conversations("a", 40), name="a.jsonl")
    second = batch(tmp_path, *_conversations("b", 40), name="b.jsonl")
    for round_ in range(20):
        out = tmp_path / f"suite-{round_}"
        runs = [
            subprocess.Popen(
                [*HGD, "ingest", str(path), "--out", str(out)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for path in (first, second)
        ]
        for run in runs:
            run.communicate(timeout=60)
            assert run.returncode == 0
        suite = load_suite(out)
        assert suite.problems == []
        # every conversation's two pairs, in files of their own: none replaced, none lost
        assert len(suite.pairs) == 160, round_
        assert len({p.path for p in suite.pairs}) == 80


def test_a_huge_conversation_is_refused_fast_and_small(tmp_path: Path) -> None:
    """Before: one conversation of 10,000 turns took 18 s and 3.9 GB and died with
    MemoryError (each pair repeats the whole history: the file grows with the square)."""
    texts = [f"turn {i} " + "words " * 8 for i in range(10_000)]
    path = batch(tmp_path, conv("long", "lead", *texts), LEAD)
    script = (
        "import sys, time\n"
        "from pytest_hgd.cli import main\n"
        "started = time.perf_counter()\n"
        f"code = main(['ingest', {str(path)!r}, '--out', {str(tmp_path / 'out')!r}])\n"
        "seconds = time.perf_counter() - started\n"
        # VmHWM: this process image's peak (ru_maxrss would carry pytest's own over exec)
        "status = open('/proc/self/status').read().split('VmHWM:')[1].split()[0]\n"
        "peak = int(status) / 1024\n"
        "print(f'RESULT {code} {seconds:.2f} {peak:.0f}')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert "Traceback" not in done.stderr, done.stderr
    code, seconds, peak_mb = done.stdout.split("RESULT ")[1].split()
    assert int(code) == 1  # the long line is bad, the other one ingested
    assert float(seconds) < 2.0 and float(peak_mb) < 300, (seconds, peak_mb)
    assert "too long for one pair file" in done.stderr
    assert len(load_suite(tmp_path / "out").pairs) == 2


def test_an_overlong_batch_line_is_bad_and_never_held_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("pytest_hgd.cli.MAX_LINE_BYTES", 1000)
    monkeypatch.setattr("pytest_hgd.suite.ingest.MAX_LINE_BYTES", 1000)
    path = batch(tmp_path, "x" * 50_000, LEAD)
    assert main(["ingest", str(path), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert f"{path}:1: skipped: longer than 1000 bytes" in err
    assert len(load_suite(tmp_path / "out").pairs) == 2


@pytest.mark.parametrize("command", ["ingest", "review", "stats"])
def test_a_fifo_named_like_a_pair_file_never_hangs_a_command(tmp_path: Path, command: str) -> None:
    """Before: `hgd ingest`, `review` and `stats` waited for ever on a FIFO `*.hgd.yaml`."""
    out = tmp_path / "suite"
    out.mkdir()
    os.mkfifo(out / "pipe.hgd.yaml")
    args = [str(batch(tmp_path, LEAD)), "--out", str(out)] if command == "ingest" else [str(out)]
    done = subprocess.run([*HGD, command, *args], capture_output=True, text=True, timeout=30)
    assert "pipe.hgd.yaml: is not a regular file (a FIFO, a socket or a device)." in done.stderr
    assert done.returncode == 1


def test_a_batch_that_is_a_device_or_a_fifo_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: a batch symlinked to /dev/zero was read whole until MemoryError."""
    zero = tmp_path / "zero.jsonl"
    zero.symlink_to("/dev/zero")
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    for path in (zero, fifo):
        started = time.monotonic()
        assert main(["ingest", str(path), "--out", str(tmp_path / "out")]) == 2
        assert time.monotonic() - started < 5
        assert "not a regular file" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["review", ".hgd"])
def test_a_symlinked_folder_inside_out_is_refused(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: a `review/` or `.hgd/` symlink inside --out was followed: ingest wrote
    wherever it pointed."""
    out, elsewhere = tmp_path / "suite", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / name).symlink_to(elsewhere)
    no_lead = conv("call-9", "no_lead", "Hi.", "Do you lease trucks?", "No.")
    assert main(["ingest", str(batch(tmp_path, LEAD, no_lead)), "--out", str(out)]) == 2
    assert f"{out / name} is a symbolic link" in capsys.readouterr().err
    assert list(elsewhere.iterdir()) == []


def test_dedupe_compares_nfc_normalised_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    composed = conv("c-1", "lead", "Hi.", "Je voudrais un café.", "Bien sûr.")
    decomposed = conv("c-2", "lead", "Hi.", "Je voudrais un cafe\u0301.", "Bien sûr.")
    out = tmp_path / "out"
    assert main(["ingest", str(batch(tmp_path, composed, decomposed)), "--out", str(out)]) == 0
    assert len(load_suite(out).pairs) == 1
    assert "skipped 1 pair already in the suite" in capsys.readouterr().out
    json.dumps(composed)  # both lines were valid
