"""The ledger: one JSON line per gate run, appended atomically, read back tolerantly (no pytest).

Record format (schema_version 1), keys sorted on write::

    {"schema_version": 1, "time": ISO-8601, "commit": str | None,
     "baseline_hash": str | None, "candidate_hash": str,
     "counts": {delta: n, ...}, "verdict": "pass" | "fail", "regressed": [pair id, ...],
     "pairs": {pair id: {"kind": "locked" | "corrected", "delta": str,
                         "baseline": [passes, runs] | None, "candidate": [passes, runs] | None,
                         # optional: "pair_hash": str, "baseline_cached": bool,
                         #           "candidate_cached": bool,
                         #           "baseline_fresh": [passes, runs], ...}},
     "retired": [pair id, ...], "pending_review": int,
     # optional: "agent": str, "gate": {"samples": int, "alpha": float},
     #           "partial": true (pairs were left out: no evidence for pressure or trends)
     "pressure": {...}}

``verdict`` is the gate's one verdict (pairs, rollouts and ``--hgd-max-pressure``), the
value the run's exit status and reports gave.

A side marked ``*_cached`` came from the reply cache: it repeats an earlier call and is not
new evidence of the pair's pass rate. ``pair_hash`` (the pair's content) and ``agent`` (the
agent's identity) keep evidence about an edited pair or another agent apart.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_hgd.core.record import SCHEMA_VERSION

DEFAULT_LEDGER = Path(".hgd") / "ledger.jsonl"


@dataclass
class LedgerRead:
    """The records that could be read, and a description of every line that could not."""

    records: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def append_record(path: Path, record: Mapping[str, object]) -> None:
    """Append one record as one line: exclusive flock, one O_APPEND write, fsync.

    Safe when several processes (runs, xdist workers) append at once. If the file ends in
    a truncated line (a crashed writer), the record starts on a new line so it stays intact.
    """
    line = json.dumps(record, sort_keys=True, allow_nan=False) + "\n"
    data = line.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    if written <= 0:  # pragma: no cover - a write that makes no progress
                        raise OSError(errno.ENOSPC, "the ledger write made no progress")
                    view = view[written:]
                os.fsync(fd)
            except BaseException:
                # a disk full mid-record (or any failed write): back to the size before it,
                # so no torn record is left for every later run to warn about
                os.ftruncate(fd, size)
                raise
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def read_ledger(path: Path) -> LedgerRead:
    """Every readable record, oldest first; bad lines are skipped and described, never raised."""
    result = LedgerRead()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return result
    except OSError as exc:
        result.problems.append(f"{path}: cannot read the ledger: {exc}")
        return result
    lines = raw.split(b"\n")
    last = len(lines) - 1  # the text after the final newline: empty unless truncated
    for index, chunk in enumerate(lines):
        if not chunk.strip():
            continue
        lineno = index + 1
        problem = _parse_line(chunk, result.records)
        if problem is None:
            continue
        if index == last:
            problem = f"truncated last line (an interrupted write?): {problem}"
        result.problems.append(f"{path}:{lineno}: skipped: {problem}")
    return result


def _parse_line(chunk: bytes, records: list[dict[str, Any]]) -> str | None:
    """Append the record on this line to ``records``, or return what is wrong with it."""
    try:
        value = json.loads(chunk.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return f"not valid JSON ({exc})"
    if not isinstance(value, dict):
        return f"a record must be a JSON object, not {type(value).__name__}"
    version = value.get("schema_version")
    if version != SCHEMA_VERSION:
        return f"schema_version {version!r} is not {SCHEMA_VERSION} (written by another version?)"
    problem = _shape_problem(value)
    if problem is not None:
        return problem
    records.append(value)
    return None


_TYPES: dict[str, tuple[type, ...]] = {
    "time": (str,),
    "commit": (str, type(None)),
    "baseline_hash": (str, type(None)),
    "candidate_hash": (str,),
    "counts": (dict,),
    "regressed": (list,),
    "pairs": (dict,),
    "retired": (list,),
    "pending_review": (int,),
    "pressure": (dict,),
    "partial": (bool,),
    "gate": (dict,),
}


def _shape_problem(record: dict[str, Any]) -> str | None:
    """What makes a record unusable by its readers (pressure, trend, ``hgd stats``), or
    None: every reader may then trust the types of the fields it reads."""
    for key, types in _TYPES.items():
        if key in record and not isinstance(record[key], types):
            wanted = " or ".join(t.__name__ for t in types)
            return f"{key!r} is {type(record[key]).__name__}, not {wanted}"
    if record.get("verdict", "pass") not in ("pass", "fail"):
        return f"'verdict' is {record.get('verdict')!r}, not 'pass' or 'fail'"
    for pid, entry in record.get("pairs", {}).items():
        if not isinstance(entry, dict) or not isinstance(entry.get("delta", ""), str):
            return f"pairs[{pid!r}] is not a pair entry"
        for side in ("baseline", "candidate"):
            counts = entry.get(side)
            if counts is not None and not (
                isinstance(counts, list)
                and len(counts) == 2
                and all(isinstance(n, int) and not isinstance(n, bool) for n in counts)
            ):
                return f"pairs[{pid!r}].{side} is not [passes, runs]"
    for key in ("regressed", "retired"):
        if not all(isinstance(item, str) for item in record.get(key, [])):
            return f"{key!r} holds something other than pair ids"
    return None
