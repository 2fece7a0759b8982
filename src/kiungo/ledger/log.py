"""Step 9: the record of each exchange, appended with group commit.

``ExchangeLog`` is the one interface the engine writes through; the message-log work
extends the database implementation with a hash chain and evidence export. Appends from
concurrent requests are gathered into one transaction (one fsync for many rows), and each
``append`` returns only once its row is committed, so an answered request is in the log.
If the log cannot be written the exchange fails: no answer leaves unlogged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kiungo.errors import ServerError
from kiungo.ledger.models import Exchange

log = logging.getLogger("kiungo.ledger")


class LogUnavailable(ServerError):
    code = "server.log_unavailable"
    status = 503


@dataclass(slots=True)
class ExchangeRecord:
    request_id: str
    at: datetime
    kind: str
    consumer_system: str | None
    provider_system: str | None
    code: str | None
    success: bool
    http_status: int
    error_code: str | None
    latency_us: int
    request_bytes: int
    response_bytes: int
    request_digest: str | None
    response_digest: str | None


class ExchangeLog(Protocol):
    async def append(self, record: ExchangeRecord) -> None: ...

    async def recent(self, limit: int = 50, system: str | None = None) -> list[dict[str, Any]]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class DatabaseExchangeLog:
    """Group commit into the ``exchanges`` table."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], batch_max: int = 256) -> None:
        self.sessions = sessions
        self.batch_max = batch_max
        self._queue: asyncio.Queue[tuple[ExchangeRecord, asyncio.Future[None]]] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._writer(), name="exchange-log")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        # Whatever is still queued is written before the process goes.
        if self._queue is not None and not self._queue.empty():
            await self._flush(self._drain())

    async def append(self, record: ExchangeRecord) -> None:
        if self._queue is None or self._task is None or self._task.done():
            raise LogUnavailable("the message log is not running")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((record, done))
        await done

    def _drain(self) -> list[tuple[ExchangeRecord, asyncio.Future[None]]]:
        assert self._queue is not None
        batch = []
        while not self._queue.empty() and len(batch) < self.batch_max:
            batch.append(self._queue.get_nowait())
        return batch

    async def _writer(self) -> None:
        assert self._queue is not None
        while True:
            first = await self._queue.get()
            batch = [first, *self._drain()]
            await self._flush(batch)

    async def _flush(self, batch: list[tuple[ExchangeRecord, asyncio.Future[None]]]) -> None:
        try:
            async with self.sessions() as session:
                await session.execute(insert(Exchange), [asdict(r) for r, _ in batch])
                await session.commit()
        except Exception:
            log.exception("could not write %d exchange records", len(batch))
            for _, done in batch:
                if not done.done():
                    done.set_exception(LogUnavailable("the message log could not be written"))
            return
        for _, done in batch:
            if not done.done():
                done.set_result(None)

    async def recent(self, limit: int = 50, system: str | None = None) -> list[dict[str, Any]]:
        async with self.sessions() as session:
            query = select(Exchange).order_by(Exchange.at.desc()).limit(max(1, min(limit, 1000)))
            if system:
                query = query.where(
                    (Exchange.consumer_system == system) | (Exchange.provider_system == system)
                )
            rows = (await session.execute(query)).scalars()
            return [{c.key: getattr(r, c.key) for c in Exchange.__table__.columns} for r in rows]
