"""Provider helpers: verify the bus's forwarded request, build the signed answer.

Framework-free::

    provider = Provider(private_key, bus_public_key)
    request = provider.open(body, content_type)      # raises if not from the bus
    answer = provider.answer(request, {"jina": "Zuhura"})
    failure = provider.failure(request, "no such record")

and as an ASGI app (Starlette)::

    app = provider_app(provider, handler)   # handler(request) -> body, or raise Refusal
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kiungo.errors import KiungoError
from kiungo.protocol import (
    CONTENT_TYPES,
    Envelope,
    Format,
    Limits,
    PrivateKey,
    PublicKey,
    build_envelope,
    load_private_key,
    load_public_key,
    parse_envelope,
    response_data,
)

log = logging.getLogger("kiungo.sdk.provider")


@dataclass(frozen=True, slots=True)
class ForwardedRequest:
    """A request the bus forwarded, verified with the bus's public key."""

    api_code: str | None
    request_id: str | None
    user_id: str | None
    body: Any  # the consumer's esbBody (parsed JSON, or text / an object for XML)
    format: Format
    envelope: Envelope


class Refusal(Exception):
    """Raise from a handler to answer ``success: false`` with this message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Provider:
    def __init__(
        self,
        private_key: PrivateKey | str | bytes,
        bus_public_key: PublicKey | str | bytes,
        *,
        limits: Limits | None = None,
    ) -> None:
        self.key = (
            private_key if isinstance(private_key, PrivateKey) else load_private_key(private_key)
        )
        self.bus_key = (
            bus_public_key
            if isinstance(bus_public_key, PublicKey)
            else load_public_key(bus_public_key)
        )
        self.limits = limits or Limits()

    def open(self, body: bytes, content_type: str | None = None) -> ForwardedRequest:
        """Parse and verify a forwarded request; raises a KiungoError if it is not authentic."""
        envelope = parse_envelope(body, content_type, limits=self.limits)
        envelope.verify(self.bus_key)
        data = envelope.data
        return ForwardedRequest(
            api_code=_text(data.get("apiCode")),
            request_id=_text(data.get("requestId")),
            user_id=_text(data.get("userId")),
            body=data.get("esbBody"),
            format=envelope.format,
            envelope=envelope,
        )

    def answer(self, request: ForwardedRequest | Format, body: Any) -> bytes:
        """The signed success answer carrying ``body``."""
        return build_envelope(response_data(True, body=body), self.key, _format_of(request))

    def failure(self, request: ForwardedRequest | Format, message: str) -> bytes:
        """The signed failure answer (``success: false`` with ``message``)."""
        return build_envelope(response_data(False, message=message), self.key, _format_of(request))


def _format_of(request: ForwardedRequest | Format) -> Format:
    return request.format if isinstance(request, ForwardedRequest) else Format(request)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


Handler = Callable[[ForwardedRequest], Any | Awaitable[Any]]


def provider_app(
    provider: Provider, handler: Handler | Mapping[str, Handler], path: str = "/"
) -> Callable[..., Any]:
    """A Starlette app answering the bus with ``handler``'s result at ``path`` (or with
    each handler of a mapping at its own path).

    A request that does not verify gets 401 and a signed failure, as subscribers and
    providers answer a bad bus signature in the wild.
    """
    from starlette.applications import Starlette

    def endpoint_for(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await serve(handler, request)

        return endpoint

    async def serve(handler: Handler, request: Request) -> Response:
        body = await request.body()
        content_type = request.headers.get("content-type", "")
        fmt = Format.XML if "xml" in content_type.lower() else Format.JSON
        try:
            forwarded = provider.open(body, content_type)
        except KiungoError as exc:
            return Response(provider.failure(fmt, exc.message), 401, media_type=CONTENT_TYPES[fmt])
        try:
            result = handler(forwarded)
            if inspect.isawaitable(result):
                result = await result
            answer = provider.answer(forwarded, result)
        except Refusal as refusal:
            answer = provider.failure(forwarded, refusal.message)
        except Exception:
            log.exception("provider handler failed for request %s", forwarded.request_id)
            answer = provider.failure(forwarded, "the provider could not process the request")
        return Response(answer, 200, media_type=CONTENT_TYPES[forwarded.format])

    handlers = handler if isinstance(handler, Mapping) else {path: handler}
    return Starlette(
        routes=[Route(p, endpoint_for(h), methods=["POST"]) for p, h in handlers.items()]
    )
