"""Shared helpers: write an agent module, prompts and pair files into a pytester dir."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest_plugins = ["pytester"]

# The test agent: the prompt is a JSON object mapping a customer message to the reply.
# Special replies: "CYCLE:a,b,c" answers a, b, c, a, ... on repeated calls; "RAISE" raises, "SLEEP:<s>" sleeps, "NONE" returns None. Every call is
# appended to calls.jsonl beside the module, so tests can count calls and see messages.
AGENT_SOURCE = """
import json, pathlib, threading, time
LOG = pathlib.Path(__file__).with_name("calls.jsonl")
_lock = threading.Lock()
_seen = {}

def _answer(prompt, messages):
    with _lock, LOG.open("a", encoding="utf-8") as log:
        log.write(json.dumps({"prompt": prompt, "messages": messages}) + "\\n")
    table = json.loads(prompt)
    answer = table.get(messages[-1]["content"], table.get("*", "no idea"))
    if answer.startswith("CYCLE:"):  # a stochastic agent with known pass counts
        options = answer[len("CYCLE:"):].split(",")
        with _lock:
            key = (prompt, messages[-1]["content"])
            _seen[key] = _seen.get(key, -1) + 1
            return options[_seen[key] % len(options)]
    if answer == "RAISE":
        raise RuntimeError("the agent broke")
    if answer == "NONE":
        return None
    if answer.startswith("SLEEP:"):
        time.sleep(float(answer.split(":")[1]))
        return "slept"
    return answer

def reply(prompt, messages):
    return _answer(prompt, messages)

async def areply(prompt, messages):
    return _answer(prompt, messages)
"""


class Gate:
    """A temp project for pytest-hgd: agent, prompts, pair files; runs pytest --hgd on it."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        self.path = pytester.path
        pytester.makepyfile(hgd_agent=AGENT_SOURCE)
        pytester.makeini("[pytest]\nhgd_agent = hgd_agent:reply\n")

    def prompt(self, name: str, table: dict[str, str]) -> str:
        (self.path / name).write_text(json.dumps(table), encoding="utf-8")
        return name

    def pairs(self, name: str, document: dict[str, Any] | str) -> Path:
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        text = document if isinstance(document, str) else yaml.safe_dump(document, sort_keys=False)
        path.write_text(text, encoding="utf-8")
        return path

    def calls(self) -> list[dict[str, Any]]:
        log = self.path / "calls.jsonl"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]

    def reset_calls(self) -> None:
        (self.path / "calls.jsonl").unlink(missing_ok=True)

    def run(self, *args: str) -> pytest.RunResult:
        return self.pytester.runpytest("--hgd", "-p", "no:cacheprovider", *args)

    def run_subprocess(self, *args: str) -> pytest.RunResult:
        """In a fresh interpreter: for HTTP runs, where httpx's lazily imported modules must
        not be swapped by pytester's in-process module snapshot between runs."""
        return self.pytester.runpytest_subprocess("--hgd", "-p", "no:cacheprovider", *args)

    def start(self, *args: str) -> subprocess.Popen[str]:
        """``python -m pytest --hgd`` in the background, output (with stderr) on a pipe.

        A shell without job control starts background jobs with SIGINT ignored, and Python
        then never turns it into KeyboardInterrupt: the run gets the default, as from a
        terminal."""
        return subprocess.Popen(
            [sys.executable, "-m", "pytest", "--hgd", "-p", "no:cacheprovider", *args],
            cwd=self.path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )

    def report(self, name: str = "report.json") -> dict[str, Any]:
        from pytest_hgd.reports.report import validate

        data: dict[str, Any] = json.loads((self.path / name).read_text(encoding="utf-8"))
        validate(data)
        return data


@pytest.fixture
def hgd(pytester: pytest.Pytester) -> Gate:
    return Gate(pytester)


def conversation(*pairs: dict[str, Any], outcome: str = "lead", **extra: Any) -> dict[str, Any]:
    return {"outcome": outcome, **extra, "pairs": list(pairs)}
