"""kiungo's protocol core against the real JavaScript connector (npm govesb-connector-js).

The connector runs unmodified under node through ``js/driver.js``, which takes a batch of
operations as JSON on stdin: each fixture below starts node once for all its cases.
Both directions are checked — kiungo verifies what the connector signs, and the connector's
own ``verifyThenReturnData`` accepts what kiungo signs — on both curves, in JSON and XML,
and encrypted payloads open both ways.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from tests.conftest import PEERS

from kiungo.protocol import (
    Curve,
    DecryptionFailed,
    PrivateKey,
    RawXML,
    build_envelope,
    decrypt,
    encrypt_to_json,
    failure_envelope,
    generate_private_key,
    js_stringify,
    load_private_key,
    load_public_key,
    parse_envelope,
    response_data,
    verify,
)

pytestmark = pytest.mark.peer

DRIVER = Path(__file__).parent / "js" / "driver.js"


def run_js(node: str, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run a batch of driver operations in one node process; one result per operation."""
    proc = subprocess.run(
        [node, str(DRIVER)],
        input=json.dumps(ops).encode(),
        capture_output=True,
        timeout=120,
        check=False,
        env={**os.environ, "KIUNGO_PEERS": str(PEERS)},
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    results = json.loads(proc.stdout)
    assert len(results) == len(ops)
    return results


def ok(result: dict[str, Any]) -> Any:
    if not result["ok"]:
        pytest.fail(f"the JavaScript connector raised: {result['error']}")
    return result["value"]


# --- keys ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeySet:
    """The connector's own key (a consumer or provider) and the bus key, on one curve."""

    client: PrivateKey
    esb: PrivateKey


KEYSETS = ("k1-vector", "p256-vector", "k1-fresh", "p256-fresh")


@pytest.fixture(scope="session")
def keysets(vector_keys: dict[str, dict]) -> dict[str, KeySet]:
    def vector(name: str) -> PrivateKey:
        return load_private_key(vector_keys[name]["privateKeyB64"])

    def fresh(curve: Curve) -> KeySet:
        return KeySet(generate_private_key(curve), generate_private_key(curve))

    return {
        "k1-vector": KeySet(vector("consumer_k1"), vector("esb_k1")),
        "p256-vector": KeySet(vector("consumer_p256"), vector("esb_p256")),
        "k1-fresh": fresh(Curve.SECP256K1),
        "p256-fresh": fresh(Curve.P256),
    }


# --- 1. the connector signs, kiungo verifies -----------------------------------------------

API_CODE = "KIUNGO-API-001"
NIN = "19900101-12345-00001-23"
CLIENT_ID = "kiungo-test-client"
CLIENT_SECRET = "siri:ya/mteja+&=%"  # characters that form and Basic encodings treat apart
JSON_BODY = (
    '{"nin":"19900101-12345-00001-23","jina":"Zawadi Mwanaidi","kiasi":1500.5,'
    '"orodha":[1,2,{"ndani":null}],"ujumbe":"Karibu 🇹🇿 — مرحبا \\"nukuu\\""}'
)
XML_BODY = "<mtu><jina>Zawadi &amp; Baraka</jina><ujumbe>Karibu 🇹🇿 &lt;sawa&gt;</ujumbe></mtu>"
TEXT_BODY = "habari dunia: si JSON, ni maandishi tu"
ENGINE_REPLY = {"jibu": "sawa", "kiasi": 0.5, "orodha": ["a", "b"]}

REQUEST_CASES: dict[str, tuple[str, str, str]] = {
    "requestData-json": ("requestData", "json", JSON_BODY),
    "requestData-json-text": ("requestData", "json", TEXT_BODY),
    "requestData-xml": ("requestData", "xml", XML_BODY),
    "requestNida-json": ("requestNida", "json", JSON_BODY),
    "requestNida-xml": ("requestNida", "xml", XML_BODY),
    "pushData-json": ("pushData", "json", JSON_BODY),
    "pushData-xml": ("pushData", "xml", XML_BODY),
}
ENDPOINTS = {"requestData": "request", "requestNida": "nida-request", "pushData": "push-request"}


def parsed_body(text: str) -> Any:
    """The connector's rule: the parsed JSON of a body, or the raw text when it is not JSON."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def expected_request_data(method: str, fmt: str, body: str) -> dict[str, Any]:
    esb_body = f"<root>{body}</root>" if fmt == "xml" else parsed_body(body)
    data: dict[str, Any] = {"pushCode" if method == "pushData" else "apiCode": API_CODE}
    if method == "requestNida":
        data["userId"] = NIN
        data["esbBody"] = {"Payload": esb_body}
    else:
        data["esbBody"] = esb_body
    return data


@dataclass(frozen=True)
class SentRequest:
    calls: list[dict[str, Any]]  # what the connector sent: the token call, then the request
    result: str | None  # what requestData & co. returned for kiungo's reply
    reply: bytes  # kiungo's reply envelope


@pytest.fixture(scope="session")
def js_requests(node: str, keysets: dict[str, KeySet]) -> dict[tuple[str, str], SentRequest]:
    cases = [(ks, case) for ks in KEYSETS for case in REQUEST_CASES]
    replies, ops = [], []
    for ks_name, case in cases:
        ks = keysets[ks_name]
        method, fmt, body = REQUEST_CASES[case]
        reply = build_envelope(response_data(True, body=ENGINE_REPLY), ks.esb, fmt)
        replies.append(reply)
        ops.append(
            {
                "op": "request",
                "method": method,
                "clientPrivateKey": ks.client.b64,
                "esbPublicKey": ks.esb.public_key.b64,
                "clientId": CLIENT_ID,
                "clientSecret": CLIENT_SECRET,
                "nidaUserId": NIN,
                "apiCode": API_CODE,
                "body": body,
                "format": fmt,
                "engineResponse": reply.decode(),
            }
        )
    results = run_js(node, ops)
    return {
        case: SentRequest(ok(r)["calls"], ok(r)["result"], reply)
        for case, r, reply in zip(cases, results, replies, strict=True)
    }


@pytest.mark.parametrize("case", REQUEST_CASES)
@pytest.mark.parametrize("keyset", KEYSETS)
def test_kiungo_verifies_js_request_envelopes(
    js_requests: dict[tuple[str, str], SentRequest],
    keysets: dict[str, KeySet],
    keyset: str,
    case: str,
) -> None:
    """A request the JS connector sends parses and verifies in kiungo, with the data it sent."""
    method, fmt, body = REQUEST_CASES[case]
    sent = js_requests[keyset, case].calls[1]
    envelope = parse_envelope(sent["body"].encode(), sent["headers"]["Content-Type"])
    envelope.verify(keysets[keyset].client.public_key)
    expected = expected_request_data(method, fmt, body)
    assert envelope.format == fmt
    assert envelope.data == expected
    assert list(envelope.data) == list(expected)  # the order the connector writes
    if fmt == "json":
        # The connector signs JSON.stringify(data): kiungo's one serialization matches it.
        assert envelope.signed == js_stringify(expected)
    else:
        assert envelope.root == "esbrequest"


@pytest.mark.parametrize("case", REQUEST_CASES)
def test_js_request_http_shape(js_requests: dict[tuple[str, str], SentRequest], case: str) -> None:
    """The JS connector fetches a token with Basic auth and form fields, then POSTs with Bearer."""
    method, fmt, _ = REQUEST_CASES[case]
    token_call, request_call = js_requests["k1-vector", case].calls
    assert urlsplit(token_call["url"]).path == "/gw/govesb-uaa/oauth/token"
    assert token_call["method"] == "POST"
    assert token_call["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    # Basic carries the raw id:secret (no form-encoding first, unlike RFC 6749 §2.3.1).
    raw = base64.b64decode(token_call["headers"]["Authorization"].removeprefix("Basic "))
    assert token_call["headers"]["Authorization"].startswith("Basic ")
    assert raw.decode() == f"{CLIENT_ID}:{CLIENT_SECRET}"
    assert parse_qsl(token_call["body"], strict_parsing=True) == [
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
        ("grant_type", "client_credentials"),
    ]
    assert urlsplit(request_call["url"]).path == f"/engine/esb/{ENDPOINTS[method]}"
    assert request_call["method"] == "POST"
    assert request_call["headers"] == {
        "Authorization": "Bearer tkn-0123456789",
        "Content-Type": f"application/{fmt}; charset=utf-8",
    }


@pytest.mark.parametrize("case", REQUEST_CASES)
@pytest.mark.parametrize("keyset", KEYSETS)
def test_js_request_accepts_kiungo_reply(
    js_requests: dict[tuple[str, str], SentRequest], keyset: str, case: str
) -> None:
    """requestData, requestNida and pushData return the data of kiungo's signed reply."""
    sent = js_requests[keyset, case]
    assert sent.result is not None, "the JS connector refused kiungo's reply"
    assert sent.result.encode() == parse_envelope(sent.reply).signed


JS_MESSAGE = "Ombi limekataliwa: NIN haipo — رفض 🚫 <&>"
JSON_IN_XML = '{"a":1,"b":[1,2],"c":"x < y & z"}'

# name -> (method, format, body, message, priorApiCode, expected data)
RESPONSE_CASES: dict[str, tuple[str, str, str | None, str | None, str | None, dict]] = {
    "success-json": (
        "successResponse", "json", JSON_BODY, None, None,
        {"success": True, "esbBody": json.loads(JSON_BODY)},
    ),
    "success-json-text": (
        "successResponse", "json", TEXT_BODY, None, None,
        {"success": True, "esbBody": TEXT_BODY},
    ),
    "failure-json": (
        "failureResponse", "json", None, JS_MESSAGE, None,
        {"success": False, "message": JS_MESSAGE},
    ),
    "failure-json-with-body": (
        "failureResponse", "json", JSON_BODY, JS_MESSAGE, None,
        {"success": False, "esbBody": json.loads(JSON_BODY), "message": JS_MESSAGE},
    ),
    # asyncSuccessResponse has no requestId parameter: it writes the helper's last apiCode,
    # null on a fresh helper (JSON keeps the null, XML leaves the element out).
    "async-json": (
        "asyncSuccessResponse", "json", JSON_BODY, None, None,
        {"success": True, "esbBody": json.loads(JSON_BODY), "requestId": None},
    ),
    "async-json-after-request": (
        "asyncSuccessResponse", "json", JSON_BODY, None, "API-KWANZA",
        {"success": True, "esbBody": json.loads(JSON_BODY), "requestId": "API-KWANZA"},
    ),
    "async-failure-json": (
        "asyncFailureResponse", "json", None, JS_MESSAGE, "API-KWANZA",
        {"success": False, "message": JS_MESSAGE},
    ),
    "success-xml": (
        "successResponse", "xml", XML_BODY, None, None,
        {"success": "true", "esbBody": XML_BODY},
    ),
    "success-xml-json-body": (
        "successResponse", "xml", JSON_IN_XML, None, None,
        {"success": "true", "esbBody": {"a": "1", "b": ["1", "2"], "c": "x < y & z"}},
    ),
    "failure-xml": (
        "failureResponse", "xml", None, JS_MESSAGE, None,
        {"success": "false", "message": JS_MESSAGE},
    ),
    "async-xml": (
        "asyncSuccessResponse", "xml", XML_BODY, None, None,
        {"success": "true", "esbBody": XML_BODY},
    ),
    "async-xml-after-request": (
        "asyncSuccessResponse", "xml", XML_BODY, None, "API-KWANZA",
        {"success": "true", "esbBody": XML_BODY, "requestId": "API-KWANZA"},
    ),
}  # fmt: skip


@pytest.fixture(scope="session")
def js_responses(node: str, keysets: dict[str, KeySet]) -> dict[tuple[str, str], str]:
    cases = [(ks, case) for ks in KEYSETS for case in RESPONSE_CASES]
    ops = []
    for ks_name, case in cases:
        method, fmt, body, message, prior, _ = RESPONSE_CASES[case]
        ks = keysets[ks_name]
        ops.append(
            {
                "op": "respond",
                "method": method,
                "clientPrivateKey": ks.client.b64,
                "esbPublicKey": ks.esb.public_key.b64,
                "body": body,
                "message": message,
                "format": fmt,
                "priorApiCode": prior,
            }
        )
    results = run_js(node, ops)
    return {case: ok(r) for case, r in zip(cases, results, strict=True)}


@pytest.mark.parametrize("case", RESPONSE_CASES)
@pytest.mark.parametrize("keyset", KEYSETS)
def test_kiungo_verifies_js_responses(
    js_responses: dict[tuple[str, str], str],
    keysets: dict[str, KeySet],
    keyset: str,
    case: str,
) -> None:
    """A provider answer built by successResponse & co. verifies in kiungo with its data."""
    _, fmt, _, _, _, expected = RESPONSE_CASES[case]
    envelope = parse_envelope(js_responses[keyset, case].encode())
    envelope.verify(keysets[keyset].client.public_key)
    assert envelope.format == fmt
    assert envelope.data == expected
    assert list(envelope.data) == list(expected)
    if fmt == "json":
        assert envelope.signed == js_stringify(expected)
    else:
        assert envelope.root == "esbresponse"


# --- 2. kiungo signs, the connector verifies -----------------------------------------------

BOTH, JSON_ONLY = ("json", "xml"), ("json",)
# name -> (body, formats). XML cannot carry control characters or integer-like element
# names, so those bodies are JSON only.
BODIES: dict[str, tuple[Any, tuple[str, ...]]] = {
    "ascii": ({"jina": "Amani", "umri": 30, "hai": True}, BOTH),
    "swahili": ({"ujumbe": "Habari za asubuhi, ndugu! Karibu Zanzibar; tutaonana kesho."}, BOTH),
    "arabic": ({"نص": "مرحبا بالعالم", "jina": "عبد الله"}, BOTH),
    "emoji": ({"bendera": "🇹🇿🦁", "familia": "👩‍👩‍👧", "tiki": "✔︎"}, BOTH),
    "escapes": ({"s": 'nukuu" kinyume\\ mkwaju/ tab\t mstari\n cr\r bs\b ff\f'}, JSON_ONLY),
    "controls": ({"c": "\x00\x01\x1f\x7f\u0085\u2028\u2029"}, JSON_ONLY),
    "numbers": (
        {
            "int": 42, "neg": -7, "half": 0.5, "money": 1500.5, "tiny": 1e-7, "huge": 1e21,
            "two": 2.0, "negzero": -0.0, "max": 2**53 - 1, "min": -(2**53 - 1),
            "edge": 2**53, "third": 1 / 3, "sub": 5e-324, "micro": 0.000001,
        },
        BOTH,
    ),
    "integer-like-keys": (
        {"b": 1, "10": 2, "2": 3, "01": 4, "-1": 5, "4294967295": 6, "4294967294": 7},
        JSON_ONLY,
    ),
    "nested-integer-keys": ({"orodha": [{"z": 1, "1": {"9": 0, "a": [], "0": None}}]}, JSON_ONLY),
    "nested-arrays": ({"m": [[1, [2, [3, []]]], [], [{}], [{"a": [None, True, False]}]]}, BOTH),
    "xml-specials": ({"t": "a < b && c > d; </esbBody>", "u": "&amp; &lt;"}, BOTH),
    "element-named-data": ({"data": {"x": "1", "data": "2"}, "mwisho": "</data>"}, BOTH),
    "element-named-signature": ({"signature": "bandia", "saini": {"signature": "x"}}, BOTH),
    "text-body": ("<jibu><hali>sawa</hali></jibu>", BOTH),
    "empty": ({}, BOTH),
}  # fmt: skip
RAW_XML_BODIES: dict[str, RawXML] = {
    "raw-xml": RawXML(b"<jibu><hali>sawa &amp; salama</hali><n>1.0</n></jibu>"),
    "raw-xml-with-data": RawXML(b"<data><x>1</x></data><signature>y</signature>"),
}

WRAPPERS: dict[str, Callable[[Any], tuple[dict[str, Any], str]]] = {
    "response": lambda b: (response_data(True, body=b), "esbresponse"),
    "async-response": lambda b: (response_data(True, body=b, request_id="req-7f3a"), "esbresponse"),
    "request": lambda b: ({"apiCode": API_CODE, "esbBody": b}, "esbrequest"),
    "nida-request": lambda b: (
        {"apiCode": API_CODE, "userId": NIN, "esbBody": {"Payload": b}},
        "esbrequest",
    ),
    "push": lambda b: ({"pushCode": API_CODE, "esbBody": b, "requestId": "req-1"}, "esbrequest"),
}
BODY_CASES = [(name, fmt) for name, (_, fmts) in BODIES.items() for fmt in fmts] + [
    (name, "xml") for name in RAW_XML_BODIES
]
FAILURE_MESSAGES = [
    "Hakuna ruhusa ya API hii",
    "signature does not match the signed data and the registered public key",
    'Ujumbe wenye "nukuu", <alama> & مرحبا 🚫',
    "mstari\nwa pili\tna tab",
]


@dataclass(frozen=True)
class Checked:
    envelope: bytes
    result: str | None  # verifyThenReturnData's return: the data text, or null if refused


@pytest.fixture(scope="session")
def js_verified(node: str, keysets: dict[str, KeySet]) -> dict[tuple, Checked]:
    """kiungo's envelopes (bodies x wrappers x formats, failures) as the connector checks them."""
    envelopes: dict[tuple, tuple[bytes, str, str]] = {}
    for ks_name in KEYSETS:
        ks = keysets[ks_name]
        pub = ks.esb.public_key.b64
        for name, fmt in BODY_CASES:
            body = RAW_XML_BODIES[name] if name in RAW_XML_BODIES else BODIES[name][0]
            for wrapper, wrap in WRAPPERS.items():
                data, root = wrap(body)
                envelope = build_envelope(data, ks.esb, fmt, root=root)
                envelopes[ks_name, name, fmt, wrapper] = (envelope, fmt, pub)
        for fmt in BOTH:
            for i, message in enumerate(FAILURE_MESSAGES):
                envelope = failure_envelope(message, ks.esb, fmt)
                envelopes[ks_name, "failure", fmt, i] = (envelope, fmt, pub)
    keys = list(envelopes)
    results = run_js(
        node,
        [
            {"op": "verify", "esbPublicKey": pub, "body": envelope.decode(), "format": fmt}
            for envelope, fmt, pub in envelopes.values()
        ],
    )
    return {key: Checked(envelopes[key][0], ok(r)) for key, r in zip(keys, results, strict=True)}


@pytest.mark.parametrize(("body", "fmt"), BODY_CASES)
@pytest.mark.parametrize("keyset", KEYSETS)
def test_js_verifies_kiungo_envelopes(
    js_verified: dict[tuple, Checked], keyset: str, body: str, fmt: str
) -> None:
    """The JS connector's verifyThenReturnData accepts every envelope kiungo signs."""
    refused = []
    for wrapper in WRAPPERS:
        checked = js_verified[keyset, body, fmt, wrapper]
        signed = parse_envelope(checked.envelope).signed
        if checked.result is None or checked.result.encode() != signed:
            refused.append((wrapper, checked.envelope.decode(), checked.result))
    assert not refused, f"the JS connector refused or altered: {refused}"


@pytest.mark.parametrize("fmt", BOTH)
@pytest.mark.parametrize("keyset", KEYSETS)
def test_js_verifies_kiungo_failure_envelopes(
    js_verified: dict[tuple, Checked], keyset: str, fmt: str
) -> None:
    """kiungo's signed refusals verify in the JS connector, JSON and XML."""
    for i, message in enumerate(FAILURE_MESSAGES):
        checked = js_verified[keyset, "failure", fmt, i]
        assert checked.result is not None, checked.envelope
        assert checked.result.encode() == parse_envelope(checked.envelope).signed
        assert parse_envelope(checked.envelope).data["message"] == message


def test_xml_body_with_data_or_signature_elements_travels_as_text(
    js_verified: dict[tuple, Checked],
) -> None:
    """A body holding <data> or <signature> travels escaped: the JS regexes find the real ones."""
    for body in ("element-named-data", "element-named-signature", "raw-xml-with-data"):
        envelope = js_verified["k1-vector", body, "xml", "response"].envelope
        assert envelope.count(b"<data>") == 1
        assert envelope.count(b"<signature>") == 1
        esb_body = parse_envelope(envelope).data["esbBody"]
        assert isinstance(esb_body, str)
        assert "<signature>" in esb_body or "<data>" in esb_body


def _tamper(envelope: bytes, fmt: str) -> bytes:
    old = b'"Amani"' if fmt == "json" else b">Amani<"
    assert envelope.count(old) == 1
    return envelope.replace(old, old.replace(b"Amani", b"Amana"))


@pytest.mark.parametrize("fmt", BOTH)
@pytest.mark.parametrize("keyset", KEYSETS)
def test_js_refuses_tampered_or_foreign_kiungo_envelopes(
    node: str, keysets: dict[str, KeySet], keyset: str, fmt: str
) -> None:
    """The JS connector returns null for a kiungo envelope altered after signing or a wrong key."""
    ks = keysets[keyset]
    other_curve = keysets["p256-fresh" if keyset.startswith("k1") else "k1-fresh"]
    good = build_envelope(response_data(True, body={"jina": "Amani"}), ks.esb, fmt)
    other = build_envelope(response_data(True, body={"jina": "Baraka"}), ks.esb, fmt)
    other_sig = parse_envelope(other).signature
    swapped = good.replace(
        base64.b64encode(parse_envelope(good).signature),
        base64.b64encode(other_sig),
    )
    cases = {
        "untouched (control)": (good, ks.esb.public_key.b64),
        "tampered data": (_tamper(good, fmt), ks.esb.public_key.b64),
        "signature of another envelope": (swapped, ks.esb.public_key.b64),
        "another key, same curve": (good, ks.client.public_key.b64),
        "a key on the other curve": (good, other_curve.esb.public_key.b64),
    }
    results = run_js(
        node,
        [
            {"op": "verify", "esbPublicKey": pub, "body": env.decode(), "format": fmt}
            for env, pub in cases.values()
        ],
    )
    verdicts = {name: ok(r) for name, r in zip(cases, results, strict=True)}
    assert verdicts.pop("untouched (control)") is not None
    assert verdicts == dict.fromkeys(verdicts)  # every other case refused (null)


# --- 3. signatures over plain payloads and keys from node ----------------------------------

PAYLOADS = ["", "rahisi", '{"a":1}', "Karibu 🇹🇿 — مرحبا\n\t\x00", "x" * 10_000]


@pytest.mark.parametrize("keyset", KEYSETS)
def test_kiungo_verifies_js_sign_payload(
    node: str, keysets: dict[str, KeySet], keyset: str
) -> None:
    """signPayload signs the UTF-8 bytes of a string; kiungo verifies every such signature."""
    ks = keysets[keyset]
    results = run_js(
        node, [{"op": "sign", "clientPrivateKey": ks.client.b64, "payload": p} for p in PAYLOADS]
    )
    for payload, result in zip(PAYLOADS, results, strict=True):
        verify(ks.client.public_key, payload.encode(), ok(result))


@pytest.mark.parametrize("curve", ["secp256k1", "prime256v1"])
def test_keys_generated_by_node_work_in_kiungo(node: str, curve: str) -> None:
    """Keys node's crypto exports as base64 DER load in kiungo and sign for the connector."""
    pair = ok(run_js(node, [{"op": "keygen", "curve": curve}])[0])
    private = load_private_key(pair["privateKeyB64"])
    assert private.public_key.b64 == pair["publicKeyB64"]
    assert load_public_key(pair["publicKeyB64"]) == private.public_key
    envelope = build_envelope(response_data(True, body={"jina": "Amani"}), private, "json")
    sig_result, verify_result = run_js(
        node,
        [
            {"op": "sign", "clientPrivateKey": pair["privateKeyB64"], "payload": "habari"},
            {
                "op": "verify",
                "esbPublicKey": pair["publicKeyB64"],
                "body": envelope.decode(),
                "format": "json",
            },
        ],
    )
    verify(private.public_key, b"habari", ok(sig_result))
    assert ok(verify_result) == parse_envelope(envelope).signed.decode()


# --- 4. payload encryption -----------------------------------------------------------------

PLAINTEXTS = {
    "swahili": "Habari ya asubuhi? Nimepokea malipo ya TSh 1,500.50 — asante sana.",
    "emoji": "🦁🇹🇿👩‍👩‍👧 ✔︎ مرحبا",
    "empty": "",
    "json": '{"nin":"19900101-12345-00001-23","siri":"🔐"}',
    "long": "Jambo! " * 3000,
}


@dataclass(frozen=True)
class CryptoRun:
    from_js: dict[str, str]  # name -> JS encrypt output, for ks.client
    to_js: dict[str, tuple[bytes, dict[str, Any]]]  # name -> (kiungo payload, JS decrypt result)
    tampered_to_js: dict[str, Any]  # JS decrypt of an altered kiungo payload


def _flip(payload: dict[str, str], field: str, index: int) -> dict[str, str]:
    raw = bytearray(base64.b64decode(payload[field]))
    raw[index] ^= 0x01
    return {**payload, field: base64.b64encode(bytes(raw)).decode()}


@pytest.fixture(scope="session")
def js_crypto(node: str, keysets: dict[str, KeySet]) -> dict[str, CryptoRun]:
    ops: list[dict[str, Any]] = []
    kiungo_payloads: dict[tuple[str, str], bytes] = {}
    for ks_name in KEYSETS:
        ks = keysets[ks_name]
        for text in PLAINTEXTS.values():
            ops.append({"op": "encrypt", "publicKey": ks.client.public_key.b64, "plaintext": text})
        for name, text in PLAINTEXTS.items():
            payload = encrypt_to_json(text, ks.client.public_key)
            kiungo_payloads[ks_name, name] = payload
            ops.append(
                {"op": "decrypt", "clientPrivateKey": ks.client.b64, "payload": payload.decode()}
            )
        swahili = json.loads(kiungo_payloads[ks_name, "swahili"])
        tampered = {
            "tag": _flip(swahili, "encryptedData", 0),
            "ciphertext": _flip(swahili, "encryptedData", 20),
            "iv": _flip(swahili, "iv", 0),
        }
        for payload in tampered.values():
            ops.append({"op": "decrypt", "clientPrivateKey": ks.client.b64, "payload": payload})
    results = iter(run_js(node, ops))
    runs = {}
    for ks_name in KEYSETS:
        from_js = {name: ok(next(results)) for name in PLAINTEXTS}
        to_js = {name: (kiungo_payloads[ks_name, name], next(results)) for name in PLAINTEXTS}
        tampered_to_js = {name: next(results) for name in ("tag", "ciphertext", "iv")}
        runs[ks_name] = CryptoRun(from_js, to_js, tampered_to_js)
    return runs


@pytest.mark.parametrize("keyset", KEYSETS)
def test_kiungo_decrypts_js_payloads(
    js_crypto: dict[str, CryptoRun], keysets: dict[str, KeySet], keyset: str
) -> None:
    """What the JS connector encrypts for a key, kiungo decrypts with that key's private half."""
    ks = keysets[keyset]
    for name, text in PLAINTEXTS.items():
        wire = json.loads(js_crypto[keyset].from_js[name])
        assert list(wire) == ["ephemeralKey", "iv", "encryptedData"]
        ephemeral = load_public_key(base64.b64decode(wire["ephemeralKey"]))
        assert ephemeral.curve is ks.client.curve  # the recipient's curve decides
        assert decrypt(js_crypto[keyset].from_js[name], ks.client) == text.encode()


@pytest.mark.parametrize("keyset", KEYSETS)
def test_js_decrypts_kiungo_payloads(js_crypto: dict[str, CryptoRun], keyset: str) -> None:
    """What kiungo encrypts for a key, the JS connector's decrypt opens to the same text."""
    for name, text in PLAINTEXTS.items():
        _, result = js_crypto[keyset].to_js[name]
        assert ok(result) == text


@pytest.mark.parametrize("keyset", KEYSETS)
def test_js_refuses_altered_kiungo_payloads(js_crypto: dict[str, CryptoRun], keyset: str) -> None:
    """The JS connector throws on a kiungo payload whose tag, ciphertext or IV was altered."""
    for part, result in js_crypto[keyset].tampered_to_js.items():
        assert not result["ok"], f"JS decrypted a payload with an altered {part}"


@pytest.mark.parametrize("keyset", KEYSETS)
def test_kiungo_refuses_altered_js_payloads(
    js_crypto: dict[str, CryptoRun], keysets: dict[str, KeySet], keyset: str
) -> None:
    """kiungo refuses with DecryptionFailed a JS payload altered in transit or for another key."""
    ks = keysets[keyset]
    good = json.loads(js_crypto[keyset].from_js["swahili"])
    decrypt(good, ks.client)  # control: the untouched payload opens
    for field, index in (("encryptedData", 0), ("encryptedData", 20), ("iv", 3)):
        with pytest.raises(DecryptionFailed):
            decrypt(_flip(good, field, index), ks.client)
    with pytest.raises(DecryptionFailed):
        decrypt(good, ks.esb)  # the right curve, the wrong recipient


# --- 5. js_stringify is a fixed point of JSON.parse + JSON.stringify -----------------------

_CHARS = st.one_of(
    st.characters(codec="utf-8"),
    st.characters(max_codepoint=0x1F),  # control characters
    st.characters(min_codepoint=0x10000, codec="utf-8"),  # outside the BMP
    st.sampled_from('"\\/\u2028\u2029\u007f'),
)
_TEXT = st.text(alphabet=_CHARS, max_size=12)
_KEYS = st.one_of(
    _TEXT,
    st.integers(0, 2**32 + 2).map(str),  # integer-like: array indices and just beyond
    st.sampled_from(["0", "01", "-1", "-0", "1e3", " 1", "1 ", "4294967294", "4294967295"]),
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.5, 1500.5, 1e-7, 1e21, 2.0, -0.0, 1e-6, 1e20, 123e-20, 5e-324]),
    _TEXT,
)
JSON_VALUES = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_KEYS, children, max_size=6),
    max_leaves=24,
)


def test_js_stringify_is_node_json_stringify(node: str) -> None:
    """For arbitrary JSON values, js_stringify equals node's JSON.stringify(JSON.parse(...))."""
    values: list[Any] = []

    @settings(
        max_examples=200,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
    )
    @given(JSON_VALUES)
    def collect(value: Any) -> None:
        values.append(value)

    collect()  # phase 1: generate the values; phase 2: one node process checks them all
    assert len(values) >= 100
    ops = []
    for value in values:
        ops.append({"op": "reserialize", "text": orjson.dumps(value).decode()})
        ops.append({"op": "reserialize", "text": js_stringify(value).decode()})
    results = iter(run_js(node, ops))
    mismatches = []
    for value in values:
        ours = js_stringify(value).decode()
        from_orjson, from_ours = ok(next(results)), ok(next(results))
        if from_orjson != ours or from_ours != ours:
            mismatches.append((value, ours, from_orjson))
    mismatches.sort(key=lambda m: len(repr(m[0])))
    assert not mismatches, f"{len(mismatches)} values differ, smallest first: {mismatches[:3]}"
