"""IP addresses and subnets.

``normalize_ip`` gives one canonical text per address (compressed IPv6,
IPv4-mapped IPv6 ``::ffff:a.b.c.d`` folded to ``a.b.c.d``, zone ids dropped) so
the same client never appears as two identifiers.  ``ip_subnet`` groups
addresses into the network a single operator typically controls (/24 IPv4,
/48 IPv6 by default): proxy pools rotate the last octet, IPv6 hosts their
interface id.  Both work on the unique values and never raise: anything that
is not an address becomes ``<NA>`` (unknown, links nobody).
"""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import pandas as pd

from linkage.identifiers._codes import map_unique

__all__ = ["ip_subnet", "normalize_ip", "parse_ip"]


def parse_ip(text: str) -> IPv4Address | IPv6Address | None:
    """Parse one address (whitespace and ``[...]`` brackets tolerated); None if invalid."""
    s = text.strip()
    if len(s) > 2 and s[0] == "[" and s[-1] == "]":
        s = s[1:-1]
    try:
        addr = ipaddress.ip_address(s)
    except (ValueError, TypeError):
        return None
    if isinstance(addr, IPv6Address):
        mapped = addr.ipv4_mapped
        if mapped is not None:
            return mapped
        if addr.scope_id is not None:
            addr = IPv6Address(int(addr))  # drop the zone id (%eth0): same host
    return addr


def _canonical_ip(text: str) -> str | None:
    addr = parse_ip(text)
    return None if addr is None else str(addr)


def normalize_ip(ips: pd.Series) -> pd.Series:
    """Canonical text of each address (string dtype, ``<NA>`` for invalid/unknown)."""
    return map_unique(ips, _canonical_ip)


def _subnet_of(text: str, v4_prefix: int, v6_prefix: int) -> str | None:
    addr = parse_ip(text)
    if addr is None:
        # Also accept a network in CIDR form no wider than the target prefix, so that
        # ip_subnet(ip_subnet(x)) == ip_subnet(x).
        try:
            net = ipaddress.ip_network(text.strip(), strict=False)
        except (ValueError, TypeError):
            return None
        prefix = v4_prefix if isinstance(net, IPv4Network) else v6_prefix
        if net.prefixlen < prefix:
            return None
        addr = net.network_address
    if isinstance(addr, IPv4Address):
        shift = 32 - v4_prefix
        return str(IPv4Network(((int(addr) >> shift) << shift, v4_prefix)))
    shift = 128 - v6_prefix
    return str(IPv6Network(((int(addr) >> shift) << shift, v6_prefix)))


def ip_subnet(ips: pd.Series, *, v4_prefix: int = 24, v6_prefix: int = 48) -> pd.Series:
    """The subnet (``a.b.c.0/24``, ``2001:db8:1::/48``) of each address; ``<NA>`` if invalid.

    IPv4-mapped IPv6 addresses get their IPv4 subnet.  A value already in CIDR form
    with a prefix at least as long as the target is accepted (idempotence).
    """
    if not (0 <= v4_prefix <= 32 and 0 <= v6_prefix <= 128):
        raise ValueError(f"invalid prefixes /{v4_prefix}, /{v6_prefix}")
    return map_unique(ips, lambda v: _subnet_of(v, v4_prefix, v6_prefix))
