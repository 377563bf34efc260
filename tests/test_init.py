"""`hgd init`: a repository set up for the gate, `pytest --hgd` passing right after, and no
existing file overwritten or existing pytest configuration edited."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pytest_hgd.cli import main
from pytest_hgd.init import render_workflow, starter
from pytest_hgd.starter.hgd_agent import reply

ROOT = Path(__file__).resolve().parent.parent
WRITTEN = [
    "pytest.ini",
    "prompts/system.txt",
    "hgd_agent.py",
    "pairs/example.hgd.yaml",
    ".gitignore",
]


def init(repo: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["init", "--dir", str(repo), *args])
    out, err = capsys.readouterr()
    return code, out + err


def gate(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`pytest --hgd` in `repo`, as a user runs it there."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    command = [sys.executable, "-m", "pytest", "--hgd", "-p", "no:cacheprovider", *args]
    return subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=120)


def snapshot(repo: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(repo)): p.read_bytes()
        for p in sorted(repo.rglob("*"))
        if p.is_file() and ".hgd" not in p.parts
    }


def test_in_an_empty_repository_the_gate_then_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = init(tmp_path, capsys, "--ci", "github")
    assert code == 0, out
    for path in [*WRITTEN, ".github/workflows/hgd-gate.yml"]:
        assert f"wrote {path}: " in out
        assert (tmp_path / path).is_file()
    assert "next: " in out and "pytest --hgd" in out
    ini = (tmp_path / "pytest.ini").read_text()
    assert "hgd_agent = hgd_agent:reply\n" in ini and "hgd_prompt = prompts/system.txt\n" in ini
    assert ".hgd/\n" in (tmp_path / ".gitignore").read_text()
    assert (tmp_path / ".github/workflows/hgd-gate.yml").read_text() == render_workflow()
    done = gate(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout and "verdict: PASS" in done.stdout


def test_the_gate_catches_a_prompt_edit_with_the_stand_in_agent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The starter prompt's `Say:` lines drive the stand-in agent: dropping the one the example
    pair checks regresses it against the baseline."""
    assert init(tmp_path, capsys)[0] == 0
    prompt = tmp_path / "prompts/system.txt"
    (tmp_path / "baseline.txt").write_text(prompt.read_text())
    prompt.write_text(prompt.read_text().replace("Say: Thanks for getting in touch!\n", ""))
    done = gate(tmp_path, "--hgd-baseline=baseline.txt")
    assert done.returncode == 1, done.stdout
    assert "regressed  pairs/example.hgd.yaml::greeting" in done.stdout


def test_the_stand_in_agent_says_the_prompts_say_lines() -> None:
    pair = yaml.safe_load(starter("example.hgd.yaml"))["pairs"][0]
    messages = [{"role": "user", "content": pair["customer"]}]
    assert reply(starter("system.txt"), messages) == pair["reply"]
    assert reply("Be nice.", messages) == "Thanks for your message."  # any prompt: a pass


def test_running_it_twice_skips_everything_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert init(tmp_path, capsys, "--ci", "github")[0] == 0
    before = snapshot(tmp_path)
    code, out = init(tmp_path, capsys, "--ci", "github")
    assert code == 0
    assert "wrote" not in out and "appended" not in out
    assert out.count("  skipped ") == 6
    assert "skipped pytest.ini: already sets hgd_agent" in out
    assert "skipped hgd_agent.py: exists (hgd init never overwrites a file)" in out
    assert "nothing to do" in out
    assert snapshot(tmp_path) == before


def test_an_existing_prompt_and_gitignore_are_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "agent").mkdir()
    (tmp_path / "agent/system.txt").write_text("You are our real agent.\n")
    (tmp_path / ".gitignore").write_text("*.pyc")  # no final newline
    code, out = init(tmp_path, capsys, "--prompt", "agent/system.txt")
    assert code == 0
    assert "skipped agent/system.txt: exists" in out
    assert (tmp_path / "agent/system.txt").read_text() == "You are our real agent.\n"
    assert "appended to .gitignore: appended .hgd/ (an existing file" in out
    assert (tmp_path / ".gitignore").read_text().startswith("*.pyc\n# pytest-hgd")
    assert "hgd_prompt = agent/system.txt\n" in (tmp_path / "pytest.ini").read_text()
    assert not (tmp_path / "prompts").exists()
    done = gate(tmp_path)  # the stand-in agent thanks under any prompt
    assert done.returncode == 0, done.stdout


PYPROJECT = '[project]\nname = "shop-agent"\nversion = "1.0"\n\n[tool.ruff]\nline-length = 100'


def test_a_pyproject_without_a_pytest_section_gets_the_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    code, out = init(tmp_path, capsys)
    assert code == 0
    assert "appended to pyproject.toml: [tool.pytest.ini_options]" in out
    assert not (tmp_path / "pytest.ini").exists()
    text = (tmp_path / "pyproject.toml").read_text()
    assert text.startswith(PYPROJECT + "\n\n# pytest-hgd")
    assert 'hgd_agent = "hgd_agent:reply"\n' in text
    if sys.version_info >= (3, 11):
        import tomllib

        options = tomllib.loads(text)["tool"]["pytest"]["ini_options"]
        assert options == {"hgd_agent": "hgd_agent:reply", "hgd_prompt": "prompts/system.txt"}
    done = gate(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "configfile: pyproject.toml" in done.stdout
    code, out = init(tmp_path, capsys)
    assert "skipped pyproject.toml: already sets hgd_agent" in out


@pytest.mark.parametrize(
    ("name", "text", "key_line"),
    [
        ("pyproject.toml", PYPROJECT + '\n[tool.pytest.ini_options]\naddopts = "-q"\n',
         'hgd_agent = "hgd_agent:reply"'),
        ("pytest.ini", "[pytest]\naddopts = -q\n", "hgd_agent = hgd_agent:reply"),
        ("setup.cfg", "[metadata]\nname = x\n[tool:pytest]\naddopts = -q\n",
         "hgd_agent = hgd_agent:reply"),
        ("tox.ini", "[tox]\nenvlist = py\n[pytest]\naddopts = -q\n", "hgd_agent = hgd_agent:reply"),
    ],
)  # fmt: skip
def test_an_existing_pytest_configuration_is_not_edited(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str, key_line: str
) -> None:
    (tmp_path / name).write_text(text)
    code, out = init(tmp_path, capsys)
    assert code == 0
    assert (tmp_path / name).read_text() == text
    assert f"skipped {name}: is the pytest configuration (hgd init edits none); add these" in out
    assert f"      {key_line}\n" in out
    assert "      [" not in out  # the keys alone: pasting a second table header would break it
    assert f"next: add the keys above to {name}, then cd " in out
    assert "nothing to do" not in init(tmp_path, capsys)[1]  # the keys are still missing
    assert name == "pytest.ini" or not (tmp_path / "pytest.ini").exists()
    assert "wrote hgd_agent.py" in out


def test_a_setup_cfg_without_a_pytest_section_gets_a_pytest_ini(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "setup.cfg").write_text("[flake8]\nmax-line-length = 100\n")
    code, out = init(tmp_path, capsys)
    assert code == 0 and "wrote pytest.ini" in out
    assert (tmp_path / "setup.cfg").read_text() == "[flake8]\nmax-line-length = 100\n"


def test_dry_run_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    code, out = init(tmp_path, capsys, "--dry-run", "--ci", "github")
    assert code == 0
    assert "dry run: nothing written" in out
    assert "would have written pairs/example.hgd.yaml" in out
    assert "would have appended to pyproject.toml" in out
    assert snapshot(tmp_path) == {"pyproject.toml": PYPROJECT.encode()}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--prompt", "../outside.txt"], "--prompt '../outside.txt': expected a path inside"),
        (["--pairs", "my pairs"], "--pairs 'my pairs': expected a path inside"),
        (["--prompt", "/etc/passwd"], "--prompt '/etc/passwd': expected a path inside"),
    ],
)
def test_usage_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out = init(tmp_path, capsys, *args)
    assert code == 2 and message in out
    assert snapshot(tmp_path) == {}
    code, out = init(tmp_path / "missing", capsys)
    assert code == 2 and "is not a directory" in out


def test_an_absolute_prompt_inside_the_directory_is_made_relative(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = init(tmp_path, capsys, "--prompt", str(tmp_path / "p" / "agent.txt"))
    assert code == 0
    assert "hgd_prompt = p/agent.txt\n" in (tmp_path / "pytest.ini").read_text()


def test_the_example_workflow_is_what_init_writes() -> None:
    shipped = (ROOT / "examples/ci/hgd-gate.yml").read_text(encoding="utf-8")
    assert shipped == render_workflow()
    assert "@PROMPT@" not in shipped and "@PAIRS@" not in shipped


def test_the_pre_commit_hook() -> None:
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert hook["id"] == "hgd-gate" and hook["language"] == "python"
    assert hook["entry"] == "pytest --hgd -q" and hook["pass_filenames"] is False
    files = re.compile(hook["files"])  # pre-commit matches with re.search
    for path in ["pairs/call-1.hgd.yaml", "a/b/x.hgd.yml", "prompts/system.txt",
                 "agent/prompts/sales.md"]:  # fmt: skip
        assert files.search(path), path
    for path in ["README.md", "src/app.py", "pairs/x.hgd.yaml.bak", "myprompts/x.txt",
                 "hgd.yaml"]:  # fmt: skip
        assert not files.search(path), path
