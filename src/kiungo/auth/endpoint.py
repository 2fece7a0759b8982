"""The OAuth2 token endpoint (client credentials) at the path the connectors use.

Connectors send the credentials twice — HTTP Basic and form fields — so both are read;
if both are present they must agree. Errors follow RFC 6749: ``invalid_client`` with 401,
``invalid_request`` / ``unsupported_grant_type`` with 400; nothing else is revealed.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable
from urllib.parse import parse_qs

import orjson

from kiungo.auth.tokens import TokenService
from kiungo.registry.credentials import check_secret
from kiungo.registry.snapshot import RegistryCache

TOKEN_PATH = "/gw/govesb-uaa/oauth/token"  # noqa: S105 (a path, not a secret)
SCOPE = "engine"
_MAX_FORM = 8192


def _error(status: int, error: str, description: str) -> tuple[int, bytes]:
    return status, orjson.dumps({"error": error, "error_description": description})


class TokenEndpoint:
    def __init__(
        self,
        tokens: TokenService,
        registry: RegistryCache,
        pepper: bytes,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tokens = tokens
        self.registry = registry
        self.pepper = pepper
        self.clock = clock

    def handle(self, body: bytes, authorization: str | None) -> tuple[int, bytes]:
        if len(body) > _MAX_FORM:
            return _error(400, "invalid_request", "request body too large")
        try:
            form = {k: v[0] for k, v in parse_qs(body.decode("utf-8"), max_num_fields=16).items()}
        except (UnicodeDecodeError, ValueError):
            return _error(400, "invalid_request", "body must be application/x-www-form-urlencoded")
        grant_type = form.get("grant_type")
        if grant_type != "client_credentials":
            if grant_type is None:
                return _error(400, "invalid_request", "grant_type is required")
            return _error(400, "unsupported_grant_type", "only client_credentials is supported")
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization[:6].lower() == "basic ":
            try:
                basic_id, sep, basic_secret = (
                    base64.b64decode(authorization[6:].strip(), validate=True)
                    .decode("utf-8")
                    .partition(":")
                )
            except (binascii.Error, ValueError):
                return _error(401, "invalid_client", "client authentication failed")
            if (
                not sep
                or (client_id or basic_id) != basic_id
                or (secret or basic_secret) != basic_secret
            ):
                return _error(401, "invalid_client", "client authentication failed")
            client_id, secret = basic_id, basic_secret
        if not client_id or not secret:
            return _error(401, "invalid_client", "client authentication failed")
        system = self.registry.current.by_client_id.get(client_id)
        # Same answer for unknown, disabled and wrong secret: nothing to learn from it.
        if system is None or not check_secret(self.pepper, secret, system.secret_hash):
            return _error(401, "invalid_client", "client authentication failed")
        if not system.active:
            return _error(401, "invalid_client", "client authentication failed")
        token = self.tokens.issue(system.id, system.secret_version, self.clock())
        return 200, orjson.dumps(
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": self.tokens.ttl,
                "scope": SCOPE,
            }
        )
