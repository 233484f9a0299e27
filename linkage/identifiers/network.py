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
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from linkage.identifiers._codes import as_string_series

__all__ = ["canonical_ip", "ip_and_subnet", "ip_subnet", "normalize_ip", "parse_ip", "subnet_of"]


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


# Plain dotted-quad IPv4 without leading zeros: by far the most common form, handled
# with vectorised string/integer operations; everything else goes through ``ipaddress``.
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_V4_RE = r"^" + r"\.".join([_OCTET] * 4) + r"$"


def _split(ips: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray, np.ndarray, pa.Array]:
    """(series, codes, unique raw values, plain-IPv4 mask, stripped plain IPv4 uniques)."""
    s = as_string_series(ips)
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    raw = np.asarray(uniques, dtype=object)
    u = pc.utf8_trim_whitespace(pa.array(raw, type=pa.string()))
    is_v4 = pc.fill_null(pc.match_substring_regex(u, _V4_RE), False)
    return s, codes, raw, is_v4.to_numpy(zero_copy_only=False).astype(bool), u.filter(is_v4)


def _octets(v4: pa.Array) -> np.ndarray:
    return pc.split_pattern(v4, ".").flatten().cast(pa.int64()).to_numpy().reshape(-1, 4)


def _back(s: pd.Series, codes: np.ndarray, out: np.ndarray) -> pd.Series:
    arr = pd.array(out, dtype="string") if len(out) else pd.array([], dtype="string")
    return pd.Series(arr.take(codes, allow_fill=True), index=s.index, name=s.name)


def _apply(
    ips: pd.Series,
    fast: Callable[[pa.Array, np.ndarray], np.ndarray],
    slow: Callable[[str], str | None],
) -> pd.Series:
    """Run ``fast(stripped, octets)`` on plain IPv4 uniques, ``slow`` on the other uniques."""
    s, codes, raw, is_v4, v4 = _split(ips)
    out = np.full(len(raw), None, dtype=object)
    if is_v4.any():
        out[is_v4] = fast(v4, _octets(v4))
    for i in np.flatnonzero(~is_v4):
        out[i] = slow(raw[i])
    return _back(s, codes, out)


def ip_and_subnet(
    ips: pd.Series, *, v4_prefix: int = 24, v6_prefix: int = 48
) -> tuple[pd.Series, pd.Series]:
    """``normalize_ip(ips)`` and ``ip_subnet`` of it, each address parsed once."""
    s, codes, raw, is_v4, v4 = _split(ips)
    ip = np.full(len(raw), None, dtype=object)
    subnet = np.full(len(raw), None, dtype=object)
    if is_v4.any():
        ip[is_v4] = v4.to_numpy(zero_copy_only=False)
        subnet[is_v4] = _v4_networks(_octets(v4), v4_prefix)
    for i in np.flatnonzero(~is_v4):
        addr = parse_ip(raw[i])
        if addr is not None:
            ip[i] = str(addr)
            subnet[i] = _network_of(addr, v4_prefix, v6_prefix)
    return _back(s, codes, ip), _back(s, codes, subnet)


def canonical_ip(text: str) -> str | None:
    """Canonical text of one address (None if invalid): :func:`normalize_ip` for one value."""
    addr = parse_ip(text)
    return None if addr is None else str(addr)


def normalize_ip(ips: pd.Series) -> pd.Series:
    """Canonical text of each address (string dtype, ``<NA>`` for invalid/unknown)."""
    return _apply(ips, lambda v4, _: v4.to_numpy(zero_copy_only=False), canonical_ip)


def _v4_networks(octets: np.ndarray, prefix: int) -> np.ndarray:
    """``a.b.c.d/prefix`` text of the networks of integer octet rows (vectorised)."""
    value = (octets[:, 0] << 24) | (octets[:, 1] << 16) | (octets[:, 2] << 8) | octets[:, 3]
    mask = ((1 << 32) - 1) ^ ((1 << (32 - prefix)) - 1)
    value &= mask
    parts = [pc.cast(pa.array((value >> s) & 255), pa.string()) for s in (24, 16, 8, 0)]
    text = pc.binary_join_element_wise(*parts, ".")
    text = pc.binary_join_element_wise(text, pa.scalar(str(prefix)), "/")
    return text.to_numpy(zero_copy_only=False)


def subnet_of(text: str, v4_prefix: int, v6_prefix: int) -> str | None:
    """Subnet of one address (None if invalid): :func:`ip_subnet` for one value."""
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
    return _network_of(addr, v4_prefix, v6_prefix)


def _network_of(addr: IPv4Address | IPv6Address, v4_prefix: int, v6_prefix: int) -> str:
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
    return _apply(
        ips,
        lambda _, octets: _v4_networks(octets, v4_prefix),
        lambda v: subnet_of(v, v4_prefix, v6_prefix),
    )
