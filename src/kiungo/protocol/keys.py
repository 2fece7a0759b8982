"""EC keys of the GovESB protocol: secp256k1 and P-256, nothing else.

Keys travel as base64 DER without PEM headers (PKCS#8 private, X.509 SubjectPublicKeyInfo
public); PEM (PKCS#8 or SEC1) is accepted too, and so is base64 of PEM text, which the PyPI
connector uses for private keys. Loading validates the key completely (curve, point on
the curve), so a key object that exists is usable.

secp256k1 signs and verifies through libsecp256k1 (coincurve), about ten times faster
than OpenSSL's generic curve code; P-256 goes through ``cryptography``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from enum import StrEnum

import coincurve
from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT
from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kiungo.protocol.errors import InvalidKey


class Curve(StrEnum):
    SECP256K1 = "secp256k1"
    P256 = "p256"


_CURVES: dict[str, Curve] = {"secp256k1": Curve.SECP256K1, "secp256r1": Curve.P256}
_CRYPTO_CURVES = {Curve.SECP256K1: ec.SECP256K1(), Curve.P256: ec.SECP256R1()}
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_CTX = GLOBAL_CONTEXT.ctx


def _decode_material(material: str | bytes) -> tuple[bytes, bool]:
    """Return (bytes, is_pem) for a key given as PEM, base64 DER, base64 PEM, or raw DER."""
    if isinstance(material, str):
        try:
            raw = material.strip().encode("ascii")
        except UnicodeEncodeError:
            raise InvalidKey("key is neither PEM nor base64 DER (non-ASCII text)") from None
    else:  # DER is binary: a last byte of 0x20 or 0x0a is data, not whitespace to strip
        raw = bytes(material) if material[:1] == b"\x30" else material.strip()
    if not raw:
        raise InvalidKey("key is empty")
    if raw.startswith(b"-----BEGIN"):
        return raw, True
    if raw[:1] == b"\x30":  # a DER SEQUENCE given as bytes
        return raw, False
    try:
        decoded = base64.b64decode(b"".join(raw.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidKey("key is neither PEM nor base64 DER (not valid base64)") from None
    if decoded.startswith(b"-----BEGIN"):
        return decoded.strip(), True
    return decoded, False


def _curve_of(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> Curve:
    curve = _CURVES.get(key.curve.name)
    if curve is None:
        raise InvalidKey(f"unsupported curve {key.curve.name}: use secp256k1 or P-256")
    return curve


class PublicKey:
    """A validated public key that verifies SHA-256 ECDSA signatures (DER)."""

    __slots__ = ("_crypto", "_k1", "curve", "der")

    def __init__(self, crypto_key: ec.EllipticCurvePublicKey) -> None:
        self.curve = _curve_of(crypto_key)
        self._crypto = crypto_key
        self.der = crypto_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self._k1 = None
        if self.curve is Curve.SECP256K1:
            point = crypto_key.public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
            self._k1 = coincurve.PublicKey(point).public_key  # the libsecp256k1 struct

    def verify(self, signature_der: bytes, data: bytes) -> bool:
        """True when ``signature_der`` is a valid signature of ``data``; high-S accepted."""
        if self._k1 is not None:
            sig = ffi.new("secp256k1_ecdsa_signature *")
            if not lib.secp256k1_ecdsa_signature_parse_der(
                _CTX, sig, signature_der, len(signature_der)
            ):
                return False
            # OpenSSL and Java emit high-S half the time; libsecp256k1 verifies low-S only.
            lib.secp256k1_ecdsa_signature_normalize(_CTX, sig, sig)
            digest = hashlib.sha256(data).digest()
            return bool(lib.secp256k1_ecdsa_verify(_CTX, sig, digest, self._k1))
        try:
            self._crypto.verify(signature_der, data, _ECDSA_SHA256)
        except _CryptoInvalidSignature:
            return False
        return True

    @property
    def b64(self) -> str:
        """Base64 DER SubjectPublicKeyInfo: the form the connectors take."""
        return base64.b64encode(self.der).decode("ascii")

    @property
    def pem(self) -> str:
        return self._crypto.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the DER SubjectPublicKeyInfo, hex: a short stable name for the key."""
        return hashlib.sha256(self.der).hexdigest()

    @property
    def crypto_key(self) -> ec.EllipticCurvePublicKey:
        return self._crypto

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and other.der == self.der

    def __hash__(self) -> int:
        return hash(self.der)

    def __repr__(self) -> str:
        return f"PublicKey({self.curve.value}, {self.fingerprint[:16]})"


class PrivateKey:
    """A validated private key that makes SHA-256 ECDSA signatures (DER; low-S on secp256k1)."""

    __slots__ = ("_crypto", "_k1", "curve", "public_key")

    def __init__(self, crypto_key: ec.EllipticCurvePrivateKey) -> None:
        self.curve = _curve_of(crypto_key)
        self._crypto = crypto_key
        self.public_key = PublicKey(crypto_key.public_key())
        self._k1 = None
        if self.curve is Curve.SECP256K1:
            secret = crypto_key.private_numbers().private_value.to_bytes(32, "big")
            self._k1 = coincurve.PrivateKey(secret)

    def sign(self, data: bytes) -> bytes:
        """DER signature of SHA-256(data)."""
        if self._k1 is not None:
            return self._k1.sign(data)  # RFC 6979, low-S, SHA-256 by default
        return self._crypto.sign(data, _ECDSA_SHA256)

    @property
    def pkcs8_der(self) -> bytes:
        return self._crypto.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def b64(self) -> str:
        """Base64 DER PKCS#8: the form the connectors take."""
        return base64.b64encode(self.pkcs8_der).decode("ascii")

    @property
    def pem(self) -> str:
        return self._crypto.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")

    @property
    def crypto_key(self) -> ec.EllipticCurvePrivateKey:
        return self._crypto

    def __repr__(self) -> str:  # never the secret
        return f"PrivateKey({self.curve.value}, public {self.public_key.fingerprint[:16]})"


def load_public_key(material: str | bytes) -> PublicKey:
    """Load a public key: base64 DER SubjectPublicKeyInfo, PEM, or DER bytes."""
    raw, is_pem = _decode_material(material)
    if b"PRIVATE KEY-----" in raw[:40]:
        raise InvalidKey("expected a public key, got a private key")
    try:
        key = (
            serialization.load_pem_public_key(raw)
            if is_pem
            else serialization.load_der_public_key(raw)
        )
    except UnsupportedAlgorithm:
        raise InvalidKey("unsupported key algorithm or curve: use secp256k1 or P-256") from None
    except ValueError as exc:
        if not is_pem and _loads_as_private(raw):
            raise InvalidKey("expected a public key, got a private key") from None
        raise InvalidKey(_describe_load_error(exc, "public")) from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise InvalidKey(f"expected an EC key, got {_algorithm_name(key)}")
    return PublicKey(key)


def load_private_key(material: str | bytes) -> PrivateKey:
    """Load a private key: base64 DER PKCS#8, PEM (PKCS#8 or SEC1), or DER bytes."""
    raw, is_pem = _decode_material(material)
    if b"PUBLIC KEY-----" in raw[:40]:
        raise InvalidKey("expected a private key, got a public key")
    if b"ENCRYPTED" in raw[:40]:
        raise InvalidKey("encrypted private keys are not supported: export it unencrypted")
    try:
        key = (
            serialization.load_pem_private_key(raw, password=None)
            if is_pem
            else serialization.load_der_private_key(raw, password=None)
        )
    except UnsupportedAlgorithm:
        raise InvalidKey("unsupported key algorithm or curve: use secp256k1 or P-256") from None
    except (ValueError, TypeError) as exc:
        if not is_pem and _loads_as_public(raw):
            raise InvalidKey("expected a private key, got a public key") from None
        raise InvalidKey(_describe_load_error(exc, "private")) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InvalidKey(f"expected an EC key, got {_algorithm_name(key)}")
    return PrivateKey(key)


def generate_private_key(curve: Curve = Curve.SECP256K1) -> PrivateKey:
    return PrivateKey(ec.generate_private_key(_CRYPTO_CURVES[Curve(curve)]))


def _loads_as_private(der: bytes) -> bool:
    """Whether DER refused as a public key is a private key (a common mix-up)."""
    try:
        serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _loads_as_public(der: bytes) -> bool:
    """Whether DER refused as a private key is a public key (a common mix-up)."""
    try:
        serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm):
        return False
    return True


def _algorithm_name(key: object) -> str:
    name = type(key).__name__.removeprefix("_")
    for prefix in ("RSA", "DSA", "Ed25519", "Ed448", "X25519", "X448", "DH"):
        if name.startswith(prefix):
            return f"an {prefix} key" if prefix[0] in "AEIOUR" else f"a {prefix} key"
    return name


def _describe_load_error(exc: Exception, kind: str) -> str:
    text = str(exc).lower()
    if isinstance(exc, TypeError) and "encrypted" in text:
        return "encrypted private keys are not supported: export it unencrypted"
    # Not "unsupported" alone: cryptography's generic parse failure mentions it too.
    if "curve" in text and "not supported" in text:
        return "unsupported key algorithm or curve: use secp256k1 or P-256"
    if "point" in text or "invalid ec key" in text or text == "invalid key":
        return f"{kind} key point is not on its curve"
    return f"{kind} key could not be parsed (not a valid DER/PEM {kind} key)"
