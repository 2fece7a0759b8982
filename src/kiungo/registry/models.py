"""The registry's tables: who is on the bus, what they offer, and who may call what.

Schema changes go through Alembic (``registry/migrations``); these classes are the source
the migrations are written from.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kiungo.db import Base, timestamp


class Category(StrEnum):
    MINISTRY = "ministry"
    AGENCY = "agency"
    DEPARTMENT = "department"
    REGION = "region"
    COUNCIL = "council"
    AUTHORITY = "authority"
    PARASTATAL = "parastatal"
    OTHER = "other"


class Status(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class GrantStatus(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    REVOKED = "revoked"


class ApiMode(StrEnum):
    SYNC = "sync"
    ASYNC = "async"


class Role(StrEnum):
    ADMIN = "admin"  # everything, including operators
    OPERATOR = "operator"  # registry changes
    VIEWER = "viewer"  # read only


class Institution(Base):
    __tablename__ = "institutions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name_en: Mapped[str] = mapped_column(String(200))
    name_sw: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=Status.ACTIVE)
    created_at: Mapped[datetime] = timestamp()
    updated_at: Mapped[datetime] = timestamp()
    systems: Mapped[list[System]] = relationship(back_populates="institution")


class System(Base):
    __tablename__ = "systems"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"))
    status: Mapped[str] = mapped_column(String(16), default=Status.ACTIVE)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    # Keyed hash (HMAC-SHA256 with the bus pepper) of a random secret: never the secret.
    secret_hash: Mapped[str] = mapped_column(String(128))
    # Bumped when the secret is reset, so tokens issued before are refused.
    secret_version: Mapped[int] = mapped_column(Integer, default=1)
    # Where the bus delivers pushes and asynchronous answers to this system.
    callback_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = timestamp()
    updated_at: Mapped[datetime] = timestamp()
    institution: Mapped[Institution] = relationship(back_populates="systems")
    keys: Mapped[list[SystemKey]] = relationship(back_populates="system")


class SystemKey(Base):
    """A system's public key; two may be valid at once while a key is rotated."""

    __tablename__ = "system_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    system_id: Mapped[int] = mapped_column(ForeignKey("systems.id"), index=True)
    public_key: Mapped[str] = mapped_column(Text)  # base64 DER SubjectPublicKeyInfo
    fingerprint: Mapped[str] = mapped_column(String(64))
    curve: Mapped[str] = mapped_column(String(16))
    valid_from: Mapped[datetime] = timestamp()
    valid_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = timestamp()
    system: Mapped[System] = relationship(back_populates="keys")
    __table_args__ = (UniqueConstraint("system_id", "fingerprint"),)


class Api(Base):
    __tablename__ = "apis"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    provider_system_id: Mapped[int] = mapped_column(ForeignKey("systems.id"), index=True)
    endpoint_url: Mapped[str] = mapped_column(String(500))
    format: Mapped[str] = mapped_column(String(8), default="json")
    mode: Mapped[str] = mapped_column(String(8), default=ApiMode.SYNC)
    timeout_ms: Mapped[int] = mapped_column(Integer, default=10_000)
    # Requests per second over all consumers; None: the bus default.
    rate_limit: Mapped[float | None] = mapped_column(nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=Status.ACTIVE)
    created_at: Mapped[datetime] = timestamp()
    updated_at: Mapped[datetime] = timestamp()


class PushTopic(Base):
    __tablename__ = "push_topics"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    publisher_system_id: Mapped[int] = mapped_column(ForeignKey("systems.id"), index=True)
    format: Mapped[str] = mapped_column(String(8), default="json")
    status: Mapped[str] = mapped_column(String(16), default=Status.ACTIVE)
    created_at: Mapped[datetime] = timestamp()
    updated_at: Mapped[datetime] = timestamp()


class Subscription(Base):
    __tablename__ = "subscriptions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    topic_id: Mapped[int] = mapped_column(ForeignKey("push_topics.id"), index=True)
    subscriber_system_id: Mapped[int] = mapped_column(ForeignKey("systems.id"), index=True)
    # None: the subscriber system's callback_url.
    endpoint_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=GrantStatus.REQUESTED)
    created_at: Mapped[datetime] = timestamp()
    updated_at: Mapped[datetime] = timestamp()
    __table_args__ = (UniqueConstraint("topic_id", "subscriber_system_id"),)


class Grant(Base):
    """A consumer system's access to an API: requested, then approved or rejected."""

    __tablename__ = "grants"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    consumer_system_id: Mapped[int] = mapped_column(ForeignKey("systems.id"), index=True)
    api_id: Mapped[int] = mapped_column(ForeignKey("apis.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=GrantStatus.REQUESTED)
    reason: Mapped[str] = mapped_column(Text, default="")
    requested_by: Mapped[str] = mapped_column(String(100))
    requested_at: Mapped[datetime] = timestamp()
    decided_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    __table_args__ = (UniqueConstraint("consumer_system_id", "api_id"),)


class Operator(Base):
    __tablename__ = "operators"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))  # argon2id
    role: Mapped[str] = mapped_column(String(16), default=Role.OPERATOR)
    status: Mapped[str] = mapped_column(String(16), default=Status.ACTIVE)
    created_at: Mapped[datetime] = timestamp()


class OperatorSession(Base):
    __tablename__ = "operator_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), index=True)
    expires_at: Mapped[datetime] = timestamp()
    created_at: Mapped[datetime] = timestamp()


class AuditEvent(Base):
    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = timestamp()
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(64))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    __table_args__ = (Index("ix_audit_events_at", "at"),)


class RegistryVersion(Base):
    """One row, bumped by every registry change; processes reload when it moves."""

    __tablename__ = "registry_version"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
