"""Which addresses are this machine's own (loopback): the server's and those that requests name."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """Whether *host* (an address or `localhost`, IPv6 in brackets or not) reaches this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: whatever it resolves to, treat it as reachable by others


def host_name(header: str) -> str:
    """The name in a Host header, without its port: "127.0.0.1:5080" -> "127.0.0.1", "[::1]:80" -> "[::1]"."""
    if header.startswith("["):
        return header[:header.find("]") + 1] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header
