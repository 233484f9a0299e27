"""perturb(text, strength, key): protected spans, determinism, budget, never on strength 0."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linkage.fixtures.responses import responses
from linkage.respond.lexicon import PAIRS
from linkage.respond.perturb import Plan, edit_budget, perturb, word_edit_fraction
from linkage.respond.spans import free_segments, protected_intervals, protected_spans

KEY = b"k" * 32
LEX = [w for p in PAIRS for w in p]
PLAIN = ["the", "a", "we", "you", "value", "result", "is", "and", "then", "so", "table"]
FRAGMENTS = st.one_of(
    st.sampled_from(LEX),
    st.sampled_from(LEX).map(str.capitalize),
    st.sampled_from(PLAIN),
    st.sampled_from(
        [
            "Next, we check the large value.",
            "Let's think step by step.",
            "Note that the main issue is simple.",
            "It is important to verify the amount.",
            "in order to",
            "a lot of",
            "Let's",
        ]
    ),
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(
        [
            "```python\ndef big(x):\n    return x * 2  # large\n```",
            "```\nunclosed fence with big issue",
            "`large_value`",
            '{"big": [1, 2, {"issue": "large"}], "ok": true}',
            "[1, 2, 3]",
            "https://example.com/big/issue?x=large",
            "www.example.org/important",
            '"the big issue"',
            "“a large quote”",
            "> quoted big issue line",
            "| big | large |",
            "    indented big code",
            "$x = big$",
            "user@example.com",
            "v2.1.0",
            "C:\\path\\big",
            "{unbalanced big",
        ]
    ),
    st.text(max_size=12),
)
SEPS = st.sampled_from([" ", " ", "\n", ". ", "\n\n", ", ", "-", "'"])


@st.composite
def texts(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.tuples(FRAGMENTS, SEPS), min_size=1, max_size=40))
    return "".join(f + s for f, s in parts)


def spans_in_order(before: str, after: str) -> bool:
    pos = 0
    for s in protected_spans(before):
        j = after.find(s, pos)
        if j < 0:
            return False
        pos = j + len(s)
    return True


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts(), strength=st.floats(0.05, 1.0), key=st.binary(min_size=1, max_size=40))
def test_protected_spans_are_byte_identical_and_in_order(text: str, strength: float, key: bytes):
    out = perturb(text, strength, key)
    assert "".join(protected_spans(out)) == "".join(protected_spans(text))
    assert spans_in_order(text, out)
    assert perturb(text, strength, key) == out  # deterministic
    assert word_edit_fraction(text, out) <= edit_budget(strength) + 1e-9


@settings(max_examples=100, deadline=None)
@given(text=texts(), key=st.binary(min_size=1, max_size=8))
def test_strength_zero_never_changes_anything(text: str, key: bytes):
    assert perturb(text, 0.0, key) == text
    assert perturb(text, -1.0, key) == text


def test_protected_kinds_detected():
    text = (
        'Use this:\n```\nbig = 1\n```\nand `large` then https://x.io/big and "big issue" and '
        '{"big": 2} and 3.5 and user@x.io and > not a quote'
    )
    spans = protected_spans(text)
    assert "```\nbig = 1\n```" in spans
    assert "`large`" in spans
    assert "https://x.io/big" in spans
    assert '"big issue"' in spans
    assert '{"big": 2}' in spans
    assert "3.5" in spans
    assert "user@x.io" in spans
    free = "".join(text[s:e] for s, e in free_segments(text))
    assert "big" not in free and "large" not in free  # every one above is protected
    assert "not a quote" in free  # '>' starts a block quote only at the start of a line
    # intervals are sorted and disjoint
    iv = protected_intervals(text)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(iv))


def test_perturbation_changes_prose_but_not_code_numbers_json():
    rs = responses(200, seed=3)
    changed = 0
    for r in rs:
        out = perturb(r, 0.6, KEY)
        changed += out != r
        assert "".join(protected_spans(out)) == "".join(protected_spans(r))
    assert changed > 150  # almost every response has something to change


def test_deterministic_per_key_and_text_and_keys_differ():
    r = responses(50, seed=4)
    a = [perturb(t, 0.5, b"key-a") for t in r]
    assert a == [perturb(t, 0.5, b"key-a") for t in r]
    b = [perturb(t, 0.5, b"key-b") for t in r]
    assert sum(x != y for x, y in zip(a, b, strict=True)) > 25
    assert perturb(r[0], 0.5, "key-a") == a[0]  # str keys are their UTF-8 bytes


@pytest.mark.parametrize("strength", [0.1, 0.3, 0.6, 1.0])
def test_edit_budget_holds_and_grows_with_strength(strength: float):
    rs = responses(300, seed=5)
    e = [word_edit_fraction(t, perturb(t, strength, KEY)) for t in rs]
    assert max(e) <= edit_budget(strength) + 1e-9
    assert sum(e) / len(e) > 0.01


def test_stronger_edits_more():
    rs = responses(300, seed=6)
    means = [
        sum(word_edit_fraction(t, perturb(t, s, KEY)) for t in rs) / len(rs)
        for s in (0.1, 0.3, 0.6, 1.0)
    ]
    assert means == sorted(means) and means[-1] > 2 * means[0]


def test_no_sentence_is_ever_dropped_and_independent_sentences_are_reordered():
    text = (
        "The main plan is simple. Our plan is robust. A large table is useful. "
        "Each query is fast.\n"
        "Let's think step by step. Next, we check the table. Then remove the battery. "
        "Note that the table is sorted. So the answer is ready."
    )
    outs = {perturb(text, 1.0, bytes([i])) for i in range(40)}
    for o in outs:
        assert o.count(".") == text.count(".")
        assert "Then remove the battery." in o  # a step is content, never trimmed
        assert "think step by step. Next, we check the table. Then" in o.split("\n")[1]
    first = [o.split("\n")[0] for o in outs]
    assert any(not f.startswith("The main") for f in first)  # reordered


def test_case_is_kept_and_capitals_and_names_are_left_alone():
    text = "Big issue. BIG issue. big issue. We met Big Data Inc."
    out = {perturb(text, 1.0, bytes([i])) for i in range(20)}
    assert any("Large" in o for o in out)
    assert all(o.split(".")[0].split()[0][0].isupper() for o in out)
    assert all("BIG " in o and "Big Data Inc" in o for o in out)  # SQL-like / names


def test_plan_scales():
    lo, hi = Plan.of(0.1), Plan.of(1.0)
    assert 0 < lo.p_green < hi.p_green == 1.0
    assert lo.budget < hi.budget
    assert Plan.of(0).budget == 0


def test_edit_share_is_an_exact_common_subsequence() -> None:
    """Two swapped words in a text that repeats a sentence are two edits (found by
    hypothesis: difflib's greedy matching had counted 7 of 13 words as changed)."""
    before = "Next, we check the large value. big Next, we check the large value. "
    after = "Next, we check the big value. large Next, we check the large value. "
    assert word_edit_fraction(before, after) == pytest.approx(2 / 13)
    assert word_edit_fraction("a b c", "a b c") == 0.0
    assert word_edit_fraction("a b c", "a c") == pytest.approx(1 / 3)
    assert word_edit_fraction("x y z", "z x y") == pytest.approx(1 / 3)  # "x y" still matches
