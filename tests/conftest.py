"""Fixtures shared by the whole suite: the shared vectors and the peers' locations."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# shared/ sits beside the checkout (../shared); KIUNGO_SHARED may point elsewhere.
VECTORS = ROOT.parent / "shared" / "vectors"
PEERS = ROOT / "peers" / "node_modules"


def load_vectors(name: str) -> dict:
    path = VECTORS / name
    if not path.exists():
        pytest.fail(f"shared vectors not found at {path}")
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def vector_keys() -> dict[str, dict]:
    """The keys of ../shared/vectors/keys.json by name (consumer_k1, esb_p256, ...)."""
    return load_vectors("keys.json")["keys"]


@pytest.fixture(scope="session")
def node() -> str:
    """Path of node with the JavaScript connector installed (make setup installs both)."""
    exe = shutil.which("node")
    if exe is None or not (PEERS / "govesb-connector-js").is_dir():
        pytest.fail("node or govesb-connector-js missing: run `make setup`")
    return exe
