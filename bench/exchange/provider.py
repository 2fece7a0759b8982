"""The benchmark's provider: a lean, correct provider system in its own process.

Asyncio protocol on uvloop with the httptools parser, keep-alive, no framework, so that
the provider costs as little as a real provider can while still doing its part of the
protocol: every request is parsed and its signature verified, and every answer is a
success envelope freshly signed with the provider's key (so the bus's step 7 is real).

Two paths, one per kind of caller, each verified with the one key that signs it:

- ``/bus/...``: a request forwarded by the bus, verified with the bus public key;
- ``/direct/...``: the consumer's own envelope (nginx proxying it, or the open-loop
  generator calling the provider directly), verified with the consumer's public key.

A request that does not verify is answered 401 with a signed failure envelope.

Usage: ``provider.py KEYS.json PORT`` where KEYS.json holds ``provider_key`` (base64
PKCS#8), ``bus_public_key`` and ``consumer_public_key`` (base64 SPKI).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

import httptools
import uvloop

from kiungo.errors import KiungoError
from kiungo.protocol import (
    Format,
    PrivateKey,
    PublicKey,
    build_envelope,
    load_private_key,
    load_public_key,
    parse_envelope,
    response_data,
)

# What the provider answers: the shape of the demo's NIDA-VERIFY answer.
ANSWER_BODY: dict[str, Any] = {
    "nin": "19900101-11111-00001-23",
    "jina": "Zuhura Mwanaisha Salum",
    "hali": "HAI",
    "imethibitishwa": True,
}
_HEAD = b"HTTP/1.1 %d %s\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: %d\r\n"


class Keys:
    def __init__(self, provider: PrivateKey, bus: PublicKey, consumer: PublicKey) -> None:
        self.provider = provider
        self.bus = bus
        self.consumer = consumer


def answer(keys: Keys, path: bytes, body: bytes) -> tuple[int, bytes]:
    """(status, signed envelope) for one request."""
    key = keys.bus if path.startswith(b"/bus/") else keys.consumer
    try:
        envelope = parse_envelope(body, "application/json")
        envelope.verify(key)
    except KiungoError as exc:
        return 401, build_envelope(
            response_data(False, message=exc.message), keys.provider, Format.JSON
        )
    request_id = envelope.data.get("requestId")
    data = response_data(
        True,
        body=ANSWER_BODY,
        request_id=request_id if isinstance(request_id, str) else None,
    )
    return 200, build_envelope(data, keys.provider, Format.JSON)


class ProviderProtocol(asyncio.Protocol):
    __slots__ = ("_body", "_keys", "_parser", "_transport", "_url")

    def __init__(self, keys: Keys) -> None:
        self._keys = keys
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            assert self._transport is not None
            self._transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            self._transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url = b""
        self._body = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        assert self._transport is not None
        if self._parser.get_method() != b"POST":
            status, out = 405, b'{"error":"POST only"}'
        else:
            status, out = answer(self._keys, self._url, b"".join(self._body))
        keep = self._parser.should_keep_alive()
        head = _HEAD % (status, b"OK" if status == 200 else b"Error", len(out))
        if not keep:
            head += b"Connection: close\r\n"
        self._transport.write(head + b"\r\n" + out)
        if not keep:
            self._transport.close()


async def serve(keys: Keys, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = await loop.create_server(
        lambda: ProviderProtocol(keys), "127.0.0.1", port, backlog=1024, reuse_address=True
    )
    print(f"provider listening on 127.0.0.1:{port}", flush=True)
    await stop.wait()
    server.close()


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    keys = Keys(
        load_private_key(spec["provider_key"]),
        load_public_key(spec["bus_public_key"]),
        load_public_key(spec["consumer_public_key"]),
    )
    uvloop.run(serve(keys, int(sys.argv[2])))


if __name__ == "__main__":
    main()
