"""Registry propagation on PostgreSQL: commit in one process -> snapshot reloaded in another.

Run: PYTHONPATH=. .venv/bin/python bench/registry_notify.py (needs PostgreSQL on 127.0.0.1)."""

import asyncio
import statistics
import time

from tests.integration.test_registry import World
from tests.services import postgres_database

from kiungo.db import migrate
from kiungo.registry.snapshot import RegistryCache


async def main():
    with postgres_database() as url:
        writer, reader = World(url), World(url)
        await migrate(writer.db)
        listener = RegistryCache(
            reader.sessions, reload_seconds=30, listen_dsn="postgresql://" + url.split("://", 1)[1]
        )
        await listener.start()
        times = []
        for i in range(30):
            before = listener.current.version
            t = time.perf_counter()
            await writer.service.create_institution(
                "op", code=f"I{i:03d}", name_en="x", name_sw="x", category="agency"
            )
            while listener.current.version == before:
                await asyncio.sleep(0.001)
            times.append((time.perf_counter() - t) * 1000)
        await listener.stop()
        print(f"commit-to-reload ms: median {statistics.median(times):.1f}, max {max(times):.1f}")


asyncio.run(main())
