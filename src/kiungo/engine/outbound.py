"""Outbound calls to providers: one pooled keep-alive client per provider origin.

Each call checks the provider URL against the operator's allow-list, and host names are
checked again on the addresses DNS returns, so a registered endpoint cannot be turned
towards loopback, link-local or the bus itself by a DNS change.

Two clients can carry the hop, chosen by ``KIUNGO_OUTBOUND_CLIENT``: ``pool`` (kiungo's
own lean HTTP/1.1 client, engine/pool.py, the default) and ``aiohttp``; the exchange
benchmark measures both in one run (bench/RESULTS.md).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import ThreadedResolver

from kiungo.engine.errors import ProviderBadAnswer, ProviderTimeout, ProviderUnavailable
from kiungo.engine.pool import AnswerTooLarge, Origin, PoolError
from kiungo.registry.endpoints import EndpointPolicy
from kiungo.registry.errors import EndpointNotAllowed

OriginKey = tuple[str, str, int]


class Outbound:
    def __init__(
        self, policy: EndpointPolicy, *, max_answer_bytes: int, client: str = "pool"
    ) -> None:
        if client not in ("pool", "aiohttp"):
            raise ValueError("outbound client must be 'pool' or 'aiohttp'")
        self.policy = policy
        self.max_answer_bytes = max_answer_bytes
        self.client = client
        self._checked: dict[str, tuple[OriginKey, bytes]] = {}
        self._origins: dict[OriginKey, Origin] = {}
        self._sessions: dict[OriginKey, aiohttp.ClientSession] = {}
        self._ssl = ssl.create_default_context()

    def _target(self, url: str) -> tuple[OriginKey, bytes]:
        """(origin, path) of an allowed URL; the allow-list verdict is cached per URL."""
        checked = self._checked.get(url)
        if checked is None:
            target = self.policy.check_url(url)
            parts = urlsplit(url)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            checked = ((target.scheme, target.host, target.port), path.encode("ascii"))
            self._checked[url] = checked
        return checked

    async def post(
        self, url: str, body: bytes, content_type: str, timeout: float, who: str
    ) -> tuple[int, bytes, str]:
        """POST to a provider; (status, body, content type) or a provider error."""
        try:
            origin, path = self._target(url)
        except (EndpointNotAllowed, UnicodeEncodeError):
            raise ProviderUnavailable(
                f"provider {who} endpoint is not allowed by this bus's allow-list"
            ) from None
        try:
            async with asyncio.timeout(timeout):
                if self.client == "pool":
                    return await self._pool(origin).post(
                        path, body, content_type.encode(), self.max_answer_bytes
                    )
                return await self._aiohttp(origin, url, body, content_type)
        except TimeoutError:
            raise ProviderTimeout(f"provider {who} did not answer within {timeout:g} s") from None
        except AnswerTooLarge:
            raise ProviderBadAnswer(
                f"provider {who} answered more than {self.max_answer_bytes} bytes"
            ) from None
        except PoolError as exc:
            raise ProviderUnavailable(f"provider {who} is unavailable ({exc.reason})") from None
        except aiohttp.ClientConnectorError as exc:
            refused = isinstance(exc.os_error, ConnectionRefusedError)
            reason = "connection refused" if refused else "cannot connect"
            raise ProviderUnavailable(f"provider {who} is unavailable ({reason})") from None
        except (aiohttp.ClientError, OSError):
            raise ProviderUnavailable(
                f"provider {who} is unavailable (connection failed)"
            ) from None

    def _pool(self, key: OriginKey) -> Origin:
        origin = self._origins.get(key)
        if origin is None:
            origin = Origin(*key, address_ok=self.policy.resolved_ok, ssl_context=self._ssl)
            self._origins[key] = origin
        return origin

    async def _aiohttp(
        self, key: OriginKey, url: str, body: bytes, content_type: str
    ) -> tuple[int, bytes, str]:
        session = self._sessions.get(key)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=0, limit_per_host=256, keepalive_timeout=30,
                resolver=_PolicyResolver(self.policy), ttl_dns_cache=10,
            )  # fmt: skip
            session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",)
            )
            self._sessions[key] = session
        async with session.post(url, data=body, headers={"Content-Type": content_type}) as r:
            length = r.content_length
            if length is not None and length > self.max_answer_bytes:
                raise AnswerTooLarge("too large")
            chunks, size = [], 0
            async for chunk in r.content.iter_any():
                size += len(chunk)
                if size > self.max_answer_bytes:
                    raise AnswerTooLarge("too large")
                chunks.append(chunk)
            return r.status, b"".join(chunks), r.headers.get("Content-Type", "")

    async def close(self) -> None:
        for origin in self._origins.values():
            origin.close()
        self._origins.clear()
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()


class _PolicyResolver(AbstractResolver):
    """aiohttp's resolver, filtered by the allow-list."""

    def __init__(self, policy: EndpointPolicy) -> None:
        self._inner = ThreadedResolver()
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[dict[str, Any]]:
        infos = await self._inner.resolve(host, port, family)
        allowed = [
            info
            for info in infos
            if self._policy.resolved_ok(host, ipaddress.ip_address(info["host"]), port)
        ]
        if not allowed:
            raise OSError(f"{host} resolves only to addresses outside the allow-list")
        return allowed

    async def close(self) -> None:
        await self._inner.close()
