"""What an agent call gave back, as the gate keeps it: its text checked to be plain text
within the length limit, or its fault described in one line."""

from __future__ import annotations

import asyncio
from types import TracebackType

from pytest_hgd.core.errors import AgentError
from pytest_hgd.core.model import AgentReply, Usage, usage_of


def describe_exception(exc: BaseException) -> str:
    """``Type: message (at file:line)`` for the innermost frame of the agent's traceback."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    tb = _innermost(exc)
    if isinstance(exc, asyncio.CancelledError) and _in_asyncio(tb):
        # Python 3.10 raises a new CancelledError from asyncio's task when the agent raised
        # one; the agent's own is its context.
        inner = exc.__context__
        if isinstance(inner, asyncio.CancelledError) and not _in_asyncio(_innermost(inner)):
            tb = _innermost(inner)
    if tb is not None:
        text += f" (at {tb.tb_frame.f_code.co_filename}:{tb.tb_lineno})"
    return text


def _innermost(exc: BaseException) -> TracebackType | None:
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb


def _in_asyncio(tb: TracebackType | None) -> bool:
    return tb is not None and tb.tb_frame.f_globals.get("__name__", "").startswith("asyncio.")


def text_and_usage(reply: object, max_chars: int) -> tuple[str, Usage | None]:
    """What an agent returned, as a plain ``str`` and its token usage: a str (an
    ``AgentReply`` carries its usage), or a mapping or object with ``text`` and optionally
    ``usage`` (``model.usage_of``). AgentError when there is no text to check."""
    if isinstance(reply, AgentReply):
        return plain_text(reply, max_chars), reply.usage
    if isinstance(reply, str):
        return plain_text(reply, max_chars), None
    if isinstance(reply, dict):
        text, usage = reply.get("text"), reply.get("usage")
    else:
        text, usage = getattr(reply, "text", None), getattr(reply, "usage", None)
    if not isinstance(text, str):
        raise AgentError(
            f"agent returned {type(reply).__name__}, not a str nor a mapping or object with a "
            "str `text`"
        )
    return plain_text(text, max_chars), None if usage is None else usage_of(usage)


def plain_text(reply: object, max_chars: int) -> str:
    """The reply as a plain ``str`` (a subclass could answer ``lower`` or ``len`` its own
    way, and would check differently fresh and from the cache); AgentError when it is not
    text the gate can check, store and report."""
    if not isinstance(reply, str):
        raise AgentError(f"agent returned {type(reply).__name__}, not a str")
    if str.__len__(reply) > max_chars:  # str's own: a subclass may answer len() its way
        raise AgentError(
            f"agent returned {str.__len__(reply)} characters, over the limit of {max_chars} "
            "(--hgd-max-reply-chars)"
        )
    text = str.__str__(reply) if type(reply) is not str else reply
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate: no file could hold it
        raise AgentError(
            f"agent returned a str that is not valid Unicode (at index {exc.start})"
        ) from None
    return text
