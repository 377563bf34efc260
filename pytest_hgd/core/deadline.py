"""A deadline on one await, at the cost of a timer rather than a task.

``asyncio.wait_for`` runs what it waits for in a task of its own before Python 3.12: a task
to create and, more costly in a busy pytest process, extra turns of the event loop before
and after, each of which may wait for the GIL. ``asyncio.timeout`` (3.11+) cancels the
waiting task itself when the time is up.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def within(seconds: float | None, awaitable: Awaitable[T]) -> T:
    """``await awaitable``, or ``asyncio.TimeoutError`` after ``seconds`` (None: no limit)."""
    if seconds is None:
        return await awaitable
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)  # pragma: no cover - Python 3.10
