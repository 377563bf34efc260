"""The two places pytest-hgd reads another project's private attributes, each pinned to the
versions where the attribute is what we expect, and each with its fallback tested.

* xdist keeps a worker's queue of tests as ``WorkerInteractor.torun`` (a ``TestQueue`` with
  ``lock()``, since xdist 3.6) and the test it runs next as ``nextitem_index``;
  ``xdist_support.queued_items`` reads them to start the agent calls of coming tests early.
  Without them it returns ``[]``: no look-ahead, the same results.
* asyncio's ``StreamReader`` keeps unread bytes in ``_buffer``; the HTTP transport reads it
  to refuse a kept connection the server already answered (a 408 before closing). Without
  it, only a closed stream is noticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections import deque
from collections.abc import Iterator
from importlib.metadata import version
from typing import Any

import pytest

from pytest_hgd.agents.http_transport import _Connection
from pytest_hgd.plugin.xdist_support import queued_items


def _release(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:2] if part.isdigit())


class _Queue:
    def __init__(self, items: list[Any]) -> None:
        self.items = deque(items)

    @contextlib.contextmanager
    def lock(self) -> Iterator[deque[Any]]:
        yield self.items


class _BrokenQueue:
    @contextlib.contextmanager
    def lock(self) -> Iterator[deque[Any]]:
        raise RuntimeError("a changed xdist")
        yield deque()  # pragma: no cover


class _Config:
    def __init__(self, *plugins: object) -> None:
        self.pluginmanager = self
        self._plugins = plugins

    def get_plugins(self) -> set[object]:
        return set(self._plugins)


class _Interactor:
    def __init__(self, torun: object, nextitem_index: object = None) -> None:
        self.torun = torun
        self.nextitem_index = nextitem_index


def test_the_installed_xdist_keeps_the_queue_where_we_read_it() -> None:
    remote = pytest.importorskip("xdist.remote")
    if _release(version("pytest-xdist")) < (3, 6):
        pytest.skip("xdist < 3.6 has no TestQueue.lock: queued_items falls back to []")
    assert hasattr(remote.TestQueue, "lock")
    assert "torun" in remote.WorkerInteractor.__init__.__code__.co_names


def test_queued_items_reads_the_queue_next_first() -> None:
    config = _Config(object(), _Interactor(_Queue([4, 5, "shutdown", 6]), nextitem_index=3))
    assert queued_items(config, window=3) == [3, 4, 5]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "plugins",
    [(), (object(),), (_Interactor(object()),), (_Interactor(_BrokenQueue()),)],
    ids=["no xdist", "no queue", "a queue without lock", "a lock that raises"],
)
def test_queued_items_falls_back_to_no_look_ahead(plugins: tuple[object, ...]) -> None:
    assert queued_items(_Config(*plugins), window=8) == []  # type: ignore[arg-type]


def test_the_running_python_keeps_unread_bytes_where_we_read_them() -> None:
    assert (3, 10) <= sys.version_info[:2] <= (3, 14), "check StreamReader._buffer again"

    async def unread() -> bytes:
        reader = asyncio.StreamReader()
        reader.feed_data(b"HTTP/1.1 408 Request Timeout\r\n")
        return bytes(reader._buffer)

    assert asyncio.run(unread()) == b"HTTP/1.1 408 Request Timeout\r\n"


class _Reader:
    """A StreamReader without ``_buffer``: what a changed asyncio would look like."""

    def __init__(self, eof: bool) -> None:
        self.eof = eof

    def at_eof(self) -> bool:
        return self.eof


class _Writer:
    def is_closing(self) -> bool:
        return False


@pytest.mark.parametrize("eof", [False, True])
def test_a_reader_without_a_buffer_still_notices_a_closed_stream(eof: bool) -> None:
    connection = _Connection(_Reader(eof), _Writer())  # type: ignore[arg-type]
    assert connection.idle_and_open() is not eof


def test_unread_bytes_make_a_kept_connection_unfit() -> None:
    async def fit() -> tuple[bool, bool]:
        reader = asyncio.StreamReader()
        connection = _Connection(reader, _Writer())  # type: ignore[arg-type]
        before = connection.idle_and_open()
        reader.feed_data(b"HTTP/1.1 408 Request Timeout\r\n")
        return before, connection.idle_and_open()

    assert asyncio.run(fit()) == (True, False)
