"""Signed envelopes of the GovESB protocol, JSON and XML: parse, verify, build.

Parsing keeps the exact bytes of the signed ``data`` part as received, because every
connector signs its own serialization; verification never re-serializes anything.
Building serializes ``data`` once (JSON.stringify form for JSON, the connectors' element
form for XML), signs those bytes and places them verbatim in the envelope.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any, NamedTuple

import orjson

from kiungo.protocol import xmlform
from kiungo.protocol.errors import (
    EnvelopeTooComplex,
    EnvelopeTooLarge,
    MalformedEnvelope,
    MalformedSignature,
)
from kiungo.protocol.jsonform import js_stringify
from kiungo.protocol.keys import PrivateKey, PublicKey
from kiungo.protocol.signatures import (
    decode_signature,
    encode_signature,
    verify_any,
    verify_der,
)


class Format(StrEnum):
    JSON = "json"
    XML = "xml"


REQUEST_ROOT = "esbrequest"
RESPONSE_ROOT = "esbresponse"
# What the JavaScript connector sends, and what kiungo answers with.
CONTENT_TYPES = {
    Format.JSON: "application/json; charset=utf-8",
    Format.XML: "application/xml; charset=utf-8",
}


@dataclass(frozen=True, slots=True)
class Limits:
    """What a parser accepts before it refuses; the defaults suit a government bus."""

    max_bytes: int = 4 * 1024 * 1024
    max_depth: int = 64
    max_keys: int = 20_000  # object members (JSON) or elements (XML) in the whole envelope

    def check_size(self, body: bytes) -> None:
        if len(body) > self.max_bytes:
            raise EnvelopeTooLarge(
                f"envelope is {len(body)} bytes, more than the limit of {self.max_bytes}"
            )


DEFAULT_LIMITS = Limits()


_NO_FIELDS: Mapping[str, bytes] = MappingProxyType({})


class Envelope(NamedTuple):
    """A parsed, not yet verified, envelope.

    ``signed`` holds the exact bytes the signature covers; ``data`` their parsed value.
    For XML, ``fields`` holds the raw inner markup of each child of ``<data>``.
    (A named tuple rather than a frozen dataclass: it is built once per request on the
    hot path, and a frozen dataclass's ``__init__`` costs a microsecond more.)
    """

    format: Format
    data: dict[str, Any]
    signed: bytes
    signature: bytes  # DER
    root: str = ""
    fields: Mapping[str, bytes] = _NO_FIELDS

    def verify(self, key: PublicKey) -> None:
        verify_der(key, self.signed, self.signature)

    def verify_any(self, keys: Iterable[PublicKey]) -> PublicKey:
        return verify_any(keys, self.signed, self.signature)


def parse_envelope(
    body: bytes, content_type: str | None = None, *, limits: Limits = DEFAULT_LIMITS
) -> Envelope:
    """Parse a JSON or XML envelope; the format comes from the content type or the body."""
    limits.check_size(body)
    if detect_format(body, content_type) is Format.XML:
        return parse_xml_envelope(body, limits=limits)
    return parse_json_envelope(body, limits=limits)


def open_envelope(
    body: bytes,
    key: PublicKey,
    content_type: str | None = None,
    *,
    limits: Limits = DEFAULT_LIMITS,
) -> Envelope:
    """Parse and verify in one step; raises unless the envelope is authentic."""
    envelope = parse_envelope(body, content_type, limits=limits)
    envelope.verify(key)
    return envelope


def detect_format(body: bytes, content_type: str | None = None) -> Format:
    if content_type:
        ct = content_type.lower()
        if "xml" in ct:
            return Format.XML
        if "json" in ct:
            return Format.JSON
    if body[:1] == b"{":  # the usual case, without copying the body to strip it
        return Format.JSON
    return Format.XML if body.lstrip()[:1] == b"<" else Format.JSON


# --- JSON --------------------------------------------------------------------------------

_PREFIX = b'{"data":'
_SIG_MARK = b',"signature":"'
_SIG_TAIL = re.compile(rb'([A-Za-z0-9+/=]*)"}[ \t\r\n]*')  # what follows _SIG_MARK
_WS = re.compile(rb"[ \t\r\n]*")
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_STRUCT = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)
_SCALAR = re.compile(rb"[^,}\]\s]+")


def parse_json_envelope(body: bytes, *, limits: Limits = DEFAULT_LIMITS) -> Envelope:
    limits.check_size(body)
    # Fast path: the compact form every connector writes, data first.
    if body.startswith(_PREFIX):
        cut = body.rfind(_SIG_MARK)
        tail = _SIG_TAIL.fullmatch(body, cut + len(_SIG_MARK)) if cut > 0 else None
        if tail is not None:
            signed = body[len(_PREFIX) : cut]
            try:
                data = orjson.loads(signed)
            except orjson.JSONDecodeError:
                data = None
            if isinstance(data, dict):
                _check_json_complexity(signed, data, limits)
                return Envelope(Format.JSON, data, signed, decode_signature(tail.group(1)))
    return _parse_json_general(body, limits)


def _parse_json_general(body: bytes, limits: Limits) -> Envelope:
    try:
        whole = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "recursion" in str(exc).lower() or "depth limit" in str(exc).lower():
            raise EnvelopeTooComplex(
                f"envelope is nested more than {limits.max_depth} levels deep"
            ) from None
        raise MalformedEnvelope(f"envelope is not valid JSON: {exc}") from None
    if not isinstance(whole, dict):
        raise MalformedEnvelope(f"envelope must be a JSON object, got {_json_kind(whole)}")
    spans: dict[str, tuple[int, int]] = {}
    for key, start, end in _top_level_members(body):
        if key in ("data", "signature"):
            if key in spans:
                raise MalformedEnvelope(f'envelope has more than one "{key}" member')
            spans[key] = (start, end)
    if "data" not in spans:
        raise MalformedEnvelope('envelope has no "data" member')
    if "signature" not in spans:
        raise MalformedSignature('envelope has no "signature" member')
    data = whole["data"]
    if not isinstance(data, dict):
        raise MalformedEnvelope(f'envelope "data" must be a JSON object, got {_json_kind(data)}')
    signature = whole["signature"]
    if not isinstance(signature, str):
        raise MalformedSignature(
            f'envelope "signature" must be a base64 string, got {_json_kind(signature)}'
        )
    start, end = spans["data"]
    signed = body[start:end]
    _check_json_complexity(signed, data, limits)
    return Envelope(Format.JSON, data, signed, decode_signature(signature.strip()))


def _top_level_members(body: bytes) -> Iterable[tuple[str, int, int]]:
    """(key, value start, value end) of each member of a JSON object already validated."""
    pos = _WS.match(body, 0).end() + 1  # type: ignore[union-attr]
    pos = _WS.match(body, pos).end()  # type: ignore[union-attr]
    if body[pos : pos + 1] == b"}":
        return
    while True:
        key_match = _STRING.match(body, pos)
        assert key_match is not None  # orjson validated the document
        key = orjson.loads(key_match.group())
        pos = _WS.match(body, key_match.end()).end() + 1  # type: ignore[union-attr]
        start = _WS.match(body, pos).end()  # type: ignore[union-attr]
        end = _value_end(body, start)
        yield key, start, end
        pos = _WS.match(body, end).end()  # type: ignore[union-attr]
        if body[pos : pos + 1] != b",":
            return
        pos = _WS.match(body, pos + 1).end()  # type: ignore[union-attr]


def _value_end(body: bytes, pos: int) -> int:
    first = body[pos : pos + 1]
    if first == b'"':
        return _STRING.match(body, pos).end()  # type: ignore[union-attr]
    if first in (b"{", b"["):
        depth = 0
        for token in _STRUCT.finditer(body, pos):
            char = token.group()[0]
            if char == 0x22:  # a string: skipped whole
                continue
            depth += 1 if char in (0x7B, 0x5B) else -1
            if depth == 0:
                return token.end()
    return _SCALAR.match(body, pos).end()  # type: ignore[union-attr]


def _check_json_complexity(raw: bytes, data: Any, limits: Limits) -> None:
    # Cheap upper bounds first: every level opens a bracket, every member has a colon,
    # and neither can outnumber the bytes.
    if len(raw) > limits.max_depth and raw.count(b"{") + raw.count(b"[") > limits.max_depth:
        depth = _depth(data)
        if depth > limits.max_depth:
            raise EnvelopeTooComplex(
                f"envelope data is nested {depth} levels deep, more than {limits.max_depth}"
            )
    if len(raw) > limits.max_keys and raw.count(b":") > limits.max_keys:
        keys = _count_members(data)
        if keys > limits.max_keys:
            raise EnvelopeTooComplex(
                f"envelope data has {keys} object members, more than {limits.max_keys}"
            )


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, level + 1) for child in children)
    return deepest


def _count_members(value: Any) -> int:
    count, stack = 0, [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            count += len(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return count


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return {
        dict: "an object",
        list: "an array",
        str: "a string",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__)


# --- XML ---------------------------------------------------------------------------------


def parse_xml_envelope(body: bytes, *, limits: Limits = DEFAULT_LIMITS) -> Envelope:
    limits.check_size(body)
    doc = xmlform.parse_document(body, max_depth=limits.max_depth, max_elements=limits.max_keys)
    root = doc.root
    if root.tag not in (REQUEST_ROOT, RESPONSE_ROOT):
        raise MalformedEnvelope(
            f"XML envelope root must be <{REQUEST_ROOT}> or <{RESPONSE_ROOT}>, got <{root.tag}>"
        )
    data_elements = [c for c in root.children if c.tag == "data"]
    sig_elements = [c for c in root.children if c.tag == "signature"]
    if len(data_elements) != 1:
        raise MalformedEnvelope(
            f"XML envelope must have exactly one <data> element, has {len(data_elements)}"
        )
    if len(sig_elements) != 1:
        if not sig_elements:
            raise MalformedSignature("XML envelope has no <signature> element")
        raise MalformedEnvelope("XML envelope has more than one <signature> element")
    data_el, sig_el = data_elements[0], sig_elements[0]
    if sig_el.children:
        raise MalformedSignature("XML <signature> must hold base64 text only")
    data = xmlform.to_value(data_el)
    if not isinstance(data, dict):
        if data.strip():
            raise MalformedEnvelope("XML <data> must hold elements, not text")
        data = {}
    fields = {child.tag: body[child.inner_start : child.inner_end] for child in data_el.children}
    return Envelope(
        Format.XML,
        data,
        body[data_el.start : data_el.end],
        decode_signature(sig_el.text.strip()),
        root=root.tag,
        fields=fields,
    )


# --- building ----------------------------------------------------------------------------


def build_envelope(
    data: Mapping[str, Any],
    key: PrivateKey,
    fmt: Format | str = Format.JSON,
    *,
    root: str = RESPONSE_ROOT,
) -> bytes:
    """Serialize ``data`` once, sign those bytes, and wrap them verbatim in an envelope."""
    if fmt != Format.JSON and Format(fmt) is Format.XML:  # no enum lookup for JSON
        signed = xmlform.serialize_data(data)
        signature = encode_signature(key.sign(signed)).encode("ascii")
        return b"".join(
            (
                b"<", root.encode(), b">", signed,
                b"<signature>", signature, b"</signature></", root.encode(), b">",
            )
        )  # fmt: skip
    signed = js_stringify(data)
    signature = base64.b64encode(key.sign(signed))
    return b"".join((_PREFIX, signed, _SIG_MARK, signature, b'"}'))


def response_data(
    success: bool,
    *,
    body: Any = None,
    message: str | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """The ``data`` of a response envelope, in the connectors' key order."""
    data: dict[str, Any] = {"success": success}
    if request_id is not None:
        data["requestId"] = request_id
    if body is not None:
        data["esbBody"] = body
    if message is not None:
        data["message"] = message
    return data


def failure_envelope(
    message: str,
    key: PrivateKey,
    fmt: Format | str = Format.JSON,
    *,
    request_id: str | None = None,
) -> bytes:
    """The signed refusal every engine path answers with (PROTOCOL.md §4, §8)."""
    return build_envelope(response_data(False, message=message, request_id=request_id), key, fmt)
