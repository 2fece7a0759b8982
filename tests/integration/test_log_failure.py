"""No answer leaves unlogged: when the message log cannot be written, the exchange fails."""

from __future__ import annotations

import sqlite3

import httpx
from tests.integration.conftest import RunningBus

from kiungo.protocol import build_envelope, load_private_key, open_envelope
from kiungo.sdk import Client, RequestRefused

NIN = {"nin": "19900101-11111-00001-23"}


def test_an_unwritable_log_refuses_the_answer(fresh_bus: RunningBus) -> None:
    """With the log table gone, the consumer gets a signed 503 instead of the provider's data."""
    database = fresh_bus.demo.settings.effective_database_url.split("///", 1)[1]
    with Client.from_credentials(fresh_bus.system("MOH-HMIS")) as client:
        assert client.request("NIDA-VERIFY", NIN).success
        conn = sqlite3.connect(database)
        conn.execute("ALTER TABLE exchanges RENAME TO exchanges_away")
        conn.close()
        try:
            client.request("NIDA-VERIFY", NIN)
        except RequestRefused as refusal:
            assert refusal.status == 503
            assert refusal.message == "the message log could not be written"
            assert "Zuhura" not in refusal.message
        else:
            raise AssertionError("the exchange succeeded without being logged")
        conn = sqlite3.connect(database)
        conn.execute("ALTER TABLE exchanges_away RENAME TO exchanges")
        conn.close()
        assert client.request("NIDA-VERIFY", NIN).success  # the log recovers by itself


def test_the_refusal_is_signed_by_the_bus(fresh_bus: RunningBus) -> None:
    """The 503 answer is a failure envelope the consumer can verify with the bus key."""
    creds = fresh_bus.system("MOH-HMIS")
    token = httpx.post(
        creds["esbTokenUrl"],
        data={"grant_type": "client_credentials"},
        auth=(creds["clientId"], creds["clientSecret"]),
    ).json()["access_token"]
    database = fresh_bus.demo.settings.effective_database_url.split("///", 1)[1]
    conn = sqlite3.connect(database)
    conn.execute("DROP TABLE exchanges")
    conn.close()
    body = build_envelope(
        {"apiCode": "NIDA-VERIFY", "esbBody": NIN},
        load_private_key(creds["clientPrivateKey"]),
        root="esbrequest",
    )
    r = httpx.post(
        creds["esbEngineUrl"] + "/request",
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert r.status_code == 503
    assert r.headers["x-kiungo-error"] == "server.log_unavailable"
    data = open_envelope(r.content, fresh_bus.bus.signer.public_key).data
    assert data == {
        "success": False,
        "requestId": data["requestId"],
        "message": "the message log could not be written",
    }
