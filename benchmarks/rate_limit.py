"""The HTTP agent against a provider that rate-limits: throughput, 429s and errors.

A loopback OpenAI-compatible server (``tests/openai_server.py``) answers after 10 ms and
admits ``--limit`` requests a second (a token bucket with 50 ms of burst); above it, it
answers 429 with ``retry-after-ms`` and OpenAI's ``x-ratelimit-*`` headers. A real
``pytest --hgd`` child runs ``--pairs`` pairs (one prompt) at ``--hgd-concurrency=64``,
once as it comes (the agent backs off on 429 and honours the headers) and once with
``--hgd-rate`` just under the limit. Printed: wall time, sustained throughput against the
limit, the share of requests answered 429, and pairs in error.

    python benchmarks/rate_limit.py                    # 200 requests/s, 2000 pairs, ~30 s

Targets (issue 22): sustained throughput (answers from the first request to the last answer)
>= 90 % of the limit, no pair in error, < 5 % of the requests answered 429. Exit status 0
when both runs meet them.
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from openai_server import OpenAIServer


def write_suite(directory: Path, pairs: int, base_url: str, rate: float | None) -> None:
    for start in range(0, pairs, 50):
        lines = [f"conversation: call-{start // 50:04d}", "outcome: lead", "pairs:"]
        for index in range(start, min(start + 50, pairs)):
            lines += [f"  - id: p{index}", f'    customer: "question {index}"',
                      "    checks:", '      - contains: "Re"']  # fmt: skip
        (directory / f"call-{start // 50:04d}.hgd.yaml").write_text("\n".join(lines) + "\n")
    (directory / "prompt.txt").write_text("You are Sam.\n")
    rate_line = f"hgd_rate = {rate:g}\n" if rate else ""
    (directory / "pytest.ini").write_text(
        f"[pytest]\nhgd_agent = openai:bench\nhgd_base_url = {base_url}\n"
        f"hgd_api_key_env = HGD_BENCH_KEY\n{rate_line}"
    )


def run(pairs: int, limit: float, rate: float | None) -> dict[str, float]:
    with (
        OpenAIServer(latency=0.01, rate_limit=limit) as server,
        tempfile.TemporaryDirectory() as temp,
    ):
        server.record(False)
        directory = Path(temp)
        write_suite(directory, pairs, server.base_url, rate)
        command = [
            sys.executable, "-m", "pytest", "--hgd", "--hgd-candidate=prompt.txt",
            "--hgd-concurrency=64", "--hgd-no-cache", "--hgd-no-ledger",
            "--hgd-report=report.json", "-q", "-p", "no:cacheprovider",
        ]  # fmt: skip
        env = {**os.environ, "HGD_BENCH_KEY": "sk-bench"}
        started = time.monotonic()
        subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True, check=False)
        wall = time.monotonic() - started
        report = json.loads((directory / "report.json").read_text())
        calls, limited = server.calls, server.limited
        busy = server.last_at - server.first_at  # from the first request to the last answer
    answered = calls - limited
    return {
        "wall": wall,
        "throughput": answered / busy,
        "limited_share": limited / max(1, calls),
        "errors": report["counts"]["error"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--limit", type=float, default=200.0, help="the provider's requests/s")
    parser.add_argument("--pairs", type=int, default=2000)
    args = parser.parse_args(argv)
    print(f"provider limit {args.limit:g} requests/s, {args.pairs} pairs, concurrency 64")
    print("| run | wall | throughput (of the limit) | answered 429 | pairs in error | target |")
    print("|---|---|---|---|---|---|")
    met_all = True
    for name, rate in (
        ("adaptive only", None),
        (f"--hgd-rate={0.95 * args.limit:g}", 0.95 * args.limit),
    ):
        figures = run(args.pairs, args.limit, rate)
        share = figures["throughput"] / args.limit
        met = share >= 0.9 and figures["errors"] == 0 and figures["limited_share"] < 0.05
        met_all = met_all and met
        print(
            f"| {name} | {figures['wall']:.1f} s | {figures['throughput']:.0f}/s ({100 * share:.0f} %) "
            f"| {100 * figures['limited_share']:.1f} % | {figures['errors']:.0f} | {'met' if met else 'missed'} |"
        )
    return 0 if met_all else 1


if __name__ == "__main__":
    sys.exit(main())
