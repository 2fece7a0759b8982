"""The GovESB wire protocol, sans I/O: keys, signatures, envelopes, payload encryption.

Bytes in, verified values out. No network, database, clock or environment access, so the
engine, the SDK and the CLI share one implementation.
"""

from kiungo.protocol.envelope import (
    CONTENT_TYPES,
    DEFAULT_LIMITS,
    REQUEST_ROOT,
    RESPONSE_ROOT,
    Envelope,
    Format,
    Limits,
    build_envelope,
    detect_format,
    failure_envelope,
    open_envelope,
    parse_envelope,
    parse_json_envelope,
    parse_xml_envelope,
    response_data,
)
from kiungo.protocol.errors import (
    DecryptionFailed,
    EncodingError,
    EnvelopeTooComplex,
    EnvelopeTooLarge,
    ForbiddenXML,
    InvalidKey,
    InvalidSignature,
    MalformedEnvelope,
    MalformedSignature,
)
from kiungo.protocol.jsonform import js_stringify
from kiungo.protocol.keys import (
    Curve,
    PrivateKey,
    PublicKey,
    generate_private_key,
    load_private_key,
    load_public_key,
)
from kiungo.protocol.payload import decrypt, encrypt, encrypt_to_json
from kiungo.protocol.signatures import decode_signature, sign, verify, verify_any
from kiungo.protocol.xmlform import RawXML

__all__ = [
    "CONTENT_TYPES",
    "DEFAULT_LIMITS",
    "REQUEST_ROOT",
    "RESPONSE_ROOT",
    "Curve",
    "DecryptionFailed",
    "EncodingError",
    "Envelope",
    "EnvelopeTooComplex",
    "EnvelopeTooLarge",
    "ForbiddenXML",
    "Format",
    "InvalidKey",
    "InvalidSignature",
    "Limits",
    "MalformedEnvelope",
    "MalformedSignature",
    "PrivateKey",
    "PublicKey",
    "RawXML",
    "build_envelope",
    "decode_signature",
    "decrypt",
    "detect_format",
    "encrypt",
    "encrypt_to_json",
    "failure_envelope",
    "generate_private_key",
    "js_stringify",
    "load_private_key",
    "load_public_key",
    "open_envelope",
    "parse_envelope",
    "parse_json_envelope",
    "parse_xml_envelope",
    "response_data",
    "sign",
    "verify",
    "verify_any",
]
