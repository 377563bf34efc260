"""A big suite: 10,000 pairs in 2,000 files, two prompts, serial, ``-n 2`` and 4 shards.

A loopback OpenAI-compatible server (``tests/openai_server.py``, in a thread of this
process) answers after 10 ms. Each gate is a fresh ``pytest --hgd`` child at
``--hgd-concurrency=64`` with the HTTP agent; its wall time, CPU time (its own and its
children's) and peak RSS are read with ``os.wait4``; the time to the first request is the
server's first request less the child's start. Ideal wall = N·L/C (20,000 calls x 10 ms /
64 = 3.1 s). The ``-n 2`` run and the 4 shards + ``hgd merge`` must report exactly the
serial run's verdict, counts and pairs.

    python benchmarks/scale.py                  # about 2 minutes on 2 cores
    python benchmarks/scale.py --pairs 1000     # a quick look
    python benchmarks/scale.py --growth 1000,10000,100000   # serial only: cost per pair

With ``--growth`` only serial runs are made, one per size, and the figures are per pair: wall,
time to the first request and peak memory. Linear cost keeps them within 1.3 x of each other
from 10k to 100k (issue 22).

Targets (issue 22): wall <= 2.5 x ideal, first request <= 1.0 s, peak memory <= 250 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from openai_server import OpenAIServer

PER_FILE = 5
LATENCY = 0.01
CONCURRENCY = 64


def write_suite(directory: Path, pairs: int, base_url: str, regress: bool = True) -> None:
    for start in range(0, pairs, PER_FILE):
        lines = [f"conversation: call-{start // PER_FILE:05d}", "outcome: lead", "pairs:"]
        for index in range(start, min(start + PER_FILE, pairs)):
            # 1 % regress under the candidate (none with regress=False)
            check = "hello" if regress and index % 100 == 7 else "Re"
            lines += [f"  - id: p{index}", f'    customer: "question {index}"',
                      "    checks:", f'      - contains: "{check}"']  # fmt: skip
        (directory / f"call-{start // PER_FILE:05d}.hgd.yaml").write_text("\n".join(lines) + "\n")
    (directory / "base.txt").write_text("You are Sam.\nsay hello\n")
    (directory / "cand.txt").write_text("You are Sam.\nsay goodbye\n")
    (directory / "pytest.ini").write_text(
        f"[pytest]\nhgd_agent = openai:bench\nhgd_base_url = {base_url}\n"
        "hgd_api_key_env = HGD_BENCH_KEY\n"
    )


def child(directory: Path, server: OpenAIServer, *args: str) -> dict[str, float]:
    """One ``pytest --hgd`` child: wall, CPU, peak RSS (MB), first request (s)."""
    command = [
        sys.executable, "-m", "pytest", "--hgd", "--hgd-baseline=base.txt",
        "--hgd-candidate=cand.txt", f"--hgd-concurrency={CONCURRENCY}", "--hgd-no-cache",
        "--hgd-no-ledger", "-q", "-p", "no:cacheprovider", *args,
    ]  # fmt: skip
    env = {**os.environ, "HGD_BENCH_KEY": "sk-bench"}
    server.first_at = 0.0
    started = time.monotonic()
    process = subprocess.Popen(
        command, cwd=directory, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, _, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - started
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_mb": usage.ru_maxrss / 1024,
        "first_request": server.first_at - started if server.first_at else float("nan"),
    }


def growth(sizes: list[int], regress: bool = True) -> int:
    """Serial runs of growing suites: cost per pair."""
    print("| pairs | wall | wall per pair | first request | peak RSS | RSS per pair |")
    print("|---|---|---|---|---|---|")
    rows = {}
    for pairs in sizes:
        with OpenAIServer(latency=LATENCY) as server, tempfile.TemporaryDirectory() as temp:
            server.record(False)
            write_suite(Path(temp), pairs, server.base_url, regress)
            r = child(Path(temp), server)
        rows[pairs] = r
        print(
            f"| {pairs} | {r['wall']:.1f} s | {1000 * r['wall'] / pairs:.2f} ms "
            f"| {r['first_request']:.2f} s | {r['rss_mb']:.0f} MB "
            f"| {1024 * r['rss_mb'] / pairs:.1f} KB |"
        )
    if 10_000 in rows and 100_000 in rows:
        small, big = rows[10_000], rows[100_000]
        ratios = {
            "wall": (big["wall"] / 100_000) / (small["wall"] / 10_000),
            "first request": (big["first_request"] / 100_000) / (small["first_request"] / 10_000),
            "memory": (big["rss_mb"] / 100_000) / (small["rss_mb"] / 10_000),
        }
        print(
            "per pair, 100k against 10k: " + ", ".join(f"{k} {v:.2f} x" for k, v in ratios.items())
        )
    return 0


def comparable(report: dict[str, Any]) -> tuple[Any, ...]:
    pairs = sorted((p["id"], p["delta"]) for p in report["pairs"])
    return report["verdict"], report["counts"], pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--growth", default="", help="sizes for serial runs, e.g. 1000,10000")
    parser.add_argument(
        "--no-regressions",
        action="store_true",
        help="no pair fails: pytest's failure summary"
        " (quadratic in the number of failures and reports) left out",
    )
    args = parser.parse_args(argv)
    if args.growth:
        return growth([int(n) for n in args.growth.split(",")], not args.no_regressions)
    ideal = 2 * args.pairs * LATENCY / CONCURRENCY
    rows = []
    with OpenAIServer(latency=LATENCY) as server, tempfile.TemporaryDirectory() as temp:
        server.record(False)
        directory = Path(temp)
        write_suite(directory, args.pairs, server.base_url)
        serial = child(directory, server, "--hgd-report=serial.json")
        rows.append(("serial", serial))
        split = child(directory, server, "--hgd-report=xdist.json", "-p", "xdist", "-n", "2")
        rows.append(("-n 2", split))
        shards = [
            child(directory, server, f"--hgd-shard={i}/4", f"--hgd-partial=part{i}.json")
            for i in (1, 2, 3, 4)
        ]
        started = time.monotonic()
        merged = subprocess.run(
            [sys.executable, "-m", "pytest_hgd", "merge", *(f"part{i}.json" for i in (1, 2, 3, 4)),
             "--report", "merged.json"],
            cwd=directory, capture_output=True, text=True, check=False,
        )  # fmt: skip
        merge_wall = time.monotonic() - started
        rows.append(
            (
                "4 shards + merge (sum)",
                {
                    "wall": sum(s["wall"] for s in shards) + merge_wall,
                    "cpu": sum(s["cpu"] for s in shards),
                    "rss_mb": max(s["rss_mb"] for s in shards),
                    "first_request": max(s["first_request"] for s in shards),
                },
            )
        )
        reports = {
            name: json.loads((directory / f"{name}.json").read_text())
            for name in ("serial", "xdist", "merged")
        }
    same_xdist = comparable(reports["xdist"]) == comparable(reports["serial"])
    same_merge = comparable(reports["merged"]) == comparable(reports["serial"])
    files = args.pairs // PER_FILE
    print(f"{args.pairs} pairs in {files} files, two prompts, latency 10 ms, concurrency 64; "
          f"ideal N·L/C = {ideal:.2f} s")  # fmt: skip
    print("| run | wall | wall / ideal | CPU | peak RSS | first request |")
    print("|---|---|---|---|---|---|")
    for name, r in rows:
        print(
            f"| {name} | {r['wall']:.1f} s | {r['wall'] / ideal:.2f} | {r['cpu']:.1f} s "
            f"| {r['rss_mb']:.0f} MB | {r['first_request']:.2f} s |"
        )
    verdict = reports["serial"]["verdict"]
    print(f"serial verdict {verdict} ({reports['serial']['counts']['regressed']} regressed); "
          f"-n 2 the same: {same_xdist}; 4 shards + merge the same: {same_merge} "
          f"(merge exit {merged.returncode})")  # fmt: skip
    met = (
        serial["wall"] <= 2.5 * ideal
        and serial["first_request"] <= 1.0
        and serial["rss_mb"] <= 250
        and same_xdist
        and same_merge
    )
    print("every target met" if met else "TARGETS MISSED")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
