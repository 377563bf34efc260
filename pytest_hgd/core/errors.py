"""Error types shared across pytest-hgd modules (no pytest import)."""

from __future__ import annotations


class AgentError(Exception):
    """An agent call failed: raised, timed out, or returned something that is not a reply.

    The message is shown on the item's error report, so it must never contain a secret.
    """


class PairFileError(Exception):
    """A pair file is malformed: carries the path, the line, the problem and a hint."""

    def __init__(self, path: str, line: int | None, problem: str, hint: str = "") -> None:
        self.path = path
        self.line = line
        self.problem = problem
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        text = f"{where}: {self.problem}"
        if self.hint:
            text += f" Hint: {self.hint}"
        return text


class AgentExit(Exception):
    """SystemExit, KeyboardInterrupt or CancelledError raised by the agent's own code (not a
    Ctrl-C, nor the gate's own cancelling), carried as an ordinary exception."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(repr(original))
        self.original = original
