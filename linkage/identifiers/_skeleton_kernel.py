"""Compiled (numba) one-pass skeleton scanner: the RE2 masks of
:mod:`linkage.identifiers.skeleton`, computed on code points over the Arrow buffers.

Each prompt is decoded once into a code-point buffer; every mask is a hand-written
left-to-right scanner that reproduces what RE2's ``GlobalReplace`` does with that
mask's pattern (leftmost-first matches, greedy quantifiers with Perl backtracking
order, the next search starting where a match ended, ``^``/``$``/``\\b`` seen
against the whole string); masks that RE2 runs twice run twice here. Then the
text is lower-cased (Arrow's ``utf8_lower`` table) and encoded back to UTF-8 with
the slot tokens restored. Nothing per prompt is allocated.

Character classes are never written out here: every class a pattern uses is a bit
of one table over all code points, and every bit is evaluated by RE2 itself on
the class as written in the pattern (:func:`linkage.identifiers.skeleton.tables`),
so the Unicode version and RE2's case folding cannot drift between the two.

The scanners are proven equal to the RE2 rewrites by property tests on adversarial
text, mask by mask and end to end (``tests/identifiers/test_skeleton.py``).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from linkage.identifiers._template_kernel import char_at

__all__ = ["MASK_IDS", "add_trigger_bits", "apply_mask_rows", "skeleton_rows"]

_jit = nb.njit(nogil=True, cache=True)  # one decorator: mypy checks it, not a **dict

# placeholders (one private-use character per slot while masking)
PH_N = 0xE000
PH_Q = 0xE001
PH_C = 0xE002
PH_I = 0xE003
PH_M = 0xE004
# the slot tokens the placeholders PH_N .. PH_M stand for, as UTF-8 (already lower
# case), one after the other; the token of placeholder c is
# _SLOT_BYTES[_SLOT_START[c - PH_N] : _SLOT_START[c - PH_N + 1]]
_SLOT_BYTES = np.frombuffer(b"<n><q><code><id><name>", dtype=np.uint8)
_SLOT_START = np.array([0, 3, 6, 12, 16, 22], dtype=np.int64)


# class bits of the table (see skeleton.tables)
W = 1  # [\p{L}\p{N}\p{M}_PH]: "word"; its complement is NW
SPACE = 2  # [\t-\r\x1c-\x20\x85\p{Z}]
SNB = 4  # whitespace that is not the blank
NUM = 8  # \p{N}
LU = 16  # \p{Lu}
LL = 32  # \p{Ll}
URL = 64  # (?i)[^ <>"'`PH]
LOCAL = 128  # (?i)[A-Za-z0-9._%+-]
DOM = 256  # (?i)[A-Za-z0-9-]
TLD = 512  # (?i)[A-Za-z]
HEX = 1024  # (?i)[0-9a-f]
AWORD = 2048  # RE2's \b word characters (ASCII [0-9A-Za-z_])
HEXCS = 4096  # [0-9A-Fa-f] (case-sensitive, the hazard test)
# derived bits (add_trigger_bits): not RE2 classes, the scanner's own bookkeeping
CTX = 8192  # a character whose meaning for the _F_* conditions depends on its neighbour
LLC = 16384  # [\p{Ll},;]: what may precede the blank before a name
FLAG_SHIFT = 16  # bits 16+: the _F_* conditions a character sets on its own

_BT = 96  # `
_NL = 10
_TAB = 9
_SP = 32
_APOS = 39

# mask ids for apply_mask (one run of one mask, as one replace_substring_regex call)
MASK_IDS = {
    "unmask": 0,
    "fenced": 1,
    "indented": 2,
    "space": 3,
    "inline": 4,
    "code_run": 5,
    "url": 6,
    "quote": 7,
    "apostrophe": 8,
    "hex_fast": 9,
    "hex_slow": 10,
    "number": 11,
    "name": 12,
    "hex": 13,  # the hex step as the RE2 path runs it (fast path, or the slow one twice)
}


# ----------------------------------------------------------------------------- masks
# Each mask reads s[0:n] and writes its output to d, returning the output length.
# No mask lengthens the text.


@nb.njit(inline="always")
def _fold_is(fold, c, letter):
    return fold[c] == letter


@nb.njit(inline="always")
def _slot_at(s, n, i, fold):
    """(placeholder, length) of the slot token (any case, RE2 folding) starting at
    ``i``, or (0, 0) if none does."""
    for t in range(len(_SLOT_START) - 1):
        lo = _SLOT_START[t]
        ln = _SLOT_START[t + 1] - lo
        if i + ln - 1 < n and s[i + ln - 1] == 62:  # >
            hit = True
            for q in range(1, ln - 1):
                if not _fold_is(fold, s[i + q], _SLOT_BYTES[lo + q]):
                    hit = False
                    break
            if hit:
                return PH_N + t, ln
    return 0, 0


@_jit
def _unmask(s, n, d, fold, limit):
    """Literal slot tokens (any case, RE2 folding) -> placeholders, at most ``limit``
    characters of output."""
    m = 0
    i = 0
    while i < n and m < limit:
        c = s[i]
        if c == 60:  # <
            ph, ln = _slot_at(s, n, i, fold)
            if ph:
                d[m] = ph
                m += 1
                i += ln
                continue
        d[m] = c
        m += 1
        i += 1
    return m


@_jit
def _fenced(s, n, d):
    """(?s)```.*?(?:```|\\z) -> <code>"""
    m = 0
    i = 0
    while i < n:
        if s[i] == _BT and i + 2 < n and s[i + 1] == _BT and s[i + 2] == _BT:
            end = n
            j = i + 3
            while j + 2 < n:
                if s[j] == _BT and s[j + 1] == _BT and s[j + 2] == _BT:
                    end = j + 3
                    break
                j += 1
            d[m] = PH_C
            m += 1
            i = end
        else:
            d[m] = s[i]
            m += 1
            i += 1
    return m


@nb.njit(inline="always")
def _indented_line(s, n, p):
    """End of the line starting at ``p`` (index of its newline, or n) if the line is
    indented code (4 blanks or a tab, then some non-blank), else -1."""
    blank4 = p + 3 < n and s[p] == _SP and s[p + 1] == _SP and s[p + 2] == _SP and s[p + 3] == _SP
    if not (blank4 or (p < n and s[p] == _TAB)):
        return -1
    found = False
    e = p
    while e < n and s[e] != _NL:
        if s[e] != _SP and s[e] != _TAB:
            found = True
        e += 1
    return e if found else -1


@_jit
def _indented(s, n, d):
    """\\n(?:(?: {4}|\\t)[ \\t]*[^ \\t\\n][^\\n]*(?:\\n|\\z))+ -> \\n<code>\\n"""
    m = 0
    i = 0
    while i < n:
        if s[i] == _NL:
            e = _indented_line(s, n, i + 1)
            if e >= 0:
                while True:
                    if e >= n:
                        end = n
                        break
                    end = e + 1  # the newline is part of the line
                    e2 = _indented_line(s, n, end)
                    if e2 < 0:
                        break
                    e = e2
                d[m] = _NL
                d[m + 1] = PH_C
                d[m + 2] = _NL
                m += 3
                i = end
                continue
        d[m] = s[i]
        m += 1
        i += 1
    return m


@_jit
def _space(s, n, d, cls):
    """SNB SPACE* | ' ' SPACE+ -> ' ', then the blanks at both ends trimmed."""
    m = 0
    i = 0
    while i < n:
        c = s[i]
        j = -1
        if cls[c] & SNB:
            j = i + 1
        elif c == _SP and i + 1 < n and cls[s[i + 1]] & SPACE:
            j = i + 2
        if j >= 0:
            while j < n and cls[s[j]] & SPACE:
                j += 1
            d[m] = _SP
            m += 1
            i = j
        else:
            d[m] = c
            m += 1
            i += 1
    # utf8_trim(" ")
    lo = 0
    while lo < m and d[lo] == _SP:
        lo += 1
    hi = m
    while hi > lo and d[hi - 1] == _SP:
        hi -= 1
    if lo:
        for k in range(lo, hi):
            d[k - lo] = d[k]
    return hi - lo


@_jit
def _inline(s, n, d):
    """`+[^`]+`+ -> <code>"""
    m = 0
    i = 0
    while i < n:
        if s[i] == _BT:
            j = i
            while j < n and s[j] == _BT:
                j += 1
            if j < n:
                k = j
                while k < n and s[k] != _BT:
                    k += 1
                if k < n:
                    while k < n and s[k] == _BT:
                        k += 1
                    d[m] = PH_C
                    m += 1
                    i = k
                    continue
            for t in range(i, j):  # no match starts anywhere in this run of backticks
                d[m] = s[t]
                m += 1
            i = j
        else:
            d[m] = s[i]
            m += 1
            i += 1
    return m


@_jit
def _code_run(s, n, d):
    """<code>(?: ?<code>)+ -> <code>"""
    m = 0
    i = 0
    while i < n:
        if s[i] == PH_C:
            j = i + 1
            while True:
                if j + 1 < n and s[j] == _SP and s[j + 1] == PH_C:
                    j += 2
                elif j < n and s[j] == PH_C:
                    j += 1
                else:
                    break
            if j > i + 1:
                d[m] = PH_C
                m += 1
                i = j
                continue
        d[m] = s[i]
        m += 1
        i += 1
    return m


@nb.njit(inline="always")
def _url_at(s, n, i, cls, fold):
    """End of the URL alternative matched at ``i``, or -1."""
    k = -1
    if i + 3 < n and fold[s[i]] == 104 and fold[s[i + 1]] == 116 and fold[s[i + 2]] == 116:
        if fold[s[i + 3]] == 112:  # http
            k = i + 4
            if k < n and fold[s[k]] == 115:  # s? (greedy; without it "://" cannot follow)
                k += 1
    elif i + 2 < n and fold[s[i]] == 102 and fold[s[i + 1]] == 116 and fold[s[i + 2]] == 112:
        k = i + 3  # ftp
    if k >= 0:
        if k + 2 < n and s[k] == 58 and s[k + 1] == 47 and s[k + 2] == 47:  # ://
            k += 3
        else:
            k = -1
    if k < 0:
        if (
            i + 3 < n
            and fold[s[i]] == 119
            and fold[s[i + 1]] == 119
            and fold[s[i + 2]] == 119
            and s[i + 3] == 46
        ):  # www.
            k = i + 4
        else:
            return -1
    j = k
    while j < n and cls[s[j]] & URL:
        j += 1
    return j if j > k else -1


@nb.njit(inline="always")
def _domain_end(s, n, at, cls):
    """End of ``[D]+(?:\\.[D]+)*\\.[T]{2,}`` after the ``@`` at ``at`` (greedy with
    backtracking: the deepest label boundary followed by 2+ TLD characters), or -1."""
    q = at + 1
    while q < n and cls[s[q]] & DOM:
        q += 1
    if q == at + 1:
        return -1
    best = -1
    while q < n and s[q] == 46:
        r = q + 1
        u = r
        while u < n and cls[s[u]] & TLD:
            u += 1
        if u - r >= 2:
            best = u
        t = r
        while t < n and cls[s[t]] & DOM:
            t += 1
        if t == r:
            break
        q = t
    return best


@_jit
def _url(s, n, d, cls, fold):
    """URLs (scheme:// or www.) and e-mails -> <id> (leftmost-first: a URL wins over
    an e-mail starting at the same position)."""
    m = 0
    i = 0
    run_end = -1  # local-part run containing i (its e-mail result holds for all of it)
    run_hit = -1
    while i < n:
        e = _url_at(s, n, i, cls, fold)
        if e < 0 and cls[s[i]] & LOCAL:
            if i >= run_end:
                j = i
                while j < n and cls[s[j]] & LOCAL:
                    j += 1
                run_end = j
                run_hit = _domain_end(s, n, j, cls) if j < n and s[j] == 64 else -1
            e = run_hit
        if e >= 0:
            d[m] = PH_I
            m += 1
            i = e
            run_end = -1
            continue
        d[m] = s[i]
        m += 1
        i += 1
    return m


@nb.njit(inline="always")
def _closers(c):
    """(kind, closer 1, closer 2) of an opening quote, kind -1 if ``c`` opens none."""
    if c == 34:
        return 0, 34, 34
    if c == 0x201C:
        return 1, 0x201D, 0x201D
    if c == 0x201E:
        return 2, 0x201C, 0x201D
    if c == 0xAB:
        return 3, 0xBB, 0xBB
    if c == 0x2018:
        return 4, 0x2019, 0x2019
    if c == 0x300C:
        return 5, 0x300D, 0x300D
    if c == 0x300E:
        return 6, 0x300F, 0x300F
    return -1, 0, 0


@_jit
def _quote(s, n, d):
    """Paired quotes (straight double, typographic, guillemets, CJK) -> <q>"""
    dead = np.zeros(7, dtype=np.bool_)  # kinds with no closer left
    m = 0
    i = 0
    while i < n:
        kind, c1, c2 = _closers(s[i])
        if kind >= 0 and not dead[kind]:
            j = i + 1
            while j < n and s[j] != c1 and s[j] != c2:
                j += 1
            if j < n:
                d[m] = PH_Q
                m += 1
                i = j + 1
                continue
            dead[kind] = True
        d[m] = s[i]
        m += 1
        i += 1
    return m


@nb.njit(inline="always")
def _after_quote(s, n, q, cls):
    """For ``'[^']*'($|NW)`` with the opening quote at q: (end, suffix) or (-1, 0);
    suffix -1 when ``$`` matched."""
    c = q + 1
    while c < n and s[c] != _APOS:
        c += 1
    if c >= n:
        return -1, 0
    a = c + 1
    if a == n:
        return n, -1
    if not cls[s[a]] & W:
        return a + 1, s[a]
    return -1, 0


@_jit
def _apostrophe(s, n, d, cls):
    """(^|NW)'[^']*'($|NW) -> \\1<q>\\2 (one run)"""
    m = 0
    p = 0
    while p < n:
        if p == 0 and s[0] == _APOS:
            end, suf = _after_quote(s, n, 0, cls)
            if end >= 0:
                d[m] = PH_Q
                m += 1
                if suf >= 0:
                    d[m] = suf
                    m += 1
                p = end
                continue
        if p + 1 < n and s[p + 1] == _APOS and not cls[s[p]] & W:
            end, suf = _after_quote(s, n, p + 1, cls)
            if end >= 0:
                d[m] = s[p]
                d[m + 1] = PH_Q
                m += 2
                if suf >= 0:
                    d[m] = suf
                    m += 1
                p = end
                continue
        d[m] = s[p]
        m += 1
        p += 1
    return m


@nb.njit(inline="always")
def _right_ok(s, n, e, cls, slow):
    """Right boundary after a hex candidate ending at e: ``\\b`` (fast) or ``($|NW)``."""
    if e == n:
        return True
    if slow:
        return not cls[s[e]] & W
    return not cls[s[e]] & AWORD


@nb.njit(inline="always")
def _hex_at(s, n, i, cls, fold, slow):
    """End of the hex-id alternatives matched at i (uuid | 0x[hex]+ | 8+ hex with a
    letter), tried in RE2's priority order against the right boundary, or -1."""
    if i >= n:
        return -1
    # uuid 8-4-4-4-12
    if i + 36 <= n:
        ok = True
        for k in range(36):
            c = s[i + k]
            if k == 8 or k == 13 or k == 18 or k == 23:
                if c != 45:
                    ok = False
                    break
            elif not cls[c] & HEX:
                ok = False
                break
        if ok and _right_ok(s, n, i + 36, cls, slow):
            return i + 36
    # 0x[0-9a-f]+ (greedy, backtracking)
    if s[i] == 48 and i + 1 < n and fold[s[i + 1]] == 120:
        j = i + 2
        while j < n and cls[s[j]] & HEX:
            j += 1
        for e in range(j, i + 2, -1):
            if _right_ok(s, n, e, cls, slow):
                return e
    # [0-9]{k}[a-f][0-9a-f]{7-k,} (k < 8) | [0-9]{8,}[a-f][0-9a-f]*
    j = i
    f = -1
    while j < n and cls[s[j]] & HEX:
        if f < 0 and not (48 <= s[j] <= 57):
            f = j
        j += 1
    if f >= 0:
        lo = max(i + 8, f + 1)
        for e in range(j, lo - 1, -1):
            if _right_ok(s, n, e, cls, slow):
                return e
    return -1


@_jit
def _hex_fast(s, n, d, cls, fold):
    """\\b(?i:HEX)\\b -> <id> (one run)"""
    m = 0
    i = 0
    while i < n:
        if cls[s[i]] & AWORD and (i == 0 or not cls[s[i - 1]] & AWORD):
            e = _hex_at(s, n, i, cls, fold, False)
            if e >= 0:
                d[m] = PH_I
                m += 1
                i = e
                continue
        d[m] = s[i]
        m += 1
        i += 1
    return m


@_jit
def _hex_slow(s, n, d, cls, fold):
    """(^|NW)(?i:HEX)($|NW) -> \\1<id>\\2 (one run)"""
    m = 0
    p = 0
    while p < n:
        start = -1
        e = -1
        if p == 0:
            e = _hex_at(s, n, 0, cls, fold, True)
            if e >= 0:
                start = 0
        if e < 0 and not cls[s[p]] & W:
            e = _hex_at(s, n, p + 1, cls, fold, True)
            if e >= 0:
                start = p + 1
        if e >= 0:
            if start > p:
                d[m] = s[p]
                m += 1
            d[m] = PH_I
            m += 1
            if e < n:  # ($|NW): $ only at the very end, else the NW character is consumed
                d[m] = s[e]
                m += 1
                e += 1
            p = e
            continue
        d[m] = s[p]
        m += 1
        p += 1
    return m


@_jit
def _hex_hazard(s, n, cls):
    """[^\\x00-\\x7f][0-9A-Fa-f] | [0-9A-Fa-f][^\\x00-\\x7f]: the rows whose hex ids the
    RE2 path masks with the exact two-run rewrite instead of the \\b fast path."""
    for i in range(n - 1):
        a = s[i]
        b = s[i + 1]
        if (a >= 0x80 and cls[b] & HEXCS) or (b >= 0x80 and cls[a] & HEXCS):
            return True
    return False


@_jit
def _number(s, n, d, cls):
    """\\p{N}+(?:[.,:]\\p{N}+)* -> <n>"""
    m = 0
    i = 0
    while i < n:
        if cls[s[i]] & NUM:
            j = i + 1
            while j < n and cls[s[j]] & NUM:
                j += 1
            while j + 1 < n and (s[j] == 46 or s[j] == 44 or s[j] == 58) and cls[s[j + 1]] & NUM:
                j += 2
                while j < n and cls[s[j]] & NUM:
                    j += 1
            d[m] = PH_N
            m += 1
            i = j
            continue
        d[m] = s[i]
        m += 1
        i += 1
    return m


@nb.njit(inline="always")
def _word_end(s, n, p, cls):
    """End of ``\\p{Lu}\\p{Ll}+`` at p (maximal), or -1."""
    if p + 1 < n and cls[s[p]] & LU and cls[s[p + 1]] & LL:
        w = p + 2
        while w < n and cls[s[w]] & LL:
            w += 1
        return w
    return -1


@_jit
def _name(s, n, d, cls):
    """([\\p{Ll},;] )\\p{Lu}\\p{Ll}+(?: \\p{Lu}\\p{Ll}+)*($|NW) -> \\1<name>\\2 (one run)"""
    m = 0
    p = 0
    while p < n:
        c = s[p]
        if (cls[c] & LL or c == 44 or c == 59) and p + 1 < n and s[p + 1] == _SP:
            w = _word_end(s, n, p + 2, cls)
            if w >= 0:
                prev = -1  # the word end before the last one (followed by a blank: NW)
                while w < n and s[w] == _SP:
                    w2 = _word_end(s, n, w + 1, cls)
                    if w2 < 0:
                        break
                    prev = w
                    w = w2
                end = -1
                if w == n:
                    end = n
                elif not cls[s[w]] & W:
                    end = w + 1
                elif prev >= 0:
                    end = prev + 1
                    w = prev
                if end >= 0:
                    d[m] = c
                    d[m + 1] = _SP
                    d[m + 2] = PH_M
                    m += 3
                    if end > w:
                        d[m] = s[w]
                        m += 1
                    p = end
                    continue
        d[m] = c
        m += 1
        p += 1
    return m


# ----------------------------------------------------------------------------- rows


@nb.njit(inline="always")
def _decode(data, lo, hi, out, limit):
    """Code points of data[lo:hi] into out, at most ``limit``; returns the count."""
    k = 0
    i = lo
    while i < hi and k < limit:
        cp, width = char_at(data, i)
        out[k] = cp
        k += 1
        i += width
    return k


@nb.njit(inline="always")
def _put_utf8(buf, o, cp):
    if cp < 0x80:
        buf[o] = cp
        return o + 1
    if cp < 0x800:
        buf[o] = 0xC0 | (cp >> 6)
        buf[o + 1] = 0x80 | (cp & 0x3F)
        return o + 2
    if cp < 0x10000:
        buf[o] = 0xE0 | (cp >> 12)
        buf[o + 1] = 0x80 | ((cp >> 6) & 0x3F)
        buf[o + 2] = 0x80 | (cp & 0x3F)
        return o + 3
    buf[o] = 0xF0 | (cp >> 18)
    buf[o + 1] = 0x80 | ((cp >> 12) & 0x3F)
    buf[o + 2] = 0x80 | ((cp >> 6) & 0x3F)
    buf[o + 3] = 0x80 | (cp & 0x3F)
    return o + 4


@nb.njit(inline="always")
def _grow(buf, need):
    if need <= len(buf):
        return buf
    new = np.empty(max(need, 2 * len(buf)), dtype=np.uint8)
    new[: len(buf)] = buf
    return new


@_jit
def _mask_one(k, s, n, d, cls, fold):
    if k == 0:
        return _unmask(s, n, d, fold, n)
    if k == 1:
        return _fenced(s, n, d)
    if k == 2:
        return _indented(s, n, d)
    if k == 3:
        return _space(s, n, d, cls)
    if k == 4:
        return _inline(s, n, d)
    if k == 5:
        return _code_run(s, n, d)
    if k == 6:
        return _url(s, n, d, cls, fold)
    if k == 7:
        return _quote(s, n, d)
    if k == 8:
        return _apostrophe(s, n, d, cls)
    if k == 9:
        return _hex_fast(s, n, d, cls, fold)
    if k == 10:
        return _hex_slow(s, n, d, cls, fold)
    if k == 11:
        return _number(s, n, d, cls)
    if k == 12:
        return _name(s, n, d, cls)
    if _hex_hazard(s, n, cls):  # 13
        m = _hex_slow(s, n, d, cls, fold)
        tmp = np.empty(max(m, 1), dtype=np.int32)
        tmp[:m] = d[:m]
        return _hex_slow(tmp, m, d, cls, fold)
    return _hex_fast(s, n, d, cls, fold)


@_jit
def apply_mask_rows(offsets, data, k, cls, fold):
    """One mask (``MASK_IDS``) applied once to every row, no lower-casing, placeholders
    kept: the unit the tests compare with one RE2 rewrite."""
    n_rows = len(offsets) - 1
    longest = 1
    for r in range(n_rows):
        longest = max(longest, offsets[r + 1] - offsets[r])
    a = np.empty(longest + 8, dtype=np.int32)
    b = np.empty(longest + 8, dtype=np.int32)
    out_off = np.empty(n_rows + 1, dtype=np.int64)
    out = np.empty(offsets[n_rows] - offsets[0] + 16, dtype=np.uint8)
    o = 0
    out_off[0] = 0
    for r in range(n_rows):
        n = _decode(data, offsets[r], offsets[r + 1], a, longest)
        m = _mask_one(k, a, n, b, cls, fold)
        out = _grow(out, o + 4 * m)
        for t in range(m):
            o = _put_utf8(out, o, b[t])
        out_off[r + 1] = o
    return out_off, out[:o]


@nb.njit(inline="always")
def _swap(a, b):
    return b, a


# what can make a mask change a text (necessary conditions, from one look at each
# character of the unmasked prompt); a mask whose condition is absent is skipped
_F_BT = 1  # a backtick (fenced and inline code)
_F_NLI = 2  # a newline followed by a blank or a tab (indented code)
_F_SP = 4  # whitespace that the space mask or the trim changes
_F_CODE = 8  # two <code> slots, or code masks that may make them
_F_URL = 16  # "@", ":/" or "w." (URLs and e-mails)
_F_Q = 32  # an opening quote
_F_APOS = 64  # an apostrophe
_F_HEX = 128  # 8 hex characters in a row, or "0x"
_F_NUM = 256  # a digit (any \p{N})
_F_NAME = 512  # whitespace followed by an upper-case letter


@nb.njit(inline="always")
def _is_opener(c):
    return (
        c == 34
        or c == 0xAB
        or c == 0x201C
        or c == 0x201E
        or c == 0x2018
        or c == 0x300C
        or c == 0x300E
    )


def add_trigger_bits(cls: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """The class table (uint32) with the derived bits ``CTX``, ``LLC`` and the
    per-character ``_F_*`` conditions (at ``FLAG_SHIFT``) that :func:`_flags` reads."""
    cls = cls.astype(np.uint32)
    for c, flag in ((_BT, _F_BT), (64, _F_URL), (34, _F_Q), (PH_C, _F_CODE)):
        cls[c] |= flag << FLAG_SHIFT
    for c in (0xAB, 0x201C, 0x201E, 0x2018, 0x300C, 0x300E):
        cls[c] |= _F_Q << FLAG_SHIFT
    cls[(cls & NUM) != 0] |= _F_NUM << FLAG_SHIFT
    cls[(cls & SNB) != 0] |= _F_SP << FLAG_SHIFT
    cls[(cls & LU) != 0] |= CTX
    cls[fold == 120] |= CTX
    for c in (_SP, _TAB, _APOS, 47, 46):
        cls[c] |= CTX
    cls[(cls & LL) != 0] |= LLC
    cls[44] |= LLC
    cls[59] |= LLC
    return cls


@nb.njit(inline="always")
def _flags(s, n, cls, fold):
    """The ``_F_*`` conditions present in s[0:n]: a superset of the masks that can
    change the text. Masks only ever write placeholders (word characters), blanks
    where there was whitespace, and the newlines of indented code (whose mask sets
    ``_F_SP`` itself), so none creates what a later mask's condition looks for.
    Characters set their own conditions through the table; only those marked
    ``CTX`` look at their left neighbour."""
    f = 0
    if n and (s[0] == _SP or s[n - 1] == _SP):
        f |= _F_SP
    if n and s[0] == _APOS:
        f |= _F_APOS
    prev = -1
    prev_k = np.uint32(0)
    name_left = False  # the last non-space character is [\p{Ll},;]
    hex_run = 0
    for i in range(n):
        c = s[i]
        k = cls[c]
        f |= k >> FLAG_SHIFT
        hex_run = hex_run + 1 if k & HEX else 0
        if hex_run >= 8:
            f |= _F_HEX
        if k & CTX and prev >= 0:
            if c == _SP:
                if prev == _SP:
                    f |= _F_SP
                elif prev == _NL:
                    f |= _F_NLI
            elif c == _TAB:
                if prev == _NL:
                    f |= _F_NLI
            elif c == _APOS:
                if not prev_k & W:
                    f |= _F_APOS
            elif c == 47:
                if prev == 58:
                    f |= _F_URL
            elif c == 46:
                if fold[prev] == 119:
                    f |= _F_URL
            else:
                if k & LU and prev_k & SPACE and name_left:
                    f |= _F_NAME
                if fold[c] == 120 and prev == 48:
                    f |= _F_HEX
        if not k & SPACE:
            name_left = (k & LLC) != 0
        prev = c
        prev_k = k
    return f & 0xFFFF


# the masks skeleton_rows runs twice, by their MASK_IDS (numba reads them as constants)
_K_APOSTROPHE = MASK_IDS["apostrophe"]
_K_HEX_SLOW = MASK_IDS["hex_slow"]
_K_NAME = MASK_IDS["name"]


@nb.njit(inline="always")
def _twice(k, a, n, b, cls, fold):
    """Mask ``k`` run twice over a[0:n], as RE2 runs it; the result is left in ``a``
    (``b`` is scratch) and its length returned. Every match shortens the text, so an
    unchanged length means no match, and then the second run has nothing to do either."""
    m = _mask_one(k, a, n, b, cls, fold)
    if m != n:
        n = _mask_one(k, b, m, a, cls, fold)
    return n


@nb.njit(inline="always")
def _put_text(out, o, a, n, lower):
    """a[0:n] lower-cased (``lower``) and written to out[o:] as UTF-8, every placeholder
    as its slot token; returns the new end. ``out`` must have room for 6 bytes a
    character (the longest token)."""
    for t in range(n):
        c = lower[a[t]]
        if c < 0x80:
            out[o] = c
            o += 1
        elif PH_N <= c <= PH_M:
            for q in range(_SLOT_START[c - PH_N], _SLOT_START[c - PH_N + 1]):
                out[o] = _SLOT_BYTES[q]
                o += 1
        else:
            o = _put_utf8(out, o, c)
    return o


@_jit
def skeleton_rows(offsets, data, valid, max_chars, cls, fold, lower):
    """Skeleton of every row (see :func:`linkage.identifiers.skeleton.skeleton_chunk`);
    returns (int64 offsets, uint8 UTF-8 data) of the output rows (invalid rows: empty).

    Per row: decode, slot tokens to placeholders, the conditions (:func:`_flags`) that
    decide which masks can change the text, the masks in RE2's order, then lower case
    and UTF-8 with the tokens restored."""
    n_rows = len(offsets) - 1
    raw_limit = max_chars * 6  # the RE2 path's first slice (longest literal token)
    raw = np.empty(raw_limit + 8, dtype=np.int32)
    a = np.empty(max_chars + 8, dtype=np.int32)
    b = np.empty(max_chars + 8, dtype=np.int32)
    out_off = np.empty(n_rows + 1, dtype=np.int64)
    # sized by this chunk's bytes (data is the whole buffer of a sliced array), grown on
    # demand; the result is copied to its exact size so no spare capacity stays alive
    out = np.empty(max((offsets[n_rows] - offsets[0]) // 2, 1024), dtype=np.uint8)
    o = 0
    out_off[0] = 0
    for r in range(n_rows):
        if not valid[r]:
            out_off[r + 1] = o
            continue
        nr = _decode(data, offsets[r], offsets[r + 1], raw, raw_limit)
        n = _unmask(raw, nr, a, fold, max_chars)
        f = _flags(a, n, cls, fold)
        # the masks in RE2's order, each writing the other buffer; they stay in this
        # loop: moved into a helper that returns the buffers, the swaps cost ~5%
        if f & _F_BT:
            n = _fenced(a, n, b)
            a, b = _swap(a, b)
            f |= _F_CODE
        if f & _F_NLI:
            n = _indented(a, n, b)
            a, b = _swap(a, b)
            f |= _F_CODE | _F_SP  # its newlines are whitespace to collapse
        if f & _F_SP:
            n = _space(a, n, b, cls)
            a, b = _swap(a, b)
        if f & _F_BT:
            n = _inline(a, n, b)
            a, b = _swap(a, b)
        if f & _F_CODE:
            n = _code_run(a, n, b)
            a, b = _swap(a, b)
        if f & _F_URL:
            n = _url(a, n, b, cls, fold)
            a, b = _swap(a, b)
        if f & _F_Q:
            n = _quote(a, n, b)
            a, b = _swap(a, b)
        if f & _F_APOS:
            n = _twice(_K_APOSTROPHE, a, n, b, cls, fold)
        if f & _F_HEX:
            if _hex_hazard(a, n, cls):
                n = _twice(_K_HEX_SLOW, a, n, b, cls, fold)
            else:
                n = _hex_fast(a, n, b, cls, fold)
                a, b = _swap(a, b)
        if f & _F_NUM:
            n = _number(a, n, b, cls)
            a, b = _swap(a, b)
        if f & _F_NAME:
            n = _twice(_K_NAME, a, n, b, cls, fold)
        n = min(n, max_chars)
        out = _grow(out, o + 6 * n)
        o = _put_text(out, o, a, n, lower)
        out_off[r + 1] = o
    return out_off, out[:o].copy()
