"""Errors of the protocol core.

ClientError
 ├── MalformedEnvelope     not a well-formed envelope (422)
 │    ├── EnvelopeTooLarge      more bytes than the limit (413)
 │    ├── EnvelopeTooComplex    nested too deep or too many keys (422)
 │    └── ForbiddenXML          DTD, entity or external reference (422)
 ├── MalformedSignature    the signature is not base64 DER ECDSA (422)
 ├── InvalidSignature      well-formed, but does not verify (401)
 ├── InvalidKey            key material refused (422)
 └── DecryptionFailed      encrypted payload malformed or not authentic (422)
ServerError
 └── EncodingError         a value kiungo was asked to sign cannot be encoded (500)
"""

from __future__ import annotations

from kiungo.errors import ClientError, ServerError


class MalformedEnvelope(ClientError):
    code = "client.malformed_envelope"
    status = 422


class EnvelopeTooLarge(MalformedEnvelope):
    code = "client.envelope_too_large"
    status = 413


class EnvelopeTooComplex(MalformedEnvelope):
    code = "client.envelope_too_complex"
    status = 422


class ForbiddenXML(MalformedEnvelope):
    code = "client.forbidden_xml"
    status = 422


class MalformedSignature(ClientError):
    code = "client.malformed_signature"
    status = 422


class InvalidSignature(ClientError):
    code = "client.invalid_signature"
    status = 401


class InvalidKey(ClientError):
    code = "client.invalid_key"
    status = 422


class DecryptionFailed(ClientError):
    code = "client.decryption_failed"
    status = 422


class EncodingError(ServerError):
    code = "server.encoding_error"
    status = 500
