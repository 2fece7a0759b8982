"""Rate limits per system and per API: token buckets holding one second of burst.

In one process the buckets live in memory. With Redis configured they live in Redis, so a
limit holds across every engine process of the bus (one atomic script call per check).
"""

from __future__ import annotations

import time
from typing import Protocol


class Limiter(Protocol):
    async def allow(self, key: str, rate: float) -> bool: ...

    async def close(self) -> None: ...


class LocalLimiter:
    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}

    async def allow(self, key: str, rate: float) -> bool:
        return self.take(key, rate, time.monotonic())

    def take(self, key: str, rate: float, now: float) -> bool:
        burst = max(rate, 1.0)
        tokens, last = self._buckets.get(key, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        return True

    async def close(self) -> None:
        self._buckets.clear()


# KEYS[1] bucket; ARGV[1] rate. Redis's own clock keeps processes on several machines
# consistent. Stores tokens and last time; the key expires when idle.
_BUCKET = """
local rate = tonumber(ARGV[1])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local burst = math.max(rate, 1)
local state = redis.call('HMGET', KEYS[1], 't', 'l')
local tokens = tonumber(state[1]) or burst
local last = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - last) * rate)
local ok = 0
if tokens >= 1 then tokens = tokens - 1; ok = 1 end
redis.call('HSET', KEYS[1], 't', tokens, 'l', now)
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 2)
return ok
"""


class RedisLimiter:
    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(url)
        self._script = self._redis.register_script(_BUCKET)

    async def allow(self, key: str, rate: float) -> bool:
        return bool(await self._script(keys=[f"kiungo:rl:{key}"], args=[rate]))

    async def ping(self) -> bool:
        return bool(await self._redis.ping())

    async def close(self) -> None:
        await self._redis.aclose()
