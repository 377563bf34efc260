"""The concurrent scheduler: one future per pair, prompt and sample, on one event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import queue
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from pytest_hgd.agents.agent import Agent, Messages
from pytest_hgd.core.deadline import within
from pytest_hgd.core.errors import AgentError, AgentExit
from pytest_hgd.core.model import Reply, Role
from pytest_hgd.run.replies import describe_exception, text_and_usage
from pytest_hgd.storage.cache import ReplyCache, reply_key

T = TypeVar("T")
QUEUE_FACTOR = 8  # calls handed at once to an agent that queues them, per unit of concurrency
ReplyFuture = concurrent.futures.Future[Reply]


@dataclass(frozen=True)
class CallSettings:
    timeout: float
    concurrency: int
    agent_version: str | None
    read_cache: bool
    write_cache: bool
    max_reply_chars: int = 1_000_000


class Scheduler:
    """Starts agent calls as soon as they are known; items wait only for their own replies.

    Replies found in the cache complete at once without touching the event loop. Calls with
    the same cache key share one future, so a pair is never asked twice in a session.

    Two things keep the loop thread free for the agent calls (it shares the GIL with pytest):
    calls submitted together start with one wake-up of the loop, not one each; and new
    replies are written to the cache by a writer thread, since a thread that blocks on file
    I/O waits for the GIL after each system call.
    """

    def __init__(self, agent: Agent, cache: ReplyCache | None, settings: CallSettings) -> None:
        self.agent = agent
        self.cache = cache
        self.settings = settings
        self.cache_error: str | None = None  # the first failed cache write, if any
        # replies never written to the cache (those holding a secret: see redact.py)
        self.uncacheable: Callable[[str], bool] | None = None
        self._futures: dict[str, ReplyFuture] = {}
        self.budget: int | None = None  # --hgd-max-calls: new agent calls left to start
        self.made = 0  # new agent calls started (or queued to start): not cached, not shared
        self._pending: list[tuple[ReplyFuture, str, Role, str, Messages]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._lock = threading.Lock()
        self._writes: queue.SimpleQueue[tuple[str, str] | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._writes_lock = threading.Lock()  # a writer thread and its queue change together
        self._tasks: set[asyncio.Task[Reply]] = set()  # the calls running on the loop
        # An agent that queues its calls (bounds them to the concurrency and times each from
        # its own start) is handed QUEUE_FACTOR times the concurrency at once, so that it has
        # the next ones at hand when a call ends and is not refilled call by call (every call
        # at once would have it read them all before it answers the first ones: 25 ms at 1000
        # calls; twice the concurrency cost 0.1 ms a pair at latency 0). The scheduler waits
        # for the rounds ahead of a call in that queue too (each ends within the timeout) and
        # a second more, so that an agent that stopped answering cannot hang the run.
        self._queues_calls = bool(getattr(agent, "queues_calls", False))
        self._window = settings.concurrency * (QUEUE_FACTOR if self._queues_calls else 1)
        self._limit = settings.timeout
        if self._queues_calls:
            self._limit = (QUEUE_FACTOR + 1) * settings.timeout + 1.0

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                self._semaphore = asyncio.Semaphore(self._window)
                ready.set()
                try:
                    loop.run_forever()
                except BaseException as exc:  # never leave an item waiting
                    self._loop_died(loop, exc)

            self._thread = threading.Thread(target=run, name="hgd-scheduler", daemon=True)
            self._thread.start()
            ready.wait()
            self._loop = loop
        return self._loop

    def _loop_died(self, loop: asyncio.AbstractEventLoop, exc: BaseException) -> None:
        """The loop stopped by an exception: every unfinished call becomes an error on its
        item (no item waits forever), and the next call starts a new loop."""
        error = f"the gate's event loop stopped: {describe_exception(exc)}"
        with self._lock:
            if self._loop is loop:
                self._loop = None
            unfinished = [f for f in self._futures.values() if not f.done()]
        for future in unfinished:
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                future.set_result(Reply(None, error))
        with contextlib.suppress(RuntimeError):
            loop.close()

    def reserve(self, calls: int) -> bool:
        """Take ``calls`` new agent calls from the budget; False (nothing taken) when it
        holds fewer. No budget: always True."""
        with self._lock:
            if self.budget is None:
                return True
            if calls > self.budget:
                return False
            self.budget -= calls
            return True

    def new_calls(self, draws: Iterable[tuple[str, Messages, int]]) -> int:
        """How many distinct new agent calls these (prompt, messages, sample) draws would
        make: not cached, not asked already, each asked once."""
        identity, version = self.agent.identity, self.settings.agent_version
        keys = {
            reply_key(identity, version, prompt, messages, sample): (prompt, messages, sample)
            for prompt, messages, sample in draws
        }
        return sum(1 for draw in keys.values() if self.at_hand(*draw) is None)

    def submit(
        self, role: Role, prompt: str, messages: Messages, sample: int, reserved: bool = False
    ) -> ReplyFuture:
        """The future reply of the agent to ``messages`` under ``prompt``, sample ``sample``.
        A new call not ``reserved`` takes one from the budget, and fails without a call when
        the budget is spent."""
        key = reply_key(self.agent.identity, self.settings.agent_version, prompt, messages, sample)
        with self._lock:
            future = self._futures.get(key)
            if future is not None:  # asked already (a rollout's turn, an identical pair)
                return _shared(future)
            cached = self.cache.get(key) if self.cache and self.settings.read_cache else None
            future = concurrent.futures.Future()
            if cached is not None:
                future.set_result(Reply(cached, cached=True))
            elif not reserved and self.budget is not None and self.budget < 1:
                future.set_result(
                    Reply(None, "agent call not made: the --hgd-max-calls budget is spent")
                )
                return future
            else:
                if not reserved and self.budget is not None:
                    self.budget -= 1
                self._pending.append((future, key, role, prompt, messages))
                self.made += 1
                if len(self._pending) == 1:  # the loop takes every call pending when it wakes
                    self._ensure_loop().call_soon_threadsafe(self._start_pending)
            self._futures[key] = future
            return future

    def at_hand(self, prompt: str, messages: Messages, sample: int) -> ReplyFuture | None:
        """The reply for ``sample`` if it needs no new agent call (asked already in this
        session, or in the cache when the cache is read), else None; nothing is called."""
        key = reply_key(self.agent.identity, self.settings.agent_version, prompt, messages, sample)
        with self._lock:
            future = self._futures.get(key)
            if future is not None:
                return _shared(future)
            if self.cache is None or not self.settings.read_cache:
                return None
            cached = self.cache.get(key)
            if cached is None:
                return None
            future = concurrent.futures.Future()
            future.set_result(Reply(cached, cached=True))
            self._futures[key] = future
            return future

    def _start_pending(self) -> None:
        """On the loop: a task for each submitted call that was not cancelled meanwhile."""
        with self._lock:
            pending, self._pending = self._pending, []
        loop = asyncio.get_running_loop()
        for future, key, role, prompt, messages in pending:
            if not future.cancelled():
                task = loop.create_task(self._call(future, key, role, prompt, messages))
                self._tasks.add(task)  # the loop itself holds tasks only weakly
                task.add_done_callback(self._tasks.discard)
                _chain(task, future)

    async def _call(
        self, future: ReplyFuture, key: str, role: Role, prompt: str, messages: Messages
    ) -> Reply:
        assert self._semaphore is not None  # set before the loop runs anything
        limit = self._limit
        async with self._semaphore:
            handed = time.monotonic()
            try:
                text, usage = text_and_usage(
                    await within(limit, _no_exit(self.agent.reply(prompt, messages))),
                    self.settings.max_reply_chars,
                )
            except asyncio.TimeoutError:
                error = f"agent call timed out after {self.settings.timeout:g} s (--hgd-timeout)"
                if self._queues_calls and time.monotonic() - handed >= limit:
                    error = (
                        f"agent call not answered after {limit:g} s: the agent queues its "
                        f"calls and times each one itself (--hgd-timeout="
                        f"{self.settings.timeout:g}), so it has stopped answering"
                    )
                return Reply(None, error)
            except AgentError as exc:
                return Reply(None, str(exc))
            except asyncio.CancelledError as exc:
                if future.cancelled():  # the scheduler cancelled it: the run is stopping
                    raise
                error = f"agent raised {describe_exception(exc)}"
                return Reply(None, error)
            except Exception as exc:
                cause = exc.original if isinstance(exc, AgentExit) else exc
                error = f"agent raised {describe_exception(cause)}"
                return Reply(None, error)
            secret = self.uncacheable is not None and self.uncacheable(text)
            if self.cache is not None and self.settings.write_cache and not secret:
                self._store(key, text)
            return Reply(text, usage=usage)

    def _store(self, key: str, text: str) -> None:
        with self._writes_lock:
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_replies,
                    args=(self._writes,),
                    name="hgd-cache-writer",
                    daemon=True,
                )
                self._writer.start()
            self._writes.put((key, text))

    def _write_replies(self, writes: queue.SimpleQueue[tuple[str, str] | None]) -> None:
        """The writer thread: each time it wakes, every reply queued so far goes to the cache
        in one transaction (a handful per run); it ends at the ``None`` that ``flush`` queues."""
        assert self.cache is not None  # only started when there is a cache
        while True:
            batch: list[tuple[str, str]] = []
            entry = writes.get()
            with contextlib.suppress(queue.Empty):  # Empty: all queued so far is in the batch
                while entry is not None:
                    batch.append(entry)
                    entry = writes.get_nowait()
            if batch:
                try:
                    self.cache.put_many(batch)
                except Exception as exc:  # a reply not cached is called again next run
                    self.cache_error = self.cache_error or f"cannot write the reply cache: {exc}"
            if entry is None:
                return

    def flush(self) -> None:
        """Wait until every reply so far is written to the cache, note a write that failed
        (the judge's too), and close the cache's files (the next use opens them again)."""
        with self._writes_lock:  # a reply stored meanwhile goes to a new writer and queue
            writer, self._writer = self._writer, None
            if writer is not None:
                self._writes.put(None)
                self._writes = queue.SimpleQueue()
        if writer is not None:
            writer.join()
        if self.cache is not None:
            if self.cache.error and not self.cache_error:
                self.cache_error = f"cannot write the reply cache: {self.cache.error}"
            self.cache.close()

    def warm_up(self) -> None:
        """Start the loop and, if the agent has an ``async start()`` (the HTTP agent's worker
        processes), that too, so it is ready by the first call. A start that fails is left
        for the first call to report."""
        start = getattr(self.agent, "start", None)
        if start is None:
            return

        async def warm() -> None:
            with contextlib.suppress(Exception):
                await start()

        asyncio.run_coroutine_threadsafe(warm(), self._ensure_loop())

    def run_coroutine(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run a coroutine on the scheduler's loop (an asynchronous check, say)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._ensure_loop())

    def cancel_pending(self) -> int:
        """Cancel every call not yet finished (after ``-x`` stops the run, say)."""
        with self._lock:
            pending = [f for f in self._futures.values() if not f.done()]
        return sum(1 for f in pending if f.cancel())

    def close(self) -> None:
        """Cancel what is pending, close the agent, stop the loop and its thread, and write
        the replies still queued for the cache."""
        self.cancel_pending()
        try:
            self._stop_loop()
        finally:
            self.flush()

    def _stop_loop(self) -> None:
        loop = self._loop
        if loop is None:
            return
        closing = asyncio.run_coroutine_threadsafe(self.agent.aclose(), loop)
        with contextlib.suppress(Exception):  # closing is best effort
            closing.result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
        if not loop.is_running():
            loop.close()
        self._loop = None


async def _no_exit(call: Awaitable[T]) -> T:
    """``await call``, but SystemExit and KeyboardInterrupt come out as ``AgentExit``:
    asyncio re-raises those two out of the event loop, which would end every call."""
    try:
        return await call
    except (SystemExit, KeyboardInterrupt) as exc:
        raise AgentExit(exc) from exc


def _shared(future: ReplyFuture) -> ReplyFuture:
    """The reply of a call already asked for, marked ``cached``: it is served again, not
    made again, so each agent call is counted once however many items read it."""
    again: ReplyFuture = concurrent.futures.Future()

    def copy_outcome(done: ReplyFuture) -> None:
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            if done.cancelled():
                again.cancel()
            elif (exc := done.exception()) is not None:
                again.set_exception(exc)
            else:
                reply = done.result()
                again.set_result(reply if reply.cached else dataclasses.replace(reply, cached=True))

    future.add_done_callback(copy_outcome)
    return again


def _chain(task: asyncio.Task[Reply], future: ReplyFuture) -> None:
    """Complete ``future`` from ``task``; cancelling ``future`` cancels ``task``.

    ``future`` lives as long as the run and keeps its callbacks, so it holds the task only
    weakly: a finished task, its coroutine and its context are freed at once (thousands of
    them would otherwise be walked by every garbage collection until the run ends)."""
    loop = task.get_loop()
    task_ref = weakref.ref(task)

    def copy_outcome(done: asyncio.Task[Reply]) -> None:
        with contextlib.suppress(concurrent.futures.InvalidStateError):  # cancelled meanwhile
            if done.cancelled():
                future.cancel()
            elif (exc := done.exception()) is not None:
                future.set_exception(exc)
            else:
                future.set_result(done.result())

    def cancel_task(done: ReplyFuture) -> None:
        running = task_ref()
        if done.cancelled() and running is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(running.cancel)

    task.add_done_callback(copy_outcome)
    future.add_done_callback(cancel_task)
