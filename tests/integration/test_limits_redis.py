"""Rate limits held in Redis hold across processes (each limiter is its own connection)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
from tests.integration.conftest import RunningBus
from tests.services import REDIS_URL, need

from kiungo import protocol as P
from kiungo.engine.limits import RedisLimiter


async def test_two_processes_share_one_bucket() -> None:
    """Two limiters (as in two engine processes) together allow no more than the rate."""
    need("Redis", 6379)
    first, second = RedisLimiter(REDIS_URL), RedisLimiter(REDIS_URL)
    key = f"test:{uuid.uuid4().hex}"
    try:
        results = await asyncio.gather(
            *(limiter.allow(key, 5) for limiter in (first, second) for _ in range(10))
        )
    finally:
        await first.close()
        await second.close()
    # A bucket of 5 with at most a few tokens refilled while 20 calls run.
    assert 5 <= sum(results) < 10


def test_the_bus_refuses_over_the_limit_through_redis(tmp_path: Path) -> None:
    """A bus configured with Redis answers 429 past the system limit, and reports Redis ready."""
    need("Redis", 6379)
    bus = RunningBus(tmp_path, redis_url=REDIS_URL, system_rate_limit=2)
    try:
        ready = httpx.get(bus.url + "/readyz").json()
        assert ready["redis"] == "ok"
        creds = bus.system("MOH-HMIS")
        token = httpx.post(
            creds["esbTokenUrl"],
            data={"grant_type": "client_credentials"},
            auth=(creds["clientId"], creds["clientSecret"]),
        ).json()["access_token"]
        key = P.load_private_key(creds["clientPrivateKey"])
        body = P.build_envelope(
            {"apiCode": "NIDA-VERIFY", "esbBody": {"nin": "19900101-11111-00001-23"}},
            key,
            root="esbrequest",
        )

        async def burst() -> list[int]:
            async with httpx.AsyncClient(timeout=30) as client:
                responses = await asyncio.gather(
                    *(
                        client.post(
                            creds["esbEngineUrl"] + "/request",
                            content=body,
                            headers={
                                "Authorization": f"Bearer {token}",
                                "Content-Type": "application/json",
                            },
                        )
                        for _ in range(6)
                    )
                )
            return [r.status_code for r in responses]

        statuses = asyncio.run(burst())
        assert statuses.count(429) >= 1, statuses
        assert statuses.count(200) >= 1, statuses
    finally:
        bus.close()
