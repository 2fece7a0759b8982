"""The exchange benchmark: a signed synchronous exchange through the bus under load, beside
nginx proxying the same body to the same provider, in one run.

For each curve (``--curve secp256k1|p256|both``) it seeds a fresh registry on SQLite, starts
a provider (``provider.py``), the bus (``kiungo serve``, one worker) and nginx (one worker)
as separate processes, checks a few exchanges end to end, measures the machine's floors
(nginx answering a fixed body; the four ECDSA operations alone), and then, ``--repeats``
times:

1. wrk (closed loop, ``-t1 -c32``) POSTs the consumer's signed envelope with a bearer token
   to the bus's ``/engine/esb/request``: exchanges per second and per bus CPU-second
   (utime + stime of the bus process, from /proc);
2. the same wrk against nginx proxying the same body to the same provider;
3. wrk POSTs the client-credentials form to the token endpoint: tokens per second and per
   bus CPU-second;
4. the open-loop generator (``openloop.py``) sends 1,000 requests per second to the
   provider directly and then through the bus: added latency = bus - direct at p50, p99.

Then it profiles the bus with py-spy under the same wrk load (and the token endpoint),
reads the bus's RSS, counts the exchange log, prints a table and writes JSON to bench/out/
(the raw profiles too; ``hotpath.py`` summarizes them). py-spy runs in its default mode,
which pauses the bus for each sample: without pausing (``BENCH_NONBLOCKING=1``) the stacks
of coroutines often lose their callers. ``--variant`` runs a diagnostic variant of the bus
(``variant.py``), e.g. without the exchange log, to test what a profile suggests.

Core placement on a 2-core machine: the bus runs alone on ``--bus-cpu`` (0); the provider,
wrk and the open-loop generator share ``--load-cpu`` (1); nginx gets the bus's core during
its own turn (the bus is idle then). Throughput is judged per CPU-second of the server
process, which does not depend on how busy the other core is.

The whole run uses a copy of ``src/kiungo`` taken at its start (the commit is recorded), so
that edits made to the work tree meanwhile do not mix two versions of the bus.

Run ``bench/exchange/setup.sh`` first (wrk, nginx, py-spy); ``make bench-exchange`` does both.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import importlib
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import hotpath
import httpx
from provider import ANSWER_BODY

from kiungo.app import Bus
from kiungo.config import Settings
from kiungo.protocol import (
    REQUEST_ROOT,
    Curve,
    build_envelope,
    generate_private_key,
    load_private_key,
    load_public_key,
    parse_envelope,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BIN = ROOT / ".venv" / "bin"
OUT = ROOT / "bench" / "out"
CLK_TCK = os.sysconf("SC_CLK_TCK")
NONBLOCKING = ["--nonblocking"] if os.environ.get("BENCH_NONBLOCKING") else []

API_CODE = "BENCH-VERIFY"
# PERF.md: the limit for one signed exchange, per bus CPU-second.
LIMITS = {"secp256k1": 8300, "p256": 5300}
PERF_OTHER_US = 25.0  # PERF.md: 120 µs per exchange, of which 95 µs are the four ECDSA ops
GOALS = {
    "limit_ratio": 0.70,  # of the limit, per bus CPU-second
    "p99_added_ms": 2.0,  # at 1,000 requests per second
    "rss_mb": 200.0,
    "tokens_per_cpu_s": 5000.0,
}
REQUEST_BODY = {
    "nin": "19900101-11111-00001-23",
    "sababu": "Uthibitisho wa mgonjwa / Patient check",
}
LIBRARIES = (
    "kiungo",
    "uvicorn",
    "uvloop",
    "httptools",
    "aiohttp",
    "coincurve",
    "cryptography",
    "orjson",
    "sqlalchemy",
    "aiosqlite",
    "py-spy",
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- processes -----------------------------------------------------------------------------


class Processes:
    """Every process this run starts, stopped by pid at the end (whatever happens)."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(
        self, name: str, cmd: list[str], *, cpu: int | None, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        if cpu is not None:
            cmd = ["taskset", "-c", str(cpu), *cmd]
        out = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        out.close()
        self.started.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def stop_all(self) -> None:
        for _, proc in reversed(self.started):
            self.stop(proc)
        self.started.clear()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode} before listening")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"{what} did not listen on port {port} within {timeout:g} s")


def tree(pid: int) -> list[int]:
    """The pid and its descendants (nginx: master and worker)."""
    pids, queue = [], [pid]
    while queue:
        p = queue.pop()
        pids.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            with contextlib.suppress(OSError):
                queue += [int(c) for c in (task / "children").read_text().split()]
    return pids


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process tree (all threads), in seconds."""
    total = 0
    for p in tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / CLK_TCK


def thread_cpu_seconds(pid: int) -> tuple[float, float]:
    """(main thread, all other threads) utime + stime of one process, in seconds."""
    main = others = 0
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            ticks = int(fields[11]) + int(fields[12])
            if int(task.name) == pid:
                main += ticks
            else:
                others += ticks
    return main / CLK_TCK, others / CLK_TCK


def memory_mb(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


# --- the world -----------------------------------------------------------------------------


async def seed(data_dir: Path, curve: Curve, bus_port: int, provider_port: int) -> dict[str, str]:
    """A registry with one provider, one consumer and one approved grant, all of ``curve``;
    the bus key is of the same curve (written before the bus first starts)."""
    keys_dir = data_dir / "keys"
    keys_dir.mkdir(parents=True, exist_ok=True)
    bus_key = generate_private_key(curve)
    (keys_dir / "bus.key").write_text(bus_key.pem)
    settings = Settings(
        data_dir=data_dir,
        port=bus_port,
        provider_allowlist=[f"127.0.0.1:{provider_port}"],
        system_rate_limit=0,
        api_rate_limit=0,
    )
    bus = Bus(settings)
    await bus.start()
    try:
        reg = bus.registry
        institutions = (
            ("NIDA", "National Identification Authority"),
            ("MOH", "Ministry of Health"),
        )
        for code, name in institutions:
            await reg.create_institution(
                "bench", code=code, name_en=name, name_sw=name, category="authority"
            )
        provider_key, consumer_key = generate_private_key(curve), generate_private_key(curve)
        await reg.create_system(
            "bench",
            code="NIDA-IDS",
            institution="NIDA",
            name="Identity service",
            public_key=provider_key.public_key.b64,
        )
        consumer, secret = await reg.create_system(
            "bench",
            code="MOH-HMIS",
            institution="MOH",
            name="Health information system",
            public_key=consumer_key.public_key.b64,
        )
        await reg.create_api(
            "bench",
            code=API_CODE,
            name="Verify a national identity number",
            provider="NIDA-IDS",
            endpoint_url=f"http://127.0.0.1:{provider_port}/bus/verify",
            format="json",
            timeout_ms=5000,
            rate_limit=0,
        )
        grant = await reg.request_grant("bench", consumer="MOH-HMIS", api=API_CODE)
        await reg.decide_grant("bench", grant["id"], "approve")
        return {
            "client_id": consumer["client_id"],
            "client_secret": secret,
            "consumer_key": consumer_key.b64,
            "consumer_public_key": consumer_key.public_key.b64,
            "provider_key": provider_key.b64,
            "bus_public_key": bus.signer.public_key.b64,
            "provider_public_key": provider_key.public_key.b64,
        }
    finally:
        await bus.stop()


# --- load ----------------------------------------------------------------------------------


def wrk(
    url: str,
    body_file: Path,
    content_type: str,
    auth: str,
    *,
    seconds: float,
    connections: int,
    cpu: int,
) -> dict[str, Any]:
    env = {
        **os.environ,
        "BENCH_BODY": str(body_file),
        "BENCH_CONTENT_TYPE": content_type,
        "BENCH_AUTH": auth,
    }
    cmd = ["taskset", "-c", str(cpu), "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s"]
    cmd += ["--timeout", "10s", "-s", str(HERE / "request.lua"), url]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            return json.loads(line.removeprefix("BENCH_RESULT "))
    raise SystemExit(f"wrk printed no result:\n{done.stdout}\n{done.stderr}")


def measured_wrk(server_pid: int, others: dict[str, int], **kwargs: Any) -> dict[str, Any]:
    """wrk against a server; rates per second and per CPU-second of ``server_pid``."""
    load_before = loadavg()
    before = cpu_seconds(server_pid)
    threads_before = thread_cpu_seconds(server_pid)
    other_before = {k: cpu_seconds(p) for k, p in others.items()}
    result = wrk(**kwargs)
    cpu = cpu_seconds(server_pid) - before
    threads = [a - b for a, b in zip(thread_cpu_seconds(server_pid), threads_before, strict=True)]
    n, seconds = result["requests"], result["duration_us"] / 1e6
    errors = sum(result["errors"].values())
    return {
        "requests": n,
        "errors": errors,
        "per_s": round(n / seconds, 1),
        "server_cpu_s": round(cpu, 2),
        "server_cpu_share": round(cpu / seconds, 3),
        "per_cpu_s": round(n / cpu, 1) if cpu > 0 else None,
        "us_per_request": round(cpu / n * 1e6, 1) if n else None,
        "main_thread_us_per_request": round(threads[0] / n * 1e6, 1) if n else None,
        "other_threads_us_per_request": round(threads[1] / n * 1e6, 1) if n else None,
        "others_us_per_request": {
            k: round((cpu_seconds(p) - other_before[k]) / n * 1e6, 1) if n else None
            for k, p in others.items()
        },
        "latency_us": result["latency_us"],
        "loadavg": load_before,
    }


def openloop(url: str, body_file: Path, headers: list[str], args: argparse.Namespace) -> dict:
    cmd = ["taskset", "-c", str(args.load_cpu), str(BIN / "python"), str(HERE / "openloop.py")]
    cmd += ["--url", url, "--body-file", str(body_file), "--rate", f"{args.rate:g}"]
    cmd += ["--duration", f"{args.openloop_seconds:g}", "--warmup", "1"]
    for h in headers:
        cmd += ["--header", h]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def profile(pid: int, seconds: float, out: Path, load: dict[str, Any]) -> dict[str, Any]:
    """py-spy on the bus while wrk loads it (wrk starts first, the profile runs inside it)."""
    env = {
        **os.environ,
        "BENCH_BODY": str(load["body_file"]),
        "BENCH_CONTENT_TYPE": load["content_type"],
        "BENCH_AUTH": load["auth"],
    }
    cmd = ["taskset", "-c", str(load["cpu"]), "wrk", "-t1", f"-c{load['connections']}"]
    cmd += [f"-d{seconds + 3:g}s", "-s", str(HERE / "request.lua"), load["url"]]
    cpu_before = cpu_seconds(pid)
    threads_before = thread_cpu_seconds(pid)
    loader = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        time.sleep(1)
        spy = [str(BIN / "py-spy"), "record", "--pid", str(pid), "--format", "raw"]
        spy += ["--rate", "250", *NONBLOCKING, "--duration", str(max(1, round(seconds)))]
        spy += ["--output", str(out)]
        subprocess.run(spy, check=True, capture_output=True)
    finally:
        output, _ = loader.communicate(timeout=seconds + 30)
    summary = hotpath.summarize(out)
    cpu = cpu_seconds(pid) - cpu_before
    threads = [a - b for a, b in zip(thread_cpu_seconds(pid), threads_before, strict=True)]
    for line in output.splitlines():
        if line.startswith("BENCH_RESULT ") and (n := json.loads(line[13:])["requests"]):
            summary["requests"] = n
            summary["us_per_request"] = round(cpu / n * 1e6, 1)
            summary["main_thread_us_per_request"] = round(threads[0] / n * 1e6, 1)
            summary["other_threads_us_per_request"] = round(threads[1] / n * 1e6, 1)
    return summary


def ecdsa_floor(curve: Curve, data: bytes, cpu: int) -> dict[str, float]:
    """The four ECDSA operations of one exchange (two signs, two verifies) measured bare with
    kiungo's keys on the bus's core, before the load: what the limit's 95 µs (secp256k1) or
    ~175 µs (P-256) are on this machine today."""
    key = generate_private_key(curve)
    pub, sig = key.public_key, key.sign(data)
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        rounds: dict[str, list[float]] = {"sign": [], "verify": []}
        for _ in range(5):
            for name, op in (
                ("sign", lambda: key.sign(data)),
                ("verify", lambda: pub.verify(sig, data)),
            ):
                n, started = 0, time.perf_counter()
                while n < 50 or time.perf_counter() - started < 0.1:
                    op()
                    n += 1
                rounds[name].append((time.perf_counter() - started) / n * 1e6)
    finally:
        os.sched_setaffinity(0, affinity)
    sign_us, verify_us = statistics.median(rounds["sign"]), statistics.median(rounds["verify"])
    four = 2 * (sign_us + verify_us)
    return {
        "sign_us": round(sign_us, 1),
        "verify_us": round(verify_us, 1),
        "four_ops_us": round(four, 1),
        # PERF.md's limit: ~25 µs beside the four operations (hop floor, token, JSON, log).
        "limit_here_per_cpu_s": round(1e6 / (four + PERF_OTHER_US)),
    }


# --- one curve -----------------------------------------------------------------------------


def check_exchanges(bus_url: str, nginx_url: str, creds: dict[str, str], body: bytes) -> str:
    """A few real exchanges, verified, before any load; returns the bearer token."""
    bus_pub = load_public_key(creds["bus_public_key"])
    provider_pub = load_public_key(creds["provider_public_key"])
    with httpx.Client(timeout=10) as client:
        basic = base64.b64encode(f"{creds['client_id']}:{creds['client_secret']}".encode())
        r = client.post(
            bus_url + "/gw/govesb-uaa/oauth/token",
            content=token_form(creds),
            headers={
                "Authorization": "Basic " + basic.decode(),
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        r.raise_for_status()
        token = r.json()["access_token"]
        for _ in range(3):
            r = client.post(
                bus_url + "/engine/esb/request",
                content=body,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            envelope = parse_envelope(r.content, r.headers.get("content-type"))
            envelope.verify(bus_pub)
            data = envelope.data
            if r.status_code != 200 or data.get("success") is not True:
                raise SystemExit(f"bus answered {r.status_code}: {r.text}")
            if data.get("esbBody") != ANSWER_BODY:
                raise SystemExit(f"bus answer carries the wrong body: {data}")
            r = client.post(nginx_url, content=body, headers={"Content-Type": "application/json"})
            envelope = parse_envelope(r.content)
            envelope.verify(provider_pub)
            if r.status_code != 200 or envelope.data.get("success") is not True:
                raise SystemExit(f"nginx -> provider answered {r.status_code}: {r.text}")
    return token


def token_form(creds: dict[str, str]) -> bytes:
    return urlencode(
        {
            "grant_type": "client_credentials",
            "client_id": creds["client_id"],
            "client_secret": creds["client_secret"],
        }
    ).encode()


def exchange_log_counts(db: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        total, ok = conn.execute(
            "SELECT count(*), coalesce(sum(success = 1 AND http_status = 200), 0) FROM exchanges"
        ).fetchone()
    return {"rows": total, "successful": ok}


def run_curve(curve_name: str, args: argparse.Namespace) -> dict[str, Any]:
    curve = Curve.SECP256K1 if curve_name == "secp256k1" else Curve.P256
    tmp = Path(tempfile.mkdtemp(prefix=f"kiungo-bench-{curve_name}-"))
    data_dir = tmp / "data"
    procs = Processes(tmp)
    bus_port, provider_port, nginx_port = free_port(), free_port(), free_port()
    fixed_port = free_port()
    log(f"{curve_name}: seeding the registry in {tmp}")
    creds = asyncio.run(seed(data_dir, curve, bus_port, provider_port))
    try:
        keys = tmp / "provider-keys.json"
        keys.write_text(json.dumps(creds))
        provider = procs.start(
            "provider",
            [str(BIN / "python"), str(HERE / "provider.py"), str(keys), str(provider_port)],
            cpu=args.load_cpu,
        )
        env = {
            **os.environ,
            "KIUNGO_DATA_DIR": str(data_dir),
            "KIUNGO_PROVIDER_ALLOWLIST": f"127.0.0.1:{provider_port}",
            "KIUNGO_SYSTEM_RATE_LIMIT": "0",
            "KIUNGO_API_RATE_LIMIT": "0",
            **dict(item.split("=", 1) for item in args.env),
        }
        serve = ["serve", "--host", "127.0.0.1", "--port", str(bus_port)]
        launcher = [str(BIN / "kiungo")]
        if args.variant != "stock":  # a diagnostic change, made in memory (variant.py)
            launcher = [str(BIN / "python"), str(HERE / "variant.py"), args.variant]
        bus = procs.start("bus", [*launcher, *serve], cpu=args.bus_cpu, env=env)
        conf = tmp / "nginx.conf"
        conf.write_text(
            (HERE / "nginx.conf.template")
            .read_text()
            .replace("@DIR@", str(tmp))
            .replace("@PROVIDER_PORT@", str(provider_port))
            .replace("@PORT@", str(nginx_port))
            .replace("@FIXED_PORT@", str(fixed_port))
            .replace("@FIXED_BODY@", "0123456789" * 20)
        )
        nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
        nginx = procs.start(
            "nginx",
            [nginx_bin, "-p", str(tmp), "-e", str(tmp / "nginx-error.log"), "-c", str(conf)],
            cpu=args.bus_cpu,
        )
        wait_port(provider_port, provider, "provider")
        wait_port(nginx_port, nginx, "nginx")
        wait_port(fixed_port, nginx, "nginx")
        wait_port(bus_port, bus, "the bus")
        bus_url = f"http://127.0.0.1:{bus_port}"
        nginx_url = f"http://127.0.0.1:{nginx_port}/engine/esb/request"
        direct_url = f"http://127.0.0.1:{provider_port}/direct/verify"

        consumer_key = load_private_key(creds["consumer_key"])
        body = build_envelope(
            {"apiCode": API_CODE, "esbBody": REQUEST_BODY}, consumer_key, "json", root=REQUEST_ROOT
        )
        body_file = tmp / "request.json"
        body_file.write_bytes(body)
        form_file = tmp / "token.form"
        form_file.write_bytes(token_form(creds))
        token = check_exchanges(bus_url, nginx_url, creds, body)
        basic = base64.b64encode(f"{creds['client_id']}:{creds['client_secret']}".encode()).decode()
        ecdsa = ecdsa_floor(curve, body, args.bus_cpu)
        log(
            f"{curve_name}: {len(body)}-byte request verified end to end; ECDSA here: sign "
            f"{ecdsa['sign_us']} µs, verify {ecdsa['verify_us']} µs; loading"
        )

        common = {"seconds": args.seconds, "connections": args.connections, "cpu": args.load_cpu}
        targets = {
            "bus": {
                "url": bus_url + "/engine/esb/request",
                "body_file": body_file,
                "content_type": "application/json",
                "auth": f"Bearer {token}",
            },
            "nginx": {
                "url": nginx_url,
                "body_file": body_file,
                "content_type": "application/json",
                "auth": "",
            },
            "token": {
                "url": bus_url + "/gw/govesb-uaa/oauth/token",
                "body_file": form_file,
                "content_type": "application/x-www-form-urlencoded",
                "auth": f"Basic {basic}",
            },
        }
        servers = {"bus": bus.pid, "nginx": nginx.pid, "token": bus.pid}
        for name, target in targets.items():  # warm-up: connections, caches, JIT-free warmth
            wrk(**target, seconds=2, connections=args.connections, cpu=args.load_cpu)
            log(f"{curve_name}: warmed up {name}")
        # The machine's floor beside PERF.md's: nginx answering a fixed 200-byte body.
        floor = measured_wrk(
            nginx.pid, {}, **{**targets["nginx"], "url": f"http://127.0.0.1:{fixed_port}/"},
            seconds=5, connections=args.connections, cpu=args.load_cpu,
        )  # fmt: skip
        log(
            f"{curve_name}: nginx fixed body {floor['per_s']:.0f}/s, "
            f"{floor['per_cpu_s']:.0f} per CPU-s"
        )
        repeats: list[dict[str, Any]] = []
        for i in range(args.repeats):
            rep: dict[str, Any] = {}
            for name, target in targets.items():
                rep[name] = measured_wrk(
                    servers[name], {"provider": provider.pid}, **target, **common
                )
                log(
                    f"{curve_name} #{i + 1} {name}: {rep[name]['per_s']:.0f}/s, "
                    f"{rep[name]['per_cpu_s']:.0f} per CPU-s, errors {rep[name]['errors']}, "
                    f"load {rep[name]['loadavg']}"
                )
            json_type = "Content-Type: application/json"
            rep["direct_1k"] = openloop(direct_url, body_file, [json_type], args)
            rep["bus_1k"] = openloop(
                bus_url + "/engine/esb/request",
                body_file,
                ["Content-Type: application/json", f"Authorization: Bearer {token}"],
                args,
            )
            d, b = rep["direct_1k"]["latency_from_due_us"], rep["bus_1k"]["latency_from_due_us"]
            rep["added_us"] = {p: round(b[p] - d[p], 1) for p in ("p50", "p99")}
            log(
                f"{curve_name} #{i + 1} open loop {args.rate:g}/s: direct p50/p99 "
                f"{d['p50']:.0f}/{d['p99']:.0f} µs, bus {b['p50']:.0f}/{b['p99']:.0f} µs, "
                f"added {rep['added_us']['p50']:.0f}/{rep['added_us']['p99']:.0f} µs"
            )
            repeats.append(rep)

        profiles = {}
        if args.profile_seconds > 0:
            OUT.mkdir(parents=True, exist_ok=True)
            durations = {"bus": args.profile_seconds, "token": args.profile_seconds / 2}
            for name, seconds in durations.items():
                tag = run_tag(args)
                raw = OUT / f"exchange-profile-{curve_name}-{name}{tag}.txt"
                profiles[name] = profile(
                    bus.pid, seconds, raw,
                    {**targets[name], "cpu": args.load_cpu, "connections": args.connections},
                )  # fmt: skip
                log(f"{curve_name}: profiled {name} ({profiles[name]['samples']} samples) -> {raw}")
        memory = memory_mb(bus.pid)
        counts = exchange_log_counts(data_dir / "kiungo.db")
        return {
            "curve": curve_name,
            "variant": args.variant,
            "bus_env": args.env,
            "limit_per_cpu_s": LIMITS[curve_name],
            "request_bytes": len(body),
            "ecdsa": ecdsa,
            "nginx_fixed_body": floor,
            "repeats": repeats,
            "summary": summarize(curve_name, repeats, ecdsa),
            "bus_memory_mb": memory,
            "exchange_log": counts,
            "profiles": profiles,
        }
    finally:
        procs.stop_all()
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def median(values: list[float]) -> float:
    return round(statistics.median(values), 1)


def summarize(curve: str, repeats: list[dict[str, Any]], ecdsa: dict[str, float]) -> dict[str, Any]:
    def med(path: str) -> float:
        values = []
        for rep in repeats:
            value: Any = rep
            for part in path.split("."):
                value = value[part]
            values.append(value)
        return median(values)

    s = {
        "bus_per_s": med("bus.per_s"),
        "bus_per_cpu_s": med("bus.per_cpu_s"),
        "bus_us_per_exchange": med("bus.us_per_request"),
        "bus_main_thread_us": med("bus.main_thread_us_per_request"),
        "bus_other_threads_us": med("bus.other_threads_us_per_request"),
        "token_us": med("token.us_per_request"),
        "bus_cpu_share": med("bus.server_cpu_share"),
        "provider_us_per_exchange": med("bus.others_us_per_request.provider"),
        "bus_wrk_p50_us": med("bus.latency_us.p50"),
        "bus_wrk_p99_us": med("bus.latency_us.p99"),
        "nginx_per_s": med("nginx.per_s"),
        "nginx_per_cpu_s": med("nginx.per_cpu_s"),
        "nginx_cpu_share": med("nginx.server_cpu_share"),
        "token_per_s": med("token.per_s"),
        "token_per_cpu_s": med("token.per_cpu_s"),
        "direct_p50_us": med("direct_1k.latency_from_due_us.p50"),
        "direct_p99_us": med("direct_1k.latency_from_due_us.p99"),
        "bus_1k_p50_us": med("bus_1k.latency_from_due_us.p50"),
        "bus_1k_p99_us": med("bus_1k.latency_from_due_us.p99"),
        "added_p50_us": med("added_us.p50"),
        "added_p99_us": med("added_us.p99"),
        "loadavg": [rep["bus"]["loadavg"] for rep in repeats],
        "errors": sum(rep[k]["errors"] for rep in repeats for k in ("bus", "nginx", "token")),
        "open_loop_non_200": sum(
            rep[k]["measured"] - rep[k]["ok"] for rep in repeats for k in ("direct_1k", "bus_1k")
        ),
    }
    s["limit_ratio"] = round(s["bus_per_cpu_s"] / LIMITS[curve], 3)
    s["limit_here_ratio"] = round(s["bus_per_cpu_s"] / ecdsa["limit_here_per_cpu_s"], 3)
    s["nginx_ratio_per_s"] = round(s["bus_per_s"] / s["nginx_per_s"], 3)
    s["nginx_ratio_per_cpu_s"] = round(s["bus_per_cpu_s"] / s["nginx_per_cpu_s"], 3)
    return s


# --- report --------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    versions = {}
    for lib in LIBRARIES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[lib] = importlib.metadata.version(lib)
    nginx = subprocess.run(
        [shutil.which("nginx") or "/usr/sbin/nginx", "-v"], capture_output=True, text=True
    ).stderr.strip()
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "libraries": versions,
        "nginx": nginx.removeprefix("nginx version: "),
        "wrk": wrk_version.split(" [")[0].strip(),
        "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def goal(met: bool) -> str:
    return "met" if met else "NOT met"


def report(results: list[dict[str, Any]]) -> str:
    lines = [
        "| curve | exchanges/s | per bus CPU-s | µs per exchange | limit | of limit "
        "(goal ≥ 70 %) | nginx/s | nginx per CPU-s | bus/nginx per s | bus/nginx per CPU-s |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in results:
        s = r["summary"]
        lines.append(
            f"| {r['curve']} | {s['bus_per_s']:,.0f} | {s['bus_per_cpu_s']:,.0f} | "
            f"{s['bus_us_per_exchange']:.0f} | {r['limit_per_cpu_s']:,} | "
            f"{100 * s['limit_ratio']:.0f} % ({goal(s['limit_ratio'] >= GOALS['limit_ratio'])}) | "
            f"{s['nginx_per_s']:,.0f} | {s['nginx_per_cpu_s']:,.0f} | "
            f"{100 * s['nginx_ratio_per_s']:.0f} % | {100 * s['nginx_ratio_per_cpu_s']:.1f} % |"
        )
    lines += [
        "",
        "| curve | nginx fixed body/s (PERF 220,000) | ECDSA here: sign / verify µs "
        "| four operations µs | limit with this ECDSA (+25 µs) | bus of that |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        e, s, f = r["ecdsa"], r["summary"], r["nginx_fixed_body"]
        lines.append(
            f"| {r['curve']} | {f['per_s']:,.0f} | {e['sign_us']} / {e['verify_us']} | "
            f"{e['four_ops_us']} | {e['limit_here_per_cpu_s']:,} | "
            f"{100 * s['limit_here_ratio']:.0f} % |"
        )
    lines += [
        "",
        "| curve | direct p50 / p99 µs | bus p50 / p99 µs | added p50 | added p99 (goal ≤ 2 ms) "
        "| bus RSS / peak MB (goal ≤ 200) | tokens/s | tokens per CPU-s (goal ≥ 5,000) |",
        "|---|---:|---:|---:|---|---|---:|---|",
    ]
    for r in results:
        s, m = r["summary"], r["bus_memory_mb"]
        lines.append(
            f"| {r['curve']} | {s['direct_p50_us']:.0f} / {s['direct_p99_us']:.0f} | "
            f"{s['bus_1k_p50_us']:.0f} / {s['bus_1k_p99_us']:.0f} | {s['added_p50_us']:.0f} µs | "
            f"{s['added_p99_us']:.0f} µs "
            f"({goal(s['added_p99_us'] <= GOALS['p99_added_ms'] * 1000)}) | "
            f"{m['VmRSS']:.0f} / {m['VmHWM']:.0f} ({goal(m['VmHWM'] <= GOALS['rss_mb'])}) | "
            f"{s['token_per_s']:,.0f} | {s['token_per_cpu_s']:,.0f} "
            f"({goal(s['token_per_cpu_s'] >= GOALS['tokens_per_cpu_s'])}) |"
        )
    return "\n".join(lines)


def run_tag(args: argparse.Namespace) -> str:
    """A file-name suffix naming what differs from the stock bus."""
    parts = [] if args.variant == "stock" else [args.variant]
    parts += [e.split("=", 1)[1].lower() for e in args.env if "=" in e]
    return "".join(f"-{p}" for p in parts)


def snapshot_and_rerun() -> None:
    """Run the whole benchmark on a copy of src/kiungo taken now (PYTHONPATH puts it before
    the editable install), so that edits made to the work tree meanwhile do not mix two
    versions of the bus into one run."""
    if os.environ.get("KIUNGO_BENCH_SNAPSHOT"):
        return
    snap = Path(tempfile.mkdtemp(prefix="kiungo-bench-src-"))
    try:
        shutil.copytree(
            ROOT / "src" / "kiungo", snap / "kiungo", ignore=shutil.ignore_patterns("__pycache__")
        )
        path = os.pathsep.join(p for p in (str(snap), os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, "KIUNGO_BENCH_SNAPSHOT": str(snap), "PYTHONPATH": path}
        code = subprocess.call(
            [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]], env=env
        )
    finally:
        shutil.rmtree(snap, ignore_errors=True)
    raise SystemExit(code)


def source_identity() -> dict[str, Any]:
    """Which kiungo was measured: the commit, whether src/ differed from it, a content hash."""
    snap = Path(os.environ["KIUNGO_BENCH_SNAPSHOT"]) / "kiungo"
    digest = hashlib.sha256()
    for f in sorted(snap.rglob("*.py")):
        digest.update(str(f.relative_to(snap)).encode() + b"\0" + f.read_bytes())

    def git(*cmd: str) -> str:
        done = subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip()

    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "src_modified": bool(git("status", "--porcelain", "--", "src")),
        "src_sha256": digest.hexdigest()[:16],
        "imported_from": str(Path(importlib.import_module("kiungo").__file__ or "").parent),
    }


def main() -> None:
    snapshot_and_rerun()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--curve", choices=("secp256k1", "p256", "both"), default="both")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10, help="length of each wrk run")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--rate", type=float, default=1000, help="open-loop requests/s")
    parser.add_argument("--openloop-seconds", type=float, default=8)
    parser.add_argument("--profile-seconds", type=float, default=10, help="0: no profile")
    parser.add_argument("--bus-cpu", type=int, default=0, help="core of the bus and nginx")
    parser.add_argument("--load-cpu", type=int, default=1, help="core of provider and load")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KIUNGO_X=VALUE",
        help="a setting of the bus, e.g. KIUNGO_OUTBOUND_CLIENT=aiohttp (repeatable)",
    )
    parser.add_argument(
        "--variant",
        default="stock",
        help="diagnostic variant of the bus (variant.py: stock, nolog, switch, noproxyheaders; "
        "join with +)",
    )
    args = parser.parse_args()
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: run bench/exchange/setup.sh")
    if not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        raise SystemExit("nginx is missing: run bench/exchange/setup.sh")
    if args.profile_seconds > 0 and not (BIN / "py-spy").exists():
        raise SystemExit("py-spy is missing: run bench/exchange/setup.sh")

    started = time.time()
    info = machine()
    info["source"] = source_identity()
    log(f"measuring kiungo {info['source']}")
    curves = ["secp256k1", "p256"] if args.curve == "both" else [args.curve]
    results = [run_curve(c, args) for c in curves]
    info["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    document = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": info,
        "settings": vars(args),
        "goals": GOALS,
        "results": results,
        "seconds": round(time.time() - started, 1),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    tag = run_tag(args)
    path = OUT / f"exchange-{time.strftime('%Y%m%d-%H%M%S')}{tag}.json"
    path.write_text(json.dumps(document, indent=2))
    print(report(results))
    for r in results:
        for name, prof in r["profiles"].items():
            table = hotpath.markdown(prof, us_per_request=prof.get("main_thread_us_per_request"))
            print(
                f"\nProfile ({r['curve']}, {name}): bus CPU {prof.get('us_per_request')} µs per "
                f"request, main thread {prof.get('main_thread_us_per_request')}, other threads "
                f"{prof.get('other_threads_us_per_request')}\n{table}"
            )
    print(
        f"\nmachine: {info['cpu']}, {info['cores']} cores, Python {info['python']}, "
        f"load {info['loadavg_start']} -> {info['loadavg_end']}; "
        f"{document['seconds']:.0f} s; JSON: {path}"
    )


if __name__ == "__main__":
    main()
