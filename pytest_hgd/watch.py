"""``hgd watch [-- PYTEST ARGS...]``: run the gate again whenever a prompt or pair file changes.

Each run is ``python -m pytest --hgd ARGS --hgd-report=.hgd/watch/report.json`` in a fresh
process; the reply cache makes every unchanged call free, so an edit of one pair or of the
candidate re-asks only what it changed. Before each run's own output it prints what changed
since the run before: the files, the verdict, the pairs newly failing and newly passing.
Files are polled (their size and modification time), so no extra library is needed. Ctrl-C
stops the watch; a run it interrupts stops as any interrupted gate does, its files whole.
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

FAILING = {"regressed", "new_fail", "error", "undecided", "still_failing"}
SKIPPED_DIRS = {".git", ".hgd", ".venv", "venv", ".tox", "node_modules", "__pycache__"}
PROMPT_OPTIONS = ("--hgd-candidate", "--hgd-baseline")
Snapshot = dict[Path, tuple[int, int]]


def add_parser(commands: Any) -> None:
    """The ``watch`` subcommand of ``hgd``."""
    parser = commands.add_parser(
        "watch",
        help="run the gate again whenever a prompt or pair file changes",
        description="Run `pytest --hgd ARGS` now and again whenever a pair file under the "
        "directory, the candidate or baseline prompt (from ARGS or the ini file's hgd_prompt "
        "and hgd_baseline), or a --watch PATH changes; print what changed since the run "
        "before. Give pytest's arguments after --. Ctrl-C stops it.",
    )
    parser.add_argument("--dir", type=Path, default=Path("."), help="the suite's directory")
    parser.add_argument("--watch", type=Path, action="append", default=[], metavar="PATH",
                        help="another file to watch (repeatable)")  # fmt: skip
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between looks")
    parser.add_argument("--max-runs", type=int, default=0, help="stop after N runs (0: never)")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER, help="-- then pytest's args")
    parser.set_defaults(handler=run_watch)


def watched_files(directory: Path, pytest_args: Sequence[str], extra: Sequence[Path]) -> Snapshot:
    """Every pair file under ``directory``, the prompts the arguments or the ini file name,
    and ``extra``: each with its (modification time, size)."""
    paths = [*_pair_files(directory), *_prompt_files(directory, pytest_args), *extra]
    snapshot: Snapshot = {}
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            continue
        snapshot[path.resolve()] = (stat.st_mtime_ns, stat.st_size)
    return snapshot


def _pair_files(directory: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and not d.startswith(".venv")]
        for name in files:
            if name.endswith((".hgd.yaml", ".hgd.yml")):
                yield Path(root) / name


def _prompt_files(directory: Path, pytest_args: Sequence[str]) -> list[Path]:
    found = []
    for index, arg in enumerate(pytest_args):
        name, _, value = arg.partition("=")
        if name in PROMPT_OPTIONS:
            value = value or (pytest_args[index + 1] if index + 1 < len(pytest_args) else "")
            if value and not value.startswith("git:"):
                found.append(Path(value))
    ini = _ini_values(directory)
    for key in ("hgd_prompt", "hgd_baseline"):
        value = ini.get(key, "")
        if value and not value.startswith("git:"):
            found.append(directory / value)
    return found


def _ini_values(directory: Path) -> Mapping[str, str]:
    """The ``hgd_*`` values of the directory's pytest.ini, tox.ini or setup.cfg."""
    for name, section in (("pytest.ini", "pytest"), ("tox.ini", "pytest"),
                          ("setup.cfg", "tool:pytest")):  # fmt: skip
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(directory / name, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError):
            continue
        if parser.has_section(section):
            return dict(parser.items(section))
    return {}


def changes(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[str]:
    """What changed between two gate reports: the verdict, pairs newly failing or passing."""
    now = {p["id"]: p["delta"] for p in after.get("pairs", [])}
    if before is None:
        failing = sum(1 for delta in now.values() if delta in FAILING)
        return [f"verdict {after['verdict'].upper()}; {failing} of {len(now)} pairs failing"]
    then = {p["id"]: p["delta"] for p in before.get("pairs", [])}
    lines = []
    if before["verdict"] != after["verdict"]:
        lines.append(f"verdict {before['verdict'].upper()} -> {after['verdict'].upper()}")
    else:
        lines.append(f"verdict {after['verdict'].upper()} (unchanged)")
    worse = [p for p, d in now.items() if d in FAILING and then.get(p) not in FAILING]
    better = [p for p, d in now.items() if d not in FAILING and then.get(p) in FAILING]
    for label, pairs in (("newly failing", worse), ("newly passing", better)):
        if pairs:
            lines.append(f"{label} ({len(pairs)}):")
            lines.extend(f"  {now[p]:<13} {p}" for p in sorted(pairs))
    if not worse and not better:
        lines.append("no pair changed its outcome")
    return lines


def _read_report(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _run_gate(directory: Path, pytest_args: Sequence[str], report: Path) -> tuple[int, str]:
    """One gate run; its exit status and output. Ctrl-C reaches the child (same process
    group), which stops cleanly; the watch waits for it."""
    report.unlink(missing_ok=True)
    command = [sys.executable, "-m", "pytest", "--hgd", *pytest_args, f"--hgd-report={report}"]
    process = subprocess.Popen(command, cwd=directory, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        output, _ = process.communicate()
    except KeyboardInterrupt:  # from a terminal the child got the same Ctrl-C: let it stop
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # it did not (the signal was ours alone)
            process.send_signal(signal.SIGINT)
            process.wait()
        raise
    return process.returncode, output


def run_watch(args: argparse.Namespace) -> int:
    # long: the loop's steps in order: look, run, report, wait for a change
    directory = args.dir.resolve()
    pytest_args = [a for a in args.pytest_args if a != "--"]
    report = directory / ".hgd" / "watch" / "report.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    previous: dict[str, Any] | None = None
    snapshot = watched_files(directory, pytest_args, args.watch)
    changed: list[str] = []
    runs = 0
    try:
        while True:
            status, output = _run_gate(directory, pytest_args, report)
            runs += 1
            current = _read_report(report)
            why = f" ({', '.join(changed)} changed)" if changed else ""
            print(f"hgd watch: run {runs}{why}, exit status {status}")
            if current is not None:
                print("\n".join(f"hgd watch: {line}" for line in changes(previous, current)))
                previous = current
            else:
                print("hgd watch: no gate report (see the output below)")
            print(output, end="" if output.endswith("\n") else "\n", flush=True)
            if args.max_runs and runs >= args.max_runs:
                return 0
            print(f"hgd watch: watching {len(snapshot)} files; Ctrl-C stops", flush=True)
            changed, snapshot = _wait_for_change(directory, pytest_args, args, snapshot)
    except KeyboardInterrupt:
        print("\nhgd watch: stopped", flush=True)
        return 130


def _wait_for_change(
    directory: Path, pytest_args: Sequence[str], args: argparse.Namespace, before: Snapshot
) -> tuple[list[str], Snapshot]:
    """Poll until a watched file changes, appears or goes; then let the editor finish."""
    while True:
        time.sleep(args.interval)
        now = watched_files(directory, pytest_args, args.watch)
        if now != before:
            time.sleep(min(0.2, args.interval))  # an editor's write in several steps
            now = watched_files(directory, pytest_args, args.watch)
            differ = sorted(p for p in set(now) | set(before) if now.get(p) != before.get(p))
            names = [os.path.relpath(p, directory) for p in differ]
            return names[:5] + ([f"{len(names) - 5} more"] if len(names) > 5 else []), now
