"""A lean HTTP/1.1 client for the hop to providers: keep-alive connections per origin,
asyncio protocols, and httptools (the C parser uvicorn uses) for the answers.

It does only what the bus needs — POST a body, read a bounded answer — so the hop costs
a fraction of a general-purpose client's (PERF.md: aiohttp's client alone is about 100 µs
of a 370 µs exchange). Host names are resolved here and each address is checked against
the allow-list before connecting; connections are reused until the provider closes them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable

import httptools

_MAX_IDLE = 64  # idle connections kept per origin
_DNS_TTL = 10.0


class PoolError(Exception):
    """The request could not be sent or its answer not read; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AnswerTooLarge(PoolError):
    pass


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[bytes] | None = None
        self._body: list[bytes] = []
        self._size = 0
        self._limit = 0
        self.status = 0
        self.content_type = ""
        self.keep_alive = False
        self._delimited = False
        self._closed = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # bytes nobody asked for: the connection is unusable
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(PoolError("provider switched protocols"))
        except httptools.HttpParserError:
            self._fail(PoolError("provider answered malformed HTTP"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._waiter is not None and not self._waiter.done():
            if self.status and not self._delimited:  # an answer ended by the connection's end
                self._waiter.set_result(b"".join(self._body))
            else:
                self._fail(PoolError("provider closed the connection"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-type":
            self.content_type = value.decode("latin-1")
        elif name in (b"content-length", b"transfer-encoding"):
            self._delimited = True

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self.keep_alive = self._parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        # (Raising here would reach data_received wrapped as a parser error.)
        self._size += len(body)
        if self._size > self._limit:
            self._fail(AnswerTooLarge(f"answer larger than {self._limit} bytes"))
        else:
            self._body.append(body)

    def on_message_complete(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(b"".join(self._body))

    # use
    def _fail(self, exc: PoolError) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        self.close()

    @property
    def usable(self) -> bool:
        return not self._closed and self.transport is not None and not self.transport.is_closing()

    def send(self, request: bytes, limit: int) -> asyncio.Future[bytes]:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._body, self._size, self._limit = [], 0, limit
        self.status, self.content_type, self.keep_alive = 0, "", False
        self._delimited = False
        self.transport.write(request)
        return self._waiter

    def done(self) -> None:
        self._waiter = None

    def close(self) -> None:
        self._closed = True
        if self.transport is not None:
            self.transport.close()


class Origin:
    """Keep-alive connections to one scheme://host:port."""

    def __init__(
        self,
        scheme: str,
        host: str,
        port: int,
        *,
        address_ok: Callable[[str, ipaddress.IPv4Address | ipaddress.IPv6Address, int], bool],
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.scheme, self.host, self.port = scheme, host, port
        self.address_ok = address_ok
        self.ssl = ssl_context if scheme == "https" else None
        default = 443 if scheme == "https" else 80
        self.host_header = (host if port == default else f"{host}:{port}").encode("idna")
        self._idle: list[_Connection] = []
        self._addresses: list[str] = []
        self._resolved_at = 0.0

    async def _resolve(self) -> list[str]:
        if self._addresses and time.monotonic() - self._resolved_at < _DNS_TTL:
            return self._addresses
        try:
            ip = ipaddress.ip_address(self.host)
            candidates = [str(ip)]
        except ValueError:
            loop = asyncio.get_running_loop()
            try:
                infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise PoolError(f"cannot resolve host ({exc.strerror or exc})") from None
            candidates = list(dict.fromkeys(info[4][0] for info in infos))
        allowed = [
            a for a in candidates if self.address_ok(self.host, ipaddress.ip_address(a), self.port)
        ]
        if not allowed:
            raise PoolError("host resolves only to addresses outside the allow-list")
        self._addresses, self._resolved_at = allowed, time.monotonic()
        return allowed

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        last: OSError | None = None
        for address in await self._resolve():
            try:
                _, conn = await loop.create_connection(
                    _Connection, address, self.port, ssl=self.ssl,
                    server_hostname=self.host if self.ssl else None,
                )  # fmt: skip
            except OSError as exc:
                last = exc
                continue
            sock = conn.transport.get_extra_info("socket") if conn.transport else None
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return conn
        if isinstance(last, ConnectionRefusedError):
            raise PoolError("connection refused")
        raise PoolError(f"cannot connect ({last.strerror if last else 'no address'})")

    def _request(self, path: bytes, body: bytes, content_type: bytes) -> bytes:
        return b"".join((
            b"POST ", path, b" HTTP/1.1\r\nHost: ", self.host_header,
            b"\r\nContent-Type: ", content_type,
            b"\r\nContent-Length: ", str(len(body)).encode(),
            b"\r\nConnection: keep-alive\r\n\r\n", body,
        ))  # fmt: skip

    async def post(
        self, path: bytes, body: bytes, content_type: bytes, limit: int
    ) -> tuple[int, bytes, str]:
        request = self._request(path, body, content_type)
        while self._idle:
            conn = self._idle.pop()
            if not conn.usable:
                continue
            try:
                return self._finish(conn, await self._exchange(conn, request, limit))
            except AnswerTooLarge:
                raise
            except PoolError:
                # A kept-alive connection the provider closed as we reused it (no answer
                # started): the request is sent once more on a new connection.
                if conn.status:
                    raise
        conn = await self._connect()
        return self._finish(conn, await self._exchange(conn, request, limit))

    @staticmethod
    async def _exchange(conn: _Connection, request: bytes, limit: int) -> bytes:
        try:
            return await conn.send(request, limit)
        except BaseException:  # failed, timed out or cancelled: the connection is spent
            conn.close()
            raise

    def _finish(self, conn: _Connection, body: bytes) -> tuple[int, bytes, str]:
        conn.done()
        if conn.keep_alive and conn.usable and len(self._idle) < _MAX_IDLE:
            self._idle.append(conn)
        else:
            conn.close()
        return conn.status, body, conn.content_type

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()
