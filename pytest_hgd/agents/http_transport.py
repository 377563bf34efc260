"""A lean HTTP/1.1 transport for the HTTP agent's `httpx.AsyncClient`.

httpx's own transport (httpcore on anyio) spends 0.6-1 ms of CPU per request, and its pool
does work that grows with the square of its connection count; against a fast server with
32 calls in flight, that CPU, not the server, sets the pace of the gate (measured in
docs/performance.md). This transport keeps httpx as the client (request and response
models, headers, timeouts, exceptions) and h11 as the HTTP/1.1 parser, and replaces only
the connection handling: a keep-alive pool of asyncio streams, one write per request, the
whole body read before the response is returned. It costs a fraction of the CPU per request.

It is used for ``http://`` and ``https://`` endpoints without a proxy; the agent keeps
httpx's own transport where an environment proxy applies (see `proxied`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import urllib.request

import h11
import httpx

from pytest_hgd.core.deadline import within

__all__ = ["LeanTransport", "proxied"]

_READ_SIZE = 1 << 16
Origin = tuple[str, str, int]


def proxied(url: str) -> bool:
    """Whether an environment proxy (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``, minus
    ``NO_PROXY``) applies to ``url``, as httpx would route it."""
    parsed = httpx.URL(url)
    proxies = {k.lower(): v for k, v in urllib.request.getproxies().items()}
    if not (proxies.get(parsed.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(parsed.host)


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT)
        self.used = False  # has carried a request before: the server may have closed it

    def idle_and_open(self) -> bool:
        """Fit for the next request: open, and nothing came in since the last response (a
        server that times an idle connection out may send a 408 before it closes it, and
        that must not be taken for the next reply). The unread bytes are in the reader's
        buffer, which has no public accessor; without it, only a closed stream is noticed
        (``tests/test_private_apis.py`` pins it to Python 3.10-3.14 and tests the fallback)."""
        unread = getattr(self.reader, "_buffer", b"")
        return (
            self.h11.our_state is h11.IDLE
            and not unread
            and not self.reader.at_eof()
            and not self.writer.is_closing()
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class BodyTooLarge(Exception):
    """A response body passed the transport's ``max_body`` bytes: not read further."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"response body over {limit} bytes")
        self.limit = limit


class LeanTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 keep-alive connections on asyncio streams, parsed with h11.

    At most ``max_connections`` requests are in flight at once (the others wait), and at
    most that many connections are kept open between requests. A request on a kept
    connection that the server had closed meanwhile (no response byte came back) is sent
    again on another connection, as browsers do; on a new connection, never.
    """

    def __init__(
        self,
        max_connections: int = 32,
        ssl_context: ssl.SSLContext | None = None,
        max_body: int | None = None,
    ):
        self._max = max_connections
        self._max_body = max_body
        self._ssl = ssl_context
        self._slots: asyncio.Semaphore | None = None
        self._idle: dict[Origin, list[_Connection]] = {}
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._max)
        try:
            await within(timeouts.get("pool"), self._slots.acquire())
        except asyncio.TimeoutError:
            raise httpx.PoolTimeout("no connection free in time", request=request) from None
        try:
            body = await request.aread()
            while True:
                connection = await self._connection(request, timeouts)
                try:
                    return await self._exchange(connection, request, body, timeouts)
                except _StaleConnection:
                    continue  # the server had closed it: once more on a new connection
        finally:
            self._slots.release()

    async def aclose(self) -> None:
        """Close every kept connection; one in use is closed when its request ends."""
        self._closed = True
        idle, self._idle = self._idle, {}
        for connection in (c for connections in idle.values() for c in connections):
            connection.close()

    async def _connection(
        self, request: httpx.Request, timeouts: dict[str, float | None]
    ) -> _Connection:
        url = request.url
        origin = _origin(request)
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if connection.idle_and_open():
                return connection
            connection.close()
        tls: ssl.SSLContext | None = None
        if origin[0] == "https":
            if self._ssl is None:  # made once, on first use: each one costs ~25 ms
                self._ssl = httpx.create_ssl_context()  # httpx's own default trust
            tls = self._ssl
        try:
            reader, writer = await within(
                timeouts.get("connect"),
                asyncio.open_connection(
                    origin[1],
                    origin[2],
                    ssl=tls,
                    server_hostname=origin[1] if tls else None,
                    limit=_READ_SIZE,
                ),
            )
        except asyncio.TimeoutError:
            message = f"connecting to {url.host} timed out"
            raise httpx.ConnectTimeout(message, request=request) from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
        return _Connection(reader, writer)

    async def _exchange(
        self,
        connection: _Connection,
        request: httpx.Request,
        body: bytes,
        timeouts: dict[str, float | None],
    ) -> httpx.Response:
        reused, connection.used = connection.used, True
        keep = False
        try:
            response, keep = await self._send_and_read(connection, request, body, timeouts)
            return response
        except _NothingBack as exc:
            if reused:
                raise _StaleConnection from exc
            raise httpx.RemoteProtocolError(str(exc), request=request) from None
        finally:
            if keep and not self._closed:
                self._keep(_origin(request), connection)
            else:  # failed, cancelled or not keep-alive: never reused half-read
                connection.close()

    async def _send_and_read(
        self,
        connection: _Connection,
        request: httpx.Request,
        body: bytes,
        timeouts: dict[str, float | None],
    ) -> tuple[httpx.Response, bool]:
        # long: one HTTP/1.1 exchange as h11's state machine drives it, its states in one place
        conn = connection.h11
        try:
            data = conn.send(
                h11.Request(
                    method=request.method,
                    target=request.url.raw_path,
                    headers=list(request.headers.raw),
                )
            )
            if body:
                data += conn.send(h11.Data(data=body))
            data += conn.send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:
            raise httpx.LocalProtocolError(str(exc), request=request) from None
        try:
            connection.writer.write(data)
            await within(timeouts.get("write"), connection.writer.drain())
        except asyncio.TimeoutError:
            raise httpx.WriteTimeout("sending the request timed out", request=request) from None
        except OSError as exc:
            raise httpx.WriteError(str(exc) or type(exc).__name__, request=request) from exc
        head: h11.Response | None = None
        chunks: list[bytes] = []
        size = 0
        received = False
        read_timeout = timeouts.get("read")
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await within(read_timeout, connection.reader.read(_READ_SIZE))
                    if not data and not received:
                        raise _NothingBack("the server closed the connection without a reply")
                    received = True
                    conn.receive_data(data)
                elif isinstance(event, h11.Response):
                    head = event
                elif isinstance(event, h11.Data):
                    chunks.append(bytes(event.data))
                    size += len(event.data)
                    if self._max_body is not None and size > self._max_body:
                        connection.close()  # the rest is never read: not reusable
                        raise BodyTooLarge(self._max_body)
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):  # pragma: no cover - h11 raises
                    raise httpx.RemoteProtocolError("connection closed", request=request)
        except asyncio.TimeoutError:
            raise httpx.ReadTimeout("reading the response timed out", request=request) from None
        except h11.RemoteProtocolError as exc:
            raise httpx.RemoteProtocolError(str(exc), request=request) from None
        except OSError as exc:
            if not received:
                raise _NothingBack(str(exc) or type(exc).__name__) from exc
            raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc
        if head is None:  # pragma: no cover - h11 gives the Response before any body
            raise httpx.RemoteProtocolError("a body without a status line", request=request)
        keep = conn.our_state is h11.DONE and conn.their_state is h11.DONE
        if keep:
            conn.start_next_cycle()
            keep = not conn.trailing_data[0]  # bytes past the reply: not a clean connection
        response = httpx.Response(
            head.status_code,
            headers=head.headers,
            content=b"".join(chunks),
            request=request,
            extensions={
                "http_version": b"HTTP/" + head.http_version,
                "reason_phrase": bytes(head.reason),
            },
        )
        return response, keep

    def _keep(self, origin: Origin, connection: _Connection) -> None:
        """Back to the pool; the oldest kept connection closes beyond ``max_connections``."""
        idle = self._idle.setdefault(origin, [])
        idle.append(connection)
        if len(idle) > self._max:
            idle.pop(0).close()


def _origin(request: httpx.Request) -> Origin:
    url = request.url
    return (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))


class _NothingBack(Exception):
    """The connection ended before any byte of a response came back."""


class _StaleConnection(Exception):
    """A kept connection the server had closed: the request was not answered."""
