"""A keyed lexical watermark and its detector.

**Embedding** (done by :func:`linkage.respond.perturb.perturb`): every occurrence of a
lexicon word (:data:`~linkage.respond.lexicon.PAIRS`) outside protected spans is an
*opportunity*.  Its context is ``(pair, previous word)``; a keyed pseudo-random bit
``green(key, context)`` says which member of the pair is *green* there, and the
perturbation rewrites red occurrences to the green member with a probability that grows
with the strength.

**Detection** (:func:`detect`): a suspect corpus is reduced, once, to its distinct
contexts ``c`` with the counts ``A_c``, ``B_c`` of the two members seen there, and the
margin ``m_c = (A_c - B_c) / (A_c + B_c)``.  Against a key, ``s_c = +1`` if the first
member is green at ``c`` and ``-1`` otherwise, and the statistic is
``T = sum_c s_c m_c`` with ``z = T / sqrt(sum_c m_c^2)``.

Why this is an exact test: text not written with the key is independent of it, so the
``s_c`` are independent fair signs whatever the text's own word preferences (a writer who
always says "large" after "very" contributes one context, not hundreds of correlated
observations).  ``T`` is then a Rademacher sum with bounded terms, and Hoeffding's
inequality gives ``P(z >= t) <= exp(-t^2 / 2)`` for *any* text — the p-value reported
(``exp(-z^2/2)``) is a valid upper bound, with no normal approximation and no
calibration corpus.  A corpus is attributed to a key when ``p < 1e-6`` (``z > 5.26``).

The keyed bit is ``fmix64(fmix64(c ^ k0) ^ k1)``'s top bit (MurmurHash3's 64-bit
finaliser, a bijection with full avalanche), ``c`` an unkeyed 64-bit BLAKE2b id of the
context and ``(k0, k1)`` derived from the 256-bit secret by keyed BLAKE2b.  It is
computed vectorised over contexts × keys in numpy, so testing a corpus against
thousands of keys takes milliseconds.  It is not a cryptographic PRF; the secret
matters, and what an observer learns from outputs (the green choices in contexts it
saw) it could learn from any lexical watermark.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from linkage.respond.lexicon import PAIRS, WORD_INDEX
from linkage.respond.spans import free_segments

#: default attribution threshold
ATTRIBUTION_P = 1e-6
_M64 = (1 << 64) - 1
WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")


# ----------------------------------------------------------------------------- keys


def new_secret() -> bytes:
    """A fresh 256-bit watermark secret."""
    return secrets.token_bytes(32)


def new_key_id() -> str:
    """A public, random key id (carries nothing of the secret)."""
    return "wm-" + secrets.token_hex(6)


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


def context_id(pair: int, prev: str) -> int:
    """Unkeyed 64-bit id of a context (pair index, previous word lower-cased)."""
    h = hashlib.blake2b(f"{pair}\x1f{prev}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little")


def green_member(sub: tuple[int, int], ctx: int) -> int:
    """Which member (0 or 1) of the pair is green in context ``ctx`` under the key."""
    k0, k1 = sub
    return _fmix(_fmix(ctx ^ k0) ^ k1) >> 63


def green_bits(ctx: np.ndarray, k0: np.ndarray, k1: np.ndarray) -> np.ndarray:
    """``green_member`` for every (key, context): shape ``(len(k0), len(ctx))``, uint8."""
    with np.errstate(over="ignore"):
        x = _fmix_np(ctx[None, :] ^ k0[:, None])
        x = _fmix_np(x ^ k1[:, None])
    return (x >> np.uint64(63)).astype(np.int8)


# ----------------------------------------------------------------------------- opportunities


@dataclass(frozen=True)
class Opportunity:
    """A lexicon word outside protected spans: where the watermark can speak."""

    start: int
    end: int
    pair: int
    member: int
    prev: str  # previous word in the same free segment, lower-cased ("" if none)


def lexicon_hit(text: str, a: int, b: int, lw: str) -> tuple[int, int] | None:
    """``(pair, member)`` if the word ``text[a:b]`` (lower-cased ``lw``) can carry the mark:
    a lexicon word not glued to ``-`` or ``'``. The one rule the embedder
    (:func:`linkage.respond.perturb.perturb`) and the detector share."""
    hit = WORD_INDEX.get(lw)
    if hit is None:
        return None
    before = text[a - 1] if a > 0 else " "
    after = text[b] if b < len(text) else " "
    return hit if before not in "-'" and after not in "-'" else None


def opportunities(text: str) -> list[Opportunity]:
    """Every lexicon word of ``text`` outside protected spans, not glued to ``-`` or ``'``."""
    out: list[Opportunity] = []
    for s, e in free_segments(text):
        prev = ""
        for m in WORD.finditer(text, s, e):
            lw = m.group().lower()
            hit = lexicon_hit(text, m.start(), m.end(), lw)
            if hit is not None:
                out.append(Opportunity(m.start(), m.end(), hit[0], hit[1], prev))
            prev = lw
    return out


# ----------------------------------------------------------------------------- corpus


@dataclass(frozen=True)
class CorpusStats:
    """A corpus reduced to what the detector needs (key-independent, computed once)."""

    ctx: np.ndarray  # uint64 context ids
    margin: np.ndarray  # (A - B) / (A + B) per context, float64
    n_texts: int
    n_words: int
    n_opportunities: int

    @property
    def n_contexts(self) -> int:
        return len(self.ctx)


@lru_cache(maxsize=131072)
def _ctx_id(pair: int, prev: str) -> int:
    return context_id(pair, prev)


@dataclass(frozen=True)
class TextOpportunities:
    """One text's opportunities as arrays (context id, member), plus its word count."""

    ctx: np.ndarray  # uint64
    member: np.ndarray  # int8
    n_words: int


def text_opportunities(text: str) -> TextOpportunities:
    """The opportunities of one text, as arrays (cacheable per response)."""
    ops = opportunities(text)
    ctx = np.fromiter((_ctx_id(o.pair, o.prev) for o in ops), dtype=np.uint64, count=len(ops))
    member = np.fromiter((o.member for o in ops), dtype=np.int8, count=len(ops))
    return TextOpportunities(ctx, member, len(WORD.findall(text)))


def stats_from_opportunities(items: Sequence[TextOpportunities]) -> CorpusStats:
    """Merge per-text opportunities into corpus statistics (vectorised)."""
    if not items:
        return CorpusStats(np.zeros(0, np.uint64), np.zeros(0), 0, 0, 0)
    ctx = np.concatenate([t.ctx for t in items])
    member = np.concatenate([t.member for t in items])
    n_words = sum(t.n_words for t in items)
    uniq, inv = np.unique(ctx, return_inverse=True)
    a = np.bincount(inv, weights=(member == 0), minlength=len(uniq))
    n = np.bincount(inv, minlength=len(uniq)).astype(np.float64)
    margin = (2.0 * a - n) / np.maximum(n, 1.0)
    keep = margin != 0  # a tie says nothing about the key
    return CorpusStats(uniq[keep], margin[keep], len(items), n_words, len(ctx))


def corpus_stats(texts: Iterable[str]) -> CorpusStats:
    """Count, per distinct context, how often each pair member occurs."""
    return stats_from_opportunities([text_opportunities(t) for t in texts])


@dataclass(frozen=True)
class KeyResult:
    key_id: str
    z: float
    p_value: float
    n_contexts: int
    attributed: bool


def p_from_z(z: np.ndarray) -> np.ndarray:
    """Hoeffding upper bound on ``P(Z >= z)`` for a bounded Rademacher sum: ``exp(-z²/2)``."""
    z = np.asarray(z, dtype=np.float64)
    return np.where(z > 0, np.exp(-0.5 * np.square(np.maximum(z, 0.0))), 1.0)


def z_scores(stats: CorpusStats, subs: Sequence[tuple[int, int]], chunk: int = 256) -> np.ndarray:
    """The statistic ``z`` of the corpus against each key (vectorised, keys in chunks)."""
    out = np.zeros(len(subs), dtype=np.float64)
    norm = math.sqrt(float(np.dot(stats.margin, stats.margin)))
    if norm == 0 or not subs:
        return out
    k = np.array(subs, dtype=np.uint64).reshape(-1, 2)
    for i in range(0, len(k), chunk):
        bits = green_bits(stats.ctx, k[i : i + chunk, 0], k[i : i + chunk, 1])
        sign = 1.0 - 2.0 * bits  # member 0 green -> +1
        out[i : i + chunk] = (sign @ stats.margin) / norm
    return out


def detect(
    texts: Iterable[str] | CorpusStats,
    keys: Mapping[str, bytes],
    *,
    threshold: float = ATTRIBUTION_P,
) -> list[KeyResult]:
    """Test a corpus against every key (``key_id -> secret``); strongest evidence first."""
    stats = texts if isinstance(texts, CorpusStats) else corpus_stats(texts)
    ids = list(keys)
    z = z_scores(stats, [subkeys(keys[i]) for i in ids])
    p = p_from_z(z)
    res = [
        KeyResult(i, float(z[j]), float(p[j]), stats.n_contexts, bool(p[j] < threshold))
        for j, i in enumerate(ids)
    ]
    res.sort(key=lambda r: (r.p_value, -r.z, r.key_id))
    return res


__all__ = [
    "ATTRIBUTION_P",
    "PAIRS",
    "CorpusStats",
    "KeyResult",
    "Opportunity",
    "context_id",
    "corpus_stats",
    "detect",
    "green_bits",
    "green_member",
    "new_key_id",
    "new_secret",
    "opportunities",
    "p_from_z",
    "stats_from_opportunities",
    "subkeys",
    "text_opportunities",
    "z_scores",
]
