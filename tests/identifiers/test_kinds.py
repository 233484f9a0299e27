"""Every declared kind normalises identically on the batch SQL path and the one-row path.

The batch path is the identifiers stage's SQL (DuckDB) with its per-distinct-value
normalisers; the one-row path is :func:`linkage.signup.record_identifiers`, which the
signup scorer runs per request.  Each hypothesis example is a batch of texts: text
``i`` is every raw attribute of account ``i`` (sign-up IP, e-mail, device, card, user
agent) and of one of its requests (IP, device), so one SQL run checks every kind on
both of its sources.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linkage.engine import DuckDBEngine
from linkage.identifiers.kinds import FAMILIES, KINDS, VALUE_MAPS, VELOCITY_LIMITS, WHITESPACE
from linkage.identifiers.sql import run_aggregation
from linkage.settings import Settings
from linkage.signup import record_identifiers, signup_identifiers

SETTINGS = Settings()
RAW_KINDS = [k for k in KINDS if k.accounts_column or k.sql or k.value_map]
T0 = "2024-03-01T00:00:00Z"

_space = st.sampled_from(["", " ", "\t", "\u00a0", "\u3000", " \n"])
_case = st.sampled_from([str, str.upper, str.lower, str.title])
_ipv4 = st.ip_addresses(v=4).map(str)
_ipv6 = st.ip_addresses(v=6).flatmap(
    lambda a: st.sampled_from(
        [str(a), a.exploded, a.exploded.upper(), f"[{a}]", f"::ffff:{a.exploded[-9:]}"]
    )
)
_local = st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,10}[a-z0-9]", fullmatch=True)
_domain = st.sampled_from(
    ["gmail.com", "googlemail.com", "outlook.com", "yahoo.com", "example.org", "mailinator.com"]
)
_email = st.builds(lambda lo, d, c: c(f"{lo}@{d}"), _local, _domain, _case)
_ua = st.sampled_from(
    [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.6367.60 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.4 Safari/605.1.15",
        "OpenAI/Python 1.30.1",
        "python-requests/2.31.0",
        "curl/8.4.0",
        "Go-http-client/1.1",
        "Mozilla/5.0",
    ]
)
_fingerprint = st.from_regex(r"[0-9a-fA-F]{8,32}", fullmatch=True)
_realistic = st.one_of(_ipv4, _ipv6, _email, _ua, _fingerprint)
_padded = st.builds(lambda a, s, b: a + s + b, _space, _realistic, _space)
TEXTS = st.lists(st.one_of(st.text(max_size=30), _padded), min_size=1, max_size=25)


def _batch_sql(texts: list[str]) -> pd.DataFrame:
    """Edges of the SQL path: account ``a<i>`` holds text ``i`` in every raw column."""
    ids = [f"a{i}" for i in range(len(texts))]
    accounts = {"account_id": ids, "created_at": [T0] * len(texts)}
    accounts |= {k.accounts_column: texts for k in KINDS if k.accounts_column}
    requests = {"account_id": ids, "ts": [T0] * len(texts)}
    requests |= {k.request_column: texts for k in RAW_KINDS if k.request_column}
    with DuckDBEngine(threads=1) as engine:
        out = run_aggregation(
            engine,
            requests=pa.table(requests),
            accounts=pa.table(accounts),
            settings=SETTINGS.identifiers,
        )
    edges = out["edges"].to_pandas()
    edges["account_id"] = [sorted(ids)[c] for c in edges["account_code"]]
    return edges


@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXTS)
def test_one_row_and_batch_sql_paths_normalise_every_kind_identically(texts: list[str]) -> None:
    edges = _batch_sql(texts)
    for i, text in enumerate(texts):
        mine = edges[edges["account_id"] == f"a{i}"]
        keys, _ = record_identifiers(
            {k.accounts_column: text for k in KINDS if k.accounts_column}, settings=SETTINGS
        )
        assert sorted(zip(mine["kind"], mine["value"], strict=True)) == sorted(keys), text
        for k in RAW_KINDS:
            value = k.normalize_one(text, SETTINGS.identifiers)
            got = mine.loc[mine["kind"] == k.name, "value"].tolist()
            assert got == ([] if value is None else [value]), (k.name, text)
            if k.request_column and value is not None:  # the request and the sign-up
                assert mine.loc[mine["kind"] == k.name, "n"].tolist() == [2], (k.name, text)


@settings(max_examples=40, deadline=None)
@given(TEXTS)
def test_batch_signup_identifiers_equal_the_one_row_path(texts: list[str]) -> None:
    frame = pd.DataFrame({k.accounts_column: texts for k in KINDS if k.accounts_column})
    batch = signup_identifiers(frame, settings=SETTINGS)
    flags = batch.attrs["flags"]
    for i, text in enumerate(texts):
        keys, one_flags = record_identifiers(frame.iloc[i].to_dict(), settings=SETTINGS)
        rows = batch[batch["row"] == i]
        assert list(zip(rows["kind"], rows["value"], strict=True)) == keys, text
        assert flags.iloc[i].to_dict() == one_flags, text


def test_declarations() -> None:
    names = [k.name for k in KINDS]
    assert len(names) == len(set(names))
    assert WHITESPACE.strip() == "" and "\u3000" in WHITESPACE
    for k in KINDS:
        assert not (k.sql and k.value_map), k.name  # one normalisation each
        assert k.value_map is None or k.name in VALUE_MAPS[k.value_map].columns
        assert (k.sql is None) == (k.one is None), k.name
    assert FAMILIES["ip"] == FAMILIES["subnet"] == "network"
    assert VELOCITY_LIMITS == {
        "subnet": 25,
        "device": 5,
        "payment": 4,
        "email": 3,
        "email_domain": 25,
    }


def test_known_normalisations() -> None:
    ident = SETTINGS.identifiers
    by = {k.name: k for k in KINDS}
    assert by["device"].normalize_one("\u3000AbC\t", ident) == "abc"
    assert by["device"].normalize_one("ÀB", ident) == "Àb"  # ASCII letters only
    assert by["payment"].normalize_one(" \n", ident) is None
    assert by["ip"].normalize_one(" [::FFFF:10.0.0.1] ", ident) == "10.0.0.1"
    assert by["subnet"].normalize_one("2001:db8:1:2::5", ident) == "2001:db8:1::/48"
    assert by["email"].normalize_one("A.B+x@GoogleMail.com", ident) == "ab@gmail.com"
    assert by["email_domain"].normalize_one("a@gmail.com", ident) is None  # freemail
    assert by["email_domain"].normalize_one("a@Corp.example", ident) == "corp.example"
    assert by["user_agent"].normalize_one("curl/8.4.0", ident) == "curl/8"
    assert by["user_agent"].normalize_one("Mozilla/5.0", ident) is None  # "other"
