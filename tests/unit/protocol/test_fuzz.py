"""Fuzzing parse_envelope: whatever the bytes, only a ClientError comes out, and quickly."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kiungo.errors import ClientError
from kiungo.protocol import (
    DEFAULT_LIMITS,
    Curve,
    Envelope,
    EnvelopeTooComplex,
    EnvelopeTooLarge,
    build_envelope,
    generate_private_key,
    parse_envelope,
)

KEY = generate_private_key(Curve.SECP256K1)
OTHER = generate_private_key(Curve.P256)
SIG = (
    b"MEUCIQD86dHeOjgD2H1/E6ubywFn+qQONf0nr2hSr7YQbuaQXAIg"
    b"RxMsavhUuJGboahPfnqRc+zilVXU8Cle1BiC8NvePQ0="
)

SEEDS = [
    build_envelope(
        {"apiCode": "NIDA-1", "esbBody": {"a": [1, 2.5, None, True], "s": 'é<&>"\\'}}, KEY
    ),
    build_envelope(
        {"success": True, "esbBody": {"a": "x&y", "l": [1, 2]}, "message": "m"}, KEY, "xml"
    ),
    build_envelope({"apiCode": "X", "esbBody": {"n": 1}}, OTHER, "xml", root="esbrequest"),
    b'{\n "signature" : "' + SIG + b'" ,\n "data" : { "a" : [ 1 , 2.5e3 , null ] , "b" : {} } }\n',
    b'{"x":{"data":1},"data":{"s":"},\\"signature\\":\\""},"signature":"' + SIG + b'"}',
    b'<?xml version="1.0" encoding="UTF-8"?><esbrequest><data><esbBody a=\'>\'>v<i>w</i>'
    b"</esbBody><x/><![CDATA[z]]><!-- c --></data><signature>" + SIG + b"</signature></esbrequest>",
]
TOKENS = [
    b"{", b"}", b"[", b"]", b"<", b">", b"/", b'"', b"'", b"\\", b":", b",", b"&", b"\x00",
    b"\xff", b"\xc3", b"]]>", b"<![CDATA[", b"<!--", b"<?", b"<data>", b"</data>", b"<data/>",
    b"<signature>", b'"data":{}', b'"signature":"', b"<!DOCTYPE x>", b"&#0;", b"&#x110000;",
    b"&lt;", b'<?xml version="1.0" encoding="bogus"?>', b"\\u0000", b"\\ud800", b"1e999",
    b"-0", b"NaN", b"\r\n", b"\xef\xbb\xbf",
]  # fmt: skip
CONTENT_TYPES = st.sampled_from([None, "application/json", "application/xml; charset=utf-8", ""])


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid envelope with a few bit flips, truncations, deletions and insertions."""
    body = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(min_value=1, max_value=5))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "duplicate"]))
        at = draw(st.integers(min_value=0, max_value=len(body)))
        if kind == "flip" and body:
            at = min(at, len(body) - 1)
            body[at] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif kind == "truncate":
            del body[at:]
        elif kind == "insert":
            body[at:at] = draw(st.sampled_from(TOKENS) | st.binary(min_size=1, max_size=4))
        elif kind == "delete":
            del body[at : at + draw(st.integers(min_value=1, max_value=12))]
        else:
            end = min(len(body), at + draw(st.integers(min_value=1, max_value=40)))
            body[end:end] = body[at:end]
    return bytes(body)


def parse_or_refuse(body: bytes, content_type: str | None) -> Envelope | None:
    """Parse and verify; a ClientError is the only acceptable failure."""
    try:
        envelope = parse_envelope(body, content_type)
    except ClientError as exc:
        assert exc.message and exc.code.startswith("client.")
        return None
    assert isinstance(envelope.data, dict)
    assert isinstance(envelope.signed, bytes) and envelope.signed in body
    for key in (KEY, OTHER):
        with contextlib.suppress(ClientError):
            envelope.verify(key.public_key)
    return envelope


FUZZ = settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class TestFuzz:
    @FUZZ
    @given(body=st.binary(max_size=512), content_type=CONTENT_TYPES)
    @example(body=b"", content_type=None)
    @example(body=b"<", content_type=None)
    @example(body=b'{"data":', content_type=None)
    def test_arbitrary_bytes_raise_only_client_errors(
        self, body: bytes, content_type: str | None
    ) -> None:
        """Any bytes at all parse or are refused with a ClientError, never another exception."""
        parse_or_refuse(body, content_type)

    @FUZZ
    @given(
        body=st.builds(
            lambda prefix, tail: prefix + tail,
            st.sampled_from(
                [b"{", b'{"data":{', b"<esbrequest><data>", b"<", b"<?xml version='1.0'?>"]
            ),
            st.lists(
                st.sampled_from(TOKENS) | st.text(max_size=4).map(str.encode), max_size=30
            ).map(b"".join),
        ),
        content_type=CONTENT_TYPES,
    )
    def test_token_soup_raises_only_client_errors(
        self, body: bytes, content_type: str | None
    ) -> None:
        """Bodies assembled from structural tokens are parsed or refused with a ClientError."""
        parse_or_refuse(body, content_type)

    @FUZZ
    @given(body=mutated(), content_type=CONTENT_TYPES)
    def test_mutated_envelopes_raise_only_client_errors(
        self, body: bytes, content_type: str | None
    ) -> None:
        """Bit flips, truncation and insertions into valid envelopes never escape as another
        exception, and whatever still parses keeps its signed bytes inside the body."""
        parse_or_refuse(body, content_type)

    @FUZZ
    @given(
        encoding=st.text(
            alphabet=st.characters(
                min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="\"'<>&"
            ),
            min_size=1,
            max_size=20,
        )
        | st.sampled_from(
            ["utf-16", "utf-32", "rot13", "hex", "zlib", "idna", "punycode", "cp037", "utf-7"]
        ),
        data=st.binary(max_size=16),
    )
    def test_any_declared_xml_encoding_raises_only_client_errors(
        self, encoding: str, data: bytes
    ) -> None:
        """Whatever encoding an XML declaration names, the body is parsed or refused cleanly."""
        body = (
            b'<?xml version="1.0" encoding="' + encoding.encode() + b'"?><esbrequest><data><a>'
            + data.replace(b"<", b"").replace(b"&", b"") + b"</a></data><signature>" + SIG
            + b"</signature></esbrequest>"
        )  # fmt: skip
        parse_or_refuse(body, "application/xml")

    def test_valid_seeds_parse(self) -> None:
        """The fuzz seeds themselves are valid envelopes, so mutations start from real input."""
        for seed in SEEDS:
            assert parse_or_refuse(seed, None) is not None


class TestPathologicalInput:
    @pytest.mark.parametrize(
        "body",
        [
            b"[" * 100_000,
            b'{"a":' * 100_000,
            b'{"data":' + b"[" * 100_000,
            b'{"data":{"a":' + b"[" * 100_000 + b"]" * 100_000 + b'},"signature":"' + SIG + b'"}',
            b'{"data":'
            + b'{"a":' * 50_000
            + b"1"
            + b"}" * 50_000
            + b',"signature":"'
            + SIG
            + b'"}',
        ],
        ids=["open-arrays", "open-objects", "data-open-arrays", "closed-arrays", "closed-objects"],
    )
    def test_deep_json_nesting_is_refused_as_too_complex(self, body: bytes) -> None:
        """100,000 levels of JSON nesting are refused as too complex, without a RecursionError."""
        with pytest.raises(EnvelopeTooComplex, match="nested"):
            parse_envelope(body, "application/json")

    @pytest.mark.parametrize(
        "body",
        [
            b"<esbrequest>" + b"<a>" * 100_000,
            b"<esbrequest><data>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</data></esbrequest>",
        ],
        ids=["open", "closed"],
    )
    def test_deep_xml_nesting_is_refused_as_too_complex(self, body: bytes) -> None:
        """100,000 nested XML elements are refused as too complex at the depth limit."""
        with pytest.raises(
            EnvelopeTooComplex, match=f"nested more than {DEFAULT_LIMITS.max_depth}"
        ):
            parse_envelope(body, "application/xml")

    def test_many_members_are_refused_as_too_complex(self) -> None:
        """Data with more object members than the limit is refused as too complex."""
        members = b",".join(b'"k%d":0' % i for i in range(DEFAULT_LIMITS.max_keys + 1))
        body = b'{"data":{' + members + b'},"signature":"' + SIG + b'"}'
        with pytest.raises(EnvelopeTooComplex, match="object members"):
            parse_envelope(body)

    def test_many_elements_are_refused_as_too_complex(self) -> None:
        """XML with more elements than the limit is refused as too complex."""
        body = (
            b"<esbrequest><data>"
            + b"<a/>" * (DEFAULT_LIMITS.max_keys + 1)
            + b"</data></esbrequest>"
        )
        with pytest.raises(EnvelopeTooComplex, match="elements"):
            parse_envelope(body)

    @pytest.mark.parametrize("content_type", ["application/json", "application/xml"])
    def test_five_megabyte_body_is_refused_as_too_large(self, content_type: str) -> None:
        """A 5 MB body is over the default 4 MiB limit and refused as too large before parsing."""
        body = b'{"data":{"blob":"' + b"A" * (5 * 1024 * 1024) + b'"},"signature":"' + SIG + b'"}'
        with pytest.raises(EnvelopeTooLarge, match="more than the limit of 4194304"):
            parse_envelope(body, content_type)

    def test_body_just_under_the_limit_is_parsed(self) -> None:
        """A large body within the size limit is parsed and verified normally."""
        data = {"blob": "A" * (DEFAULT_LIMITS.max_bytes - 200)}
        body = build_envelope(data, KEY)
        assert len(body) <= DEFAULT_LIMITS.max_bytes
        parse_envelope(body).verify(KEY.public_key)
