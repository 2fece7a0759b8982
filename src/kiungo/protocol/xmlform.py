"""XML as the GovESB connectors write and read it.

Parsing goes through defusedxml with DTDs, entity declarations and external references
forbidden, and records the byte span of every element so that the signed ``<data>`` part
and each field can be taken from the body exactly as received.

Writing follows the connectors' element form: an object becomes one child element per
key, an array repeats its key, ``null`` is left out, text is escaped as Jackson's XML
writer escapes it (see ``escape_text``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import ParseError

import defusedxml
import defusedxml.ElementTree as DET

from kiungo.protocol.errors import (
    EncodingError,
    EnvelopeTooComplex,
    ForbiddenXML,
    MalformedEnvelope,
)
from kiungo.protocol.jsonform import js_number


@dataclass(slots=True)
class Node:
    """An element with the byte offsets of its markup in the parsed body."""

    tag: str
    start: int  # the '<' of the start tag
    inner_start: int = 0  # just after the start tag
    inner_end: int = 0  # the '<' of the end tag
    end: int = 0  # just after the end tag
    children: list[Node] = field(default_factory=list)
    _text: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self._text)


@dataclass(frozen=True, slots=True)
class Document:
    root: Node


class RawXML(bytes):
    """Markup placed verbatim as an element's content (a body forwarded as it came)."""


_START_TAG = re.compile(rb"""<[^>"']*(?:(?:"[^"]*"|'[^']*')[^>"']*)*>""")


class _SpanBuilder:
    """Parser target that builds Nodes, reading byte offsets from the running expat."""

    def __init__(self, body: bytes, max_depth: int, max_elements: int) -> None:
        self.body = body
        self.max_depth = max_depth
        self.max_elements = max_elements
        self.expat: Any = None
        self.stack: list[Node] = []
        self.root: Node | None = None
        self.count = 0

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        self.count += 1
        if self.count > self.max_elements:
            raise EnvelopeTooComplex(f"XML has more than {self.max_elements} elements")
        if len(self.stack) >= self.max_depth:
            raise EnvelopeTooComplex(f"XML is nested more than {self.max_depth} levels deep")
        at = self.expat.CurrentByteIndex
        match = _START_TAG.match(self.body, at)
        node = Node(tag, at)
        node.inner_start = match.end() if match else at
        if self.stack:
            self.stack[-1].children.append(node)
        else:
            self.root = node
        self.stack.append(node)

    def end(self, tag: str) -> None:
        node = self.stack.pop()
        at = self.expat.CurrentByteIndex
        if at <= node.start or self.body[node.inner_start - 2 : node.inner_start] == b"/>":
            node.inner_start = node.inner_end = node.end = node.inner_start  # <empty/>
        else:
            node.inner_end = at
            node.end = self.body.index(b">", at) + 1

    def data(self, text: str) -> None:
        if self.stack:
            self.stack[-1]._text.append(text)

    def close(self) -> Node | None:
        return self.root


_DECLARED = re.compile(rb"""\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)""")


def _require_utf8(body: bytes) -> None:
    """Byte spans of the signed part are only meaningful in the encoding that was signed:
    the connectors sign UTF-8, so any other encoding is refused."""
    if body[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise MalformedEnvelope("XML envelopes must be UTF-8 (got a UTF-16 byte order mark)")
    declared = _DECLARED.match(body[:200])
    if declared and declared.group(1).lower() not in (b"utf-8", b"utf8"):
        raise MalformedEnvelope(
            f"XML envelopes must be UTF-8, not {declared.group(1).decode('ascii')}"
        )


def parse_document(body: bytes, *, max_depth: int, max_elements: int) -> Document:
    _require_utf8(body)
    target = _SpanBuilder(body, max_depth, max_elements)
    parser = DET.DefusedXMLParser(
        target=target, forbid_dtd=True, forbid_entities=True, forbid_external=True
    )
    target.expat = parser.parser
    try:
        parser.feed(body)
        root = parser.close()
    except defusedxml.DTDForbidden:
        raise ForbiddenXML("XML with a DTD (<!DOCTYPE>) is refused") from None
    except defusedxml.EntitiesForbidden:
        raise ForbiddenXML("XML with entity declarations is refused") from None
    except defusedxml.ExternalReferenceForbidden:
        raise ForbiddenXML("XML with external references is refused") from None
    except ParseError as exc:
        raise MalformedEnvelope(f"envelope is not well-formed XML: {exc}") from None
    except (LookupError, ValueError) as exc:  # expat hands a declared encoding to Python codecs
        raise MalformedEnvelope(f"envelope XML declares an unusable encoding: {exc}") from None
    if root is None:
        raise MalformedEnvelope("envelope is not well-formed XML: no root element")
    return Document(root)


def to_value(node: Node) -> Any:
    """An element as the connectors read it: text, or an object of its children."""
    if not node.children:
        return node.text
    out: dict[str, Any] = {}
    for child in node.children:
        value = to_value(child)
        if child.tag in out:
            existing = out[child.tag]
            if isinstance(existing, list):
                existing.append(value)
            else:
                out[child.tag] = [existing, value]
        else:
            out[child.tag] = value
    return out


# --- writing -----------------------------------------------------------------------------

_NAME = re.compile(r"[^\W\d][\w.\-]*")
_BAD_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# The JavaScript connector finds the signed part with the regexes <data>…</data> and
# <signature>…</signature>, first match: a body holding either tag would mislead it.
_DATA_MARKS = (b"<data>", b"</data>", b"<data ", b"<signature>")


# Java connectors re-serialize the parsed <data> with Jackson's XmlMapper, whose writer
# (Woodstox) escapes '>' only first in a text or after ']', and writes CR and U+007F-U+009F
# as character references; the JavaScript connector keeps the raw text, so kiungo writes
# text exactly as Woodstox does and both verify the same bytes.
_GT_ESCAPED = re.compile(r"^>|(?<=\])>")
_CHAR_REF = re.compile("[\r\x7f-\x9f]")


def escape_text(text: str) -> str:
    if _BAD_CHARS.search(text):
        raise EncodingError("text holds a control character that XML cannot carry")
    text = text.replace("&", "&amp;").replace("<", "&lt;")
    if ">" in text:
        text = _GT_ESCAPED.sub("&gt;", text)
    return _CHAR_REF.sub(lambda m: f"&#x{ord(m.group()):x};", text)


def _scalar_text(value: Any) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, float):
        return js_number(value)
    return str(value)


def _write(key: str, value: Any, out: list[str]) -> None:
    if value is None:
        return
    if isinstance(value, list | tuple):
        for item in value:
            _write(key, item, out)
        return
    if not _NAME.fullmatch(key):
        raise EncodingError(f"{key!r} cannot be an XML element name")
    if isinstance(value, RawXML):
        out.append(f"<{key}>{value.decode('utf-8')}</{key}>")
    elif isinstance(value, Mapping):
        out.append(f"<{key}>")
        for child_key, child in value.items():
            _write(str(child_key), child, out)
        out.append(f"</{key}>")
    else:
        out.append(f"<{key}>{escape_text(_scalar_text(value))}</{key}>")


def serialize(key: str, value: Any) -> bytes:
    out: list[str] = []
    _write(key, value, out)
    return "".join(out).encode("utf-8")


def serialize_data(data: Mapping[str, Any]) -> bytes:
    """``<data>…</data>`` for a response or request ``data`` object.

    The JavaScript connector takes the signed text from the first ``<data>`` to the first
    ``</data>``, and the signature from the first ``<signature>``, so a field whose markup
    would hold one of those is sent as escaped text.
    """
    parts = []
    for key, value in data.items():
        if key in ("data", "signature") and value is not None:  # its own tag would mislead them
            raise EncodingError(f"a top-level {key!r} field cannot be sent in an XML envelope")
        chunk = serialize(key, value)
        if any(mark in chunk[1:-1] for mark in _DATA_MARKS) and not isinstance(value, str):
            inner = chunk[len(key) + 2 : -(len(key) + 3)].decode("utf-8")
            chunk = serialize(key, inner)
        parts.append(chunk)
    return b"<data>" + b"".join(parts) + b"</data>"
