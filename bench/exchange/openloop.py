"""An open-loop load generator: requests leave on a fixed schedule, whatever the server does.

wrk is closed-loop (a connection sends its next request only after the answer), so a slow
server slows the load and hides its own queueing ("coordinated omission"). Here request
``i`` is due at ``start + i / rate``; it goes out on an idle keep-alive connection, or waits
for one, and its latency is measured from the time it was *due*, so any wait (in the
server or for a free connection) counts. The latency from the actual send and the
generator's own lateness (due -> sent) are reported beside it. Requests are released by
a timerfd (microseconds), not by the event loop's millisecond timers.

Usage::

    openloop.py --url http://127.0.0.1:8080/engine/esb/request --body-file body.json \\
        --header 'Authorization: Bearer ...' --rate 1000 --duration 8 --warmup 1

Prints one JSON object: counts, statuses and latency percentiles in microseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import ctypes
import json
import math
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httptools
import uvloop

PERCENTILES = (50, 90, 99, 99.9)


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class Run:
    """The schedule and the results of one run."""

    def __init__(self, request: bytes, rate: float, count: int, connections: int) -> None:
        self.request = request
        self.interval = 1.0 / rate
        self.count = count
        self.connections = connections
        self.idle: collections.deque[Connection] = collections.deque()
        self.backlog: collections.deque[int] = collections.deque()
        self.start = 0.0
        # per request index: (due, sent, done, status)
        self.sent = [0.0] * count
        self.done = [0.0] * count
        self.status = [0] * count
        self.finished = 0
        self.errors = 0
        self.all_done = asyncio.Event()

    def due(self, i: int) -> float:
        return self.start + i * self.interval

    def send(self, conn: Connection, i: int) -> None:
        conn.index = i
        self.sent[i] = time.perf_counter()
        assert conn.transport is not None
        conn.transport.write(self.request)

    def complete(self, conn: Connection, status: int) -> None:
        i = conn.index
        conn.index = -1
        self.done[i] = time.perf_counter()
        self.status[i] = status
        self._finish_one()
        if self.backlog:
            self.send(conn, self.backlog.popleft())
        else:
            self.idle.append(conn)

    def failed(self, conn: Connection) -> None:
        if conn.index >= 0:
            self.status[conn.index] = -1
            self.errors += 1
            conn.index = -1
            self._finish_one()
        if conn in self.idle:
            self.idle.remove(conn)

    def _finish_one(self) -> None:
        self.finished += 1
        if self.finished >= self.count:
            self.all_done.set()


class Connection(asyncio.Protocol):
    def __init__(self, run: Run) -> None:
        self.run = run
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.index = -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_message_complete(self) -> None:
        if self.index >= 0:
            self.run.complete(self, self.parser.get_status_code())

    def connection_lost(self, exc: Exception | None) -> None:
        self.run.failed(self)


class PreciseTimer:
    """A timerfd armed at absolute CLOCK_MONOTONIC times (the clock of perf_counter).

    The event loop's own timers tick in milliseconds, so requests would leave up to 1 ms
    late; a timerfd wakes the loop's epoll within microseconds. Python 3.11 has no
    ``os.timerfd_create``, so libc is called through ctypes.
    """

    CLOCK_MONOTONIC = 1
    TFD_NONBLOCK = 0o4000
    TFD_CLOEXEC = 0o2000000
    TFD_TIMER_ABSTIME = 1

    class _Itimerspec(ctypes.Structure):
        _fields_ = (("it_interval", ctypes.c_long * 2), ("it_value", ctypes.c_long * 2))

    def __init__(self, libc: ctypes.CDLL, fd: int) -> None:
        self.libc = libc
        self.fd = fd

    @classmethod
    def create(cls) -> PreciseTimer | None:
        if (
            not sys.platform.startswith("linux")
            or time.get_clock_info("perf_counter").implementation
            != "clock_gettime(CLOCK_MONOTONIC)"
        ):
            return None
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.timerfd_create(cls.CLOCK_MONOTONIC, cls.TFD_NONBLOCK | cls.TFD_CLOEXEC)
        except (OSError, AttributeError):
            return None
        return cls(libc, fd) if fd >= 0 else None

    def arm(self, at: float) -> None:
        sec = int(at)
        spec = self._Itimerspec()
        spec.it_value[0], spec.it_value[1] = sec, max(1, int((at - sec) * 1e9))
        if self.libc.timerfd_settime(self.fd, self.TFD_TIMER_ABSTIME, ctypes.byref(spec), None):
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")

    def consume(self) -> bool:
        try:
            os.read(self.fd, 8)
        except BlockingIOError:
            return False
        return True

    def close(self) -> None:
        os.close(self.fd)


def build_request(url: str, body: bytes, headers: list[str]) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    lines = [
        f"POST {parts.path or '/'} HTTP/1.1",
        f"Host: {host}:{port}",
        *headers,
        f"Content-Length: {len(body)}",
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return host, port, head + body


async def drive(args: argparse.Namespace) -> dict[str, object]:
    body = Path(args.body_file).read_bytes()
    host, port, request = build_request(args.url, body, args.header)
    count = int(args.rate * (args.duration + args.warmup))
    run = Run(request, args.rate, count, args.connections)
    loop = asyncio.get_running_loop()
    for _ in range(args.connections):
        _, conn = await loop.create_connection(lambda: Connection(run), host, port)
        run.idle.append(conn)
    run.start = time.perf_counter() + 0.05
    timer = PreciseTimer.create()
    next_index = 0

    def fire() -> float | None:
        """Send every request that is due; the due time of the next one, or None."""
        nonlocal next_index
        now = time.perf_counter()
        while next_index < count and run.due(next_index) <= now:
            if run.idle:
                run.send(run.idle.popleft(), next_index)
            else:
                run.backlog.append(next_index)
            next_index += 1
        return run.due(next_index) if next_index < count else None

    if timer is not None:
        all_sent = asyncio.Event()

        def on_timer() -> None:
            if not timer.consume():
                return
            due = fire()
            if due is None:
                loop.remove_reader(timer.fd)
                all_sent.set()
            else:
                timer.arm(due)

        loop.add_reader(timer.fd, on_timer)
        timer.arm(run.start)
        await all_sent.wait()
        timer.close()
    else:  # no timerfd: the loop's millisecond timers
        due = run.start
        while due is not None:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            due = fire()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(run.all_done.wait(), timeout=args.timeout)
    for conn in list(run.idle):
        if conn.transport is not None:
            conn.transport.close()
    return summarize(run, args)


def summarize(run: Run, args: argparse.Namespace) -> dict[str, object]:
    skip = int(args.rate * args.warmup)
    measured = range(skip, run.count)
    statuses: collections.Counter[int] = collections.Counter(run.status[i] for i in measured)
    ok = [i for i in measured if run.status[i] == 200]
    from_due = sorted((run.done[i] - run.due(i)) * 1e6 for i in ok)
    from_send = sorted((run.done[i] - run.sent[i]) * 1e6 for i in ok)
    lateness = sorted((run.sent[i] - run.due(i)) * 1e6 for i in ok)
    unanswered = sum(1 for i in measured if run.status[i] == 0)

    def pcts(values: list[float]) -> dict[str, float]:
        out = {f"p{p:g}": round(percentile(values, p), 1) for p in PERCENTILES}
        out["max"] = round(values[-1], 1) if values else float("nan")
        out["mean"] = round(sum(values) / len(values), 1) if values else float("nan")
        return out

    measured_span = run.due(run.count - 1) - run.due(skip) if run.count > skip + 1 else 0.0
    return {
        "url": args.url,
        "rate": args.rate,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "connections": args.connections,
        "measured": len(measured),
        "ok": len(ok),
        "errors": run.errors,
        "unanswered": unanswered,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "achieved_rate": round(len(ok) / measured_span, 1) if measured_span else 0.0,
        "latency_from_due_us": pcts(from_due),
        "latency_from_send_us": pcts(from_send),
        "send_lateness_us": pcts(lateness),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--body-file", required=True)
    parser.add_argument("--header", action="append", default=[], help="'Name: value'")
    parser.add_argument("--rate", type=float, default=1000.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds sent, not measured")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=10.0, help="wait for stragglers")
    args = parser.parse_args(argv)
    result = uvloop.run(drive(args))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
