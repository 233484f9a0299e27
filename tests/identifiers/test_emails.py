"""E-mail normalisation."""

from __future__ import annotations

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from linkage.identifiers import FREEMAIL_DOMAINS, normalize_emails


def _norm(values: list[str | None]) -> pd.DataFrame:
    return normalize_emails(pd.Series(values, dtype="string"))


def test_gmail_dots_plus_and_googlemail_are_one_mailbox() -> None:
    out = _norm(
        ["J.Doe+farm1@gmail.com", "jdoe@googlemail.com", "j.d.o.e@GMAIL.COM", "jdoe@gmail.com"]
    )
    assert out["canonical"].tolist() == ["jdoe@gmail.com"] * 4
    assert out["domain"].tolist() == ["gmail.com"] * 4
    # only the +tag is an alias flag; dot-variants meet through the shared canonical mailbox
    assert out["alias"].tolist() == [True, False, False, False]
    assert out["freemail"].all()


def test_an_ordinary_dotted_gmail_address_is_not_an_alias() -> None:
    out = _norm(["first.last@gmail.com", "first.last+2@gmail.com"])
    assert out["canonical"].tolist() == ["firstlast@gmail.com"] * 2
    assert out["alias"].tolist() == [False, True]


def test_plus_tags_only_where_the_provider_ignores_them() -> None:
    out = _norm(
        [
            "a.b+x@outlook.com",
            "a+1@icloud.com",
            "a+1@proton.me",
            "base-key@yahoo.com",
            "a+1@corp.io",
        ]
    )
    assert out["canonical"].tolist() == [
        "a.b@outlook.com",  # outlook keeps dots
        "a@icloud.com",
        "a@proton.me",
        "base@yahoo.com",
        "a+1@corp.io",  # unknown provider: left as typed
    ]
    assert out["alias"].tolist() == [True, True, True, True, False]


def test_uppercase_is_not_an_alias() -> None:
    out = _norm(["  Bob@Example.COM "])
    assert out.loc[0, "canonical"] == "bob@example.com"
    assert out.loc[0, "alias"] is False or not bool(out.loc[0, "alias"])
    assert not out.loc[0, "freemail"]


def test_invalid_addresses_keep_domain_when_present() -> None:
    out = _norm(["bad address@example.com", "no-at-sign", "user@", "@gmail.com", None, "a@b"])
    assert out["canonical"].isna().all()
    assert out["domain"].tolist()[0] == "example.com"
    assert out["domain"].tolist()[3] == "gmail.com"
    assert out["domain"].iloc[[1, 2, 4, 5]].isna().all()
    assert out["disposable"].iloc[4] is pd.NA


def test_disposable_domains_and_subdomains() -> None:
    out = _norm(["x@mailinator.com", "x@eu.mailinator.com", "x@example.com"])
    assert out["disposable"].tolist() == [True, True, False]
    assert "mailinator.com" not in FREEMAIL_DOMAINS


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=30),
            st.emails().map(str),
            st.none(),
            st.from_regex(
                r"[A-Za-z.+\-]{1,8}@(gmail|googlemail|outlook|yahoo)\.com", fullmatch=True
            ),
        ),
        max_size=15,
    )
)
def test_normalize_emails_properties(values: list[str | None]) -> None:
    out = _norm(values)
    assert list(out.columns) == ["canonical", "domain", "disposable", "alias", "freemail"]
    assert len(out) == len(values)
    canonical = out["canonical"].dropna()
    again = normalize_emails(canonical)
    assert again["canonical"].tolist() == canonical.tolist()  # idempotent
    assert not again["alias"].any()  # a canonical address is nobody's alias
    # every valid address has a domain, which is the part after the last "@"
    assert (out["domain"][canonical.index] == canonical.str.rsplit("@", n=1).str[1]).all()
