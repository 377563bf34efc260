"""Hardening of written state: the atomic writer, the ledger and the reply cache."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Gate, conversation

from pytest_hgd.storage.cache import DATABASE, write_atomic


def test_the_atomic_writer_never_writes_through_a_planted_symlink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the temporary name was predictable (`.{name}.{pid}.{tid}.tmp`) and opened
    without O_EXCL/O_NOFOLLOW: in a shared folder, a symlink planted there redirected the
    write of a report to any file the user can write."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me", encoding="utf-8")
    target = tmp_path / "shared" / "report.json"
    target.parent.mkdir()
    # the old name, and the next name the writer will draw
    old = target.parent / f".report.json.{os.getpid()}.{threading.get_ident()}.tmp"
    old.symlink_to(victim)
    names: Iterator[str] = iter(["planted", "free"])
    monkeypatch.setattr("pytest_hgd.storage.cache.secrets.token_hex", lambda _: next(names))
    (target.parent / f".report.json.{os.getpid()}.planted.tmp").symlink_to(victim)
    write_atomic(target, '{"verdict": "pass"}')
    assert victim.read_text(encoding="utf-8") == "keep me"
    assert target.read_text(encoding="utf-8") == '{"verdict": "pass"}'
    plain = tmp_path / "plain.txt"
    plain.write_text("x", encoding="utf-8")
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    assert not list(target.parent.glob(".report.json.*.free.tmp"))


def test_a_failed_ledger_append_leaves_the_file_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: a disk full mid-append left a torn record for good (every later run warned)."""
    from pytest_hgd.core.record import new_record
    from pytest_hgd.storage import ledger

    path = tmp_path / "ledger.jsonl"
    ledger.append_record(path, new_record(candidate_hash="c", verdict="pass", pairs={}))
    before = path.read_bytes()
    real_write = os.write

    def disk_fills(fd: int, data: bytes | memoryview) -> int:
        if len(data) > 10:
            return real_write(fd, bytes(data[: len(data) // 2]))  # a short write ...
        raise OSError(28, "No space left on device")  # ... then the disk is full

    monkeypatch.setattr(ledger.os, "write", disk_fills)
    record = new_record(candidate_hash="d", verdict="fail", pairs={})
    with pytest.raises(OSError):
        ledger.append_record(path, record)
    assert path.read_bytes() == before
    monkeypatch.undo()
    assert ledger.read_ledger(path).problems == []


@pytest.mark.parametrize(
    ("field", "bad"),
    [("verdict", 5), ("pairs", "x"), ("regressed", [1]), ("baseline_hash", 3)],
)
def test_a_wrongly_typed_ledger_record_is_skipped_with_one_note(
    hgd: Gate, field: str, bad: object
) -> None:
    """Before: one record with `"verdict": 5` made every later run end in a raw jsonschema
    traceback, with no summary and no report."""
    hgd.prompt("base.txt", {"*": "good"})
    hgd.prompt("cand.txt", {"*": "good"})
    hgd.pairs("c.hgd.yaml", conversation({"customer": "hi", "checks": [{"contains": "good"}]}))
    args = ("--hgd-baseline=base.txt", "--hgd-candidate=cand.txt", "--hgd-report=report.json")
    assert hgd.run(*args).ret == 0
    ledger_path = hgd.path / ".hgd" / "ledger.jsonl"
    record = json.loads(ledger_path.read_text(encoding="utf-8"))
    record[field] = bad
    ledger_path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    result = hgd.run(*args, "--hgd-html=report.html")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [f"hgd: ledger: *ledger.jsonl:1: skipped: '{field}'*", "verdict: PASS"]
    )
    assert result.stdout.str().count("ledger.jsonl:1: skipped") == 1
    assert "Traceback" not in result.stdout.str()
    assert hgd.report()["verdict"] == "pass"


def test_an_exclusively_locked_cache_costs_one_bounded_wait(tmp_path: Path) -> None:
    """Before: a cache locked by another process stalled each lookup and each write (60 s
    where the note said 30), and the note spoke of writes only."""
    from pytest_hgd.storage.cache import CacheError, ReplyCache

    ReplyCache(tmp_path).put("k", "v")
    other = sqlite3.connect(tmp_path / DATABASE, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        cache = ReplyCache(tmp_path, timeout=0.3)
        started = time.monotonic()
        assert [cache.get(f"k{i}") for i in range(20)] == [None] * 20
        with pytest.raises(CacheError, match="lookups missed and its replies were not stored"):
            cache.put("k2", "v2")
        assert time.monotonic() - started < 1.5  # one wait of 0.3 s, not 21
        assert cache.error is not None and "lookups missed" in cache.error
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_a_cached_reply_edited_on_disk_is_a_miss_with_a_note(hgd: Gate) -> None:
    """Before: a reply edited in the cache file was served silently and flipped the verdict."""
    hgd.prompt("p.txt", {"*": "good"})
    hgd.pairs("c.hgd.yaml", conversation({"customer": "hi", "checks": [{"contains": "good"}]}))
    assert hgd.run("--hgd-candidate=p.txt").ret == 0
    database = hgd.path / ".hgd" / "cache" / DATABASE
    with contextlib.closing(sqlite3.connect(database)) as db, db:
        db.execute("UPDATE replies SET reply = 'bad'")
    hgd.reset_calls()
    result = hgd.run("--hgd-candidate=p.txt")
    assert result.ret == 0  # the agent was asked again: the verdict stands
    assert len(hgd.calls()) == 1
    result.stdout.fnmatch_lines(["hgd: reply cache: 1 cached replies did not match their digest*"])


def test_a_cache_from_before_digests_is_migrated_and_its_rows_asked_again(
    tmp_path: Path,
) -> None:
    from pytest_hgd.storage.cache import SCHEMA_VERSION, ReplyCache

    with contextlib.closing(sqlite3.connect(tmp_path / DATABASE)) as db, db:
        db.execute("CREATE TABLE replies (key TEXT PRIMARY KEY, reply TEXT NOT NULL)")
        db.execute("INSERT INTO replies VALUES ('old', 'unverifiable')")
        db.execute("PRAGMA user_version = 1")
    cache = ReplyCache(tmp_path)
    assert cache.get("old") is None  # no digest: not trusted
    cache.put("new", "reply")
    cache.close()
    again = ReplyCache(tmp_path)
    assert again.get("new") == "reply" and again.get("old") is None
    with contextlib.closing(sqlite3.connect(tmp_path / DATABASE)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
