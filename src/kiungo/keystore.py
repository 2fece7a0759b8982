"""The bus's own secrets, kept in the data directory: its signing key pair, the token key
and the client-secret pepper. Each is created on first start (atomically, so that several
processes starting together agree on one) and read on every later start.

The :class:`Signer` alone holds the bus private key; the rest of kiungo asks it to sign.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiungo.protocol import (
    Format,
    PrivateKey,
    PublicKey,
    build_envelope,
    failure_envelope,
    generate_private_key,
    load_private_key,
)


class Signer:
    """Signs every envelope the bus emits with the bus key."""

    __slots__ = ("_key", "public_key")

    def __init__(self, key: PrivateKey) -> None:
        self._key = key
        self.public_key: PublicKey = key.public_key

    def envelope(
        self, data: Mapping[str, Any], fmt: Format = Format.JSON, *, root: str = "esbresponse"
    ) -> bytes:
        return build_envelope(data, self._key, fmt, root=root)

    def failure(
        self, message: str, fmt: Format = Format.JSON, *, request_id: str | None = None
    ) -> bytes:
        return failure_envelope(message, self._key, fmt, request_id=request_id)

    def __repr__(self) -> str:
        return f"Signer({self.public_key!r})"


@dataclass(frozen=True)
class BusSecrets:
    signer: Signer
    token_key: bytes
    pepper: bytes


def _create_once(path: Path, content: bytes) -> bytes:
    """Write ``content`` to ``path`` unless it exists; return what the file holds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # fails if another process won the race: use its file
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_bytes()


def _secret(path: Path, configured: str) -> bytes:
    if configured:
        return configured.encode("utf-8")
    return base64.b64decode(_create_once(path, base64.b64encode(secrets.token_bytes(32))))


def load_or_create(
    data_dir: Path, *, token_secret: str = "", secret_pepper: str = ""
) -> BusSecrets:
    keys = data_dir / "keys"
    pem = _create_once(keys / "bus.key", generate_private_key().pem.encode("ascii"))
    key = load_private_key(pem)
    pub = keys / "bus.pub"
    if not pub.exists():
        with contextlib.suppress(FileExistsError):
            _create_once(pub, (key.public_key.b64 + "\n").encode("ascii"))
    return BusSecrets(
        signer=Signer(key),
        token_key=_secret(keys / "token.secret", token_secret),
        pepper=_secret(keys / "pepper.secret", secret_pepper),
    )
