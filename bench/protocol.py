"""Protocol core benchmark: envelope sign/verify against the bare ECDSA library call.

    .venv/bin/python bench/protocol.py [--seconds 1.0] [--rounds 5] [--json]

For a ~300-byte request ``data`` (apiCode + esbBody with Swahili text) and each curve,
measures in one run:

- sign:   ``build_envelope(data, key)``            vs the bare library sign of the same bytes
          (secp256k1: ``coincurve.PrivateKey.sign``; P-256: ``cryptography`` ``sign``);
- verify: ``parse_envelope(body).verify(pub)``    vs the bare library verify of the same
          bytes and signature (secp256k1: ``coincurve.PublicKey.verify`` with kiungo's low-S
          signature; P-256: ``cryptography`` ``verify``).

The machine is shared and noisy, so every measurement is split into ``--rounds`` rounds.
In a round the rows come in a shuffled order, and each row times envelope and bare as
A B B A, back to back, so that a change of load in between hits both alike. µs/op are
medians over all batches; the overhead of a row is the median over rounds of the paired
ratio envelope/bare - 1 of its round. Goal: <= 15 %.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata

import coincurve
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kiungo.protocol import (
    Curve,
    build_envelope,
    generate_private_key,
    js_stringify,
    parse_envelope,
)

GOAL = 0.15

# A realistic synchronous request: what the JavaScript connector sends for an API call.
DATA = {
    "apiCode": "TRA-TIN-VERIFY-02",
    "esbBody": {
        "requestId": "c1f0e6d2-7a4b-4f1e-9d2a-5b8e3c6a9f10",
        "tin": "123-456-789",
        "jina": "Zuhura Mwanaisha Salum",
        "mkoa": "Dar es Salaam – Kinondoni",
        "ombi": "Naomba uthibitisho wa usajili wa mlipakodi kwa zabuni ya ujenzi.",
        "tarehe": "2026-11-25T09:30:00+03:00",
    },
}


@dataclass
class Row:
    curve: str
    operation: str
    envelope_us: float
    bare_us: float
    overhead: float  # median of paired envelope/bare - 1

    @property
    def meets_goal(self) -> bool:
        return self.overhead <= GOAL


def _cases(curve: Curve) -> dict[tuple[str, str], Callable[[], object]]:
    """The four timed callables of one curve, keyed by (operation, variant)."""
    key = generate_private_key(curve)
    pub = key.public_key
    msg = js_stringify(DATA)
    body = build_envelope(DATA, key)
    sig = key.sign(msg)  # low-S for secp256k1, as coincurve requires
    parse_envelope(body).verify(pub)  # the envelope is valid before it is timed

    if curve is Curve.SECP256K1:
        secret = key.crypto_key.private_numbers().private_value.to_bytes(32, "big")
        bare_priv = coincurve.PrivateKey(secret)
        bare_pub = coincurve.PublicKey(
            pub.crypto_key.public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )
        assert bare_pub.verify(sig, msg)

        def bare_sign() -> object:
            return bare_priv.sign(msg)

        def bare_verify() -> object:
            return bare_pub.verify(sig, msg)

    else:
        crypto_priv = key.crypto_key
        crypto_pub = pub.crypto_key
        algorithm = ec.ECDSA(hashes.SHA256())
        crypto_pub.verify(sig, msg, algorithm)

        def bare_sign() -> object:
            return crypto_priv.sign(msg, algorithm)

        def bare_verify() -> object:
            return crypto_pub.verify(sig, msg, algorithm)

    def envelope_sign() -> object:
        return build_envelope(DATA, key)

    def envelope_verify() -> object:
        return parse_envelope(body).verify(pub)

    return {
        ("sign", "envelope"): envelope_sign,
        ("sign", "bare"): bare_sign,
        ("verify", "envelope"): envelope_verify,
        ("verify", "bare"): bare_verify,
    }


def _time(fn: Callable[[], object], n: int) -> float:
    """Seconds per call over ``n`` calls, with the collector off (as timeit does)."""
    loop = range(n)
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in loop:
            fn()
        return (time.perf_counter() - start) / n
    finally:
        if gc_was_on:
            gc.enable()


def _calibrate(fn: Callable[[], object], seconds: float) -> int:
    """Calls per batch so that one batch lasts about ``seconds``."""
    n = 10
    while True:
        took = _time(fn, n) * n
        if took >= 0.05:
            return max(1, int(n * seconds / took))
        n *= 4


def measure(seconds: float, rounds: int, seed: int = 1) -> list[Row]:
    """Per round and row, time envelope and bare as A B B A, so load drift hits both."""
    rng = random.Random(seed)
    rows_cases = {
        (curve.value, op): (cases[(op, "envelope")], cases[(op, "bare")])
        for curve in (Curve.SECP256K1, Curve.P256)
        for cases in [_cases(curve)]
        for op in ("sign", "verify")
    }
    # Each of the 2 x rounds batches of a case lasts seconds / (2 * rounds).
    batch = {
        row: (_calibrate(env, seconds / (2 * rounds)), _calibrate(bare, seconds / (2 * rounds)))
        for row, (env, bare) in rows_cases.items()
    }
    env_t: dict[tuple[str, str], list[float]] = {row: [] for row in rows_cases}
    bare_t: dict[tuple[str, str], list[float]] = {row: [] for row in rows_cases}
    ratios: dict[tuple[str, str], list[float]] = {row: [] for row in rows_cases}
    order = list(rows_cases)
    for _ in range(rounds):
        rng.shuffle(order)
        for row in order:
            env, bare = rows_cases[row]
            n_env, n_bare = batch[row]
            e1 = _time(env, n_env)
            b1 = _time(bare, n_bare)
            b2 = _time(bare, n_bare)
            e2 = _time(env, n_env)
            env_t[row] += [e1, e2]
            bare_t[row] += [b1, b2]
            ratios[row].append((e1 + e2) / (b1 + b2) - 1)
    return [
        Row(
            curve=curve,
            operation=op,
            envelope_us=statistics.median(env_t[(curve, op)]) * 1e6,
            bare_us=statistics.median(bare_t[(curve, op)]) * 1e6,
            overhead=statistics.median(ratios[(curve, op)]),
        )
        for curve, op in rows_cases
    ]


def machine() -> dict[str, object]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "cpu": cpu,
        "cores": usable,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": {
            name: metadata.version(name)
            for name in ("kiungo", "coincurve", "cryptography", "orjson")
        },
    }


def _table(rows: list[Row]) -> str:
    lines = [
        "| curve | operation | envelope µs/op | bare µs/op | overhead | goal ≤ 15 % |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.curve} | {r.operation} | {r.envelope_us:.1f} | {r.bare_us:.1f} "
            f"| {r.overhead * 100:+.1f} % | {'met' if r.meets_goal else 'NOT met'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per measurement")
    parser.add_argument("--json", action="store_true", help="print machine-readable results")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.rounds < 1:
        parser.error("--seconds must be positive and --rounds at least 1")

    info = machine()
    data_bytes = len(js_stringify(DATA))
    rows = measure(args.seconds, args.rounds)
    if args.json:
        out = {
            "benchmark": "protocol",
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": info,
            "data_bytes": data_bytes,
            "seconds": args.seconds,
            "rounds": args.rounds,
            "goal_overhead": GOAL,
            "rows": [asdict(r) | {"meets_goal": r.meets_goal} for r in rows],
        }
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        libs = ", ".join(f"{k} {v}" for k, v in info["libraries"].items())  # type: ignore[attr-defined]
        print(f"machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}")
        print(f"libraries: {libs}")
        print(
            f"data: {data_bytes} bytes of JSON; {args.rounds} rounds, "
            f"{args.seconds:g} s per measurement, medians\n"
        )
        print(_table(rows))
        met = all(r.meets_goal for r in rows)
        print(f"\ngoal (envelope overhead ≤ {GOAL:.0%}): {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
