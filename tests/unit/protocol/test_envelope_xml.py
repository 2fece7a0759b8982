"""XML envelopes: exact spans of <data> and its fields, strict structure, safe parsing, building."""

from __future__ import annotations

import pytest

from kiungo.errors import ClientError
from kiungo.protocol import (
    Curve,
    EncodingError,
    EnvelopeTooComplex,
    EnvelopeTooLarge,
    ForbiddenXML,
    Format,
    InvalidSignature,
    Limits,
    MalformedEnvelope,
    MalformedSignature,
    RawXML,
    build_envelope,
    generate_private_key,
    open_envelope,
    parse_envelope,
    parse_xml_envelope,
    sign,
)

KEY = generate_private_key(Curve.SECP256K1)
KEY_P256 = generate_private_key(Curve.P256)
XML = "application/xml; charset=utf-8"


def envelope(
    data_element: bytes, *, root: bytes = b"esbrequest", key=KEY, before: bytes = b""
) -> bytes:
    """An XML envelope holding ``data_element`` verbatim, signed over exactly those bytes."""
    signature = sign(key, data_element).encode()
    return (
        before + b"<" + root + b">" + data_element
        + b"<signature>" + signature + b"</signature></" + root + b">"
    )  # fmt: skip


class TestSignedBytes:
    @pytest.mark.parametrize(
        "data_element",
        [
            b"<data><apiCode>NIDA-VERIFY-01</apiCode><esbBody><nin>1990</nin></esbBody></data>",
            b"<data>\n  <apiCode>A</apiCode>\n  <esbBody><x>1</x></esbBody>\n</data>",
            b"<data><a>&lt;b&gt; &amp; &#x3c;&#60;</a><!-- comment --><?pi x?></data>",
            b"<data ><a>1</a></data >",
            b'<data id="7" note="a>b"><a>1</a></data>',
            "<data><jina>Zuhura – زنجبار ✓</jina></data>".encode(),
            b"<data/>",
            b"<data></data>",
        ],
    )
    def test_signed_slice_is_the_data_element_as_received(self, data_element: bytes) -> None:
        """The signed bytes are exactly the <data> element as sent, whitespace, comments,
        entities and attributes included, and they verify."""
        parsed = parse_envelope(envelope(data_element), XML)
        assert parsed.signed == data_element
        assert parsed.format is Format.XML
        assert parsed.root == "esbrequest"
        parsed.verify(KEY.public_key)

    def test_declaration_and_whitespace_around_the_root_are_accepted(self) -> None:
        """An XML declaration and whitespace between elements do not disturb the spans."""
        data_element = b"<data><a>1</a></data>"
        signature = sign(KEY, data_element).encode()
        body = (
            b'<?xml version="1.0" encoding="UTF-8"?>\n<esbresponse>\n  ' + data_element
            + b"\n  <signature>\n    " + signature + b"\n  </signature>\n</esbresponse>\n"
        )  # fmt: skip
        parsed = open_envelope(body, KEY.public_key)
        assert parsed.signed == data_element
        assert parsed.root == "esbresponse"

    def test_signature_before_data_is_accepted(self) -> None:
        """The order of <signature> and <data> inside the root does not matter."""
        data_element = b"<data><a>1</a></data>"
        body = (
            b"<esbrequest><signature>" + sign(KEY, data_element).encode()
            + b"</signature>" + data_element + b"</esbrequest>"
        )  # fmt: skip
        assert open_envelope(body, KEY.public_key).signed == data_element

    def test_signature_in_cdata_is_accepted(self) -> None:
        """A signature wrapped in CDATA is read as its text."""
        data_element = b"<data><a>1</a></data>"
        body = (
            b"<esbrequest>" + data_element + b"<signature><![CDATA["
            + sign(KEY, data_element).encode() + b"]]></signature></esbrequest>"
        )  # fmt: skip
        open_envelope(body, KEY.public_key)

    def test_one_changed_byte_in_the_data_fails(self) -> None:
        """Changing one character of the data after signing makes verification fail."""
        body = envelope(b"<data><amount>1500</amount></data>").replace(b"1500", b"1501")
        with pytest.raises(InvalidSignature, match="does not match"):
            open_envelope(body, KEY.public_key)


class TestFieldsAndValues:
    def test_fields_are_the_raw_inner_markup_of_each_child(self) -> None:
        """fields maps each child of <data> to its inner markup exactly as received."""
        data_element = (
            b"<data><apiCode>A-1</apiCode><esbBody><a>x &amp; y</a><b/>"
            b"<c at='1'>2</c></esbBody><userId>u</userId></data>"
        )
        parsed = parse_envelope(envelope(data_element))
        assert dict(parsed.fields) == {
            "apiCode": b"A-1",
            "esbBody": b"<a>x &amp; y</a><b/><c at='1'>2</c>",
            "userId": b"u",
        }
        assert parsed.data == {
            "apiCode": "A-1",
            "esbBody": {"a": "x & y", "b": "", "c": "2"},
            "userId": "u",
        }

    def test_self_closing_field_is_empty(self) -> None:
        """A self-closing <esbBody/> is an empty field and an empty value, and later spans hold."""
        parsed = parse_envelope(envelope(b"<data><esbBody/><next>n</next><e></e></data>"))
        assert dict(parsed.fields) == {"esbBody": b"", "next": b"n", "e": b""}
        assert parsed.data == {"esbBody": "", "next": "n", "e": ""}

    def test_attributes_containing_angle_brackets_do_not_shift_spans(self) -> None:
        """Attribute values holding '>' or '/>' do not end the start tag early."""
        data_element = (
            b"""<data><esbBody a=">" b='/>' c="'>"><i>w</i></esbBody><z q="/>"/></data>"""
        )
        parsed = parse_envelope(envelope(data_element))
        assert parsed.fields["esbBody"] == b"<i>w</i>"
        assert parsed.fields["z"] == b""
        assert parsed.data == {"esbBody": {"i": "w"}, "z": ""}

    def test_cdata_is_kept_raw_in_fields_and_read_as_text(self) -> None:
        """A CDATA section stays verbatim in fields and is its text in data."""
        parsed = parse_envelope(envelope(b"<data><esbBody><![CDATA[<x>&</x>]]></esbBody></data>"))
        assert parsed.fields["esbBody"] == b"<![CDATA[<x>&</x>]]>"
        assert parsed.data == {"esbBody": "<x>&</x>"}

    def test_repeated_children_become_a_list(self) -> None:
        """Repeated elements are read as a list, as the connectors write arrays."""
        parsed = parse_envelope(envelope(b"<data><l>1</l><l>2</l><l><m>3</m></l></data>"))
        assert parsed.data == {"l": ["1", "2", {"m": "3"}]}

    def test_nested_data_element_is_read_by_structure(self) -> None:
        """A <data> element inside <data> is an ordinary child: the outer element is signed."""
        data_element = b"<data><data>inner</data><x>1</x></data>"
        parsed = open_envelope(envelope(data_element), KEY.public_key)
        assert parsed.signed == data_element
        assert parsed.data == {"data": "inner", "x": "1"}


class TestRefusals:
    SIG = sign(KEY, b"<data/>").encode()

    @pytest.mark.parametrize(
        ("body", "error", "message"),
        [
            (b"<envelope><data/><signature>S</signature></envelope>", MalformedEnvelope,
             "root must be <esbrequest> or <esbresponse>, got <envelope>"),
            (b"<esbrequest xmlns='urn:x'><data/><signature>S</signature></esbrequest>",
             MalformedEnvelope, "got <{urn:x}esbrequest>"),
            (b"<esbrequest><data/><data/><signature>S</signature></esbrequest>", MalformedEnvelope,
             "exactly one <data> element, has 2"),
            (b"<esbrequest><signature>S</signature></esbrequest>", MalformedEnvelope,
             "exactly one <data> element, has 0"),
            (b"<esbrequest><x><data/></x><signature>S</signature></esbrequest>", MalformedEnvelope,
             "exactly one <data> element, has 0"),
            (b"<esbrequest><data/></esbrequest>", MalformedSignature, "no <signature> element"),
            (b"<esbrequest><data/><signature>S</signature><signature>S</signature></esbrequest>",
             MalformedEnvelope, "more than one <signature> element"),
            (b"<esbrequest><data/><signature><b>S</b></signature></esbrequest>", MalformedSignature,
             "base64 text only"),
            (b"<esbrequest><data/><signature></signature></esbrequest>", MalformedSignature,
             "signature is empty"),
            (b"<esbrequest><data/><signature>not base64!</signature></esbrequest>",
             MalformedSignature, "not valid base64"),
            (b"<esbrequest><data/><signature>S</signature></esbrequest><x/>", MalformedEnvelope,
             "not well-formed XML"),
            (b"<esbrequest><data/><signature>S</signature></esbrequest>trailing", MalformedEnvelope,
             "not well-formed XML"),
            (b"<esbrequest><data><a>1</b></data><signature>S</signature></esbrequest>",
             MalformedEnvelope, "not well-formed XML"),
            (b"<esbrequest><data><a>&nbsp;</a></data><signature>S</signature></esbrequest>",
             MalformedEnvelope, "undefined entity"),
            (b"<esbrequest><data><a>\xff</a></data><signature>S</signature></esbrequest>",
             MalformedEnvelope, "not well-formed XML"),
            (b"<esbrequest><data><a b='1' b='2'/></data><signature>S</signature></esbrequest>",
             MalformedEnvelope, "duplicate attribute"),
            (b"", MalformedEnvelope, "not well-formed XML"),
            (b"<esbrequest><data>", MalformedEnvelope, "not well-formed XML"),
        ],
    )  # fmt: skip
    def test_malformed_envelope_is_refused_precisely(
        self, body: bytes, error: type[ClientError], message: str
    ) -> None:
        """A structurally wrong XML envelope is refused with the defect named."""
        with pytest.raises(error) as caught:
            parse_envelope(body.replace(b">S<", b">" + self.SIG + b"<"), XML)
        assert message in caught.value.message
        assert type(caught.value) is error

    @pytest.mark.parametrize(
        ("prolog", "message"),
        [
            (b"<!DOCTYPE esbrequest>", "DTD"),
            (b'<!DOCTYPE esbrequest [<!ENTITY a "b">]>', "DTD"),
            (b'<!DOCTYPE esbrequest SYSTEM "http://example.invalid/x.dtd">', "DTD"),
            (b'<!DOCTYPE esbrequest [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>', "DTD"),
        ],
    )
    def test_dtds_and_entities_are_forbidden(self, prolog: bytes, message: str) -> None:
        """Any DTD, entity declaration or external reference is refused before it is used."""
        body = envelope(b"<data><a>1</a></data>", before=b'<?xml version="1.0"?>' + prolog)
        with pytest.raises(ForbiddenXML, match=message):
            parse_envelope(body, XML)

    @pytest.mark.parametrize(
        "encoding", [b"bogus", b"rot13", b"base64", b"utf-32", b"shift_jis", b"idna", b"punycode"]
    )
    def test_unusable_declared_encoding_is_a_client_error(self, encoding: bytes) -> None:
        """An XML declaration naming an unknown or unusable encoding is refused as malformed."""
        body = envelope(
            b"<data><a>\x80\xff</a></data>",
            before=b'<?xml version="1.0" encoding="' + encoding + b'"?>',
        )
        with pytest.raises(MalformedEnvelope):
            parse_envelope(body, XML)

    def test_size_limit_applies_to_xml(self) -> None:
        """An XML body over max_bytes is refused as too large."""
        body = envelope(b"<data><a>1</a></data>")
        with pytest.raises(EnvelopeTooLarge):
            parse_xml_envelope(body, limits=Limits(max_bytes=len(body) - 1))
        with pytest.raises(EnvelopeTooLarge):
            parse_envelope(body, XML, limits=Limits(max_bytes=len(body) - 1))

    def test_depth_up_to_the_limit_passes_and_beyond_is_too_complex(self) -> None:
        """Elements nested max_depth levels (root included) pass; one level more is too complex."""
        limits = Limits(max_depth=6)

        def body(levels: int) -> bytes:
            inner = b"<a>" * levels + b"x" + b"</a>" * levels
            return envelope(b"<data>" + inner + b"</data>")

        assert parse_envelope(body(4), limits=limits).data  # esbrequest, data, 4 × a
        with pytest.raises(EnvelopeTooComplex, match="nested more than 6 levels deep"):
            parse_envelope(body(5), limits=limits)

    def test_element_count_up_to_the_limit_passes_and_beyond_is_too_complex(self) -> None:
        """max_keys elements in the whole envelope pass; one more is too complex."""
        limits = Limits(max_keys=10)

        def body(items: int) -> bytes:
            return envelope(b"<data>" + b"<i>1</i>" * items + b"</data>")

        assert parse_envelope(body(7), limits=limits).data == {"i": ["1"] * 7}  # + 3
        with pytest.raises(EnvelopeTooComplex, match="more than 10 elements"):
            parse_envelope(body(8), limits=limits)


class TestBuild:
    @pytest.mark.parametrize("key", [KEY, KEY_P256], ids=["secp256k1", "p256"])
    @pytest.mark.parametrize("root", ["esbresponse", "esbrequest"])
    def test_built_envelope_parses_and_verifies(self, key, root: str) -> None:
        """A built XML envelope has the given root, parses back and verifies."""
        data = {"success": True, "requestId": "r-1", "esbBody": {"jina": "Zuhura ✓", "n": 2}}
        body = build_envelope(data, key, "xml", root=root)
        assert body.startswith(f"<{root}><data><success>true</success>".encode())
        assert body.endswith(f"</signature></{root}>".encode())
        parsed = open_envelope(body, key.public_key)
        assert parsed.root == root
        assert parsed.data == {
            "success": "true",
            "requestId": "r-1",
            "esbBody": {"jina": "Zuhura ✓", "n": "2"},
        }

    @pytest.mark.parametrize("text", ["a & b < c > d \"e\" 'f'", "> first", "x ]]> y", "&lt;"])
    def test_text_is_escaped_and_read_back(self, text: str) -> None:
        """& and < are written as entities, never a raw ']]>', and the text reads back unchanged."""
        body = build_envelope({"message": text}, KEY, "xml")
        written = body[body.index(b"<message>") + 9 : body.index(b"</message>")]
        assert b"<" not in written
        assert b"]]>" not in written
        assert open_envelope(body, KEY.public_key).data["message"] == text
        if "&" in text:
            assert b"&amp;" in written

    def test_none_is_omitted_and_lists_repeat_their_key(self) -> None:
        """None values are left out and each list item is its own element."""
        data = {"esbBody": {"skip": None, "items": [1, None, {"k": "v"}, [2, 3]], "last": False}}
        parsed = parse_envelope(build_envelope(data, KEY, "xml"))
        assert parsed.signed == (
            b"<data><esbBody><items>1</items><items><k>v</k></items><items>2</items>"
            b"<items>3</items><last>false</last></esbBody></data>"
        )

    def test_numbers_are_written_in_javascript_form(self) -> None:
        """Floats in XML text use the same JavaScript number form as JSON."""
        parsed = parse_envelope(
            build_envelope({"a": 1.0, "b": 1e21, "c": 1e-7, "d": 2**70}, KEY, "xml")
        )
        assert parsed.data == {"a": "1", "b": "1e+21", "c": "1e-7", "d": str(2**70)}

    def test_raw_xml_is_placed_verbatim(self) -> None:
        """A RawXML value is forwarded as the markup it holds, unescaped."""
        body = build_envelope({"esbBody": RawXML(b"<a x='1'>t &amp; u</a>")}, KEY, "xml")
        parsed = open_envelope(body, KEY.public_key)
        assert parsed.fields["esbBody"] == b"<a x='1'>t &amp; u</a>"

    @pytest.mark.parametrize(
        "body_value",
        [
            {"data": {"x": "1"}},
            RawXML(b"<data>x</data>"),
            {"wrap": RawXML(b"<data attr='1'>x</data>")},
            {"wrap": {"signature": "forged"}},
        ],
    )
    def test_body_holding_a_data_or_signature_element_is_sent_as_escaped_text(
        self, body_value
    ) -> None:
        """A body whose markup holds <data> or <signature> is sent as escaped text, so a
        connector cutting from the first <data> to the first </data> sees the signed element."""
        body = build_envelope({"success": True, "esbBody": body_value}, KEY, "xml")
        first_open, first_close = body.index(b"<data>"), body.index(b"</data>")
        parsed = open_envelope(body, KEY.public_key)
        assert body[first_open : first_close + len(b"</data>")] == parsed.signed
        assert body.index(b"<signature>") > first_close
        assert isinstance(parsed.data["esbBody"], str)
        assert "&lt;" in parsed.fields["esbBody"].decode()

    @pytest.mark.parametrize("key", ["data", "signature"])
    @pytest.mark.parametrize("value", ["x", {"x": 1}, [1, 2]])
    def test_top_level_data_or_signature_field_is_refused(self, key: str, value) -> None:
        """A top-level field named data or signature would be an element the connectors take for
        the envelope's own, so it cannot be encoded; None (left out) is fine."""
        with pytest.raises(EncodingError, match=f"top-level '{key}' field"):
            build_envelope({"success": True, key: value}, KEY, "xml")
        assert build_envelope({"success": True, key: None}, KEY, "xml").startswith(
            b"<esbresponse><data><success>true</success></data><signature>"
        )

    @pytest.mark.parametrize("name", ["1abc", "a b", "", "a<b", "x:y", "-a", "a/b", "é&"])
    def test_invalid_element_names_are_refused(self, name: str) -> None:
        """A key that cannot be an XML element name cannot be encoded."""
        with pytest.raises(EncodingError, match="cannot be an XML element name"):
            build_envelope({"esbBody": {name: "v"}}, KEY, "xml")

    def test_unicode_element_names_are_allowed(self) -> None:
        """Letters beyond ASCII make valid element names."""
        parsed = parse_envelope(
            build_envelope({"jina_la_kwanza": 1, "mkoa": {"وصف": "x"}}, KEY, "xml")
        )
        assert parsed.data == {"jina_la_kwanza": "1", "mkoa": {"وصف": "x"}}

    @pytest.mark.parametrize("text", ["\x00", "a\x01b", "\x08", "\x0b", "\x1f", "\ufffe", "\uffff"])
    def test_xml_illegal_characters_are_refused(self, text: str) -> None:
        """Control characters XML 1.0 cannot carry are an EncodingError, not broken markup."""
        with pytest.raises(EncodingError, match="control character"):
            build_envelope({"message": text}, KEY, "xml")

    def test_tabs_and_newlines_are_carried(self) -> None:
        """Tab, newline and carriage return are legal XML text and survive the round trip."""
        parsed = parse_envelope(build_envelope({"m": "a\tb\nc"}, KEY, "xml"))
        assert parsed.data == {"m": "a\tb\nc"}
