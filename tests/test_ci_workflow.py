"""The GitHub Actions workflows: linted with actionlint, and the gate workflow's `run:` steps
run with bash, as a runner runs them, in a shallow clone of a fake `origin` (a bare repo with a
main branch and pull-request branches) with GITHUB_* variables, a recording `pytest` and a
fake `gh` that keeps the pull request's comments."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_hgd.cli import main

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = [ROOT / "examples/ci/hgd-gate.yml", ROOT / "examples/ci/gate-shards.yml"]
GATE = ROOT / "examples/ci/hgd-gate.yml"
MARKER = "<!-- pytest-hgd -->"
REPOSITORY = "acme/shop-agent"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_NOSYSTEM": "1",
}  # fmt: skip


def _actionlint() -> str:
    """The actionlint binary (the dev extra installs it beside the interpreter), or skip."""
    here = Path(sys.executable).parent
    found = next(
        (str(p) for p in (here / "actionlint", here / "actionlint.exe") if p.is_file()),
        shutil.which("actionlint"),
    )
    if found is None:
        pytest.skip("actionlint is not installed: pip install -e '.[dev]' installs it")
    try:
        subprocess.run([found, "-version"], capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"the actionlint binary {found} cannot run here: {exc}")
    return found


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_the_workflow_passes_actionlint(workflow: Path) -> None:
    done = subprocess.run(
        [_actionlint(), "-no-color", str(workflow)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def _workflow() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(GATE.read_text(encoding="utf-8"))
    return loaded


def _steps() -> dict[str, dict[str, Any]]:
    return {
        step.get("name", step.get("uses")): step for step in _workflow()["jobs"]["gate"]["steps"]
    }


def test_the_workflow_is_shaped_as_promised() -> None:
    workflow = _workflow()
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert "prompts/system.txt" in triggers["pull_request"]["paths"]
    assert {"pairs/**", "**/*.hgd.yaml"} <= set(triggers["pull_request"]["paths"])
    assert workflow["permissions"] == {"contents": "read", "pull-requests": "write"}
    steps = _steps()
    restore, save = steps["restore the reply cache"], steps["save the reply cache"]
    assert restore["uses"].startswith("actions/cache/restore@")
    assert restore["with"]["key"] == save["with"]["key"] == "${{ steps.baseline.outputs.key }}"
    assert "steps.baseline.outputs.restore-prefix" in restore["with"]["restore-keys"]
    assert save["if"].startswith("always()") and save["with"]["path"] == ".hgd/cache"
    assert steps["job summary"]["if"] == "always()"
    assert steps["pull-request comment"]["if"].startswith("always()")
    assert "if" not in steps["gate"]  # its exit status, the verdict, is the job's
    for step in steps.values():  # data reaches scripts through env: no expression injection
        assert "${{" not in step.get("run", "")


# ------------------------------------------------------------------ a runner, in miniature


FAKE_GH = r"""#!PYTHON
import json, os, shutil, subprocess, sys

args = sys.argv[1:]
with open(os.environ["FAKE_GH_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
state = os.environ["FAKE_GH_STATE"]
comments = json.load(open(state)) if os.path.exists(state) else []
assert args[0] == "api" and os.environ.get("GH_TOKEN"), args
method, fields, jq, path, rest = "GET", {}, None, None, args[1:]
while rest:
    arg = rest.pop(0)
    if arg == "--method":
        method = rest.pop(0)
    elif arg in ("-F", "--field"):
        key, value = rest.pop(0).split("=", 1)
        fields[key] = open(value[1:]).read() if value.startswith("@") else value
    elif arg == "--jq":
        jq = rest.pop(0)
    elif arg != "--paginate":
        path = arg
if method == "GET":
    page = json.dumps(comments)
    if jq and shutil.which("jq"):  # the workflow's own filter, as gh applies it
        sys.stdout.write(subprocess.run(["jq", "-r", jq], input=page, text=True,
                                        capture_output=True, check=True).stdout)
    else:
        for c in comments:
            if c["user"]["type"] == "Bot" and c["body"].startswith("<!-- pytest-hgd -->"):
                print(c["id"])
elif method == "POST":
    comments.append({"id": 100 + len(comments), "body": fields["body"],
                     "user": {"login": "github-actions[bot]", "type": "Bot"}})
elif method == "PATCH":
    (comment,) = [c for c in comments if str(c["id"]) == path.rsplit("/", 1)[1]]
    comment["body"] = fields["body"]
json.dump(comments, open(state, "w"))
"""

FAKE_PYTEST = r"""#!PYTHON
import json, os, sys

with open(os.environ["FAKE_PYTEST_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\n")
os.execv(sys.executable, [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *sys.argv[1:]])
"""


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV},
                          capture_output=True, text=True, check=True)  # fmt: skip
    return done.stdout.strip()


@dataclass
class Run:
    """One job run: each step's exit status, outputs and output, and the fakes' records."""

    status: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    pytest_calls: list[list[str]] = field(default_factory=list)
    gh_calls: list[list[str]] = field(default_factory=list)


def _expand(value: str, context: dict[str, str], outputs: dict[str, dict[str, str]]) -> str:
    def one(match: re.Match[str]) -> str:
        expression = match.group(1)
        step = re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", expression)
        return outputs[step.group(1)].get(step.group(2), "") if step else context[expression]

    return re.sub(r"\$\{\{\s*(.+?)\s*\}\}", one, value)


def _should_run(step: dict[str, Any], event: str, failed: bool) -> bool:
    known = {"always()": True, "success()": not failed,
             "github.event_name == 'pull_request'": event == "pull_request"}  # fmt: skip
    return all(known[part.strip()] for part in step.get("if", "success()").split("&&"))


def run_job(checkout: Path, event: str, tmp: Path, env: dict[str, str] | None = None) -> Run:
    """The gate job's `run:` steps (the install step and the `uses:` steps aside) as GitHub
    runs them: `bash --noprofile --norc -eo pipefail` on the script, in order, `if:` obeyed."""
    tmp.mkdir(parents=True, exist_ok=True)
    fakes = tmp / "bin"
    fakes.mkdir(exist_ok=True)
    for name, text in (("gh", FAKE_GH), ("pytest", FAKE_PYTEST)):
        (fakes / name).write_text(text.replace("PYTHON", sys.executable))
        (fakes / name).chmod(0o755)
    context = {"github.base_ref": "main" if event == "pull_request" else "",
               "github.event.pull_request.number": "7" if event == "pull_request" else "",
               "github.token": "fake-token"}  # fmt: skip
    job = _workflow()["jobs"]["gate"]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "GITHUB_"))}
    base.update(
        {k: _expand(str(v), context, {}) for k, v in job["env"].items()},
        PATH=f"{fakes}{os.pathsep}{os.environ['PATH']}", GITHUB_REPOSITORY=REPOSITORY,
        GITHUB_SHA=git(checkout, "rev-parse", "HEAD"), GITHUB_EVENT_NAME=event,
        GITHUB_SERVER_URL="https://github.com", GITHUB_RUN_ID="42",
        GITHUB_STEP_SUMMARY=str(tmp / "step-summary.md"),
        FAKE_GH_LOG=str(tmp / "gh.log"), FAKE_GH_STATE=str(tmp.parent / "comments.json"),
        FAKE_PYTEST_LOG=str(tmp / "pytest.log"), **(env or {}),
    )  # fmt: skip
    run = Run()
    for step in job["steps"]:
        name = step.get("name", "")
        if (
            "run" not in step
            or name == "install"
            or not _should_run(step, event, any(run.status.values()))
        ):
            continue
        (tmp / "output").write_text("")
        step_env = {
            k: _expand(str(v), context, run.outputs) for k, v in step.get("env", {}).items()
        }
        (tmp / "step.sh").write_text(step["run"])
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(tmp / "step.sh")],
            cwd=checkout, env={**base, **step_env, "GITHUB_OUTPUT": str(tmp / "output")},
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        run.status[name], run.logs[name] = done.returncode, done.stdout + done.stderr
        lines = (tmp / "output").read_text().splitlines()
        run.outputs[step.get("id", name)] = dict(line.split("=", 1) for line in lines)
    for path, calls in ((tmp / "pytest.log", run.pytest_calls), (tmp / "gh.log", run.gh_calls)):
        if path.exists():
            calls.extend(json.loads(line) for line in path.read_text().splitlines())
    if (tmp / "step-summary.md").exists():
        run.summary = (tmp / "step-summary.md").read_text()
    return run


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare `origin`: main set up by `hgd init --ci github`; `feature` changes the prompt
    (the gate passes) and adds prompts/new.txt; `regressed`, on top, drops the line the
    example pair checks (the gate fails)."""
    root = tmp_path_factory.mktemp("ci")
    bare, work = root / "origin.git", root / "work"
    subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=main", str(bare)], check=True)
    work.mkdir()
    git(work, "init", "-q", "--initial-branch=main")
    assert main(["init", "--dir", str(work), "--ci", "github"]) == 0
    git(work, "add", "-A")
    git(work, "commit", "-qm", "hgd init")
    git(work, "remote", "add", "origin", bare.as_uri())
    git(work, "push", "-q", "origin", "main")
    prompt = work / "prompts/system.txt"
    git(work, "checkout", "-qb", "feature")
    prompt.write_text(prompt.read_text() + "Say: Have a great day!\n")
    (work / "prompts/new.txt").write_text("A prompt the base branch does not have.\n")
    git(work, "commit", "-qam", "a friendlier goodbye")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "a new prompt")
    git(work, "checkout", "-qb", "regressed")
    prompt.write_text(prompt.read_text().replace("Say: Thanks for getting in touch!\n", ""))
    git(work, "commit", "-qam", "no more thanks")
    git(work, "push", "-q", "origin", "feature", "regressed")
    return bare


def checkout(origin: Path, branch: str, dest: Path) -> Path:
    """What actions/checkout leaves: a one-commit-deep clone of the branch."""
    subprocess.run(["git", "clone", "-q", "--depth=1", "--branch", branch, origin.as_uri(),
                    str(dest)], check=True, env={**os.environ, **GIT_ENV})  # fmt: skip
    return dest


def _short_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _main_prompt(origin: Path) -> str:
    return git(origin, "show", "main:prompts/system.txt") + "\n"


def _bot_comments(tmp: Path) -> list[dict[str, Any]]:
    comments = json.loads((tmp / "comments.json").read_text())
    return [c for c in comments if c["user"]["type"] == "Bot"]


def test_a_pull_request_is_gated_against_its_base_with_one_comment(
    origin: Path, tmp_path: Path
) -> None:
    human = {"id": 5, "user": {"login": "alice", "type": "User"}, "body": f"{MARKER} quoted"}
    (tmp_path / "comments.json").write_text(json.dumps([human]))

    passing = run_job(checkout(origin, "feature", tmp_path / "c1"), "pull_request", tmp_path / "r1")
    assert passing.status == {
        "baseline": 0,
        "gate": 0,
        "job summary": 0,
        "pull-request comment": 0,
    }, passing.logs
    (call,) = passing.pytest_calls
    assert "--hgd-baseline=git:origin/main:prompts/system.txt" in call
    assert "--hgd-candidate=prompts/system.txt" in call and call[-1] == "pairs"
    sha = git(tmp_path / "c1", "rev-parse", "HEAD")
    assert passing.outputs["baseline"] == {
        "spec": "git:origin/main:prompts/system.txt",
        "key": f"hgd-replies-{_short_sha256(_main_prompt(origin))}-{sha}",
        "restore-prefix": f"hgd-replies-{_short_sha256(_main_prompt(origin))}-",
    }
    assert "## ✅ HGD gate: pass" in passing.summary
    assert [c[:3] for c in passing.gh_calls] == [
        ["api", f"repos/{REPOSITORY}/issues/7/comments", "--paginate"],
        ["api", "--method", "POST"],
    ]
    (posted,) = _bot_comments(tmp_path)
    assert posted["body"].startswith(MARKER + "\n## ✅ HGD gate: pass")

    failing = run_job(
        checkout(origin, "regressed", tmp_path / "c2"), "pull_request", tmp_path / "r2"
    )
    assert failing.status == {
        "baseline": 0,
        "gate": 1,
        "job summary": 0,
        "pull-request comment": 0,
    }, failing.logs
    assert "verdict: FAIL (1 regressed)" in failing.logs["gate"]
    assert "HGD gate: fail" in failing.summary and "greeting" in failing.summary
    assert failing.gh_calls[1][:4] == [
        "api",
        "--method",
        "PATCH",
        f"repos/{REPOSITORY}/issues/comments/{posted['id']}",
    ]
    (updated,) = _bot_comments(tmp_path)  # the same one comment, edited
    assert updated["id"] == posted["id"] and "HGD gate: fail" in updated["body"]
    comments = json.loads((tmp_path / "comments.json").read_text())
    assert human in comments and len(comments) == 2


def test_a_push_to_main_caches_the_replies_of_the_next_baseline(
    origin: Path, tmp_path: Path
) -> None:
    """On a push, the pushed prompt is both sides (so the run costs one call per pair), and its
    cache key is the one the next pull requests compute for their baseline."""
    run = run_job(checkout(origin, "main", tmp_path / "c"), "push", tmp_path / "r")
    assert run.status == {"baseline": 0, "gate": 0, "job summary": 0}, run.logs
    assert run.outputs["baseline"]["spec"] == "prompts/system.txt"
    assert run.outputs["baseline"]["restore-prefix"] == (
        f"hgd-replies-{_short_sha256(_main_prompt(origin))}-"
    )
    assert "--hgd-baseline=prompts/system.txt" in run.pytest_calls[0]
    assert run.gh_calls == [] and "HGD gate: pass" in run.summary


def test_a_base_branch_without_the_prompt_gates_without_a_baseline(
    origin: Path, tmp_path: Path
) -> None:
    run = run_job(checkout(origin, "feature", tmp_path / "c"), "pull_request", tmp_path / "r",
                  env={"PROMPT": "prompts/new.txt"})  # fmt: skip
    assert run.status["gate"] == 0, run.logs
    assert run.outputs["baseline"]["spec"] == ""
    assert run.outputs["baseline"]["restore-prefix"] == "hgd-replies-none-"
    assert "::notice::prompts/new.txt is not on origin/main" in run.logs["baseline"]
    assert not any(arg.startswith("--hgd-baseline") for arg in run.pytest_calls[0])


def test_a_gate_that_does_not_finish_says_so_in_its_comment(origin: Path, tmp_path: Path) -> None:
    run = run_job(checkout(origin, "feature", tmp_path / "c"), "pull_request", tmp_path / "r",
                  env={"PAIRS": "no-such-dir"})  # fmt: skip
    assert run.status["gate"] != 0
    assert "wrote no summary" in run.summary
    (comment,) = _bot_comments(tmp_path)
    assert comment["body"].startswith(MARKER + "\n## HGD gate: no verdict")
    assert "https://github.com/acme/shop-agent/actions/runs/42" in comment["body"]
