"""The registry service and its snapshot, on SQLite and on PostgreSQL (the same tests)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select, text
from tests.services import postgres_database

from kiungo.db import make_engine, migrate, sessionmaker
from kiungo.protocol import InvalidKey, generate_private_key
from kiungo.registry.credentials import check_secret
from kiungo.registry.endpoints import EndpointPolicy
from kiungo.registry.errors import Conflict, EndpointNotAllowed, InvalidInput, NotFound
from kiungo.registry.models import System
from kiungo.registry.service import RegistryService
from kiungo.registry.snapshot import RegistryCache

PEPPER = b"p" * 32
ALLOW = ["127.0.0.1:9100-9199", "*.go.tz"]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}"
    else:
        with postgres_database() as url:
            yield url


class World:
    def __init__(self, url: str) -> None:
        self.url = url
        self.db = make_engine(url)
        self.sessions = sessionmaker(self.db)
        self.service = RegistryService(
            self.sessions, pepper=PEPPER, endpoints=EndpointPolicy(ALLOW, {("127.0.0.1", 8080)})
        )
        self.cache = RegistryCache(self.sessions, reload_seconds=60)
        self.service.on_change(self.cache.reload)

    async def onboard(self) -> dict[str, str]:
        s = self.service
        await s.create_institution(
            "op", code="NIDA", name_en="NIDA", name_sw="NIDA", category="authority"
        )
        await s.create_institution(
            "op", code="MOH", name_en="Health", name_sw="Afya", category="ministry"
        )
        provider_key, consumer_key = generate_private_key(), generate_private_key()
        await s.create_system(
            "op",
            code="NIDA-IDS",
            institution="NIDA",
            name="ids",
            public_key=provider_key.public_key.b64,
        )
        consumer, consumer_secret = await s.create_system(
            "op",
            code="MOH-HMIS",
            institution="MOH",
            name="hmis",
            public_key=consumer_key.public_key.b64,
        )
        await s.create_api(
            "op", code="NIDA-VERIFY", name="verify", provider="NIDA-IDS",
            endpoint_url="http://127.0.0.1:9101/verify",
        )  # fmt: skip
        return {"consumer_secret": consumer_secret, "client_id": consumer["client_id"]}


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    w = World(database_url)
    await migrate(w.db)
    await w.cache.start()
    yield w
    await w.cache.stop()
    await w.db.dispose()


class TestOnboarding:
    async def test_every_change_is_audited_with_actor_and_before_after(self, world: World) -> None:
        """Each registry change leaves an audit event naming who, what, before and after."""
        await world.onboard()
        await world.service.update_institution("alice", "MOH", name_en="Ministry of Health")
        events = await world.service.list_audit()
        latest = events[0]
        assert latest["actor"] == "alice"
        assert latest["action"] == "institution.update"
        assert latest["before"]["name_en"] == "Health"
        assert latest["after"]["name_en"] == "Ministry of Health"
        assert {e["action"] for e in events} >= {
            "institution.create",
            "system.create",
            "api.create",
        }

    async def test_client_secret_is_stored_only_as_a_keyed_hash(self, world: World) -> None:
        """The secret shown at creation is not in the database, only its keyed hash."""
        creds = await world.onboard()
        async with world.sessions() as s:
            row = (await s.execute(select(System).where(System.code == "MOH-HMIS"))).scalar_one()
            dump = str((await s.execute(text("SELECT * FROM systems"))).all())
        assert creds["consumer_secret"] not in dump
        assert check_secret(PEPPER, creds["consumer_secret"], row.secret_hash)
        assert "secret_hash" not in await world.service.get_system("MOH-HMIS")

    async def test_reset_secret_moves_the_secret_version(self, world: World) -> None:
        """Resetting a secret invalidates the old one and bumps the version tokens carry."""
        creds = await world.onboard()
        new = await world.service.reset_secret("op", "MOH-HMIS")
        entry = world.cache.current.by_code["MOH-HMIS"]
        assert entry.secret_version == 2
        assert check_secret(PEPPER, new, entry.secret_hash)
        assert not check_secret(PEPPER, creds["consumer_secret"], entry.secret_hash)

    async def test_duplicate_codes_conflict(self, world: World) -> None:
        """A second institution with the same code is refused as a conflict."""
        await world.onboard()
        with pytest.raises(Conflict, match="MOH"):
            await world.service.create_institution(
                "op", code="MOH", name_en="x", name_sw="x", category="ministry"
            )

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("code", "a b", "code"),
            ("category", "church", "category must be one of"),
            ("name_en", "", "name_en"),
        ],
    )
    async def test_bad_input_is_refused_precisely(
        self, world: World, field: str, value: str, message: str
    ) -> None:
        """Bad institution fields are refused with a message naming the field."""
        args = {"code": "TRA", "name_en": "TRA", "name_sw": "TRA", "category": "authority"}
        args[field] = value
        with pytest.raises(InvalidInput, match=message):
            await world.service.create_institution("op", **args)

    async def test_rsa_public_key_is_refused(self, world: World) -> None:
        """A system cannot register an RSA key: only secp256k1 and P-256 are accepted."""
        await world.onboard()
        rsa_pub = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        with pytest.raises(InvalidKey, match="RSA"):
            await world.service.add_key("op", "MOH-HMIS", rsa_pub.decode())

    @pytest.mark.parametrize(
        "url",
        ["http://169.254.169.254/latest/meta-data", "http://127.0.0.1:8080/api/v1/systems",
         "http://127.0.0.1:5432/", "http://10.0.0.5/x", "file:///etc/passwd"],
    )  # fmt: skip
    async def test_endpoints_outside_the_allow_list_are_refused(
        self, world: World, url: str
    ) -> None:
        """An API cannot point at link-local, the bus itself, or unlisted hosts."""
        await world.onboard()
        with pytest.raises(EndpointNotAllowed):
            await world.service.create_api(
                "op", code="EVIL", name="evil", provider="NIDA-IDS", endpoint_url=url
            )

    async def test_unknown_objects_are_not_found(self, world: World) -> None:
        """Operations on codes that do not exist say so."""
        with pytest.raises(NotFound, match="system GHOST"):
            await world.service.reset_secret("op", "GHOST")


class TestSnapshot:
    async def test_grant_workflow_reaches_the_snapshot(self, world: World) -> None:
        """A grant is usable only once approved, and not after it is revoked."""
        await world.onboard()
        grant = await world.service.request_grant(
            "moh-admin", consumer="MOH-HMIS", api="NIDA-VERIFY"
        )
        snap = world.cache.current
        consumer, api = snap.by_code["MOH-HMIS"], snap.apis["NIDA-VERIFY"]
        assert not snap.granted(consumer, api)
        await world.service.decide_grant("op", grant["id"], "approve")
        assert world.cache.current.granted(consumer, api)
        await world.service.decide_grant("op", grant["id"], "revoke")
        assert not world.cache.current.granted(consumer, api)
        with pytest.raises(Conflict, match="revoked"):
            await world.service.decide_grant("op", grant["id"], "approve")

    async def test_rotation_keeps_both_keys_valid_during_the_overlap(self, world: World) -> None:
        """After a rotation the old key verifies until the overlap ends, the new one from now."""
        await world.onboard()
        old = world.cache.current.by_code["MOH-HMIS"].keys_at(time.time())
        new_key = generate_private_key()
        await world.service.add_key(
            "op", "MOH-HMIS", new_key.public_key.b64, retire_others_after=timedelta(hours=1)
        )
        entry = world.cache.current.by_code["MOH-HMIS"]
        now = time.time()
        assert set(entry.keys_at(now)) == {*old, new_key.public_key}
        assert entry.keys_at(now + 7200) == [new_key.public_key]

    async def test_disabling_an_institution_disables_its_systems(self, world: World) -> None:
        """A disabled institution's systems are inactive in the snapshot, and so are its APIs."""
        await world.onboard()
        await world.service.update_institution("op", "NIDA", status="disabled")
        snap = world.cache.current
        assert not snap.by_code["NIDA-IDS"].active
        assert not snap.apis["NIDA-VERIFY"].active


async def test_a_change_in_one_process_reaches_another_over_notify() -> None:
    """On PostgreSQL, a second cache (another process) sees a change via LISTEN/NOTIFY."""
    with postgres_database() as url:
        writer, reader = World(url), World(url)
        await migrate(writer.db)
        dsn = "postgresql://" + url.split("://", 1)[1]
        listener = RegistryCache(reader.sessions, reload_seconds=30, listen_dsn=dsn)
        await listener.start()
        try:
            before = listener.current.version
            # The periodic reload is 30 s away: only NOTIFY can deliver this in time.
            await writer.service.create_institution(
                "op", code="TRA", name_en="TRA", name_sw="TRA", category="authority"
            )
            async with asyncio.timeout(5):
                while listener.current.version == before:
                    await asyncio.sleep(0.02)
            assert "TRA" not in listener.current.by_code  # institutions have no systems yet
            assert listener.current.version == await writer.service.version()
        finally:
            await listener.stop()
            for w in (writer, reader):
                await w.db.dispose()
