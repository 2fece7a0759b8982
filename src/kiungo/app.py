"""The composition root: builds the bus from settings, in a visible order.

Nothing is built at import. ``create_app()`` is the ASGI factory that ``kiungo serve``
(uvicorn, one or many workers) runs; ``Bus`` holds the built parts for the CLI and tests.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import text

from kiungo.auth.endpoint import TokenEndpoint
from kiungo.auth.operators import OperatorAccounts
from kiungo.auth.tokens import TokenService
from kiungo.config import Settings
from kiungo.db import is_sqlite, make_engine, migrate, sessionmaker
from kiungo.engine.http import EngineApp, Receive, Scope, Send
from kiungo.engine.limits import Limiter, LocalLimiter, RedisLimiter
from kiungo.engine.metrics import EngineMetrics
from kiungo.engine.outbound import Outbound
from kiungo.engine.pipeline import Engine
from kiungo.keystore import load_or_create
from kiungo.ledger.log import DatabaseExchangeLog, SqliteExchangeLog
from kiungo.protocol import Limits
from kiungo.registry.api import build_operator_api
from kiungo.registry.endpoints import EndpointPolicy
from kiungo.registry.service import RegistryService
from kiungo.registry.snapshot import RegistryCache

log = logging.getLogger("kiungo")


def _own_addresses(settings: Settings) -> set[tuple[str, int]]:
    hosts = ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::")  # noqa: S104 (addresses to refuse)
    own = {(h, settings.port) for h in hosts}
    own.add((settings.host, settings.port))
    public = urlsplit(settings.effective_public_url)
    if public.hostname:
        own.add((public.hostname, public.port or (443 if public.scheme == "https" else 80)))
    return own


def _listen_dsn(url: str) -> str | None:
    """asyncpg DSN for LISTEN/NOTIFY, from the SQLAlchemy URL (None for SQLite)."""
    if not url.startswith("postgresql"):
        return None
    return "postgresql://" + url.split("://", 1)[1]


class Bus:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # 1 the bus's own secrets
        self.secrets = load_or_create(
            settings.data_dir,
            token_secret=settings.token_secret,
            secret_pepper=settings.secret_pepper,
        )
        self.signer = self.secrets.signer
        # 2 persistence
        url = settings.effective_database_url
        self.db = make_engine(url)
        self.sessions = sessionmaker(self.db)
        # 3 registry: the service that changes it, the snapshot the hot path reads
        self.endpoints = EndpointPolicy(settings.provider_allowlist, _own_addresses(settings))
        self.registry = RegistryService(
            self.sessions,
            pepper=self.secrets.pepper,
            endpoints=self.endpoints,
            default_timeout_ms=settings.default_timeout_ms,
        )
        self.cache = RegistryCache(
            self.sessions,
            reload_seconds=settings.registry_reload_seconds,
            listen_dsn=_listen_dsn(url),
        )
        self.registry.on_change(self.cache.reload)
        # 4 authentication
        self.tokens = TokenService(self.secrets.token_key, settings.token_ttl_seconds)
        self.token_endpoint = TokenEndpoint(self.tokens, self.cache, self.secrets.pepper)
        self.operators = OperatorAccounts(self.sessions)
        # 5 the exchange: limits, outbound pool, message log, the pipeline
        self.limiter: Limiter = (
            RedisLimiter(settings.redis_url) if settings.redis_url else LocalLimiter()
        )
        self.outbound = Outbound(
            self.endpoints,
            max_answer_bytes=settings.max_body_bytes,
            client=settings.outbound_client,
        )
        self.exchange_log: DatabaseExchangeLog = (
            SqliteExchangeLog(self.db, self.db.url.database or "", settings.log_batch_max)
            if is_sqlite(url)
            else DatabaseExchangeLog(self.db, settings.log_batch_max)
        )
        self.engine = Engine(
            registry=self.cache,
            tokens=self.tokens,
            signer=self.signer,
            limiter=self.limiter,
            outbound=self.outbound,
            exchange_log=self.exchange_log,
            limits=Limits(settings.max_body_bytes, settings.max_depth, settings.max_keys),
            system_rate=settings.system_rate_limit,
            api_rate=settings.api_rate_limit,
        )
        # 6 HTTP: the bare engine app in front, the operator API behind it
        self.metrics = EngineMetrics()
        self.operator_api = build_operator_api(self)
        self.asgi = EngineApp(
            engine=self.engine,
            token_endpoint=self.token_endpoint,
            max_body=settings.max_body_bytes,
            health=self.readiness,
            metrics=self.metrics,
            fallback=self.operator_api,
        )
        self._started = False

    async def start(self) -> None:
        if is_sqlite(self.settings.effective_database_url):
            await migrate(self.db)
        else:
            await _migrate_once(self)
        await self.cache.start()
        await self.exchange_log.start()
        self._started = True

    async def stop(self) -> None:
        self._started = False
        await self.exchange_log.stop()
        await self.cache.stop()
        await self.outbound.close()
        await self.limiter.close()
        await self.db.dispose()

    async def readiness(self) -> tuple[int, dict[str, Any]]:
        checks: dict[str, str] = {"key": "ok", "registry": "ok"}
        try:
            async with self.db.connect() as conn:
                await conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception:
            checks["database"] = "unreachable"
        if self.cache.current.version < 0:
            checks["registry"] = "not loaded"
        if isinstance(self.limiter, RedisLimiter):
            try:
                await asyncio.wait_for(self.limiter.ping(), 2)
                checks["redis"] = "ok"
            except Exception:
                checks["redis"] = "unreachable"
        ready = self._started and all(v == "ok" for v in checks.values())
        return (200 if ready else 503), {"status": "ready" if ready else "not ready", **checks}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        await self.asgi(scope, receive, send)
        return None

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:
                    log.exception("kiungo could not start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _migrate_once(bus: Bus) -> None:
    """On PostgreSQL several processes may start together: one migrates at a time."""
    async with bus.db.connect() as lock:
        await lock.execute(text("SELECT pg_advisory_lock(7261001)"))
        try:
            await migrate(bus.db)
        finally:
            await lock.execute(text("SELECT pg_advisory_unlock(7261001)"))


def create_app(settings: Settings | None = None) -> Bus:
    """ASGI factory (``uvicorn --factory kiungo.app:create_app``)."""
    return Bus(settings or Settings())


def serve(settings: Settings, *, workers: int = 1, log_level: str = "info") -> None:
    """Run the bus under uvicorn (uvloop, httptools); with ``workers`` > 1 as that many
    processes sharing the listening socket. Workers read their settings from the
    environment, so the caller exports any option it was given as ``KIUNGO_*``."""
    import uvicorn

    if workers > 1 and is_sqlite(settings.effective_database_url):
        raise SystemExit(
            "several workers need PostgreSQL: set KIUNGO_DATABASE_URL=postgresql+asyncpg://..."
        )
    uvicorn.run(
        "kiungo.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_level=log_level,
        access_log=False,
        server_header=False,
        date_header=False,
    )
