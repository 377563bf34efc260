"""The ``hgd`` command: ``init``, ``ingest``, ``review``, ``stats``, ``merge`` (`main(argv)`)."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import stat
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, TextIO

from pytest_hgd import __version__, ingest_cli, init, merge, watch
from pytest_hgd.storage.ledger import read_ledger
from pytest_hgd.suite.ingest import (
    MAX_LINE_BYTES,
    REVIEW_DIR,
    IngestRefused,
    IngestResult,
    ingest,
)
from pytest_hgd.suite.suite_stats import (
    Suite,
    calls_lines,
    growth_series,
    load_suite,
    render_stats,
    review_lines,
)

EXIT_OK, EXIT_SOME_BAD, EXIT_USAGE = 0, 1, 2


class Progress:
    """A one-line progress display (``\\r``) on a terminal, shown once a batch takes a while;
    with ``fraction`` (how much of the input is done, 0 to 1), a bar before the text."""

    fraction: Callable[[], float | None] | None = None

    def __init__(self, stream: TextIO, delay: float = 0.5, interval: float = 0.1) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self.start = time.monotonic()
        self.delay = delay
        self.interval = interval
        self.last = 0.0
        self.width = 0

    def __call__(self, text: str) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.start < self.delay or now - self.last < self.interval:
            return
        self.last = now
        done = self.fraction() if self.fraction is not None else None
        if done is not None:
            text = f"[{'#' * round(done * 20):.<20}] {done:4.0%} {text}"
        line = f"hgd: {text}"
        self.stream.write("\r" + line.ljust(self.width))
        self.stream.flush()
        self.width = len(line)

    def close(self) -> None:
        if self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0


def _lines(stream: BinaryIO) -> Iterator[bytes]:
    """The batch's lines; one longer than MAX_LINE_BYTES is cut one byte past it (ingest
    reports it) and the rest of it skipped, never held whole."""
    while line := stream.readline(MAX_LINE_BYTES + 1):
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while (rest := stream.readline(1 << 20)) and not rest.endswith(b"\n"):
                pass
            yield line  # one byte over the limit: ingest reports the line
            continue
        yield line.rstrip(b"\r\n")


def _open_batch(path: str) -> BinaryIO:
    """The batch file, opened without blocking (a FIFO with no writer would wait forever);
    OSError for anything but a regular file."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file (a FIFO or a device); use - for stdin")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _n(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _summary(result: IngestResult, source: str, out: Path, dry_run: bool) -> list[str]:
    verb = "would write" if dry_run else "wrote"
    lead = [f for f in result.files if f.outcome == "lead"]
    review = [f for f in result.files if f.outcome != "lead"]
    lines = [
        f"hgd ingest: {_n(result.conversations, 'conversation')} from {source} "
        f"({result.lead} lead, {result.no_lead} no-lead)",
        f"  {verb} {_n(len(lead), 'file')} in {out}: {_n(result.locked_pairs, 'locked pair')}",
        f"  {verb} {_n(len(review), 'file')} in {out / REVIEW_DIR}: "
        f"{_n(result.review_pairs, 'pair')} pending review (list them: hgd review {out})",
        f"  skipped {_n(result.duplicates, 'pair')} already in the suite",
    ]
    if result.bad_lines:
        lines.append(f"  skipped {_n(len(result.bad_lines), 'bad line')} (listed on stderr)")
    return lines


def run_ingest(args: argparse.Namespace) -> int:
    out: Path = args.out
    if out.exists() and not out.is_dir():
        print(f"hgd ingest: error: --out {out} is not a directory", file=sys.stderr)
        return EXIT_USAGE
    source = "<stdin>" if args.conversations == "-" else args.conversations
    progress = Progress(sys.stderr)
    with contextlib.ExitStack() as stack:
        try:
            stream: BinaryIO = (
                sys.stdin.buffer
                if args.conversations == "-"
                else stack.enter_context(_open_batch(args.conversations))
            )
        except OSError as exc:
            print(f"hgd ingest: error: cannot read {source}: {exc.strerror}", file=sys.stderr)
            return EXIT_USAGE
        try:
            reading = ingest_cli.prepare(args, _lines(stream), source)
        except ingest_cli.UsageProblem as exc:
            print(f"hgd ingest: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        progress.fraction = ingest_cli.fraction_read(stream)
        try:
            result = ingest(
                reading.lines,
                source,
                out,
                dry_run=args.dry_run,
                progress=progress,
                parse=reading.parse,
            )
        except IngestRefused as exc:
            progress.close()
            print(f"hgd ingest: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except OSError as exc:  # the suite directory cannot be written
            progress.close()
            print(f"hgd ingest: error: {exc.filename or out}: {exc.strerror}", file=sys.stderr)
            return EXIT_SOME_BAD
    progress.close()
    if result.suite_problems:
        for problem in result.suite_problems:
            print(problem, file=sys.stderr)
        print(
            f"hgd ingest: refused, nothing written: {_n(len(result.suite_problems), 'pair file')}"
            f" under {out} cannot be read, so their pairs cannot be checked for duplicates. "
            "Fix them (pytest --hgd shows the same errors) and run again.",
            file=sys.stderr,
        )
        return EXIT_SOME_BAD
    for line in [*result.bad_lines, *reading.warnings()]:
        print(line, file=sys.stderr)
    if args.dry_run:
        for planned in result.files:
            kind = "locked pair" if planned.outcome == "lead" else "pair for review"
            print(f"would write {planned.path}: {_n(planned.pairs, kind)}")
    print("\n".join(reading.summary(result, _summary(result, source, out, args.dry_run))))
    return EXIT_SOME_BAD if result.bad_lines else EXIT_OK


def _directory(args: argparse.Namespace) -> Path | None:
    directory: Path = args.directory
    if not directory.is_dir():
        print(f"hgd {args.command}: error: {directory} is not a directory", file=sys.stderr)
        return None
    return directory


def _suite(args: argparse.Namespace) -> Suite | None:
    """The suite under the command's directory (its problems printed), or None."""
    directory = _directory(args)
    if directory is None:
        return None
    suite = load_suite(directory)
    for problem in suite.problems:
        print(problem, file=sys.stderr)
    return suite


def run_review(args: argparse.Namespace) -> int:
    suite = _suite(args)
    if suite is None:
        return EXIT_USAGE
    print("\n".join(review_lines(suite.pairs)))
    return EXIT_SOME_BAD if suite.problems else EXIT_OK


def run_stats(args: argparse.Namespace) -> int:
    if args.ledger is not None and not args.ledger.is_file():
        what = "is not a file" if args.ledger.exists() else "does not exist"
        print(
            f"hgd stats: error: --ledger {args.ledger} {what}. Hint: the gate writes "
            ".hgd/ledger.jsonl under the rootdir (or where --hgd-ledger says).",
            file=sys.stderr,
        )
        return EXIT_USAGE
    suite = _suite(args)
    if suite is None:
        return EXIT_USAGE
    series = None
    spent: list[str] = []
    if args.ledger is not None:
        ledger = read_ledger(args.ledger)
        for problem in ledger.problems:
            print(f"hgd: ledger: {problem}", file=sys.stderr)
        series = growth_series(ledger.records)
        spent = calls_lines(ledger.records)
    print("\n".join([*render_stats(str(args.directory), suite, series, last=args.last), *spent]))
    return EXIT_SOME_BAD if suite.problems else EXIT_OK


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hgd",
        description="Grow a pytest-hgd suite from production conversations.",
        epilog="Run `hgd COMMAND --help` for a command's options. Docs: docs/ingest.md",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    ingest_parser = commands.add_parser(
        "ingest",
        help="turn a JSON Lines batch of conversations into pair files",
        description="Lead conversations become locked pairs in DIR; no-lead conversations "
        f"become pairs pending review in DIR/{REVIEW_DIR}/. Pairs already in the suite are "
        "skipped; existing files are never written to. Exit status: 0 every line ingested, "
        "1 some lines bad (the good ones ingested) or the suite under DIR does not load, "
        "2 usage error.",
    )
    ingest_parser.add_argument(
        "conversations", metavar="CONVERSATIONS.jsonl", help="the batch, or - for stdin"
    )
    ingest_parser.add_argument(
        "--out", metavar="DIR", type=Path, required=True, help="the suite directory"
    )
    ingest_parser.add_argument(
        "--dry-run", action="store_true", help="print what would be written; write nothing"
    )
    ingest_cli.add_arguments(ingest_parser)
    ingest_parser.set_defaults(handler=run_ingest)

    review_parser = commands.add_parser(
        "review",
        help="list the pairs pending review",
        description="List every pair marked `review:` under DIR as file:line: id: reason. "
        "Exit status 1 when some pair file does not load.",
    )
    review_parser.add_argument("directory", metavar="DIR", type=Path, help="the suite directory")
    review_parser.set_defaults(handler=run_review)

    stats_parser = commands.add_parser(
        "stats",
        help="suite size by kind and tag, and its growth over the ledger",
        description="Count the pairs under DIR by kind, status and tag; with --ledger, show "
        "the enforced suite size of every gate run. Exit status 1 when some pair file does "
        "not load.",
    )
    stats_parser.add_argument("directory", metavar="DIR", type=Path, help="the suite directory")
    stats_parser.add_argument(
        "--ledger", metavar="PATH", type=Path, help="the gate's ledger, e.g. .hgd/ledger.jsonl"
    )
    stats_parser.add_argument(
        "--last", metavar="N", type=_positive, default=20, help="ledger runs shown (default 20)"
    )
    stats_parser.set_defaults(handler=run_stats)
    merge.add_parser(commands)
    init.add_parser(commands)
    watch.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.handler(args))
    except BrokenPipeError:  # `hgd review DIR | head`
        sys.stderr.close()
        return EXIT_SOME_BAD


if __name__ == "__main__":  # python -m pytest_hgd.cli, as python -m pytest_hgd
    sys.exit(main())
