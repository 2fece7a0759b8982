"""Runs the demo: the bus on SQLite, the demo provider systems as real HTTP services, the
seeded world, and ``DIR/demo/credentials.json`` for the demo systems' connectors.

Provider systems listen on the ports after the bus's (``--port 8080``: 8081, 8082), and the
demo's allow-list admits exactly those loopback ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from kiungo.app import Bus
from kiungo.config import Settings
from kiungo.demo import world
from kiungo.protocol import load_private_key
from kiungo.sdk.provider import Provider, provider_app

PROVIDERS = tuple(s for s in world.SYSTEMS if s.provides)


class QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signals to its owner (several run in one loop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _serve(app: Any, host: str, port: int) -> tuple[QuietServer, asyncio.Task[None]]:
    config = uvicorn.Config(
        app, host=host, port=port, lifespan="off", log_level="warning", access_log=False
    )
    server = QuietServer(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it (port in use, ...)
            raise RuntimeError(f"server on {host}:{port} stopped before starting")
        await asyncio.sleep(0.01)
    return server, task


class Demo:
    def __init__(
        self,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        provider_ports: dict[str, int] | None = None,
        extra_allow: tuple[str, ...] | list[str] = (),
        **overrides: Any,
    ) -> None:
        self.data_dir = data_dir
        self.host = host
        self.port = port
        self.provider_ports = provider_ports or {
            spec.code: port + i + 1 for i, spec in enumerate(PROVIDERS)
        }
        # extra_allow: more allow-list entries, for providers other than the demo's own.
        allow = [f"{host}:{p}" for p in self.provider_ports.values()] + list(extra_allow)
        self.settings = Settings(
            data_dir=data_dir, host=host, port=port, provider_allowlist=allow, **overrides
        )
        self.bus = Bus(self.settings)
        self.credentials_path = data_dir / "demo" / "credentials.json"
        self._servers: list[tuple[QuietServer, asyncio.Task[None]]] = []

    def provider_url(self, code: str) -> str:
        return f"http://{self.host}:{self.provider_ports[code]}"

    async def start(self) -> dict[str, Any]:
        await self.bus.start()
        credentials = await self._seed_once()
        await self._start_providers(credentials)
        self._servers.append(await _serve(self.bus, self.host, self.port))
        return credentials

    async def stop(self) -> None:
        for server, _ in self._servers:
            server.should_exit = True
        for _, task in self._servers:
            with contextlib.suppress(Exception):
                await task
        self._servers.clear()
        await self.bus.stop()

    async def _seed_once(self) -> dict[str, Any]:
        if self.credentials_path.exists():
            credentials = json.loads(self.credentials_path.read_text(encoding="utf-8"))
            await self._repoint_providers()
            # The same world on another port: the connectors' URLs move along.
            for system in credentials["systems"]:
                system.update(self._bus_options())
            self._write(credentials)
            return credentials
        seeded = await world.seed(
            self.bus.registry, {spec.code: self.provider_url(spec.code) for spec in PROVIDERS}
        )
        credentials = {
            "systems": [
                {
                    "clientId": s.client_id,
                    "clientSecret": s.client_secret,
                    "clientPrivateKey": s.private_key_b64,
                    **self._bus_options(),
                    "systemCode": s.spec.code,
                    "institution": s.spec.institution,
                    "apiCodes": s.api_codes,
                    "pushCodes": s.push_codes,
                }
                for s in seeded
            ]
        }
        self._write(credentials)
        return credentials

    def _bus_options(self) -> dict[str, str]:
        return {
            "esbPublicKey": self.bus.signer.public_key.b64,
            "esbTokenUrl": self.settings.token_url,
            "esbEngineUrl": self.settings.engine_url,
        }

    def _write(self, credentials: dict[str, Any]) -> None:
        """credentials.json holds private keys and secrets: readable by its owner only."""
        self.credentials_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.credentials_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(credentials, f, indent=2, ensure_ascii=False)

    async def _repoint_providers(self) -> None:
        """A demo restarted on other ports: move the demo APIs' endpoints along."""
        for api in world.APIS:
            url = self.provider_url(api.provider) + api.path
            current = await self.bus.registry.get_api(api.code)
            if current["endpoint_url"] != url:
                await self.bus.registry.update_api(world.ACTOR, api.code, endpoint_url=url)

    async def _start_providers(self, credentials: dict[str, Any]) -> None:
        keys = {s["systemCode"]: s["clientPrivateKey"] for s in credentials["systems"]}
        for spec in PROVIDERS:
            provider = Provider(load_private_key(keys[spec.code]), self.bus.signer.public_key)
            paths = {
                api.path: world.HANDLERS[api.path]
                for api in world.APIS
                if api.provider == spec.code
            }
            app = provider_app(provider, paths)
            self._servers.append(await _serve(app, self.host, self.provider_ports[spec.code]))


def next_steps(demo: Demo, credentials: dict[str, Any]) -> str:
    consumer = next(s for s in credentials["systems"] if s["systemCode"] == "MOH-HMIS")
    path = demo.credentials_path.resolve()
    settings = demo.settings
    return f"""
kiungo demo bus: {settings.effective_public_url}
  token URL   {settings.token_url}
  engine URL  {settings.engine_url}
  bus public key (kiungo keys show-bus): {demo.bus.signer.public_key.b64}
  credentials of the demo systems: {path}
  APIs MOH-HMIS (Ministry of Health) may call: {", ".join(consumer["apiCodes"])}

A signed request as MOH-HMIS with the kiungo SDK (from this folder):

.venv/bin/python -c '
import json
from kiungo.sdk import Client
creds = next(s for s in json.load(open("{path}"))["systems"] if s["systemCode"] == "MOH-HMIS")
with Client.from_credentials(creds) as bus:
    print(bus.request("NIDA-VERIFY", {{"nin": "19900101-11111-00001-23"}}).body)'

The same with the JavaScript connector (`make setup` installed it under peers/):

cd peers && node -e '
const {{ GovEsbHelper }} = require("govesb-connector-js");
const creds = require("{path}").systems.find(s => s.systemCode === "MOH-HMIS");
new GovEsbHelper(creds)
  .requestData("NIDA-VERIFY", JSON.stringify({{ nin: "19900101-11111-00001-23" }}), "json")
  .then(console.log);'

Press Ctrl-C to stop.
"""


async def serve_demo(data_dir: Path, host: str, port: int) -> None:
    demo = Demo(data_dir, host=host, port=port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    credentials = await demo.start()
    print(next_steps(demo, credentials), flush=True)
    try:
        await stop.wait()
    finally:
        await demo.stop()
