"""The exchange record written at step 9 of every exchange.

The message log (hash chain, checkpoints, evidence export) extends this record; the
engine writes it through :class:`kiungo.ledger.log.ExchangeLog` only.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from kiungo.db import Base, timestamp


class Exchange(Base):
    """One exchange through the bus (step 9); the message log extends this record."""

    __tablename__ = "exchanges"
    request_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    at: Mapped[datetime] = timestamp()
    kind: Mapped[str] = mapped_column(String(16))  # request, nida, push, async
    consumer_system: Mapped[str | None] = mapped_column(String(64), nullable=True)
    provider_system: Mapped[str | None] = mapped_column(String(64), nullable=True)
    code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    success: Mapped[bool] = mapped_column()
    http_status: Mapped[int] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    latency_us: Mapped[int] = mapped_column(BigInteger)
    request_bytes: Mapped[int] = mapped_column(Integer)
    response_bytes: Mapped[int] = mapped_column(Integer)
    request_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    response_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    __table_args__ = (
        Index("ix_exchanges_at", "at"),
        Index("ix_exchanges_consumer_at", "consumer_system", "at"),
    )
