"""Operator accounts: people who run the bus. Passwords are hashed with argon2id; a login
gives an opaque session token (stored only as its SHA-256) for the operator API.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kiungo.db import utcnow
from kiungo.errors import ClientError
from kiungo.registry.errors import Conflict, InvalidInput
from kiungo.registry.models import AuditEvent, Operator, OperatorSession, Role, Status

SESSION_TTL = timedelta(hours=12)
_hasher = PasswordHasher()


class NotAuthenticated(ClientError):
    code = "client.not_authenticated"
    status = 401


class Forbidden(ClientError):
    code = "client.forbidden"
    status = 403


@dataclass(frozen=True, slots=True)
class OperatorIdentity:
    username: str
    role: Role

    def require(self, *roles: Role) -> None:
        if self.role not in roles:
            raise Forbidden(f"this needs the role {' or '.join(r.value for r in roles)}")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class OperatorAccounts:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def create(self, actor: str, username: str, password: str, role: str) -> None:
        if role not in {r.value for r in Role}:
            raise InvalidInput(f"role must be one of {', '.join(r.value for r in Role)}")
        if not username or len(username) > 100 or not username.isprintable():
            raise InvalidInput("username must be 1-100 printable characters")
        if len(password) < 12:
            raise InvalidInput("password must be at least 12 characters")
        password_hash = await asyncio.to_thread(_hasher.hash, password)
        async with self.sessions() as s:
            s.add(
                Operator(
                    username=username,
                    password_hash=password_hash,
                    role=role,
                    status=Status.ACTIVE,
                    created_at=utcnow(),
                )
            )
            s.add(
                AuditEvent(
                    at=utcnow(), actor=actor, action="operator.create", object_type="operator",
                    object_id=username, before=None, after={"username": username, "role": role},
                )
            )  # fmt: skip
            try:
                await s.commit()
            except IntegrityError:
                raise Conflict(f"operator {username} already exists") from None

    async def login(self, username: str, password: str) -> tuple[str, OperatorIdentity]:
        async with self.sessions() as s:
            op = (
                await s.execute(select(Operator).where(Operator.username == username))
            ).scalar_one_or_none()
            stored = op.password_hash if op is not None else _dummy_hash()
            try:
                ok = await asyncio.to_thread(_hasher.verify, stored, password)
            except (VerificationError, InvalidHashError):
                ok = False
            if not ok or op is None or op.status != Status.ACTIVE:
                raise NotAuthenticated("wrong username or password")
            token = secrets.token_urlsafe(32)
            now = utcnow()
            await s.execute(delete(OperatorSession).where(OperatorSession.expires_at < now))
            s.add(
                OperatorSession(
                    token_hash=_token_hash(token),
                    operator_id=op.id,
                    expires_at=now + SESSION_TTL,
                    created_at=now,
                )
            )
            s.add(
                AuditEvent(
                    at=now, actor=username, action="operator.login", object_type="operator",
                    object_id=username, before=None, after=None,
                )
            )  # fmt: skip
            await s.commit()
            return token, OperatorIdentity(op.username, Role(op.role))

    async def authenticate(self, token: str) -> OperatorIdentity:
        if not token:
            raise NotAuthenticated("missing operator token")
        async with self.sessions() as s:
            row = (
                await s.execute(
                    select(Operator, OperatorSession.expires_at)
                    .join(OperatorSession, OperatorSession.operator_id == Operator.id)
                    .where(OperatorSession.token_hash == _token_hash(token))
                )
            ).one_or_none()
        if row is None:
            raise NotAuthenticated("operator token is not valid")
        op, expires = row
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        if expires <= utcnow() or op.status != Status.ACTIVE:
            raise NotAuthenticated("operator session has expired")
        return OperatorIdentity(op.username, Role(op.role))

    async def logout(self, token: str) -> None:
        async with self.sessions() as s:
            await s.execute(
                delete(OperatorSession).where(OperatorSession.token_hash == _token_hash(token))
            )
            await s.commit()


@functools.cache
def _dummy_hash() -> str:
    """Verifying against it keeps a wrong username as slow as a wrong password."""
    return _hasher.hash(secrets.token_urlsafe(16))
