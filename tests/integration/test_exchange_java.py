"""The bus's real answers, verified the way the Java GovEsbHelper verifies them.

Answers are collected from real exchanges with the running demo bus (JSON and XML, provider
success, provider refusal and the bus's own refusals), then all verified in one run of the
project's Java verifier (``tests/conformance/java/JacksonVerifier.java``, Jackson's
re-serialization of the parsed ``data``), compiled by the conformance suite's fixture.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from tests.conformance.test_java_peer import (  # noqa: F401 (java_verifier is a fixture)
    JavaVerifier,
    java_verifier,
)
from tests.integration.conftest import RunningBus

from kiungo.protocol import REQUEST_ROOT, build_envelope, load_private_key, parse_envelope

pytestmark = pytest.mark.peer

NIN = "19900101-11111-00001-23"
ENTRY = "B-2024-000117"
TOKEN_PATH = "/gw/govesb-uaa/oauth/token"
REQUEST_PATH = "/engine/esb/request"


class Consumer:
    """A demo system calling the bus with kiungo's protocol core over HTTP."""

    def __init__(self, bus: RunningBus, code: str, client: httpx.Client) -> None:
        self.creds = bus.system(code)
        self.key = load_private_key(self.creds["clientPrivateKey"])
        self.client = client
        self.url = bus.url

    def token(self) -> str:
        basic = base64.b64encode(
            f"{self.creds['clientId']}:{self.creds['clientSecret']}".encode()
        ).decode()
        response = self.client.post(
            self.url + TOKEN_PATH,
            data={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {basic}"},
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def call(self, data: dict[str, Any], fmt: str, path: str = REQUEST_PATH) -> httpx.Response:
        body = build_envelope(data, self.key, fmt, root=REQUEST_ROOT)
        return self.client.post(
            self.url + path,
            content=body,
            headers={
                "Authorization": f"Bearer {self.token()}",
                "Content-Type": f"application/{fmt}; charset=utf-8",
            },
        )


@dataclass(frozen=True)
class Collected:
    status: int
    fmt: str
    envelope: bytes


# id -> (consumer, path, data, format, expected HTTP status, expected success)
EXCHANGES: dict[str, tuple[str, str, dict[str, Any], str, int, bool]] = {
    "success_json": (
        "MOH-HMIS", REQUEST_PATH, {"apiCode": "NIDA-VERIFY", "esbBody": {"nin": NIN}},
        "json", 200, True,
    ),
    "success_xml": (
        "MOH-HMIS", REQUEST_PATH, {"apiCode": "RITA-BIRTH-CERT", "esbBody": {"entryNo": ENTRY}},
        "xml", 200, True,
    ),
    "xml_consumer_json_api": (
        "MOH-HMIS", REQUEST_PATH, {"apiCode": "NIDA-VERIFY", "esbBody": {"nin": NIN}},
        "xml", 200, True,
    ),
    "on_behalf_json": (
        "MOH-HMIS", "/engine/esb/nida-request",
        {"apiCode": "NIDA-RQ", "userId": NIN, "esbBody": {"Payload": {"NIN": NIN}}},
        "json", 200, True,
    ),
    "refusal_json": (
        "MOH-HMIS", REQUEST_PATH, {"apiCode": "NIDA-VERIFY", "esbBody": {"nin": "ng'ombe 🐄"}},
        "json", 200, False,
    ),
    "refusal_xml": (
        "MOH-HMIS", REQUEST_PATH,
        {"apiCode": "RITA-BIRTH-CERT", "esbBody": {"entryNo": "B-1999-<hakuna> & 👶🏽"}},
        "xml", 200, False,
    ),
    "bus_failure_json": (
        "MOH-HMIS", REQUEST_PATH, {"apiCode": "HAKUNA-API", "esbBody": {}}, "json", 404, False,
    ),
    "bus_failure_xml": (
        "DCC-REVENUE", REQUEST_PATH,
        {"apiCode": "RITA-BIRTH-CERT", "esbBody": {"entryNo": ENTRY}}, "xml", 403, False,
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def collected(running_bus: RunningBus) -> dict[str, Collected]:
    """The bus's answer to each exchange of EXCHANGES."""
    out = {}
    with httpx.Client(timeout=30) as client:
        consumers = {
            code: Consumer(running_bus, code, client) for code in ("MOH-HMIS", "DCC-REVENUE")
        }
        for case, (consumer, path, data, fmt, _status, _success) in EXCHANGES.items():
            response = consumers[consumer].call(data, fmt, path)
            out[case] = Collected(response.status_code, fmt, response.content)
    return out


def _tamper(envelope: bytes) -> bytes:
    """The envelope with one character of its signed data changed."""
    for old, new in ((b"Zuhura", b"Zuhurb"), (b"Neema", b"Neemb")):
        if old in envelope:
            return envelope.replace(old, new, 1)
    raise AssertionError("nothing to tamper with")


@pytest.fixture(scope="module")
def verdicts(
    java_verifier: JavaVerifier,  # noqa: F811 (the fixture imported above)
    collected: dict[str, Collected],
    running_bus: RunningBus,
) -> dict[str, dict[str, Any]]:
    """Java's verdict on every collected answer, and on two tampered ones, in one run."""
    bus_key = running_bus.bus.signer.public_key.b64
    cases = [
        {"id": case, "format": c.fmt, "envelope": c.envelope.decode(), "publicKey": bus_key}
        for case, c in collected.items()
    ]
    for case in ("success_json", "success_xml"):
        c = collected[case]
        tampered = _tamper(c.envelope).decode()
        cases.append(
            {"id": f"tampered_{case}", "format": c.fmt, "envelope": tampered, "publicKey": bus_key}
        )
    return java_verifier.run(cases)


@pytest.mark.parametrize("case", list(EXCHANGES))
def test_java_verifies_the_bus_answer(
    case: str, collected: dict[str, Collected], verdicts: dict[str, dict[str, Any]]
) -> None:
    """The Java helper's way of verifying accepts the bus's real answer, over its signed bytes."""
    _consumer, _path, _data, fmt, status, success = EXCHANGES[case]
    answer = collected[case]
    assert answer.status == status
    envelope = parse_envelope(answer.envelope)
    assert envelope.format == fmt
    assert envelope.data["success"] in ((True, "true") if success else (False, "false"))
    verdict = verdicts[case]
    assert "error" not in verdict, verdict["error"]
    assert verdict["signedText"].encode("utf-8") == envelope.signed
    assert verdict["valid"] is True


@pytest.mark.parametrize("case", ["success_json", "success_xml"])
def test_java_refuses_a_tampered_bus_answer(case: str, verdicts: dict[str, dict[str, Any]]) -> None:
    """The same answers with one character changed do not verify in Java."""
    verdict = verdicts[f"tampered_{case}"]
    assert "error" not in verdict, verdict["error"]
    assert verdict["valid"] is False
