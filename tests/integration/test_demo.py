"""The demo world: what `kiungo demo` seeds, writes and prints."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
from tests.integration.conftest import RunningBus, free_port_block

from kiungo.protocol import load_private_key, load_public_key

CONNECTOR_OPTIONS = {"clientId", "clientSecret", "clientPrivateKey", "esbPublicKey",
                     "esbTokenUrl", "esbEngineUrl"}  # fmt: skip


def test_credentials_hold_what_the_connectors_take(running_bus: RunningBus) -> None:
    """credentials.json has one entry per system with the JS connector's option names."""
    systems = running_bus.credentials["systems"]
    assert {s["systemCode"] for s in systems} == {
        "NIDA-IDS",
        "RITA-CRVS",
        "MOH-HMIS",
        "DCC-REVENUE",
    }
    for system in systems:
        assert set(system) == CONNECTOR_OPTIONS | {
            "systemCode",
            "institution",
            "apiCodes",
            "pushCodes",
        }
        load_private_key(system["clientPrivateKey"])
        assert load_public_key(system["esbPublicKey"]) == running_bus.bus.signer.public_key
        assert system["esbTokenUrl"] == running_bus.url + "/gw/govesb-uaa/oauth/token"
        assert system["esbEngineUrl"] == running_bus.url + "/engine/esb"
    by_code = {s["systemCode"]: s for s in systems}
    assert by_code["DCC-REVENUE"]["apiCodes"] == ["NIDA-VERIFY"]  # RITA-BIRTH-CERT is pending
    assert by_code["RITA-CRVS"]["pushCodes"] == ["RITA-BIRTH-REGISTERED"]
    mode = stat.S_IMODE(running_bus.demo.credentials_path.stat().st_mode)
    assert mode == 0o600


def test_the_world_has_a_pending_grant(running_bus: RunningBus) -> None:
    """The demo world holds one grant an institution requested and nobody decided yet."""
    pending = running_bus.run(running_bus.bus.registry.list_grants(status="requested"))
    assert [(g["consumer"], g["api"]) for g in pending] == [("DCC-REVENUE", "RITA-BIRTH-CERT")]


def test_a_restart_on_other_ports_keeps_the_world(tmp_path: Path) -> None:
    """The same data directory on other ports keeps the systems and moves the URLs along."""
    first = RunningBus(tmp_path)
    secret = first.system("MOH-HMIS")["clientSecret"]
    first.close()
    second = RunningBus(tmp_path)
    try:
        moh = second.system("MOH-HMIS")
        assert moh["clientSecret"] == secret
        assert moh["esbEngineUrl"] == second.url + "/engine/esb"
        r = httpx.post(moh["esbTokenUrl"], data={"grant_type": "client_credentials"},
                       auth=(moh["clientId"], secret))  # fmt: skip
        assert r.status_code == 200
        api = second.run(second.bus.registry.get_api("NIDA-VERIFY"))
        assert api["endpoint_url"] == second.demo.provider_url("NIDA-IDS") + "/nida/verify"
    finally:
        second.close()


def test_kiungo_demo_runs_prints_next_steps_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    """`kiungo demo --port N --data DIR` serves, prints what to do next, and stops on SIGINT."""
    base = free_port_block(3)  # the bus and its two demo providers
    out = tmp_path / "demo.out"
    with out.open("wb") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kiungo.cli", "demo", "--port", str(base),
             "--data", str(tmp_path / "var")],
            stdout=f, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "Press Ctrl-C" not in out.read_text(errors="replace"):
            assert proc.poll() is None, out.read_text(errors="replace")
            assert time.monotonic() < deadline, "demo did not start"
            time.sleep(0.05)  # polling the output with a deadline
        text = out.read_text()
        assert f"http://127.0.0.1:{base}" in text
        assert "Client.from_credentials" in text and "GovEsbHelper" in text
        assert httpx.get(f"http://127.0.0.1:{base}/readyz").status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
