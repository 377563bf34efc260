"""Plain data of the product: conversations, pairs, checks, replies and deltas (no pytest)."""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


class Outcome(str, enum.Enum):
    LEAD = "lead"
    NO_LEAD = "no_lead"


class Kind(str, enum.Enum):
    LOCKED = "locked"
    CORRECTED = "corrected"


class Delta(str, enum.Enum):
    KEPT = "kept"
    FIXED = "fixed"
    REGRESSED = "regressed"
    STILL_FAILING = "still_failing"
    NEW_PASS = "new_pass"
    NEW_FAIL = "new_fail"
    ERROR = "error"
    UNDECIDED = "undecided"  # left without enough evidence by --hgd-max-calls


class Role(str, enum.Enum):
    """Which prompt a reply was produced under."""

    BASELINE = "baseline"
    CANDIDATE = "candidate"


ALL_DELTAS: tuple[str, ...] = tuple(d.value for d in Delta)
# Worst first: the order reports list pairs in.
DELTAS_BY_SEVERITY: tuple[str, ...] = (
    "regressed", "error", "undecided", "new_fail", "still_failing", "fixed", "new_pass", "kept",
)  # fmt: skip
# Did the pair pass on the run's reference prompt (the baseline, else the candidate)?
PASSED_REFERENCE: dict[str, bool] = {
    "kept": True, "regressed": True, "new_pass": True,
    "fixed": False, "still_failing": False, "new_fail": False,
}  # fmt: skip


@dataclass(frozen=True)
class Turn:
    speaker: str  # "agent" | "customer"
    text: str

    def message(self) -> dict[str, str]:
        role = "assistant" if self.speaker == "agent" else "user"
        return {"role": role, "content": self.text}


@dataclass(frozen=True)
class Check:
    """One check on a reply: its type name, its argument as written, its line."""

    name: str
    arg: Any
    line: int | None = None


@dataclass(frozen=True)
class Pair:
    """One regression test: history, the customer's message, the recorded reply, checks."""

    path: str
    conversation: str
    outcome: Outcome
    id: str
    kind: Kind
    history: tuple[Turn, ...]
    customer: str
    reply: str | None
    checks: tuple[Check, ...]
    tags: tuple[str, ...]
    line: int | None = None
    retired: str | None = None
    review: str | None = None
    samples: int | None = None

    def content_hash(self) -> str:
        """sha256 of what the pair tests: history, message, reply and checks."""
        content = {
            "history": [[t.speaker, t.text] for t in self.history],
            "customer": self.customer,
            "reply": self.reply,
            "checks": [[c.name, c.arg] for c in self.checks],
        }
        blob = json.dumps(content, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def messages(self) -> list[dict[str, str]]:
        """The conversation in chat format, oldest first, ending with the customer's message."""
        return [turn.message() for turn in self.history] + [
            {"role": "user", "content": self.customer}
        ]


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    message: str


Usage = tuple[int, int]  # tokens of one agent call: (input, output)


class AgentReply(str):
    """A reply text that also says what the call cost (``usage``: input and output tokens),
    as the HTTP agent returns it; a str everywhere else."""

    usage: Usage | None

    def __new__(cls, text: str, usage: Usage | None = None) -> AgentReply:
        made = super().__new__(cls, text)
        made.usage = usage
        return made


def usage_of(value: object) -> Usage | None:
    """(input, output) tokens from a mapping or object with ``input_tokens`` and
    ``output_tokens`` (or OpenAI's ``prompt_tokens`` and ``completion_tokens``); None when
    either is missing or not a whole number >= 0."""

    def field(*names: str) -> int | None:
        for name in names:
            got = value.get(name) if isinstance(value, dict) else getattr(value, name, None)
            if isinstance(got, int) and not isinstance(got, bool) and got >= 0:
                return got
        return None

    tokens_in = field("input_tokens", "prompt_tokens")
    tokens_out = field("output_tokens", "completion_tokens")
    return None if tokens_in is None or tokens_out is None else (tokens_in, tokens_out)


@dataclass(frozen=True)
class Reply:
    """What one agent call produced: a reply text, or an error message; ``usage`` when the
    agent reported the call's tokens."""

    text: str | None
    error: str | None = None
    cached: bool = False
    usage: Usage | None = None


@dataclass(frozen=True)
class Evaluation:
    """One prompt's verdict on one pair: the replies of its samples and their check results."""

    replies: tuple[Reply, ...]
    results: tuple[tuple[CheckResult, ...], ...] = field(default=())

    @property
    def error(self) -> str | None:
        return next((r.error for r in self.replies if r.error is not None), None)

    @property
    def passes(self) -> int:
        return sum(1 for checks in self.results if all(c.passed for c in checks))

    @property
    def runs(self) -> int:
        return len(self.results)

    @property
    def passed(self) -> bool:
        return self.runs > 0 and self.passes == self.runs

    @property
    def fresh(self) -> tuple[int, int]:
        """(passes, runs) of the replies called in this run, not taken from the cache."""
        fresh = [
            all(c.passed for c in checks)
            for reply, checks in zip(self.replies, self.results, strict=False)
            if not reply.cached
        ]
        return sum(fresh), len(fresh)

    def first_failure(self) -> tuple[CheckResult, str] | None:
        """The first failed check and the reply it failed on."""
        for reply, checks in zip(self.replies, self.results, strict=False):
            for check in checks:
                if not check.passed:
                    return check, reply.text or ""
        return None


@dataclass(frozen=True)
class Conversation:
    """One pair file: its pairs, and whether (and with which final checks) it is rolled out."""

    path: str
    name: str
    pairs: tuple[Pair, ...]
    rollout: bool = False
    final: tuple[Check, ...] = ()
