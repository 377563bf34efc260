"""``hgd init``: set an existing repository up for the prompt gate.

Writes, each only where no such file exists (it never overwrites one, and says what it
skipped): the pytest configuration's ``hgd_*`` keys (a new ``pytest.ini``, or appended to a
``pyproject.toml`` that has no pytest section; an existing pytest configuration is never
edited: the keys to add are printed instead), a starter prompt, a stand-in agent module
(``hgd_agent.py``, deterministic), one example pair file, the ``.hgd/`` line of
``.gitignore`` (appended when missing), and with ``--ci github`` the pre-merge workflow.
Afterwards ``pytest --hgd`` runs and passes.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_USAGE = 0, 2
AGENT_FILE = "hgd_agent.py"
WORKFLOW_FILE = ".github/workflows/hgd-gate.yml"
GITIGNORE_LINE = ".hgd/"
SAFE_PATH = re.compile(r"[A-Za-z0-9._/-]+")
PYTEST_INI_SECTION = {"tox.ini": "pytest", "setup.cfg": "tool:pytest"}


@dataclass(frozen=True)
class Planned:
    """One file ``hgd init`` writes (``write``), appends to (``append``) or leaves (``skip``)."""

    path: str  # relative to the directory, with forward slashes
    action: str
    text: str = ""
    what: str = ""  # what the file is, or why it is skipped
    extra: tuple[str, ...] = ()  # lines printed after it (the keys to add by hand)


def add_parser(commands: Any) -> None:
    """The ``init`` subcommand of ``hgd``."""
    parser = commands.add_parser(
        "init",
        help="set a repository up for the gate: pytest config, prompt, agent, example pair",
        description="Write what `pytest --hgd` needs into DIR: the hgd_* keys of the pytest "
        "configuration (a new pytest.ini, or appended to a pyproject.toml without a pytest "
        f"section), a starter prompt, a stand-in agent ({AGENT_FILE}: replace it with "
        "yours), an example pair file, the .hgd/ line of .gitignore and, with --ci github, "
        f"the pre-merge workflow ({WORKFLOW_FILE}). An existing file is never overwritten "
        "and an existing pytest configuration never edited: hgd init says what it skipped "
        "and prints the keys to add. Exit status: 0 done, 2 usage error.",
    )
    parser.add_argument(
        "--dir", metavar="DIR", type=Path, default=Path("."), help="the repository (default .)"
    )
    parser.add_argument(
        "--prompt",
        metavar="PATH",
        default="prompts/system.txt",
        help="the prompt file, relative to DIR (default prompts/system.txt; an existing one "
        "is kept)",
    )
    parser.add_argument(
        "--pairs", metavar="PATH", default="pairs", help="the pair files' directory (default pairs)"
    )
    parser.add_argument(
        "--ci", choices=["github"], help="also write the CI workflow of the pre-merge gate"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would be written; write nothing"
    )
    parser.set_defaults(handler=run_init)


def starter(name: str) -> str:
    """The text of one of the starter files shipped in ``pytest_hgd/starter/``."""
    return resources.files("pytest_hgd.starter").joinpath(name).read_text(encoding="utf-8")


def render_workflow(prompt: str = "prompts/system.txt", pairs: str = "pairs") -> str:
    """The pre-merge gate's GitHub Actions workflow for this prompt and pair directory."""
    return starter("gate.yml").replace("@PROMPT@", prompt).replace("@PAIRS@", pairs)


def config_keys(prompt: str) -> list[tuple[str, str, str]]:
    """The pytest configuration ``hgd init`` writes: (comment, key, value); a key starting
    with ``#`` is written commented out."""
    return [
        (
            "The agent, package.module:function, called as reply(prompt, messages) -> str.\n"
            f"{AGENT_FILE} is a deterministic stand-in: replace its body with a call to your "
            "model,\nor use the built-in OpenAI-compatible client: hgd_agent = openai:MODEL",
            "hgd_agent",
            "hgd_agent:reply",
        ),
        (
            "The prompt under change (the candidate); --hgd-candidate=PATH overrides it.",
            "hgd_prompt",
            prompt,
        ),
        (
            "The champion it is compared with; the pre-merge gate passes\n"
            f"--hgd-baseline=git:origin/main:{prompt} on the command line instead.",
            "# hgd_baseline",
            f"git:main:{prompt}",
        ),
    ]


def _comment(text: str) -> list[str]:
    return [f"# {line}" for line in text.splitlines()]


HEADER = [
    "# pytest-hgd: the regression gate of the agent's prompt (written by `hgd init`).",
    '# Run it with `pytest --hgd`; every option: the pytest-hgd README, "Options".',
]


def ini_text(prompt: str, section: str = "pytest") -> str:
    """The ini-file form of the keys (pytest.ini, tox.ini, setup.cfg)."""
    lines = [*HEADER, f"[{section}]"]
    for comment, key, value in config_keys(prompt):
        lines += [*_comment(comment), f"{key} = {value}"]
    return "\n".join(lines) + "\n"


def toml_text(prompt: str, table: str = "tool.pytest.ini_options") -> str:
    """The TOML form of the keys (``pyproject.toml``; ``pytest.toml`` with ``pytest``)."""
    lines = [*HEADER, f"[{table}]"]
    for comment, key, value in config_keys(prompt):
        lines += [*_comment(comment), f"{key} = {json.dumps(value)}"]
    return "\n".join(lines) + "\n"


def _existing_file(directory: Path, path: str, text: str, what: str) -> Planned:
    if (directory / path).exists() or (directory / path).is_symlink():
        return Planned(path, "skip", what="exists (hgd init never overwrites a file)")
    return Planned(path, "write", text, what)


def _pyproject_has_pytest(text: str) -> bool | None:
    """Whether the TOML text configures pytest; None when it does not parse."""
    try:
        tomllib: Any = importlib.import_module("tomllib")
    except ModuleNotFoundError:  # Python 3.10: look for the table's header
        return bool(
            re.search(r"(?m)^\s*(\[\s*tool\s*\.\s*pytest\b|tool\s*\.\s*pytest\s*[.=])", text)
        )
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None
    tool = data.get("tool")
    return isinstance(tool, dict) and "pytest" in tool


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def _configured(text: str) -> bool:
    return re.search(r"(?m)^\s*hgd_agent\s*=", text) is not None


CONFIG_FILES = (
    "pytest.toml",
    ".pytest.toml",
    "pytest.ini",
    ".pytest.ini",
    "pyproject.toml",
    "tox.ini",
    "setup.cfg",
)


def _keys_for(name: str, text: str, prompt: str) -> str | None:
    """The keys in the form ``name`` takes when it configures pytest, else None."""
    if name in ("pytest.toml", ".pytest.toml"):
        return toml_text(prompt, "pytest")
    if name in ("pytest.ini", ".pytest.ini"):  # pytest reads these even when empty
        return ini_text(prompt)
    if name == "pyproject.toml":
        return toml_text(prompt) if _pyproject_has_pytest(text) is not False else None
    section = PYTEST_INI_SECTION[name]
    found = re.search(rf"(?m)^\s*\[{re.escape(section)}\]", text)
    return ini_text(prompt, section) if found else None


def plan_config(directory: Path, prompt: str) -> Planned:
    """Where the ``hgd_*`` keys go: the pytest configuration pytest would read in
    ``directory`` is left alone (with the keys to add printed); without one, a
    ``pyproject.toml`` gets them appended, else a new ``pytest.ini`` holds them."""
    for name in CONFIG_FILES:
        path = directory / name
        if not path.is_file():
            continue
        text = _read(path)
        keys = _keys_for(name, text, prompt)
        if keys is None:
            continue
        extra = tuple(  # the keys alone: the file has its section already
            line
            for line in keys.splitlines()
            if not line.startswith(("# pytest-hgd", "[")) and line.strip()
        )
        if name == "pyproject.toml" and _pyproject_has_pytest(text) is None:
            return Planned(name, "skip", what="not valid TOML; add these keys:", extra=extra)
        if _configured(text):
            return Planned(name, "skip", what="already sets hgd_agent")
        what = (
            "is the pytest configuration (hgd init edits none); add these keys under its "
            "pytest section:"
        )
        return Planned(name, "skip", what=what, extra=extra)
    pyproject = directory / "pyproject.toml"
    if pyproject.is_file():
        keys = toml_text(prompt)
        if not _pyproject_has_pytest(f"{_read(pyproject)}\n{keys}"):  # e.g. an inline `tool`
            what = "the keys cannot be appended as a table; add them:"
            return Planned("pyproject.toml", "skip", what=what, extra=tuple(keys.splitlines()))
        what = "[tool.pytest.ini_options] with the hgd_* keys (it had no pytest section)"
        return Planned("pyproject.toml", "append", keys, what)
    return Planned("pytest.ini", "write", ini_text(prompt), "the hgd_* keys, commented")


def plan_gitignore(directory: Path) -> Planned:
    path = directory / ".gitignore"
    lines = ["# pytest-hgd: reply cache, ledger and reports (added by hgd init)", GITIGNORE_LINE]
    if not path.exists():
        return Planned(".gitignore", "write", "\n".join(lines) + "\n", "ignores .hgd/")
    text = _read(path)
    present = {line.strip() for line in text.splitlines()}
    if present & {".hgd", ".hgd/", "/.hgd", "/.hgd/"}:
        return Planned(".gitignore", "skip", what="already ignores .hgd/")
    block = ("\n" if text and not text.endswith("\n") else "") + "\n".join(lines) + "\n"
    what = "appended .hgd/ (an existing file: only the missing line was added)"
    return Planned(".gitignore", "append", block, what)


def plan(directory: Path, prompt: str, pairs: str, ci: str | None) -> list[Planned]:
    """Everything ``hgd init`` would do in ``directory``, in order."""
    files = [
        plan_config(directory, prompt),
        _existing_file(
            directory, prompt, starter("system.txt"), "a starter prompt: put yours here"
        ),
        _existing_file(
            directory,
            AGENT_FILE,
            starter("hgd_agent.py"),
            "a deterministic stand-in agent: replace it with yours",
        ),
        _existing_file(
            directory,
            f"{pairs}/example.hgd.yaml",
            starter("example.hgd.yaml"),
            "one example pair file",
        ),
        plan_gitignore(directory),
    ]
    if ci == "github":
        text = render_workflow(prompt, pairs)
        files.append(_existing_file(directory, WORKFLOW_FILE, text, "the pre-merge gate"))
    return files


def carry_out(directory: Path, planned: Planned) -> None:
    """Write or append one planned file; a new file is created exclusively (never replaced)."""
    path = directory / planned.path
    if planned.action == "write":
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8", newline="\n") as file:
            file.write(planned.text)
    elif planned.action == "append":
        with path.open("a", encoding="utf-8", newline="\n") as file:
            text = planned.text
            if planned.path == "pyproject.toml":
                text = ("\n" if path.read_bytes().endswith(b"\n") else "\n\n") + text
            file.write(text)


def _relative(directory: Path, option: str, value: str) -> str | None:
    """``value`` as a path relative to ``directory`` with forward slashes, or None (printed)."""
    path = Path(value)
    if path.is_absolute():
        try:
            path = path.resolve().relative_to(directory.resolve())
        except ValueError:
            path = Path("..")
    text = path.as_posix().strip("/")
    if ".." in path.parts or text in ("", ".") or not SAFE_PATH.fullmatch(text):
        print(
            f"hgd init: error: {option} {value!r}: expected a path inside {directory} of "
            "letters, digits, '.', '_', '-' and '/' (it goes into the ini file and the workflow)",
            file=sys.stderr,
        )
        return None
    return text


def _in_git_root(directory: Path) -> bool:
    return (directory / ".git").exists()


def run_init(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    if not directory.is_dir():
        print(f"hgd init: error: --dir {directory} is not a directory", file=sys.stderr)
        return EXIT_USAGE
    prompt = _relative(directory, "--prompt", args.prompt)
    pairs = _relative(directory, "--pairs", args.pairs)
    if prompt is None or pairs is None:
        return EXIT_USAGE
    planned = plan(directory, prompt, pairs, args.ci)
    print(f"hgd init: {directory.resolve()}{' (dry run: nothing written)' if args.dry_run else ''}")
    for item in planned:
        verb = {"write": "wrote", "append": "appended to", "skip": "skipped"}[item.action]
        if args.dry_run and item.action != "skip":
            verb = f"would have {'written' if item.action == 'write' else 'appended to'}"
        else:
            try:
                carry_out(directory, item)
            except OSError as exc:
                print(f"hgd init: error: {item.path}: {exc.strerror or exc}", file=sys.stderr)
                return EXIT_USAGE
        print(f"  {verb} {item.path}: {item.what}")
        for line in item.extra:
            print(f"      {line}")
    _next_steps(directory, args.ci, planned)
    return EXIT_OK


def _next_steps(directory: Path, ci: str | None, planned: list[Planned]) -> None:
    if ci == "github" and not _in_git_root(directory):
        print(
            f"note: GitHub runs workflows from the repository root's {WORKFLOW_FILE} only; "
            f"{directory} has no .git: move the file there and set its paths."
        )
    keys_to_add = [item.path for item in planned if item.action == "skip" and item.extra]
    if all(item.action == "skip" for item in planned) and not keys_to_add:
        print("nothing to do: every file exists")
    where = "" if directory.resolve() == Path.cwd().resolve() else f"cd {directory} && "
    first = f"add the keys above to {keys_to_add[0]}, then " if keys_to_add else ""
    print(f"next: {first}{where}pytest --hgd    (then replace {AGENT_FILE} with your agent)")
