"""Prompt sources: a file path, or ``git:REV:PATH`` (the file as of a git revision)."""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path


class PromptError(Exception):
    """A prompt source cannot be read; the message says which and why."""


@dataclass(frozen=True)
class Prompt:
    """A prompt's text, where it came from, and its hash."""

    source: str
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def load_prompt(spec: str, base: Path) -> Prompt:
    """Read ``PATH`` (relative to ``base``) or ``git:REV:PATH`` (run in ``base``)."""
    if spec.startswith("git:"):
        rev, sep, path = spec[4:].partition(":")
        if not sep or not rev or not path:
            raise PromptError(
                f"{spec!r} is not of the form git:REV:PATH (e.g. git:main:prompt.txt)"
            )
        return Prompt(spec, _git_show(rev, path, base, spec))
    file = Path(spec) if Path(spec).is_absolute() else base / spec
    try:
        return Prompt(spec, file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PromptError(f"prompt file {str(file)!r} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptError(f"prompt file {str(file)!r} cannot be read: {exc}") from exc


def _git_show(rev: str, path: str, base: Path, spec: str) -> str:
    try:
        verify = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
            cwd=base,
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError as exc:
        raise PromptError(f"{spec!r} needs git, which is not installed") from exc
    if verify.returncode != 0:
        stderr = verify.stderr.strip()
        if "not a git repository" in stderr:
            raise PromptError(f"{spec!r}: {str(base)!r} is not inside a git repository")
        raise PromptError(f"{spec!r}: unknown git revision {rev!r}")
    shown = subprocess.run(
        ["git", "show", f"{rev}:{path}"], cwd=base, capture_output=True, check=False
    )
    if shown.returncode != 0:
        raise PromptError(
            f"{spec!r}: no file {path!r} at revision {rev!r} "
            "(paths are relative to the repository root)"
        )
    try:
        return shown.stdout.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PromptError(f"{spec!r} is not UTF-8 text") from exc


def git_commit(directory: Path) -> str | None:
    """The HEAD commit of the repository holding ``directory``, or None."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None
