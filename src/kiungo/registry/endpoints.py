"""Where the bus may send requests: the operator's allow-list of provider endpoints.

A provider endpoint is checked when it is registered and again when it is called (on the
resolved address), so that no registered URL can aim the bus at its own admin API, at
loopback, link-local or other special addresses. Entries are host names (``api.nida.go.tz``,
``*.go.tz``), IP addresses or networks (``10.20.0.0/16``, ``[fd00::/8]``), each optionally
with ``:port`` or ``:low-high``. Special addresses pass only through an entry that names
them explicitly (the demo admits ``127.0.0.1:9100-9199``), never through a wider network.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from kiungo.registry.errors import EndpointNotAllowed

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _special(net: IPNetwork | IPAddress) -> bool:
    """Loopback, link-local, unspecified, multicast or reserved; a network only when all
    of it is (so ``0.0.0.0/0`` is not special, ``127.0.0.0/8`` is)."""
    if isinstance(net, ipaddress.IPv6Address) and net.ipv4_mapped is not None:
        return True
    return bool(
        net.is_loopback or net.is_link_local or net.is_unspecified or net.is_multicast
        or net.is_reserved
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Entry:
    host: str | None  # lower-case name, or "*.suffix"
    network: IPNetwork | None
    ports: tuple[int, int] | None

    def port_ok(self, port: int) -> bool:
        return self.ports is None or self.ports[0] <= port <= self.ports[1]

    def name_ok(self, host: str) -> bool:
        if self.host is None:
            return False
        if self.host.startswith("*."):
            return host.endswith(self.host[1:]) and host != self.host[2:]
        return host == self.host

    def ip_ok(self, ip: IPAddress) -> bool:
        if self.network is None or ip.version != self.network.version:
            return False
        if ip not in self.network:
            return False
        # A special address passes only an entry that lies within special space itself.
        return not _special(ip) or _special(self.network)


def _parse_entry(text: str) -> _Entry:
    text = text.strip()
    ports = None
    host = text
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"allow-list entry {text!r}: missing ']'")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            ports = _parse_ports(rest.removeprefix(":"), text)
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        ports = _parse_ports(port_text, text)
    try:
        return _Entry(None, ipaddress.ip_network(host, strict=False), ports)
    except ValueError:
        pass
    name = host.lower().rstrip(".")
    if not name or any(c in name for c in "/@ ") or "*" in name.removeprefix("*."):
        raise ValueError(f"allow-list entry {text!r} is not a host, network or pattern")
    return _Entry(name, None, ports)


def _parse_ports(text: str, entry: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    try:
        lo, hi = int(low), int(high or low)
    except ValueError:
        raise ValueError(f"allow-list entry {entry!r}: bad port {text!r}") from None
    if not 0 < lo <= hi < 65536:
        raise ValueError(f"allow-list entry {entry!r}: bad port range {text!r}")
    return lo, hi


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str
    port: int
    ip: IPAddress | None


class EndpointPolicy:
    """Decides whether the bus may call a URL; ``own`` are the bus's own (host, port)s."""

    def __init__(self, entries: list[str], own: set[tuple[str, int]] | None = None) -> None:
        self.entries = tuple(_parse_entry(e) for e in entries)
        self.own = {(h.lower(), p) for h, p in (own or set())}
        self.own_ports = {p for _, p in self.own}

    def check_url(self, url: str) -> Target:
        """Raise EndpointNotAllowed unless ``url`` may be registered and called."""
        target = parse_target(url)
        if target.ip is not None:
            self.check_address(target.ip, target.port, shown=target.host)
        elif not any(e.name_ok(target.host) and e.port_ok(target.port) for e in self.entries):
            raise EndpointNotAllowed(
                f"endpoint host {target.host}:{target.port} is not in the bus's allow-list"
            )
        if (target.host, target.port) in self.own:
            raise EndpointNotAllowed("endpoint points at the bus itself")
        return target

    def check_address(self, ip: IPAddress, port: int, *, shown: str | None = None) -> None:
        """Check a resolved address (at call time, after DNS)."""
        shown = shown or str(ip)
        if (ip.is_loopback or ip.is_unspecified) and port in self.own_ports:
            raise EndpointNotAllowed("endpoint points at the bus itself")
        if not any(e.ip_ok(ip) and e.port_ok(port) for e in self.entries):
            kind = " (a loopback, link-local or reserved address)" if _special(ip) else ""
            raise EndpointNotAllowed(
                f"endpoint address {shown}:{port}{kind} is not in the bus's allow-list"
            )

    def resolved_ok(self, host: str, ip: IPAddress, port: int) -> bool:
        """May a host allowed by name be reached at the address DNS gave for it?"""
        if (ip.is_loopback or ip.is_unspecified) and port in self.own_ports:
            return False
        if any(e.ip_ok(ip) and e.port_ok(port) for e in self.entries):
            return True
        named = any(e.name_ok(host.lower()) and e.port_ok(port) for e in self.entries)
        return named and not _special(ip)


def parse_target(url: str) -> Target:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise EndpointNotAllowed(f"endpoint URL is not valid: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise EndpointNotAllowed("endpoint URL must use http or https")
    if parts.username or parts.password:
        raise EndpointNotAllowed("endpoint URL must not carry credentials")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise EndpointNotAllowed("endpoint URL has no host")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        ip: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    return Target(parts.scheme, host, port, ip)
