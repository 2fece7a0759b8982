"""Bearer tokens for systems: a lean HMAC-SHA256 token, checked in microseconds.

``base64url(payload) "." base64url(mac)`` where the payload names the system, the version
of its secret and the expiry. Any process holding the token key accepts a token any other
issued. A token stops working when it expires, when its system is disabled, or when the
system's secret is reset (the secret version moves); those last two are checked against
the registry snapshot on every request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

import orjson

from kiungo.errors import ClientError


class InvalidToken(ClientError):
    code = "client.invalid_token"
    status = 401


_CACHE_MAX = 50_000


class TokenService:
    def __init__(self, key: bytes, ttl_seconds: int = 3600) -> None:
        if len(key) < 16:
            raise ValueError("token key must be at least 16 bytes")
        self._key = key
        self.ttl = ttl_seconds
        self._verified: dict[str, tuple[int, int, float]] = {}

    def issue(self, system_id: int, secret_version: int, now: float) -> str:
        payload = orjson.dumps(
            {"s": system_id, "v": secret_version, "e": int(now) + self.ttl,
             "n": base64.urlsafe_b64encode(os.urandom(9)).decode()}
        )  # fmt: skip
        body = base64.urlsafe_b64encode(payload).rstrip(b"=")
        mac = hmac.new(self._key, body, hashlib.sha256).digest()
        return (body + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode("ascii")

    def check(self, token: str, now: float) -> tuple[int, int]:
        """(system id, secret version) of a valid, unexpired token; raises InvalidToken."""
        hit = self._verified.get(token)
        if hit is None:
            hit = self._verify(token)
            if len(self._verified) >= _CACHE_MAX:
                self._verified.clear()
            self._verified[token] = hit
        system_id, version, expires = hit
        if now >= expires:
            self._verified.pop(token, None)
            raise InvalidToken("access token has expired")
        return system_id, version

    def _verify(self, token: str) -> tuple[int, int, float]:
        body, dot, mac = token.encode("ascii", "replace").partition(b".")
        if not dot or not body or not mac:
            raise InvalidToken("access token is malformed")
        expected = hmac.new(self._key, body, hashlib.sha256).digest()
        try:
            given = base64.urlsafe_b64decode(mac + b"=" * (-len(mac) % 4))
            payload = orjson.loads(base64.urlsafe_b64decode(body + b"=" * (-len(body) % 4)))
        except (binascii.Error, ValueError, orjson.JSONDecodeError):
            raise InvalidToken("access token is malformed") from None
        if not hmac.compare_digest(expected, given):
            raise InvalidToken("access token is not valid for this bus")
        try:
            return int(payload["s"]), int(payload["v"]), float(payload["e"])
        except (KeyError, TypeError, ValueError):
            raise InvalidToken("access token is malformed") from None
