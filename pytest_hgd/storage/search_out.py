"""What a candidate search leaves behind in ``--hgd-search-out``: ``best.txt`` (the best
prompt so far) and ``log.jsonl`` (one line per evaluated prompt).

Each file is replaced atomically at every change, so a search stopped at any moment (Ctrl-C,
a CI timeout) leaves both whole: the best prompt found so far and every line logged so far.
A new search starts a new log.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_hgd.storage.cache import write_atomic


class SearchOutput:
    """The search's directory; ``best`` and ``log`` write through at once."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.lines: list[str] = []

    @property
    def best_path(self) -> Path:
        return self.directory / "best.txt"

    @property
    def log_path(self) -> Path:
        return self.directory / "log.jsonl"

    def best(self, prompt: str) -> None:
        write_atomic(self.best_path, prompt)

    def log(self, entry: Mapping[str, Any]) -> None:
        self.lines.append(json.dumps(entry, ensure_ascii=False, sort_keys=True))
        write_atomic(self.log_path, "\n".join(self.lines) + "\n")


def read_log(path: Path) -> list[dict[str, Any]]:
    """The entries of a search log (for tests and tools)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
