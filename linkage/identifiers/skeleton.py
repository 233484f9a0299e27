"""Prompt skeletons: the slot masks (RE2, the definition) and a compiled scanner equal to them.

A skeleton is a prompt with its *slots* masked (``<n> <q> <code> <id> <name>``),
whitespace collapsed and lower-cased (see
:func:`linkage.identifiers.templates.skeletonize` for what is masked and why).

The masks are *defined* by the RE2 regexes below (:data:`_MASKS`), applied in
order by pyarrow (:func:`skeleton_chunk_re2`). That path stays as the reference,
and as the fallback for input the scanner does not take (invalid UTF-8).

The production path is :func:`skeleton_chunk`: a numba kernel
(:mod:`linkage.identifiers._skeleton_kernel`) that decodes each prompt once from the
Arrow buffers and runs every mask as a hand-written scanner with RE2's exact
match semantics, then lower-cases and encodes; no Python object per prompt, no
intermediate Arrow array per mask. Every character class it uses is evaluated by
RE2 on the class as written in the patterns (:func:`tables`), and property tests
compare it with the RE2 path mask by mask and end to end on adversarial text and
on the generated worlds: the two give byte-identical skeletons, so template ids
do not change. Measured speed-up: ``bench/results/profile-scale-1-templates.md``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from linkage.identifiers import _skeleton_kernel as _sk
from linkage.identifiers._parallel import map_chunks
from linkage.identifiers._template_kernel import string_buffers

__all__ = ["skeleton_chunk", "skeleton_chunk_re2", "skeletonize_arrow", "tables"]

# ---------------------------------------------------------------------------
# The masks (RE2): the definition of a skeleton
# ---------------------------------------------------------------------------
#
# Design notes
# * The regexes run through pyarrow's RE2 engine directly rather than through
#   ``Series.str.replace``: pandas silently falls back to Python's ``re`` for
#   some patterns *depending on the data* (e.g. ``\b`` or ``\w`` when any row is
#   non-ASCII), which would make a skeleton depend on the other prompts of the
#   batch (and make the template ids unstable), and would be ~10x slower.
#   Every pattern below is RE2 syntax (no look-around, no back-references).
# * While masking, every slot is a single private-use character (the
#   placeholders below) instead of the final ``<n>`` text. A placeholder is one
#   "word" character, like the digits or letters it replaces, so a later mask
#   never changes the word-boundary context an earlier mask saw. The literal
#   tokens are restored at the very end, and are turned back into placeholders
#   at the very start. Together this makes ``skeletonize`` idempotent.
# * RE2 has no look-around, so "word boundary" tests consume one neighbouring
#   character and put it back (``\1...\3``). A match then eats the separator
#   that the next candidate would need as its left context, so those masks run
#   twice: the second run catches exactly the candidates the first one skipped.

_PH = {  # placeholder -> final token
    "\ue000": "<n>",
    "\ue001": "<q>",
    "\ue002": "<code>",
    "\ue003": "<id>",
    "\ue004": "<name>",
}
_N, _Q, _C, _I, _M = _PH
_PH_CLASS = r"\x{E000}-\x{E004}"
# "Word" characters (Unicode aware, placeholders included).
_W = rf"[\p{{L}}\p{{N}}\p{{M}}_{_PH_CLASS}]"
_NW = rf"[^\p{{L}}\p{{N}}\p{{M}}_{_PH_CLASS}]"
# Python's str.isspace() set, so that "whitespace" means what users expect.
_SPACE = r"[\t-\r\x{1c}-\x{20}\x{85}\p{Z}]"

_SPACE_NOT_BLANK = r"[\t-\r\x{1c}-\x{1f}\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]"


def _hex_id_pattern() -> str:
    """Hex strings of 8+ characters with at least one letter a-f (RE2 has no
    look-ahead, so "some letter" is spelled out by the position of the first
    one); pure digit runs stay numbers."""
    alts = [f"[0-9]{{{k}}}[a-f][0-9a-f]{{{7 - k},}}" for k in range(8)]
    alts.append("[0-9]{8,}[a-f][0-9a-f]*")
    uuid = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    return "(?i:" + "|".join([uuid, "0x[0-9a-f]+", *alts]) + ")"


# Each mask: (prefilter, pattern, replacement, runs). The prefilter is a cheap
# capture-free regex (RE2 DFA scan); the rewrite runs only on the rows it hits,
# which matters because most prompts have no code, URL, quote or id.
# Order matters; see the notes above.
_MASKS: tuple[tuple[str | None, str, str, int], ...] = (
    # Fenced code blocks (``` ... ```); an unterminated fence (truncated prompt)
    # runs to the end.
    ("```", r"(?s)```.*?(?:```|\z)", _C, 1),
    # Indented code: a run of lines indented by 4 spaces or a tab, after the
    # first line and not blank (a prompt that merely starts with spaces is not code).
    (
        r"\n(?: {4}|\t)",
        r"\n(?:(?: {4}|\t)[ \t]*[^ \t\n][^\n]*(?:\n|\z))+",
        "\n" + _C + "\n",
        1,
    ),
    # Whitespace: collapse runs (only runs that are not already one blank;
    # trimmed afterwards).
    (
        _SPACE_NOT_BLANK + "| " + _SPACE,
        _SPACE_NOT_BLANK + _SPACE + "*| " + _SPACE + "+",
        " ",
        1,
    ),
    # Inline code; then a run of code slots is one slot ("`a` `b`" -> <code>).
    ("`", r"`+[^`]+`+", _C, 1),
    (_C + " ?" + _C, _C + r"(?: ?" + _C + r")+", _C, 1),
    # URLs and e-mails: unique per request, they carry no template.
    (
        r"(?i)://|www\.|@",
        r"(?i)(?:(?:https?|ftp)://|www\.)[^ <>\"'`"
        + _PH_CLASS
        + r"]+|[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
        _I,
        1,
    ),
    # Quoted strings: straight double quotes, typographic pairs, and single
    # quotes only when they stand alone (not apostrophes: "don't", "users'").
    (
        '["“„«‘「『]',
        r'"[^"]*"|“[^”]*”|„[^“”]*[“”]|«[^»]*»|‘[^’]*’|「[^」]*」|『[^』]*』',
        _Q,
        1,
    ),
    ("'", r"(^|" + _NW + r")'[^']*'($|" + _NW + ")", r"\1" + _Q + r"\2", 2),
    # Hex ids, 0x literals and UUIDs (hashes, request/trace ids, keys), as
    # whole words.
    (
        "(?i)[0-9a-f]{8}|0x",
        r"(^|" + _NW + r")" + _hex_id_pattern() + r"($|" + _NW + ")",
        r"\1" + _I + r"\2",
        2,
    ),
    # Numbers, including inside words ("v2", "gpt4o"): every digit is masked.
    (r"\p{N}", r"\p{N}+(?:[.,:]\p{N}+)*", _N, 1),
    # Capitalised names mid-sentence, conservatively: one or more Capitalised
    # words (not ALL-CAPS, not "I") right after a lower-case word or a comma, so
    # a sentence-initial capital is never taken for a name.
    (
        r"[\p{Ll},;] \p{Lu}\p{Ll}",
        r"([\p{Ll},;] )\p{Lu}\p{Ll}+(?: \p{Lu}\p{Ll}+)*($|" + _NW + ")",
        r"\1" + _M + r"\2",
        2,
    ),
)
# Fast path of the hex-id mask. Its boundary groups ``(^|NW)...($|NW)`` need
# capture groups, which make RE2 ~3x slower per row, and a second run. RE2's
# ``\b`` is an *ASCII* word boundary: it agrees with ``NW`` wherever the
# neighbour of a candidate is ASCII (ASCII letters/digits/``_`` are word
# characters in both, other ASCII characters in neither), matches adjacent
# candidates in one pass, and needs no capture. It differs only next to a
# non-ASCII word character (a letter, a mark, or a placeholder), so rows with
# a non-ASCII character touching a hex digit keep the exact two-run rewrite.
_HEX_MASK = 8  # index in _MASKS
_HEX_FAST = r"\b" + _hex_id_pattern() + r"\b"
_HEX_HAZARD = r"[^\x00-\x7f][0-9A-Fa-f]|[0-9A-Fa-f][^\x00-\x7f]"
# Literal tokens (any case) are turned into placeholders first (idempotence).
_UNMASK = tuple((tok, ph) for ph, tok in _PH.items())
# Masking never lengthens a prompt (every slot is one character), so the raw
# prefix needs at most this factor more characters than the skeleton budget:
# "<code>" is the longest literal token a placeholder can come from.
_RAW_FACTOR = max(len(t) for t in _PH.values())


def _rewrite(
    arr: pa.Array, prefilter: str | None, pattern: str, repl: str, rows: np.ndarray | None = None
) -> tuple[pa.Array, np.ndarray | None]:
    """``replace_substring_regex`` on the rows the prefilter hits only.

    ``rows``: row mask to test at all (rows known not to match are skipped).
    Returns the new array and the mask of rows the prefilter hit (None: all).
    """
    if prefilter is None:
        return pc.replace_substring_regex(arr, pattern, repl), None
    if rows is None:
        hit = pc.fill_null(pc.match_substring_regex(arr, prefilter), False)
        hit = hit.to_numpy(zero_copy_only=False)
    else:
        idx = np.flatnonzero(rows)
        hit = np.zeros(len(arr), dtype=bool)
        if len(idx):
            sub_hit = pc.match_substring_regex(arr.take(pa.array(idx)), prefilter)
            hit[idx] = pc.fill_null(sub_hit, False).to_numpy(zero_copy_only=False)
    n_hit = int(hit.sum())
    if n_hit == 0:
        return arr, hit
    if n_hit * 4 > len(arr):  # most rows hit: filtering would cost more
        return pc.replace_substring_regex(arr, pattern, repl), hit
    mask = pa.array(hit)
    sub = pc.replace_substring_regex(arr.filter(mask), pattern, repl)
    return pc.replace_with_mask(arr, mask, sub), hit


# Any literal token, for the one prefilter scan of the un-masking step.
_ANY_TOKEN = "(?i)" + "|".join(_PH.values())
_ANY_PH = "[" + _PH_CLASS + "]"


def _mask_hex(arr: pa.Array) -> pa.Array:
    """The hex-id mask of ``_MASKS``: ``\\b`` fast path where it is exact."""
    prefilter, pattern, repl, runs = _MASKS[_HEX_MASK]
    hit = pc.fill_null(pc.match_substring_regex(arr, prefilter), False).to_numpy(
        zero_copy_only=False
    )
    if not hit.any():
        return arr
    hit_idx = np.flatnonzero(hit)
    sub = arr.take(pa.array(hit_idx))
    hazard = pc.fill_null(pc.match_substring_regex(sub, _HEX_HAZARD), False)
    hazard = hazard.to_numpy(zero_copy_only=False)
    fast = pc.replace_substring_regex(sub, _HEX_FAST, _I)
    if hazard.any():
        slow = sub.filter(pa.array(hazard))
        for _ in range(runs):
            slow = pc.replace_substring_regex(slow, pattern, repl)
        fast = pc.replace_with_mask(fast, pa.array(hazard), slow)
    mask = np.zeros(len(arr), dtype=bool)
    mask[hit_idx] = True
    return pc.replace_with_mask(arr, pa.array(mask), fast)


def skeleton_chunk_re2(arr: pa.Array, max_chars: int) -> pa.Array:
    """Skeletons of one string array by the RE2 masks (the reference; see the module docs).

    Prefilters keep the regex rewrites off rows they cannot change: one scan
    for all literal tokens; the repeated run of a mask only on the rows its
    first run hit (elsewhere the text, and so the outcome, is unchanged); the
    placeholders are restored only on rows that contain one.
    """
    arr = pc.utf8_slice_codeunits(arr, 0, max_chars * _RAW_FACTOR)
    has_tok = pc.fill_null(pc.match_substring_regex(arr, _ANY_TOKEN), False)
    has_tok = has_tok.to_numpy(zero_copy_only=False)
    if has_tok.any():
        for tok, ph in _UNMASK:
            arr, _ = _rewrite(arr, "(?i)" + tok, "(?i)" + tok, ph, rows=has_tok)
    arr = pc.utf8_slice_codeunits(arr, 0, max_chars)
    for i, (prefilter, pattern, repl, runs) in enumerate(_MASKS):
        if i == _HEX_MASK:
            arr = _mask_hex(arr)
            continue
        hit = None
        for _ in range(runs):
            arr, hit = _rewrite(arr, prefilter, pattern, repl, rows=hit)
        if repl == " ":
            arr = pc.utf8_trim(arr, " ")
    arr = pc.utf8_lower(arr)
    # Lower-casing may lengthen a few characters (e.g. "İ"): keep the budget.
    arr = pc.utf8_slice_codeunits(arr, 0, max_chars)
    has_ph = pc.fill_null(pc.match_substring_regex(arr, _ANY_PH), False)
    if pc.any(has_ph).as_py():
        sub = arr.filter(has_ph)
        for ph, tok in _PH.items():
            sub = pc.replace_substring(sub, ph, tok)
        arr = pc.replace_with_mask(arr, has_ph, sub.cast(arr.type))
    return arr


# ---------------------------------------------------------------------------
# The compiled scanner
# ---------------------------------------------------------------------------

# (bit, RE2 class as written in the masks above) of the scanner's class table
_CLASS_BITS = (
    (_sk.W, _W),
    (_sk.SPACE, _SPACE),
    (_sk.SNB, _SPACE_NOT_BLANK),
    (_sk.NUM, r"\p{N}"),
    (_sk.LU, r"\p{Lu}"),
    (_sk.LL, r"\p{Ll}"),
    (_sk.URL, r"(?i)[^ <>\"'`" + _PH_CLASS + "]"),
    (_sk.LOCAL, r"(?i)[A-Za-z0-9._%+-]"),
    (_sk.DOM, r"(?i)[A-Za-z0-9-]"),
    (_sk.TLD, r"(?i)[A-Za-z]"),
    (_sk.HEX, r"(?i)[0-9a-f]"),
    (_sk.AWORD, r"\w"),  # RE2's \b is an ASCII word boundary: \w is its word class
    (_sk.HEXCS, r"[0-9A-Fa-f]"),
)
# letters whose case-insensitive match (RE2 folding) the scanner needs as literals
_FOLD_LETTERS = "acdefhimnopqstwx"


def _one_char_strings() -> tuple[np.ndarray, pa.Array]:
    """Every code point (surrogates are not characters) as a one-character string,
    built from the UTF-8 bytes (a NumPy ``<U1`` array would turn U+0000 into "")."""
    cps = np.arange(0x110000, dtype=np.uint32)
    cps = cps[(cps < 0xD800) | (cps > 0xDFFF)]
    data = cps.astype("<u4").tobytes().decode("utf-32-le").encode("utf-8")
    width = 1 + (cps >= 0x80) + (cps >= 0x800) + (cps >= 0x10000)
    offsets = np.zeros(len(cps) + 1, dtype=np.int64)
    np.cumsum(width, out=offsets[1:])
    chars = pa.LargeStringArray.from_buffers(len(cps), pa.py_buffer(offsets), pa.py_buffer(data))
    return cps, chars


def _class_hits(chars: pa.Array, cls: str) -> np.ndarray:
    flags = ""
    if cls.startswith("(?i)"):
        flags, cls = "(?i)", cls[4:]
    if not cls.startswith("["):
        cls = "(?:" + cls + ")"
    hit = pc.match_substring_regex(chars, flags + "^" + cls + "$")
    return hit.to_numpy(zero_copy_only=False)


@lru_cache(maxsize=1)
def tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(class bits, fold, lower) over all code points, every one evaluated by the
    engines of the reference path: RE2 for each character class of the masks and for
    case-insensitive literals (``fold[cp]``: the ASCII letter ``cp`` matches under
    ``(?i)``, 0 if none), and Arrow's ``utf8_lower`` (one code point to one)."""
    cps, chars = _one_char_strings()
    cls = np.zeros(0x110000, dtype=np.uint16)
    for bit, pattern in _CLASS_BITS:
        cls[cps[_class_hits(chars, pattern)]] |= bit
    fold = np.zeros(0x110000, dtype=np.uint8)
    # one scan for all the letters, then each letter asked about those few code points
    where = np.flatnonzero(_class_hits(chars, "(?i)[" + _FOLD_LETTERS + "]"))
    few = chars.take(pa.array(where))
    for letter in _FOLD_LETTERS:
        hit = cps[where[_class_hits(few, "(?i)" + letter)]]
        if fold[hit].any():
            raise RuntimeError(f"code points fold to two letters: {letter!r}")
        fold[hit] = ord(letter)
    cls = _sk.add_trigger_bits(cls, fold)
    lowered = pc.utf8_lower(chars)
    if not pc.all(pc.equal(pc.utf8_length(lowered), 1)).as_py():
        raise RuntimeError("utf8_lower maps a code point to several")
    lower = np.arange(0x110000, dtype=np.int32)
    lower[cps] = np.frombuffer(
        lowered.buffers()[2].to_pybytes().decode("utf-8").encode("utf-32-le"), dtype="<i4"
    )
    return cls, fold, lower


def _valid_utf8(arr: pa.Array) -> bool:
    try:
        arr.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def skeleton_chunk(arr: pa.Array, max_chars: int) -> pa.Array:
    """Skeletons of one string array by the compiled scanner (equal to
    :func:`skeleton_chunk_re2`); nulls stay null."""
    arr = arr.cast(pa.large_string())
    if not _valid_utf8(arr):  # the scanner decodes valid UTF-8 only
        return skeleton_chunk_re2(arr, max_chars)
    cls, fold, lower = tables()
    offsets, data = string_buffers(arr)
    valid = (
        np.ones(len(arr), dtype=np.bool_)
        if arr.null_count == 0
        else arr.is_valid().to_numpy(zero_copy_only=False)
    )
    out_off, out = _sk.skeleton_rows(offsets, data, valid, max_chars, cls, fold, lower)
    bitmap = None if arr.null_count == 0 else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.LargeStringArray.from_buffers(
        len(arr), pa.py_buffer(out_off), pa.py_buffer(out), bitmap, arr.null_count
    )


def apply_mask(arr: pa.Array, name: str) -> pa.Array:
    """One run of one mask (``_skeleton_kernel.MASK_IDS``) by the scanner, on a null-free
    array; placeholders kept, nothing lower-cased: what the tests hold against RE2."""
    cls, fold, _ = tables()
    offsets, data = string_buffers(arr.cast(pa.large_string()))
    out_off, out = _sk.apply_mask_rows(offsets, data, _sk.MASK_IDS[name], cls, fold)
    return pa.LargeStringArray.from_buffers(len(arr), pa.py_buffer(out_off), pa.py_buffer(out))


def skeletonize_arrow(arr: pa.Array, max_chars: int, *, engine: str = "scanner") -> pa.ChunkedArray:
    """Skeletons of a string array, in row chunks on a thread pool (the kernels drop
    the GIL); ``engine="re2"`` runs the reference path instead.

    The chunks are returned as they are (a chunked array): concatenating them would
    double the skeletons' memory for a moment, and every consumer takes chunked input.
    """
    if engine == "scanner":
        tables()  # built once here: lru_cache would let each worker thread build it too
        func = skeleton_chunk
    else:
        func = skeleton_chunk_re2
    parts = map_chunks(arr, lambda c: func(c, max_chars))
    return pa.chunked_array(parts, type=pa.large_string())
