"""The engine's HTTP face: a bare ASGI app for the hot paths (token, engine, health).

No framework sits on the hot path (PERF.md: a bare ASGI callable costs half of Starlette's
routing); everything else goes to the ``fallback`` app (the operator API and its docs).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from kiungo.auth.endpoint import TOKEN_PATH, TokenEndpoint
from kiungo.engine.errors import MethodNotAllowed
from kiungo.engine.metrics import EngineMetrics
from kiungo.engine.pipeline import Engine
from kiungo.errors import KiungoError
from kiungo.protocol import EnvelopeTooLarge

log = logging.getLogger("kiungo.http")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ENGINE_ROUTES = {
    "/engine/esb/request": "request",
    "/engine/esb/nida-request": "nida",
    "/engine/esb/push-request": "push",
    "/engine/esb/async": "async",
    "/engine/esb/async-response": "async",
}
_JSON = [(b"content-type", b"application/json")]
_NO_STORE = [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]


class TooLarge(Exception):
    pass


async def read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("client went away")
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise TooLarge
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


class EngineApp:
    def __init__(
        self,
        *,
        engine: Engine,
        token_endpoint: TokenEndpoint,
        max_body: int,
        health: Callable[[], Awaitable[tuple[int, dict[str, Any]]]],
        metrics: EngineMetrics,
        fallback: ASGIApp,
    ) -> None:
        self.engine = engine
        self.token_endpoint = token_endpoint
        self.max_body = max_body
        self.health = health
        self.metrics = metrics
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.fallback(scope, receive, send)
        path = scope["path"]
        kind = ENGINE_ROUTES.get(path)
        if kind is not None:
            return await self._engine(scope, receive, send, kind)
        if path == TOKEN_PATH:
            return await self._token(scope, receive, send)
        if path == "/healthz":
            return await respond(send, 200, b'{"status":"ok"}', _JSON)
        if path == "/readyz":
            status, detail = await self.health()
            return await respond(send, status, orjson.dumps(detail), _JSON)
        if path == "/metrics":
            body, content_type = self.metrics.expose()
            return await respond(send, 200, body, [(b"content-type", content_type.encode())])
        return await self.fallback(scope, receive, send)

    async def _engine(self, scope: Scope, receive: Receive, send: Send, kind: str) -> None:
        content_type = _header(scope, b"content-type") or ""
        refusal: KiungoError | None = None
        body = b""
        if scope["method"] != "POST":
            refusal = MethodNotAllowed(f"{scope['path']} accepts POST only")
        else:
            try:
                body = await read_body(receive, self.max_body)
            except TooLarge:
                refusal = EnvelopeTooLarge(
                    f"request body is larger than the limit of {self.max_body} bytes"
                )
            except ConnectionError:
                return
        started = time.perf_counter()
        status, answer, answer_type, error = await self.engine.handle(
            kind, body, content_type, _header(scope, b"authorization"), refusal=refusal
        )
        self.metrics.exchange(kind, status, time.perf_counter() - started)
        headers = [(b"content-type", answer_type.encode())]
        if error is not None:
            headers.append((b"x-kiungo-error", error.encode()))
        if status == 405:
            headers.append((b"allow", b"POST"))
        await respond(send, status, answer, headers)

    async def _token(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            return await respond(
                send, 405, b'{"error":"invalid_request","error_description":"use POST"}',
                [*_JSON, (b"allow", b"POST")],
            )  # fmt: skip
        try:
            body = await read_body(receive, 8192)
        except TooLarge:
            return await respond(
                send, 400, b'{"error":"invalid_request","error_description":"body too large"}',
                _JSON,
            )  # fmt: skip
        except ConnectionError:
            return None
        status, answer = self.token_endpoint.handle(body, _header(scope, b"authorization"))
        self.metrics.token(status)
        headers = [*_JSON, *_NO_STORE]
        if status == 401:
            headers.append((b"www-authenticate", b'Basic realm="kiungo"'))
        await respond(send, status, answer, headers)
        return None
