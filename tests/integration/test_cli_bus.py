"""The bus's own CLI commands against a real bus's data directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import RunningBus

from kiungo.sdk import Client


def kiungo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kiungo.cli", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_show_bus_prints_the_key_institutions_configure(fresh_bus: RunningBus) -> None:
    """`kiungo keys show-bus` prints the public key the bus signs with."""
    result = kiungo("keys", "show-bus", "--data", str(fresh_bus.demo.data_dir))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == fresh_bus.bus.signer.public_key.b64
    assert result.stdout.strip() == fresh_bus.system("MOH-HMIS")["esbPublicKey"]


def test_show_bus_without_a_bus_says_so(tmp_path: Path) -> None:
    """Without a started bus there is no key, and the command says how to get one."""
    result = kiungo("keys", "show-bus", "--data", str(tmp_path))
    assert result.returncode == 2
    assert "start the bus once" in result.stderr
    assert "Traceback" not in result.stderr


def test_log_recent_lists_the_exchanges(fresh_bus: RunningBus) -> None:
    """`kiungo log recent` lists the latest exchanges with their request ids."""
    with Client.from_credentials(fresh_bus.system("MOH-HMIS")) as client:
        answer = client.request("NIDA-VERIFY", {"nin": "19900101-11111-00001-23"})
    result = kiungo("log", "recent", "--data", str(fresh_bus.demo.data_dir), "--limit", "5")
    assert result.returncode == 0, result.stderr
    assert answer.request_id is not None
    assert answer.request_id in result.stdout
    header, first = result.stdout.splitlines()[:2]
    assert header.split("\t")[1] == "request id"
    assert first.split("\t")[1:5] == [answer.request_id, "request", "MOH-HMIS", "NIDA-VERIFY"]
