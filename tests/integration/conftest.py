"""A real bus for integration tests: the demo world (SQLite, demo providers as HTTP
services) on free loopback ports, running in its own event loop in a background thread.
"""

from __future__ import annotations

import asyncio
import random
import socket
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from kiungo.demo.run import PROVIDERS, Demo

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_block(count: int) -> int:
    """The first of ``count`` consecutive free ports, below the ephemeral range (where
    outgoing connections would take them)."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20_000, 32_000)
        sockets = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError(f"no {count} consecutive free ports found")


class RunningBus:
    """A started demo bus; ``run`` executes a coroutine on the bus's loop."""

    def __init__(self, data_dir: Path, **overrides: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.demo = Demo(
            data_dir,
            port=free_port(),
            provider_ports={spec.code: free_port() for spec in PROVIDERS},
            **overrides,
        )
        self.credentials: dict[str, Any] = self.run(self.demo.start())
        self.bus = self.demo.bus
        self.url = self.demo.settings.effective_public_url

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def system(self, code: str) -> dict[str, Any]:
        """The connector options of a demo system (credentials.json entry)."""
        return next(s for s in self.credentials["systems"] if s["systemCode"] == code)

    def close(self) -> None:
        try:
            self.run(self.demo.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


@pytest.fixture(scope="session")
def running_bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBus]:
    """One demo bus per test process (xdist worker), shared by the tests that only read."""
    bus = RunningBus(tmp_path_factory.mktemp("bus"))
    yield bus
    bus.close()


@pytest.fixture
def fresh_bus(tmp_path: Path) -> Iterator[RunningBus]:
    """A demo bus of the test's own, for tests that change the registry or its settings."""
    bus = RunningBus(tmp_path)
    yield bus
    bus.close()
