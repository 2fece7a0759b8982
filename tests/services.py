"""Access to the real services (PostgreSQL, Redis, RabbitMQ) for the tests that use them.

A developer without them sees those tests skipped with the reason; CI sets
KIUNGO_REQUIRE_SERVICES=1, and then a missing service fails the test instead.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest

PG_ADMIN = os.environ.get("KIUNGO_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("KIUNGO_TEST_REDIS", "redis://127.0.0.1:6379/15")


def _reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def need(service: str, port: int) -> None:
    if _reachable(port):
        return
    message = f"{service} is not reachable on 127.0.0.1:{port} (start it, or run `make test`)"
    if os.environ.get("KIUNGO_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database; yields its SQLAlchemy URL and drops it after."""
    need("PostgreSQL", 5432)
    import asyncio

    import asyncpg

    name = f"kiungo_test_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def run(sql: str) -> None:
        # In a thread of its own: callers may be inside a running event loop.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, admin(sql)).result()

    run(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
