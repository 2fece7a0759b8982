"""Outbound calls to providers: one pooled keep-alive client per provider origin.

Each call checks the provider URL against the operator's allow-list, and host names are
checked again on the addresses DNS returns, so a registered endpoint cannot be turned
towards loopback, link-local or the bus itself by a DNS change.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import ThreadedResolver

from kiungo.engine.errors import ProviderBadAnswer, ProviderTimeout, ProviderUnavailable
from kiungo.registry.endpoints import EndpointPolicy
from kiungo.registry.errors import EndpointNotAllowed


class _PolicyResolver(AbstractResolver):
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


class Outbound:
    def __init__(self, policy: EndpointPolicy, *, max_answer_bytes: int) -> None:
        self.policy = policy
        self.max_answer_bytes = max_answer_bytes
        self._sessions: dict[tuple[str, str, int], aiohttp.ClientSession] = {}
        self._checked: dict[str, tuple[str, str, int]] = {}

    def _origin(self, url: str) -> tuple[str, str, int]:
        origin = self._checked.get(url)
        if origin is None:
            target = self.policy.check_url(url)
            origin = (target.scheme, target.host, target.port)
            self._checked[url] = origin
        return origin

    def _session(self, origin: tuple[str, str, int]) -> aiohttp.ClientSession:
        session = self._sessions.get(origin)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=0,
                limit_per_host=256,
                keepalive_timeout=30,
                resolver=_PolicyResolver(self.policy),
                ttl_dns_cache=10,
            )
            session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",)
            )
            self._sessions[origin] = session
        return session

    async def post(
        self, url: str, body: bytes, content_type: str, timeout: float, who: str
    ) -> tuple[int, bytes, str]:
        """POST to a provider; (status, body, content type) or a provider error."""
        try:
            session = self._session(self._origin(url))
        except EndpointNotAllowed:
            raise ProviderUnavailable(
                f"provider {who} endpoint is not allowed by this bus's allow-list"
            ) from None
        try:
            async with asyncio.timeout(timeout):
                async with session.post(
                    url, data=body, headers={"Content-Type": content_type}
                ) as response:
                    content = await self._read(response, who)
                    return response.status, content, response.headers.get("Content-Type", "")
        except TimeoutError:
            raise ProviderTimeout(f"provider {who} did not answer within {timeout:g} s") from None
        except aiohttp.ClientConnectorError as exc:
            reason = (
                "connection refused"
                if isinstance(exc.os_error, ConnectionRefusedError)
                else "cannot connect"
            )
            raise ProviderUnavailable(f"provider {who} is unavailable ({reason})") from None
        except (aiohttp.ClientError, OSError):
            raise ProviderUnavailable(
                f"provider {who} is unavailable (connection failed)"
            ) from None

    async def _read(self, response: aiohttp.ClientResponse, who: str) -> bytes:
        length = response.content_length
        if length is not None and length > self.max_answer_bytes:
            raise ProviderBadAnswer(
                f"provider {who} answered more than {self.max_answer_bytes} bytes"
            )
        chunks, size = [], 0
        async for chunk in response.content.iter_any():
            size += len(chunk)
            if size > self.max_answer_bytes:
                raise ProviderBadAnswer(
                    f"provider {who} answered more than {self.max_answer_bytes} bytes"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()
