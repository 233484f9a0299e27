"""IP normalisation and subnets."""

from __future__ import annotations

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from linkage.identifiers import ip_subnet, normalize_ip


def _s(values: list[str | None]) -> pd.Series:
    return pd.Series(values, dtype="string")


def test_normalize_ip_canonical_forms() -> None:
    out = normalize_ip(
        _s([" 10.0.0.1 ", "::ffff:10.0.0.1", "2001:DB8:0:0:0:0:0:1", "fe80::1%eth0", "[::1]"])
    )
    assert out.tolist() == ["10.0.0.1", "10.0.0.1", "2001:db8::1", "fe80::1", "::1"]


def test_normalize_ip_garbage_is_na() -> None:
    out = normalize_ip(_s(["garbage", "", "1.2.3", "256.1.1.1", "01.2.3.4", None]))
    assert out.isna().all()
    assert isinstance(out.dtype, pd.StringDtype)


def test_ip_subnet_v4_and_v6() -> None:
    out = ip_subnet(
        _s(["1.2.3.4", "1.2.3.250", "2001:db8:1:2::5", "::ffff:192.168.7.9", "x", None])
    )
    assert out.tolist()[:4] == ["1.2.3.0/24", "1.2.3.0/24", "2001:db8:1::/48", "192.168.7.0/24"]
    assert out.iloc[4:].isna().all()


def test_ip_subnet_custom_prefix_and_index_kept() -> None:
    s = pd.Series(["10.1.2.3", "2001:db8:abcd:1234::1"], index=[7, 3], dtype="string")
    out = ip_subnet(s, v4_prefix=16, v6_prefix=32)
    assert out.index.tolist() == [7, 3]
    assert out.tolist() == ["10.1.0.0/16", "2001:db8::/32"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.one_of(st.text(max_size=40), st.ip_addresses().map(str), st.none()), max_size=20)
)
def test_ip_properties(values: list[str | None]) -> None:
    s = pd.Series(values, dtype="string")
    ip = normalize_ip(s)
    sub = ip_subnet(s)
    assert len(ip) == len(s) and len(sub) == len(s)
    assert s[s.isna()].index.isin(ip[ip.isna()].index).all()
    known = ip.dropna()
    assert normalize_ip(known).tolist() == known.tolist()  # idempotent
    known_sub = sub.dropna()
    assert ip_subnet(known_sub).tolist() == known_sub.tolist()
    # a valid address always has a subnet, and it is the subnet of its canonical form
    assert sub[ip.notna()].notna().all()
    assert ip_subnet(known).tolist() == sub[known.index].tolist()


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.ip_addresses().map(str),
            st.ip_addresses(v=6).map(lambda a: a.exploded.upper()),
            st.text(max_size=20),
        ),
        max_size=30,
    )
)
def test_ip_and_subnet_in_one_pass_equal_the_two_steps(values: list[str]) -> None:
    from linkage.identifiers.network import ip_and_subnet

    ip, subnet = ip_and_subnet(_s(values), v4_prefix=22, v6_prefix=56)
    expected = normalize_ip(_s(values))
    pd.testing.assert_series_equal(ip, expected)
    pd.testing.assert_series_equal(subnet, ip_subnet(expected, v4_prefix=22, v6_prefix=56))
