"""Device fingerprints and user-agent families."""

from __future__ import annotations

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from linkage.identifiers import normalize_fingerprint, user_agent_family

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.6367.60 Safari/537.36"
)


def test_fingerprints_stripped_and_lowercased() -> None:
    out = normalize_fingerprint(pd.Series([" AbC12 ", "abc12", "", None], dtype="string"))
    assert out.tolist()[:2] == ["abc12", "abc12"]
    assert out.iloc[2:].isna().all()


def test_user_agent_families() -> None:
    uas = {
        CHROME: "chrome/124",
        CHROME + " Edg/124.0.2478.51": "edge/124",
        CHROME + " OPR/109.0.0.0": "opera/109",
        "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0": "firefox/125",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.4 Safari/605.1.15": "safari/17",
        "Mozilla/5.0 (X11) AppleWebKit/537.36 HeadlessChrome/120.0.0.0 Safari/537.36": "headlesschrome/120",
        "OpenAI/Python 1.30.1": "python-sdk/1",
        "anthropic-sdk-python/0.25.1": "python-sdk/0",
        "OpenAI/JS 4.20.0": "js-sdk/4",
        "curl/8.4.0": "curl/8",
        "python-requests/2.31.0": "python-requests/2",
        "Go-http-client/1.1": "go-http-client/1",
        "Mozilla/5.0 (compatible; GPTBot/1.0; +https://openai.com/gptbot)": "gptbot/1",
        "Mozilla/5.0": "other",
        "totally unknown": "other",
    }
    out = user_agent_family(pd.Series(list(uas), dtype="string"))
    assert out.tolist() == list(uas.values())


def test_unknown_user_agents_stay_na() -> None:
    out = user_agent_family(pd.Series([None, "", "   "], dtype="string"))
    assert out.isna().all()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=60),
            st.none(),
            st.from_regex(
                r"[A-Za-z][A-Za-z0-9._-]{0,10}/v?[0-9]{1,4}(\.[0-9]+)?( .*)?", fullmatch=True
            ),
        ),
        max_size=15,
    )
)
def test_user_agent_family_properties(values: list[str | None]) -> None:
    s = pd.Series(values, dtype="string")
    fam = user_agent_family(s)
    assert len(fam) == len(s)
    assert fam.isna().tolist() == s.str.strip().fillna("").eq("").tolist()
    assert user_agent_family(fam).tolist() == fam.tolist()  # idempotent
    assert fam.dropna().str.fullmatch(r"other|[^/\s]+/[0-9]+").all()
