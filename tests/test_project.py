"""The project's own promises about its packaging and its tests: every package the code imports
is declared, CI's floors job pins exactly the declared minimums, and the tests run on any
supported pytest without an activated virtualenv."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest itself depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
TESTS = sorted((ROOT / "tests").glob("*.py"))


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _floor(requirement: str) -> str | None:
    found = re.search(r">=\s*([0-9][0-9.]*)", requirement)
    return found.group(1) if found else None


def _release(version: str) -> tuple[int, ...]:
    parts = [int(part) for part in version.split(".")]
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def _project() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        project: dict[str, object] = tomllib.load(file)["project"]
    return project


def _runtime_requirements() -> list[str]:
    requirements = _project()["dependencies"]
    assert isinstance(requirements, list)
    return [str(r) for r in requirements]


def _imported_top_level_names(folder: Path) -> set[str]:
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_every_package_the_code_imports_is_a_declared_dependency() -> None:
    third_party = _imported_top_level_names(ROOT / "pytest_hgd") - set(sys.stdlib_module_names)
    third_party.discard("pytest_hgd")
    distributions = importlib.metadata.packages_distributions()
    # Python 3.10 maps only distributions with a top_level.txt: else the module names its own.
    imported = {_canonical(distributions.get(name, [name])[0]) for name in third_party}
    declared = {_canonical(_name(r)) for r in _runtime_requirements()}
    assert imported - declared == set(), "add these to [project] dependencies in pyproject.toml"
    assert all(_floor(r) for r in _runtime_requirements()), "every dependency needs a floor"


def test_the_ci_floors_job_pins_every_declared_minimum() -> None:
    optional = _project()["optional-dependencies"]
    assert isinstance(optional, dict)
    # The dev tools the tests need; linters and type checkers run in the newest-releases job.
    test_tools = [r for r in optional["dev"] if _name(r) in {"pytest-xdist", "hypothesis"}]
    floors = {_canonical(_name(r)): _floor(r) for r in [*_runtime_requirements(), *test_tools]}
    pins = {}
    for line in (ROOT / ".ci" / "min-versions.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[_canonical(name.strip())] = version.strip()
    for name, floor in floors.items():
        assert name in pins, f".ci/min-versions.txt does not pin {name}"
        assert floor is not None and _release(pins[name]) == _release(floor), (name, floor)


def _calls(path: Path) -> list[ast.Call]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def test_no_test_runs_a_bare_python_or_console_script_from_path() -> None:
    # A bare "python" is whichever interpreter PATH finds first: without the virtualenv
    # activated, not the one the tests (and the plugin) are installed in. Use sys.executable.
    bare = {"python", "python3", "pytest", "hgd"}
    found = []
    for path in TESTS:
        for call in _calls(path):
            func = call.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called not in {"run", "Popen", "check_output", "check_call", "call", "popen"}:
                continue
            first: ast.expr | None = call.args[0] if call.args else None
            if isinstance(first, (ast.List, ast.Tuple)) and first.elts:
                first = first.elts[0]
            if isinstance(first, ast.Constant) and first.value in bare:
                found.append(f"{path.name}:{call.lineno}")
    assert found == []


def test_no_test_module_defines_a_function_pytest_takes_for_set_up() -> None:
    # pytest 7.4 and 8.0 call a module-level `setup` / `teardown` around every test of the module.
    found = [
        f"{path.name}:{node.lineno}"
        for path in TESTS
        for node in ast.parse(path.read_text(encoding="utf-8")).body
        if isinstance(node, ast.FunctionDef) and node.name in {"setup", "teardown"}
    ]
    assert found == []


# The layers, top to bottom: a module may import only from its own layer and those below
# it. `plugin` is the pytest glue, the only layer that imports pytest; `cli` is the `hgd`
# command. Nothing imports upwards, and `core` (decisions) imports no other layer.
LAYERS = {
    "plugin": 6,
    "cli": 6,
    "run": 5,
    "agents": 4,
    "suite": 3,
    "reports": 3,
    "storage": 2,
    "core": 1,
}


def _modules() -> list[tuple[str, Path]]:
    """(dotted name, path) of every module of the package."""
    package = ROOT / "pytest_hgd"
    out = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out.append((name, path))
    return out


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_imports_only_point_down_the_layers() -> None:
    wrong = []
    for name, path in _modules():
        own = _layer(name)
        if own is None:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                wrong.append(f"{name}: relative import (write pytest_hgd.LAYER.module)")
            targets = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            for target in targets:
                other = _layer(target)
                if other is not None and other != own and LAYERS[other] >= LAYERS[own]:
                    wrong.append(f"{name} imports {target}: {other} is not below {own}")
    assert wrong == []
    assert {_layer(name) for name, _ in _modules()} >= set(LAYERS) - {"cli"}


NO_PYTEST = """
import importlib, importlib.abc, sys

class NoPytest(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pytest", "_pytest"):
            raise ImportError("pytest is not importable here")
        return None

sys.meta_path.insert(0, NoPytest())
for name in sys.argv[1:]:
    importlib.import_module(name)
print("ok")
"""


def test_only_the_pytest_glue_imports_pytest() -> None:
    """Everything outside `pytest_hgd.plugin` (the suite, agents and their worker processes,
    decisions, the run, reports, the `hgd` command) imports with pytest made unimportable."""
    modules = [
        name for name, _ in _modules() if _layer(name) != "plugin" and not name.endswith("__main__")
    ]
    assert "pytest_hgd.agents.http_process" in modules and "pytest_hgd.cli" in modules
    done = subprocess.run(
        [sys.executable, "-c", NO_PYTEST, *modules],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_modules_and_functions_stay_small_or_say_why() -> None:
    """A module over 400 lines, or a function over 60, is asking to be split: it must say
    why not in a comment (``# long module: ...`` at the top, ``# long: ...`` as the
    function's first line)."""
    wrong = []
    for name, path in _modules():
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        if len(lines) > 400 and "# long module:" not in "\n".join(lines[:20]):
            wrong.append(f"{name}: {len(lines)} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                head = "\n".join(lines[node.lineno - 1 : node.body[0].lineno])
                if size > 60 and "# long:" not in head:
                    wrong.append(f"{name}.{node.name}: {size} lines")
    assert wrong == []
