"""kiungo's own HTTP client for the provider hop, against real servers on loopback."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from kiungo.engine.pool import AnswerTooLarge, Origin, PoolError
from kiungo.registry.endpoints import EndpointPolicy

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> bytes | None:
    """One HTTP request (headers and Content-Length body), or None at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + await reader.readexactly(length)


class Server:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        finally:
            writer.close()

    async def __aenter__(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


def ok(body: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    return head % len(body) + body


async def echo_keepalive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while (request := await read_request(reader)) is not None:
        writer.write(ok(request.split(b"\r\n\r\n", 1)[1]))
        await writer.drain()


def origin(port: int, allow: list[str] | None = None, host: str = "127.0.0.1") -> Origin:
    policy = EndpointPolicy(allow if allow is not None else [f"127.0.0.1:{port}"])
    return Origin("http", host, port, address_ok=policy.resolved_ok)


@pytest.fixture
async def echo() -> AsyncIterator[tuple[Server, int]]:
    server = Server(echo_keepalive)
    async with server as port:
        yield server, port


async def test_connections_are_kept_alive_and_reused(echo: tuple[Server, int]) -> None:
    """Ten requests in a row travel over one connection and each gets its own answer."""
    server, port = echo
    pool = origin(port)
    for i in range(10):
        sent = b'{"n":%d}' % i
        status, body, content_type = await pool.post(b"/x", sent, b"application/json", 1000)
        assert (status, body, content_type) == (200, sent, "application/json")
    assert server.connections == 1
    pool.close()


async def test_concurrent_requests_open_parallel_connections(echo: tuple[Server, int]) -> None:
    """Requests in flight at once each get a connection, and all are answered correctly."""
    server, port = echo
    pool = origin(port)
    results = await asyncio.gather(
        *(pool.post(b"/", b"%d" % i, b"text/plain", 100) for i in range(20))
    )
    assert [r[1] for r in results] == [b"%d" % i for i in range(20)]
    assert 1 < server.connections <= 20
    pool.close()


async def test_a_chunked_answer_is_assembled() -> None:
    """An answer in chunked transfer encoding arrives whole."""

    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        await writer.drain()

    async with Server(chunked) as port:
        assert (await origin(port).post(b"/", b"", b"text/plain", 100))[1] == b"hello world"


async def test_an_answer_ended_by_closing_the_connection_is_read() -> None:
    """A provider that answers without a length and closes is read to the end."""

    async def close_delimited(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
        await writer.drain()

    async with Server(close_delimited) as port:
        status, body, _ = await origin(port).post(b"/", b"", b"text/plain", 100)
        assert (status, body) == (200, b"until the end")


async def test_a_connection_the_provider_closed_while_idle_is_replaced() -> None:
    """A kept-alive connection the provider closed in between is replaced transparently."""

    async def one_per_connection(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await read_request(reader)
        writer.write(ok(b"fine"))  # promises keep-alive, then hangs up
        await writer.drain()

    server = Server(one_per_connection)
    async with server as port:
        pool = origin(port)
        for _ in range(3):
            assert (await pool.post(b"/", b"", b"text/plain", 100))[1] == b"fine"
        assert server.connections == 3


async def test_an_answer_over_the_limit_is_refused(echo: tuple[Server, int]) -> None:
    """An answer larger than the limit is refused, and the pool keeps working."""
    _, port = echo
    pool = origin(port)
    with pytest.raises(AnswerTooLarge):
        await pool.post(b"/", b"x" * 5000, b"text/plain", 1000)
    assert (await pool.post(b"/", b"small", b"text/plain", 1000))[1] == b"small"


async def test_malformed_http_is_an_error() -> None:
    """Garbage instead of HTTP is reported as a malformed answer."""

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()

    async with Server(garbage) as port:
        with pytest.raises(PoolError, match="malformed HTTP"):
            await origin(port).post(b"/", b"", b"text/plain", 100)


async def test_a_refused_connection_is_reported() -> None:
    """No server on the port: the error says the connection was refused."""
    async with Server(echo_keepalive) as port:
        pass  # the port is free again
    with pytest.raises(PoolError, match="connection refused"):
        await origin(port).post(b"/", b"", b"text/plain", 100)


async def test_a_timed_out_request_does_not_poison_the_pool() -> None:
    """After a request is abandoned on timeout, the next one gets a fresh answer."""
    release = asyncio.Event()
    calls = 0

    async def slow_then_fast(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal calls
        while (request := await read_request(reader)) is not None:
            calls += 1
            if calls == 1:
                await release.wait()
            writer.write(ok(request.split(b"\r\n\r\n", 1)[1]))
            await writer.drain()

    async with Server(slow_then_fast) as port:
        pool = origin(port)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await pool.post(b"/", b"first", b"text/plain", 100)
        assert (await pool.post(b"/", b"second", b"text/plain", 100))[1] == b"second"
        release.set()


async def test_names_resolving_to_loopback_need_an_explicit_entry(echo: tuple[Server, int]) -> None:
    """A host allowed by name cannot reach loopback unless loopback itself is listed."""
    _, port = echo
    by_name = origin(port, allow=[f"localhost:{port}"], host="localhost")
    with pytest.raises(PoolError, match="outside the allow-list"):
        await by_name.post(b"/", b"", b"text/plain", 100)
    explicit = origin(port, allow=[f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"],
                      host="localhost")  # fmt: skip
    assert (await explicit.post(b"/", b"hi", b"text/plain", 100))[1] == b"hi"


def test_the_policy_check_is_on_resolved_addresses() -> None:
    """The address check the pool uses refuses link-local even for an allowed name."""
    policy = EndpointPolicy(["api.example.go.tz"])
    assert policy.resolved_ok("api.example.go.tz", ipaddress.ip_address("203.0.113.7"), 80)
    assert not policy.resolved_ok("api.example.go.tz", ipaddress.ip_address("169.254.169.254"), 80)
