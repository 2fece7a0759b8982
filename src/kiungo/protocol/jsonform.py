"""The one serialization of every JSON ``data`` kiungo signs: JavaScript's JSON.stringify.

The JavaScript connector verifies ``JSON.stringify(JSON.parse(body).data)`` and the Java one
Jackson's compact re-serialization, so kiungo emits exactly what JSON.stringify would
write for the parsed value: no whitespace, raw UTF-8, JavaScript's escapes and number
forms, and JavaScript's key order (integer-like keys first, ascending — JSON.parse puts
them there). orjson already writes strings, booleans, null and most objects that way; the
slow path below takes over only when a float orjson writes in another form (``1.0``,
``1e-7``), a key starting with a digit, a huge integer or a type other than dict, list,
str, int, bool and None is present, so the hot path costs one orjson call and one walk
over the value's containers (a regex over the output costs more: every byte is scanned).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from kiungo.protocol.errors import EncodingError

_MAX_INDEX = 2**32 - 2  # the largest array index; larger integer keys keep their place


def js_stringify(value: Any) -> bytes:
    """UTF-8 bytes that JSON.stringify would produce for ``value`` after JSON.parse."""
    try:
        out = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        out = None
    if out is not None and _orjson_is_js(value):
        return out
    parts: list[bytes] = []
    _write(value, parts, 0)
    return b"".join(parts)


def _orjson_is_js(value: Any) -> bool:
    """True when orjson writes ``value`` (already dumped without error) as JSON.stringify."""
    stack = [value]
    while stack:
        node = stack.pop()
        cls = type(node)
        if cls is dict:
            for key, item in node.items():
                if "0" <= key[:1] <= "9":  # maybe an array index: JavaScript moves it first
                    return False
                if type(item) is not str:
                    stack.append(item)
        elif cls is str or cls is int or cls is bool or node is None:
            continue
        elif cls is list:
            stack.extend(node)
        elif cls is float:
            text = orjson.dumps(node)
            if text.endswith(b".0") or b"e" in text:  # JavaScript writes 1 and 1e+22
                return False
        else:  # subclasses, tuples, dates, enums...: the slow path decides
            return False
    return True


def _write(value: Any, out: list[bytes], depth: int) -> None:
    if depth > 512:
        raise EncodingError("value is nested too deeply to encode")
    if isinstance(value, str):
        try:
            out.append(orjson.dumps(value))
        except orjson.JSONEncodeError:
            raise EncodingError("string is not valid Unicode (lone surrogate)") from None
    elif value is None or value is True or value is False:
        out.append(b"null" if value is None else b"true" if value else b"false")
    elif isinstance(value, int):
        out.append(str(int(value)).encode())
    elif isinstance(value, float):
        out.append(js_number(value).encode())
    elif isinstance(value, Mapping):
        out.append(b"{")
        first = True
        for key in _js_key_order(value):
            if not first:
                out.append(b",")
            first = False
            _write(key, out, depth + 1)
            out.append(b":")
            _write(value[key], out, depth + 1)
        out.append(b"}")
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        out.append(b"[")
        for i, item in enumerate(value):
            if i:
                out.append(b",")
            _write(item, out, depth + 1)
        out.append(b"]")
    else:
        # Whatever else the fast path accepts (dates, UUIDs, enums, dataclasses) is written
        # as orjson writes it there, then put in JavaScript form like any parsed value.
        try:
            encoded = orjson.dumps(value)
        except (TypeError, orjson.JSONEncodeError):
            raise EncodingError(f"cannot encode a {type(value).__name__} as JSON") from None
        _write(orjson.loads(encoded), out, depth + 1)


def _js_key_order(obj: Mapping[Any, Any]) -> list[str]:
    keys = list(obj)
    for key in keys:
        if not isinstance(key, str):
            raise EncodingError(f"object keys must be strings, not {type(key).__name__}")
    index_keys = [k for k in keys if _is_array_index(k)]
    if not index_keys:
        return keys
    index_keys.sort(key=int)
    return index_keys + [k for k in keys if not _is_array_index(k)]


def _is_array_index(key: str) -> bool:
    return (
        key.isascii() and key.isdigit() and (key == "0" or key[0] != "0") and int(key) <= _MAX_INDEX
    )


def js_number(x: float) -> str:
    """ECMAScript Number::toString for a double: the shortest round-trip digits."""
    if not math.isfinite(x):
        return "null"  # JSON.stringify writes NaN and Infinity as null
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    mantissa, _, exp = repr(abs(x)).partition("e")
    int_part, _, frac = mantissa.partition(".")
    digits = int_part + frac
    n = len(int_part) + (int(exp) if exp else 0)
    stripped = digits.lstrip("0")
    n -= len(digits) - len(stripped)
    s = stripped.rstrip("0") or "0"
    k = len(s)
    if k <= n <= 21:
        text = s + "0" * (n - k)
    elif 0 < n <= 21:
        text = s[:n] + "." + s[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * (-n) + s
    else:
        e = n - 1
        tail = f"e{'+' if e >= 0 else '-'}{abs(e)}"
        text = (s if k == 1 else s[0] + "." + s[1:]) + tail
    return sign + text
