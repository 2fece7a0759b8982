"""Diagnostic variants of the bus, to test what a profile suggests (never the result itself).

``variant.py NAME kiungo-arguments...`` runs ``kiungo`` with one change made in memory:

- ``stock``: no change (the same as running ``kiungo``);
- ``nolog``: step 9 (the exchange log append) returns at once, nothing is written;
- ``switch``: ``sys.setswitchinterval(0.0002)``: the aiosqlite writer thread gets the GIL
  back after at most 0.2 ms instead of 5 ms while the event loop is busy;
- ``noproxyheaders``: uvicorn's proxy-headers middleware is left out.

The source is not changed; ``run.py --variant NAME`` measures a variant beside nginx the
same way as the bus itself.
"""

from __future__ import annotations

import sys
from typing import Any


def _nolog() -> None:
    from kiungo.ledger.log import DatabaseExchangeLog

    async def append(self: Any, record: Any) -> None:
        return None

    DatabaseExchangeLog.append = append  # type: ignore[method-assign]


def _switch() -> None:
    sys.setswitchinterval(0.0002)


def _noproxyheaders() -> None:
    import uvicorn

    real_run = uvicorn.run

    def run(*args: Any, **kwargs: Any) -> None:
        real_run(*args, proxy_headers=False, **kwargs)

    uvicorn.run = run  # type: ignore[assignment]


VARIANTS = {
    "stock": lambda: None,
    "nolog": _nolog,
    "switch": _switch,
    "noproxyheaders": _noproxyheaders,
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
