"""Diagnostic variants of the bus, to test what a profile suggests (never the result itself).

``variant.py NAME kiungo-arguments...`` runs ``kiungo`` with one change made in memory:

- ``stock``: no change (the same as running ``kiungo``);
- ``nolog``: step 9 (the exchange log append) returns at once, nothing is written;
- ``switch``: ``sys.setswitchinterval(0.0002)``: the aiosqlite writer thread gets the GIL
  back after at most 0.2 ms instead of 5 ms while the event loop is busy;
- ``noproxyheaders``: uvicorn's proxy-headers middleware is left out;
- ``commitstats``: no change; the SQLite exchange log's commits and rows are counted and
  written to ``$KIUNGO_DATA_DIR/commit-stats.json`` every 500 commits and at exit.

The source is not changed; ``run.py --variant NAME`` measures a variant beside nginx the
same way as the bus itself.
"""

from __future__ import annotations

import sys
from typing import Any


def _nolog() -> None:
    from kiungo.ledger import log

    async def append(self: Any, record: Any) -> None:
        return None

    # Every exchange log class of the module (the database one and any subclass).
    for value in vars(log).values():
        if isinstance(value, type) and value.__module__ == log.__name__ and "append" in vars(value):
            value.append = append


def _switch() -> None:
    sys.setswitchinterval(0.0002)


def _noproxyheaders() -> None:
    import uvicorn

    real_run = uvicorn.run

    def run(*args: Any, **kwargs: Any) -> None:
        real_run(*args, proxy_headers=False, **kwargs)

    uvicorn.run = run  # type: ignore[assignment]


def _commitstats() -> None:
    """No change in behaviour: counts the exchange log's commits and rows, and writes them
    to ``$KIUNGO_DATA_DIR/commit-stats.json`` every 500 commits and at exit."""
    import atexit
    import json
    import os
    from pathlib import Path

    from kiungo.ledger import log

    stats = {"commits": 0, "rows": 0, "largest": 0}
    real = log.SqliteExchangeLog._commit

    def commit(self: Any, conn: Any, batch: list[Any]) -> None:
        stats["commits"] += 1
        stats["rows"] += len(batch)
        stats["largest"] = max(stats["largest"], len(batch))
        real(self, conn, batch)
        if stats["commits"] % 500 == 0:  # the bus may not get to run atexit handlers
            out.write_text(json.dumps(stats))

    log.SqliteExchangeLog._commit = commit  # type: ignore[method-assign]
    out = Path(os.environ.get("KIUNGO_DATA_DIR", ".")) / "commit-stats.json"
    atexit.register(lambda: out.write_text(json.dumps(stats)))


VARIANTS = {
    "stock": lambda: None,
    "nolog": _nolog,
    "switch": _switch,
    "noproxyheaders": _noproxyheaders,
    "commitstats": _commitstats,
}


def main() -> None:
    names = sys.argv[1].split("+")
    for name in names:
        VARIANTS[name]()
    from kiungo.cli import main as kiungo_main

    sys.argv = ["kiungo", *sys.argv[2:]]
    kiungo_main()


if __name__ == "__main__":
    main()
