"""The unmodified JavaScript connector (npm govesb-connector-js) against a running bus.

As a consumer, the connector is built from a credentials.json system object and makes
real calls (token, signed request, verified answer) to the demo bus. As a provider, a node
HTTP server of the project's own (``js/provider.js``) answers the bus with the connector's
``verifyThenReturnData``, ``successResponse`` and ``failureResponse``; it is registered on a
bus of its own as a new institution, system and APIs, and called through the bus.

Every connector call of this module runs in one node process (``js/consumer.js``).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as DET
import httpx
import pytest
from tests.conftest import PEERS
from tests.integration.conftest import RunningBus, free_port

from kiungo.protocol import (
    REQUEST_ROOT,
    PrivateKey,
    build_envelope,
    generate_private_key,
    open_envelope,
    parse_envelope,
)

pytestmark = pytest.mark.peer

JS = Path(__file__).parent / "js"
NIN = "19900101-11111-00001-23"
UNKNOWN_NIN = "19000101-00000-00000-00"
ENTRY = "B-2024-000117"
SWAHILI = {
    "ujumbe": "Habari za asubuhi! Karibu, ng'ombe na kuku 🐄🐓",
    "hali": "sawa kabisa 👍🏽 🇹🇿",
    "mji": "Dar es Salaam",
}
ASCII = {"name": "Juma Hamisi", "count": 3, "tags": ["a", "b"]}
# What js/provider.js answers.
JS_REFUSAL = "Mtoa huduma wa JS amekataa: rekodi haipo 👎"
JS_NOT_FROM_BUS = "request is not signed by the bus"


# --- the node processes ----------------------------------------------------------------------


def run_consumer(node: str, calls: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Make a batch of connector calls in one node process; results by call id."""
    proc = subprocess.run(
        [node, str(JS / "consumer.js")],
        input=json.dumps(calls).encode(),
        capture_output=True,
        timeout=120,
        check=False,
        env={**os.environ, "KIUNGO_PEERS": str(PEERS)},
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    results = json.loads(proc.stdout)
    assert [r["id"] for r in results] == [c["id"] for c in calls]
    return {r["id"]: r for r in results}


@dataclass
class JsProvider:
    """The node provider server, registered on a bus of its own."""

    bus: RunningBus
    port: int
    key: PrivateKey
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _start_provider(node: str, port: int, key: PrivateKey, bus_key: str) -> subprocess.Popen[bytes]:
    config = {"port": port, "privateKey": key.b64, "busPublicKey": bus_key}
    proc = subprocess.Popen(
        [node, str(JS / "provider.js"), json.dumps(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "KIUNGO_PEERS": str(PEERS)},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()  # blocks until the server listens or node exits
    if line.strip() != f"listening {port}":
        proc.kill()
        _, err = proc.communicate(timeout=30)
        pytest.fail(f"js/provider.js did not start: {line!r} {err.decode(errors='replace')}")
    return proc


async def _register(bus: RunningBus, base: str, key: PrivateKey) -> None:
    """The JS provider as an operator would onboard it, and MOH-HMIS granted its APIs."""
    registry = bus.bus.registry
    await registry.create_institution(
        "test", code="JSI", name_en="JavaScript Institute", name_sw="Taasisi ya JavaScript",
        category="agency",
    )  # fmt: skip
    await registry.create_system(
        "test", code="JS-PROVIDER", institution="JSI", name="Node provider",
        public_key=key.public_key.b64,
    )  # fmt: skip
    for code, path, fmt in (
        ("JS-ECHO", "/echo", "json"),
        ("JS-ECHO-XML", "/echo", "xml"),
        ("JS-REFUSE", "/refuse", "json"),
    ):
        await registry.create_api(
            "test", code=code, name=f"JS {code}", provider="JS-PROVIDER",
            endpoint_url=base + path, format=fmt, timeout_ms=10_000,
        )  # fmt: skip
        grant = await registry.request_grant("test", consumer="MOH-HMIS", api=code)
        await registry.decide_grant("test", grant["id"], "approve")


@pytest.fixture(scope="module")
def js_provider(node: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JsProvider]:
    """The JS provider server on a free loopback port, admitted by its bus's allow-list."""
    port = free_port()
    key = generate_private_key()
    bus = RunningBus(tmp_path_factory.mktemp("js-provider-bus"), extra_allow=[f"127.0.0.1:{port}"])
    try:
        proc = _start_provider(node, port, key, bus.bus.signer.public_key.b64)
        try:
            provider = JsProvider(bus, port, key, proc)
            bus.run(_register(bus, provider.url, key))
            yield provider
        finally:
            proc.communicate(timeout=30)  # closes its stdin: the server exits
    finally:
        bus.close()


# --- the consumer batch ----------------------------------------------------------------------


def _calls(demo: RunningBus, js_bus: RunningBus) -> list[dict[str, Any]]:
    moh = demo.system("MOH-HMIS")
    moh_js = js_bus.system("MOH-HMIS")
    other_key = generate_private_key().public_key.b64

    def call(
        id: str, api: str, body: str, fmt: str, *, options: dict[str, Any] = moh,
        method: str = "requestData",
    ) -> dict[str, Any]:  # fmt: skip
        return {"id": id, "method": method, "options": options, "apiCode": api, "body": body,
                "format": fmt, "bus": "js" if options is moh_js else "demo"}  # fmt: skip

    return [
        # the demo bus and its Python providers
        call("nida_json", "NIDA-VERIFY", json.dumps({"nin": NIN}), "json"),
        call("rita_xml", "RITA-BIRTH-CERT", f"<entryNo>{ENTRY}</entryNo>", "xml"),
        call("rita_from_json", "RITA-BIRTH-CERT", json.dumps({"entryNo": ENTRY}), "json"),
        call("refusal_json", "NIDA-VERIFY", json.dumps({"nin": UNKNOWN_NIN}), "json"),
        call(
            "refusal_emoji_json", "NIDA-VERIFY", json.dumps({"nin": "namba 👍🏽 ng'ombe"}), "json"
        ),
        call("refusal_markup_xml", "RITA-BIRTH-CERT", "<jina>Neema 👶🏽 & <mama/></jina>", "xml"),
        call(
            "on_behalf",
            "NIDA-RQ",
            json.dumps({"NIN": NIN}),
            "json",
            options={**moh, "nidaUserId": NIN},
            method="requestNida",
        ),
        call(
            "wrong_bus_key",
            "NIDA-VERIFY",
            json.dumps({"nin": NIN}),
            "json",
            options={**moh, "esbPublicKey": other_key},
        ),
        # the bus with the JS provider
        call("js_ascii", "JS-ECHO", json.dumps(ASCII), "json", options=moh_js),
        call(
            "js_swahili", "JS-ECHO", json.dumps(SWAHILI, ensure_ascii=False), "json", options=moh_js
        ),
        call("js_xml", "JS-ECHO-XML", "<jina>Zuhura 👍🏽 ng'ombe</jina>", "xml", options=moh_js),
        call(
            "js_json_to_xml_api",
            "JS-ECHO-XML",
            json.dumps({"jina": "Asha"}),
            "json",
            options=moh_js,
        ),
        call("js_refuse_json", "JS-REFUSE", json.dumps(ASCII), "json", options=moh_js),
        call("js_refuse_xml", "JS-REFUSE", "<x>1</x>", "xml", options=moh_js),
    ]


@dataclass(frozen=True)
class Answer:
    """One connector call: what ``requestData`` returned and what the bus sent."""

    value: str | None
    status: int
    raw: str
    logged: dict[str, Any] | None

    @property
    def request_id(self) -> str:
        return str(parse_envelope(self.raw.encode()).data["requestId"])

    def json(self) -> dict[str, Any]:
        assert self.value is not None, "the connector could not verify the bus's answer"
        return json.loads(self.value)

    def xml(self) -> Element:
        assert self.value is not None, "the connector could not verify the bus's answer"
        return DET.fromstring(self.value)


@pytest.fixture(scope="module")
def answers(node: str, running_bus: RunningBus, js_provider: JsProvider) -> dict[str, Answer]:
    """Every connector call of this module, made in one node process, with its log record."""
    calls = _calls(running_bus, js_provider.bus)
    results = run_consumer(node, calls)
    logs = {
        id(bus): {r["request_id"]: r for r in bus.run(bus.bus.exchange_log.recent(1000))}
        for bus in (running_bus, js_provider.bus)
    }
    out = {}
    for c in calls:
        result = results[c["id"]]
        if not result["ok"]:
            pytest.fail(f"{c['id']}: the connector raised {result['error']}")
        bus = js_provider.bus if c["bus"] == "js" else running_bus
        raw = result["raw"]
        request_id = parse_envelope(raw.encode()).data.get("requestId")
        out[c["id"]] = Answer(
            result["value"], result["status"], raw, logs[id(bus)].get(str(request_id))
        )
    return out


def signed_text(answer: Answer) -> str:
    """The exact bytes the bus signed in its answer."""
    return parse_envelope(answer.raw.encode()).signed.decode("utf-8")


# --- the connector as a consumer of the demo bus -----------------------------------------------


def test_nida_verify_in_json(answers: dict[str, Answer]) -> None:
    """The connector gets NIDA's verified answer to a JSON request through the bus."""
    answer = answers["nida_json"]
    assert answer.status == 200
    assert answer.value == signed_text(answer)
    data = answer.json()
    assert data["success"] is True
    assert data["esbBody"] == {
        "nin": NIN, "jina": "Zuhura Mwanaisha Salum", "hali": "HAI", "imethibitishwa": True,
    }  # fmt: skip
    assert answer.logged is not None
    assert answer.logged["consumer_system"] == "MOH-HMIS"
    assert answer.logged["provider_system"] == "NIDA-IDS"
    assert answer.logged["code"] == "NIDA-VERIFY"
    assert answer.logged["success"] is True


def test_birth_certificate_in_xml(answers: dict[str, Answer]) -> None:
    """The connector's XML request (body wrapped as <root> text) gets RITA's verified record."""
    answer = answers["rita_xml"]
    assert answer.status == 200
    assert answer.value == signed_text(answer)
    data = answer.xml()
    assert data.tag == "data"
    assert data.findtext("success") == "true"
    assert data.findtext("requestId") == answer.request_id
    record = data.find("esbBody/birthCertificate")
    assert record is not None
    assert record.findtext("entryNo") == ENTRY
    assert record.findtext("childName") == "Neema Zuhura Salum"
    assert answer.logged is not None
    assert (answer.logged["code"], answer.logged["success"]) == ("RITA-BIRTH-CERT", True)


def test_xml_api_called_in_json(answers: dict[str, Answer]) -> None:
    """A JSON request to an XML provider comes back as verified JSON."""
    data = answers["rita_from_json"].json()
    assert data["success"] is True
    assert data["esbBody"]["birthCertificate"]["entryNo"] == ENTRY


def test_provider_refusal_is_verified(answers: dict[str, Answer]) -> None:
    """An unknown NIN gets success:false with NIDA's message, still verified by the connector."""
    answer = answers["refusal_json"]
    assert answer.status == 200
    data = answer.json()
    assert data == {
        "success": False,
        "requestId": answer.request_id,
        "message": f"Namba ya NIDA {UNKNOWN_NIN} haipo / NIN {UNKNOWN_NIN} not found",
    }
    assert answer.logged is not None
    assert answer.logged["success"] is False
    assert answer.logged["error_code"] is None  # the provider refused; the exchange worked


def test_swahili_and_emoji_travel_both_ways(answers: dict[str, Answer]) -> None:
    """Non-ASCII text sent by the connector comes back in the bus-signed answer and verifies."""
    data = answers["refusal_emoji_json"].json()
    assert (
        data["message"]
        == "Namba ya NIDA namba 👍🏽 ng'ombe haipo / NIN namba 👍🏽 ng'ombe not found"
    )


def test_markup_in_an_xml_answer_is_escaped(answers: dict[str, Answer]) -> None:
    """A provider message holding the connector's <root> markup reaches it as verified text."""
    answer = answers["refusal_markup_xml"]
    data = answer.xml()
    assert data.findtext("success") == "false"
    body = "<root><jina>Neema 👶🏽 & <mama/></jina></root>"
    assert data.findtext("message") == f"Cheti {body} hakipo / birth entry {body} not found"


def test_on_behalf_request(answers: dict[str, Answer]) -> None:
    """requestNida with the nidaUserId option reaches NIDA with the person's id, verified."""
    answer = answers["on_behalf"]
    assert answer.status == 200
    data = answer.json()
    assert data["success"] is True
    assert data["esbBody"]["requestedBy"] == NIN
    assert data["esbBody"]["person"]["nin"] == NIN
    assert answer.logged is not None
    assert (answer.logged["kind"], answer.logged["code"]) == ("nida", "NIDA-RQ")


def test_connector_rejects_answer_under_another_bus_key(answers: dict[str, Answer]) -> None:
    """The connector configured with another bus key gets null: its verification is real."""
    answer = answers["wrong_bus_key"]
    assert answer.status == 200
    assert parse_envelope(answer.raw.encode()).data["success"] is True
    assert answer.value is None


# --- the connector as a provider behind the bus ------------------------------------------------


@pytest.mark.parametrize(("case", "body"), [("js_ascii", ASCII), ("js_swahili", SWAHILI)])
def test_js_provider_answers_json_through_the_bus(
    case: str, body: dict[str, Any], answers: dict[str, Answer]
) -> None:
    """A JSON request reaches the JS provider verified, and its answer reaches the consumer."""
    answer = answers[case]
    assert answer.status == 200
    assert answer.value == signed_text(answer)
    data = answer.json()
    assert data["success"] is True
    assert data["esbBody"] == {
        "provider": "js",
        "apiCode": "JS-ECHO",
        "requestId": answer.request_id,
        "received": body,
    }
    assert answer.logged is not None
    assert answer.logged["provider_system"] == "JS-PROVIDER"
    assert answer.logged["success"] is True


def test_js_provider_answers_xml_through_the_bus(answers: dict[str, Answer]) -> None:
    """An XML request reaches the JS provider verified, and its XML answer reaches the consumer."""
    answer = answers["js_xml"]
    assert answer.status == 200
    assert answer.value == signed_text(answer)
    data = answer.xml()
    assert data.findtext("success") == "true"
    assert data.findtext("esbBody/provider") == "js"
    assert data.findtext("esbBody/apiCode") == "JS-ECHO-XML"
    assert data.findtext("esbBody/requestId") == answer.request_id
    assert data.findtext("esbBody/received") == "<root><jina>Zuhura 👍🏽 ng'ombe</jina></root>"


def test_js_provider_gets_a_json_body_as_xml(answers: dict[str, Answer]) -> None:
    """A JSON consumer's body reaches an XML provider as elements, and the answer as JSON."""
    data = answers["js_json_to_xml_api"].json()
    assert data["success"] is True
    assert data["esbBody"]["received"] == "<jina>Asha</jina>"


@pytest.mark.parametrize("case", ["js_refuse_json", "js_refuse_xml"])
def test_js_provider_refusal_through_the_bus(case: str, answers: dict[str, Answer]) -> None:
    """The JS provider's failureResponse reaches the consumer as a verified success:false."""
    answer = answers[case]
    assert answer.status == 200
    assert answer.value == signed_text(answer)
    if case.endswith("xml"):
        data = answer.xml()
        assert data.findtext("success") == "false"
        assert data.findtext("message") == JS_REFUSAL
    else:
        assert answer.json() == {
            "success": False, "requestId": answer.request_id, "message": JS_REFUSAL,
        }  # fmt: skip
    assert answer.logged is not None
    assert answer.logged["success"] is False


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_js_provider_refuses_a_request_not_signed_by_the_bus(
    fmt: str, js_provider: JsProvider
) -> None:
    """The JS provider answers 401 and a signed failure to a request signed with another key."""
    data = {"requestId": "r-1", "apiCode": "JS-ECHO", "esbBody": {"jina": "Asha"}}
    content_type = f"application/{fmt}; charset=utf-8"
    forged = build_envelope(data, generate_private_key(), fmt, root=REQUEST_ROOT)
    genuine = js_provider.bus.bus.signer.envelope(data, fmt, root=REQUEST_ROOT)
    with httpx.Client(timeout=30) as client:
        refused = client.post(
            js_provider.url + "/echo", content=forged, headers={"Content-Type": content_type}
        )
        accepted = client.post(
            js_provider.url + "/echo", content=genuine, headers={"Content-Type": content_type}
        )
    assert refused.status_code == 401
    failure = open_envelope(refused.content, js_provider.key.public_key, content_type)
    assert failure.data["success"] in (False, "false")
    assert failure.data["message"] == JS_NOT_FROM_BUS
    assert accepted.status_code == 200
    answer = open_envelope(accepted.content, js_provider.key.public_key, content_type)
    assert answer.data["success"] in (True, "true")
