"""The shipped examples work as the README says: the quickstart gate and the hooks example."""

from __future__ import annotations

import os
import shlex
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


def _step(workflow: dict, job: str, name: str) -> str:
    (step,) = [s for s in workflow["jobs"][job]["steps"] if s.get("name") == name]
    return str(step["run"])


def test_the_ci_shard_workflow_runs_as_written(tmp_path: Path) -> None:
    """examples/ci/gate-shards.yml: a 4-shard matrix and a merge job. Its two `run:` steps,
    run here with the matrix values filled in, give the serial run's verdict on the car_sales
    example."""
    import yaml

    workflow = yaml.safe_load((EXAMPLES / "ci" / "gate-shards.yml").read_text(encoding="utf-8"))
    assert workflow["jobs"]["shard"]["strategy"]["matrix"]["shard"] == [1, 2, 3, 4]
    merge_job = workflow["jobs"]["merge"]
    assert merge_job["needs"] == "shard" and merge_job["if"] == "always()"
    gate, decide = _step(workflow, "shard", "gate shard"), _step(workflow, "merge", "one decision")
    folder = tmp_path / "car_sales"
    shutil.copytree(
        EXAMPLES / "car_sales", folder, ignore=shutil.ignore_patterns(".hgd", "ledger-example")
    )
    env = {
        **os.environ,
        "BASELINE": "prompts/baseline.txt",
        "PROMPT": "prompts/candidate_regresses.txt",
    }
    python = shlex.quote(sys.executable)
    for shard in (1, 2, 3, 4):
        script = gate.replace("${{ matrix.shard }}", str(shard))
        script = script.replace("pytest --hgd", f"{python} -m pytest -p no:cacheprovider --hgd")
        done = subprocess.run(
            ["bash", "-c", script], cwd=folder, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert (folder / f"partial-{shard}.json").is_file()
    script = decide.replace("hgd merge", f"{python} -m pytest_hgd merge")
    done = subprocess.run(
        ["bash", "-c", script], cwd=folder, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1, done.stdout + done.stderr  # the candidate regresses
    assert "verdict: FAIL (11 regressed; 5 rollout regressed)" in done.stdout
    assert "regressed" in (folder / "summary.md").read_text(encoding="utf-8")
