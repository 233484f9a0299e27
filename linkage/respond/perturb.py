"""``perturb(text, strength, key)``: lower a model output's value as training data, and
sign it with the cluster's watermark key.

Passes, in order, each only on text outside protected spans (:mod:`linkage.respond.spans`):

1. **phrasing swaps** (:data:`~linkage.respond.lexicon.PHRASES`, unkeyed);
2. **keyed sentence order** (the watermark's *order* channel): adjacent independent
   sentences (no pronoun / connective / step opening, no digit, quote, bracket or other
   data character) of unequal length are put in the order the key makes green;
3. **keyed contraction** (the *form* channel): "do not" / "don't", "it is" / "it's", …;
4. **keyed lexical choice** (the *lexical* channel): each lexicon word is moved to the
   member of its pair that the key makes green in its context.

Nothing is ever dropped: every sentence of the input is in the output (earlier versions
trimmed "reasoning steps" and lost real steps such as "Then remove the battery.").

Determinism: every random decision comes from one generator seeded by
``BLAKE2b(key, text, strength)``, so the same key, text and strength give the same output.

Edit budget: at most ``edit_budget(strength)`` of the text's (whitespace) words are
edited — a swap of two sentences costs the longer one, a phrase its longer side, a
contraction its long form, a word swap one.  Passes 1–3 leave room for pass 4.  The
accounting is an upper bound on the word-level diff that the benchmark measures
independently.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from functools import lru_cache

from linkage.respond.lexicon import FORMS, PAIRS, PHRASES, WORD_INDEX
from linkage.respond.spans import code_intervals, free_segments, protected_intervals
from linkage.respond.watermark import (
    WORD,
    context_id,
    form_context_id,
    form_sites,
    green_member,
    lexicon_hit,
    lines,
    order_choice,
    subkeys,
)

# The edit budget: the share of words that may change at a strength (stated, and
# measured by bench/watermark.py).
BUDGET_BASE = 0.03
BUDGET_PER_STRENGTH = 0.27

_PHRASE_RX = re.compile(
    r"(?<![\w'-])("
    + "|".join(re.escape(a) for a, _ in PHRASES)
    + r")(?![\w'-])(?![ \t]+(?:to|of)\b)",
    re.I,
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
    p_form: float  # chance a red contraction site is moved to green
    p_order: float  # chance a red pair of adjacent sentences is swapped
    p_phrase: float  # chance a phrase is reworded
    budget: float  # share of words

    @classmethod
    def of(cls, strength: float) -> Plan:
        s = min(1.0, max(0.0, float(strength)))
        return cls(
            strength=s,
            p_green=min(1.0, 0.5 + s) if s > 0 else 0.0,
            p_form=min(1.0, 0.5 + s) if s > 0 else 0.0,
            p_order=min(1.0, 0.5 + s) if s > 0 else 0.0,
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


def _spliced(text: str, parts: list[str], last: int) -> str:
    """``text`` with a pass's replacements: ``parts`` holds the unchanged stretches and
    the replacements up to ``last``; the rest of ``text`` follows unchanged."""
    if not parts:
        return text
    parts.append(text[last:])
    return "".join(parts)


def _order_pass(
    text: str,
    iv: list[tuple[int, int]],
    plan: Plan,
    rng: random.Random,
    budget: _Budget,
    reserve: int,
    sub: tuple[int, int],
) -> str:
    """Swap red pairs of adjacent movable sentences (left to right); line lengths and
    protected spans stay where they were."""
    if plan.p_order <= 0:
        return text
    parts: list[str] = []
    last = 0
    for ln in lines(text, iv):
        sents, mov = list(ln.sentences), ln.movable
        changed = False
        for j in range(len(sents) - 1):
            if not (mov[j] and mov[j + 1]):
                continue
            c = order_choice(sents[j], sents[j + 1])
            if c is None or green_member(sub, c[0]) == c[1]:
                continue
            cost = max(len(sents[j].split()), len(sents[j + 1].split()))
            if rng.random() < plan.p_order and budget.take(cost, reserve):
                sents[j], sents[j + 1] = sents[j + 1], sents[j]
                changed = True
        if changed:
            end = ln.start + sum(map(len, ln.sentences)) + sum(map(len, ln.seps))
            rebuilt = sents[0] + "".join(sep + x for sep, x in zip(ln.seps, sents[1:], strict=True))
            parts.append(text[last : ln.start])
            parts.append(rebuilt)
            last = end
    return _spliced(text, parts, last)


def _form_pass(
    text: str,
    iv: list[tuple[int, int]],
    plan: Plan,
    rng: random.Random,
    budget: _Budget,
    reserve: int,
    sub: tuple[int, int],
) -> str:
    if plan.p_form <= 0:
        return text
    parts: list[str] = []
    last = 0
    for f in form_sites(text, iv):
        g = green_member(sub, form_context_id(f.form, f.prev))
        if g == f.member:
            continue
        cost = len(FORMS[f.form][0].split())
        if rng.random() < plan.p_form and budget.take(cost, reserve):
            parts.append(text[last : f.start])
            parts.append(_match_case(text[f.start : f.end], FORMS[f.form][g]))
            last = f.end
    return _spliced(text, parts, last)


def _phrase_pass(
    text: str,
    iv: list[tuple[int, int]],
    plan: Plan,
    rng: random.Random,
    budget: _Budget,
    reserve: int,
    code: set[str],
) -> str:
    if plan.p_phrase <= 0 or not _PHRASE_RX.search(text):
        return text
    parts: list[str] = []
    last = 0
    for s, e in free_segments(text, iv):
        for m in _PHRASE_RX.finditer(text, s, e):
            src = m.group()
            if code & set(src.lower().split()):
                continue  # a word the text's code names stays
            dst = _PHRASE_TO[" ".join(src.lower().split())]
            cost = max(len(src.split()), len(dst.split()))
            if rng.random() < plan.p_phrase and budget.take(cost, reserve):
                parts.append(text[last : m.start()])
                parts.append(_match_case(src, dst))
                last = m.end()
    return _spliced(text, parts, last)


def _lexical_pass(
    text: str,
    iv: list[tuple[int, int]],
    plan: Plan,
    rng: random.Random,
    budget: _Budget,
    sub: tuple[int, int],
    frozen: frozenset[int],
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
            hit = lexicon_hit(text, a, b, lw, prev, frozen)
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
    return _spliced(text, parts, last)


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
    sub = subkeys(kb)
    # words the text's code names (unchanged by every pass): never rewritten in prose
    code = {w.lower() for a, b in code_intervals(text) for w in WORD.findall(text[a:b])}
    frozen = frozenset(WORD_INDEX[w][0] for w in code if w in WORD_INDEX)
    out = _phrase_pass(text, iv, plan, rng, budget, reserve, code)
    if out != text:
        iv = protected_intervals(out)
    out = _order_pass(out, iv, plan, rng, budget, reserve, sub)  # keeps offsets
    text = out
    out = _form_pass(text, iv, plan, rng, budget, reserve, sub)
    if out != text:
        iv = protected_intervals(out)
    return _lexical_pass(out, iv, plan, rng, budget, sub, frozen)


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
