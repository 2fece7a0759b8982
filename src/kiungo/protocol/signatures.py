"""SHA-256 ECDSA signatures as the connectors write them: DER, then standard base64.

Signatures are always made and checked over the exact bytes that were signed; these
functions never serialize anything themselves.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable

from kiungo.protocol.errors import InvalidSignature, MalformedSignature
from kiungo.protocol.keys import PrivateKey, PublicKey

# A DER ECDSA signature over a 256-bit curve: SEQUENCE { INTEGER r, INTEGER s }.
_MIN_DER, _MAX_DER = 8, 72
_ORDERS = {
    "secp256k1": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141,
    "p256": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
}


def encode_signature(der: bytes) -> str:
    return base64.b64encode(der).decode("ascii")


def decode_signature(text: str | bytes) -> bytes:
    """Base64 text to DER bytes, refusing anything that cannot be a DER ECDSA signature."""
    if isinstance(text, str):
        try:
            text = text.encode("ascii")
        except UnicodeEncodeError:
            raise MalformedSignature("signature is not base64 (non-ASCII characters)") from None
    if not text:
        raise MalformedSignature("signature is empty")
    try:  # canonical base64, the usual case, skips b64decode's extra regex pass
        der = binascii.a2b_base64(text, strict_mode=True)
    except binascii.Error:
        try:
            der = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedSignature("signature is not valid base64") from None
    if not _MIN_DER <= len(der) <= _MAX_DER or der[0] != 0x30 or der[1] != len(der) - 2:
        raise MalformedSignature(
            f"signature is not a DER ECDSA signature ({len(der)} bytes, "
            "expected a DER SEQUENCE of two integers)"
        )
    return der


def sign(key: PrivateKey, data: bytes) -> str:
    """Base64 DER signature of ``data``."""
    return encode_signature(key.sign(data))


def verify(key: PublicKey, data: bytes, signature: str | bytes) -> None:
    """Raise unless ``signature`` (base64) is a valid signature of ``data`` by ``key``."""
    verify_der(key, data, decode_signature(signature))


def verify_der(key: PublicKey, data: bytes, der: bytes) -> None:
    if not key.verify(der, data):
        raise InvalidSignature(_explain_failure(der, (key,)))


def verify_any(keys: Iterable[PublicKey], data: bytes, der: bytes) -> PublicKey:
    """Verify with the first key that matches (a system may hold two during rotation)."""
    tried: list[PublicKey] = []
    for key in keys:
        if key.verify(der, data):
            return key
        tried.append(key)
    if not tried:
        raise InvalidSignature("no public key is registered to verify this signature")
    raise InvalidSignature(_explain_failure(der, tried))


def _explain_failure(der: bytes, keys: Iterable[PublicKey]) -> str:
    """A precise reason for a failed verification; runs only on the failure path."""
    problem = _der_problem(der, {k.curve.value for k in keys})
    if problem:
        return f"signature is malformed: {problem}"
    return "signature does not match the signed data and the registered public key"


def _der_problem(der: bytes, curves: set[str]) -> str | None:
    pos = 2
    values = []
    for name in ("r", "s"):
        if pos + 2 > len(der) or der[pos] != 0x02:
            return f"{name} is not a DER INTEGER"
        length = der[pos + 1]
        body = der[pos + 2 : pos + 2 + length]
        if length == 0 or len(body) != length:
            return f"{name} has a bad length"
        if body[0] & 0x80:
            return f"{name} is negative"
        if length > 1 and body[0] == 0 and not body[1] & 0x80:
            return f"{name} has a non-minimal encoding"
        values.append((name, int.from_bytes(body, "big")))
        pos += 2 + length
    if pos != len(der):
        return "trailing bytes after the signature"
    for name, value in values:
        if value == 0:
            return f"{name} is zero"
        if all(value >= _ORDERS[c] for c in curves if c in _ORDERS):
            return f"{name} is not below the curve order"
    return None
