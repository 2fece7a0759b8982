"""The registry's operations: onboarding, keys, secrets, APIs, topics and the grant workflow.

Every change runs in one transaction that also writes an audit event (who, what, when,
before and after) and bumps the registry version, so every engine process reloads its
snapshot (PostgreSQL NOTIFY at commit; a periodic check as the safety net).
Objects are returned as plain dicts, never with a secret hash in them.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kiungo.db import utcnow
from kiungo.protocol import Format, load_public_key
from kiungo.registry.credentials import hash_secret, new_client_id, new_client_secret
from kiungo.registry.endpoints import EndpointPolicy
from kiungo.registry.errors import Conflict, InvalidInput, NotFound
from kiungo.registry.models import (
    Api,
    ApiMode,
    AuditEvent,
    Category,
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

NOTIFY_CHANNEL = "kiungo_registry"
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{1,63}")
_HIDDEN = {"secret_hash"}

Listener = Callable[[], Awaitable[None] | None]


def as_dict(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column in obj.__table__.columns:
        if column.key in _HIDDEN:
            continue
        value = getattr(obj, column.key)
        out[column.key] = value.isoformat() if isinstance(value, datetime) else value
    return out


def _check_code(kind: str, code: str) -> str:
    if not isinstance(code, str) or not _CODE.fullmatch(code):
        raise InvalidInput(f"{kind} code {code!r} must be 2-64 letters, digits, '_', '.' or '-'")
    return code


def _check_choice(kind: str, value: str, allowed: type) -> str:
    choices = [m.value for m in allowed]  # type: ignore[attr-defined]
    if value not in choices:
        raise InvalidInput(f"{kind} must be one of {', '.join(choices)}; got {value!r}")
    return value


def _check_text(kind: str, value: str, max_len: int = 200) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise InvalidInput(f"{kind} must be 1-{max_len} characters")
    return value.strip()


class RegistryService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        pepper: bytes,
        endpoints: EndpointPolicy,
        default_timeout_ms: int = 10_000,
    ) -> None:
        self.sessions = sessions
        self.pepper = pepper
        self.endpoints = endpoints
        self.default_timeout_ms = default_timeout_ms
        self._listeners: list[Listener] = []

    def on_change(self, listener: Listener) -> None:
        """Call ``listener`` after every committed change made through this service."""
        self._listeners.append(listener)

    # --- plumbing ------------------------------------------------------------------------

    async def _commit_change(
        self,
        session: AsyncSession,
        actor: str,
        action: str,
        obj_type: str,
        obj_id: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> None:
        session.add(
            AuditEvent(
                at=utcnow(),
                actor=actor,
                action=action,
                object_type=obj_type,
                object_id=obj_id,
                before=before,
                after=after,
            )
        )
        await session.execute(
            update(RegistryVersion)
            .where(RegistryVersion.id == 1)
            .values(version=RegistryVersion.version + 1)
        )
        if session.bind.dialect.name == "postgresql":  # type: ignore[union-attr]
            await session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
        try:
            await session.commit()
        except IntegrityError as exc:
            await session.rollback()
            raise Conflict(f"{obj_type} {obj_id} conflicts with an existing one") from exc
        for listener in self._listeners:
            result = listener()
            if result is not None:
                await result

    async def _one(self, session: AsyncSession, query: Select, what: str) -> Any:
        obj = (await session.execute(query)).scalar_one_or_none()
        if obj is None:
            raise NotFound(f"{what} not found")
        return obj

    async def _institution(self, s: AsyncSession, code: str) -> Institution:
        return await self._one(
            s, select(Institution).where(Institution.code == code), f"institution {code}"
        )

    async def _system(self, s: AsyncSession, code: str) -> System:
        return await self._one(s, select(System).where(System.code == code), f"system {code}")

    async def _api(self, s: AsyncSession, code: str) -> Api:
        return await self._one(s, select(Api).where(Api.code == code), f"API {code}")

    async def _topic(self, s: AsyncSession, code: str) -> PushTopic:
        return await self._one(
            s, select(PushTopic).where(PushTopic.code == code), f"push topic {code}"
        )

    async def version(self) -> int:
        async with self.sessions() as s:
            return (await s.execute(select(RegistryVersion.version))).scalar_one()

    # --- institutions --------------------------------------------------------------------

    async def create_institution(
        self, actor: str, *, code: str, name_en: str, name_sw: str, category: str
    ) -> dict[str, Any]:
        now = utcnow()
        inst = Institution(
            code=_check_code("institution", code),
            name_en=_check_text("name_en", name_en),
            name_sw=_check_text("name_sw", name_sw),
            category=_check_choice("category", category, Category),
            status=Status.ACTIVE,
            created_at=now,
            updated_at=now,
        )
        async with self.sessions() as s:
            s.add(inst)
            await self._flush(s, "institution", code)
            after = as_dict(inst)
            await self._commit_change(
                s, actor, "institution.create", "institution", code, None, after
            )
        return after

    async def update_institution(self, actor: str, code: str, **changes: Any) -> dict[str, Any]:
        allowed = {"name_en", "name_sw", "category", "status"}
        self._only(changes, allowed)
        async with self.sessions() as s:
            inst = await self._institution(s, code)
            before = as_dict(inst)
            for key, value in changes.items():
                if key == "category":
                    value = _check_choice("category", value, Category)
                elif key == "status":
                    value = _check_choice("status", value, Status)
                else:
                    value = _check_text(key, value)
                setattr(inst, key, value)
            inst.updated_at = utcnow()
            after = as_dict(inst)
            await self._commit_change(
                s, actor, "institution.update", "institution", code, before, after
            )
        return after

    async def list_institutions(self) -> list[dict[str, Any]]:
        async with self.sessions() as s:
            rows = (await s.execute(select(Institution).order_by(Institution.code))).scalars()
            return [as_dict(r) for r in rows]

    async def get_institution(self, code: str) -> dict[str, Any]:
        async with self.sessions() as s:
            return as_dict(await self._institution(s, code))

    # --- systems -------------------------------------------------------------------------

    async def create_system(
        self,
        actor: str,
        *,
        code: str,
        institution: str,
        name: str,
        public_key: str | None = None,
        callback_url: str | None = None,
    ) -> tuple[dict[str, Any], str]:
        """Create a system; returns it and its client secret, which is shown only now."""
        now = utcnow()
        secret = new_client_secret()
        if callback_url:
            self.endpoints.check_url(callback_url)
        async with self.sessions() as s:
            inst = await self._institution(s, institution)
            system = System(
                code=_check_code("system", code),
                name=_check_text("name", name),
                institution_id=inst.id,
                status=Status.ACTIVE,
                client_id=new_client_id(),
                secret_hash=hash_secret(self.pepper, secret),
                secret_version=1,
                callback_url=callback_url or None,
                created_at=now,
                updated_at=now,
            )
            s.add(system)
            await self._flush(s, "system", code)
            if public_key:
                s.add(self._key_row(system.id, public_key, now, None))
            after = as_dict(system) | {"institution": institution}
            await self._commit_change(s, actor, "system.create", "system", code, None, after)
        return after, secret

    async def update_system(self, actor: str, code: str, **changes: Any) -> dict[str, Any]:
        self._only(changes, {"name", "status", "callback_url"})
        async with self.sessions() as s:
            system = await self._system(s, code)
            before = as_dict(system)
            if "name" in changes:
                system.name = _check_text("name", changes["name"])
            if "status" in changes:
                system.status = _check_choice("status", changes["status"], Status)
            if "callback_url" in changes:
                url = changes["callback_url"] or None
                if url:
                    self.endpoints.check_url(url)
                system.callback_url = url
            system.updated_at = utcnow()
            after = as_dict(system)
            await self._commit_change(s, actor, "system.update", "system", code, before, after)
        return after

    async def reset_secret(self, actor: str, code: str) -> str:
        """A new client secret (shown once); tokens issued with the old one stop working."""
        secret = new_client_secret()
        async with self.sessions() as s:
            system = await self._system(s, code)
            before = {"secret_version": system.secret_version}
            system.secret_hash = hash_secret(self.pepper, secret)
            system.secret_version += 1
            system.updated_at = utcnow()
            after = {"secret_version": system.secret_version}
            await self._commit_change(
                s, actor, "system.reset_secret", "system", code, before, after
            )
        return secret

    def _key_row(
        self, system_id: int, material: str, valid_from: datetime, valid_until: datetime | None
    ) -> SystemKey:
        key = load_public_key(material)  # refuses RSA, other curves, bad points, garbage
        return SystemKey(
            system_id=system_id,
            public_key=key.b64,
            fingerprint=key.fingerprint,
            curve=key.curve.value,
            valid_from=valid_from,
            valid_until=valid_until,
            created_at=utcnow(),
        )

    async def add_key(
        self,
        actor: str,
        code: str,
        public_key: str,
        *,
        retire_others_after: timedelta | None = None,
    ) -> dict[str, Any]:
        """Register a public key. With ``retire_others_after`` this is a rotation: the
        system's other keys stay valid for that overlap, then expire."""
        now = utcnow()
        async with self.sessions() as s:
            system = await self._system(s, code)
            row = self._key_row(system.id, public_key, now, None)
            retired = []
            if retire_others_after is not None:
                until = now + retire_others_after
                keys = await s.execute(select(SystemKey).where(SystemKey.system_id == system.id))
                for old in keys.scalars():
                    if old.valid_until is None or _aware(old.valid_until) > until:
                        old.valid_until = until
                        retired.append(old.fingerprint)
            s.add(row)
            await self._flush(s, "key", row.fingerprint)
            after = as_dict(row) | {"system": code, "retiring": retired}
            action = "system.rotate_key" if retire_others_after is not None else "system.add_key"
            await self._commit_change(s, actor, action, "system", code, None, after)
        return after

    async def revoke_key(self, actor: str, code: str, fingerprint: str) -> dict[str, Any]:
        async with self.sessions() as s:
            system = await self._system(s, code)
            row = await self._one(
                s,
                select(SystemKey).where(
                    SystemKey.system_id == system.id, SystemKey.fingerprint == fingerprint
                ),
                f"key {fingerprint} of system {code}",
            )
            before = as_dict(row)
            row.valid_until = utcnow()
            after = as_dict(row)
            await self._commit_change(s, actor, "system.revoke_key", "system", code, before, after)
        return after

    async def list_systems(self, institution: str | None = None) -> list[dict[str, Any]]:
        async with self.sessions() as s:
            query = select(System, Institution.code).join(Institution).order_by(System.code)
            if institution:
                query = query.where(Institution.code == institution)
            return [as_dict(sys) | {"institution": inst} for sys, inst in await s.execute(query)]

    async def get_system(self, code: str) -> dict[str, Any]:
        async with self.sessions() as s:
            system = await self._system(s, code)
            inst = await s.get(Institution, system.institution_id)
            keys = await s.execute(
                select(SystemKey).where(SystemKey.system_id == system.id).order_by(SystemKey.id)
            )
            return as_dict(system) | {
                "institution": inst.code if inst else None,
                "keys": [as_dict(k) for k in keys.scalars()],
            }

    # --- APIs ----------------------------------------------------------------------------

    async def create_api(
        self,
        actor: str,
        *,
        code: str,
        name: str,
        provider: str,
        endpoint_url: str,
        format: str = "json",
        mode: str = "sync",
        timeout_ms: int | None = None,
        rate_limit: float | None = None,
        description: str = "",
    ) -> dict[str, Any]:
        self.endpoints.check_url(endpoint_url)
        now = utcnow()
        async with self.sessions() as s:
            system = await self._system(s, provider)
            api = Api(
                code=_check_code("API", code),
                name=_check_text("name", name),
                description=description or "",
                provider_system_id=system.id,
                endpoint_url=endpoint_url,
                format=_check_choice("format", format, Format),
                mode=_check_choice("mode", mode, ApiMode),
                timeout_ms=self._timeout(timeout_ms),
                rate_limit=self._rate(rate_limit),
                status=Status.ACTIVE,
                created_at=now,
                updated_at=now,
            )
            s.add(api)
            await self._flush(s, "API", code)
            after = as_dict(api) | {"provider": provider}
            await self._commit_change(s, actor, "api.create", "api", code, None, after)
        return after

    async def update_api(self, actor: str, code: str, **changes: Any) -> dict[str, Any]:
        self._only(
            changes,
            {"name", "description", "endpoint_url", "format", "mode", "timeout_ms",
             "rate_limit", "status"},
        )  # fmt: skip
        async with self.sessions() as s:
            api = await self._api(s, code)
            before = as_dict(api)
            for key, value in changes.items():
                if key == "endpoint_url":
                    self.endpoints.check_url(value)
                elif key == "format":
                    _check_choice("format", value, Format)
                elif key == "mode":
                    _check_choice("mode", value, ApiMode)
                elif key == "status":
                    _check_choice("status", value, Status)
                elif key == "timeout_ms":
                    value = self._timeout(value)
                elif key == "rate_limit":
                    value = self._rate(value)
                elif key == "name":
                    value = _check_text("name", value)
                setattr(api, key, value)
            api.updated_at = utcnow()
            after = as_dict(api)
            await self._commit_change(s, actor, "api.update", "api", code, before, after)
        return after

    async def list_apis(self) -> list[dict[str, Any]]:
        async with self.sessions() as s:
            query = select(Api, System.code).join(System).order_by(Api.code)
            return [as_dict(api) | {"provider": sys} for api, sys in await s.execute(query)]

    async def get_api(self, code: str) -> dict[str, Any]:
        async with self.sessions() as s:
            api = await self._api(s, code)
            provider = await s.get(System, api.provider_system_id)
            return as_dict(api) | {"provider": provider.code if provider else None}

    def _timeout(self, value: int | None) -> int:
        if value is None:
            return self.default_timeout_ms
        if not isinstance(value, int) or not 50 <= value <= 300_000:
            raise InvalidInput("timeout_ms must be an integer from 50 to 300000")
        return value

    @staticmethod
    def _rate(value: float | None) -> float | None:
        if value is not None and (not isinstance(value, int | float) or value < 0):
            raise InvalidInput("rate_limit must be a non-negative number of requests per second")
        return value

    # --- grants --------------------------------------------------------------------------

    async def request_grant(
        self, actor: str, *, consumer: str, api: str, reason: str = ""
    ) -> dict[str, Any]:
        async with self.sessions() as s:
            system = await self._system(s, consumer)
            api_row = await self._api(s, api)
            grant = (
                await s.execute(
                    select(Grant).where(
                        Grant.consumer_system_id == system.id, Grant.api_id == api_row.id
                    )
                )
            ).scalar_one_or_none()
            before = None
            if grant is not None:
                if grant.status in (GrantStatus.REQUESTED, GrantStatus.APPROVED):
                    raise Conflict(f"{consumer} already has a {grant.status} grant for {api}")
                before = as_dict(grant)
                grant.status = GrantStatus.REQUESTED
                grant.decided_by = grant.decided_at = None
                grant.requested_by, grant.requested_at, grant.reason = actor, utcnow(), reason
            else:
                grant = Grant(
                    consumer_system_id=system.id,
                    api_id=api_row.id,
                    status=GrantStatus.REQUESTED,
                    reason=reason or "",
                    requested_by=actor,
                    requested_at=utcnow(),
                )
                s.add(grant)
                await self._flush(s, "grant", f"{consumer}->{api}")
            after = as_dict(grant) | {"consumer": consumer, "api": api}
            await self._commit_change(
                s, actor, "grant.request", "grant", str(grant.id), before, after
            )
        return after

    async def decide_grant(self, actor: str, grant_id: int, decision: str) -> dict[str, Any]:
        """approve or reject a requested grant; revoke an approved one."""
        moves = {
            "approve": ({GrantStatus.REQUESTED}, GrantStatus.APPROVED),
            "reject": ({GrantStatus.REQUESTED}, GrantStatus.REJECTED),
            "revoke": ({GrantStatus.APPROVED, GrantStatus.REQUESTED}, GrantStatus.REVOKED),
        }
        if decision not in moves:
            raise InvalidInput(f"decision must be one of {', '.join(moves)}")
        allowed_from, to = moves[decision]
        async with self.sessions() as s:
            grant = await self._one(
                s, select(Grant).where(Grant.id == grant_id), f"grant {grant_id}"
            )
            if grant.status not in allowed_from:
                raise Conflict(f"grant {grant_id} is {grant.status}; cannot {decision} it")
            before = as_dict(grant)
            grant.status = to
            grant.decided_by, grant.decided_at = actor, utcnow()
            after = as_dict(grant)
            await self._commit_change(
                s, actor, f"grant.{decision}", "grant", str(grant_id), before, after
            )
        return after

    async def list_grants(
        self, *, status: str | None = None, api: str | None = None, consumer: str | None = None
    ) -> list[dict[str, Any]]:
        async with self.sessions() as s:
            query = (
                select(Grant, System.code, Api.code)
                .join(System, System.id == Grant.consumer_system_id)
                .join(Api, Api.id == Grant.api_id)
                .order_by(Grant.id)
            )
            if status:
                query = query.where(Grant.status == status)
            if api:
                query = query.where(Api.code == api)
            if consumer:
                query = query.where(System.code == consumer)
            return [as_dict(g) | {"consumer": c, "api": a} for g, c, a in await s.execute(query)]

    async def get_grant(self, grant_id: int) -> dict[str, Any]:
        async with self.sessions() as s:
            row = (
                await s.execute(
                    select(Grant, System.code, Api.code)
                    .join(System, System.id == Grant.consumer_system_id)
                    .join(Api, Api.id == Grant.api_id)
                    .where(Grant.id == grant_id)
                )
            ).one_or_none()
            if row is None:
                raise NotFound(f"grant {grant_id} not found")
            grant, consumer, api = row
            return as_dict(grant) | {"consumer": consumer, "api": api}

    # --- push topics and subscriptions (used by delivery) ---------------------------------

    async def create_topic(
        self, actor: str, *, code: str, name: str, publisher: str, format: str = "json",
        description: str = "",
    ) -> dict[str, Any]:  # fmt: skip
        now = utcnow()
        async with self.sessions() as s:
            system = await self._system(s, publisher)
            topic = PushTopic(
                code=_check_code("push topic", code),
                name=_check_text("name", name),
                description=description or "",
                publisher_system_id=system.id,
                format=_check_choice("format", format, Format),
                status=Status.ACTIVE,
                created_at=now,
                updated_at=now,
            )
            s.add(topic)
            await self._flush(s, "push topic", code)
            after = as_dict(topic) | {"publisher": publisher}
            await self._commit_change(s, actor, "topic.create", "topic", code, None, after)
        return after

    async def subscribe(
        self, actor: str, *, topic: str, subscriber: str, endpoint_url: str | None = None,
        approved: bool = False,
    ) -> dict[str, Any]:  # fmt: skip
        if endpoint_url:
            self.endpoints.check_url(endpoint_url)
        now = utcnow()
        async with self.sessions() as s:
            topic_row = await self._topic(s, topic)
            system = await self._system(s, subscriber)
            sub = Subscription(
                topic_id=topic_row.id,
                subscriber_system_id=system.id,
                endpoint_url=endpoint_url or None,
                status=GrantStatus.APPROVED if approved else GrantStatus.REQUESTED,
                created_at=now,
                updated_at=now,
            )
            s.add(sub)
            await self._flush(s, "subscription", f"{subscriber}->{topic}")
            after = as_dict(sub) | {"topic": topic, "subscriber": subscriber}
            await self._commit_change(
                s, actor, "subscription.create", "subscription", str(sub.id), None, after
            )
        return after

    async def list_topics(self) -> list[dict[str, Any]]:
        async with self.sessions() as s:
            query = select(PushTopic, System.code).join(System).order_by(PushTopic.code)
            return [as_dict(t) | {"publisher": p} for t, p in await s.execute(query)]

    async def get_topic(self, code: str) -> dict[str, Any]:
        async with self.sessions() as s:
            topic = await self._topic(s, code)
            publisher = await s.get(System, topic.publisher_system_id)
            return as_dict(topic) | {"publisher": publisher.code if publisher else None}

    async def update_topic(self, actor: str, code: str, **changes: Any) -> dict[str, Any]:
        self._only(changes, {"name", "description", "format", "status"})
        async with self.sessions() as s:
            topic = await self._topic(s, code)
            before = as_dict(topic)
            for key, value in changes.items():
                if key == "name":
                    value = _check_text("name", value)
                elif key == "format":
                    value = _check_choice("format", value, Format)
                elif key == "status":
                    value = _check_choice("status", value, Status)
                else:
                    value = value or ""
                setattr(topic, key, value)
            topic.updated_at = utcnow()
            after = as_dict(topic)
            await self._commit_change(s, actor, "topic.update", "topic", code, before, after)
        return after

    async def list_subscriptions(
        self,
        *,
        topic: str | None = None,
        subscriber: str | None = None,
        status: str | None = None,
    ) -> list[dict[str, Any]]:
        async with self.sessions() as s:
            query = self._subscription_query().order_by(Subscription.id)
            if topic:
                query = query.where(PushTopic.code == topic)
            if subscriber:
                query = query.where(System.code == subscriber)
            if status:
                query = query.where(Subscription.status == status)
            return [
                as_dict(sub) | {"topic": t, "subscriber": c} for sub, t, c in await s.execute(query)
            ]

    async def get_subscription(self, subscription_id: int) -> dict[str, Any]:
        async with self.sessions() as s:
            row = (
                await s.execute(
                    self._subscription_query().where(Subscription.id == subscription_id)
                )
            ).one_or_none()
            if row is None:
                raise NotFound(f"subscription {subscription_id} not found")
            sub, topic, subscriber = row
            return as_dict(sub) | {"topic": topic, "subscriber": subscriber}

    @staticmethod
    def _subscription_query() -> Select:
        return (
            select(Subscription, PushTopic.code, System.code)
            .join(PushTopic, PushTopic.id == Subscription.topic_id)
            .join(System, System.id == Subscription.subscriber_system_id)
        )

    async def decide_subscription(
        self, actor: str, subscription_id: int, decision: str
    ) -> dict[str, Any]:
        """approve or reject a requested subscription; revoke an approved one."""
        moves = {
            "approve": ({GrantStatus.REQUESTED}, GrantStatus.APPROVED),
            "reject": ({GrantStatus.REQUESTED}, GrantStatus.REJECTED),
            "revoke": ({GrantStatus.APPROVED, GrantStatus.REQUESTED}, GrantStatus.REVOKED),
        }
        if decision not in moves:
            raise InvalidInput(f"decision must be one of {', '.join(moves)}")
        allowed_from, to = moves[decision]
        async with self.sessions() as s:
            sub = await self._one(
                s,
                select(Subscription).where(Subscription.id == subscription_id),
                f"subscription {subscription_id}",
            )
            if sub.status not in allowed_from:
                raise Conflict(
                    f"subscription {subscription_id} is {sub.status}; cannot {decision} it"
                )
            before = as_dict(sub)
            sub.status = to
            sub.updated_at = utcnow()
            after = as_dict(sub)
            await self._commit_change(
                s, actor, f"subscription.{decision}", "subscription", str(subscription_id),
                before, after,
            )  # fmt: skip
        return after

    # --- audit ---------------------------------------------------------------------------

    async def list_audit(self, limit: int = 100) -> list[dict[str, Any]]:
        async with self.sessions() as s:
            rows = await s.execute(
                select(AuditEvent).order_by(AuditEvent.id.desc()).limit(max(1, min(limit, 1000)))
            )
            return [as_dict(r) for r in rows.scalars()]

    # --- helpers -------------------------------------------------------------------------

    @staticmethod
    def _only(changes: dict[str, Any], allowed: set[str]) -> None:
        unknown = set(changes) - allowed
        if unknown:
            raise InvalidInput(f"cannot change {', '.join(sorted(unknown))}")
        if not changes:
            raise InvalidInput("nothing to change")

    @staticmethod
    async def _flush(session: AsyncSession, kind: str, code: str) -> None:
        try:
            await session.flush()
        except IntegrityError:
            await session.rollback()
            raise Conflict(f"{kind} {code} already exists") from None


def _aware(value: datetime) -> datetime:
    """SQLite returns naive datetimes for timezone-aware columns: they are UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)
