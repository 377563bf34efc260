"""The ledger: atomic, concurrent-safe appends and a read that tolerates damage."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

from pytest_hgd.core.record import SCHEMA_VERSION, new_record
from pytest_hgd.storage.ledger import (
    DEFAULT_LEDGER,
    append_record,
    read_ledger,
)


def _record(n: int = 0, **extra: object) -> dict[str, object]:
    return {"schema_version": SCHEMA_VERSION, "n": n, **extra}


def test_append_then_read_round_trips_one_sorted_line_per_record(tmp_path: Path) -> None:
    path = tmp_path / ".hgd" / "deep" / "ledger.jsonl"  # parents are created
    append_record(path, {"verdict": "pass", "schema_version": 1, "counts": {"b": 1, "a": 2}})
    append_record(path, _record(1))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    assert lines[0] == json.dumps(json.loads(lines[0]), sort_keys=True)
    read = read_ledger(path)
    assert read.problems == []
    assert [r.get("verdict") for r in read.records] == ["pass", None]
    assert read.records[1]["n"] == 1


def test_missing_file_reads_as_empty(tmp_path: Path) -> None:
    read = read_ledger(tmp_path / "nope.jsonl")
    assert read.records == [] and read.problems == []
    assert DEFAULT_LEDGER.parts == (".hgd", "ledger.jsonl")


def test_truncated_last_line_is_reported_and_the_next_append_starts_fresh(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    append_record(path, _record(0))
    with path.open("a", encoding="utf-8") as f:
        f.write('{"schema_version": 1, "n": 1, "pai')  # a writer died mid-line
    read = read_ledger(path)
    assert [r["n"] for r in read.records] == [0]
    assert len(read.problems) == 1
    assert ":2:" in read.problems[0] and "truncated last line" in read.problems[0]

    append_record(path, _record(2))
    read = read_ledger(path)
    assert [r["n"] for r in read.records] == [0, 2]
    assert len(read.problems) == 1 and ":2:" in read.problems[0]
    assert "truncated last line" not in read.problems[0]  # now just a bad line


def test_bad_lines_are_skipped_with_their_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    lines = [
        json.dumps(_record(0)).encode(),
        b"not json",
        b"",
        b"[1, 2]",
        json.dumps({"schema_version": 99}).encode(),
        json.dumps({"n": 5}).encode(),
        b'{"schema_version": 1, "n": "\xff"}',  # not UTF-8
        json.dumps(_record(7)).encode(),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    read = read_ledger(path)
    assert [r["n"] for r in read.records] == [0, 7]
    numbers = [p.split(":")[1] for p in read.problems]
    assert numbers == ["2", "4", "5", "6", "7"]
    assert "JSON object" in read.problems[1] and "schema_version 99" in read.problems[2]


def test_unreadable_ledger_is_a_problem_not_an_exception(tmp_path: Path) -> None:
    read = read_ledger(tmp_path)  # a directory
    assert read.records == [] and len(read.problems) == 1


# Both writers wait for each other, then append 200 records of up to ~9 KB each (a naive
# buffered writer interleaves and breaks lines under this load).
_WRITER = """
import sys, time
from pathlib import Path
from pytest_hgd.storage.ledger import append_record
path, who = Path(sys.argv[1]), sys.argv[2]
(path.parent / f"ready-{who}").touch()
while len(list(path.parent.glob("ready-*"))) < 2:
    time.sleep(0.001)
for i in range(200):
    append_record(path, {"schema_version": 1, "who": who, "i": i, "pad": who * (i * 97 % 9000)})
"""


def test_two_processes_appending_at_once_leave_every_line_intact(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(path), who]) for who in ("a", "b")
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    read = read_ledger(path)
    assert read.problems == []
    assert len(path.read_text(encoding="utf-8").splitlines()) == 400
    for who in ("a", "b"):
        mine = [r for r in read.records if r["who"] == who]
        assert [r["i"] for r in mine] == list(range(200))
        assert all(r["pad"] == who * (r["i"] * 97 % 9000) for r in mine)


def test_threads_appending_at_once_leave_every_line_intact(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"

    def write(who: int) -> None:
        for i in range(50):
            append_record(path, _record(i, who=who, pad="x" * 5000))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    read = read_ledger(path)
    assert read.problems == [] and len(read.records) == 200


def test_new_record_derives_counts_and_regressed_ids() -> None:
    pairs: dict[str, dict[str, object]] = {
        "f.hgd.yaml::b": {"kind": "locked", "delta": "regressed", "baseline": [1, 1]},
        "f.hgd.yaml::a": {"kind": "locked", "delta": "kept", "baseline": [1, 1]},
        "f.hgd.yaml::c": {"kind": "corrected", "delta": "still_failing"},
    }
    record = new_record(
        candidate_hash="sha256:c",
        baseline_hash="sha256:b",
        verdict="fail",
        pairs=pairs,
        retired=["f.hgd.yaml::z"],
        time="2026-11-23T12:00:00+00:00",
        agent="mod:reply@123",
    )
    assert record["schema_version"] == SCHEMA_VERSION
    assert record["counts"] == {
        "kept": 1,
        "fixed": 0,
        "regressed": 1,
        "still_failing": 1,
        "new_pass": 0,
        "new_fail": 0,
        "error": 0,
        "undecided": 0,
    }
    assert record["regressed"] == ["f.hgd.yaml::b"]
    assert record["commit"] is None and record["agent"] == "mod:reply@123"
    assert set(record) >= {"time", "baseline_hash", "candidate_hash", "retired", "pending_review"}
    json.dumps(record, allow_nan=False)
