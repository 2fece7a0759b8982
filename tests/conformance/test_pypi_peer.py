"""kiungo's protocol core against the PyPI GovESB connector, ``govesb==2.1.0`` (unmodified).

What works in the package interoperates both ways: its ECDSA signing and verification, and
its token client's request. What is broken is pinned by strict xfail tests that assert the
correct behaviour, so each turns into a failure (XPASS) the day a release fixes it.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from govesb.v2.esb_v2 import ECC, DataFormatEnum, ESBHelper, GovESBTokenService

from kiungo.protocol import (
    Curve,
    InvalidSignature,
    PrivateKey,
    build_envelope,
    generate_private_key,
    load_private_key,
    parse_envelope,
    response_data,
    sign,
    verify,
)

pytestmark = pytest.mark.peer

CURVE_ORDERS = {
    Curve.SECP256K1: 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141,
    Curve.P256: 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
}
KEY_NAMES = ("consumer_k1", "consumer_p256", "fresh-k1", "fresh-p256")
PAYLOADS = [
    "",
    '{"apiCode":"KIUNGO-API-001","esbBody":{"jina":"Amani"}}',
    "Karibu 🇹🇿 — مرحبا\n\t\x00",
    "<data><apiCode>X</apiCode></data>",
]


@pytest.fixture(scope="module", params=KEY_NAMES)
def key(request: pytest.FixtureRequest, vector_keys: dict[str, dict]) -> PrivateKey:
    name: str = request.param
    if name == "fresh-k1":
        return generate_private_key(Curve.SECP256K1)
    if name == "fresh-p256":
        return generate_private_key(Curve.P256)
    return load_private_key(vector_keys[name]["privateKeyB64"])


def pem_b64(key: PrivateKey) -> str:
    """The private key form ECC.sign_payload takes: base64 of the PEM text."""
    return base64.b64encode(key.pem.encode("ascii")).decode("ascii")


def other_s(signature_b64: str, curve: Curve) -> str:
    """The same signature with s replaced by n - s: equally valid, the other S half."""
    r, s = decode_dss_signature(base64.b64decode(signature_b64))
    return base64.b64encode(encode_dss_signature(r, CURVE_ORDERS[curve] - s)).decode()


# --- what works: signatures both ways ------------------------------------------------------


def test_kiungo_verifies_pypi_signatures(key: PrivateKey) -> None:
    """ECC.sign_payload signatures verify in kiungo, whichever half of S OpenSSL picked."""
    for payload in PAYLOADS:
        signature = ECC.sign_payload(payload, pem_b64(key))
        verify(key.public_key, payload.encode(), signature)
        # OpenSSL emits high-S about half the time; both forms must pass, so check both.
        twin = other_s(signature, key.curve)
        assert ECC.verify_payload(payload, twin, key.public_key.b64)
        verify(key.public_key, payload.encode(), twin)


def test_kiungo_refuses_pypi_signature_over_other_bytes(key: PrivateKey) -> None:
    """A PyPI signature does not verify in kiungo for different bytes or another key."""
    signature = ECC.sign_payload('{"kiasi":100}', pem_b64(key))
    with pytest.raises(InvalidSignature):
        verify(key.public_key, b'{"kiasi":1000}', signature)
    with pytest.raises(InvalidSignature):
        verify(generate_private_key(key.curve).public_key, b'{"kiasi":100}', signature)


def test_pypi_verifies_kiungo_signatures(key: PrivateKey) -> None:
    """kiungo's signatures verify in ECC.verify_payload with the base64 DER public key."""
    for payload in PAYLOADS:
        signature = sign(key, payload.encode())
        assert ECC.verify_payload(payload, signature, key.public_key.b64)
        assert not ECC.verify_payload(payload + " ", signature, key.public_key.b64)


def test_pypi_verifies_kiungo_envelope_data_bytes(key: PrivateKey) -> None:
    """The primitive verifies kiungo's envelope signature over the data bytes, JSON and XML."""
    data = response_data(True, body={"jina": "Amani", "kiasi": 1500.5, "ujumbe": "🇹🇿"})
    for fmt in ("json", "xml"):
        envelope = parse_envelope(build_envelope(data, key, fmt))
        signature = base64.b64encode(envelope.signature).decode()
        assert ECC.verify_payload(envelope.signed.decode(), signature, key.public_key.b64)


# --- what works: the token client's request ------------------------------------------------

CLIENT_ID = "kiungo-test-client"
CLIENT_SECRET = "siri:ya/mteja+&="
TOKEN = {
    "access_token": "tkn-0123456789",
    "token_type": "bearer",
    "expires_in": 3600,
    "scope": "read write",
}


@dataclass
class TokenServer:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def token_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[TokenServer]:
    """A loopback token endpoint that records requests; right credentials get TOKEN, else 401."""
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length).decode()
            seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
            basic = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            form = dict(parse_qsl(body))
            if self.headers.get("Authorization") == basic and form.get("client_secret") == (
                CLIENT_SECRET
            ):
                status, answer = 200, TOKEN
            else:
                status, answer = 401, {"error": "invalid_client"}
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        yield TokenServer(f"http://127.0.0.1:{port}/gw/govesb-uaa/oauth/token", seen)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_pypi_token_request_shape(token_server: TokenServer) -> None:
    """get_esb_access_token POSTs Basic auth and the three form fields, and reads the token."""
    token = GovESBTokenService.get_esb_access_token(CLIENT_ID, CLIENT_SECRET, token_server.url)
    assert token.success is True
    assert token.access_token == TOKEN["access_token"]
    assert token.token_type == "bearer"
    assert token.expires_in == 3600
    [request] = token_server.requests
    assert request["path"] == "/gw/govesb-uaa/oauth/token"
    assert request["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    # Basic carries the raw id:secret (no form-encoding first, unlike RFC 6749 §2.3.1).
    auth = request["headers"]["Authorization"]
    assert auth.startswith("Basic ")
    assert base64.b64decode(auth.removeprefix("Basic ")).decode() == f"{CLIENT_ID}:{CLIENT_SECRET}"
    assert sorted(parse_qsl(request["body"], strict_parsing=True)) == [
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
        ("grant_type", "client_credentials"),
    ]


def test_pypi_token_refusal_is_unsuccessful(token_server: TokenServer) -> None:
    """A 401 invalid_client answer gives a TokenResponse with success False and no token."""
    token = GovESBTokenService.get_esb_access_token(CLIENT_ID, "wrong", token_server.url)
    assert token.success is False
    assert token.access_token is None
    assert len(token_server.requests) == 1


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason=(
        "govesb 2.1.0 GovESBTokenService.get_esb_access_token builds TokenResponse from "
        "access_token, token_type and expires_in only: the scope the server sends is dropped"
    ),
)
def test_pypi_token_keeps_scope(token_server: TokenServer) -> None:
    """The token client keeps the scope the token endpoint granted."""
    token = GovESBTokenService.get_esb_access_token(CLIENT_ID, CLIENT_SECRET, token_server.url)
    assert token.success is True
    assert token.scope == TOKEN["scope"]


# --- the package's defects -----------------------------------------------------------------


@pytest.fixture
def k1(vector_keys: dict[str, dict]) -> PrivateKey:
    """One key is enough for the defects below: none depends on the curve."""
    return load_private_key(vector_keys["consumer_k1"]["privateKeyB64"])


@pytest.mark.xfail(
    strict=True,
    raises=TypeError,
    reason=(
        "govesb 2.1.0 ESBHelper.create_signed_request builds ESBRequest(apiCode=..., "
        "pushCode=..., esbBody=...) but the dataclass fields are api_code, push_code, "
        "esb_body: TypeError before anything is signed"
    ),
)
def test_pypi_create_signed_request_verifies_in_kiungo(k1: PrivateKey) -> None:
    """create_signed_request yields an envelope kiungo verifies, carrying apiCode and esbBody."""
    text = ESBHelper.create_signed_request(
        "KIUNGO-API-001", "tkn-0123456789", '{"jina":"Amani"}', DataFormatEnum.JSON, pem_b64(k1)
    )
    envelope = parse_envelope(text.encode(), "application/json")
    envelope.verify(k1.public_key)
    assert envelope.data["apiCode"] == "KIUNGO-API-001"
    assert envelope.data["esbBody"] == {"jina": "Amani"}


@pytest.mark.xfail(
    strict=True,
    raises=TypeError,
    reason=(
        "govesb 2.1.0 ESBHelper.create_response builds ESBResponse(esbBody=..., "
        "isSuccess=...) but the dataclass fields are esb_body, success: TypeError"
    ),
)
def test_pypi_create_response_verifies_in_kiungo(k1: PrivateKey) -> None:
    """create_response yields a success envelope kiungo verifies, carrying the body."""
    text = ESBHelper.create_response(
        '{"jibu":"sawa"}', DataFormatEnum.JSON, pem_b64(k1), True, None
    )
    envelope = parse_envelope(text.encode(), "application/json")
    envelope.verify(k1.public_key)
    assert envelope.data["success"] is True
    assert envelope.data["esbBody"] == {"jibu": "sawa"}


REQUEST_DATA = {"apiCode": "KIUNGO-API-001", "esbBody": {"jina": "Amani", "umri": 30}}


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason=(
        "govesb 2.1.0 ESBHelper.verify_and_extract_data (JSON) verifies over "
        "json.dumps(whole envelope, sort_keys=True, separators=(',', ':')), the signature "
        "included, instead of over the bytes of data: no correct envelope can verify"
    ),
)
def test_pypi_verify_and_extract_data_accepts_kiungo_json(k1: PrivateKey) -> None:
    """verify_and_extract_data accepts a correct kiungo JSON request envelope and returns data."""
    envelope = build_envelope(REQUEST_DATA, k1, "json", root="esbrequest")
    result = ESBHelper.verify_and_extract_data(
        envelope.decode(), DataFormatEnum.JSON, k1.public_key.b64
    )
    assert result.has_data, result.message
    assert result.verified_data is not None
    assert json.loads(result.verified_data) == REQUEST_DATA


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason=(
        "govesb 2.1.0 ESBHelper.verify_and_extract_data (XML) verifies over "
        "xmltodict.unparse({'data': ...}), which prepends '<?xml version=\"1.0\" "
        'encoding="utf-8"?>\\n\' to the re-serialized element, not over <data> as received'
    ),
)
def test_pypi_verify_and_extract_data_accepts_kiungo_xml(k1: PrivateKey) -> None:
    """verify_and_extract_data accepts a correct kiungo XML request envelope."""
    envelope = build_envelope(REQUEST_DATA, k1, "xml", root="esbrequest")
    result = ESBHelper.verify_and_extract_data(
        envelope.decode(), DataFormatEnum.XML, k1.public_key.b64
    )
    assert result.has_data, result.message
