"""Summarize a py-spy raw profile (``py-spy record --format raw``) of the bus.

A raw profile has one line per distinct stack: ``frame;frame;...;frame COUNT``, root
first, each frame ``function (package/file.py:line)``. py-spy runs in its default
(blocking) mode, which pauses the process for each sample: stacks are then complete
(without pausing, many coroutine stacks lose their callers), but a paused thread always
looks busy, so idle threads are recognized here by their leaf line (a thread waiting in
``queue.get()``, ``Condition.wait()``...).

The main thread (the event loop; samples not rooted in ``threading``) is summarized as:

- the top functions by *own* samples (the leaf frame) and by *cumulative* samples (every
  function on the stack, once per stack), as shares of the main thread's samples;
- the share of each *component* of the bus: a sample is charged to the innermost frame
  that belongs to a known component (ECDSA, kiungo's protocol core, the engine, the token
  check, the outbound client, the inbound server, the exchange log). Frames of the standard
  library and asyncio are transparent (``hmac.new`` called from the token check is the
  token check's), so a sample with only such frames is the event loop's.

Other threads (aiosqlite's connection threads, the resolver pool) are listed by their busy
leaf lines, as shares of the same sampling periods.
"""

from __future__ import annotations

import collections
import linecache
import re
import sys
from dataclasses import dataclass
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
# A leaf line of a non-main thread that blocks: the thread is idle there.
_WAITING = re.compile(
    r"\b(get|get_nowait|wait|acquire|select|poll|sleep|join|_wait_for_tstate_lock)\("
)

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
        ("kiungo/ledger/", "sqlalchemy/", "aiosqlite/", "sqlite3/", "greenlet/"),
    ),
    (
        "outbound client (kiungo/engine/outbound and pool, or aiohttp)",
        (
            "kiungo/engine/outbound.py",
            "kiungo/engine/pool.py",
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
EVENT_LOOP = "event loop: uvloop's C code (socket I/O, callbacks) and asyncio"
_LOOP_RUNNER = ("Runner.run", "asyncio/runners.py")
_THREAD_ROOTS = ("threading.py",)


@dataclass(frozen=True)
class Frame:
    func: str
    file: str
    line: int

    @property
    def name(self) -> str:
        return f"{self.func} ({self.file})"


def parse_frame(text: str) -> Frame:
    m = _FRAME.match(text.strip())
    if m is None:
        return Frame(text.strip(), "", 0)
    return Frame(m["func"], m["file"], int(m["line"] or 0))


def component_of(frame: Frame) -> str | None:
    for name, prefixes in COMPONENTS:
        if any(frame.file.startswith(p) or f"/{p}" in frame.file for p in prefixes):
            return name
    return None


def source_line(frame: Frame) -> str:
    """The source text of a frame's line (py-spy shortens paths to the package part)."""
    if not frame.line:
        return ""
    candidates = [Path(frame.file)] + [Path(p) / frame.file for p in sys.path if p]
    for path in candidates:
        if path.is_file():
            return linecache.getline(str(path), frame.line).strip()
    return ""


def read_raw(path: Path) -> list[tuple[list[Frame], int]]:
    stacks = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        stack_text, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = [parse_frame(f) for f in stack_text.split(";") if f]
        # With --threads py-spy adds a "thread (0x...)" pseudo-frame first: keep it out.
        frames = [f for f in frames if not f.func.startswith("thread (")]
        if frames:
            stacks.append((frames, int(count)))
    return stacks


def _main_part(frames: list[Frame]) -> list[Frame]:
    """Cut the start-up chain above the loop runner (cli, typer, uvicorn.run): the same in
    every sample, it would top every cumulative list."""
    for i in range(len(frames) - 1, -1, -1):
        if (frames[i].func, frames[i].file) == _LOOP_RUNNER:
            return frames[i:]
    return frames


def summarize(path: Path, top: int = 20) -> dict[str, object]:
    own: collections.Counter[str] = collections.Counter()
    cumulative: collections.Counter[str] = collections.Counter()
    components: collections.Counter[str] = collections.Counter()
    other_busy: collections.Counter[str] = collections.Counter()
    main = other_idle = 0
    for frames, count in read_raw(path):
        if frames[0].file in _THREAD_ROOTS:  # another thread: busy or waiting?
            leaf = frames[-1]
            text = source_line(leaf)
            if _WAITING.search(text):
                other_idle += count
            else:
                other_busy[f"{leaf.name}: {text or leaf.line}"] += count
            continue
        main += count
        frames = _main_part(frames)
        own[frames[-1].name] += count
        for name in {f.name for f in frames}:
            cumulative[name] += count
        charged = EVENT_LOOP
        for frame in reversed(frames):
            found = component_of(frame)
            if found is not None:
                charged = found
                break
        components[charged] += count
    periods = main or 1

    def rows(counter: collections.Counter[str], key: str = "function") -> list[dict[str, object]]:
        return [
            {key: name, "samples": n, "percent": round(100 * n / periods, 1)}
            for name, n in counter.most_common(top)
        ]

    return {
        "samples": main,
        "other_thread_samples": {"busy": sum(other_busy.values()), "idle": other_idle},
        "own": rows(own),
        "cumulative": rows(cumulative),
        "components": rows(components, "component"),
        "other_threads": rows(other_busy),
    }


def markdown(summary: dict[str, object], top: int = 12, us_per_request: float | None = None) -> str:
    """Tables of a summary; with ``us_per_request`` (the main thread's CPU per request in
    the profiled run) each share is also shown as microseconds per request."""

    def cell(percent: float) -> str:
        if us_per_request is None:
            return f"{percent} %"
        return f"{percent} % | {percent / 100 * us_per_request:.0f}"

    head = "| share |" if us_per_request is None else "| share | ≈ µs/request |"
    rule = "|---:|" if us_per_request is None else "|---:|---:|"
    lines = [
        f"{summary['samples']} samples of the main thread (the event loop)",
        "",
        f"| component {head}",
        f"|---{rule}",
    ]
    for row in summary["components"]:  # type: ignore[attr-defined]
        lines.append(f"| {row['component']} | {cell(row['percent'])} |")
    for key, title in (("own", "own time"), ("cumulative", "cumulative time")):
        lines += ["", f"| top functions by {title} {head}", f"|---{rule}"]
        for row in summary[key][:top]:  # type: ignore[index]
            lines.append(f"| `{row['function']}` | {cell(row['percent'])} |")
    others = summary["other_threads"]
    if others:
        lines += ["", "| other threads, busy at | share of the same periods |", "|---|---:|"]
        for row in others[:5]:  # type: ignore[index]
            lines.append(f"| `{row['function']}` | {row['percent']} % |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(summarize(Path(sys.argv[1]))))
