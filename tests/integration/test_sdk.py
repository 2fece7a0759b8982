"""The consumer SDK (sync and async) against a real bus, its demo providers and registry."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.conftest import RunningBus

from kiungo.auth.tokens import TokenService
from kiungo.protocol import generate_private_key
from kiungo.sdk import (
    Answer,
    ApiDisabled,
    AsyncClient,
    BadBusAnswer,
    BadBusSignature,
    Client,
    InvalidRequest,
    NotGranted,
    ProviderError,
    ProviderRefused,
    RateLimited,
    RequestRefused,
    TokenError,
    TransportError,
    Unauthorized,
    UnknownApi,
)

NIN = "19900101-11111-00001-23"
ENTRY = "B-2024-000117"
# Swahili with diacritics borrowed from names, emoji (astral, ZWJ, flag), XML and JSON
# metacharacters, the envelope's own tags: everything must come back exactly as sent.
TRICKY = 'Shaban Ünal wa Dodoma 🇹🇿 👩🏽‍⚕️ «karibu» "nukuu" & <b> </data> ]]> \\ / ñ 𝄞'

Call = Callable[..., Any]


@pytest.fixture(params=["sync", "async"])
def call(request: pytest.FixtureRequest) -> Call:
    """``call(system, "request", *args, client_options..., **kwargs)`` through a new client of
    the parametrized kind; returns the Answer (and the client's token count) or raises."""

    def run(system: dict[str, Any], method: str, *args: Any, **kwargs: Any) -> Any:
        options = kwargs.pop("options", {})
        if request.param == "sync":
            with Client.from_credentials(system, **options) as client:
                return getattr(client, method)(*args, **kwargs)

        async def go() -> Any:
            async with AsyncClient.from_credentials(system, **options) as client:
                return await getattr(client, method)(*args, **kwargs)

        return asyncio.run(go())

    return run


def with_(system: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**system, **changes}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port bound by nobody listening: connecting to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


# --- answers -----------------------------------------------------------------------------


class TestAnswers:
    def test_json_request_returns_the_providers_answer(
        self, running_bus: RunningBus, call: Call
    ) -> None:
        """A JSON request to NIDA-VERIFY returns the provider's body with the bus's request id."""
        answer = call(running_bus.system("MOH-HMIS"), "request", "NIDA-VERIFY", {"nin": NIN})
        assert isinstance(answer, Answer)
        assert answer.success is True
        assert answer.body == {
            "nin": NIN,
            "jina": "Zuhura Mwanaisha Salum",
            "hali": "HAI",
            "imethibitishwa": True,
        }
        assert answer.request_id and answer.data["requestId"] == answer.request_id
        assert answer.data["esbBody"] == answer.body

    def test_xml_request_returns_the_birth_record(
        self, running_bus: RunningBus, call: Call
    ) -> None:
        """An XML request to RITA-BIRTH-CERT returns the record as elements (values as text)."""
        answer = call(
            running_bus.system("MOH-HMIS"),
            "request",
            "RITA-BIRTH-CERT",
            {"entryNo": ENTRY},
            format="xml",
        )
        assert answer.success is True
        record = answer.body["birthCertificate"]
        assert record["childName"] == "Neema Zuhura Salum"
        assert record["motherNin"] == NIN
        assert answer.request_id

    def test_on_behalf_request_carries_the_person(
        self, running_bus: RunningBus, call: Call
    ) -> None:
        """nida_request sends userId and the body as Payload to NIDA-RQ, which answers for them."""
        answer = call(running_bus.system("MOH-HMIS"), "nida_request", "NIDA-RQ", NIN, {"NIN": NIN})
        assert answer.body["requestedBy"] == NIN
        assert answer.body["person"]["jina"] == "Zuhura Mwanaisha Salum"

    def test_on_behalf_request_uses_the_clients_default_user(
        self, running_bus: RunningBus, call: Call
    ) -> None:
        """Without a user_id argument, nida_request acts for the client's configured user."""
        answer = call(
            running_bus.system("MOH-HMIS"),
            "nida_request",
            "NIDA-RQ",
            body={"NIN": NIN},
            options={"user_id": "19851231-22222-00002-45"},
        )
        assert answer.body["requestedBy"] == "19851231-22222-00002-45"

    def test_non_ascii_user_id_round_trips(self, running_bus: RunningBus, call: Call) -> None:
        """Swahili, emoji and markup in a userId come back byte for byte in a signed answer."""
        answer = call(
            running_bus.system("MOH-HMIS"), "nida_request", "NIDA-RQ", TRICKY, {"NIN": NIN}
        )
        assert answer.body["requestedBy"] == TRICKY

    @pytest.mark.parametrize(
        ("code", "fmt", "field", "expected"),
        [
            ("NIDA-VERIFY", "json", "nin",
             f"Namba ya NIDA {TRICKY} haipo / NIN {TRICKY} not found"),
            ("RITA-BIRTH-CERT", "xml", "entryNo",
             f"Cheti {TRICKY} hakipo / birth entry {TRICKY} not found"),
        ],
    )  # fmt: skip
    def test_provider_refusal_carries_its_message(
        self,
        running_bus: RunningBus,
        call: Call,
        code: str,
        fmt: str,
        field: str,
        expected: str,
    ) -> None:
        """A provider's success:false raises RequestRefused with its exact (non-ASCII) message."""
        with pytest.raises(RequestRefused) as caught:
            call(running_bus.system("MOH-HMIS"), "request", code, {field: TRICKY}, format=fmt)
        refused = caught.value
        assert isinstance(refused, ProviderRefused)
        assert refused.message == expected
        assert refused.status == 200
        assert refused.code is None
        assert refused.request_id


# --- refusals by the bus -----------------------------------------------------------------


class TestRefusals:
    def test_pending_grant_is_not_granted(self, running_bus: RunningBus, call: Call) -> None:
        """DCC-REVENUE's pending request for RITA-BIRTH-CERT is refused as NotGranted (403)."""
        with pytest.raises(NotGranted) as caught:
            call(
                running_bus.system("DCC-REVENUE"),
                "request",
                "RITA-BIRTH-CERT",
                {"entryNo": ENTRY},
                format="xml",
            )
        assert caught.value.status == 403
        assert caught.value.code == "client.not_granted"
        assert "RITA-BIRTH-CERT" in caught.value.message
        assert caught.value.request_id

    def test_unknown_api_code(self, running_bus: RunningBus, call: Call) -> None:
        """An API code the bus does not know raises UnknownApi (404) naming the code."""
        with pytest.raises(UnknownApi) as caught:
            call(running_bus.system("MOH-HMIS"), "request", "NIDA-NO-SUCH", {"nin": NIN})
        assert caught.value.status == 404
        assert caught.value.code == "client.unknown_code"
        assert "NIDA-NO-SUCH" in caught.value.message

    def test_wrong_client_secret_is_a_token_error(
        self, running_bus: RunningBus, call: Call
    ) -> None:
        """A wrong client secret raises TokenError carrying the OAuth2 error invalid_client."""
        system = with_(running_bus.system("MOH-HMIS"), clientSecret="not-the-secret")
        with pytest.raises(TokenError) as caught:
            call(system, "request", "NIDA-VERIFY", {"nin": NIN})
        assert caught.value.error == "invalid_client"
        assert caught.value.status == 401

    def test_wrong_private_key_is_unauthorized(self, running_bus: RunningBus, call: Call) -> None:
        """A request signed with a key the bus does not hold raises Unauthorized (signature)."""
        system = with_(running_bus.system("MOH-HMIS"), clientPrivateKey=generate_private_key().b64)
        with pytest.raises(Unauthorized) as caught:
            call(system, "request", "NIDA-VERIFY", {"nin": NIN})
        assert caught.value.status == 401
        assert caught.value.code == "client.invalid_signature"

    @pytest.mark.parametrize("code", ["NIDA-VERIFY", "NIDA-NO-SUCH"])
    def test_answer_checked_with_wrong_bus_key_is_refused(
        self, running_bus: RunningBus, call: Call, code: str
    ) -> None:
        """An answer that does not verify with the configured bus key raises BadBusSignature,
        whether it says success or refusal: unverified content is never returned."""
        system = with_(
            running_bus.system("MOH-HMIS"), esbPublicKey=generate_private_key().public_key.b64
        )
        with pytest.raises(BadBusSignature) as caught:
            call(system, "request", code, {"nin": NIN})
        assert isinstance(caught.value, BadBusAnswer)
        assert caught.value.status == (200 if code == "NIDA-VERIFY" else 404)

    def test_unreachable_bus_is_a_transport_error(
        self, running_bus: RunningBus, call: Call, closed_port: int
    ) -> None:
        """A token URL nobody listens on raises TransportError, not an httpx exception."""
        system = with_(
            running_bus.system("MOH-HMIS"),
            esbTokenUrl=f"http://127.0.0.1:{closed_port}/gw/govesb-uaa/oauth/token",
        )
        with pytest.raises(TransportError):
            call(system, "request", "NIDA-VERIFY", {"nin": NIN})


# --- the token -----------------------------------------------------------------------------


class TestToken:
    def test_requests_share_one_token(self, running_bus: RunningBus) -> None:
        """Consecutive requests of one client reuse the token fetched for the first."""
        with Client.from_credentials(running_bus.system("MOH-HMIS")) as client:
            first = client.request("NIDA-VERIFY", {"nin": NIN})
            second = client.request("RITA-BIRTH-CERT", {"entryNo": ENTRY}, format="xml")
            assert client.token_fetches == 1
        assert first.request_id != second.request_id

    def test_concurrent_async_requests_share_one_token(self, running_bus: RunningBus) -> None:
        """Concurrent first requests of an AsyncClient wait for a single token fetch."""

        async def go() -> tuple[list[Answer], int]:
            async with AsyncClient.from_credentials(running_bus.system("MOH-HMIS")) as client:
                answers = await asyncio.gather(
                    *(client.request("NIDA-VERIFY", {"nin": NIN}) for _ in range(5))
                )
                return answers, client.token_fetches

        answers, fetches = asyncio.run(go())
        assert fetches == 1
        assert len({a.request_id for a in answers}) == 5
        assert all(a.body["jina"] == "Zuhura Mwanaisha Salum" for a in answers)

    def test_token_is_renewed_a_minute_before_expiry(self, running_bus: RunningBus) -> None:
        """The cached token (expires_in 3600) is kept until 60 s before expiry, then renewed."""
        clock = FakeClock()
        with Client.from_credentials(running_bus.system("MOH-HMIS"), clock=clock) as client:
            client.request("NIDA-VERIFY", {"nin": NIN})
            clock.now += 3600 - 60 - 1
            client.request("NIDA-VERIFY", {"nin": NIN})
            assert client.token_fetches == 1
            clock.now += 2
            client.request("NIDA-VERIFY", {"nin": NIN})
            assert client.token_fetches == 2

    def test_refused_cached_token_is_replaced_once(self, fresh_bus: RunningBus) -> None:
        """When the bus stops accepting the cached token, the client fetches one more and the
        request succeeds."""
        with Client.from_credentials(fresh_bus.system("MOH-HMIS")) as client:
            client.request("NIDA-VERIFY", {"nin": NIN})
            # As after a restart with a new KIUNGO_TOKEN_SECRET: earlier tokens are invalid.
            tokens = TokenService(os.urandom(32), fresh_bus.bus.settings.token_ttl_seconds)
            fresh_bus.bus.engine.tokens = fresh_bus.bus.token_endpoint.tokens = tokens
            answer = client.request("NIDA-VERIFY", {"nin": NIN})
            assert answer.body["nin"] == NIN
            assert client.token_fetches == 2

    def test_reset_secret_makes_the_old_one_fail(self, fresh_bus: RunningBus) -> None:
        """After an operator resets the system's secret, a client holding the old secret gets
        TokenError (its cached token is revoked too); the new secret works."""
        system = fresh_bus.system("MOH-HMIS")
        with Client.from_credentials(system) as client:
            client.request("NIDA-VERIFY", {"nin": NIN})
            secret = fresh_bus.run(fresh_bus.bus.registry.reset_secret("op", "MOH-HMIS"))
            with pytest.raises(TokenError) as caught:
                client.request("NIDA-VERIFY", {"nin": NIN})
            assert caught.value.error == "invalid_client"
        with Client.from_credentials(with_(system, clientSecret=secret)) as client:
            assert client.request("NIDA-VERIFY", {"nin": NIN}).body["nin"] == NIN

    def test_disabled_system_fails_until_enabled_again(self, fresh_bus: RunningBus) -> None:
        """A disabled system's client gets TokenError; once re-enabled, the same client works."""
        registry = fresh_bus.bus.registry
        with Client.from_credentials(fresh_bus.system("MOH-HMIS")) as client:
            client.request("NIDA-VERIFY", {"nin": NIN})
            fresh_bus.run(registry.update_system("op", "MOH-HMIS", status="disabled"))
            with pytest.raises(TokenError):
                client.request("NIDA-VERIFY", {"nin": NIN})
            fresh_bus.run(registry.update_system("op", "MOH-HMIS", status="active"))
            assert client.request("NIDA-VERIFY", {"nin": NIN}).body["nin"] == NIN


# --- refusals after an operator's change --------------------------------------------------


class TestOperatorChanges:
    def test_misrouted_provider_is_a_provider_error(self, fresh_bus: RunningBus) -> None:
        """An API whose endpoint answers with another system's signature raises ProviderError
        (502) with the bus's explanation."""
        rita = fresh_bus.demo.provider_url("RITA-CRVS")
        registry = fresh_bus.bus.registry
        fresh_bus.run(registry.update_api("op", "NIDA-VERIFY", endpoint_url=rita + "/rita/birth"))
        client = Client.from_credentials(fresh_bus.system("MOH-HMIS"))
        with client, pytest.raises(ProviderError) as caught:
            client.request("NIDA-VERIFY", {"nin": NIN})
        assert caught.value.status == 502
        assert caught.value.code == "server.provider_bad_signature"
        assert "NIDA-IDS" in caught.value.message

    def test_disabled_api_is_api_disabled(self, fresh_bus: RunningBus) -> None:
        """Calling an API the operator disabled raises ApiDisabled (403), not NotGranted."""
        fresh_bus.run(fresh_bus.bus.registry.update_api("op", "NIDA-VERIFY", status="disabled"))
        client = Client.from_credentials(fresh_bus.system("MOH-HMIS"))
        with client, pytest.raises(ApiDisabled) as caught:
            client.request("NIDA-VERIFY", {"nin": NIN})
        assert caught.value.status == 403
        assert caught.value.code == "client.code_disabled"

    def test_rate_limited_api(self, fresh_bus: RunningBus) -> None:
        """Past an API's rate limit (one request per 1000 s here) the client gets RateLimited."""
        fresh_bus.run(fresh_bus.bus.registry.update_api("op", "NIDA-VERIFY", rate_limit=0.001))
        with Client.from_credentials(fresh_bus.system("MOH-HMIS")) as client:
            client.request("NIDA-VERIFY", {"nin": NIN})
            with pytest.raises(RateLimited) as caught:
                client.request("NIDA-VERIFY", {"nin": NIN})
        assert caught.value.status == 429
        assert caught.value.code == "client.rate_limited"


def test_oversized_request_is_invalid_request(tmp_path: Path) -> None:
    """A body beyond the bus's size limit raises InvalidRequest (413)."""
    bus = RunningBus(tmp_path, max_body_bytes=2048)
    try:
        client = Client.from_credentials(bus.system("MOH-HMIS"))
        with client, pytest.raises(InvalidRequest) as caught:
            client.request("NIDA-VERIFY", {"nin": NIN, "pad": "x" * 4096})
    finally:
        bus.close()
    assert caught.value.status == 413
    assert caught.value.code == "client.envelope_too_large"
