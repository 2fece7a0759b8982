"""Alembic environment: migrations run on the connection kiungo hands over (see db.migrate),
or, from the alembic command line, on ``KIUNGO_DATABASE_URL``."""

from __future__ import annotations

import asyncio

from alembic import context

import kiungo.ledger.models
import kiungo.registry.models  # noqa: F401  (registers the tables)
from kiungo.db import Base

target_metadata = Base.metadata


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    from kiungo.config import Settings
    from kiungo.db import make_engine

    async def _main() -> None:
        engine = make_engine(Settings().effective_database_url)
        async with engine.begin() as conn:
            await conn.run_sync(_run)
        await engine.dispose()

    asyncio.run(_main())
