"""Regenerate ``ledger.jsonl``: EXAMPLE DATA, real gate runs over a growing car_sales suite.

    python examples/car_sales/ledger-example/make_ledger.py

Each run of the story is ``python -m pytest --hgd ...`` (the real plugin) in a temporary copy
of ``examples/car_sales`` that holds only the conversations added so far, some extra
candidate prompts (one-line edits of the baseline, ``EDITS``) and ``noisy_agent.py``: the
example agent, but it drops its sales-rep offer from 1 reply in ``1/DROP_EVERY`` (decided by
a seeded hash, so the file is reproducible). Afterwards the ``time`` fields are set to a fixed
synthetic sequence and ``commit`` to null. Nothing is written outside this folder.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent
LEDGER = HERE / "ledger.jsonl"
README = HERE / "README.md"
TABLE = ("<!-- table: make_ledger.py writes from here -->", "<!-- table: to here -->")
AGENT = "noisy_agent:reply"
START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)  # run i is at START + i days

NOISY_AGENT = '''\
"""EXAMPLE ONLY: agent.py with noise. 1 reply in DROP_EVERY loses its sales-rep offer."""

from __future__ import annotations

import hashlib
import os
import threading

from agent import REP_OFFER
from agent import reply as steady_reply

DROP_EVERY = 12
SEED = "car-sales-ledger-example"
_calls: dict[str, int] = {}
_lock = threading.Lock()


def reply(prompt: str, messages: list[dict[str, str]]) -> str:
    text = steady_reply(prompt, messages)
    key = repr((prompt, messages))
    with _lock:  # the k-th call with the same input in this run
        k = _calls[key] = _calls.get(key, -1) + 1
    run = os.environ.get("HGD_EXAMPLE_RUN", "0")
    digest = hashlib.sha256(f"{SEED}|{run}|{k}|{key}".encode()).digest()
    if REP_OFFER in text and int.from_bytes(digest[:4], "big") % DROP_EVERY == 0:
        text = " ".join(text.replace(REP_OFFER, "").split())
    return text
'''

_BASE = "prompts/baseline.txt"
_TEST_DRIVE = "Offer a test drive when asked about a model.\n"
_CONFIRM = "Confirm the callback time back to the customer.\n"
_POLITE = "When a customer is not interested, thank them and end the call politely.\n"
_QUOTE = "Quote the starting price from the price list."
_MONTHLY = "Give a monthly payment estimate when asked about financing."
# Candidate prompts made in the temporary copy: (old, new) edits of the baseline.
EDITS: dict[str, tuple[str, str]] = {
    "prompts/prices.txt": ("Never quote prices.", _QUOTE),
    "prompts/polite.txt": ("Keep replies", _POLITE + "Keep replies"),
    "prompts/short.txt": ("under 40 words", "under 20 words"),
    "prompts/no_test_drive.txt": (_TEST_DRIVE, ""),
    "prompts/monthly.txt": ("Never quote prices.", f"{_QUOTE}\n{_MONTHLY}"),
    "prompts/no_confirm.txt": (_CONFIRM, ""),
}


@dataclass(frozen=True)
class Run:
    """One gate run: conversations added before it, and the candidate (None: sample the
    unchanged baseline 3 times without the cache)."""

    add: tuple[str, ...] = ()
    candidate: str | None = None


STORY = (
    Run(add=("call-1004", "call-2001"), candidate=None),
    Run(candidate="prompts/prices.txt"),
    Run(candidate="prompts/short.txt"),
    Run(add=("call-1002", "call-2002"), candidate="prompts/polite.txt"),
    Run(candidate="prompts/no_test_drive.txt"),
    Run(add=("call-1001", "call-2003"), candidate=None),
    Run(candidate="prompts/short.txt"),
    Run(candidate="prompts/no_test_drive.txt"),
    Run(candidate="prompts/monthly.txt"),
    Run(add=("call-1003", "call-1005", "call-2004", "call-2005"), candidate=None),
    Run(candidate="prompts/no_confirm.txt"),
    Run(candidate="prompts/candidate_regresses.txt"),
    Run(candidate="prompts/candidate_fixes.txt"),
    Run(candidate="prompts/short.txt"),
)


def gate_args(run: Run, ledger: Path) -> list[str]:
    """The pytest arguments of one run of the story."""
    args = ["--hgd", "-q", "-p", "no:cacheprovider", f"--hgd-agent={AGENT}"]
    args.append(f"--hgd-ledger={ledger}")
    if run.candidate is None:
        return [*args, "--hgd-samples=3", "--hgd-no-cache"]
    return [*args, f"--hgd-baseline={_BASE}", f"--hgd-candidate={run.candidate}"]


def prepare(workdir: Path) -> None:
    """The example without its pair files, plus the noisy agent and the extra candidates."""
    shutil.copytree(EXAMPLE, workdir, ignore=shutil.ignore_patterns(".*", "ledger-example"))
    for pair_file in (workdir / "pairs").glob("*.hgd.yaml"):
        pair_file.unlink()
    (workdir / "noisy_agent.py").write_text(NOISY_AGENT, encoding="utf-8")
    baseline = (workdir / _BASE).read_text(encoding="utf-8")
    for path, (old, new) in EDITS.items():
        assert old in baseline, old
        (workdir / path).write_text(baseline.replace(old, new), encoding="utf-8")


def add_conversations(workdir: Path, names: tuple[str, ...]) -> None:
    for name in names:
        shutil.copy(EXAMPLE / "pairs" / f"{name}.hgd.yaml", workdir / "pairs")


def run_gate(workdir: Path, args: list[str], run_number: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["HGD_EXAMPLE_RUN"] = str(run_number)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if "HGD gate" not in done.stdout:
        raise SystemExit(f"run {run_number} did not gate:\n{done.stdout}\n{done.stderr}")


def settle(ledger: Path) -> list[dict[str, Any]]:
    """Fixed synthetic times and no commit, so the file is reproducible."""
    records = [json.loads(line) for line in ledger.read_text(encoding="utf-8").splitlines()]
    for index, record in enumerate(records):
        record["time"] = (START + dt.timedelta(days=index)).isoformat(timespec="seconds")
        record["commit"] = None
    return records


TABLE_HEAD = (
    "| run | added | suite (locked + corrected) | candidate | verdict | blocked by "
    "| pressure | survival | accepted / candidates | ε |",
    "|---|---|---|---|---|---|---|---|---|---|",
)


def table_rows(records: list[dict[str, Any]]) -> list[str]:
    """One Markdown row per record: the story next to what the plugin wrote."""
    rows = []
    for number, (record, run) in enumerate(zip(records, STORY, strict=True), start=1):
        pressure = record["pressure"]
        suite = pressure["constraints"]
        acceptance = pressure["acceptance"]
        if run.candidate is None:
            candidate, verdict = "baseline, `--hgd-samples=3 --hgd-no-cache`", "—"
        else:
            candidate = f"`{run.candidate.removeprefix('prompts/')}`"
            verdict = "accepted" if record["verdict"] == "pass" else "rejected"
        blocked = [
            pid.removeprefix("pairs/").replace(".hgd.yaml", "") for pid in record["regressed"]
        ]
        if len(blocked) > 3:
            blocked = [f"{len(blocked)} pairs: {blocked[0]}", "…"]
        cells = [
            str(number),
            " ".join(f"+{name}" for name in run.add),
            f"{suite['value']} ({suite['locked']} + {suite['corrected']})",
            candidate,
            verdict,
            ", ".join(blocked),
            f"{pressure['value']:.4f}",
            f"{pressure['survival']['value']:.4f}",
            f"{acceptance['accepted']} / {acceptance['candidates']}",
            f"{pressure['epsilon']['value']:.3f}",
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="hgd-ledger-example-") as tmp:
        workdir, ledger = Path(tmp) / "car_sales", Path(tmp) / "ledger.jsonl"
        prepare(workdir)
        for number, run in enumerate(STORY, start=1):
            add_conversations(workdir, run.add)
            run_gate(workdir, gate_args(run, ledger), number)
        records = settle(ledger)
    lines = (json.dumps(r, sort_keys=True, allow_nan=False) + "\n" for r in records)
    LEDGER.write_text("".join(lines), encoding="utf-8")
    table = table_rows(records)
    print("\n".join(table))
    print(f"wrote {len(records)} records to {LEDGER}")
    if README.is_file():
        text = README.read_text(encoding="utf-8")
        head, rest = text.split(TABLE[0], 1)
        tail = rest.split(TABLE[1], 1)[1]
        block = "\n".join([TABLE[0], *TABLE_HEAD, *table, TABLE[1]])
        README.write_text(head + block + tail, encoding="utf-8")
        print(f"updated the table in {README}")


if __name__ == "__main__":
    main()
