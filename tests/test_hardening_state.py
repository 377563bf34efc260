"""Hardening of written state: the atomic writer, the ledger and the reply cache."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_hgd.cache import write_atomic


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
    monkeypatch.setattr("pytest_hgd.cache.secrets.token_hex", lambda _: next(names))
    (target.parent / f".report.json.{os.getpid()}.planted.tmp").symlink_to(victim)
    write_atomic(target, '{"verdict": "pass"}')
    assert victim.read_text(encoding="utf-8") == "keep me"
    assert target.read_text(encoding="utf-8") == '{"verdict": "pass"}'
    plain = tmp_path / "plain.txt"
    plain.write_text("x", encoding="utf-8")
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    assert not list(target.parent.glob(".report.json.*.free.tmp"))
