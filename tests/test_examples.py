"""The shipped examples work as the README says: the quickstart gate and the hooks example."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    folder = tmp_path / name
    shutil.copytree(
        EXAMPLES / name, folder, ignore=shutil.ignore_patterns(".hgd", "ledger-example")
    )
    command = [sys.executable, "-m", "pytest", "--hgd", "-p", "no:cacheprovider", *args]
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=120)


def test_car_sales_quickstart_passes(tmp_path: Path) -> None:
    done = run_example(
        "car_sales",
        tmp_path,
        "--hgd-baseline=prompts/baseline.txt",
        "--hgd-candidate=prompts/candidate_fixes.txt",
    )
    assert done.returncode == 0, done.stdout
    assert "deltas: 24 kept, 11 fixed" in done.stdout
    assert "verdict: PASS" in done.stdout


def test_car_sales_regressing_candidate_fails(tmp_path: Path) -> None:
    done = run_example(
        "car_sales",
        tmp_path,
        "--hgd-baseline=prompts/baseline.txt",
        "--hgd-candidate=prompts/candidate_regresses.txt",
    )
    assert done.returncode == 1
    assert "verdict: FAIL (11 regressed; 5 rollout regressed)" in done.stdout
    assert "regressed  pairs/call-1003.hgd.yaml::volta-range" in done.stdout


def test_car_sales_drifting_candidate_fails_only_its_rollout(tmp_path: Path) -> None:
    done = run_example(
        "car_sales",
        tmp_path,
        "--hgd-baseline=prompts/baseline.txt",
        "--hgd-candidate=prompts/candidate_drifts.txt",
    )
    assert done.returncode == 1
    assert "deltas: 24 kept, 11 fixed" in done.stdout  # every pair passes, teacher-forced
    assert "verdict: FAIL (1 rollout regressed)" in done.stdout
    assert (
        "pairs/call-1001.hgd.yaml::rollout): fails at final checks, "
        "final contains: missing 'drive the Summit'"
    ) in done.stdout


@pytest.mark.parametrize("example", ["hooks"])
def test_hooks_example_passes(tmp_path: Path, example: str) -> None:
    done = run_example(example, tmp_path)
    assert done.returncode == 0, done.stdout
    assert "3 passed" in done.stdout
