"""The in-memory registry snapshot the hot path reads, and the cache that keeps it fresh.

A snapshot is immutable: building it loads every table once, parses every public key
once, and indexes what the engine looks up per request (client id, system id, API code,
grant pairs). The cache swaps in a new snapshot when the registry version moves — at once
for changes made in this process, on PostgreSQL NOTIFY for changes made in another, and
by a periodic check as the safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kiungo.protocol import Format, PublicKey, load_public_key
from kiungo.registry.models import (
    Api,
    Grant,
    GrantStatus,
    Institution,
    PushTopic,
    RegistryVersion,
    Status,
    Subscription,
    System,
    SystemKey,
)
from kiungo.registry.service import NOTIFY_CHANNEL

log = logging.getLogger("kiungo.registry")


def _epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


@dataclass(frozen=True, slots=True)
class KeyEntry:
    key: PublicKey
    valid_from: float
    valid_until: float | None

    def valid_at(self, now: float) -> bool:
        return self.valid_from <= now and (self.valid_until is None or now < self.valid_until)


@dataclass(frozen=True, slots=True)
class SystemEntry:
    id: int
    code: str
    institution: str
    active: bool
    client_id: str
    secret_hash: str
    secret_version: int
    callback_url: str | None
    keys: tuple[KeyEntry, ...]

    def keys_at(self, now: float) -> list[PublicKey]:
        return [k.key for k in self.keys if k.valid_at(now)]


@dataclass(frozen=True, slots=True)
class ApiEntry:
    id: int
    code: str
    provider: SystemEntry
    endpoint_url: str
    format: Format
    asynchronous: bool
    timeout: float  # seconds
    rate_limit: float | None
    active: bool


@dataclass(frozen=True, slots=True)
class TopicEntry:
    id: int
    code: str
    publisher: SystemEntry
    format: Format
    active: bool
    subscribers: tuple[tuple[SystemEntry, str | None], ...]  # (system, endpoint override)


@dataclass(frozen=True, slots=True)
class Snapshot:
    version: int
    loaded_at: float
    by_client_id: dict[str, SystemEntry] = field(default_factory=dict)
    by_id: dict[int, SystemEntry] = field(default_factory=dict)
    by_code: dict[str, SystemEntry] = field(default_factory=dict)
    apis: dict[str, ApiEntry] = field(default_factory=dict)
    grants: frozenset[tuple[int, int]] = frozenset()  # (consumer system id, api id)
    topics: dict[str, TopicEntry] = field(default_factory=dict)

    def granted(self, consumer: SystemEntry, api: ApiEntry) -> bool:
        return (consumer.id, api.id) in self.grants


async def load_snapshot(session: AsyncSession, previous: Snapshot | None = None) -> Snapshot:
    version = (await session.execute(select(RegistryVersion.version))).scalar_one()
    institutions: dict[int, Institution] = {
        i.id: i for i in (await session.execute(select(Institution))).scalars()
    }
    # Parsing keys is the costly part: reuse the parsed keys of the previous snapshot.
    parsed: dict[str, PublicKey] = {}
    if previous is not None:
        for system in previous.by_id.values():
            for entry in system.keys:
                parsed[entry.key.b64] = entry.key
    keys_by_system: dict[int, list[KeyEntry]] = {}
    for row in (await session.execute(select(SystemKey).order_by(SystemKey.id))).scalars():
        key = parsed.get(row.public_key) or load_public_key(row.public_key)
        keys_by_system.setdefault(row.system_id, []).append(
            KeyEntry(key, _epoch(row.valid_from) or 0.0, _epoch(row.valid_until))
        )
    by_id: dict[int, SystemEntry] = {}
    for row in (await session.execute(select(System))).scalars():
        inst = institutions.get(row.institution_id)
        by_id[row.id] = SystemEntry(
            id=row.id,
            code=row.code,
            institution=inst.code if inst else "",
            active=row.status == Status.ACTIVE
            and inst is not None
            and inst.status == Status.ACTIVE,
            client_id=row.client_id,
            secret_hash=row.secret_hash,
            secret_version=row.secret_version,
            callback_url=row.callback_url,
            keys=tuple(keys_by_system.get(row.id, ())),
        )
    apis: dict[str, ApiEntry] = {}
    for row in (await session.execute(select(Api))).scalars():
        provider = by_id[row.provider_system_id]
        apis[row.code] = ApiEntry(
            id=row.id,
            code=row.code,
            provider=provider,
            endpoint_url=row.endpoint_url,
            format=Format(row.format),
            asynchronous=row.mode == "async",
            timeout=row.timeout_ms / 1000.0,
            rate_limit=row.rate_limit,
            active=row.status == Status.ACTIVE and provider.active,
        )
    grants = frozenset(
        (g.consumer_system_id, g.api_id)
        for g in (
            await session.execute(select(Grant).where(Grant.status == GrantStatus.APPROVED))
        ).scalars()
    )
    subs: dict[int, list[tuple[SystemEntry, str | None]]] = {}
    for sub in (
        await session.execute(
            select(Subscription).where(Subscription.status == GrantStatus.APPROVED)
        )
    ).scalars():
        subs.setdefault(sub.topic_id, []).append(
            (by_id[sub.subscriber_system_id], sub.endpoint_url)
        )
    topics = {}
    for row in (await session.execute(select(PushTopic))).scalars():
        publisher = by_id[row.publisher_system_id]
        topics[row.code] = TopicEntry(
            id=row.id,
            code=row.code,
            publisher=publisher,
            format=Format(row.format),
            active=row.status == Status.ACTIVE and publisher.active,
            subscribers=tuple(subs.get(row.id, ())),
        )
    return Snapshot(
        version=version,
        loaded_at=time.time(),
        by_client_id={s.client_id: s for s in by_id.values()},
        by_id=by_id,
        by_code={s.code: s for s in by_id.values()},
        apis=apis,
        grants=grants,
        topics=topics,
    )


class RegistryCache:
    """Holds the current snapshot; ``current`` is a plain attribute read per request."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        reload_seconds: float = 5.0,
        listen_dsn: str | None = None,
    ) -> None:
        self.sessions = sessions
        self.reload_seconds = reload_seconds
        self.listen_dsn = listen_dsn
        self.current = Snapshot(version=-1, loaded_at=0.0)
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[Any]] = []
        self._listener: Any = None

    async def reload(self, *, force: bool = False) -> Snapshot:
        async with self._lock, self.sessions() as session:
            if not force:
                version = (await session.execute(select(RegistryVersion.version))).scalar_one()
                if version == self.current.version:
                    return self.current
            self.current = await load_snapshot(session, self.current)
        log.info("registry snapshot loaded (version %d)", self.current.version)
        return self.current

    async def start(self) -> None:
        await self.reload(force=True)
        self._tasks.append(asyncio.create_task(self._poll(), name="registry-poll"))
        if self.listen_dsn:
            self._tasks.append(asyncio.create_task(self._listen(), name="registry-listen"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.reload_seconds)
            try:
                await self.reload()
            except Exception:  # the database may be briefly away; keep serving the last one
                log.exception("registry reload failed; serving version %d", self.current.version)

    async def _listen(self) -> None:
        """LISTEN for changes made by other processes; reconnect when the link drops."""
        import asyncpg

        changed = asyncio.Event()
        while True:
            try:
                self._listener = await asyncpg.connect(self.listen_dsn)
                await self._listener.add_listener(NOTIFY_CHANNEL, lambda *_: changed.set())
                await self.reload()  # catch up on what happened while not listening
                while not self._listener.is_closed():
                    try:
                        await asyncio.wait_for(changed.wait(), timeout=self.reload_seconds)
                    except TimeoutError:
                        continue
                    changed.clear()
                    await self.reload()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("registry LISTEN connection lost; retrying", exc_info=True)
            await asyncio.sleep(1.0)
