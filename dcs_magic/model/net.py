"""Host names, with no I/O: the one loopback rule.

A loopback host is `localhost` or an IP address in 127.0.0.0/8 or ::1. The workspace client
accepts plain http only for one (the token travels in every request), and the registry API
is asked over plain http only on one (as the Docker engine treats 127.0.0.0/8 registries as
insecure without any daemon setting); everything else is https. Both ask `is_loopback`.
"""

from __future__ import annotations

import ipaddress

__all__ = ["host_name", "is_loopback"]


def host_name(netloc: str) -> str:
    """The host of `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address, without
    port and brackets: `[::1]:5000` -> `::1`, `127.0.0.2:5000` -> `127.0.0.2`."""
    text = netloc.strip()
    if text.startswith("["):
        return text[1:].partition("]")[0]
    if text.count(":") == 1:
        return text.partition(":")[0]
    return text  # a name, an IPv4 address, or a bare IPv6 address (several colons)


def is_loopback(host: str) -> bool:
    """Whether HOST (a name or address, with or without port/brackets) is this machine:
    `localhost`, 127.0.0.0/8 or ::1. A name other than localhost is not resolved: it is not
    loopback, whatever it resolves to."""
    name = host_name(host).lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
