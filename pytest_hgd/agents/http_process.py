"""The HTTP agent run in worker processes of its own, off the GIL that pytest needs.

A gate run is CPU-bound: pytest's item protocol, the scheduler and the HTTP client all want
the pytest process's one GIL, and httpx spends 0.6-1 ms of CPU on every call (measured in
docs/performance.md). `ProcessHTTPAgent` sends each call to a worker process that runs the
ordinary `HTTPAgent` (its httpx clients, pool, retries, timeout and key scrubbing) on an
event loop of its own, so the HTTP work runs on another core while pytest runs the items.

The wire is JSON Lines over the worker's stdin and stdout. The parent sends the settings
first, then ``{"id": N, "prompt": ..., "messages": [...]}`` per call and ``{"cancel": N}``
when a call is abandoned; the worker answers ``{"id": N, "reply": ...}``, ``{"id": N,
"error": ...}`` or ``{"id": N, "timeout": true}`` as each call finishes, in any order, and
``{"log": LEVEL, "message": ...}`` for each record the HTTP agent logs (a retry, say), which
the parent logs again under the same logger. The worker reads the API key from its own
environment (inherited), so the key never crosses the pipe. It ignores Ctrl-C (the parent
decides when to stop) and exits when its stdin closes, including when the parent is killed.

The workers hold a queue of calls (`ProcessHTTPAgent.queues_calls`): the scheduler hands
over up to eight times the gate's concurrency at once, each worker runs at most its share of the
concurrency and times each call from its start, and a call that finishes makes room for the
next one in the worker itself. Were the queue in pytest's process, every call would wait for
a round trip through the pipe and for pytest's GIL before it started (about 2.5 ms a call,
measured in docs/performance.md).

The worker is this module's `main`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import signal
import sys
from collections import deque
from typing import IO, Any

from pytest_hgd.agents.http_agent import HTTPAgent, HTTPAgentSettings, log
from pytest_hgd.agents.http_spawn import SpareWorkers, WorkerProcess, spawn_worker
from pytest_hgd.core.deadline import within
from pytest_hgd.core.errors import AgentError
from pytest_hgd.core.model import AgentReply, usage_of

__all__ = ["ProcessHTTPAgent"]

_LINE_LIMIT = 1 << 30  # one reply or conversation per line, whatever its size
_STDERR_LINES = 20  # the worker's last stderr lines, shown if it dies
_EXIT_POLL = 0.005  # seconds between looks at a stopping worker


_USAGE = ("input_tokens", "output_tokens")  # the wire's [input, output] tokens


class _Lines:
    """JSON lines to a pipe, written once per event-loop turn: every write to a pipe wakes
    the process at its other end, and a wake-up costs more than the line (on a VM, a lot)."""

    def __init__(self, writer: asyncio.StreamWriter, loop: asyncio.AbstractEventLoop) -> None:
        self.writer = writer
        self._loop = loop
        self._lines: list[bytes] = []

    def send(self, message: dict[str, Any]) -> None:
        """Queue one line; called on the loop's thread."""
        if not self._lines:
            self._loop.call_soon(self.flush)
        self._lines.append(json.dumps(message, ensure_ascii=False).encode("utf-8") + b"\n")

    def flush(self) -> None:
        lines, self._lines = self._lines, []
        if not self.writer.is_closing():
            self.writer.write(b"".join(lines))


class ProcessHTTPAgent:
    """`HTTPAgent` in ``workers`` processes; same identity, so the reply cache is shared.

    The settings' ``max_connections`` is the number of calls in flight (the gate's
    concurrency), split exactly between the workers, and ``timeout`` bounds each call from
    the moment its worker starts it; a call past it raises `asyncio.TimeoutError`.
    """

    queues_calls = True  # the scheduler leaves the bound on calls in flight and timeouts to us

    def __init__(
        self, settings: HTTPAgentSettings, workers: int, spares: SpareWorkers | None = None
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers!r}")
        self._local = HTTPAgent(settings)  # identity, repr and scrubbing; never calls
        self._settings = settings
        self._spares = spares  # workers started early (`http_spawn`), taken first
        self._workers_wanted = min(workers, settings.max_connections)  # each needs a slot
        self._workers: list[_Worker] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._starting: asyncio.Lock | None = None

    @property
    def identity(self) -> dict[str, object]:
        return self._local.identity

    def __repr__(self) -> str:
        return f"{self._local!r} in {self._workers_wanted} worker process(es)"

    async def start(self) -> None:
        """Start the worker processes now rather than on the first call."""
        await self._running_workers()

    async def reply(self, prompt: str, messages: list[dict[str, str]]) -> str:
        """The reply from the worker with the shortest queue per slot (started on the first
        call)."""
        workers = await self._running_workers()
        worker = min(workers, key=lambda w: len(w.calls) / w.slots)
        return await worker.call(prompt, messages)

    async def aclose(self) -> None:
        """Stop every worker (see `_Worker.close`); the next call starts new ones."""
        workers, self._workers, self._loop = self._workers, [], None
        await asyncio.gather(*(worker.close() for worker in workers))

    async def _running_workers(self) -> list[_Worker]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new loop: the old one's pipes are gone with it
            self._workers, self._loop, self._starting = [], loop, asyncio.Lock()
        if len(self._workers) == self._workers_wanted:
            return self._workers
        assert self._starting is not None
        async with self._starting:
            if not self._workers:
                count = self._workers_wanted
                slots, extra = divmod(self._settings.max_connections, count)
                workers = []
                try:
                    for index in range(count):
                        share = slots + (index < extra)
                        rate = self._settings.rate / count if self._settings.rate else None
                        settings = dataclasses.replace(
                            self._settings, max_connections=share, rate=rate, rate_share=1 / count
                        )
                        spare = self._spares.take() if self._spares else None
                        workers.append(await _Worker.start(settings, self._local, spare))
                except BaseException:
                    await asyncio.gather(*(worker.close() for worker in workers))
                    raise
                self._workers = workers
        return self._workers


class _Worker:
    """One worker process and the calls waiting for its answers."""

    def __init__(
        self,
        process: WorkerProcess,
        local: HTTPAgent,
        slots: int,
        pipes: tuple[asyncio.StreamWriter, asyncio.StreamReader, asyncio.StreamReader],
    ) -> None:
        self.process = process
        self.slots = slots  # calls it runs at once; the rest of ``calls`` wait in it
        self.calls: dict[int, asyncio.Future[str]] = {}
        self._local = local
        self._next_id = 0
        self._stderr: deque[str] = deque(maxlen=_STDERR_LINES)
        self._dead: AgentError | None = None
        stdin, stdout, stderr = pipes
        self._stdin = _Lines(stdin, asyncio.get_running_loop())
        self._tasks = [
            asyncio.ensure_future(self._read_answers(stdout)),
            asyncio.ensure_future(self._read_stderr(stderr)),
        ]

    @classmethod
    async def start(
        cls, settings: HTTPAgentSettings, local: HTTPAgent, spare: WorkerProcess | None = None
    ) -> _Worker:
        """A worker for ``settings``: ``spare`` (started early) or a new process."""
        process = spare
        if process is None:
            try:
                process = spawn_worker()
            except OSError as exc:
                raise local.error(
                    f"cannot start the HTTP agent's worker process ({sys.executable}): {exc}. "
                    "Set hgd_http_workers = 0 to make the calls from the pytest process"
                ) from None
        assert process.stdin and process.stdout and process.stderr  # all three are piped
        pipes = (
            await _pipe_writer(process.stdin),
            await _pipe_reader(process.stdout),
            await _pipe_reader(process.stderr),
        )
        worker = cls(process, local, settings.max_connections, pipes)
        worker._send({"settings": dataclasses.asdict(settings)})
        return worker

    async def call(self, prompt: str, messages: list[dict[str, str]]) -> str:
        if self._dead is not None:
            raise self._dead
        call_id = self._next_id
        self._next_id += 1
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.calls[call_id] = future
        try:
            self._send({"id": call_id, "prompt": prompt, "messages": messages})
            return await future
        except asyncio.CancelledError:
            if call_id in self.calls and self._dead is None:  # abandoned: the worker stops it
                with contextlib.suppress(AgentError):  # closed meanwhile: nothing to stop
                    self._send({"cancel": call_id})
            raise
        finally:
            self.calls.pop(call_id, None)

    def _send(self, message: dict[str, Any]) -> None:
        if self._stdin.writer.is_closing():
            raise self._dead or self._local.error("the HTTP agent's worker process is closed")
        self._stdin.send(message)

    async def _read_answers(self, stdout: asyncio.StreamReader) -> None:
        try:
            while line := await stdout.readline():
                answer = json.loads(line)
                future = self.calls.get(answer.get("id"))
                if "log" in answer:
                    log.log(answer["log"], "%s", answer["message"])
                    continue
                if future is None or future.done():
                    continue  # cancelled meanwhile
                if "reply" in answer:
                    usage = answer.get("usage")
                    future.set_result(
                        AgentReply(
                            answer["reply"], usage_of(dict(zip(_USAGE, usage, strict=False)))
                        )
                        if isinstance(usage, list)
                        else answer["reply"]
                    )
                elif answer.get("timeout"):
                    future.set_exception(asyncio.TimeoutError())
                else:
                    future.set_exception(AgentError(str(answer.get("error"))))
        except (ValueError, OSError) as exc:
            reason = f"unreadable answer ({type(exc).__name__}: {exc})"
        else:
            reason = "it exited"
        await self._died(reason)

    async def _read_stderr(self, stderr: asyncio.StreamReader) -> None:
        with contextlib.suppress(ValueError, OSError):
            while line := await stderr.readline():
                self._stderr.append(line.decode("utf-8", "replace").rstrip())

    async def _died(self, reason: str) -> None:
        """Every waiting call, and every later one, fails with why the worker is gone."""
        await self._exit(5)
        if self._dead is None:
            status = self.process.poll()
            said = " | ".join(line for line in self._stderr if line.strip())
            problem = f"the HTTP agent's worker process stopped: {reason}, status {status}"
            self._dead = self._local.error(f"{problem}: {said}" if said else problem)
        for future in self.calls.values():
            if not future.done():
                future.set_exception(self._dead)

    async def close(self) -> None:
        """Stop the worker. It holds no state worth a graceful exit (no call is waiting by
        now, it writes no file), so it is sent SIGTERM rather than waited for: its own exit
        on end of input takes the 40-70 ms of an interpreter's shutdown, at the end of
        every run."""
        if self._dead is None:
            self._dead = self._local.error("the HTTP agent's worker process was closed")
        if not self._stdin.writer.is_closing():
            self._stdin.writer.close()
        self.process.terminate()  # (a no-op once it has exited)
        if not await self._exit(5):  # pragma: no cover - SIGTERM is not caught
            self.process.kill()
            await self._exit(None)
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _exit(self, seconds: float | None) -> bool:
        """Wait up to ``seconds`` (None: for as long as it takes) for the process to exit;
        whether it has. It is polled: a thread blocked in ``wait`` could outlive the run."""

        async def exited() -> None:
            while self.process.poll() is None:
                await asyncio.sleep(_EXIT_POLL)

        with contextlib.suppress(asyncio.TimeoutError):
            await within(seconds, exited())
        return self.process.poll() is not None


async def _pipe_reader(pipe: IO[bytes]) -> asyncio.StreamReader:
    """``pipe`` read as a stream on the running loop."""
    reader = asyncio.StreamReader(limit=_LINE_LIMIT)
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    return reader


async def _pipe_writer(pipe: IO[bytes]) -> asyncio.StreamWriter:
    """``pipe`` written as a stream on the running loop."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, pipe)
    return asyncio.StreamWriter(transport, protocol, None, loop)


def _settings_from_json(data: dict[str, Any]) -> HTTPAgentSettings:
    data = dict(data)
    data["headers"] = tuple(tuple(pair) for pair in data.get("headers", ()))
    return HTTPAgentSettings(**data)


# -- the worker ---------------------------------------------------------------------------


async def _serve() -> int:
    loop = asyncio.get_running_loop()
    reader = await _pipe_reader(sys.stdin.buffer)
    answers = _Lines(await _pipe_writer(sys.stdout.buffer), loop)
    first = await reader.readline()
    if not first:
        return 0
    agent = HTTPAgent(_settings_from_json(json.loads(first)["settings"]))
    await agent.start()
    log.addHandler(_ForwardLogs(answers))
    log.setLevel(logging.DEBUG)
    log.propagate = False
    running: dict[int, asyncio.Task[None]] = {}
    slots = asyncio.Semaphore(agent.settings.max_connections)

    async def answer(call_id: int, prompt: str, messages: list[dict[str, str]]) -> None:
        try:
            async with slots:  # queued calls wait here, in the order they came
                reply = await within(agent.settings.timeout, agent.reply(prompt, messages))
            message: dict[str, Any] = {"id": call_id, "reply": str.__str__(reply)}
            if isinstance(reply, AgentReply) and reply.usage is not None:
                message["usage"] = list(reply.usage)
        except asyncio.TimeoutError:  # the parent words it as every other agent's timeout
            message = {"id": call_id, "timeout": True}
        except AgentError as exc:
            message = {"id": call_id, "error": str(exc)}
        except Exception as exc:  # a bug here must still answer the call, scrubbed
            message = {"id": call_id, "error": agent.error(f"{type(exc).__name__}: {exc}").args[0]}
        finally:
            running.pop(call_id, None)
        answers.send(message)

    try:
        while line := await reader.readline():
            request = json.loads(line)
            if "cancel" in request:
                task = running.pop(request["cancel"], None)
                if task is not None:
                    task.cancel()
                continue
            call_id = request["id"]
            running[call_id] = loop.create_task(
                answer(call_id, request["prompt"], request["messages"])
            )
    finally:  # stdin closed: the parent is done (or gone); stop what is left
        for task in list(running.values()):
            task.cancel()
        await asyncio.gather(*running.values(), return_exceptions=True)
        await agent.aclose()
    return 0


class _ForwardLogs(logging.Handler):
    """Sends the HTTP agent's log records to the parent, which logs them where pytest shows."""

    def __init__(self, lines: _Lines) -> None:
        super().__init__(logging.DEBUG)
        self._lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self._lines.send({"log": record.levelno, "message": record.getMessage()})


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    with contextlib.suppress(BrokenPipeError):
        return asyncio.run(_serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
