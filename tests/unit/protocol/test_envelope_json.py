"""JSON envelopes: the signed bytes as received, strict structure, limits, building."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiungo.errors import ClientError
from kiungo.protocol import (
    DEFAULT_LIMITS,
    Curve,
    EnvelopeTooComplex,
    EnvelopeTooLarge,
    Format,
    InvalidSignature,
    Limits,
    MalformedEnvelope,
    MalformedSignature,
    build_envelope,
    detect_format,
    failure_envelope,
    generate_private_key,
    open_envelope,
    parse_envelope,
    parse_json_envelope,
    response_data,
    sign,
    verify,
)

KEY = generate_private_key(Curve.SECP256K1)
KEY_P256 = generate_private_key(Curve.P256)


def envelope(data_text: bytes, *, layout: str = "compact", key=KEY) -> bytes:
    """An envelope holding ``data_text`` verbatim, signed over exactly those bytes."""
    signature = sign(key, data_text).encode()
    if layout == "compact":
        return b'{"data":' + data_text + b',"signature":"' + signature + b'"}'
    if layout == "pretty":
        return b'{\n  "data" : ' + data_text + b' ,\n  "signature" : "' + signature + b'"\n}\n'
    if layout == "signature_first":
        return b'{"signature":"' + signature + b'","data":' + data_text + b"}"
    if layout == "extra_members":
        return (
            b'{"meta":{"data":[1,"}"]},"data":' + data_text
            + b',"x":"\\"data\\"","signature":"' + signature + b'","y":null}'
        )  # fmt: skip
    raise AssertionError(layout)


LAYOUTS = ["compact", "pretty", "signature_first", "extra_members"]
DATA_TEXTS = [
    b'{"apiCode":"NIDA-VERIFY-01","esbBody":{"nin":"19900101-11111-00001-23"}}',
    b'{ "apiCode" : "A", "esbBody" : { "n" : [ 1 , 2.50 , 1E3 ] } }',
    b'{"s":"},\\"signature\\":\\"AAAA\\"}","t":"[{\\\\"}',
    b'{"a":"\\u00e9\\u2013\\/","b":"\xc3\xa9 \xe2\x80\x93"}',
    b'{"deep":[[[{"x":[]}]]],"empty":{}}',
    b"{}",
]


class TestSignedBytes:
    @pytest.mark.parametrize("layout", LAYOUTS)
    @pytest.mark.parametrize("data_text", DATA_TEXTS)
    def test_every_layout_yields_the_same_signed_slice(self, data_text: bytes, layout: str) -> None:
        """Compact, pretty, signature-first and extra-member envelopes yield exactly the bytes of
        the data value as received, and they verify."""
        parsed = parse_envelope(envelope(data_text, layout=layout), "application/json")
        assert parsed.signed == data_text
        assert parsed.data == orjson.loads(data_text)
        assert parsed.format is Format.JSON
        parsed.verify(KEY.public_key)

    def test_signature_is_decoded_to_der(self) -> None:
        """The envelope's signature is the DER the signer made."""
        data_text = DATA_TEXTS[0]
        parsed = parse_envelope(envelope(data_text))
        assert parsed.signature == base64.b64decode(sign(KEY, data_text))

    def test_whitespace_around_the_signature_value_is_tolerated(self) -> None:
        """Spaces around the signature inside its string do not make it malformed."""
        data_text = DATA_TEXTS[0]
        body = b'{"data":' + data_text + b',"signature":" ' + sign(KEY, data_text).encode() + b' "}'
        open_envelope(body, KEY.public_key)

    def test_re_serializing_the_data_would_not_verify(self) -> None:
        """A non-compact signer's envelope verifies only because the raw bytes are kept."""
        data_text = DATA_TEXTS[1]
        parsed = parse_envelope(envelope(data_text))
        parsed.verify(KEY.public_key)
        with pytest.raises(InvalidSignature):
            verify(KEY.public_key, orjson.dumps(parsed.data), sign(KEY, data_text))

    @settings(max_examples=150, deadline=None)
    @given(
        data=st.dictionaries(
            st.text(max_size=8),
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                lambda c: (
                    st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3)
                ),
                max_leaves=10,
            ),
            max_size=6,
        ),
        indent=st.booleans(),
        layout=st.sampled_from(LAYOUTS),
    )
    def test_any_data_in_any_layout_keeps_its_exact_bytes(
        self, data: dict[str, Any], indent: bool, layout: str
    ) -> None:
        """For any data object, however laid out, the signed slice is the data text verbatim."""
        try:
            data_text = orjson.dumps(data, option=orjson.OPT_INDENT_2 if indent else 0)
        except orjson.JSONEncodeError:  # integers beyond 64 bits
            data_text = orjson.dumps({"big": str(data)})
        parsed = parse_envelope(envelope(data_text, layout=layout))
        assert parsed.signed == data_text
        parsed.verify(KEY.public_key)


DATA_NOT_OBJECT = 'envelope "data" must be a JSON object, got '


class TestRefusals:
    SIG = sign(KEY, b"{}")

    @pytest.mark.parametrize(
        ("body", "error", "message"),
        [
            (b'{"data":{"a":1},"data":{"a":2},"signature":"%s"}', MalformedEnvelope,
             'more than one "data" member'),
            (b'{"data":{"a":1},"\\u0064ata":{"a":2},"signature":"%s"}', MalformedEnvelope,
             'more than one "data" member'),
            (b'{"data":{"a":1},"signature":"%s","signature":"%s"}', MalformedEnvelope,
             'more than one "signature" member'),
            (b'{"data":{"a":1},"signature":"%s"}x', MalformedEnvelope, "not valid JSON"),
            (b'{"data":{"a":1},"signature":"%s"}{}', MalformedEnvelope, "not valid JSON"),
            (b'{"data":{"a":1},"signature":"%s"}}', MalformedEnvelope, "not valid JSON"),
            (b'{"data":[1,2],"signature":"%s"}', MalformedEnvelope, DATA_NOT_OBJECT + "an array"),
            (b'{"data":"{}","signature":"%s"}', MalformedEnvelope, DATA_NOT_OBJECT + "a string"),
            (b'{"data":null,"signature":"%s"}', MalformedEnvelope, DATA_NOT_OBJECT + "null"),
            (b'{"data":7,"signature":"%s"}', MalformedEnvelope, DATA_NOT_OBJECT + "a number"),
            (b'{"data":true,"signature":"%s"}', MalformedEnvelope, DATA_NOT_OBJECT + "a boolean"),
            (b'[{"data":{},"signature":"%s"}]', MalformedEnvelope, "object, got an array"),
            (b'"%s"', MalformedEnvelope, "must be a JSON object, got a string"),
            (b"null", MalformedEnvelope, "must be a JSON object, got null"),
            (b"42", MalformedEnvelope, "must be a JSON object, got a number"),
            (b'{"signature":"%s"}', MalformedEnvelope, 'no "data" member'),
            (b'{"Data":{},"signature":"%s"}', MalformedEnvelope, 'no "data" member'),
            (b"{}", MalformedEnvelope, 'no "data" member'),
            (b'{"data":{"a":1}}', MalformedSignature, 'no "signature" member'),
            (b'{"data":{"a":1},"signature":null}', MalformedSignature, "base64 string, got null"),
            (b'{"data":{"a":1},"signature":["%s"]}', MalformedSignature, "got an array"),
            (b'{"data":{"a":1},"signature":""}', MalformedSignature, "signature is empty"),
            (b'{"data":{"a":1},"signature":"%s', MalformedEnvelope, "not valid JSON"),
            (b'{"data":{"a":1,},"signature":"%s"}', MalformedEnvelope, "not valid JSON"),
            (b"{'data':{},'signature':'%s'}", MalformedEnvelope, "not valid JSON"),
            (b'{"data":{"a":NaN},"signature":"%s"}', MalformedEnvelope, "not valid JSON"),
            (b'{"data":{"a":"\xff"},"signature":"%s"}', MalformedEnvelope, "UTF-8"),
            (b'{"data":{"a":"\xc3"},"signature":"%s"}', MalformedEnvelope, "UTF-8"),
            (b'\xef\xbb\xbf{"data":{},"signature":"%s"}', MalformedEnvelope, "not valid JSON"),
            (b"", MalformedEnvelope, "not valid JSON"),
            (b"   ", MalformedEnvelope, "not valid JSON"),
        ],
    )  # fmt: skip
    def test_malformed_envelope_is_refused_precisely(
        self, body: bytes, error: type[ClientError], message: str
    ) -> None:
        """A structurally wrong JSON envelope is refused with the defect named."""
        body = body.replace(b"%s", self.SIG.encode())
        with pytest.raises(error) as caught:
            parse_envelope(body, "application/json")
        assert message in caught.value.message
        assert type(caught.value) is error

    def test_error_classes_carry_stable_codes_and_statuses(self) -> None:
        """Each refusal has the code and HTTP status the engine answers with."""
        assert (MalformedEnvelope.code, MalformedEnvelope.status) == (
            "client.malformed_envelope",
            422,
        )
        assert (EnvelopeTooLarge.code, EnvelopeTooLarge.status) == (
            "client.envelope_too_large",
            413,
        )
        assert (EnvelopeTooComplex.code, EnvelopeTooComplex.status) == (
            "client.envelope_too_complex", 422,
        )  # fmt: skip
        assert (MalformedSignature.code, MalformedSignature.status) == (
            "client.malformed_signature", 422,
        )  # fmt: skip
        assert (InvalidSignature.code, InvalidSignature.status) == ("client.invalid_signature", 401)
        assert issubclass(EnvelopeTooLarge, MalformedEnvelope)
        assert issubclass(EnvelopeTooComplex, MalformedEnvelope)


class TestLimits:
    def test_body_over_max_bytes_is_too_large(self) -> None:
        """A body longer than max_bytes is refused as too large, naming both sizes."""
        body = envelope(DATA_TEXTS[0])
        limits = Limits(max_bytes=len(body) - 1)
        with pytest.raises(
            EnvelopeTooLarge, match=f"{len(body)} bytes, more than the limit of {len(body) - 1}"
        ):
            parse_envelope(body, limits=limits)
        assert parse_envelope(body, limits=Limits(max_bytes=len(body))).signed == DATA_TEXTS[0]

    def test_size_limit_applies_to_every_entry_point(self) -> None:
        """parse_json_envelope and open_envelope enforce max_bytes too."""
        body = envelope(DATA_TEXTS[0])
        limits = Limits(max_bytes=10)
        with pytest.raises(EnvelopeTooLarge):
            parse_json_envelope(body, limits=limits)
        with pytest.raises(EnvelopeTooLarge):
            open_envelope(body, KEY.public_key, limits=limits)

    @staticmethod
    def nested(depth: int, *, arrays: bool = False) -> bytes:
        """A data object ``depth`` levels deep (the data object itself is level 1)."""
        if arrays:
            return b'{"a":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"
        return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)

    @pytest.mark.parametrize("layout", ["compact", "pretty"])
    @pytest.mark.parametrize("arrays", [False, True])
    def test_depth_up_to_the_limit_passes_and_beyond_is_too_complex(
        self, layout: str, arrays: bool
    ) -> None:
        """Data nested exactly max_depth levels is accepted; one level more is too complex."""
        limits = Limits(max_depth=10)
        ok = envelope(self.nested(10, arrays=arrays), layout=layout)
        assert parse_envelope(ok, limits=limits).signed == self.nested(10, arrays=arrays)
        deep = envelope(self.nested(11, arrays=arrays), layout=layout)
        with pytest.raises(EnvelopeTooComplex, match="nested 11 levels deep, more than 10"):
            parse_envelope(deep, limits=limits)

    def test_default_depth_limit_refuses_deep_data(self) -> None:
        """With the default limits, data nested 1000 levels deep is too complex."""
        with pytest.raises(EnvelopeTooComplex, match=f"more than {DEFAULT_LIMITS.max_depth}"):
            parse_envelope(envelope(self.nested(1000, arrays=True)))

    def test_brackets_inside_strings_do_not_count_as_depth(self) -> None:
        """Many brackets inside string values do not make shallow data too complex."""
        data_text = orjson.dumps({"s": "{[" * 500, "t": ["]}" * 500]})
        assert parse_envelope(envelope(data_text)).signed == data_text

    @pytest.mark.parametrize("layout", ["compact", "signature_first"])
    def test_member_count_up_to_the_limit_passes_and_beyond_is_too_complex(
        self, layout: str
    ) -> None:
        """Data with max_keys object members in all is accepted; one more is too complex."""
        limits = Limits(max_keys=20)
        at_limit = orjson.dumps({"o": {f"k{i}": i for i in range(19)}})
        over = orjson.dumps({"o": {f"k{i}": i for i in range(19)}, "p": 1})
        assert parse_envelope(envelope(at_limit, layout=layout), limits=limits).signed == at_limit
        with pytest.raises(EnvelopeTooComplex, match="21 object members, more than 20"):
            parse_envelope(envelope(over, layout=layout), limits=limits)

    def test_colons_inside_strings_do_not_count_as_members(self) -> None:
        """Colons inside string values do not count as object members."""
        data_text = orjson.dumps({"url": ":" * 50})
        assert parse_envelope(envelope(data_text), limits=Limits(max_keys=5)).signed == data_text


class TestFormatDetection:
    @pytest.mark.parametrize(
        ("body", "content_type", "expected"),
        [
            (b"{}", "application/json; charset=utf-8", Format.JSON),
            (b"<x/>", "application/json", Format.JSON),
            (b"{}", "application/xml", Format.XML),
            (b"{}", "text/xml; charset=utf-8", Format.XML),
            (b"{}", "Application/XML", Format.XML),
            (b"  \n<esbrequest/>", None, Format.XML),
            (b"<esbrequest/>", "text/plain", Format.XML),
            (b'{"data":{}}', "", Format.JSON),
            (b"", None, Format.JSON),
        ],
    )
    def test_content_type_decides_and_the_body_is_sniffed_otherwise(
        self, body: bytes, content_type: str | None, expected: Format
    ) -> None:
        """A JSON or XML content type decides the format; otherwise a leading '<' means XML."""
        assert detect_format(body, content_type) is expected

    def test_json_body_sent_as_xml_is_refused_as_xml(self) -> None:
        """A JSON envelope labelled XML is parsed as XML and refused as not well-formed."""
        with pytest.raises(MalformedEnvelope, match="not well-formed XML"):
            parse_envelope(envelope(DATA_TEXTS[0]), "application/xml")


class TestBuild:
    @pytest.mark.parametrize("key", [KEY, KEY_P256], ids=["secp256k1", "p256"])
    @pytest.mark.parametrize("root", ["esbresponse", "esbrequest"])
    def test_built_envelope_parses_and_verifies(self, key, root: str) -> None:
        """A built JSON envelope parses back to its data and verifies with the builder's key."""
        data = {"success": True, "requestId": "r-1", "esbBody": {"jina": "Zuhura ✓", "n": 1.5}}
        body = build_envelope(data, key, "json", root=root)
        parsed = open_envelope(body, key.public_key)
        assert parsed.data == data
        assert orjson.loads(body) == {"data": data, "signature": orjson.loads(body)["signature"]}
        assert body.startswith(b'{"data":{"success":true,"requestId":"r-1","esbBody":')

    def test_built_envelope_is_signed_over_the_javascript_form(self) -> None:
        """The signed bytes are the JSON.stringify form, so the JS connector's check passes."""
        data = {"esbBody": {"b": 1.0, "10": 2, "2": [1e21, 0.000001]}, "success": True}
        parsed = parse_envelope(build_envelope(data, KEY))
        assert parsed.signed == b'{"esbBody":{"2":[1e+21,0.000001],"10":2,"b":1},"success":true}'
        parsed.verify(KEY.public_key)

    def test_built_envelope_fails_with_another_key(self) -> None:
        """A built envelope does not verify with another system's key."""
        with pytest.raises(InvalidSignature):
            open_envelope(build_envelope({"a": 1}, KEY), generate_private_key().public_key)

    def test_response_data_keeps_the_connectors_key_order(self) -> None:
        """response_data puts success, requestId, esbBody, message in that order and omits None."""
        assert list(response_data(True, body={"x": 1}, request_id="r")) == [
            "success",
            "requestId",
            "esbBody",
        ]
        assert response_data(False, message="hapana") == {"success": False, "message": "hapana"}
        assert response_data(True, body=0) == {"success": True, "esbBody": 0}
        assert response_data(True) == {"success": True}

    @pytest.mark.parametrize("key", [KEY, KEY_P256], ids=["secp256k1", "p256"])
    def test_failure_envelope_has_the_protocol_shape(self, key) -> None:
        """A failure envelope is {"data":{"success":false,"message":…},"signature":…}."""
        body = failure_envelope("Access to API code X is not granted", key)
        whole = orjson.loads(body)
        assert list(whole) == ["data", "signature"]
        assert whole["data"] == {"success": False, "message": "Access to API code X is not granted"}
        assert body.startswith(b'{"data":{"success":false,"message":"Access to API code X')
        open_envelope(body, key.public_key)

    def test_failure_envelope_may_carry_the_request_id(self) -> None:
        """A failure envelope with a request id puts it between success and message."""
        body = failure_envelope("late", KEY, request_id="0193a4f2")
        assert (
            parse_envelope(body).signed
            == b'{"success":false,"requestId":"0193a4f2","message":"late"}'
        )

    def test_failure_envelope_in_xml(self) -> None:
        """A failure envelope in XML is <esbresponse> with success false and the message escaped."""
        body = failure_envelope("a < b & c", KEY, "xml")
        assert body.startswith(
            b"<esbresponse><data><success>false</success><message>a &lt; b &amp; c</message></data>"
        )
        parsed = open_envelope(body, KEY.public_key)
        assert parsed.data == {"success": "false", "message": "a < b & c"}
