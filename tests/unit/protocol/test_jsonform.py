"""js_stringify writes what JavaScript's JSON.stringify writes for the parsed value."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import math
import re
import uuid
from collections import OrderedDict
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiungo.protocol import EncodingError, js_stringify

INDEX_KEY = re.compile(r"0|[1-9][0-9]*")


def js_key_order(keys: list[str]) -> list[str]:
    """ECMAScript OrdinaryOwnPropertyKeys: array indices (< 2**32 - 1) ascending, then the rest."""
    indices = [k for k in keys if INDEX_KEY.fullmatch(k) and int(k) < 2**32 - 1]
    return sorted(indices, key=int) + [k for k in keys if k not in indices]


def js_number_reference(x: float) -> str:
    """ECMAScript Number::toString, from the shortest round-trip digits of repr()."""
    if math.isnan(x) or math.isinf(x):
        return "null"
    if x == 0:
        return "0"
    sign, digits, exponent = decimal.Decimal(repr(x)).normalize().as_tuple()
    s = "".join(map(str, digits))
    k, n = len(s), exponent + len(s)  # x = 0.s * 10**n
    if k <= n <= 21:
        text = s + "0" * (n - k)
    elif 0 < n <= 21:
        text = s[:n] + "." + s[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * -n + s
    else:
        mantissa = s if k == 1 else f"{s[0]}.{s[1:]}"
        text = f"{mantissa}e{'+' if n - 1 >= 0 else '-'}{abs(n - 1)}"
    return ("-" if sign else "") + text


class TestNumbers:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (1.0, "1"),
            (-1.0, "-1"),
            (100.0, "100"),
            (-0.0, "0"),
            (0.0, "0"),
            (0.5, "0.5"),
            (1e21, "1e+21"),
            (-1e21, "-1e+21"),
            (1e20, "100000000000000000000"),
            (1.5e300, "1.5e+300"),
            (1e-7, "1e-7"),
            (2.5e-7, "2.5e-7"),
            (123e-20, "1.23e-18"),
            (1e16, "10000000000000000"),
            (1.2345678901234568e20, "123456789012345680000"),
            (0.000001, "0.000001"),
            (0.0000012, "0.0000012"),
            (0.1 + 0.2, "0.30000000000000004"),
            (123456789.123, "123456789.123"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (1500.5, "1500.5"),
        ],
    )
    def test_float_is_written_in_javascript_form(self, value: float, expected: str) -> None:
        """Floats use JavaScript's Number::toString form, alone, in arrays and in objects."""
        assert js_stringify(value) == expected.encode()
        assert js_stringify([value]) == f"[{expected}]".encode()
        assert js_stringify({"x": value}) == f'{{"x":{expected}}}'.encode()

    @pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
    def test_nan_and_infinity_become_null(self, value: float) -> None:
        """NaN and the infinities are written as null, as JSON.stringify does."""
        assert js_stringify({"x": value, "y": [value]}) == b'{"x":null,"y":[null]}'

    @pytest.mark.parametrize("value", [2**53 + 1, 2**64, 2**64 + 1, -(2**70), 10**40])
    def test_integers_beyond_64_bits_are_exact(self, value: int) -> None:
        """Python integers of any size are written digit for digit, never rounded."""
        assert js_stringify({"n": value}) == f'{{"n":{value}}}'.encode()
        assert js_stringify([value, 1.0]) == f"[{value},1]".encode()

    def test_booleans_are_not_numbers(self) -> None:
        """True and False stay true and false next to numbers that force the slow path."""
        assert js_stringify([True, False, 1.0, 0, None]) == b"[true,false,1,0,null]"

    @settings(max_examples=300, deadline=None)
    @given(st.floats(allow_nan=False, allow_infinity=False))
    def test_any_float_matches_the_ecmascript_rules(self, value: float) -> None:
        """Every finite double is written as ECMAScript's Number::toString writes it."""
        expected = js_number_reference(value)
        assert js_stringify([value]) == f"[{expected}]".encode()
        assert float(expected) == value


class TestKeyOrder:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ({"b": 1, "10": 2, "2": 3}, b'{"2":3,"10":2,"b":1}'),
            ({"b": 1, "01": 2, "1": 3}, b'{"1":3,"b":1,"01":2}'),
            ({"a": 1, "4294967295": 2, "4294967294": 3}, b'{"4294967294":3,"a":1,"4294967295":2}'),
            ({"x": 1, "-1": 2, "1.5": 3, "0": 4}, b'{"0":4,"x":1,"-1":2,"1.5":3}'),
            ({"z": 1, "٣": 2, "²": 3}, '{"z":1,"٣":2,"²":3}'.encode()),
            ({"a": {"9": 1, "10": 2, "y": 3}}, b'{"a":{"9":1,"10":2,"y":3}}'),
            ({"a": [{"1": 1, "0": 0}]}, b'{"a":[{"0":0,"1":1}]}'),
            ({"b": 1, "a": 2}, b'{"b":1,"a":2}'),
        ],
    )
    def test_integer_like_keys_come_first_ascending(self, value: dict, expected: bytes) -> None:
        """Array-index keys come first in ascending order; other keys keep insertion order."""
        assert js_stringify(value) == expected

    def test_key_order_of_any_mapping_is_kept(self) -> None:
        """Any Mapping, not only dict, is written in its own iteration order."""
        assert js_stringify(OrderedDict([("b", 1), ("a", 2)])) == b'{"b":1,"a":2}'


class TestStrings:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("\x00", r'"\u0000"'),
            ("\x1f", r'"\u001f"'),
            ("\x0b", r'"\u000b"'),
            ("\b\f\n\r\t", r'"\b\f\n\r\t"'),
            ('"\\', r'"\"\\"'),
            ("/", '"/"'),
            ("\x7f", '"\x7f"'),
            ("\u2028\u2029", '"\u2028\u2029"'),
            ("Dar es Salaam – Kinondoni ✓ زنجبار 😀", '"Dar es Salaam – Kinondoni ✓ زنجبار 😀"'),
        ],
    )
    def test_string_uses_only_javascript_escapes(self, text: str, expected: str) -> None:
        """Strings are raw UTF-8 except the escapes JSON.stringify makes, also on the slow path."""
        assert js_stringify(text) == expected.encode("utf-8")
        assert js_stringify({"s": text, "n": 1.0}) == f'{{"s":{expected},"n":1}}'.encode()

    def test_lone_surrogate_is_refused(self) -> None:
        """A string holding a lone surrogate cannot be encoded as UTF-8 and is refused."""
        with pytest.raises(EncodingError, match="lone surrogate"):
            js_stringify({"s": "\ud800", "n": 1.0})


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


@dataclasses.dataclass
class Point:
    x: float
    labels: dict[str, int]


class TestTypes:
    @pytest.mark.parametrize(
        ("value", "type_name"),
        [
            ({1: "a"}, "int"),
            ({"a": {2.5: "b"}}, "float"),
            ({("a", "b"): 1}, "tuple"),
            ({None: 1}, "NoneType"),
        ],
    )
    def test_non_string_keys_are_refused(self, value: dict, type_name: str) -> None:
        """Object keys must be strings; any other key is an EncodingError naming its type."""
        with pytest.raises(EncodingError, match=f"object keys must be strings, not {type_name}"):
            js_stringify(value)

    @pytest.mark.parametrize(
        ("value", "type_name"),
        [
            (b"bytes", "bytes"),
            (bytearray(b"x"), "bytearray"),
            ({1, 2}, "set"),
            (decimal.Decimal("1.5"), "Decimal"),
            (object(), "object"),
            (1 + 2j, "complex"),
        ],
    )
    def test_unsupported_types_are_refused(self, value: Any, type_name: str) -> None:
        """Values JSON has no form for are an EncodingError naming their type, wherever they are."""
        for container in (value, {"x": value}, {"x": value, "n": 1.0}, [1e21, value]):
            with pytest.raises(EncodingError, match=f"cannot encode a {type_name} as JSON"):
                js_stringify(container)

    def test_encoding_error_is_a_server_error(self) -> None:
        """A value kiungo cannot encode is kiungo's fault, not the peer's."""
        assert EncodingError.code.startswith("server.")
        assert EncodingError.status == 500

    def test_tuples_and_sequences_are_arrays(self) -> None:
        """Tuples and other sequences are written as arrays."""
        assert js_stringify({"t": (1, 2.0), "r": range(3)}) == b'{"t":[1,2],"r":[0,1,2]}'

    @pytest.mark.parametrize(
        "value",
        [
            {"at": datetime.datetime(2024, 5, 1, 8, 30, tzinfo=datetime.UTC)},
            {"day": datetime.date(2024, 5, 1)},
            {"id": uuid.UUID(int=7)},
            {"colour": Colour.RED},
            {"level": Level.HIGH},
            {"point": Point(1.0, {"10": 1, "2": 2})},
        ],
    )
    def test_other_values_are_written_alike_whatever_sits_beside_them(self, value: dict) -> None:
        """A value's form does not change when a float or an index key elsewhere forces the slow
        path: both paths give the same JavaScript form of the same parsed JSON."""
        alone = js_stringify(value)
        beside = js_stringify({**value, "n": 1.0, "7": 0})
        assert orjson.loads(beside) == {**orjson.loads(alone), "n": 1, "7": 0}
        assert beside == js_stringify(orjson.loads(beside))

    def test_deeply_nested_values_are_refused_not_crashed(self) -> None:
        """A value nested deeper than the encoder allows is an EncodingError, not a crash."""
        value: Any = 1.0
        for _ in range(2000):
            value = [value]
        with pytest.raises(EncodingError, match="nested too deeply"):
            js_stringify(value)


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_keys = st.text() | st.integers(min_value=0, max_value=2**33).map(str)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(json_keys, children, max_size=5)
    ),
    max_leaves=30,
)


def _same_value(a: Any, b: Any) -> bool:
    """Equality with floats compared as values (1 == 1.0) and key order checked as JavaScript's."""
    if isinstance(a, dict):
        return (
            isinstance(b, dict)
            and list(b) == js_key_order(list(a))
            and all(_same_value(a[k], b[k]) for k in a)
        )
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same_value, a, b))
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a is b
    if isinstance(a, float):  # JavaScript parses the written digits back to the same double
        return isinstance(b, int | float) and float(b) == a
    return type(a) is type(b) and a == b


class TestRoundTrip:
    @settings(max_examples=300, deadline=None)
    @given(json_values)
    def test_parsing_the_output_gives_the_value_back(self, value: Any) -> None:
        """For any JSON value, parsing js_stringify's output gives the value back, keys in
        JavaScript order."""
        out = js_stringify(value)
        assert _same_value(value, orjson.loads(out))

    @settings(max_examples=200, deadline=None)
    @given(json_values)
    def test_output_is_a_fixed_point(self, value: Any) -> None:
        """Re-encoding the parsed output gives the same bytes, as JSON.stringify(JSON.parse(x))
        does for x written by JSON.stringify."""
        out = js_stringify(value)
        assert js_stringify(orjson.loads(out)) == out

    @settings(max_examples=200, deadline=None)
    @given(json_values)
    def test_output_has_no_whitespace_outside_strings(self, value: Any) -> None:
        """The output is compact: no whitespace between tokens."""
        out = js_stringify(value).decode("utf-8")
        outside = re.sub(r'"(?:[^"\\]|\\.)*"', '""', out)
        assert not re.search(r"\s", outside)
