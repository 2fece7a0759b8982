"""Prometheus metrics of the engine, exposed at ``/metrics`` (one registry per bus)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest


class EngineMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.exchanges = Counter(
            "kiungo_exchanges",
            "Exchanges answered, by kind and outcome (HTTP status)",
            ("kind", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "kiungo_exchange_seconds",
            "Time from receiving a request to having its answer logged",
            ("kind",),
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}
        self.tokens = Counter(
            "kiungo_tokens", "Token requests by outcome (HTTP status)", ("status",),
            registry=self.registry,
        )  # fmt: skip

    def exchange(self, kind: str, status: int, seconds: float) -> None:
        # labels() costs microseconds per call: the children are looked up once per pair.
        children = self._children.get((kind, status))
        if children is None:
            children = (self.exchanges.labels(kind, str(status)), self.latency.labels(kind))
            self._children[(kind, status)] = children
        children[0].inc()
        children[1].observe(seconds)

    def token(self, status: int) -> None:
        self.tokens.labels(str(status)).inc()

    def expose(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
