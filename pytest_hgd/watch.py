"""``hgd watch [-- PYTEST ARGS...]``: run the gate again whenever a prompt or pair file changes.

Each run is ``python -m pytest --hgd ARGS --hgd-report=.hgd/watch/report.json`` in a fresh
process; the reply cache makes every unchanged call free, so an edit of one pair or of the
candidate re-asks only what it changed. Before each run's own output it prints what changed
since the run before: the files, the verdict, the pairs newly failing and newly passing.
Files are polled (their size and modification time), so no extra library is needed.

Each run is started in a session of its own, so a Ctrl-C at the terminal reaches the watch
alone, and the watch hands the run exactly one SIGINT: it stops as any interrupted gate does
(no report, no ledger record, its files whole) and the watch waits for it. SIGTERM stops the
watch the same way.
"""

from __future__ import annotations

import argparse
import configparser
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

FAILING = {"regressed", "new_fail", "error", "undecided"}  # what fails the gate
STRICT_FAILING = FAILING | {"still_failing"}  # ... and with --hgd-strict
SKIPPED_DIRS = {".git", ".hgd", ".venv", "venv", ".tox", "node_modules", "__pycache__",
                ".pytest_cache", ".mypy_cache", ".ruff_cache"}  # fmt: skip
CONFIG_FILES = ("pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg", "conftest.py")
PROMPT_OPTIONS = ("--hgd-candidate", "--hgd-baseline")
QUIET, SETTLE = 0.2, 2.0  # a change is run once the files were still 0.2 s (at most 2 s on)
STOP_GRACE = 30.0  # seconds an interrupted run has to stop before it is killed
EXIT_STOPPED, EXIT_USAGE = 130, 2
Snapshot = dict[Path, tuple[int, int]]


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or a positive integer, got {text!r}")
    return value


def add_parser(commands: Any) -> None:
    """The ``watch`` subcommand of ``hgd``."""
    parser = commands.add_parser(
        "watch",
        help="run the gate again whenever a prompt or pair file changes",
        description="Run `pytest --hgd ARGS` now and again whenever a pair file under the "
        "directory, the candidate or baseline prompt (from ARGS or the ini file's hgd_prompt "
        "and hgd_baseline), or a --watch PATH changes; print what changed since the run "
        "before. Give pytest's arguments after --. Ctrl-C stops it (exit status 130).",
    )
    parser.add_argument("--dir", type=Path, default=Path("."), help="the suite's directory")
    parser.add_argument("--watch", type=Path, action="append", default=[], metavar="PATH",
                        help="another file to watch (repeatable)")  # fmt: skip
    parser.add_argument("--interval", type=_seconds, default=0.5, metavar="SECONDS",
                        help="seconds between looks at the files (default 0.5)")  # fmt: skip
    runs = parser.add_mutually_exclusive_group()
    runs.add_argument("--max-runs", type=_count, default=0, metavar="N",
                      help="stop after N runs (default 0: never)")  # fmt: skip
    runs.add_argument("--once", action="store_const", const=1, dest="max_runs", default=0,
                      help="one run, then stop (--max-runs 1)")  # fmt: skip
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER, help="-- then pytest's args")
    parser.set_defaults(handler=run_watch)


def watched_files(directory: Path, pytest_args: Sequence[str], extra: Sequence[Path]) -> Snapshot:
    """Every pair file under ``directory``, its pytest configuration files, the prompts the
    arguments or the ini file name, and ``extra``: each with its (modification time, size)."""
    config = [directory / name for name in CONFIG_FILES]
    return stat_files([*_pair_files(directory), *config, *_prompt_files(directory, pytest_args),
                       *extra])  # fmt: skip


def stat_files(paths: Iterable[Path]) -> Snapshot:
    """Each path that exists, resolved, with its (modification time, size)."""
    snapshot: Snapshot = {}
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            continue
        snapshot[path.resolve()] = (stat.st_mtime_ns, stat.st_size)
    return snapshot


def report_prompts(directory: Path, report: Mapping[str, Any]) -> list[Path]:
    """The prompt files a gate report names (whatever configured them, ``pyproject.toml``
    included): relative to ``directory``, where the watch runs pytest (its rootdir)."""
    found = []
    for prompt in (report.get("prompts") or {}).values():
        source = prompt.get("source") if isinstance(prompt, Mapping) else None
        if isinstance(source, str) and source and not source.startswith("git:"):
            found.append(directory / source)
    return found


def _pair_files(directory: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and not d.startswith(".venv")]
        for name in files:
            if name.endswith((".hgd.yaml", ".hgd.yml")):
                yield Path(root) / name


def option_values(pytest_args: Sequence[str], names: Sequence[str]) -> list[str]:
    """The values pytest's arguments give the options ``names`` (``--opt=V`` or ``--opt V``)."""
    found = []
    for index, arg in enumerate(pytest_args):
        if arg == "--":
            break
        name, equals, value = arg.partition("=")
        if name in names:
            if not equals:
                value = pytest_args[index + 1] if index + 1 < len(pytest_args) else ""
            if value:
                found.append(value)
    return found


def _prompt_files(directory: Path, pytest_args: Sequence[str]) -> list[Path]:
    found = [
        directory / value
        for value in option_values(pytest_args, PROMPT_OPTIONS)
        if not value.startswith("git:")
    ]
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


def _verdict(report: Mapping[str, Any]) -> str:
    return "NONE (a partial run)" if report.get("partial") else str(report["verdict"]).upper()


def _outcomes(report: Mapping[str, Any]) -> dict[str, str]:
    """Every pair's and rollout's delta (a rollout by its id, marked as one)."""
    found = {str(p["id"]): str(p["delta"]) for p in report.get("pairs", [])}
    found.update({f"{r['id']} (rollout)": str(r["delta"]) for r in report.get("rollouts", [])})
    return found


def changes(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[str]:
    """What changed between two gate reports: the verdict, pairs and rollouts newly failing
    the gate or passing it (``still_failing`` fails it only with ``--hgd-strict``), pairs
    added to or gone from the run."""
    failing = STRICT_FAILING if after.get("strict") else FAILING
    now = _outcomes(after)
    if before is None:
        count = sum(1 for delta in now.values() if delta in failing)
        return [f"verdict {_verdict(after)}; {count} of {len(now)} failing the gate"]
    then = _outcomes(before)
    lines = []
    if _verdict(before) != _verdict(after):
        lines.append(f"verdict {_verdict(before)} -> {_verdict(after)}")
    else:
        lines.append(f"verdict {_verdict(after)} (unchanged)")
    worse = [p for p, d in now.items() if d in failing and then.get(p) not in failing]
    better = [p for p, d in now.items() if d not in failing and then.get(p) in failing]
    for label, pairs in (("newly failing", worse), ("newly passing", better)):
        if pairs:
            lines.append(f"{label} ({len(pairs)}):")
            lines.extend(f"  {now[p]:<13} {p}" for p in sorted(pairs))
    if not worse and not better:
        lines.append("no pair changed its outcome")
    added, gone = len(now.keys() - then.keys()), len(then.keys() - now.keys())
    if added or gone:
        lines.append(f"pairs in the run: {added} added, {gone} gone")
    return lines


def _read_report(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _gate_command(pytest_args: Sequence[str], report: Path) -> list[str]:
    """``python -m pytest --hgd ARGS``, with the watch's report unless ARGS name one."""
    command = [sys.executable, "-m", "pytest", "--hgd", *pytest_args]
    if not option_values(pytest_args, ("--hgd-report",)):
        command.append(f"--hgd-report={report}")
    return command


def _run_gate(directory: Path, command: Sequence[str]) -> tuple[int, str]:
    """One gate run, in a session of its own: its exit status and output. On Ctrl-C (or
    SIGTERM) it is stopped with one SIGINT and waited for, its last output printed."""
    process = subprocess.Popen(command, cwd=directory, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=os.name == "posix")  # fmt: skip
    try:
        output, _ = process.communicate()
    except KeyboardInterrupt:
        print(_stop(process), end="", flush=True)
        raise
    finally:
        if process.poll() is None:  # stopped by something else than Ctrl-C: never orphaned
            process.kill()
            process.wait()
    return process.returncode, output


def _stop(process: subprocess.Popen[str]) -> str:
    """Stop an interrupted run as Ctrl-C stops a gate (no report, no ledger record, its files
    whole); its output from then on. Killed only if it does not stop within STOP_GRACE."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT if os.name == "posix" else signal.SIGTERM)
    try:
        output, _ = process.communicate(timeout=STOP_GRACE)
        return output or ""
    except subprocess.TimeoutExpired:
        note = f"hgd watch: the interrupted run did not stop within {STOP_GRACE:g} s: killed\n"
    except KeyboardInterrupt:  # a second Ctrl-C: no more waiting
        note = "hgd watch: the interrupted run was killed (second Ctrl-C)\n"
    process.kill()
    process.wait()
    return note


def _stop_on_sigterm() -> Callable[[], None]:
    """SIGTERM stops the watch as Ctrl-C does; the function that puts the old handler back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return lambda: None

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"hgd watch: stopped by signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore


def run_watch(args: argparse.Namespace) -> int:
    directory = args.dir.resolve()
    if not directory.is_dir():
        print(f"hgd watch: error: --dir {args.dir} is not a directory", file=sys.stderr)
        return EXIT_USAGE
    pytest_args = list(args.pytest_args)
    if pytest_args[:1] == ["--"]:
        del pytest_args[0]
    report = directory / ".hgd" / "watch" / "report.json"
    asked = option_values(pytest_args, ("--hgd-report",))
    if asked:  # the user's own report (the last one given wins, as in pytest)
        report = directory / asked[-1]
    report.parent.mkdir(parents=True, exist_ok=True)
    restore = _stop_on_sigterm()
    try:
        return _loop(directory, pytest_args, report, args)
    except KeyboardInterrupt:
        print("\nhgd watch: stopped", flush=True)
        return EXIT_STOPPED
    finally:
        restore()


def _loop(
    directory: Path, pytest_args: Sequence[str], report: Path, args: argparse.Namespace
) -> int:
    """Run, print what changed, wait for a change; again until --max-runs runs."""
    command = _gate_command(pytest_args, report)
    previous: dict[str, Any] | None = None
    extra: list[Path] = list(args.watch)
    snapshot = watched_files(directory, pytest_args, extra)
    changed: list[str] = []
    runs = 0
    while True:
        why = f" ({', '.join(changed)} changed)" if changed else ""
        print(f"hgd watch: run {runs + 1}{why}: running the gate", flush=True)
        report.unlink(missing_ok=True)
        status, output = _run_gate(directory, command)
        runs += 1
        current = _read_report(report)
        print(f"hgd watch: run {runs}{why}, exit status {status}")
        if current is not None:
            print("\n".join(f"hgd watch: {line}" for line in changes(previous, current)))
            previous = current
            found = [p for p in report_prompts(directory, current) if p.resolve() not in snapshot]
            extra.extend(found)
            snapshot.update(stat_files(found))
        else:
            print("hgd watch: no gate report (see the output below)")
        print(output, end="" if output.endswith("\n") else "\n", flush=True)
        if args.max_runs and runs >= args.max_runs:
            return 0
        print(f"hgd watch: watching {len(snapshot)} files; Ctrl-C stops", flush=True)
        changed, snapshot = _wait_for_change(directory, pytest_args, extra, args.interval, snapshot)


def _wait_for_change(
    directory: Path,
    pytest_args: Sequence[str],
    extra: Sequence[Path],
    interval: float,
    before: Snapshot,
) -> tuple[list[str], Snapshot]:
    """Poll until a watched file changes, appears or goes; then until the files have been
    still for QUIET seconds (an editor saves in several steps), at most SETTLE seconds."""
    while True:
        time.sleep(interval)
        now = watched_files(directory, pytest_args, extra)
        if now != before:
            break
    settle = time.monotonic() + SETTLE
    while time.monotonic() < settle:
        time.sleep(min(QUIET, interval))
        later = watched_files(directory, pytest_args, extra)
        if later == now:
            break
        now = later
    differ = sorted(p for p in set(now) | set(before) if now.get(p) != before.get(p))
    names = [os.path.relpath(p, directory) for p in differ]
    return names[:5] + ([f"{len(names) - 5} more"] if len(names) > 5 else []), now
