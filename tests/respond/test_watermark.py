"""The keyed watermark: exact null, attribution, vectorised = scalar, robustness."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from scipy.stats import norm

from bench.watermark import canonicalise
from linkage.fixtures.responses import responses
from linkage.respond.perturb import perturb
from linkage.respond.watermark import (
    ATTRIBUTION_P,
    CHANNELS,
    channel_sums,
    context_id,
    corpus_stats,
    detect,
    form_sites,
    format_p,
    green_bits,
    green_member,
    log_p_from_z,
    new_key_id,
    new_secret,
    opportunities,
    p_from_z,
    sentence_length,
    subkeys,
    z_scores,
)


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return responses(600, seed=11)


def test_green_bits_vectorised_equals_scalar():
    rng = np.random.default_rng(0)
    ctx = rng.integers(0, 2**63, 300, dtype=np.int64).astype(np.uint64) * np.uint64(2)
    keys = [subkeys(new_secret()) for _ in range(7)]
    k = np.array(keys, dtype=np.uint64)
    bits = green_bits(ctx, k[:, 0], k[:, 1])
    for i, sub in enumerate(keys):
        assert [green_member(sub, int(c)) for c in ctx] == bits[i].tolist()
    assert 0.4 < bits.mean() < 0.6  # balanced


def test_z_matches_direct_computation(corpus):
    st = corpus_stats(corpus)
    sub = subkeys(b"some key")
    signs = np.array([1 - 2 * green_member(sub, int(c)) for c in st.ctx])
    z = float(signs @ st.margin / np.sqrt(st.margin @ st.margin))
    assert z_scores(st, [sub])[0] == pytest.approx(z)


def test_opportunities_skip_protected_and_hyphenated():
    text = 'A big issue, a "big issue", big-data and https://x.io/big.'
    ops = opportunities(text)
    assert [text[o.start : o.end] for o in ops] == ["big", "issue"]
    assert ops[1].prev == "big" and ops[0].prev == "a"
    # a pair named in the text's code is frozen in its prose too (`def large` stays large)
    ops = opportunities(text + " See `large` and def big(x).")
    assert [text[o.start : o.end] for o in ops] == ["issue"]
    assert context_id(0, "a") != context_id(0, "an")


def test_watermarked_corpus_attributed_to_its_key_only(corpus):
    keys = {new_key_id(): new_secret() for _ in range(20)}
    kid, secret = next(iter(keys.items()))
    wm = [perturb(t, 0.3, secret) for t in corpus[:200]]
    res = detect(wm, keys)
    assert res[0].key_id == kid and res[0].attributed and res[0].p_value < ATTRIBUTION_P
    assert not any(r.attributed for r in res[1:])
    # clean text: nobody
    assert not any(r.attributed for r in detect(corpus[:200], keys))


def test_null_is_calibrated_on_clean_and_foreign_corpora(corpus):
    """Against keys that did not write the corpus, z is a fair Rademacher sum: mean 0, sd ~1,
    and the Hoeffding p-value is never below 1e-6 (2 x 20,000 key tests)."""
    rng = np.random.default_rng(1)
    subs = [tuple(int(v) for v in rng.integers(0, 2**63, 2)) for _ in range(20_000)]
    foreign = [perturb(t, 1.0, b"another cluster") for t in corpus]
    for texts in (corpus, foreign):
        z = z_scores(corpus_stats(texts), subs)
        assert abs(z.mean()) < 0.05
        assert 0.93 < z.std() < 1.07
        assert (p_from_z(z) < ATTRIBUTION_P).sum() == 0
        assert (z > 3).mean() < 0.004  # Gaussian 0.00135


def test_robust_to_random_word_edits(corpus):
    secret = hashlib.sha256(b"word-edits").digest()  # fixed: the test is deterministic
    wm = [perturb(t, 0.3, secret) for t in corpus]
    rng = np.random.default_rng(2)
    attacked = []
    for t in wm:
        words = t.split(" ")
        keep = [
            w if r > 0.2 else ("" if r < 0.1 else "thing")
            for w, r in zip(words, rng.random(len(words)), strict=True)
        ]
        attacked.append(" ".join(w for w in keep if w))
    (r,) = detect(attacked, {"k": secret})
    assert r.attributed


def test_p_value_is_the_smaller_of_hoeffding_and_the_gaussian_comparison_in_log_space():
    assert p_from_z(np.array([0.0]))[0] == 1.0
    assert p_from_z(np.array([-3.0]))[0] == 1.0
    z = np.array([0.5, 2.0, 5.26, 40.0, 1000.0])
    hoeffding = -(z**2) / 2
    c_star = 1 / (4 * norm.sf(np.sqrt(2)))  # Bentkus & Dzindzalieta (2015): 3.178
    assert c_star == pytest.approx(3.178, abs=1e-3)
    gauss = np.log(c_star) + norm.logsf(z)
    assert log_p_from_z(z) == pytest.approx(np.minimum(np.minimum(hoeffding, gauss), 0.0))
    assert p_from_z(np.array([5.0]))[0] < ATTRIBUTION_P < p_from_z(np.array([4.9]))[0]
    assert np.isfinite(log_p_from_z(np.array([1e4]))[0])  # never -inf, never p = 0 in log
    assert format_p(float(log_p_from_z(np.array([40.0]))[0] / np.log(10))) == "< 1e-348"
    assert format_p(-6.5) == "3.16e-07"


def test_p_value_bound_holds_for_a_small_rademacher_sum():
    """Exact tail of a 12-term weighted Rademacher sum (all 4,096 sign patterns) is below
    the bound at every threshold."""
    rng = np.random.default_rng(3)
    w = rng.random(12) + 0.1
    signs = 1 - 2 * ((np.arange(4096)[:, None] >> np.arange(12)) & 1)
    z = np.sort(signs @ w / np.sqrt(w @ w))
    for t in np.linspace(0.1, 3.4, 30):
        exact = float((z >= t).mean())
        assert exact <= p_from_z(np.array([t]))[0] + 1e-12


def test_empty_corpus_and_no_keys():
    assert detect([], {"k": b"x"})[0].z == 0.0
    assert detect(["no lexicon words here"], {}) == []


def test_form_sites_skip_clause_ends_ambiguity_capitals_and_overlaps():
    text = (
        "It is fine. We do not know. Leave it as it is. It's been long. "
        "The client SHOULD NOT retry. It is not done. They can't stop."
    )
    got = [(text[f.start : f.end], f.member) for f in form_sites(text)]
    assert got == [("It is", 0), ("do not", 0), ("is not", 0), ("can't", 1)]


def test_sentence_length_is_kept_by_contractions_and_synonym_maps():
    assert sentence_length("We don't know it's big.") == sentence_length(
        "We do not know it is big."
    )
    assert sentence_length("You cannot go.") == sentence_length("You can't go.")
    assert sentence_length(canonicalise("The huge issue is obvious.")) == 5


def test_each_channel_is_calibrated_on_clean_text(corpus):
    """Per channel, against keys that did not write the corpus: mean 0, sd <= 1, and no
    p-value below 1e-6 (3 channels x 5,000 key tests)."""
    rng = np.random.default_rng(4)
    subs = [tuple(int(v) for v in rng.integers(0, 2**63, 2)) for _ in range(5_000)]
    st = corpus_stats(corpus)
    T, V = channel_sums(st, subs)
    for i, name in enumerate(CHANNELS):
        assert st.channel_contexts()[name] > 20
        z = T[:, i] / np.sqrt(V[i])
        assert abs(z.mean()) < 0.06, name
        assert z.std() < 1.07, name
        assert (p_from_z(z) < ATTRIBUTION_P).sum() == 0


def test_synonym_canonicalisation_does_not_erase_the_mark(corpus):
    """Every lexicon word (and more synonyms) mapped to one form: the lexical channel is
    gone, the form and order channels still attribute 400 responses.

    Fixed secrets, so the test is deterministic: over 30 random secrets the order
    channel's z ranged 1.7-3.8 (mean 3.1) and the form channel's log10 p -9.5 to -12.3,
    so a single random secret put order z under 2 about one run in 30 (a CI failure
    on 2026-12-07). The claim tested is the channel's, over several keys."""
    order_z = []
    for i in range(4):
        secret = hashlib.sha256(f"canonicalise-{i}".encode()).digest()
        wm = [canonicalise(perturb(t, 0.3, secret)) for t in corpus[:400]]
        (r,) = detect(wm, {"k": secret})
        assert abs(r.channels["lexical"].z) < 3
        assert r.channels["form"].log10_p < -4
        assert r.channels["order"].z > 0
        assert r.attributed
        order_z.append(r.channels["order"].z)
    assert np.mean(order_z) > 2
    others = {f"o{i}": new_secret() for i in range(50)}
    assert not any(x.attributed for x in detect(wm, others))
