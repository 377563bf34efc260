"""How fast ``pytest --hgd`` runs the gate against a loopback OpenAI-compatible server.

The server (``tests/openai_server.py``) runs in its own process, with a fixed latency per
request, so it does not share the GIL with pytest. Every gate run is a fresh ``python -m
pytest`` child in a temporary suite; its wall time and peak RSS are measured from outside,
and its agent calls are read back from the JSON report (``--hgd-report``).

    python benchmarks/fast_gate.py              # the four figures, about a minute
    python benchmarks/fast_gate.py --repeat 3   # median of three runs per figure
    python benchmarks/fast_gate.py --no-fail    # exit 0 even when a target is missed

Figures (issue 3):

(a) 1000 pairs, baseline and candidate, latency 50 ms, concurrency 32: wall seconds against
    the ideal N·L/C = 2000 x 0.05 / 32 ≈ 3.1 s. Target: <= 1.3 x ideal + start-up.
(b) the same run again with the baseline cached (a new candidate): baseline calls (must be 0)
    and wall seconds against 1000 x 0.05 / 32 ≈ 1.6 s. Target: <= 1.3 x ideal + start-up.
(c) latency 0: the plugin's overhead per pair, (wall - start-up) / pairs, for the HTTP agent
    and for a trivial Python callable agent (no HTTP). Target: <= 1.5 ms per pair. For
    comparison, also the HTTP agent making its calls from the pytest process
    (``--hgd-http-workers=0``).
(d) ``--collect-only`` of 10,000 pairs in 1,000 files: seconds and peak RSS.
    Target: <= 3 s and <= 300 MB.

Every run of (a) and (c) is a first gate run, with a cache and a ledger of its own; each run of
(b) starts from a copy of one run (a)'s cache and ledger. (Reading the ledger and computing
pressure from it grows with its length, about 30 ms per earlier 1000-pair run here.)

Start-up is ``pytest --hgd --collect-only`` on a one-pair suite (the plugin, httpx and the
other installed plugins imported, the ini read, nothing run). Exit status 0 when every target
is met, 1 otherwise (0 with ``--no-fail``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SERVER = REPO / "tests" / "openai_server.py"

PAIRS = 1000
PAIRS_PER_FILE = 10
CONCURRENCY = 32
LATENCY = 0.05
COLLECT_FILES = 1000
RATIO_TARGET = 1.3
OVERHEAD_TARGET_MS = 1.5
COLLECT_SECONDS_TARGET = 3.0
COLLECT_RSS_TARGET_MB = 300.0
ISOLATED = True  # --all-plugins: False
PYCACHE: Path | None = None  # where the children cache bytecode (set by main)

AGENT_MODULE = '''\
"""A trivial agent: echoes the customer's message and the prompt's last line."""


def reply(prompt, messages):
    return f"Re: {messages[-1]['content']} | {prompt.splitlines()[-1]}"
'''


# -- the suite ----------------------------------------------------------------------------


def _pair_file(conversation: int, pairs: int) -> str:
    lines = [
        f"conversation: call-{conversation:05d}",
        "outcome: lead",
        "tags: [bench, suv]",
        "pairs:",
    ]
    for index in range(pairs):
        customer = f"Conversation {conversation}, question {index}: how much is model {index}?"
        lines += [
            f"  - id: q{index}",
            "    history:",
            '      - agent: "Hi, this is Sam from Acme Motors. How can I help?"',
            f'      - customer: "I am looking at SUVs, call {conversation}."',
            f'    customer: "{customer}"',
            f'    reply: "Re: {customer} | Be brief."',
        ]
        if index % 2:  # half with explicit checks, half with the default `similar`
            lines += [
                "    checks:",
                '      - contains: "Re:"',
                '      - not_contains: ["guarantee"]',
                '      - regex: "model \\\\d+"',
                "      - max_chars: 400",
            ]
    return "\n".join(lines) + "\n"


def write_suite(root: Path, files: int, pairs_per_file: int, base_url: str) -> Path:
    """A gate suite in ``root``: pair files, three prompts, an agent module, pytest.ini."""
    root.mkdir(parents=True, exist_ok=True)
    pairs_dir = root / "pairs"
    pairs_dir.mkdir(exist_ok=True)
    for conversation in range(files):
        text = _pair_file(conversation, pairs_per_file)
        (pairs_dir / f"call-{conversation:05d}.hgd.yaml").write_text(text, encoding="utf-8")
    for name, last in (("base", "Be brief."), ("cand", "Be brief!"), ("cand2", "Be short.")):
        (root / f"{name}.txt").write_text(f"You sell cars for Acme Motors.\n{last}\n")
    (root / "bench_agent.py").write_text(AGENT_MODULE)
    (root / "pytest.ini").write_text(
        "[pytest]\n"
        "hgd_agent = openai:bench-model\n"
        f"hgd_base_url = {base_url}\n"
        "hgd_api_key_env =\n"
        "hgd_prompt = cand.txt\n"
    )
    return root


# -- processes ----------------------------------------------------------------------------


class Server:
    """``tests/openai_server.py`` in a child process, at a fixed latency."""

    def __init__(self, latency: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(SERVER), "--latency", str(latency), "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.base_url = self.process.stdout.readline().strip()
        if not self.base_url.startswith("http://"):
            self.stop()
            raise RuntimeError(f"the server did not print its URL: {self.base_url!r}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@dataclass(frozen=True)
class Run:
    wall: float
    cpu: float  # user + system seconds of the pytest child: steadier than wall on a busy box
    rss_mb: float
    returncode: int
    output: str
    report: dict[str, Any] | None


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    if PYCACHE is not None:  # see _bytecode_cache
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env


def run_pytest(suite: Path, args: Sequence[str], report: bool = True) -> Run:
    """One fresh ``python -m pytest`` in ``suite``: wall time, peak RSS, output, report."""
    report_path = suite / "report.json"
    report_path.unlink(missing_ok=True)
    command = [sys.executable, "-m", "pytest", "--hgd", "-q", "-p", "no:cacheprovider", *args]
    env = _child_env()
    if ISOLATED:  # only pytest-hgd: other installed plugins' hooks are not ours to measure
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        command[3:3] = ["-p", "pytest_hgd.plugin"]
    if report:
        command.append(f"--hgd-report={report_path}")
    with tempfile.TemporaryFile("w+") as output:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=suite, env=env, stdout=output, stderr=subprocess.STDOUT
        )
        _pid, status, usage = os.wait4(process.pid, 0)  # this child's own rusage
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        text = output.read()
    parsed = json.loads(report_path.read_text()) if report and report_path.exists() else None
    cpu = usage.ru_utime + usage.ru_stime
    return Run(wall, cpu, usage.ru_maxrss / 1024, process.returncode, text, parsed)


def gate_args(baseline: str | None, candidate: str, cache: str, ledger: str) -> list[str]:
    args = [f"--hgd-candidate={candidate}", f"--hgd-concurrency={CONCURRENCY}"]
    if baseline:
        args.append(f"--hgd-baseline={baseline}")
    return [*args, f"--hgd-cache-dir={cache}", f"--hgd-ledger={ledger}"]


def median_run(repeat: int, once: Callable[[int], Run]) -> Run:
    return _median([once(i) for i in range(repeat)])


def _median(runs: Sequence[Run]) -> Run:
    return sorted(runs, key=lambda r: r.wall)[len(runs) // 2]


def expect(run: Run, what: str, calls: dict[str, int] | None = None) -> None:
    """Stop with the child's output when a run did not do what the figure assumes."""
    problem = None
    if run.returncode != 0:
        problem = f"exit status {run.returncode}"
    elif calls is not None:
        got = run.report["calls"] if run.report else None
        if got is None or any(got.get(k) != v for k, v in calls.items()):
            problem = f"calls {got} (expected {calls})"
    if problem:
        tail = "\n".join(run.output.splitlines()[-30:])
        raise SystemExit(f"{what}: {problem}\n{tail}")


# -- figures ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    figure: str
    measured: float
    unit: str
    ideal: float | None
    target: float | None  # None: shown for comparison, no target
    target_text: str
    startup: float = 0.0
    cpu: float | None = None  # the child's CPU seconds, when the figure is one run

    @property
    def ok(self) -> bool:
        return self.target is None or self.measured <= self.target + 1e-9

    @property
    def ratio(self) -> str:
        if not self.ideal:
            return "—"
        net = (self.measured - self.startup) / self.ideal
        return f"{self.measured / self.ideal:.2f} (net {net:.2f})"


def _wall_row(figure: str, run: Run, ideal: float, startup: float) -> Row:
    target = RATIO_TARGET * ideal + startup
    text = f"<= {RATIO_TARGET} x ideal + start-up"
    return Row(figure, run.wall, "s", ideal, target, text, startup, run.cpu)


def _overhead_row(name: str, run: Run, startup: float, target: bool = True) -> Row:
    figure = f"{name}: overhead per pair"
    per_pair = (run.wall - startup) / PAIRS * 1000
    if not target:
        return Row(figure, per_pair, "ms", None, None, "(for comparison)", cpu=run.cpu)
    text = f"<= {OVERHEAD_TARGET_MS} ms"
    return Row(figure, per_pair, "ms", None, OVERHEAD_TARGET_MS, text, cpu=run.cpu)


class StartUp:
    """Start-up runs, one just before each timed run of (a), (b) and (c), so that start-up
    and the figures it is subtracted from are measured on the machine as it was then (a VM's
    speed drifts by a third within minutes); the start-up used is their median."""

    def __init__(self, suite: Path) -> None:
        self.suite = suite
        self.runs: list[Run] = []

    def before(self, once: Callable[[int], Run]) -> Callable[[int], Run]:
        def run(i: int) -> Run:
            startup = run_pytest(self.suite, ["--collect-only"], False)
            expect(startup, "start-up")
            self.runs.append(startup)
            return once(i)

        return run

    def median(self) -> Run:
        return _median(self.runs)


def measure(work: Path, repeat: int) -> tuple[list[Row], dict[str, float]]:
    """Every figure's row, and the start-up figures they are measured against."""
    rows: list[Callable[[float], Row]] = []  # each given the start-up once all runs are in
    files = PAIRS // PAIRS_PER_FILE
    startups = StartUp(write_suite(work / "one", 1, 1, "http://127.0.0.1:9/v1"))

    server = Server(LATENCY)
    try:
        suite = write_suite(work / "latency", files, PAIRS_PER_FILE, server.base_url)

        # Each run (a) starts a ledger of its own, as a first gate run does; its run (b) is
        # "the same run again": a copy of that ledger (one record) and of its cache.
        def run_a(i: int) -> Run:
            args = gate_args("base.txt", "cand.txt", f".hgd/cache-{i}", f".hgd/ledger-{i}.jsonl")
            return run_pytest(suite, args)

        a = median_run(repeat, startups.before(run_a))
        expect(a, "(a)", {"baseline": PAIRS, "candidate": PAIRS})
        figure = "(a) 1000 pairs x 2 prompts, 50 ms, C=32: wall"
        rows.append(partial(_wall_row, figure, a, 2 * PAIRS * LATENCY / CONCURRENCY))

        def run_b(i: int) -> Run:  # a copy of run (a)'s cache: the baseline is cached
            cache = work / f"cache-b{i}"
            shutil.rmtree(cache, ignore_errors=True)
            shutil.copytree(suite / f".hgd/cache-{i % repeat}", cache)
            ledger = work / f"ledger-b{i}.jsonl"
            shutil.copyfile(suite / f".hgd/ledger-{i % repeat}.jsonl", ledger)
            return run_pytest(suite, gate_args("base.txt", "cand2.txt", str(cache), str(ledger)))

        b = median_run(repeat, startups.before(run_b))
        expect(b, "(b)", {"candidate": PAIRS})
        assert b.report is not None
        made = b.report["calls"]["baseline"]
        rows.append(lambda _: Row("(b) baseline cached: baseline calls", made, "", None, 0, "0"))
        figure = "(b) baseline cached: wall"
        rows.append(partial(_wall_row, figure, b, PAIRS * LATENCY / CONCURRENCY))
    finally:
        server.stop()

    server = Server(0.0)
    try:
        suite = write_suite(work / "zero", files, PAIRS_PER_FILE, server.base_url)
        variants: tuple[tuple[str, tuple[str, ...]], ...] = (
            ("HTTP", ()),
            ("HTTP in-process", ("--hgd-http-workers=0",)),
            ("Python", ("--hgd-agent=bench_agent:reply",)),
        )
        for name, extra in variants:
            target = name != "HTTP in-process"  # the worker process's gain, for comparison

            def run_c(i: int, name: str = name, extra: Sequence[str] = extra) -> Run:
                run = f"{name.replace(' ', '-')}-{i}"  # a first run: its own cache and ledger
                args = gate_args(
                    "base.txt", "cand.txt", f".hgd/cache-{run}", f".hgd/ledger-{run}.jsonl"
                )
                return run_pytest(suite, [*args, *extra])

            c = median_run(repeat, startups.before(run_c))
            expect(c, f"(c) {name}", {"baseline": PAIRS, "candidate": PAIRS})
            rows.append(partial(_overhead_row, f"(c) latency 0, {name} agent", c, target=target))
    finally:
        server.stop()

    big = write_suite(work / "collect", COLLECT_FILES, 10, "http://127.0.0.1:9/v1")
    d = median_run(repeat, lambda _: run_pytest(big, ["--collect-only"], False))
    expect(d, "(d)")
    if f"{COLLECT_FILES * 10} tests collected" not in d.output:
        raise SystemExit(f"(d): expected {COLLECT_FILES * 10} items\n{d.output[-2000:]}")
    figure_d = "(d) --collect-only 10,000 pairs in 1,000 files"
    wall, rss = COLLECT_SECONDS_TARGET, COLLECT_RSS_TARGET_MB
    rows.append(
        lambda _: Row(f"{figure_d}: wall", d.wall, "s", None, wall, f"<= {wall:g} s", cpu=d.cpu)
    )
    rows.append(lambda _: Row(f"{figure_d}: peak RSS", d.rss_mb, "MB", None, rss, f"<= {rss:g} MB"))
    startup = startups.median()
    info = {
        f"start-up: --collect-only of 1 pair, median of {len(startups.runs)}, s": startup.wall,
        "start-up: CPU s": startup.cpu,
        "start-up: peak RSS MB": startup.rss_mb,
    }
    return [row(startup.wall) for row in rows], info


def render_table(rows: Sequence[Row]) -> list[str]:
    """The figures as a Markdown table."""
    header = ("figure", "measured", "ideal", "ratio", "target", "", "CPU s")
    body = [
        (
            r.figure,
            f"{r.measured:.3g} {r.unit}" if r.unit else f"{r.measured:g}",
            f"{r.ideal:.2f} {r.unit}" if r.ideal else "—",
            r.ratio,
            r.target_text + (f" = {r.target:.2f} {r.unit}" if r.ideal else ""),
            "" if r.target is None else "OK" if r.ok else "MISS",
            f"{r.cpu:.2f}" if r.cpu is not None else "",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in (header, *body)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, body)]


def _bytecode_cache(work: Path) -> None:
    """Give the children a bytecode cache in ``work``.

    An installed package comes with its bytecode, and Python caches what it compiles on the
    first import. Some machines (this one among them) set ``PYTHONDONTWRITEBYTECODE=1``,
    which makes every child compile pytest-hgd's modules again: about 60 ms in pytest and
    again in the HTTP worker, which a user does not pay. The children write their bytecode
    here instead (``PYTHONPYCACHEPREFIX``), warmed here before any run is timed; the
    repository and site-packages are left as they are.
    """
    global PYCACHE
    PYCACHE = work / "pycache"
    modules = "pytest, pytest_hgd.plugin.session, pytest_hgd.agents.http_process, pytest_hgd.reports.report"
    subprocess.run([sys.executable, "-c", f"import {modules}"], env=_child_env(), check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure (median)")
    parser.add_argument("--no-fail", action="store_true", help="exit 0 even if a target is missed")
    parser.add_argument("--keep", action="store_true", help="keep the temporary suites")
    parser.add_argument(
        "--all-plugins",
        action="store_true",
        help="let pytest load every installed plugin (default: only pytest-hgd)",
    )
    args = parser.parse_args(argv)
    global ISOLATED
    ISOLATED = not args.all_plugins
    work = Path(tempfile.mkdtemp(prefix="hgd-bench-"))
    _bytecode_cache(work)
    started = time.perf_counter()
    try:
        rows, info = measure(work, max(1, args.repeat))
    finally:
        if args.keep:
            print(f"suites kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, repeat {args.repeat}")
    for name, value in info.items():
        print(f"{name}: {value:.3f}")
    print("\n".join(render_table(rows)))
    print(f"benchmark took {time.perf_counter() - started:.0f} s")
    missed = [r.figure for r in rows if not r.ok]
    if missed:
        print("MISSED: " + "; ".join(missed))
    return 1 if missed and not args.no_fail else 0


if __name__ == "__main__":
    sys.exit(main())
