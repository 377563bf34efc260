"""A real OpenAI-compatible chat-completions server on 127.0.0.1, stdlib only.

In tests::

    with OpenAIServer(latency=0.05) as srv:
        agent = HTTPAgent(HTTPAgentSettings(model="m", base_url=srv.base_url))
        srv.push(Fault(status=429, retry_after="1"))
        ...
        assert srv.calls == 2 and srv.requests[-1].body["model"] == "m"

As a script (benchmarks, in a separate process): ``python tests/openai_server.py
--latency 0.05 --port 0`` prints the base URL on its first stdout line, then serves
until killed.

The default reply is deterministic::

    "Re: <last user message> | <last line of the system prompt> [prompt <sha256[:8]>]"

so tests can tell prompts apart and steer replies through the prompt's last line.
An asyncio loop in one thread serves every connection (HTTP/1.1 keep-alive), so the
server stays cheap at hundreds of requests per second.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import hashlib
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    408: "Request Timeout",
    411: "Length Required",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class Fault:
    """What the server does to the next chat-completions request instead of replying.

    status: answer with this code and an OpenAI error body holding `message`.
    body: answer with this body verbatim (and `status`, 200 unless given).
    retry_after: value of the Retry-After header. malformed: a 200 whose body is not JSON.
    delay: extra seconds before answering. drop: close the connection mid-reply.
    content: reply with this text (status 200).
    """

    status: int = 200
    message: str | None = None
    body: str | None = None
    retry_after: str | None = None
    malformed: bool = False
    delay: float = 0.0
    drop: bool = False
    content: str | None = None


@dataclass
class RecordedRequest:
    """One request as received: header names lower-case, repeats joined by ", "; body is
    parsed JSON or None."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    received_at: float = field(default_factory=time.monotonic)


def echo_reply(body: dict[str, Any]) -> str:
    """The default reply: depends on the system prompt and the last user message."""
    messages = body.get("messages") or []
    system = "\n".join(m.get("content", "") for m in messages if m.get("role") == "system")
    last_user = next(
        (m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), ""
    )
    lines = [line.strip() for line in system.splitlines() if line.strip()]
    digest = hashlib.sha256(system.encode()).hexdigest()[:8]
    return f"Re: {last_user} | {lines[-1] if lines else ''} [prompt {digest}]"


class OpenAIServer:
    """Serves `/v1/chat/completions` (and `/v1/models`) from a background thread."""

    def __init__(
        self,
        latency: float = 0.0,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        reply: Callable[[dict[str, Any]], str] = echo_reply,
        rate_limit: float | None = None,
    ) -> None:
        self.latency = latency
        # a provider's rate limit: a token bucket of rate_limit a second (50 ms of burst);
        # above it, 429 with retry-after-ms and OpenAI's x-ratelimit-* headers
        self.rate_limit = rate_limit
        self._tokens = max(1.0, (rate_limit or 0.0) / 20.0)
        self._filled = time.monotonic()
        self.limited = 0
        self.first_at = self.last_at = 0.0  # the first request, the last answer (monotonic)
        self.host = host
        self.port = port
        self.reply = reply
        self._faults: collections.deque[Fault] = collections.deque()
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._record = True
        self.connections = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.calls = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    # -- control from the test's thread ------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def push(self, *faults: Fault) -> None:
        """Queue faults; each is used by one chat-completions request, in order."""
        self._faults.extend(faults)

    def record(self, on: bool) -> None:
        """Keep (default) or stop keeping a record of requests (for long benchmarks)."""
        self._record = on

    def start(self) -> OpenAIServer:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._serve, self.host, self.port, backlog=1024)
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                tasks = asyncio.all_tasks(loop)
                for task in tasks:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
                loop.close()

        self._thread = threading.Thread(target=run, name="openai-server", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for writer in list(self._writers):
                writer.close()
            loop.stop()

        loop.call_soon_threadsafe(shutdown)
        thread.join(timeout=5)
        self._loop = self._thread = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- serving, on the server's loop -------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        except asyncio.CancelledError:
            pass  # stop(): end quietly (3.11's stream callback logs cancelled handlers)
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Read and answer one request; False when the connection should close."""
        request_line = await reader.readline()
        arrived = asyncio.get_running_loop().time()
        if not request_line.strip():
            return False
        method, target, _version = request_line.decode("latin-1").split(maxsplit=2)
        headers: dict[str, str] = {}
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        if "chunked" in headers.get("transfer-encoding", "").lower():
            await self._send(writer, 411, _error_body("chunked bodies are not supported"))
            return False
        length = int(headers.get("content-length", "0"))
        raw = await reader.readexactly(length) if length else b""
        keep_alive = headers.get("connection", "").lower() != "close"
        path = target.split("?", 1)[0]
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if self._record:
            with self._lock:
                self._requests.append(RecordedRequest(method, path, headers, body))
        if method == "POST" and path == "/v1/chat/completions":
            return await self._chat(writer, body, keep_alive, arrived) and keep_alive
        if method == "GET" and path == "/v1/models":
            models = {"object": "list", "data": [{"id": "echo", "object": "model"}]}
            await self._send(writer, 200, json.dumps(models).encode(), keep_alive=keep_alive)
        else:
            await self._send(writer, 404, _error_body(f"no route {method} {path}"), keep_alive)
        return keep_alive

    async def _chat(
        self, writer: asyncio.StreamWriter, body: Any, keep_alive: bool, arrived: float
    ) -> bool:
        """Answer ``latency`` (plus the fault's delay) after the request arrived: the answer
        is made first and the wait is what is left, so the server's own work does not add to
        the latency a benchmark is measured against."""
        self.calls += 1
        self.first_at = self.first_at or time.monotonic()
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            fault = self._faults.popleft() if self._faults else Fault()
            limited = self._over_limit()
            if limited is not None:
                fault = Fault(status=429, message="rate limit reached")
            status, payload, extra = self._answer(fault, body)
            extra = {**extra, **(limited or self._limit_headers())}
            loop = asyncio.get_running_loop()
            await asyncio.sleep(max(0.0, arrived + self.latency + fault.delay - loop.time()))
            if fault.drop:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
                writer.write(b'Content-Length: 500\r\n\r\n{"id": "chatcmpl-')
                await writer.drain()
                return False
            await self._send(writer, status, payload, keep_alive, extra)
            self.last_at = time.monotonic()
            return True
        finally:
            self.in_flight -= 1

    def _over_limit(self) -> dict[str, str] | None:
        """Take a token; the 429's headers when there is none."""
        if self.rate_limit is None:
            return None
        now = time.monotonic()
        burst = max(1.0, self.rate_limit / 20.0)
        self._tokens = min(burst, self._tokens + (now - self._filled) * self.rate_limit)
        self._filled = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        self.limited += 1
        wait_ms = max(1, int((1.0 - self._tokens) / self.rate_limit * 1000) + 1)
        return {
            "retry-after-ms": str(wait_ms),
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": f"{wait_ms}ms",
        }

    def _limit_headers(self) -> dict[str, str]:
        if self.rate_limit is None:
            return {}
        remaining = int(self._tokens)
        wait_ms = max(1, int((1.0 - self._tokens % 1.0) / self.rate_limit * 1000) + 1)
        return {
            "x-ratelimit-limit-requests": str(int(self.rate_limit * 60)),  # per minute
            "x-ratelimit-remaining-requests": str(remaining),
            "x-ratelimit-reset-requests": f"{wait_ms}ms",
        }

    def _answer(self, fault: Fault, body: Any) -> tuple[int, bytes, dict[str, str]]:
        """Status, body and extra headers of the answer to a chat request under ``fault``."""
        if fault.malformed:
            return 200, b'{"choices": [{"message": ', {}
        extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
        if fault.body is not None:
            return fault.status, fault.body.encode(), extra
        if fault.status != 200:
            return (
                fault.status,
                _error_body(fault.message or f"scripted HTTP {fault.status}"),
                extra,
            )
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return 400, _error_body("body must be JSON with messages"), {}
        content = fault.content if fault.content is not None else self.reply(body)
        return 200, _completion(body, content), {}

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        payload: bytes,
        keep_alive: bool = True,
        extra: dict[str, str] | None = None,
    ) -> None:
        head = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
            "Content-Type: application/json",
            f"Content-Length: {len(payload)}",
            f"Connection: {'keep-alive' if keep_alive else 'close'}",
            *(f"{name}: {value}" for name, value in (extra or {}).items()),
        ]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
        await writer.drain()


def _error_body(message: str, kind: str = "invalid_request_error") -> bytes:
    return json.dumps({"error": {"message": message, "type": kind, "code": None}}).encode()


def _usage(body: dict[str, Any], content: str) -> dict[str, int]:
    """Tokens as words: the messages' in, the reply's out (what tests can count)."""
    words_in = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
    words_out = len(content.split())
    return {
        "prompt_tokens": words_in,
        "completion_tokens": words_out,
        "total_tokens": words_in + words_out,
    }


def _completion(body: dict[str, Any], content: str) -> bytes:
    return json.dumps(
        {
            "id": f"chatcmpl-{hashlib.sha256(content.encode()).hexdigest()[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(body, content),
        }
    ).encode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--port", type=int, default=0, help="0: the OS picks one")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--rate-limit", type=float, default=None, help="requests a second")
    args = parser.parse_args(argv)
    server = OpenAIServer(
        latency=args.latency, port=args.port, host=args.host, rate_limit=args.rate_limit
    )
    server.record(False)
    with server:
        print(server.base_url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
