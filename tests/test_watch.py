"""``hgd watch``: the gate again on every change of a prompt or pair file, driven by real file
changes with a deadline."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Gate, conversation

from pytest_hgd.watch import changes

DEADLINE = 30.0


def _start(path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest_hgd", "watch", "--interval", "0.1", *args,
         "--", "-p", "no:cacheprovider", "--hgd-candidate=p.txt", "--hgd-baseline=base.txt"],
        cwd=path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip


def _read_until(process: subprocess.Popen[str], marker: str) -> str:
    """The watch's output up to and including the first line holding ``marker``."""
    assert process.stdout is not None
    seen = []
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    process.kill()
    raise AssertionError(f"no {marker!r} within {DEADLINE} s:\n{''.join(seen)}")


def _suite(hgd: Gate) -> None:
    table = {"a": "hello", "b": "hello"}
    hgd.prompt("base.txt", table)
    hgd.prompt("p.txt", table)
    hgd.pairs("x.hgd.yaml", conversation(
        *({"id": q, "customer": q, "checks": [{"contains": "hello"}]} for q in "ab")
    ))  # fmt: skip


def test_an_edit_reruns_the_gate_and_says_what_changed(hgd: Gate) -> None:
    _suite(hgd)
    process = _start(hgd.path, "--max-runs", "3")
    first = _read_until(process, "hgd watch: watching")
    assert "hgd watch: run 1, exit status 0" in first
    assert "hgd watch: verdict PASS; 0 of 2 failing the gate" in first
    calls = len(hgd.calls())
    time.sleep(0.05)
    hgd.prompt("p.txt", {"a": "hello", "b": "bye"})  # b regresses
    second = _read_until(process, "hgd watch: watching")
    assert "hgd watch: run 2 (p.txt changed), exit status 1" in second
    assert "hgd watch: verdict PASS -> FAIL" in second
    assert "hgd watch:   regressed     x.hgd.yaml::b" in second
    assert len(hgd.calls()) == calls + 2  # only the changed prompt's replies were asked
    hgd.prompt("p.txt", {"a": "hello", "b": "hello"})
    third = _read_until(process, "newly passing (1):")
    assert "hgd watch: run 3 (p.txt changed), exit status 0" in third
    assert process.wait(timeout=DEADLINE) == 0  # --max-runs 3


def test_ctrl_c_stops_the_watch_cleanly(hgd: Gate) -> None:
    _suite(hgd)
    process = _start(hgd.path)
    _read_until(process, "hgd watch: watching")
    process.send_signal(signal.SIGINT)
    _read_until(process, "hgd watch: stopped")
    assert process.wait(timeout=DEADLINE) == 130
    leftovers = [p for p in (hgd.path / ".hgd").rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_a_signal_during_a_run_stops_the_run_whole_then_the_watch(hgd: Gate, signum: int) -> None:
    _suite(hgd)
    hgd.prompt("p.txt", {"a": "hello", "b": "SLEEP:0.5"})
    hgd.pairs("y.hgd.yaml", conversation(
        *({"id": f"s{i}", "customer": "b", "reply": "x", "history": [{"agent": str(i)}]}
          for i in range(20))
    ))  # fmt: skip
    process = _start(hgd.path)
    _read_until(process, "hgd watch: run 1: running the gate")
    end = time.monotonic() + DEADLINE
    while not any(c["messages"][-1]["content"] == "b" for c in hgd.calls()):
        assert time.monotonic() < end, "the run never called the agent"
        time.sleep(0.05)
    process.send_signal(signum)  # to the watch alone, as a terminal's Ctrl-C now is
    output = _read_until(process, "hgd watch: stopped")
    assert process.wait(timeout=DEADLINE) == 130
    assert "KeyboardInterrupt" in output  # the run's own last words: it stopped as on Ctrl-C
    assert "killed" not in output
    assert "hgd watch: run 1," not in output  # the interrupted run is not diffed
    assert not (hgd.path / ".hgd" / "watch" / "report.json").exists()
    assert not (hgd.path / ".hgd" / "ledger.jsonl").exists()
    assert not [p for p in hgd.path.rglob("*") if p.name.endswith(".tmp")]


def test_once_runs_the_gate_once_with_the_users_own_report(
    hgd: Gate, capfd: pytest.CaptureFixture[str]
) -> None:
    from pytest_hgd.cli import main

    _suite(hgd)
    args = ["--hgd-candidate", "p.txt", "--hgd-baseline=base.txt", "--hgd-report=mine.json"]
    status = main(
        ["watch", "--once", "--dir", str(hgd.path), "--", "-p", "no:cacheprovider", *args]
    )
    output = capfd.readouterr().out
    assert status == 0, output
    assert "hgd watch: run 1, exit status 0" in output
    assert "hgd watch: verdict PASS; 0 of 2 failing the gate" in output  # read from mine.json
    assert "hgd watch: watching" not in output
    assert hgd.report("mine.json")["verdict"] == "pass"
    assert not (hgd.path / ".hgd" / "watch" / "report.json").exists()


def test_changes_follow_the_verdict_rollouts_and_partial_runs() -> None:
    before = {"verdict": "pass", "pairs": [{"id": "a", "delta": "still_failing"}],
              "rollouts": [{"id": "c", "delta": "kept"}]}  # fmt: skip
    after = {"verdict": "fail", "pairs": [{"id": "a", "delta": "still_failing"}],
             "rollouts": [{"id": "c", "delta": "regressed"}]}  # fmt: skip
    assert changes(None, before) == ["verdict PASS; 0 of 2 failing the gate"]
    assert changes(before, after) == [
        "verdict PASS -> FAIL",
        "newly failing (1):",
        "  regressed     c (rollout)",
    ]
    strict = {**after, "strict": True}
    assert changes(None, strict) == ["verdict FAIL; 2 of 2 failing the gate"]
    partial = {**before, "partial": True}
    assert changes(before, partial)[0] == "verdict PASS -> NONE (a partial run)"


def test_changes_between_two_reports() -> None:
    before = {
        "verdict": "pass",
        "pairs": [{"id": "a", "delta": "kept"}, {"id": "b", "delta": "kept"}],
    }
    after = {
        "verdict": "fail",
        "pairs": [{"id": "a", "delta": "kept"}, {"id": "b", "delta": "regressed"}],
    }
    assert changes(None, before) == ["verdict PASS; 0 of 2 failing the gate"]
    assert changes(before, after) == [
        "verdict PASS -> FAIL",
        "newly failing (1):",
        "  regressed     b",
    ]
    assert changes(after, before)[1:] == ["newly passing (1):", "  kept          b"]
    assert changes(before, before)[1:] == ["no pair changed its outcome"]


def test_the_prompt_from_the_ini_file_is_watched(tmp_path: Path) -> None:
    from pytest_hgd.watch import watched_files

    (tmp_path / "pytest.ini").write_text("[pytest]\nhgd_prompt = prompts/p.txt\n")
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts/p.txt").write_text("x")
    (tmp_path / "pairs").mkdir()
    (tmp_path / "pairs/a.hgd.yaml").write_text("x")
    (tmp_path / ".hgd").mkdir()
    (tmp_path / ".hgd/b.hgd.yaml").write_text("x")
    found = {p.relative_to(tmp_path).as_posix() for p in watched_files(tmp_path, [], [])}
    assert found == {"prompts/p.txt", "pairs/a.hgd.yaml", "pytest.ini"}
    json.dumps(sorted(found))  # plain paths


def test_option_values_reads_both_spellings_and_stops_at_a_double_dash() -> None:
    from pytest_hgd.watch import option_values

    args = ["--hgd-candidate", "a.txt", "--hgd-baseline=git:main:p.txt", "--", "--hgd-candidate=b"]
    assert option_values(args, ("--hgd-candidate", "--hgd-baseline")) == ["a.txt", "git:main:p.txt"]


def test_a_pair_added_or_gone_is_counted() -> None:
    before = {"verdict": "pass", "pairs": [{"id": "a", "delta": "kept"}]}
    after = {"verdict": "pass", "pairs": [{"id": "b", "delta": "kept"}]}
    assert changes(before, after)[-1] == "pairs in the run: 1 added, 1 gone"


@pytest.mark.parametrize(
    "bad",
    [["--interval", "x"], ["--interval", "0"], ["--interval", "-1"], ["--interval", "nan"],
     ["--max-runs", "-1"], ["--max-runs", "two"], ["--once", "--max-runs", "2"]],
)  # fmt: skip
def test_bad_watch_options_are_usage_errors(bad: list[str]) -> None:
    from pytest_hgd.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["watch", *bad])
    assert stop.value.code == 2


def test_a_missing_directory_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_hgd.cli import main

    assert main(["watch", "--dir", str(tmp_path / "nowhere")]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_the_prompts_a_report_names_are_watched(tmp_path: Path) -> None:
    from pytest_hgd.watch import report_prompts

    report = {
        "prompts": {
            "candidate": {"source": "prompts/mine.txt", "sha256": "0"},
            "baseline": {"source": "git:main:prompts/system.txt", "sha256": "1"},
        }
    }
    assert report_prompts(tmp_path, report) == [tmp_path / "prompts/mine.txt"]
    assert report_prompts(tmp_path, {"prompts": {"candidate": None}}) == []
