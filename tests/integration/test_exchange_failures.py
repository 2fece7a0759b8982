"""Every way an exchange through the bus can fail, each tested once over real HTTP.

Each refusal is checked the way a connector and an operator see it: the HTTP status, a
failure envelope signed by the bus (verified with the bus's public key) with a precise
message, and the exchange in the message log with its error code.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.conftest import RunningBus, free_port

from kiungo.auth.tokens import TokenService
from kiungo.protocol import (
    REQUEST_ROOT,
    PrivateKey,
    build_envelope,
    generate_private_key,
    load_private_key,
    open_envelope,
    response_data,
)
from kiungo.registry.errors import EndpointNotAllowed

NIN = "19900101-11111-00001-23"
ENTRY = "B-2024-000117"
TOKEN_PATH = "/gw/govesb-uaa/oauth/token"
REQUEST_PATH = "/engine/esb/request"
NIDA = {"apiCode": "NIDA-VERIFY", "esbBody": {"nin": NIN}}


# --- a consumer speaking the protocol with kiungo's core ---------------------------------------


class Caller:
    """Raw HTTP to one bus, as its demo systems (or someone pretending to be one)."""

    def __init__(self, bus: RunningBus, client: httpx.Client) -> None:
        self.bus = bus
        self.client = client

    def key(self, system: str) -> PrivateKey:
        return load_private_key(self.bus.system(system)["clientPrivateKey"])

    def token(self, system: str, secret: str | None = None) -> str:
        creds = self.bus.system(system)
        basic = f"{creds['clientId']}:{secret or creds['clientSecret']}".encode()
        response = self.client.post(
            self.bus.url + TOKEN_PATH,
            data={"grant_type": "client_credentials"},
            headers={"Authorization": "Basic " + base64.b64encode(basic).decode()},
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def envelope(
        self, system: str, data: dict[str, Any], fmt: str = "json", key: PrivateKey | None = None
    ) -> bytes:
        return build_envelope(data, key or self.key(system), fmt, root=REQUEST_ROOT)

    def post(
        self, body: bytes, token: str | None, fmt: str = "json", path: str = REQUEST_PATH
    ) -> httpx.Response:
        headers = {"Content-Type": f"application/{fmt}; charset=utf-8"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.client.post(self.bus.url + path, content=body, headers=headers)

    def call(
        self, system: str, data: dict[str, Any] = NIDA, fmt: str = "json", token: str | None = None
    ) -> httpx.Response:
        """A correct signed request, with a fresh token unless one is given."""
        return self.post(self.envelope(system, data, fmt), token or self.token(system), fmt)


@pytest.fixture
def demo(running_bus: RunningBus) -> Iterator[Caller]:
    with httpx.Client(timeout=60) as client:
        yield Caller(running_bus, client)


@pytest.fixture
def fresh(fresh_bus: RunningBus) -> Iterator[Caller]:
    with httpx.Client(timeout=60) as client:
        yield Caller(fresh_bus, client)


@pytest.fixture
def caller_for() -> Iterator[Any]:
    """Callers for buses a test builds itself (closed with the test)."""
    client = httpx.Client(timeout=60)
    yield lambda bus: Caller(bus, client)
    client.close()


def log_record(bus: RunningBus, request_id: str) -> dict[str, Any]:
    records = bus.run(bus.bus.exchange_log.recent(1000))
    found = [r for r in records if r["request_id"] == request_id]
    assert found, f"exchange {request_id} is not in the message log"
    return found[0]


def refused(
    bus: RunningBus,
    response: httpx.Response,
    status: int,
    message: str,
    error_code: str,
    *,
    fmt: str = "json",
    prefix: bool = False,
    logged: bool = True,
) -> dict[str, Any]:
    """Check a refusal: status, bus-signed failure with ``message``, logged with the code."""
    assert response.status_code == status, response.text
    content_type = response.headers["content-type"]
    assert fmt in content_type
    envelope = open_envelope(response.content, bus.bus.signer.public_key, content_type)
    assert envelope.format == fmt
    data = envelope.data
    assert data["success"] in (False, "false")
    if prefix:
        assert data["message"].startswith(message), data["message"]
    else:
        assert data["message"] == message
    if not logged:
        return data
    assert response.headers["x-kiungo-error"] == error_code
    record = log_record(bus, data["requestId"])
    assert record["success"] is False
    assert record["http_status"] == status
    assert record["error_code"] == error_code
    return record


def succeeded(response: httpx.Response, bus: RunningBus) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    envelope = open_envelope(
        response.content, bus.bus.signer.public_key, response.headers["content-type"]
    )
    assert envelope.data["success"] in (True, "true"), envelope.data
    return envelope.data


# --- tokens ------------------------------------------------------------------------------------


def test_missing_token(demo: Caller) -> None:
    """A request without a token gets 401 and a signed failure naming the missing token."""
    response = demo.post(demo.envelope("MOH-HMIS", NIDA), token=None)
    record = refused(
        demo.bus, response, 401,
        "missing access token (Authorization: Bearer <token>)", "client.invalid_token",
    )  # fmt: skip
    assert record["consumer_system"] is None


def test_garbage_token(demo: Caller) -> None:
    """A token that is not one of the bus's tokens at all gets 401 "malformed"."""
    response = demo.post(demo.envelope("MOH-HMIS", NIDA), token="not-a-token")
    refused(demo.bus, response, 401, "access token is malformed", "client.invalid_token")


def test_token_of_another_bus(demo: Caller) -> None:
    """A well-formed token signed with another bus's token key gets 401."""
    system = demo.bus.bus.cache.current.by_code["MOH-HMIS"]
    token = TokenService(b"another bus's token key").issue(
        system.id, system.secret_version, time.time()
    )
    response = demo.post(demo.envelope("MOH-HMIS", NIDA), token=token)
    refused(
        demo.bus, response, 401, "access token is not valid for this bus", "client.invalid_token"
    )


def test_expired_token(demo: Caller) -> None:
    """A token the bus issued whose lifetime is over gets 401 "expired"."""
    tokens = demo.bus.bus.tokens
    system = demo.bus.bus.cache.current.by_code["MOH-HMIS"]
    token = tokens.issue(system.id, system.secret_version, time.time() - 2 * tokens.ttl)
    response = demo.post(demo.envelope("MOH-HMIS", NIDA), token=token)
    refused(demo.bus, response, 401, "access token has expired", "client.invalid_token")


def test_token_issued_before_secret_reset(fresh: Caller) -> None:
    """Resetting a system's secret revokes its earlier tokens; a token from the new secret works."""
    old = fresh.token("MOH-HMIS")
    assert succeeded(fresh.call("MOH-HMIS", token=old), fresh.bus)
    secret = fresh.bus.run(fresh.bus.bus.registry.reset_secret("test", "MOH-HMIS"))
    response = fresh.call("MOH-HMIS", token=old)
    refused(fresh.bus, response, 401, "access token has been revoked", "client.invalid_token")
    new = fresh.token("MOH-HMIS", secret=secret)
    assert succeeded(fresh.call("MOH-HMIS", token=new), fresh.bus)


def test_disabled_system(fresh: Caller) -> None:
    """Disabling a system refuses its next call, even with a token issued before."""
    token = fresh.token("MOH-HMIS")
    fresh.bus.run(fresh.bus.bus.registry.update_system("test", "MOH-HMIS", status="disabled"))
    response = fresh.call("MOH-HMIS", token=token)
    refused(fresh.bus, response, 401, "system MOH-HMIS is disabled", "client.invalid_token")


# --- codes and grants ----------------------------------------------------------------------------


def test_unknown_api_code(demo: Caller) -> None:
    """An API code nobody registered gets 404."""
    response = demo.call("MOH-HMIS", {"apiCode": "HAKUNA-API", "esbBody": {}})
    record = refused(
        demo.bus, response, 404, "API code HAKUNA-API is not registered on this bus",
        "client.unknown_code",
    )  # fmt: skip
    assert (record["consumer_system"], record["code"]) == ("MOH-HMIS", "HAKUNA-API")


def test_disabled_api(fresh: Caller) -> None:
    """A disabled API gets 403 for a consumer holding a grant."""
    fresh.bus.run(fresh.bus.bus.registry.update_api("test", "NIDA-VERIFY", status="disabled"))
    response = fresh.call("MOH-HMIS")
    refused(fresh.bus, response, 403, "API code NIDA-VERIFY is disabled", "client.code_disabled")


def test_no_grant(demo: Caller) -> None:
    """A consumer whose access request is still pending gets 403, in its own format (XML)."""
    data = {"apiCode": "RITA-BIRTH-CERT", "esbBody": {"entryNo": ENTRY}}
    response = demo.call("DCC-REVENUE", data, "xml")
    record = refused(
        demo.bus, response, 403, "Access to API code RITA-BIRTH-CERT is not granted",
        "client.not_granted", fmt="xml",
    )  # fmt: skip
    assert record["consumer_system"] == "DCC-REVENUE"


def test_revoked_grant_applies_to_the_next_call(fresh: Caller) -> None:
    """Authorization is checked per call: after a revocation the same token gets 403 at once,
    while another consumer of the same API is still served."""
    token = fresh.token("MOH-HMIS")
    assert succeeded(fresh.call("MOH-HMIS", token=token), fresh.bus)
    registry = fresh.bus.bus.registry
    (grant,) = fresh.bus.run(registry.list_grants(consumer="MOH-HMIS", api="NIDA-VERIFY"))
    fresh.bus.run(registry.decide_grant("test", grant["id"], "revoke"))
    response = fresh.call("MOH-HMIS", token=token)
    refused(
        fresh.bus, response, 403, "Access to API code NIDA-VERIFY is not granted",
        "client.not_granted",
    )  # fmt: skip
    assert succeeded(fresh.call("DCC-REVENUE"), fresh.bus)


# --- signatures and envelopes ------------------------------------------------------------------


def test_tampered_body(demo: Caller) -> None:
    """A body changed after signing gets 401."""
    body = demo.envelope("MOH-HMIS", NIDA).replace(b"00001-23", b"00001-24", 1)
    response = demo.post(body, demo.token("MOH-HMIS"))
    refused(
        demo.bus, response, 401,
        "signature does not match the signed data and the registered public key",
        "client.invalid_signature",
    )  # fmt: skip


def test_signed_with_another_key(demo: Caller) -> None:
    """A request signed with a key the system did not register gets 401."""
    body = demo.envelope("MOH-HMIS", NIDA, key=generate_private_key())
    response = demo.post(body, demo.token("MOH-HMIS"))
    refused(
        demo.bus, response, 401,
        "signature does not match the signed data and the registered public key",
        "client.invalid_signature",
    )  # fmt: skip


def _not_json(caller: Caller) -> bytes:
    return b'{"data": {"apiCode": "NIDA-VERIFY"}, "signature": '


def _no_api_code(caller: Caller) -> bytes:
    return caller.envelope("MOH-HMIS", {"esbBody": {"nin": NIN}})


def _data_not_object(caller: Caller) -> bytes:
    return b'{"data":["NIDA-VERIFY"],"signature":"MEUCIQ=="}'


def _on_behalf_without_user(caller: Caller) -> bytes:
    return caller.envelope("MOH-HMIS", {"apiCode": "NIDA-RQ", "esbBody": {"Payload": {}}})


@pytest.mark.parametrize(
    ("build", "path", "message", "prefix"),
    [
        (_not_json, REQUEST_PATH, "envelope is not valid JSON: ", True),
        (_no_api_code, REQUEST_PATH, 'envelope data has no "apiCode"', False),
        (_data_not_object, REQUEST_PATH, 'envelope "data" must be a JSON object, got an array',
         False),
        (_on_behalf_without_user, "/engine/esb/nida-request",
         'an on-behalf request needs a "userId" in its data', False),
    ],
    ids=["not_json", "no_api_code", "data_not_object", "on_behalf_without_user_id"],
)  # fmt: skip
def test_malformed_envelope(
    demo: Caller, build: Any, path: str, message: str, prefix: bool
) -> None:
    """An envelope that is not JSON, lacks its apiCode or userId, or whose data is not an
    object gets 422."""
    response = demo.post(build(demo), demo.token("MOH-HMIS"), path=path)
    refused(demo.bus, response, 422, message, "client.malformed_envelope", prefix=prefix)


def test_get_on_an_engine_path(demo: Caller) -> None:
    """A GET on an engine path gets 405, Allow: POST and a signed failure."""
    response = demo.client.get(demo.bus.url + REQUEST_PATH)
    assert response.headers["allow"] == "POST"
    refused(
        demo.bus, response, 405, "/engine/esb/request accepts POST only",
        "client.method_not_allowed",
    )  # fmt: skip


# --- size and rate limits ------------------------------------------------------------------------


def _large_request(caller: Caller) -> httpx.Response:
    data = {"apiCode": "NIDA-VERIFY", "esbBody": {"nin": NIN, "padding": "x" * 3000}}
    return caller.post(caller.envelope("MOH-HMIS", data), caller.token("MOH-HMIS"))


def test_body_too_large(tmp_path: Path, caller_for: Any) -> None:
    """A request larger than max_body_bytes gets 413, a signed failure, and is logged."""
    bus = RunningBus(tmp_path, max_body_bytes=2048)
    try:
        response = _large_request(caller_for(bus))
        refused(
            bus, response, 413, "request body is larger than the limit of 2048 bytes",
            "client.envelope_too_large",
        )  # fmt: skip
    finally:
        bus.close()


async def _burst(bus: RunningBus, bodies: list[bytes], token: str) -> list[httpx.Response]:
    """All requests at once, so that they arrive within the limit's one-second window."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(timeout=60) as client:
        return list(
            await asyncio.gather(
                *(client.post(bus.url + REQUEST_PATH, content=b, headers=headers) for b in bodies)
            )
        )


def test_system_rate_limit(tmp_path: Path, caller_for: Any) -> None:
    """A system sending more than its rate limit gets 429 for the excess."""
    bus = RunningBus(tmp_path, system_rate_limit=2)
    try:
        caller = caller_for(bus)
        bodies = [caller.envelope("MOH-HMIS", NIDA) for _ in range(5)]
        responses = asyncio.run(_burst(bus, bodies, caller.token("MOH-HMIS")))
        limited = [r for r in responses if r.status_code == 429]
        assert limited, [r.status_code for r in responses]
        assert all(r.status_code in (200, 429) for r in responses)
        for response in limited:
            refused(
                bus, response, 429,
                "rate limit of 2 per second for system MOH-HMIS exceeded",
                "client.rate_limited",
            )  # fmt: skip
    finally:
        bus.close()


def test_api_rate_limit(fresh: Caller) -> None:
    """An API whose own rate limit is exceeded answers 429 for the excess."""
    bus = fresh.bus
    bus.run(bus.bus.registry.update_api("test", "NIDA-VERIFY", rate_limit=1))
    bodies = [fresh.envelope("MOH-HMIS", NIDA) for _ in range(4)]
    responses = asyncio.run(_burst(bus, bodies, fresh.token("MOH-HMIS")))
    limited = [r for r in responses if r.status_code == 429]
    assert limited, [r.status_code for r in responses]
    for response in limited:
        refused(
            bus, response, 429,
            "rate limit of 1 per second for API code NIDA-VERIFY exceeded",
            "client.rate_limited",
        )  # fmt: skip


# --- providers that fail ---------------------------------------------------------------------


FAULTS = ("stall", "badsig", "garbage", "garbage500", "ok")


async def _respond(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    key: PrivateKey,
    wrong_key: PrivateKey,
    release: asyncio.Event,
) -> None:
    """One HTTP exchange of the fake provider; its path says how it misbehaves."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1]
        length = next(
            (int(v) for n, _, v in (h.partition(":") for h in lines[1:])
             if n.strip().lower() == "content-length"),
            0,
        )  # fmt: skip
        await reader.readexactly(length)
        if path == "/stall":
            await release.wait()  # never answers while the test runs
            return
        status, body = 200, build_envelope(response_data(True, body={"sawa": True}), key)
        if path == "/badsig":
            body = build_envelope(response_data(True, body={"sawa": True}), wrong_key)
        elif path == "/garbage":
            body = b"<html>Huduma haipatikani</html>"
        elif path == "/garbage500":
            status, body = 500, b"Internal Server Error"
        writer.write(
            b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s" % (status, len(body), body)
        )
        await writer.drain()
    finally:
        writer.close()


@dataclass
class FaultyWorld:
    bus: RunningBus
    caller: Caller


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultyWorld]:
    """A bus with a provider system FAULTY-IDS whose APIs point at a fake provider that
    stalls, signs with the wrong key, answers garbage or answers well, and one API at a
    closed port; MOH-HMIS is granted them all."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    closed = free_port()
    bus = RunningBus(
        tmp_path_factory.mktemp("faulty-bus"),
        extra_allow=[f"127.0.0.1:{port}", f"127.0.0.1:{closed}"],
    )
    key, wrong_key = generate_private_key(), generate_private_key()
    state: dict[str, Any] = {}

    async def start() -> None:
        release = asyncio.Event()
        state["release"] = release
        state["server"] = await asyncio.start_server(
            lambda r, w: _respond(r, w, key, wrong_key, release), sock=sock
        )
        registry = bus.bus.registry
        await registry.create_system(
            "test", code="FAULTY-IDS", institution="NIDA", name="Faulty provider",
            public_key=key.public_key.b64,
        )  # fmt: skip
        endpoints = {f"FAULT-{f.upper()}": f"http://127.0.0.1:{port}/{f}" for f in FAULTS}
        endpoints["FAULT-DOWN"] = f"http://127.0.0.1:{closed}/down"
        for code, url in endpoints.items():
            await registry.create_api(
                "test", code=code, name=code, provider="FAULTY-IDS", endpoint_url=url,
                timeout_ms=200 if code == "FAULT-STALL" else 10_000,
            )  # fmt: skip
            grant = await registry.request_grant("test", consumer="MOH-HMIS", api=code)
            await registry.decide_grant("test", grant["id"], "approve")

    async def stop() -> None:
        state["release"].set()
        state["server"].close()
        await state["server"].wait_closed()

    client = httpx.Client(timeout=60)
    try:
        bus.run(start())
        yield FaultyWorld(bus, Caller(bus, client))
    finally:
        client.close()
        if "server" in state:
            bus.run(stop())
        bus.close()


def _call_fault(world: FaultyWorld, code: str) -> httpx.Response:
    return world.caller.call("MOH-HMIS", {"apiCode": code, "esbBody": {"nin": NIN}})


def test_fake_provider_answering_well_is_served(faulty: FaultyWorld) -> None:
    """The fake provider's correctly signed answer reaches the consumer (the control case)."""
    data = succeeded(_call_fault(faulty, "FAULT-OK"), faulty.bus)
    assert data["esbBody"] == {"sawa": True}


def test_provider_down(faulty: FaultyWorld) -> None:
    """A provider whose port refuses connections gets 502."""
    record = refused(
        faulty.bus, _call_fault(faulty, "FAULT-DOWN"), 502,
        "provider FAULTY-IDS is unavailable (connection refused)", "server.provider_unavailable",
    )  # fmt: skip
    assert record["provider_system"] == "FAULTY-IDS"


def test_provider_timeout(faulty: FaultyWorld) -> None:
    """A provider that never answers within the API's timeout gets 504; the call returns."""
    refused(
        faulty.bus, _call_fault(faulty, "FAULT-STALL"), 504,
        "provider FAULTY-IDS did not answer within 0.2 s", "server.provider_timeout",
    )  # fmt: skip


def test_provider_answer_badly_signed(faulty: FaultyWorld) -> None:
    """A provider answer signed with another key than its registered one gets 502."""
    refused(
        faulty.bus, _call_fault(faulty, "FAULT-BADSIG"), 502,
        "provider FAULTY-IDS answer is not signed with its registered key",
        "server.provider_bad_signature",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("code", "message", "prefix"),
    [
        ("FAULT-GARBAGE", "provider FAULTY-IDS answered with an invalid envelope: ", True),
        ("FAULT-GARBAGE500", "provider FAULTY-IDS answered HTTP 500", False),
    ],
    ids=["garbage_200", "garbage_500"],
)
def test_provider_answering_garbage(
    faulty: FaultyWorld, code: str, message: str, prefix: bool
) -> None:
    """A provider answering something that is not an envelope gets 502."""
    refused(
        faulty.bus, _call_fault(faulty, code), 502, message, "server.provider_bad_answer",
        prefix=prefix,
    )  # fmt: skip


# --- the allow-list ------------------------------------------------------------------------------


def test_registration_refuses_special_and_own_addresses(running_bus: RunningBus) -> None:
    """Registering an API at the metadata address or at the bus itself is refused."""
    registry = running_bus.bus.registry
    port = running_bus.demo.port
    for url, message in (
        ("http://169.254.169.254/latest/meta-data",
         "endpoint address 169.254.169.254:80 (a loopback, link-local or reserved address) "
         "is not in the bus's allow-list"),
        (f"http://127.0.0.1:{port}/engine/esb/request", "endpoint points at the bus itself"),
    ):  # fmt: skip
        with pytest.raises(EndpointNotAllowed) as refused_registration:
            running_bus.run(
                registry.create_api(
                    "test", code="EVIL-API", name="evil", provider="NIDA-IDS", endpoint_url=url
                )
            )
        assert refused_registration.value.message == message
    codes = {api["code"] for api in running_bus.run(registry.list_apis())}
    assert "EVIL-API" not in codes


def test_endpoint_outside_the_allow_list_at_call_time(tmp_path: Path, caller_for: Any) -> None:
    """An API registered while its endpoint was allowed is refused at call time once the bus
    runs with an allow-list that no longer admits it."""
    port = free_port()
    first = RunningBus(tmp_path, extra_allow=[f"127.0.0.1:{port}"])
    try:
        registry = first.bus.registry
        first.run(
            registry.create_api(
                "test", code="OLD-API", name="old", provider="NIDA-IDS",
                endpoint_url=f"http://127.0.0.1:{port}/old",
            )
        )  # fmt: skip
        grant = first.run(registry.request_grant("test", consumer="MOH-HMIS", api="OLD-API"))
        first.run(registry.decide_grant("test", grant["id"], "approve"))
    finally:
        first.close()
    second = RunningBus(tmp_path)  # same data directory, default demo allow-list
    try:
        response = caller_for(second).call("MOH-HMIS", {"apiCode": "OLD-API", "esbBody": {}})
        refused(
            second, response, 502,
            "provider NIDA-IDS endpoint is not allowed by this bus's allow-list",
            "server.provider_unavailable",
        )  # fmt: skip
    finally:
        second.close()
