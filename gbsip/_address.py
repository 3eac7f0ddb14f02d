"""Where a SIP peer is: ``udp://HOST:PORT``, ``tcp://[::1]:5060`` or ``HOST:PORT``."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from gbsip.errors import ConfigurationError

__all__ = ["PortRangeError", "Target", "is_ip", "parse_target"]


@dataclass(frozen=True)
class Target:
    """A SIP peer address: transport (``udp``/``tcp``), host, port."""

    transport: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}://{host}:{self.port}"


class PortRangeError(ConfigurationError):
    """A peer address whose port is not 1-65535."""

    def __init__(self, url: str, port: int) -> None:
        super().__init__(f"{url!r}: port {port} out of range 1-65535")
        self.port = port


def parse_target(url: str, default_port: int = 5060) -> Target:
    """``udp://127.0.0.1:5060``, ``tcp://[::1]:5070`` or ``host:port`` (UDP).
    Raises :class:`gbsip.ConfigurationError` (a ``ValueError``) naming the
    problem."""
    transport, rest = "udp", url.strip()
    if "://" in rest:
        scheme, rest = rest.split("://", 1)
        transport = scheme.lower()
    if transport not in ("udp", "tcp"):
        raise ConfigurationError(f"{url!r}: the scheme must be udp:// or tcp://")
    rest = rest.rstrip("/")
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
    elif rest.count(":") == 1:
        host, port_text = rest.split(":")
    else:
        host, port_text = rest, ""
    try:
        port = int(port_text) if port_text else default_port
    except ValueError:
        raise ConfigurationError(f"{url!r}: the port must be a number") from None
    if not 0 < port < 65536:
        raise PortRangeError(url, port)
    if not host:
        raise ConfigurationError(f"{url!r}: expected udp://HOST:PORT or tcp://HOST:PORT")
    return Target(transport, host, port)


def is_ip(host: str) -> bool:
    """Whether ``host`` is an IPv4 or IPv6 address (not a name to resolve)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
