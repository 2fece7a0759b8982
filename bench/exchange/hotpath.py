"""Summarize a py-spy raw profile (``py-spy record --format raw --function``) of the bus.

A raw profile has one line per distinct stack: ``frame;frame;...;frame COUNT``, root
first, each frame ``function (package/file.py:line)``. The summary gives:

- the top functions by *own* samples (the leaf frame);
- the top functions by *cumulative* samples (every function on the stack, once per stack);
- the share of each *component* of the bus: a sample is charged to the innermost frame
  that belongs to a known component (ECDSA libraries, kiungo's protocol core, the engine,
  the token check, the outbound client, the inbound server, the exchange log). Frames of
  the standard library and asyncio are transparent (``hmac.new`` called from the token
  check is the token check's), so a sample with only such frames is the event loop's.
"""

from __future__ import annotations

import collections
import re
from dataclasses import dataclass
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

# (component, path prefixes), checked in order; the first match names the component.
COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # kiungo/protocol/keys.py: PublicKey.verify and PrivateKey.sign call libsecp256k1 or
    # OpenSSL directly, so nearly all their own time is the ECDSA operation itself.
    (
        "ECDSA (coincurve, cryptography, kiungo's key wrappers)",
        ("coincurve/", "cryptography/", "kiungo/protocol/keys.py"),
    ),
    (
        "kiungo protocol core (envelopes, JSON, signature encoding)",
        ("kiungo/protocol/", "orjson"),
    ),
    ("token check and token endpoint (kiungo/auth)", ("kiungo/auth/",)),
    (
        "exchange log (kiungo/ledger, SQLAlchemy, aiosqlite)",
        ("kiungo/ledger/", "sqlalchemy/", "aiosqlite/", "sqlite3/"),
    ),
    (
        "outbound client (kiungo/engine/outbound, aiohttp)",
        (
            "kiungo/engine/outbound.py",
            "aiohttp/",
            "yarl/",
            "multidict/",
            "aiohappyeyeballs/",
            "propcache/",
            "frozenlist/",
            "aiosignal/",
        ),
    ),
    ("limits (kiungo/engine/limits)", ("kiungo/engine/limits.py",)),
    ("metrics (prometheus_client)", ("kiungo/engine/metrics.py", "prometheus_client/")),
    ("engine pipeline and HTTP face (kiungo/engine)", ("kiungo/engine/", "kiungo/keystore.py")),
    ("registry snapshot (kiungo/registry)", ("kiungo/registry/",)),
    ("inbound server (uvicorn, httptools)", ("uvicorn/", "httptools/")),
)
EVENT_LOOP = "event loop and other (asyncio, uvloop, stdlib)"


@dataclass(frozen=True)
class Frame:
    func: str
    file: str

    @property
    def name(self) -> str:
        return f"{self.func} ({self.file})"


def parse_frame(text: str) -> Frame:
    m = _FRAME.match(text.strip())
    if m is None:
        return Frame(text.strip(), "")
    return Frame(m["func"], m["file"])


def component_of(frame: Frame) -> str | None:
    for name, prefixes in COMPONENTS:
        if any(frame.file.startswith(p) or f"/{p}" in frame.file for p in prefixes):
            return name
    return None


def read_raw(path: Path) -> list[tuple[list[Frame], int]]:
    stacks = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line:
            continue
        stack_text, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = [parse_frame(f) for f in stack_text.split(";") if f]
        # With --threads py-spy adds a "thread (0x...)" pseudo-frame first: keep it out.
        frames = [f for f in frames if not f.func.startswith("thread (")]
        stacks.append((frames, int(count)))
    return stacks


def summarize(path: Path, top: int = 15) -> dict[str, object]:
    stacks = read_raw(path)
    total = sum(c for _, c in stacks) or 1
    own: collections.Counter[str] = collections.Counter()
    cumulative: collections.Counter[str] = collections.Counter()
    components: collections.Counter[str] = collections.Counter()
    for frames, count in stacks:
        if not frames:
            continue
        own[frames[-1].name] += count
        for name in {f.name for f in frames}:
            cumulative[name] += count
        charged = EVENT_LOOP
        for frame in reversed(frames):
            found = component_of(frame)
            if found is not None:
                charged = found
                break
        # A leaf in the loop runner itself is uvloop's C code (I/O, callbacks, parsing).
        leaf = frames[-1]
        if leaf.file.endswith(("asyncio/runners.py", "uvloop/__init__.py")) or (
            leaf.func in ("run", "serve") and leaf.file.startswith("uvicorn/")
        ):
            charged = EVENT_LOOP
        components[charged] += count

    def rows(counter: collections.Counter[str]) -> list[dict[str, object]]:
        return [
            {"function": name, "samples": n, "percent": round(100 * n / total, 1)}
            for name, n in counter.most_common(top)
        ]

    return {
        "samples": total,
        "own": rows(own),
        "cumulative": rows(cumulative),
        "components": [
            {"component": name, "samples": n, "percent": round(100 * n / total, 1)}
            for name, n in components.most_common()
        ],
    }


def markdown(summary: dict[str, object], top: int = 12) -> str:
    lines = [f"{summary['samples']} samples", "", "| component | share |", "|---|---:|"]
    for row in summary["components"]:  # type: ignore[attr-defined]
        lines.append(f"| {row['component']} | {row['percent']} % |")
    for key, title in (("own", "own time"), ("cumulative", "cumulative time")):
        lines += ["", f"| top functions by {title} | share |", "|---|---:|"]
        for row in summary[key][:top]:  # type: ignore[index]
            lines.append(f"| `{row['function']}` | {row['percent']} % |")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(markdown(summarize(Path(sys.argv[1]))))
