"""Architecture rules read from the source: a pure protocol core, and arrows that point down."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "kiungo"
PROTOCOL = PACKAGE / "protocol"

# Modules that do I/O, read the clock or the environment: none belongs in the protocol core.
IMPURE_MODULES = frozenset(
    {
        "socket", "ssl", "select", "selectors", "socketserver", "asyncio", "http", "urllib",
        "urllib3", "requests", "aiohttp", "httpx", "uvicorn", "starlette", "fastapi", "smtplib",
        "ftplib", "sqlite3", "aiosqlite", "asyncpg", "psycopg", "psycopg2", "sqlalchemy",
        "alembic", "redis", "aio_pika", "pika", "time", "datetime", "subprocess", "pathlib",
        "shutil", "tempfile", "glob", "multiprocessing", "threading", "logging",
    }
)  # fmt: skip
# The only use of os the core may make, and where: fresh randomness for payload encryption.
ALLOWED_OS = {"payload.py": frozenset({"urandom"})}
IMPURE_BUILTINS = frozenset({"open", "input", "print", "__import__", "exec", "eval", "breakpoint"})

# Upper layers, highest first: a package may import a layer only from a higher one (or itself).
# Entry points above the packages, highest first: each may import those after it.
UPPER_LAYERS = ("cli", "demo", "app", "portal")
# The lowest layer: the protocol core depends on nothing else of kiungo.
PROTOCOL_MAY_IMPORT = ("kiungo.protocol", "kiungo.errors")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(
    tree: ast.AST, importer: str, *, is_package: bool
) -> Iterator[tuple[str, int]]:
    """Every module an AST imports, absolute, with the line: ``import a.b``, ``from a import
    b`` (as ``a`` and ``a.b``), relative imports, and ``importlib.import_module("...")``."""
    package = importer if is_package else importer.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base, node.lineno
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (
                    isinstance(node.func, ast.Name)
                    and node.func.id in {"import_module", "__import__"}
                )
            )
        ):
            yield node.args[0].value, node.lineno


def impurities(source: str, filename: str) -> list[str]:
    """What in one protocol module touches the outside world."""
    tree = ast.parse(source, filename)
    found = []
    for name, line in imported_modules(tree, "kiungo.protocol.x", is_package=False):
        top = name.split(".")[0]
        if top in IMPURE_MODULES:
            found.append(f"{filename}:{line} imports {name}")
        if top == "os" and name != "os":
            attr = name.split(".")[1]
            if attr not in ALLOWED_OS.get(filename, ()):
                found.append(f"{filename}:{line} imports os.{attr}")
    allowed_os = ALLOWED_OS.get(filename, frozenset())
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
            and node.attr not in allowed_os
        ):
            found.append(f"{filename}:{node.lineno} uses os.{node.attr}")
        if isinstance(node, ast.Name) and node.id in IMPURE_BUILTINS:
            found.append(f"{filename}:{node.lineno} uses {node.id}()")
        if isinstance(node, ast.Name) and node.id in {"environ", "getenv"}:
            found.append(f"{filename}:{node.lineno} reads the environment ({node.id})")
    return found


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layering_violations(source: str, importer: str, *, is_package: bool = False) -> list[str]:
    """Imports of an upper layer (cli, demo, app, portal) from a module not above it."""
    tree = ast.parse(source)
    own = layer_of(importer)
    own_rank = UPPER_LAYERS.index(own) if own in UPPER_LAYERS else len(UPPER_LAYERS)
    found = []
    for name, line in imported_modules(tree, importer, is_package=is_package):
        if not name.startswith("kiungo."):
            continue
        target = layer_of(name)
        if target in UPPER_LAYERS and target != own and UPPER_LAYERS.index(target) <= own_rank:
            found.append(f"{importer}:{line} imports {name}")
        if importer.startswith("kiungo.protocol") and not name.startswith(PROTOCOL_MAY_IMPORT):
            found.append(f"{importer}:{line} imports {name} (the protocol core depends on nothing)")
    return sorted(set(found))


PROTOCOL_MODULES = sorted(PROTOCOL.glob("*.py"))
ALL_MODULES = sorted(PACKAGE.rglob("*.py"))


class TestProtocolPurity:
    def test_every_protocol_module_is_scanned(self) -> None:
        """The scan sees the protocol modules (a guard against scanning an empty directory)."""
        names = {path.name for path in PROTOCOL_MODULES}
        assert {"__init__.py", "envelope.py", "keys.py", "payload.py", "signatures.py"} <= names

    @pytest.mark.parametrize("path", PROTOCOL_MODULES, ids=lambda p: p.name)
    def test_protocol_module_does_no_io(self, path: Path) -> None:
        """A protocol module imports no network, database, process, file or clock module, reads
        no environment and opens no file; os.urandom is allowed in payload.py only."""
        assert impurities(path.read_text(encoding="utf-8"), path.name) == []

    @pytest.mark.parametrize(
        ("source", "filename", "expected"),
        [
            ("import socket", "keys.py", "imports socket"),
            ("from http import client", "keys.py", "imports http"),
            ("import urllib.request", "keys.py", "imports urllib.request"),
            ("from datetime import datetime", "keys.py", "imports datetime"),
            ("import time\ntime.time()", "keys.py", "imports time"),
            ("from pathlib import Path", "keys.py", "imports pathlib"),
            ("import sqlalchemy as sa", "keys.py", "imports sqlalchemy"),
            ("async def f():\n    import asyncio", "keys.py", "imports asyncio"),
            ("import os\nos.environ['X']", "keys.py", "uses os.environ"),
            ("import os\nos.getenv('X')", "payload.py", "uses os.getenv"),
            ("from os import environ", "keys.py", "imports os.environ"),
            ("from os import urandom", "keys.py", "imports os.urandom"),
            ("import os\nos.urandom(12)", "keys.py", "uses os.urandom"),
            ("data = open('k.pem').read()", "keys.py", "uses open()"),
            ("import importlib\nimportlib.import_module('socket')", "keys.py", "imports socket"),
            ("__import__('subprocess')", "keys.py", "imports subprocess"),
        ],
    )
    def test_scan_catches_impurity(self, source: str, filename: str, expected: str) -> None:
        """The scan flags each kind of impurity it is meant to catch."""
        assert any(expected in finding for finding in impurities(source, filename))

    def test_scan_allows_urandom_in_payload(self) -> None:
        """os.urandom in payload.py, and pure imports anywhere, are not flagged."""
        source = "import os\nimport base64\nfrom typing import Any\niv = os.urandom(12)"
        assert impurities(source, "payload.py") == []


class TestLayering:
    def test_the_whole_package_is_scanned(self) -> None:
        """The scan covers every module under src/kiungo, including the protocol core."""
        names = {module_name(path) for path in ALL_MODULES}
        assert {"kiungo", "kiungo.errors", "kiungo.protocol", "kiungo.protocol.envelope"} <= names

    @pytest.mark.parametrize("path", ALL_MODULES, ids=lambda p: module_name(p) or "kiungo")
    def test_no_module_imports_an_upper_layer(self, path: Path) -> None:
        """Nothing imports kiungo.cli, kiungo.app or kiungo.portal except the layers above
        them (cli over app over portal), and the protocol core imports no other package."""
        source = path.read_text(encoding="utf-8")
        is_package = path.name == "__init__.py"
        assert layering_violations(source, module_name(path), is_package=is_package) == []

    @pytest.mark.parametrize(
        ("source", "importer", "is_package", "flagged"),
        [
            ("from kiungo.app import Bus", "kiungo.engine.pipeline", False, True),
            ("import kiungo.cli", "kiungo.registry.service", False, True),
            ("from kiungo import portal", "kiungo.sdk", True, True),
            ("from kiungo.portal.views import x", "kiungo.ledger.log", False, True),
            ("from ..app import Bus", "kiungo.engine.pipeline", False, True),
            ("from .. import cli", "kiungo.auth.tokens", False, True),
            (
                "if TYPE_CHECKING:\n    from kiungo.app import Bus",
                "kiungo.registry.api",
                False,
                True,
            ),
            ("def f():\n    from kiungo.app import Bus", "kiungo.engine.run", False, True),
            ("importlib.import_module('kiungo.app')", "kiungo.engine", True, True),
            ("from kiungo.cli import main", "kiungo.app", False, True),
            ("from kiungo.cli import main", "kiungo.portal.views", False, True),
            ("from kiungo.registry import x", "kiungo.protocol.keys", False, True),
            ("from kiungo.app import Bus", "kiungo.cli", False, False),
            ("from kiungo.portal import views", "kiungo.app", False, False),
            ("from kiungo.portal.views import x", "kiungo.portal.routes", False, False),
            ("from . import views", "kiungo.portal", True, False),
            ("from kiungo.protocol import sign", "kiungo.engine.pipeline", False, False),
            ("from kiungo.errors import ClientError", "kiungo.protocol.errors", False, False),
            ("from kiungo.application import x", "kiungo.engine", True, False),
            ("from .errors import X", "kiungo.protocol.keys", False, False),
        ],
    )
    def test_rule_flags_upward_imports_only(
        self, source: str, importer: str, is_package: bool, flagged: bool
    ) -> None:
        """The layering check flags upward imports in every spelling and allows downward ones."""
        assert bool(layering_violations(source, importer, is_package=is_package)) is flagged
