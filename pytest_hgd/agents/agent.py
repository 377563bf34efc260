"""The agent protocol and the Python-callable agent (``package.module:function``)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import importlib
import inspect
import os
import queue
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, Protocol

from pytest_hgd.core.errors import AgentError, AgentExit

Messages = list[dict[str, str]]


class AgentSpecError(Exception):
    """An agent spec cannot be resolved to an agent; the message says why and what to do."""


class Agent(Protocol):
    """What produces a reply from a prompt and a conversation.

    An agent may also have ``async def start(self) -> None``: the scheduler calls it while
    pytest collects, so that slow start-up work (a worker process, say) is done by the first
    call. An agent whose ``queues_calls`` is true is handed up to eight times
    ``--hgd-concurrency`` calls at once: it must itself run at most ``--hgd-concurrency`` of
    them at a time and raise `asyncio.TimeoutError` for one that runs past ``--hgd-timeout``
    from its start (the HTTP agent's worker processes do). The scheduler gives up on a call
    only after (8 + 1) times the timeout and a second: the agent has stopped answering.
    """

    @property
    def identity(self) -> dict[str, object]:
        """JSON-able and secret-free; part of the reply-cache key."""
        ...

    async def reply(self, prompt: str, messages: Messages) -> Any:
        """A str; or a mapping or object with a str ``text`` and, optionally, ``usage``
        (``input_tokens``/``output_tokens`` or ``prompt_tokens``/``completion_tokens``)."""
        ...

    async def aclose(self) -> None: ...


def _carries_text(result: object) -> bool:
    """A mapping or object with a str ``text`` (and maybe ``usage``): a documented reply."""
    text = result.get("text") if isinstance(result, dict) else getattr(result, "text", None)
    return isinstance(text, str)


def _source_hash(module: Any) -> str:
    try:
        source = inspect.getsourcefile(module)
        data = Path(source).read_bytes() if source else b""
    except (OSError, TypeError):
        data = b""
    return hashlib.sha256(data).hexdigest()


class DaemonPool:
    """Threads for sync agents that never keep the process alive.

    ``ThreadPoolExecutor`` joins its threads at exit, so one agent call stuck past the timeout
    would hold pytest open until it returns; these threads are daemons, so it cannot.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def run(self, function: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._jobs.put((loop, future, function, args))
        if len(self._threads) < self.size:
            thread = threading.Thread(target=self._work, name="hgd-agent", daemon=True)
            self._threads.append(thread)
            thread.start()
        return future

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, future, function, args = job
            try:
                outcome: tuple[bool, Any] = (True, function(*args))
            except BaseException as exc:  # the agent's own: reported on its item
                outcome = (False, exc)
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(_settle, future, outcome)

    def shutdown(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        self._threads = []


Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


def _settle(future: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    if future.done():  # timed out or cancelled meanwhile
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


AGENT_THREADS = ("hgd-agent", "hgd-async-agent")


class ExitGuard:
    """While a Python agent runs, ``os._exit`` called from its threads raises SystemExit
    (an error on its item) instead of ending pytest with status 0 and nothing written.

    Calls from other threads (pytest-timeout's, say) and from forked children (whose
    ``os._exit`` ends only the child) go to the real one."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.real = os._exit
        self.installed = False

    def install(self) -> None:
        if not self.installed:
            os._exit = self._exit
            self.installed = True

    def uninstall(self) -> None:
        if self.installed and os._exit == self._exit:
            os._exit = self.real
        self.installed = False

    def _exit(self, status: int) -> NoReturn:
        if os.getpid() == self.pid and threading.current_thread().name in AGENT_THREADS:
            raise SystemExit(f"the agent called os._exit({status})")
        self.real(status)


class PythonAgent:
    """``def reply(prompt, messages) -> str`` (or ``async def``), imported by its path."""

    def __init__(
        self, target: str, function: Callable[..., Any], source_sha256: str, concurrency: int
    ) -> None:
        self.target = target
        self.function = function
        self.source_sha256 = source_sha256
        self.concurrency = concurrency
        self._pool: DaemonPool | None = None
        self._loop: AgentLoop | None = None
        self._exit_guard = ExitGuard()

    @property
    def identity(self) -> dict[str, object]:
        return {"kind": "python", "target": self.target, "source_sha256": self.source_sha256}

    async def reply(self, prompt: str, messages: Messages) -> Any:
        messages = copy.deepcopy(messages)
        self._exit_guard.install()
        if inspect.iscoroutinefunction(self.function):
            if self._loop is None:
                self._loop = AgentLoop()
            result = await self._loop.run(self.function, prompt, messages)
        else:
            if self._pool is None:
                self._pool = DaemonPool(self.concurrency)
            result = await self._pool.run(self.function, prompt, messages)
            if inspect.isawaitable(result):
                result = await result
        if not isinstance(result, str) and not _carries_text(result):
            raise AgentError(
                f"agent {self.target} returned {type(result).__name__}, not a str nor a "
                "mapping or object with a str `text`"
            )
        return result  # the scheduler takes its text and usage (run.replies.text_and_usage)

    async def aclose(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
        if self._loop is not None:
            self._loop.stop()
        self._exit_guard.uninstall()


class AgentLoop:
    """The event loop ``async def`` agents run on, in a daemon thread of its own.

    An agent that blocks its loop (``time.sleep`` or blocking I/O inside ``async def``)
    then stalls only this loop: the gate's own loop still times every call out at
    ``--hgd-timeout``, and a call given up is cancelled before it starts. One loop for all
    calls, so an agent's loop-bound clients (an ``httpx.AsyncClient``) keep working."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        thread = threading.Thread(target=self._loop.run_forever, name="hgd-async-agent")
        thread.daemon = True
        thread.start()

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        given_up = False

        async def call() -> tuple[bool, Any]:
            # (ok, reply or exception): an exception raised after the call was given up
            # would be logged as never retrieved
            try:
                return True, await function(*args)
            except asyncio.CancelledError as exc:
                if given_up:
                    raise
                return False, AgentExit(exc)  # the agent raised it: its own error
            except (SystemExit, KeyboardInterrupt) as exc:  # would end this loop's thread
                return False, AgentExit(exc)
            except Exception as exc:
                return False, exc

        future = asyncio.run_coroutine_threadsafe(call(), self._loop)
        try:
            ok, outcome = await asyncio.wrap_future(future)
        except asyncio.CancelledError:  # timed out, or the run is stopping
            given_up = True
            future.cancel()
            raise
        if not ok:
            raise outcome
        return outcome

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):  # closed already
            self._loop.call_soon_threadsafe(self._loop.stop)


def load_python_agent(target: str, rootdir: Path, concurrency: int) -> PythonAgent:
    """Import ``package.module:function`` with the rootdir on ``sys.path``."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise AgentSpecError(
            f"{target!r} is not of the form package.module:function "
            "(or openai:MODEL for an OpenAI-compatible endpoint)"
        )
    if str(rootdir) not in sys.path:
        sys.path.insert(0, str(rootdir))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AgentSpecError(f"cannot import module {module_name!r}: {exc}") from exc
    except Exception as exc:
        raise AgentSpecError(
            f"importing {module_name!r} raised {type(exc).__name__}: {exc}"
        ) from exc
    function: Any = module
    for part in attribute.split("."):
        function = getattr(function, part, None)
        if function is None:
            raise AgentSpecError(f"module {module_name!r} has no attribute {attribute!r}")
    if not callable(function):
        raise AgentSpecError(f"{target!r} is not callable")
    try:
        inspect.signature(function).bind("prompt", [])
    except TypeError as exc:
        raise AgentSpecError(
            f"{target!r} must accept (prompt: str, messages: list[dict]); its signature "
            f"does not: {exc}"
        ) from exc
    except ValueError:  # builtins without a signature: trust them
        pass
    return PythonAgent(target, function, _source_hash(module), concurrency)
