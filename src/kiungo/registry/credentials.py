"""Client credentials of systems.

Client secrets are 256-bit random values, so a keyed hash (HMAC-SHA256 with the bus's
pepper) is the right check: the token endpoint is on the hot path, and a password hash
would cost 20-150 ms per token (PERF.md). The database alone cannot be used to test
guesses offline without the pepper, which lives apart from it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid


def new_client_id() -> str:
    return str(uuid.uuid4())


def new_client_secret() -> str:
    return secrets.token_urlsafe(32)


def hash_secret(pepper: bytes, secret: str) -> str:
    return hmac.new(pepper, secret.encode("utf-8"), hashlib.sha256).hexdigest()


def check_secret(pepper: bytes, secret: str, expected_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(pepper, secret), expected_hash)
