"""A keyed watermark in three channels, and its detector.

**Channels** (embedded by :func:`linkage.respond.perturb.perturb`; every site lies outside
protected spans, :mod:`linkage.respond.spans`):

* ``lexical`` — every occurrence of a lexicon word (:data:`~linkage.respond.lexicon.PAIRS`)
  is a site; its context is ``(pair, previous word)``;
* ``form`` — every contraction alternation (:data:`~linkage.respond.lexicon.FORMS`:
  "do not" / "don't", "it is" / "it's", …); context ``(form, previous word)``, the previous
  word canonicalised to its pair when it is a lexicon word.  A synonym map (word → word)
  does not touch it;
* ``order`` — every pair of adjacent, independent sentences of unequal length (in words,
  contractions counted as two); context ``(shorter length, longer length)``, choice
  "longer first" or not.  A synonym map keeps lengths, so it does not touch it either.

At each site a keyed pseudo-random bit ``green(key, context)`` says which of the two
choices is *green*; the perturbation moves red sites to green with a probability that
grows with the strength.

**Detection** (:func:`detect`): a suspect corpus is reduced, once and without any key, to
its distinct contexts ``c`` and one weight ``w_c`` each: with ``A_c`` of the ``n_c``
occurrences on the first choice, and ``π_g`` the share of the first choice over the whole
*group* ``g`` of the context (the pair, the form, or the order channel),

    ``w_c = clip((A_c - n_c π_g) / sqrt(n_c π_g (1 - π_g)), -2, 2)``.

This is *choice-aware*: a writer's own preference for a member (all of one pair's
occurrences on "large") is subtracted, so only the deviation that depends on the context
counts, and a context seen often in the corpus weighs more than one seen once — which is
what finds a watermarked minority inside a large corpus of other text.  Against a key,
``s_c = +1`` if the first choice is green at ``c`` and ``-1`` otherwise, and per channel
``T = sum_c s_c w_c``, ``z = T / sqrt(sum_c w_c^2)``; the combined statistic is the same
sum over the contexts of every channel.

Why this is an exact test: text not written with the key is independent of it, so the
``w_c`` (a function of the text alone) are independent of the ``s_c``, which are
independent fair signs, one per distinct context (context ids are distinct across
channels).  ``T`` is a Rademacher sum with fixed weights and, for any text,
``P(z >= t) <= min(exp(-t^2 / 2), c* P(N(0,1) >= t))`` with ``c* = 1 / (4 P(N >= √2))
≈ 3.178`` (Hoeffding 1963; Bentkus & Dzindzalieta 2015, the optimal constant of Pinelis'
Gaussian comparison).
That bound is the reported p-value, computed in log space (``log10_p``), so a strong
attribution reads ``p < 1e-300`` instead of ``p = 0``.  A corpus is attributed to a key
when the combined ``p < 1e-6``; each channel's own p-value is reported with it.

The keyed bit is ``fmix64(fmix64(c ^ k0) ^ k1)``'s top bit (MurmurHash3's 64-bit
finaliser, a bijection with full avalanche), ``c`` an unkeyed 64-bit BLAKE2b id of the
context and ``(k0, k1)`` derived from the 256-bit secret by keyed BLAKE2b.  It is
computed vectorised over contexts × keys in numpy, so testing a corpus against
thousands of keys takes milliseconds.  It is not a cryptographic PRF; the secret
matters, and what an observer learns from outputs (the green choices in contexts it
saw) it could learn from any lexical watermark.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy.special import log_ndtr

from linkage.respond.lexicon import (
    FORMS,
    FORMS_NOT_BEFORE,
    FORMS_PRONOUN,
    NEEDS_NEXT_WORD,
    NOT_AFTER,
    NOT_BEFORE,
    PAIRS,
    WORD_INDEX,
)
from linkage.respond.spans import SPECIAL_RX, code_intervals, free_segments, protected_intervals

# the store mints the keys it keeps (store below respond); re-exported for callers here
from linkage.store.watermark_keys import new_key_id, new_secret

#: default attribution threshold
ATTRIBUTION_P = 1e-6
#: the watermark's channels, in the order of :attr:`CorpusStats.channel`
CHANNELS: tuple[str, ...] = ("lexical", "form", "order")
_M64 = (1 << 64) - 1
WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
_NEXT_WORD = re.compile(r"[ \t]*([A-Za-z]+)")
#: Bentkus & Dzindzalieta (2015, Bernoulli 21:1231): P(S >= t) <= c* P(N >= t) for a
#: Rademacher sum with sum a_i^2 <= 1, with the optimal c* = 1 / (4 P(N >= sqrt 2)) ≈ 3.178
#: (Pinelis 1994 had 2e^3/9 ≈ 4.46)
_LOG_GAUSS_C = -math.log(4.0) - float(log_ndtr(-math.sqrt(2.0)))
#: standardised context weights are clipped here (a key-independent choice)
WEIGHT_CLIP = 2.0

# groups: one per lexicon pair, one per form, one for sentence order
G_FORM = len(PAIRS)
G_ORDER = G_FORM + len(FORMS)
N_GROUPS = G_ORDER + 1


def channel_of(group: np.ndarray) -> np.ndarray:
    """The channel index (0 lexical, 1 form, 2 order) of each group id."""
    g = np.asarray(group)
    return np.where(g < G_FORM, 0, np.where(g < G_ORDER, 1, 2)).astype(np.int8)


# ----------------------------------------------------------------------------- keys


def subkeys(secret: bytes) -> tuple[int, int]:
    """The two 64-bit words the keyed bit uses, derived from the secret."""
    d = hashlib.blake2b(b"linkage-watermark-v1", key=secret, digest_size=16).digest()
    return int.from_bytes(d[:8], "little"), int.from_bytes(d[8:], "little")


# ----------------------------------------------------------------------------- hashing


def _fmix(x: int) -> int:
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & _M64
    x ^= x >> 33
    x = (x * 0xC4CEB9FE1A85EC53) & _M64
    x ^= x >> 33
    return x


def _fmix_np(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xFF51AFD7ED558CCD)
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xC4CEB9FE1A85EC53)
    return x ^ (x >> np.uint64(33))


def _h64(s: str) -> int:
    return int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little")


def context_id(pair: int, prev: str) -> int:
    """Unkeyed 64-bit id of a lexical context (pair index, previous word lower-cased)."""
    return _h64(f"{pair}\x1f{prev}")


@lru_cache(maxsize=65536)
def form_context_id(form: int, prev: str) -> int:
    """Unkeyed 64-bit id of a form context (form index, canonical previous word)."""
    return _h64(f"form\x1f{form}\x1f{prev}")


@lru_cache(maxsize=4096)
def order_context_id(short: int, long: int) -> int:
    """Unkeyed 64-bit id of an order context (the two sentence lengths, shorter first)."""
    return _h64(f"order\x1f{short}\x1f{long}")


def green_member(sub: tuple[int, int], ctx: int) -> int:
    """Which choice (0 or 1) is green in context ``ctx`` under the key."""
    k0, k1 = sub
    return _fmix(_fmix(ctx ^ k0) ^ k1) >> 63


def green_bits(ctx: np.ndarray, k0: np.ndarray, k1: np.ndarray) -> np.ndarray:
    """``green_member`` for every (key, context): shape ``(len(k0), len(ctx))``, int8."""
    with np.errstate(over="ignore"):
        x = _fmix_np(ctx[None, :] ^ k0[:, None])
        x = _fmix_np(x ^ k1[:, None])
    return (x >> np.uint64(63)).astype(np.int8)


# ----------------------------------------------------------------------------- lexical sites


@dataclass(frozen=True)
class Opportunity:
    """A lexicon word outside protected spans: where the watermark can speak."""

    start: int
    end: int
    pair: int
    member: int
    prev: str  # previous word in the same free segment, lower-cased ("" if none)


def frozen_pairs(text: str) -> frozenset[int]:
    """Pairs one of whose members occurs in the text's code (fences, inline code, dotted
    names, ``def`` names): an identifier named there must not be renamed in the prose."""
    out: set[int] = set()
    for s, e in code_intervals(text):
        for m in WORD.finditer(text, s, e):
            hit = WORD_INDEX.get(m.group().lower())
            if hit is not None:
                out.add(hit[0])
    return frozenset(out)


def _sentence_start(text: str, a: int) -> bool:
    j = a - 1
    while j >= 0 and text[j] in " \t":
        j -= 1
    return j < 0 or text[j] in "\n.!?:;-*•>(\"“'"


def lexicon_hit(
    text: str, a: int, b: int, lw: str, prev: str = "", frozen: frozenset[int] = frozenset()
) -> tuple[int, int] | None:
    """``(pair, member)`` if the word ``text[a:b]`` (lower-cased ``lw``, after the word
    ``prev``) can carry the mark — the one rule the embedder
    (:func:`linkage.respond.perturb.perturb`) and the detector share.  Not a site: a
    word glued to ``-`` or ``'``, in capitals (``SELECT``), capitalised inside a sentence
    (a name), of a pair named in the text's code, or in an idiom (:data:`NOT_AFTER`,
    :data:`NOT_BEFORE`, :data:`NEEDS_NEXT_WORD`)."""
    hit = WORD_INDEX.get(lw)
    if hit is None or hit[0] in frozen:
        return None
    before = text[a - 1] if a > 0 else " "
    after = text[b] if b < len(text) else " "
    if before in "-'" or after in "-'":
        return None
    w = text[a:b]
    if w[0].isupper() and ((len(w) > 1 and w.isupper()) or not _sentence_start(text, a)):
        return None
    if prev in NOT_AFTER.get(lw, ()):
        return None
    m = _NEXT_WORD.match(text, b)
    nxt = m.group(1).lower() if m is not None else ""
    if nxt in NOT_BEFORE.get(lw, ()):
        return None
    if lw in NEEDS_NEXT_WORD and (m is None or m.start(1) == b):
        return None
    return hit


def opportunities(text: str, iv: list[tuple[int, int]] | None = None) -> list[Opportunity]:
    """Every lexical site of ``text`` (see :func:`lexicon_hit`)."""
    iv = protected_intervals(text) if iv is None else iv
    frozen = frozen_pairs(text)
    out: list[Opportunity] = []
    for s, e in free_segments(text, iv):
        prev = ""
        for m in WORD.finditer(text, s, e):
            lw = m.group().lower()
            hit = lexicon_hit(text, m.start(), m.end(), lw, prev, frozen)
            if hit is not None:
                out.append(Opportunity(m.start(), m.end(), hit[0], hit[1], prev))
            prev = lw
    return out


# ----------------------------------------------------------------------------- form sites

_APOS = "['’]"


def _form_rx() -> tuple[re.Pattern[str], dict[str, tuple[int, int]]]:
    alts: list[str] = []
    index: dict[str, tuple[int, int]] = {}
    for i, (long, short) in enumerate(FORMS):
        tail = r"(?=[ \t]+[A-Za-z])(?![ \t]+not\b)" if i in FORMS_PRONOUN else ""
        amb = r"(?![ \t]+(?:" + "|".join(sorted(FORMS_NOT_BEFORE)) + r")\b)"
        for member, form in enumerate((long, short)):
            index[form] = (i, member)
            pat = re.escape(form).replace(r"\ ", r"[ \t]+").replace("'", _APOS)
            alts.append(pat + tail + amb)
    alts.sort(key=len, reverse=True)
    rx = re.compile(r"(?<![\w'’-])(?:" + "|".join(alts) + r")(?![\w'’-])", re.I)
    return rx, index


FORM_RX, _FORM_INDEX = _form_rx()
# the last word before a position (searched in a 64-character window)
_LAST_WORD = re.compile(r"(?<![A-Za-z'])([A-Za-z]+(?:'[A-Za-z]+)?)[^A-Za-z]*$")


@dataclass(frozen=True)
class FormSite:
    """A contraction alternation outside protected spans (member 0 long, 1 short)."""

    start: int
    end: int
    form: int
    member: int
    prev: str  # canonical previous word ("#<pair>" for a lexicon word)


def form_key(s: str) -> tuple[int, int] | None:
    """``(form, member)`` of a matched form (any case, curly apostrophe, any blanks)."""
    return _FORM_INDEX.get(" ".join(s.lower().replace("’", "'").split()))


def canonical_word(lw: str) -> str:
    """A lower-case word, with lexicon words replaced by their pair (``#<pair>``)."""
    hit = WORD_INDEX.get(lw)
    return lw if hit is None else f"#{hit[0]}"


def form_sites(text: str, iv: list[tuple[int, int]] | None = None) -> list[FormSite]:
    """Every form site of ``text`` outside protected spans."""
    iv = protected_intervals(text) if iv is None else iv
    out: list[FormSite] = []
    for s, e in free_segments(text, iv):
        for m in FORM_RX.finditer(text, s, e):
            hit = form_key(m.group())
            if hit is None or any(len(w) > 1 and w.isupper() for w in _ALPHA.findall(m.group())):
                continue  # "SHOULD NOT" is an RFC 2119 keyword, not prose
            lw = _LAST_WORD.search(text, max(s, m.start() - 64), m.start())
            prev = lw.group(1).lower() if lw is not None else ""
            out.append(FormSite(m.start(), m.end(), hit[0], hit[1], canonical_word(prev)))
    return out


# ----------------------------------------------------------------------------- order sites

SENT_SPLIT = re.compile(r"(?<=[.!?])[ \t]+(?=[A-Z])")
CUE = re.compile(
    r"^(?:[-*] +)?(?:First|Next|Then|Now|So|Let's|Let me|Let us|We can|We need|We know|"
    r"Note that|Recall that|This means|In other words|To see this|Notice|Checking|"
    r"Double-checking|Wait|Hmm|Okay|Looking at)\b"
)
_ALPHA = re.compile(r"[A-Za-z]+")
_ANAPHORA = frozenset(
    [
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "they",
        "them",
        "their",
        "he",
        "him",
        "his",
        "she",
        "her",
        "here",
        "there",
        "such",
        "above",
        "below",
        "former",
        "latter",
        "previous",
        "same",
        "again",
        "also",
        "too",
        "then",
        "after",
        "before",
        "once",
        "finally",
        "next",
        "later",
        "first",
        "second",
        "third",
        "last",
        "until",
        "now",
        "earlier",
        "afterwards",
        "subsequently",
        "meanwhile",
    ]
)
_STATEMENT_OPENERS = frozenset(
    [
        "the",
        "a",
        "an",
        "each",
        "every",
        "most",
        "many",
        "some",
        "all",
        "our",
        "your",
        "my",
        "any",
        "no",
        "several",
        "one",
    ]
)
_CANNOT = re.compile(r"\bcannot\b", re.I)


def independent(sentence: str) -> bool:
    """A sentence that may change place: a statement opening with a determiner ("The
    cache is local.", not an instruction "Run the tests." whose place in a procedure is
    its meaning), with no word that points at another sentence or step ("it", "this",
    "above", "then", "after", …) anywhere."""
    words = [w.lower() for w in _ALPHA.findall(sentence)]
    return (
        bool(words)
        and words[0] in _STATEMENT_OPENERS
        and not CUE.match(sentence)
        and _ANAPHORA.isdisjoint(words)
    )


def sentence_length(sentence: str) -> int:
    """Words, a contraction counting two ("don't" = "do not"); a synonym map keeps it."""
    return len(_ALPHA.findall(sentence)) + len(_CANNOT.findall(sentence))


@dataclass(frozen=True)
class Line:
    """A line split into sentences outside protected spans."""

    start: int
    sentences: list[str]
    seps: list[str]
    movable: list[bool]  # clean, independent, ends a sentence: may change place


def _inside(iv: list[tuple[int, int]], pos: int) -> bool:
    i = bisect.bisect_right(iv, (pos, math.inf)) - 1
    return i >= 0 and iv[i][0] <= pos < iv[i][1]


def _overlaps(iv: list[tuple[int, int]], lo: int, hi: int) -> bool:
    i = bisect.bisect_left(iv, (hi, -1)) - 1  # last interval starting before hi
    return i >= 0 and iv[i][1] > lo


def lines(text: str, iv: list[tuple[int, int]]) -> list[Line]:
    """Every line of ``text`` with two or more sentences (the order channel's material)."""
    out: list[Line] = []
    pos = 0
    for line in text.split("\n"):
        lo = pos
        pos += len(line) + 1
        if not line.strip():
            continue
        cuts = [m for m in SENT_SPLIT.finditer(line) if not _inside(iv, lo + m.start())]
        if not cuts:
            continue
        sents: list[str] = []
        seps: list[str] = []
        prev = 0
        for m in cuts:
            sents.append(line[prev : m.start()])
            seps.append(m.group())
            prev = m.end()
        sents.append(line[prev:])
        movable = []
        o = lo
        for i, s in enumerate(sents):
            overl = _overlaps(iv, o, o + len(s))
            movable.append(
                not overl
                and SPECIAL_RX.search(s) is None
                and s.rstrip().endswith((".", "!", "?"))
                and s == s.strip()
                and independent(s)
            )
            o += len(s) + (len(seps[i]) if i < len(seps) else 0)
        out.append(Line(lo, sents, seps, movable))
    return out


def order_choice(first: str, second: str) -> tuple[int, int] | None:
    """``(context id, choice)`` of two adjacent movable sentences (choice 1 = the longer
    first), or ``None`` when their lengths are equal."""
    la, lb = sentence_length(first), sentence_length(second)
    if la == lb:
        return None
    return order_context_id(min(la, lb), max(la, lb)), int(la > lb)


def order_sites(text: str, iv: list[tuple[int, int]] | None = None) -> list[tuple[int, int]]:
    """``(context id, choice)`` of every pair of adjacent movable sentences."""
    iv = protected_intervals(text) if iv is None else iv
    out: list[tuple[int, int]] = []
    for ln in lines(text, iv):
        for i in range(len(ln.sentences) - 1):
            if ln.movable[i] and ln.movable[i + 1]:
                c = order_choice(ln.sentences[i], ln.sentences[i + 1])
                if c is not None:
                    out.append(c)
    return out


# ----------------------------------------------------------------------------- corpus


@dataclass(frozen=True)
class TextOpportunities:
    """One text's sites as arrays (context id, choice, group), plus its word count."""

    ctx: np.ndarray  # uint64
    member: np.ndarray  # int8
    n_words: int
    group: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))  # int32


@lru_cache(maxsize=131072)
def _ctx_id(pair: int, prev: str) -> int:
    return context_id(pair, prev)


def text_opportunities(text: str) -> TextOpportunities:
    """The sites of one text in every channel, as arrays (cacheable per response)."""
    iv = protected_intervals(text)
    lex = opportunities(text, iv)
    forms = form_sites(text, iv)
    order = order_sites(text, iv)
    ctx = [_ctx_id(o.pair, o.prev) for o in lex]
    ctx += [form_context_id(f.form, f.prev) for f in forms]
    ctx += [c for c, _ in order]
    member = [o.member for o in lex] + [f.member for f in forms] + [m for _, m in order]
    group = [o.pair for o in lex] + [G_FORM + f.form for f in forms] + [G_ORDER] * len(order)
    return TextOpportunities(
        np.array(ctx, dtype=np.uint64),
        np.array(member, dtype=np.int8),
        len(WORD.findall(text)),
        np.array(group, dtype=np.int32),
    )


@dataclass(frozen=True)
class CorpusStats:
    """A corpus reduced to what the detector needs (key-independent, computed once)."""

    ctx: np.ndarray  # uint64 context ids
    margin: np.ndarray  # the context weights w_c, float64
    n_texts: int
    n_words: int
    n_opportunities: int
    channel: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))

    @property
    def n_contexts(self) -> int:
        return len(self.ctx)

    def channel_contexts(self) -> dict[str, int]:
        return {c: int((self.channel == i).sum()) for i, c in enumerate(CHANNELS)}


def context_weights(
    ctx: np.ndarray, member: np.ndarray, group: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(contexts, weights, group)``: the choice-aware weight of every distinct context
    (the standardised deviation of its first-choice count from its group's share, clipped;
    see the module doc).  A function of the corpus alone, never of a key."""
    if len(ctx) == 0:
        return np.zeros(0, np.uint64), np.zeros(0), np.zeros(0, np.int32)
    uniq, first, inv = np.unique(ctx, return_index=True, return_inverse=True)
    is_a = (member == 0).astype(np.float64)
    n = np.bincount(inv, minlength=len(uniq)).astype(np.float64)
    a = np.bincount(inv, weights=is_a, minlength=len(uniq))
    return uniq, weights_from_counts(a, n, group[first]), group[first]


def weights_from_counts(a: np.ndarray, n: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Choice-aware weights of distinct contexts from their (possibly expected, fractional)
    first-choice counts ``a`` out of ``n``, and their groups."""
    g = np.asarray(group, dtype=np.int64)
    ng = np.bincount(g, weights=n, minlength=N_GROUPS)
    ag = np.bincount(g, weights=a, minlength=N_GROUPS)
    pi = ((ag + 0.5) / (ng + 1.0))[g]
    with np.errstate(invalid="ignore", divide="ignore"):
        w = (a - n * pi) / np.sqrt(n * pi * (1.0 - pi))
    return np.clip(np.nan_to_num(w), -WEIGHT_CLIP, WEIGHT_CLIP)


def preference_stats(
    next_probs: Mapping[str, Mapping[str, float]], *, weight: Mapping[str, float] | None = None
) -> CorpusStats:
    """A *model's* lexical preferences as corpus statistics (white-box radioactivity test).

    ``next_probs[prev][word]`` is the model's probability of ``word`` after the word
    ``prev`` (lower case; only lexicon words are read); ``weight[prev]`` how many times the
    context is counted (e.g. the model's own frequency of ``prev`` times a virtual sample
    size; 1 by default).  Each ``(pair, prev)`` with probability on either member becomes
    a context with expected counts, weighted as in :func:`context_weights`: the same test,
    valid for any model that was trained without the key.
    """
    ctx: list[int] = []
    a: list[float] = []
    n: list[float] = []
    grp: list[int] = []
    for prev, probs in next_probs.items():
        k = 1.0 if weight is None else float(weight.get(prev, 0.0))
        if k <= 0:
            continue
        per: dict[int, list[float]] = {}
        for word, p in probs.items():
            hit = WORD_INDEX.get(word)
            if hit is not None and p > 0:
                per.setdefault(hit[0], [0.0, 0.0])[hit[1]] += float(p)
        for pair, (p0, p1) in per.items():
            ctx.append(_ctx_id(pair, prev))
            a.append(k * p0)
            n.append(k * (p0 + p1))
            grp.append(pair)
    if not ctx:
        return CorpusStats(np.zeros(0, np.uint64), np.zeros(0), 0, 0, 0, np.zeros(0, np.int8))
    w = weights_from_counts(np.array(a), np.array(n), np.array(grp))
    keep = w != 0
    return CorpusStats(
        np.array(ctx, np.uint64)[keep], w[keep], 0, 0, len(ctx), np.zeros(int(keep.sum()), np.int8)
    )


def stats_from_opportunities(items: Sequence[TextOpportunities]) -> CorpusStats:
    """Merge per-text sites into corpus statistics (vectorised)."""
    if not items:
        return CorpusStats(np.zeros(0, np.uint64), np.zeros(0), 0, 0, 0, np.zeros(0, np.int8))
    ctx = np.concatenate([t.ctx for t in items])
    member = np.concatenate([t.member for t in items])
    group = np.concatenate([t.group for t in items]).astype(np.int64)
    n_words = sum(t.n_words for t in items)
    uniq, w, g = context_weights(ctx, member, group)
    keep = w != 0
    return CorpusStats(uniq[keep], w[keep], len(items), n_words, len(ctx), channel_of(g[keep]))


def corpus_stats(texts: Iterable[str]) -> CorpusStats:
    """Reduce a corpus to its weighted distinct contexts."""
    return stats_from_opportunities([text_opportunities(t) for t in texts])


# ----------------------------------------------------------------------------- scoring


def log_p_from_z(z: np.ndarray | float) -> np.ndarray:
    """Natural log of the p-value bound ``min(exp(-z²/2), c*·P(N ≥ z))``, ``c* ≈ 3.178``
    (0 for z ≤ 0); exact in log space for any z."""
    z = np.asarray(z, dtype=np.float64)
    zp = np.maximum(z, 0.0)
    bound = np.minimum(-0.5 * zp * zp, _LOG_GAUSS_C + log_ndtr(-zp))
    return np.where(z > 0, np.minimum(bound, 0.0), 0.0)


def p_from_z(z: np.ndarray | float) -> np.ndarray:
    """The p-value bound of :func:`log_p_from_z` (underflows to 0 beyond z ≈ 38: use the log)."""
    return np.exp(log_p_from_z(z))


def format_p(log10_p: float) -> str:
    """A p-value from its log10, never "0": ``3.16e-07``, or ``< 1e-348`` below 1e-300."""
    if log10_p >= -300:
        return f"{10.0**log10_p:.3g}"
    return f"< 1e{math.ceil(log10_p)}"


def channel_sums(stats: CorpusStats, subs: Sequence[tuple[int, int]], chunk: int = 256):
    """``(T, V)``: per key and channel the signed sum ``T`` (keys × channels) and per
    channel the variance ``V = sum w²``."""
    nch = len(CHANNELS)
    T = np.zeros((len(subs), nch), dtype=np.float64)
    ch = stats.channel if len(stats.channel) == len(stats.ctx) else np.zeros(len(stats.ctx), int)
    onehot = np.zeros((len(stats.ctx), nch))
    onehot[np.arange(len(stats.ctx)), ch] = stats.margin
    V = (onehot**2).sum(axis=0)
    if not subs or len(stats.ctx) == 0:
        return T, V
    k = np.array(subs, dtype=np.uint64).reshape(-1, 2)
    for i in range(0, len(k), chunk):
        bits = green_bits(stats.ctx, k[i : i + chunk, 0], k[i : i + chunk, 1])
        sign = 1.0 - 2.0 * bits  # choice 0 green -> +1
        T[i : i + chunk] = sign @ onehot
    return T, V


def z_scores(stats: CorpusStats, subs: Sequence[tuple[int, int]], chunk: int = 256) -> np.ndarray:
    """The combined statistic ``z`` of the corpus against each key (all channels)."""
    T, V = channel_sums(stats, subs, chunk)
    tot = float(V.sum())
    return T.sum(axis=1) / math.sqrt(tot) if tot > 0 else np.zeros(len(subs))


@dataclass(frozen=True)
class ChannelResult:
    z: float
    log10_p: float
    n_contexts: int


@dataclass(frozen=True)
class KeyResult:
    key_id: str
    z: float
    p_value: float
    n_contexts: int
    attributed: bool
    log10_p: float = 0.0
    channels: dict[str, ChannelResult] = field(default_factory=dict)


def detect(
    texts: Iterable[str] | CorpusStats,
    keys: Mapping[str, bytes],
    *,
    threshold: float = ATTRIBUTION_P,
) -> list[KeyResult]:
    """Test a corpus against every key (``key_id -> secret``); strongest evidence first."""
    stats = texts if isinstance(texts, CorpusStats) else corpus_stats(texts)
    ids = list(keys)
    T, V = channel_sums(stats, [subkeys(keys[i]) for i in ids])
    tot = float(V.sum())
    z = T.sum(axis=1) / math.sqrt(tot) if tot > 0 else np.zeros(len(ids))
    lp = log_p_from_z(z) / math.log(10)
    with np.errstate(invalid="ignore", divide="ignore"):
        zc = np.where(V > 0, T / np.sqrt(np.where(V > 0, V, 1.0)), 0.0)
    lpc = log_p_from_z(zc) / math.log(10)
    counts = stats.channel_contexts()
    thr = math.log10(threshold)
    res = [
        KeyResult(
            i,
            float(z[j]),
            float(10.0 ** lp[j]),
            stats.n_contexts,
            bool(lp[j] < thr),
            float(lp[j]),
            {
                c: ChannelResult(float(zc[j, n]), float(lpc[j, n]), counts[c])
                for n, c in enumerate(CHANNELS)
            },
        )
        for j, i in enumerate(ids)
    ]
    res.sort(key=lambda r: (r.log10_p, -r.z, r.key_id))
    return res


__all__ = [
    "ATTRIBUTION_P",
    "CHANNELS",
    "PAIRS",
    "ChannelResult",
    "CorpusStats",
    "FormSite",
    "KeyResult",
    "Opportunity",
    "channel_sums",
    "context_id",
    "context_weights",
    "corpus_stats",
    "detect",
    "form_sites",
    "format_p",
    "green_bits",
    "green_member",
    "lines",
    "log_p_from_z",
    "new_key_id",
    "new_secret",
    "opportunities",
    "order_sites",
    "p_from_z",
    "preference_stats",
    "sentence_length",
    "stats_from_opportunities",
    "subkeys",
    "text_opportunities",
    "weights_from_counts",
    "z_scores",
]
