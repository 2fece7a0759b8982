"""Payload encryption of the JavaScript connector (PROTOCOL.md §7).

ECDH between an ephemeral key on the recipient's curve and the recipient's key, then
HKDF-SHA256 (salt: 32 zero bytes, info ``aes-encryption``) to a 32-byte AES-256-GCM key,
a random 12-byte IV. Wire form: ``{"ephemeralKey": base64(PEM of the ephemeral SPKI),
"iv": base64(iv), "encryptedData": base64(tag || ciphertext)}`` — the tag comes first.

The only impurity is the randomness of the ephemeral key and IV; pass ``ephemeral`` and
``iv`` to make encryption deterministic (tests).
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kiungo.protocol.errors import DecryptionFailed, InvalidKey
from kiungo.protocol.keys import PrivateKey, PublicKey, generate_private_key, load_public_key

_SALT = bytes(32)
_INFO = b"aes-encryption"
_TAG = 16
_IV = 12


def _aes_key(private: PrivateKey, public: PublicKey) -> bytes:
    shared = private.crypto_key.exchange(ec.ECDH(), public.crypto_key)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=_INFO).derive(shared)


def encrypt(
    plaintext: str | bytes,
    recipient: PublicKey,
    *,
    ephemeral: PrivateKey | None = None,
    iv: bytes | None = None,
) -> dict[str, str]:
    """Encrypt for ``recipient``; returns the wire object (dump it with ``encrypt_to_json``)."""
    if isinstance(plaintext, str):
        plaintext = plaintext.encode("utf-8")
    ephemeral = ephemeral or generate_private_key(recipient.curve)
    if ephemeral.curve is not recipient.curve:
        raise InvalidKey("ephemeral key must be on the recipient's curve")
    iv = iv if iv is not None else os.urandom(_IV)
    sealed = AESGCM(_aes_key(ephemeral, recipient)).encrypt(iv, plaintext, None)
    ciphertext, tag = sealed[:-_TAG], sealed[-_TAG:]
    return {
        "ephemeralKey": base64.b64encode(ephemeral.public_key.pem.encode("ascii")).decode(),
        "iv": base64.b64encode(iv).decode(),
        "encryptedData": base64.b64encode(tag + ciphertext).decode(),
    }


def encrypt_to_json(plaintext: str | bytes, recipient: PublicKey) -> bytes:
    return orjson.dumps(encrypt(plaintext, recipient))


def decrypt(payload: str | bytes | dict[str, Any], key: PrivateKey) -> bytes:
    """Decrypt the wire object (or its JSON text) with the recipient's private key."""
    if isinstance(payload, str | bytes):
        try:
            payload = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise DecryptionFailed(f"encrypted payload is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise DecryptionFailed("encrypted payload must be a JSON object")
    ephemeral_text = _b64_field(payload, "ephemeralKey")
    iv = _b64_field(payload, "iv")
    sealed = _b64_field(payload, "encryptedData")
    try:
        ephemeral = load_public_key(ephemeral_text)
    except InvalidKey as exc:
        raise DecryptionFailed(f"ephemeralKey is not a usable public key: {exc}") from None
    if ephemeral.curve is not key.curve:
        raise DecryptionFailed(
            f"ephemeralKey is on {ephemeral.curve.value}, the recipient key on {key.curve.value}"
        )
    if len(iv) != _IV:
        raise DecryptionFailed(f"iv must be {_IV} bytes, got {len(iv)}")
    if len(sealed) < _TAG:
        raise DecryptionFailed("encryptedData is shorter than the 16-byte tag")
    tag, ciphertext = sealed[:_TAG], sealed[_TAG:]
    try:
        return AESGCM(_aes_key(key, ephemeral)).decrypt(iv, ciphertext + tag, None)
    except InvalidTag:
        raise DecryptionFailed(
            "authentication tag does not match: wrong key or altered payload"
        ) from None


def _b64_field(payload: dict[str, Any], name: str) -> bytes:
    value = payload.get(name)
    if not isinstance(value, str):
        raise DecryptionFailed(f'encrypted payload has no "{name}" string')
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise DecryptionFailed(f'"{name}" is not valid base64') from None
