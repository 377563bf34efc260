"""Speed and memory of ``hgd ingest`` on a large synthetic batch.

Writes N synthetic conversations of about 10 turns (60 % lead, every one opening with the
same agent greeting) to a JSON Lines file, then runs ``python -m pytest_hgd ingest`` on it
twice in a child process each, into a fresh suite directory:

1. the first ingest: wall time and the child's peak RSS (``ru_maxrss`` from ``os.wait4``,
   the per-child form of ``getrusage(RUSAGE_CHILDREN)``);
2. the same ingest again: wall time, peak RSS, and that it wrote nothing (every file's
   size and mtime, the index included, unchanged; no file added);
3. once more with the index cache deleted (every pair file read again; no target).

CPU time (user + system of the child) is printed beside wall time: on a shared machine the
wall time also measures the other processes.

    python benchmarks/ingest_bench.py                       # 20,000 conversations
    python benchmarks/ingest_bench.py --conversations 2000  # quicker
    python benchmarks/ingest_bench.py --format chat         # the same, in OpenAI chat format

With ``--format chat`` the same conversations are written as chat-format records (a system
message first, and a tool call and its result before every other agent reply) with their
outcomes in a separate CSV (``converted`` / ``lost``), ingested with ``--outcomes FILE
--lead-value converted``: the pairs written are the same as the hgd format's.

Exit status 0 when every target is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"first_s": 20.0, "first_mb": 500.0, "second_s": 5.0, "second_mb": 500.0}
_VOCABULARY = (
    "the a car price lease trade in rav4 suv call monday rep offer finance model colour hybrid "
    "payment month dealer test drive warranty mileage budget family seats tuesday morning "
    "evening discount quote insurance delivery stock blue white black awd fuel economy"
)
WORDS = _VOCABULARY.split()
GREETING = "Hi, this is Sam from Acme Motors. How can I help you today?"


def sentence(rng: random.Random, low: int = 6, high: int = 22) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(low, high))]
    return " ".join(words).capitalize() + rng.choice(".?!")


def make_batch(path: Path, count: int, seed: int) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as out:
        for index in range(count):
            turns = [{"role": "agent", "text": GREETING}]
            for number in range(1, rng.randint(9, 11)):
                role = "customer" if number % 2 else "agent"
                turns.append({"role": role, "text": sentence(rng)})
            record = {
                "id": f"call-{index:06d}",
                "outcome": "lead" if rng.random() < 0.6 else "no_lead",
                "turns": turns,
                "tags": [rng.choice(["suv", "sedan", "truck"])],
                "channel": "phone",
            }
            out.write(json.dumps(record) + "\n")


def to_chat(batch: Path, chat: Path, outcomes: Path) -> None:
    """The hgd-format batch as chat-format records, and its outcomes as a CSV, streamed."""
    with (
        batch.open(encoding="utf-8") as lines,
        chat.open("w", encoding="utf-8") as out,
        outcomes.open("w", encoding="utf-8") as csv,
    ):
        csv.write("id,outcome\n")
        for line in lines:
            record = json.loads(line)
            messages = [{"role": "system", "content": "You are Sam from Acme Motors."}]
            for index, turn in enumerate(record.pop("turns")):
                if turn["role"] == "agent" and index % 4 == 2:
                    call = {"id": f"t{index}", "type": "function", "function": {"name": "f"}}
                    messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
                    messages.append({"role": "tool", "tool_call_id": f"t{index}", "content": "{}"})
                role = "assistant" if turn["role"] == "agent" else "user"
                messages.append({"role": role, "content": turn["text"]})
            outcome = "converted" if record.pop("outcome") == "lead" else "lost"
            csv.write(f"{record['id']},{outcome}\n")
            out.write(json.dumps({**record, "messages": messages}) + "\n")


def snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    files = {}
    for root, _dirs, names in os.walk(directory):
        for name in names:
            stat = Path(root, name).stat()
            files[os.path.relpath(Path(root, name), directory)] = (stat.st_size, stat.st_mtime_ns)
    return files


def run_ingest(
    batch: Path, out: Path, extra: list[str] | None = None
) -> tuple[float, float, float, int, str]:
    """Wall seconds, CPU seconds, peak RSS in MB, exit status and stdout of one child."""
    command = [sys.executable, "-m", "pytest_hgd", "ingest", str(batch), "--out", str(out)]
    command += extra or []
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert child.stdout is not None
    stdout = child.stdout.read().decode()
    _pid, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return seconds, cpu, usage.ru_maxrss / 1024, child.returncode, stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--format", choices=["hgd", "chat"], default="hgd")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="hgd-ingest-bench-") as temp:
        batch, out = Path(temp, "batch.jsonl"), Path(temp, "suite")
        make_batch(batch, args.conversations, args.seed)
        extra: list[str] = []
        if args.format == "chat":
            chat, outcomes = Path(temp, "chat.jsonl"), Path(temp, "outcomes.csv")
            to_chat(batch, chat, outcomes)
            batch, extra = chat, ["--outcomes", str(outcomes), "--lead-value", "converted"]
        size_mb = batch.stat().st_size / 1e6
        print(f"batch: {args.conversations} conversations, {size_mb:.1f} MB ({args.format})")

        first = run_ingest(batch, out, extra)
        before = snapshot(out)
        second = run_ingest(batch, out, extra)
        after = snapshot(out)
        (out / ".hgd" / "ingest-index.json").unlink()
        cold = run_ingest(batch, out, extra)  # the index cache gone: every pair file read again
        print(first[-1].rstrip())
        print(second[-1].rstrip())

    pair_files = sum(1 for name in before if name.endswith(".hgd.yaml"))
    unchanged = before == after
    rows = [
        ("first ingest, wall time (s)", first[0], TARGETS["first_s"]),
        ("first ingest, CPU time (s)", first[1], None),
        ("first ingest, peak RSS (MB)", first[2], TARGETS["first_mb"]),
        ("second ingest, wall time (s)", second[0], TARGETS["second_s"]),
        ("second ingest, CPU time (s)", second[1], None),
        ("second ingest, peak RSS (MB)", second[2], TARGETS["second_mb"]),
        ("second ingest without the index cache, wall time (s)", cold[0], None),
    ]
    print()
    print(
        f"| {args.conversations} conversations, {pair_files} pair files | measured | target | ratio |"
    )
    print("|---|---|---|---|")
    ok = first[3] == 0 and second[3] == 0 and cold[3] == 0 and unchanged
    for label, value, target in rows:
        if target is None:
            print(f"| {label} | {value:.2f} | | |")
            continue
        ok = ok and value <= target
        print(f"| {label} | {value:.2f} | ≤ {target:g} | {value / target:.2f} |")
    print(f"| second ingest wrote nothing | {'yes' if unchanged else 'NO'} | yes | |")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"exit status: {first[3]}, {second[3]}, {cold[3]}; targets {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
