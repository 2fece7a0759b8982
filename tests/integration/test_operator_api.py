"""The operator API over real HTTP: operator login and roles, deny by default, the full
onboarding of an institution up to a signed call through the engine, the audit trail,
and clear JSON errors for bad input.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from tests.integration.conftest import RunningBus

from kiungo import protocol as P

API = "/api/v1"
PASSWORD = "long-enough-password-1"
NIN = {"nin": "19900101-11111-00001-23"}


# --- helpers ---------------------------------------------------------------------------------


def login(bus: RunningBus, username: str, password: str = PASSWORD) -> httpx.Response:
    return httpx.post(
        bus.url + API + "/auth/login", json={"username": username, "password": password}
    )


def operator_client(bus: RunningBus, username: str, role: str) -> httpx.Client:
    """Create an operator account and return an HTTP client logged in as it."""
    bus.run(bus.bus.operators.create("test", username, PASSWORD, role))
    answer = login(bus, username)
    assert answer.status_code == 200, answer.text
    token = answer.json()["token"]
    return httpx.Client(base_url=bus.url + API, headers={"Authorization": f"Bearer {token}"})


def version(bus: RunningBus) -> int:
    return bus.run(bus.bus.registry.version())


def fetch_token(bus: RunningBus, client_id: str, secret: str) -> httpx.Response:
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return httpx.post(
        bus.url + "/gw/govesb-uaa/oauth/token",
        data={"client_id": client_id, "client_secret": secret, "grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )


def signed_call(
    bus: RunningBus, token: str, key: P.PrivateKey, api_code: str, body: Any
) -> tuple[int, dict[str, Any]]:
    """A consumer's request through the engine; the answer must carry the bus's signature."""
    envelope = P.build_envelope({"apiCode": api_code, "esbBody": body}, key, root="esbrequest")
    answer = httpx.post(
        bus.url + "/engine/esb/request",
        content=envelope,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json; charset=utf-8",
        },
    )
    opened = P.open_envelope(
        answer.content, bus.bus.signer.public_key, answer.headers["content-type"]
    )
    return answer.status_code, opened.data


def rsa_public_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@dataclass
class ApiBus:
    """A bus of this module's own with one logged-in client per role; tests on it only
    read or are refused, so they never change its registry."""

    bus: RunningBus
    admin: httpx.Client
    operator: httpx.Client
    viewer: httpx.Client


@pytest.fixture(scope="module")
def api_bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiBus]:
    bus = RunningBus(tmp_path_factory.mktemp("operator-api"))
    clients = [operator_client(bus, role, role) for role in ("admin", "operator", "viewer")]
    try:
        yield ApiBus(bus, *clients)
    finally:
        for client in clients:
            client.close()
        bus.close()


# --- every route of the API, with sample path values ------------------------------------------

ROUTES = [
    ("POST", "/auth/logout"),
    ("GET", "/auth/me"),
    ("POST", "/operators"),
    ("GET", "/institutions"),
    ("POST", "/institutions"),
    ("GET", "/institutions/{code}"),
    ("PATCH", "/institutions/{code}"),
    ("GET", "/systems"),
    ("POST", "/systems"),
    ("GET", "/systems/{code}"),
    ("PATCH", "/systems/{code}"),
    ("POST", "/systems/{code}/secret"),
    ("POST", "/systems/{code}/keys"),
    ("POST", "/systems/{code}/keys/rotate"),
    ("DELETE", "/systems/{code}/keys/{fingerprint}"),
    ("GET", "/apis"),
    ("POST", "/apis"),
    ("GET", "/apis/{code}"),
    ("PATCH", "/apis/{code}"),
    ("GET", "/grants"),
    ("POST", "/grants"),
    ("GET", "/grants/{grant_id}"),
    ("POST", "/grants/{grant_id}/{decision}"),
    ("GET", "/topics"),
    ("POST", "/topics"),
    ("GET", "/topics/{code}"),
    ("PATCH", "/topics/{code}"),
    ("GET", "/subscriptions"),
    ("POST", "/subscriptions"),
    ("GET", "/subscriptions/{subscription_id}"),
    ("POST", "/subscriptions/{subscription_id}/{decision}"),
    ("GET", "/audit"),
    ("GET", "/exchanges"),
]
CHANGES = [(m, p) for m, p in ROUTES if m != "GET" and p != "/auth/logout"]


def fill(template: str, code: str = "MOH-HMIS") -> str:
    return template.format(
        code=code, fingerprint="0" * 64, grant_id=1, decision="revoke", subscription_id=1
    )


# --- authentication and roles -------------------------------------------------------------------


def test_every_route_of_the_app_is_in_the_route_list(running_bus: RunningBus) -> None:
    """The deny-by-default tests below cover every route the operator API serves."""
    spec = running_bus.bus.operator_api.openapi()
    served = {
        (method.upper(), path.removeprefix(API))
        for path, operations in spec["paths"].items()
        if path != API + "/auth/login"
        for method in operations
    }
    assert served == set(ROUTES)


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_no_route_answers_without_a_valid_operator_token(
    running_bus: RunningBus, method: str, path: str
) -> None:
    """Without a token, or with a forged one, every route answers 401 before reading input."""
    before = version(running_bus)
    for headers in (
        {},
        {"Authorization": "Bearer not-a-session-token"},
        {"Authorization": "Basic b3A6cGFzc3dvcmQ="},
    ):
        answer = httpx.request(
            method,
            running_bus.url + API + fill(path),
            headers={**headers, "Content-Type": "application/json"},
            content=b"{not json",
        )
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"] == "client.not_authenticated"
        assert answer.headers["www-authenticate"] == "Bearer"
    assert version(running_bus) == before


def test_unknown_paths_are_closed_too_and_the_docs_are_open(running_bus: RunningBus) -> None:
    """A path nobody routed is refused without a token; /docs and /openapi.json hold no data."""
    assert httpx.get(running_bus.url + "/api/v2/institutions").status_code == 401
    assert httpx.get(running_bus.url + "/admin").status_code == 401
    assert httpx.get(running_bus.url + "/docs").status_code == 200
    spec = httpx.get(running_bus.url + "/openapi.json").json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert spec["paths"][API + "/systems/{code}/keys/rotate"]["post"]["security"]


def test_login_with_right_and_wrong_credentials(api_bus: ApiBus) -> None:
    """A right password gives a session token and the role; a wrong one or an unknown
    user gives the same 401."""
    good = login(api_bus.bus, "viewer")
    assert good.status_code == 200
    assert good.json()["role"] == "viewer"
    assert good.json()["expires_in"] == 12 * 3600
    assert good.headers["cache-control"] == "no-store"
    me = httpx.get(
        api_bus.bus.url + API + "/auth/me",
        headers={"Authorization": f"Bearer {good.json()['token']}"},
    )
    assert me.json() == {"username": "viewer", "role": "viewer"}
    wrong = login(api_bus.bus, "viewer", "not-the-password")
    unknown = login(api_bus.bus, "nobody", PASSWORD)
    for answer in (wrong, unknown):
        assert answer.status_code == 401
        assert answer.json() == {
            "error": "client.not_authenticated",
            "message": "wrong username or password",
        }
    assert PASSWORD not in wrong.text + unknown.text


def test_logout_ends_the_session(api_bus: ApiBus) -> None:
    """After logout the session token opens nothing."""
    token = login(api_bus.bus, "viewer").json()["token"]
    with httpx.Client(
        base_url=api_bus.bus.url + API, headers={"Authorization": f"Bearer {token}"}
    ) as session:
        assert session.get("/institutions").status_code == 200
        assert session.post("/auth/logout").status_code == 204
        assert session.get("/institutions").status_code == 401


def test_viewer_reads_every_list(api_bus: ApiBus) -> None:
    """A viewer reads the registry, the audit trail and the exchanges."""
    for path in ("/institutions", "/systems", "/apis", "/grants", "/topics", "/subscriptions",
                 "/audit", "/exchanges", "/systems/MOH-HMIS", "/grants/1"):  # fmt: skip
        assert api_bus.viewer.get(path).status_code == 200, path


@pytest.mark.parametrize(("method", "path"), CHANGES)
def test_viewer_cannot_change_anything(api_bus: ApiBus, method: str, path: str) -> None:
    """Every changing route refuses a viewer with 403 and changes nothing."""
    before = version(api_bus.bus)
    answer = api_bus.viewer.request(method, fill(path), json={})
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"] == "client.forbidden"
    assert version(api_bus.bus) == before


def test_only_an_admin_creates_operators(api_bus: ApiBus) -> None:
    """An operator cannot create accounts; an admin can, and the new account logs in."""
    body = {"username": "auditor-1", "password": PASSWORD, "role": "viewer"}
    assert api_bus.operator.post("/operators", json=body).status_code == 403
    created = api_bus.admin.post("/operators", json=body)
    assert created.status_code == 201
    assert created.json() == {"username": "auditor-1", "role": "viewer"}
    assert api_bus.admin.post("/operators", json=body).status_code == 409
    assert login(api_bus.bus, "auditor-1").json()["role"] == "viewer"
    short = api_bus.admin.post("/operators", json=body | {"username": "x", "password": "short"})
    assert short.status_code == 422
    assert "short" not in short.text


# --- bad input --------------------------------------------------------------------------------

INSTITUTION = {"code": "TRA", "name_en": "Revenue", "name_sw": "Mapato", "category": "authority"}

BAD_INPUT = {
    "unknown category": ("POST", "/institutions", INSTITUTION | {"category": "bank"}, 422,
                         "client.invalid_input", "category"),
    "bad code": ("POST", "/institutions", INSTITUTION | {"code": "TRA TAX!"}, 422,
                 "client.invalid_input", "code"),
    "unknown field": ("POST", "/institutions", INSTITUTION | {"budget": 1}, 422,
                      "client.invalid_input", "budget"),
    "body not an object": ("POST", "/institutions", [INSTITUTION], 422,
                           "client.invalid_input", "JSON object"),
    "garbage JSON": ("POST", "/institutions", b'{"code": "TRA",', 422,
                     "client.invalid_input", "not valid JSON"),
    "null name": ("PATCH", "/institutions/MOH", {"name_en": None}, 422,
                  "client.invalid_input", "name_en cannot be null"),
    "empty change": ("PATCH", "/institutions/MOH", {}, 422,
                     "client.invalid_input", "nothing to change"),
    "RSA key": ("POST", "/systems/MOH-HMIS/keys", {"public_key": rsa_public_key_pem()}, 422,
                "client.invalid_key", "RSA"),
    "garbage key": ("POST", "/systems/MOH-HMIS/keys", {"public_key": "bm90IGEga2V5"}, 422,
                    "client.invalid_key", "key"),
    "negative overlap": ("POST", "/systems/MOH-HMIS/keys/rotate",
                         {"public_key": "x", "overlap_seconds": -1}, 422,
                         "client.invalid_input", "overlap_seconds"),
    "link-local endpoint": ("POST", "/apis", {"code": "META", "name": "m", "provider": "NIDA-IDS",
                            "endpoint_url": "http://169.254.169.254/latest/meta-data/"}, 422,
                            "client.endpoint_not_allowed", "169.254.169.254"),
    "timeout too long": ("PATCH", "/apis/NIDA-VERIFY", {"timeout_ms": 10**9}, 422,
                         "client.invalid_input", "timeout_ms"),
    "bad grant status": ("GET", "/grants?status=maybe", None, 422, "client.invalid_input",
                         "status"),
    "bad decision": ("POST", "/grants/1/forget", None, 422, "client.invalid_input", "decision"),
    "audit limit": ("GET", "/audit?limit=0", None, 422, "client.invalid_input", "limit"),
    "unknown institution": ("POST", "/systems", {"code": "X-1", "institution": "NOPE",
                            "name": "x"}, 404, "client.not_found", "NOPE"),
    "unknown system": ("GET", "/systems/NOPE", None, 404, "client.not_found", "NOPE"),
    "duplicate institution": ("POST", "/institutions", INSTITUTION | {"code": "NIDA"}, 409,
                              "client.conflict", "NIDA"),
    "approve an approved grant": ("POST", "/grants/1/approve", None, 409, "client.conflict",
                                  "approved"),
    "huge body": ("POST", "/institutions", b"[" + b"1," * 40_000 + b"1]", 413,
                  "client.body_too_large", "limit"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_gets_a_json_error_and_changes_nothing(api_bus: ApiBus, case: str) -> None:
    """Invalid input is refused with its status and a JSON error naming the problem, never
    a traceback, and the registry does not move."""
    method, path, body, status, code, hint = BAD_INPUT[case]
    before = version(api_bus.bus)
    if isinstance(body, bytes):
        answer = api_bus.operator.request(
            method, path, content=body, headers={"Content-Type": "application/json"}
        )
    else:
        answer = api_bus.operator.request(method, path, json=body)
    assert answer.status_code == status, answer.text
    error = answer.json()
    assert error["error"] == code
    assert hint in error["message"]
    assert "Traceback" not in answer.text
    assert version(api_bus.bus) == before


def test_an_unexpected_failure_is_a_bare_500_and_is_logged(
    api_bus: ApiBus, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug answers 500 with a fixed message; the traceback goes to the log only."""

    async def broken() -> list[dict[str, Any]]:
        raise RuntimeError("database exploded at /srv/kiungo")

    monkeypatch.setattr(api_bus.bus.bus.registry, "list_apis", broken)
    with caplog.at_level(logging.ERROR, logger="kiungo.api"):
        answer = api_bus.viewer.get("/apis")
    assert answer.status_code == 500
    assert answer.json() == {"error": "server.internal", "message": "internal error"}
    logged = [r for r in caplog.records if r.name == "kiungo.api"]
    assert logged and logged[0].exc_info is not None
    assert "database exploded" in caplog.text


# --- the registry changed over HTTP ------------------------------------------------------------


@pytest.fixture
def op(fresh_bus: RunningBus) -> Iterator[httpx.Client]:
    """An operator logged in to a bus of the test's own."""
    with operator_client(fresh_bus, "onboarder", "operator") as client:
        yield client


def test_onboarding_an_institution_up_to_a_signed_call(
    fresh_bus: RunningBus, op: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """institution, system (secret shown once), key rotation, API, grant: the consumer
    calls, and is refused once the grant is revoked; the audit trail holds every step."""
    bus = fresh_bus
    caplog.set_level(logging.DEBUG)
    # Institution and system: the secret is in the creation answer and nowhere else.
    assert op.post("/institutions", json=INSTITUTION).status_code == 201
    key1 = P.generate_private_key()
    created = op.post(
        "/systems",
        json={"code": "TRA-TAX", "institution": "TRA", "name": "Tax Portal",
              "public_key": key1.public_key.b64},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    assert created.headers["cache-control"] == "no-store"
    system = created.json()
    client_id, secret = system["client_id"], system["client_secret"]
    assert [k["fingerprint"] for k in system["keys"]] == [key1.public_key.fingerprint]
    shown = op.get("/systems/TRA-TAX").text + op.get("/systems?institution=TRA").text
    assert secret not in shown and "client_secret" not in shown and "secret_hash" not in shown
    issued = fetch_token(bus, client_id, secret)
    assert issued.status_code == 200
    token = issued.json()["access_token"]

    # An API: endpoints outside the allow-list are refused, a provider's real one accepted.
    api = {"code": "TRA-NIN-CHECK", "name": "NIN check for tax", "provider": "NIDA-IDS"}
    for url in ("http://169.254.169.254/latest/meta-data/", bus.url + API + "/institutions"):
        refused = op.post("/apis", json=api | {"endpoint_url": url})
        assert refused.status_code == 422
        assert refused.json()["error"] == "client.endpoint_not_allowed"
    assert "bus itself" in refused.json()["message"]
    provider_url = op.get("/apis/NIDA-VERIFY").json()["endpoint_url"]
    published = op.post("/apis", json=api | {"endpoint_url": provider_url, "timeout_ms": 5000})
    assert published.status_code == 201, published.text
    assert published.json()["provider"] == "NIDA-IDS"

    # Grant: requested is not enough; approved, the consumer's signed call goes through.
    grant = op.post("/grants", json={"consumer": "TRA-TAX", "api": "TRA-NIN-CHECK"}).json()
    assert grant["status"] == "requested"
    status, data = signed_call(bus, token, key1, "TRA-NIN-CHECK", NIN)
    assert (status, data["success"]) == (403, False)
    approved = op.post(f"/grants/{grant['id']}/approve").json()
    assert (approved["status"], approved["decided_by"]) == ("approved", "onboarder")
    status, data = signed_call(bus, token, key1, "TRA-NIN-CHECK", NIN)
    assert (status, data["success"]) == (200, True), data
    assert data["esbBody"]["imethibitishwa"] is True

    # Key rotation: during the overlap both keys verify; a revoked key no longer does.
    key2 = P.generate_private_key()
    rotated = op.post(
        "/systems/TRA-TAX/keys/rotate",
        json={"public_key": key2.public_key.pem, "overlap_seconds": 3600},
    )
    assert rotated.status_code == 201, rotated.text
    keys = {k["fingerprint"]: k for k in rotated.json()["keys"]}
    assert keys[key1.public_key.fingerprint]["valid_until"] is not None
    assert all(k["valid_now"] for k in keys.values())
    for key in (key1, key2):
        assert signed_call(bus, token, key, "TRA-NIN-CHECK", NIN)[0] == 200
    revoked = op.delete(f"/systems/TRA-TAX/keys/{key1.public_key.fingerprint}")
    assert revoked.status_code == 200
    status, data = signed_call(bus, token, key1, "TRA-NIN-CHECK", NIN)
    assert (status, data["success"]) == (401, False)
    assert signed_call(bus, token, key2, "TRA-NIN-CHECK", NIN)[0] == 200

    # Disabling the API refuses calls; revoking the grant refuses the next call too.
    assert op.patch("/apis/TRA-NIN-CHECK", json={"status": "disabled"}).status_code == 200
    assert signed_call(bus, token, key2, "TRA-NIN-CHECK", NIN)[0] == 403
    assert op.patch("/apis/TRA-NIN-CHECK", json={"status": "active"}).status_code == 200
    assert signed_call(bus, token, key2, "TRA-NIN-CHECK", NIN)[0] == 200
    assert op.post(f"/grants/{grant['id']}/revoke").json()["status"] == "revoked"
    status, data = signed_call(bus, token, key2, "TRA-NIN-CHECK", NIN)
    assert status == 403
    assert data["message"] == "Access to API code TRA-NIN-CHECK is not granted"

    # The exchanges of the new system are visible to operators.
    exchanges = op.get("/exchanges?system=TRA-TAX&limit=100").json()
    assert {e["consumer_system"] for e in exchanges} == {"TRA-TAX"}
    assert sorted(e["http_status"] for e in exchanges) == sorted(
        [403, 200, 200, 200, 401, 200, 403, 200, 403]
    )

    # Every change is audited with who, what, before and after; no secret is in it.
    audit = op.get("/audit?limit=200")
    mine = [e for e in audit.json() if e["actor"] == "onboarder"]
    actions = [e["action"] for e in reversed(mine)]
    assert actions == [
        "operator.login", "institution.create", "system.create", "api.create",
        "grant.request", "grant.approve", "system.rotate_key", "system.revoke_key",
        "api.update", "api.update", "grant.revoke",
    ]  # fmt: skip
    by_action = {e["action"]: e for e in mine}
    assert by_action["institution.create"]["before"] is None
    assert by_action["institution.create"]["after"]["code"] == "TRA"
    assert by_action["grant.approve"]["before"]["status"] == "requested"
    assert by_action["grant.approve"]["after"]["status"] == "approved"
    assert by_action["system.rotate_key"]["after"]["retiring"] == [key1.public_key.fingerprint]
    assert (
        by_action["system.revoke_key"]["before"]["valid_until"]
        != (by_action["system.revoke_key"]["after"]["valid_until"])
    )
    assert by_action["grant.revoke"]["object_id"] == str(grant["id"])
    assert secret not in audit.text
    assert secret not in caplog.text and PASSWORD not in caplog.text


def test_a_reset_secret_is_shown_once_and_retires_the_old_one(
    fresh_bus: RunningBus, op: httpx.Client
) -> None:
    """After a reset only the new secret gets tokens, and tokens of the old one stop."""
    creds = fresh_bus.system("MOH-HMIS")
    key = P.load_private_key(creds["clientPrivateKey"])
    old_token = fetch_token(fresh_bus, creds["clientId"], creds["clientSecret"]).json()
    assert signed_call(fresh_bus, old_token["access_token"], key, "NIDA-VERIFY", NIN)[0] == 200
    reset = op.post("/systems/MOH-HMIS/secret")
    assert reset.status_code == 200
    assert reset.headers["cache-control"] == "no-store"
    new_secret = reset.json()["client_secret"]
    assert reset.json()["client_id"] == creds["clientId"]
    assert new_secret != creds["clientSecret"]
    assert fetch_token(fresh_bus, creds["clientId"], creds["clientSecret"]).status_code == 401
    status, data = signed_call(fresh_bus, old_token["access_token"], key, "NIDA-VERIFY", NIN)
    assert (status, data["success"]) == (401, False)
    new_token = fetch_token(fresh_bus, creds["clientId"], new_secret).json()["access_token"]
    assert signed_call(fresh_bus, new_token, key, "NIDA-VERIFY", NIN)[0] == 200
    system = op.get("/systems/MOH-HMIS").json()
    assert system["secret_version"] == 2 and new_secret not in json.dumps(system)
    event = op.get("/audit?limit=1").json()[0]
    assert (event["action"], event["actor"]) == ("system.reset_secret", "onboarder")
    assert (event["before"], event["after"]) == ({"secret_version": 1}, {"secret_version": 2})


def test_disabling_an_institution_stops_its_systems(
    fresh_bus: RunningBus, op: httpx.Client
) -> None:
    """A disabled institution's systems get no token and their current tokens are refused;
    enabled again, they work."""
    creds = fresh_bus.system("DCC-REVENUE")
    key = P.load_private_key(creds["clientPrivateKey"])
    token = fetch_token(fresh_bus, creds["clientId"], creds["clientSecret"]).json()["access_token"]
    disabled = op.patch("/institutions/DCC", json={"status": "disabled"})
    assert disabled.json()["status"] == "disabled"
    refused = fetch_token(fresh_bus, creds["clientId"], creds["clientSecret"])
    assert (refused.status_code, refused.json()["error"]) == (401, "invalid_client")
    status, data = signed_call(fresh_bus, token, key, "NIDA-VERIFY", NIN)
    assert (status, data["success"]) == (401, False)
    assert "disabled" in data["message"]
    other = fresh_bus.system("MOH-HMIS")
    assert fetch_token(fresh_bus, other["clientId"], other["clientSecret"]).status_code == 200
    op.patch("/institutions/DCC", json={"status": "active"})
    assert signed_call(fresh_bus, token, key, "NIDA-VERIFY", NIN)[0] == 200
    event = op.get("/audit?limit=2").json()[1]
    assert event["action"] == "institution.update"
    assert (event["before"]["status"], event["after"]["status"]) == ("active", "disabled")


def test_system_and_api_changes_are_read_back(fresh_bus: RunningBus, op: httpx.Client) -> None:
    """Patched fields are stored and returned; a null callback URL removes it; a disabled
    system gets no token."""
    callback = fresh_bus.demo.provider_url("NIDA-IDS") + "/callbacks"
    changed = op.patch("/systems/DCC-REVENUE", json={"name": "Revenue", "callback_url": callback})
    assert (changed.json()["name"], changed.json()["callback_url"]) == ("Revenue", callback)
    cleared = op.patch("/systems/DCC-REVENUE", json={"callback_url": None})
    assert cleared.json()["callback_url"] is None
    api = op.patch("/apis/NIDA-VERIFY", json={"rate_limit": 5, "description": "verify"}).json()
    assert (api["rate_limit"], api["description"]) == (5, "verify")
    assert op.patch("/apis/NIDA-VERIFY", json={"rate_limit": None}).json()["rate_limit"] is None
    assert op.get("/systems?institution=DCC").json()[0]["name"] == "Revenue"
    op.patch("/systems/DCC-REVENUE", json={"status": "disabled"})
    creds = fresh_bus.system("DCC-REVENUE")
    assert fetch_token(fresh_bus, creds["clientId"], creds["clientSecret"]).status_code == 401


def test_topics_and_subscriptions_follow_their_workflow(
    fresh_bus: RunningBus, op: httpx.Client
) -> None:
    """A subscription is requested, approved into the bus's routing, then revoked out of it;
    a topic can be renamed and disabled."""
    topic = op.post(
        "/topics",
        json={"code": "MOH-OUTBREAK", "name": "Outbreak alert", "publisher": "MOH-HMIS"},
    )
    assert topic.status_code == 201 and topic.json()["publisher"] == "MOH-HMIS"
    sub = op.post("/subscriptions", json={"topic": "MOH-OUTBREAK", "subscriber": "DCC-REVENUE"})
    assert sub.status_code == 201 and sub.json()["status"] == "requested"
    sub_id = sub.json()["id"]
    listed = op.get("/subscriptions?topic=MOH-OUTBREAK&status=requested").json()
    assert [s["id"] for s in listed] == [sub_id]

    def routed() -> list[str]:
        entry = fresh_bus.bus.cache.current.topics["MOH-OUTBREAK"]
        return [system.code for system, _ in entry.subscribers]

    assert routed() == []
    assert op.post(f"/subscriptions/{sub_id}/approve").json()["status"] == "approved"
    assert routed() == ["DCC-REVENUE"]
    assert op.post(f"/subscriptions/{sub_id}/approve").status_code == 409
    assert op.post(f"/subscriptions/{sub_id}/revoke").json()["status"] == "revoked"
    assert routed() == []
    renamed = op.patch("/topics/MOH-OUTBREAK", json={"name": "Mlipuko", "status": "disabled"})
    assert (renamed.json()["name"], renamed.json()["status"]) == ("Mlipuko", "disabled")
    assert not fresh_bus.bus.cache.current.topics["MOH-OUTBREAK"].active
    actions = [e["action"] for e in op.get("/audit?limit=5").json()]
    assert actions[:4] == [
        "topic.update", "subscription.revoke", "subscription.approve", "subscription.create",
    ]  # fmt: skip


def test_a_key_can_be_added_beside_the_current_one(fresh_bus: RunningBus, op: httpx.Client) -> None:
    """An added key verifies requests while the old key keeps working."""
    creds = fresh_bus.system("MOH-HMIS")
    old = P.load_private_key(creds["clientPrivateKey"])
    new = P.generate_private_key(P.Curve.P256)
    added = op.post("/systems/MOH-HMIS/keys", json={"public_key": new.public_key.b64})
    assert added.status_code == 201
    assert {k["curve"] for k in added.json()["keys"]} == {"secp256k1", "p256"}
    assert all(k["valid_now"] for k in added.json()["keys"])
    token = fetch_token(fresh_bus, creds["clientId"], creds["clientSecret"]).json()["access_token"]
    for key in (old, new):
        assert signed_call(fresh_bus, token, key, "NIDA-VERIFY", NIN)[0] == 200
    again = op.post("/systems/MOH-HMIS/keys", json={"public_key": new.public_key.b64})
    assert again.status_code == 409


def test_openapi_document_describes_models_without_secrets(running_bus: RunningBus) -> None:
    """The published schema of a system holds no secret hash, and only the creation and
    reset answers carry a client secret."""
    spec = running_bus.bus.operator_api.openapi()
    schemas = spec["components"]["schemas"]
    with_secret = {
        name for name, s in schemas.items() if "client_secret" in s.get("properties", {})
    }
    assert with_secret == {"SystemCreated", "SecretOut"}
    assert "secret_hash" not in json.dumps(spec)
