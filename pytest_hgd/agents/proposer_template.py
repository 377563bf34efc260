"""What the LLM proposer asks and how its answer is read (pure: no I/O but `load_template`).

The instruction is a `string.Template` with three placeholders: ``$prompt`` (the prompt to
rewrite, required), ``$failures`` (a sample of the pairs it fails, rendered as text) and
``$n`` (how many rewrites to ask for). A literal dollar sign is written ``$$``.
The default is `DEFAULT_TEMPLATE`, quoted verbatim in docs/proposer.md.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_TEMPLATE",
    "PLACEHOLDERS",
    "ProposerTemplateError",
    "load_template",
    "parse_prompts",
    "render_failures",
    "render_request",
    "template_problem",
]

PLACEHOLDERS = ("prompt", "failures", "n")

DEFAULT_TEMPLATE = """\
You improve the system prompt of a customer-service agent.

The agent answers customers under this system prompt:

<prompt>
$prompt
</prompt>

Under this prompt the agent fails the conversations below. Each shows the conversation so
far, the reply the agent gave, the reply on record (when there is one) and the checks the
agent's reply failed.

$failures

Write $n rewritten versions of the system prompt. Each one must:
- fix as many of these failures as it can, by stating the rule or fact they show is
  missing or wrong, not by quoting these conversations;
- keep every instruction of the prompt that the failures do not contradict: the agent
  already handles many other conversations correctly under it;
- be a complete system prompt, ready to use as it is.
Make the versions differ from one another in how they fix the failures.

Answer with one JSON object and nothing else:
{"prompts": ["<rewritten prompt 1>", "<rewritten prompt 2>"]}
"""

NO_FAILURES = "(none shown)"
_CLIPPED = " […]"
_RECORDED_LABEL = {
    "locked": "Reply on record (it passed before; keep this behaviour)",
    "corrected": "Corrected reply on record (what the agent should say)",
}
_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n(.*?)```", re.DOTALL)


class ProposerTemplateError(ValueError):
    """A proposer template that cannot be used: names the file (when there is one) and the
    problem."""

    def __init__(self, source: str, problem: str) -> None:
        self.source = source
        self.problem = problem
        super().__init__(f"{source}: {problem}")


def template_problem(text: str) -> str | None:
    """What is wrong with ``text`` as a proposer template, or None when it can be used: a
    ``$`` that starts no placeholder, a placeholder other than `PLACEHOLDERS`, no
    ``$prompt``. (``Template.get_identifiers`` is Python 3.11+; this reads its pattern.)"""
    template = string.Template(text)
    found: set[str] = set()
    for match in template.pattern.finditer(text):
        name = match.group("named") or match.group("braced")
        if name is not None:
            if name not in PLACEHOLDERS:
                known = ", ".join(f"${p}" for p in PLACEHOLDERS)
                line = text.count("\n", 0, match.start()) + 1
                return (
                    f"line {line}: unknown placeholder ${name} (known: {known}; "
                    "write $$ for a literal dollar sign)"
                )
            found.add(name)
        elif match.group("invalid") is not None:
            line = text.count("\n", 0, match.start()) + 1
            return f"line {line}: a $ that starts no placeholder (write $$ for a dollar sign)"
    if "prompt" not in found:
        return "the template has no $prompt placeholder: the proposer must see the prompt"
    return None


def load_template(path: str | Path) -> str:
    """The template text in the file at ``path``; `ProposerTemplateError` naming the file
    when it cannot be read, is not UTF-8, or is not a usable template."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProposerTemplateError(source, "no such proposer template file") from None
    except UnicodeDecodeError as exc:
        raise ProposerTemplateError(source, f"not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise ProposerTemplateError(source, f"cannot be read: {exc.strerror or exc}") from None
    problem = template_problem(text)
    if problem is not None:
        raise ProposerTemplateError(source, problem)
    return text


def clip(text: str, limit: int) -> str:
    """``text`` stripped and cut to at most ``limit`` characters, marked when cut."""
    text = text.strip()
    if len(text) <= limit:
        return text
    keep = max(0, limit - len(_CLIPPED))
    return text[:keep].rstrip() + _CLIPPED


def _indented(text: str) -> str:
    return "\n".join("    " + line if line else "" for line in text.splitlines()) or "    "


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def render_failure(
    number: int, failure: Mapping[str, Any], max_chars: int, max_messages: int
) -> str:
    """One failure as the proposer sees it: every text cut to ``max_chars``, only the last
    ``max_messages`` messages of the conversation."""
    kind = str(failure.get("kind", ""))
    head = f"### Failure {number}: pair {failure.get('id', '?')}" + (f" ({kind})" if kind else "")
    lines = [head, "Conversation:"]
    messages = [m for m in failure.get("messages") or [] if isinstance(m, Mapping)]
    if len(messages) > max_messages:
        left_out = len(messages) - max_messages
        lines.append(f"    ({left_out} earlier message{'s' if left_out != 1 else ''} left out)")
        messages = messages[-max_messages:]
    for message in messages:
        role = str(message.get("role", "?"))
        lines.append(_indented(f"{role}: {clip(_text(message.get('content', '')), max_chars)}"))
    lines += ["The agent's reply under the prompt:"]
    lines.append(_indented(clip(_text(failure.get("reply") or ""), max_chars)))
    recorded = failure.get("recorded")
    if recorded:
        lines.append(_RECORDED_LABEL.get(kind, "Reply on record") + ":")
        lines.append(_indented(clip(_text(recorded), max_chars)))
    problems = [clip(_text(p), max_chars) for p in failure.get("problems") or []]
    lines.append("Failed checks:")
    lines += [f"    - {p}" for p in problems] or ["    (none given)"]
    return "\n".join(lines)


def render_failures(
    failures: Sequence[Mapping[str, Any]], max_chars: int = 400, max_messages: int = 6
) -> str:
    """The failures shown to the proposer, numbered from 1, separated by blank lines."""
    if not failures:
        return NO_FAILURES
    return "\n\n".join(
        render_failure(i, failure, max_chars, max_messages) for i, failure in enumerate(failures, 1)
    )


def render_request(template: str, prompt: str, failures_text: str, n: int) -> str:
    """The template with its placeholders filled (`KeyError`/`ValueError` for a template
    that `template_problem` would reject)."""
    return string.Template(template).substitute(prompt=prompt, failures=failures_text, n=str(n))


def _decoded(text: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(text)
    except ValueError:
        return False, None


def _json_of(reply: str) -> tuple[bool, Any]:
    """The JSON value in a model's reply: the whole reply, a fenced block in it, or the
    outermost ``{...}`` / ``[...]`` span; (False, None) when none of them parses."""
    text = reply.strip()
    ok, value = _decoded(text)
    if ok:
        return ok, value
    for block in _FENCE.findall(text):
        ok, value = _decoded(block.strip())
        if ok:
            return ok, value
    for opening, closing in ("{}", "[]"):
        start, end = text.find(opening), text.rfind(closing)
        if 0 <= start < end:
            ok, value = _decoded(text[start : end + 1])
            if ok:
                return ok, value
    return False, None


def parse_prompts(reply: str) -> list[str] | None:
    """The prompts in a proposer's reply, stripped, in order, empty ones dropped: from
    ``{"prompts": [...]}`` or a bare JSON list, plain or in a ```json fence; an item may be
    a string or ``{"prompt": "..."}``. None when the reply holds no such JSON list.
    Raises ValueError when the reply is not JSON at all."""
    ok, value = _json_of(reply)
    if not ok:
        raise ValueError("the reply is not JSON")
    if isinstance(value, Mapping):
        value = value.get("prompts")
    if not isinstance(value, list):
        return None
    found = []
    for item in value:
        if isinstance(item, Mapping):
            item = item.get("prompt")
        if isinstance(item, str) and item.strip():
            found.append(item.strip())
    return found
