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


def test_the_valley_example_is_a_valley(tmp_path: Path) -> None:
    """Every single-instruction edit, and every held-out split: check_valley.py says so."""
    folder = tmp_path / "valley"
    shutil.copytree(EXAMPLES / "valley", folder, ignore=shutil.ignore_patterns(".hgd"))
    done = subprocess.run([sys.executable, "check_valley.py"], cwd=folder, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("policy", ["strict", "budget:3"])
def test_the_valley_search_as_its_readme_says(tmp_path: Path, policy: str) -> None:
    import json

    from pytest_hgd.reports.report import validate

    done = run_example("valley", tmp_path, "--hgd-search=20", f"--hgd-search-policy={policy}",
                       "--hgd-report=report.json")  # fmt: skip
    assert done.returncode == 1  # the gate on the start prompt: its corrected pairs fail
    report = json.loads((tmp_path / "valley/report.json").read_text())
    validate(report)
    search = report["search"]
    start, best = search["start"], search["best"]
    assert search["evaluated"] == 20
    assert start["train"] == {"passed": 38, "total": 91}
    assert start["holdout"] == {"passed": 13, "total": 26}
    best_text = (tmp_path / "valley/.hgd/search/best.txt").read_text()
    start_text = (EXAMPLES / "valley/prompts/start.txt").read_text()
    if policy == "strict":  # every locked pair kept: it stays put
        assert search["best_is_start"] and best == start and best_text == start_text
        assert "kept the start prompt: none of 20 candidates met the strict policy" in done.stdout
        return
    assert best["train"] == {"passed": 76, "total": 91} and best["locked_regressed"] == 2
    assert best["holdout"]["passed"] > start["holdout"]["passed"]  # it generalises
    assert best_text == start_text.replace(
        "Never give prices or savings figures on the phone.\n", ""
    )
    assert "on the held-out files it passes 9 more (it generalises)" in done.stdout
    assert (
        "gate it: pytest --hgd -p no:cacheprovider --hgd-report=report.json "
        "--hgd-candidate=.hgd/search/best.txt --hgd-baseline=prompts/start.txt" in done.stdout
    )
