"""``perturb(text, strength, key)``: lower a model output's value as training data, and
sign it with the cluster's watermark key.

Passes, in order, each only on text outside protected spans (:mod:`linkage.respond.spans`):

1. **trim reasoning steps** — drop sentences that open with a reasoning cue ("Next,",
   "Let's", "Note that", …), never the only sentence of a line;
2. **reorder** adjacent *independent* sentences (no pronoun / connective opening, no
   digit, quote, bracket or other data character);
3. **phrasing swaps** (:data:`~linkage.respond.lexicon.PHRASES`);
4. **keyed lexical choice**: each lexicon word is moved to the member of its pair that the
   key makes green in its context (:mod:`linkage.respond.watermark`) — the watermark.

Determinism: every random decision comes from one generator seeded by
``BLAKE2b(key, text, strength)``, so the same key, text and strength give the same output.

Edit budget: at most ``edit_budget(strength)`` of the text's (whitespace) words are
edited — a dropped sentence costs its words, a swap of two sentences the longer one, a
phrase its longer side, a word swap one.  Passes 1–3 leave room for pass 4.  The
accounting is an upper bound on the word-level diff (``difflib``) that the benchmark
measures independently.
"""

from __future__ import annotations

import bisect
import hashlib
import random
import re
from dataclasses import dataclass
from functools import lru_cache

from linkage.respond.lexicon import PAIRS, PHRASES, WORD_INDEX
from linkage.respond.spans import SPECIAL_RX, free_segments, protected_intervals
from linkage.respond.watermark import WORD, context_id, green_member, lexicon_hit, subkeys

# The edit budget: the share of words that may change at a strength (stated, and
# measured by bench/watermark.py).
BUDGET_BASE = 0.03
BUDGET_PER_STRENGTH = 0.27

_SENT_SPLIT = re.compile(r"(?<=[.!?])[ \t]+(?=[A-Z])")
_CUE = re.compile(
    r"^(?:[-*] +)?(?:First|Next|Then|Now|So|Let's|Let me|Let us|We can|We need|We know|"
    r"Note that|Recall that|This means|In other words|To see this|Notice|Checking|"
    r"Double-checking|Wait|Hmm|Okay|Looking at)\b"
)
_DEPENDENT = frozenset(
    [
        "it",
        "this",
        "that",
        "these",
        "those",
        "they",
        "them",
        "he",
        "she",
        "then",
        "so",
        "thus",
        "therefore",
        "however",
        "but",
        "and",
        "also",
        "finally",
        "next",
        "first",
        "second",
        "third",
        "hence",
        "moreover",
        "furthermore",
        "instead",
        "otherwise",
        "here",
        "there",
        "such",
        "its",
        "their",
        "his",
        "her",
        "both",
        "after",
        "before",
        "once",
        "later",
        "now",
        "consequently",
        "meanwhile",
        "similarly",
        "likewise",
        "still",
        "yet",
        "in",
        "as",
        "because",
        "which",
        "or",
        "nor",
    ]
)
_PHRASE_RX = re.compile(
    r"(?<![\w'-])(" + "|".join(re.escape(a) for a, _ in PHRASES) + r")(?![\w'-])", re.I
)
_PHRASE_TO = {a: b for a, b in PHRASES}


def edit_budget(strength: float) -> float:
    """Largest share of a text's words that ``perturb`` edits at ``strength`` (0 at 0)."""
    if strength <= 0:
        return 0.0
    return BUDGET_BASE + BUDGET_PER_STRENGTH * min(1.0, strength)


@dataclass(frozen=True)
class Plan:
    """What a strength means, pass by pass."""

    strength: float
    p_green: float  # chance a red lexicon word is moved to green
    p_trim: float  # chance a reasoning-cue sentence is dropped
    p_reorder: float  # chance an independent adjacent pair is swapped
    p_phrase: float  # chance a phrase is reworded
    budget: float  # share of words

    @classmethod
    def of(cls, strength: float) -> Plan:
        s = min(1.0, max(0.0, float(strength)))
        return cls(
            strength=s,
            p_green=min(1.0, 0.5 + s) if s > 0 else 0.0,
            p_trim=0.6 * s,
            p_reorder=0.5 * s,
            p_phrase=s,
            budget=edit_budget(s),
        )


def _key_bytes(key: bytes | str) -> bytes:
    return key.encode() if isinstance(key, str) else bytes(key)


@lru_cache(maxsize=65536)
def _ctx(pair: int, prev: str) -> int:
    return context_id(pair, prev)


def _match_case(src: str, word: str) -> str:
    if len(src) > 1 and src.isupper():
        return word.upper()
    if src[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


class _Budget:
    def __init__(self, total: int) -> None:
        self.left = total

    def take(self, cost: int, reserve: int = 0) -> bool:
        if cost <= self.left - reserve:
            self.left -= cost
            return True
        return False


def _inside(iv_starts: list[int], iv: list[tuple[int, int]], pos: int) -> bool:
    i = bisect.bisect_right(iv_starts, pos) - 1
    return i >= 0 and iv[i][0] <= pos < iv[i][1]


def _clean(sentence: str) -> bool:
    return SPECIAL_RX.search(sentence) is None


def _sentences_pass(
    text: str,
    iv: list[tuple[int, int]],
    plan: Plan,
    rng: random.Random,
    budget: _Budget,
    reserve: int,
) -> str:
    if plan.p_trim <= 0 and plan.p_reorder <= 0:
        return text
    starts = [s for s, _ in iv]
    out: list[str] = []
    pos = 0
    for line in text.split("\n"):
        lo, hi = pos, pos + len(line)
        pos = hi + 1
        if not line.strip():
            out.append(line)
            continue
        # sentence boundaries outside protected spans
        cuts = [m for m in _SENT_SPLIT.finditer(line) if not _inside(starts, iv, lo + m.start())]
        if not cuts:
            out.append(line)
            continue
        sents: list[str] = []
        seps: list[str] = []
        prev = 0
        for m in cuts:
            sents.append(line[prev : m.start()])
            seps.append(m.group())
            prev = m.end()
        sents.append(line[prev:])
        offs = []
        o = lo
        for i, s in enumerate(sents):
            offs.append(o)
            o += len(s) + (len(seps[i]) if i < len(seps) else 0)
        clean = [
            _clean(s) and not any(a < offs[i] + len(s) and b > offs[i] for a, b in iv)
            for i, s in enumerate(sents)
        ]
        # 1. trim reasoning steps
        keep = [True] * len(sents)
        for i, s in enumerate(sents):
            if (
                clean[i]
                and _CUE.match(s)
                and sum(keep) > 1
                and rng.random() < plan.p_trim
                and budget.take(len(s.split()), reserve)
            ):
                keep[i] = False
        idx = [i for i in range(len(sents)) if keep[i]]
        # 2. reorder independent adjacent sentences
        order = list(idx)
        j = 0
        while j + 1 < len(order):
            a, b = order[j], order[j + 1]
            if (
                clean[a]
                and clean[b]
                and _independent(sents[a])
                and _independent(sents[b])
                and rng.random() < plan.p_reorder
                and budget.take(max(len(sents[a].split()), len(sents[b].split())), reserve)
            ):
                order[j], order[j + 1] = b, a
                j += 2
            else:
                j += 1
        if order == list(range(len(sents))):
            out.append(line)
            continue
        # rebuild: separators stay in place, the last sentence keeps the line's tail
        pieces = [sents[i] for i in order]
        kept_seps = [seps[i] for i in idx[:-1]] if len(idx) > 1 else []
        rebuilt = pieces[0]
        for sep, p in zip(kept_seps, pieces[1:], strict=True):
            rebuilt += sep + p
        out.append(rebuilt)
    return "\n".join(out)


def _independent(sentence: str) -> bool:
    m = WORD.match(sentence.lstrip())
    return m is not None and m.group().lower() not in _DEPENDENT and not _CUE.match(sentence)


def _phrase_pass(
    text: str,
    iv: list[tuple[int, int]],
    plan: Plan,
    rng: random.Random,
    budget: _Budget,
    reserve: int,
) -> str:
    if plan.p_phrase <= 0 or not _PHRASE_RX.search(text):
        return text
    parts: list[str] = []
    last = 0
    for s, e in free_segments(text, iv):
        for m in _PHRASE_RX.finditer(text, s, e):
            src = m.group()
            dst = _PHRASE_TO[src.lower()]
            cost = max(len(src.split()), len(dst.split()))
            if rng.random() < plan.p_phrase and budget.take(cost, reserve):
                parts.append(text[last : m.start()])
                parts.append(_match_case(src, dst))
                last = m.end()
    if not parts:
        return text
    parts.append(text[last:])
    return "".join(parts)


def _lexical_pass(
    text: str,
    iv: list[tuple[int, int]],
    plan: Plan,
    rng: random.Random,
    budget: _Budget,
    sub: tuple[int, int],
) -> str:
    if plan.p_green <= 0:
        return text
    parts: list[str] = []
    last = 0
    for s, e in free_segments(text, iv):
        prev = ""
        for m in WORD.finditer(text, s, e):
            w = m.group()
            lw = w.lower()
            a, b = m.span()
            hit = lexicon_hit(text, a, b, lw)
            if hit is not None:
                pair, member = hit
                g = green_member(sub, _ctx(pair, prev))
                if g != member and rng.random() < plan.p_green and budget.take(1):
                    new = PAIRS[pair][g]
                    parts.append(text[last:a])
                    parts.append(_match_case(w, new))
                    last = b
                    lw = new.lower()
            prev = lw
    if not parts:
        return text
    parts.append(text[last:])
    return "".join(parts)


def _rng(key: bytes, text: str, strength: float) -> random.Random:
    h = hashlib.blake2b(key=key[:64] or b"\0", digest_size=16)
    h.update(f"{strength:.6f}\x1f".encode())
    h.update(text.encode("utf-8", "surrogatepass"))
    return random.Random(int.from_bytes(h.digest(), "little"))


def perturb(text: str, strength: float, key: bytes | str) -> str:
    """Perturb ``text`` at ``strength`` (0–1) under the watermark ``key`` (the secret).

    ``strength <= 0`` returns ``text`` unchanged (clear accounts are never perturbed).
    Protected spans (code, numbers, JSON, URLs, quoted data, …) come out byte-identical
    and in the same order.
    """
    plan = Plan.of(strength)
    if plan.strength <= 0 or not text:
        return text
    kb = _key_bytes(key)
    rng = _rng(kb, text, plan.strength)
    n_words = len(text.split())
    budget = _Budget(int(plan.budget * n_words))
    iv = protected_intervals(text)
    # room kept for the watermark: the red half of the lexicon words, at most
    reserve = min(budget.left, (_count_lexicon_words(text, iv) + 1) // 2)
    out = _sentences_pass(text, iv, plan, rng, budget, reserve)
    if out != text:
        iv = protected_intervals(out)
    text = out
    out = _phrase_pass(text, iv, plan, rng, budget, reserve)
    if out != text:
        iv = protected_intervals(out)
    return _lexical_pass(out, iv, plan, rng, budget, subkeys(kb))


def _count_lexicon_words(text: str, iv: list[tuple[int, int]]) -> int:
    return sum(
        1
        for s, e in free_segments(text, iv)
        for m in WORD.finditer(text, s, e)
        if m.group().lower() in WORD_INDEX
    )


def word_edit_fraction(before: str, after: str) -> float:
    """Word-level edit share: ``1 - matched / max(len)`` over whitespace words, where
    ``matched`` is the longest common subsequence of the two word lists.

    The subsequence is computed exactly, not with difflib's greedy longest-block
    matching, which can miss the alignment of texts with repeated sentences and count
    two swapped words as half the text changed.
    """
    a, b = before.split(), after.split()
    if not a and not b:
        return 0.0
    return 1.0 - _lcs_length(a, b) / max(len(a), len(b))


def _lcs_length(a: list[str], b: list[str]) -> int:
    """Longest common subsequence of two word lists (two-row dynamic programme,
    common ends trimmed first)."""
    lo = 0
    while lo < len(a) and lo < len(b) and a[lo] == b[lo]:
        lo += 1
    hi_a, hi_b = len(a), len(b)
    while hi_a > lo and hi_b > lo and a[hi_a - 1] == b[hi_b - 1]:
        hi_a -= 1
        hi_b -= 1
    common = lo + (len(a) - hi_a)
    a, b = a[lo:hi_a], b[lo:hi_b]
    if not a or not b:
        return common
    prev = [0] * (len(b) + 1)
    for wa in a:
        cur = [0] * (len(b) + 1)
        for j, wb in enumerate(b, 1):
            cur[j] = prev[j - 1] + 1 if wa == wb else max(prev[j], cur[j - 1])
        prev = cur
    return common + prev[-1]
