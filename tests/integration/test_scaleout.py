"""Scale-out on PostgreSQL: several engine processes behind one registry.

The demo world runs in this test process (one bus process, with the demo providers);
two more bus processes are started with ``kiungo serve`` on the same database and data
directory, as separate OS processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.conftest import RunningBus, free_port
from tests.services import postgres_database

from kiungo import protocol as P

NIN = {"nin": "19900101-11111-00001-23"}


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, deadline: float = 60) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            output = log.read_text(errors="replace")[-3000:]
            raise AssertionError(f"kiungo serve exited with {proc.returncode}:\n{output}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)  # polling for readiness with a deadline, not hoping
    raise AssertionError(f"{url} did not become ready")


class Cluster:
    def __init__(self, tmp: Path, database_url: str) -> None:
        # Reloads are far apart, so only NOTIFY can spread a change quickly.
        self.main = RunningBus(tmp, database_url=database_url, registry_reload_seconds=30)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self.urls: list[str] = []
        allow = ",".join(self.main.demo.settings.provider_allowlist)
        for _ in range(2):
            port = free_port()
            env = {
                **os.environ,
                "KIUNGO_DATA_DIR": str(tmp),
                "KIUNGO_DATABASE_URL": database_url,
                "KIUNGO_PROVIDER_ALLOWLIST": allow,
                "KIUNGO_REGISTRY_RELOAD_SECONDS": "30",
            }
            cmd = [sys.executable, "-m", "kiungo.cli", "serve", "--host", "127.0.0.1",
                   "--port", str(port)]  # fmt: skip
            log = tmp / f"serve-{port}.log"
            with log.open("wb") as out:  # the child keeps its own descriptor
                proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
            self.procs.append(proc)
            self.logs.append(log)
            self.urls.append(f"http://127.0.0.1:{port}")
        for url, proc, log in zip(self.urls, self.procs, self.logs, strict=True):
            _wait_ready(url, proc, log)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.main.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with postgres_database() as url:
        c = Cluster(tmp_path, url)
        try:
            yield c
        finally:
            c.close()


def token(url: str, creds: dict[str, Any]) -> str:
    r = httpx.post(
        url + "/gw/govesb-uaa/oauth/token",
        data={"client_id": creds["clientId"], "client_secret": creds["clientSecret"],
              "grant_type": "client_credentials"},
        auth=(creds["clientId"], creds["clientSecret"]),
    )  # fmt: skip
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def call(url: str, creds: dict[str, Any], tok: str, api: str = "NIDA-VERIFY") -> tuple[int, dict]:
    key = P.load_private_key(creds["clientPrivateKey"])
    body = P.build_envelope({"apiCode": api, "esbBody": NIN}, key, root="esbrequest")
    r = httpx.post(
        url + "/engine/esb/request",
        content=body,
        headers={"Authorization": f"Bearer {tok}", "Content-Type": "application/json"},
        timeout=10,
    )
    envelope = P.open_envelope(r.content, P.load_public_key(creds["esbPublicKey"]))
    return r.status_code, envelope.data


def wait_for_status(url: str, creds: dict, tok: str, status: int, deadline: float = 5) -> float:
    """Seconds until ``url`` answers ``status``; fails after ``deadline``."""
    start = time.monotonic()
    while time.monotonic() - start < deadline:
        if call(url, creds, tok)[0] == status:
            return time.monotonic() - start
    raise AssertionError(f"{url} did not answer {status} within {deadline} s")


def test_a_token_from_one_process_is_accepted_by_the_others(cluster: Cluster) -> None:
    """Any engine process accepts a token another one issued."""
    creds = cluster.main.system("MOH-HMIS")
    tok = token(cluster.urls[0], creds)
    for url in [cluster.main.url, *cluster.urls]:
        status, data = call(url, creds, tok)
        assert status == 200 and data["success"] is True, data


def test_a_revoked_grant_takes_effect_in_every_process(cluster: Cluster) -> None:
    """Revoking a grant in one process refuses the consumer in the others promptly."""
    creds = cluster.main.system("MOH-HMIS")
    tok = token(cluster.urls[1], creds)
    assert call(cluster.urls[1], creds, tok)[0] == 200
    bus = cluster.main.bus
    grant = next(
        g
        for g in cluster.main.run(bus.registry.list_grants(consumer="MOH-HMIS", api="NIDA-VERIFY"))
    )
    cluster.main.run(bus.registry.decide_grant("op", grant["id"], "revoke"))
    for url in cluster.urls:
        wait_for_status(url, creds, tok, 403)
    status, data = call(cluster.urls[0], creds, tok)
    assert status == 403
    assert data["message"] == "Access to API code NIDA-VERIFY is not granted"


def test_a_disabled_api_and_a_rotated_key_reach_every_process(cluster: Cluster) -> None:
    """Disabling an API and rotating a consumer key are seen by the other processes."""
    creds = cluster.main.system("MOH-HMIS")
    tok = token(cluster.urls[0], creds)
    bus = cluster.main.bus
    new_key = P.generate_private_key()
    cluster.main.run(bus.registry.add_key("op", "MOH-HMIS", new_key.public_key.b64))
    rotated = {**creds, "clientPrivateKey": new_key.b64}
    for url in cluster.urls:
        wait_for_status(url, rotated, tok, 200)
    cluster.main.run(bus.registry.update_api("op", "NIDA-VERIFY", status="disabled"))
    for url in cluster.urls:
        wait_for_status(url, creds, tok, 403)


def test_killing_one_process_leaves_the_others_answering(cluster: Cluster) -> None:
    """After one engine process is killed with SIGKILL, the others still answer."""
    creds = cluster.main.system("MOH-HMIS")
    tok = token(cluster.urls[0], creds)
    cluster.procs[0].send_signal(signal.SIGKILL)
    cluster.procs[0].wait(10)
    with pytest.raises(httpx.ConnectError):
        httpx.get(cluster.urls[0] + "/healthz", timeout=2)
    for _ in range(5):
        status, data = call(cluster.urls[1], creds, tok)
        assert status == 200 and data["success"] is True
    assert call(cluster.main.url, creds, tok)[0] == 200


def _workers(pid: int) -> list[int]:
    """The worker processes uvicorn spawned (not multiprocessing's resource tracker)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    children = [int(p) for p in path.read_text().split()] if path.exists() else []
    return [c for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def test_serve_with_workers_survives_a_killed_worker(cluster: Cluster, tmp_path: Path) -> None:
    """`kiungo serve --workers 2` keeps answering after one worker is killed with SIGKILL."""
    port = free_port()
    env = {
        **os.environ,
        "KIUNGO_DATA_DIR": str(tmp_path),
        "KIUNGO_DATABASE_URL": cluster.main.demo.settings.database_url,
        "KIUNGO_PROVIDER_ALLOWLIST": ",".join(cluster.main.demo.settings.provider_allowlist),
    }
    log = tmp_path / "workers.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kiungo.cli", "serve", "--workers", "2", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    cluster.procs.append(proc)  # stopped with the cluster
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url, proc, log)
    workers = _workers(proc.pid)
    assert len(workers) == 2, workers
    creds = cluster.main.system("MOH-HMIS")
    tok = token(url, creds)
    os.kill(workers[0], signal.SIGKILL)
    for _ in range(10):
        status, data = call(url, creds, tok)
        assert status == 200 and data["success"] is True
