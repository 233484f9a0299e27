"""Protected spans: the parts of a model output that perturbation never touches.

Code blocks (fenced and indented), inline code, URLs, e-mail addresses, JSON / bracketed
data, quoted strings, block quotes, table rows, LaTeX math, every whitespace-separated
token holding a digit or a code-like character (numbers, versions, paths, identifiers),
and code without fences: dotted names and calls (``list.remove(x)``, ``main.py``,
``a::b``, ``x->y``), file extensions (``.py``), command-line options (``-b``,
``--dry-run``), the name after ``def`` / ``class`` / ``function`` / ``import``, and
``key: value`` lines (YAML, headers).  Words in capitals (SQL keywords) and capitalised
names are left alone by the watermark itself (:func:`linkage.respond.watermark.lexicon_hit`).
Detection is deliberately greedy: a false "protected" only costs a missed edit, a
missed one could corrupt data.

Everything is expressed as half-open character intervals ``[start, end)`` over the text,
merged and sorted; :func:`protected_spans` returns them, :func:`free_segments` the
complement (the only places an edit may happen).
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n.*?(?:^[ \t]*\1[^\n]*$|\Z)", re.M | re.S)
_INDENTED = re.compile(r"^(?: {4}|\t)[^\n]*$", re.M)
_LINE_DATA = re.compile(r"^[ \t]*(?:>|\|)[^\n]*$", re.M)  # block quotes, table rows
_INLINE_CODE = re.compile(r"`[^`\n]*`?")
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*+://\S+|\bwww\.\S+")
_QUOTED = re.compile(r'"[^"\n]*"?|“[^”\n]*”?|«[^»\n]*»?')
_MATH = re.compile(r"\$\$.*?(?:\$\$|\Z)|\$[^$\n]*\$?", re.S)
# any whitespace-delimited token with a digit or a code-like character
_TOKEN = re.compile(
    r"(?<!\S)[^\s0-9_/\\@=<>{}\[\]#*~^|+%&$`\"“”«»]*+[0-9_/\\@=<>{}\[\]#*~^|+%&$`\"“”«»]\S*"
)
# code without fences: dotted names, calls, scope operators (found by their anchor, then
# widened to the whitespace-delimited token), extensions and options
_ANCHOR = re.compile(r"\w\.\w|\w\(|::|->|=>")
_OPTION = re.compile(r"(?<!\S)\.\w+|(?<![\w-])--?[A-Za-z][\w-]*")
_DEF_WORDS = (
    "def",
    "class",
    "function",
    "func",
    "fn",
    "struct",
    "enum",
    "interface",
    "import",
    "module",
    "package",
)
_DEF = re.compile(r"\b(?:" + "|".join(_DEF_WORDS) + r")[ \t]+\w+")
_NOT_CODE = re.compile(r"://|^www\.|@")  # URLs and e-mail addresses name no identifier
_KEY_LINE = re.compile(r"^[ \t]*(?:- )?[A-Za-z_][\w.-]*:(?:[ \t][^\n]*)?$", re.M)
_OPEN = {"{": "}", "[": "]"}
_OPENER = re.compile(r"[{\[]")
# (pattern, substrings of which one must occur for it to match at all)
_RULES: tuple[tuple[re.Pattern[str], tuple[str, ...] | None], ...] = (
    (_FENCE, ("```", "~~~")),
    (_INDENTED, ("    ", "\t")),
    (_LINE_DATA, (">", "|")),
    (_MATH, ("$",)),
    (_INLINE_CODE, ("`",)),
    (_URL, ("://", "www.")),
    (_QUOTED, ('"', "“", "«")),
    (_TOKEN, None),
    (_OPTION, (".", "-")),
    (_DEF, _DEF_WORDS),
    (_KEY_LINE, (":",)),
)
#: characters whose presence makes a sentence unsafe to move or drop
SPECIAL = frozenset('0123456789_/\\@=<>{}[]#*~^|+%&$`"“”«»()')
SPECIAL_RX = re.compile("[" + re.escape("".join(sorted(SPECIAL))) + "]")


def _brackets(text: str) -> list[tuple[int, int]]:
    """Balanced ``{…}`` / ``[…]`` spans (JSON objects and arrays, across lines);
    an unbalanced opener protects to the end of its line."""
    out: list[tuple[int, int]] = []
    i, n = 0, len(text)
    while i < n:
        m = _OPENER.search(text, i)
        if m is None:
            break
        i = m.start()
        c = text[i]
        if c in _OPEN:
            depth: list[str] = [_OPEN[c]]
            j = i + 1
            in_str = False
            while j < n and depth:
                d = text[j]
                if in_str:
                    if d == "\\":
                        j += 1
                    elif d == '"':
                        in_str = False
                elif d == '"':
                    in_str = True
                elif d in _OPEN:
                    depth.append(_OPEN[d])
                elif d == depth[-1]:
                    depth.pop()
                elif d in "}]":
                    break  # mismatched closer
                j += 1
            if depth:  # unbalanced: protect to the end of the line
                end = text.find("\n", i)
                end = n if end < 0 else end
                out.append((i, end))
                i = end
                continue
            out.append((i, j))
            i = j
            continue
        i += 1
    return out


def protected_intervals(text: str) -> list[tuple[int, int]]:
    """Sorted, merged ``[start, end)`` intervals of everything protected in ``text``."""
    iv: list[tuple[int, int]] = []
    for rx, probe in _RULES:
        if probe is None or any(p in text for p in probe):
            iv.extend(m.span() for m in rx.finditer(text) if m.end() > m.start())
    if "{" in text or "[" in text:
        iv.extend(_brackets(text))
    iv.extend(_code_tokens(text))
    if not iv:
        return []
    iv.sort()
    merged = [iv[0]]
    for s, e in iv[1:]:
        ps, pe = merged[-1]
        if s <= pe:
            if e > pe:
                merged[-1] = (ps, e)
        else:
            merged.append((s, e))
    return merged


_CODE_RULES: tuple[tuple[re.Pattern[str], tuple[str, ...] | None], ...] = (
    (_FENCE, ("```", "~~~")),
    (_INDENTED, ("    ", "\t")),
    (_INLINE_CODE, ("`",)),
    (_OPTION, (".", "-")),
    (_DEF, _DEF_WORDS),
)


def _code_tokens(text: str) -> list[tuple[int, int]]:
    """Whitespace-delimited tokens holding a dotted name, a call or a scope operator."""
    out: list[tuple[int, int]] = []
    end = -1
    n = len(text)
    for m in _ANCHOR.finditer(text):
        if m.start() < end:
            continue
        s = m.start()
        while s > 0 and not text[s - 1].isspace():
            s -= 1
        end = m.end()
        while end < n and not text[end].isspace():
            end += 1
        out.append((s, end))
    return out


def code_intervals(text: str) -> list[tuple[int, int]]:
    """The code among the protected intervals (fences, indented code, inline code, dotted
    names and calls, ``def`` names), unmerged: the identifiers the prose may refer to."""
    out = [
        m.span()
        for rx, probe in _CODE_RULES
        if probe is None or any(p in text for p in probe)
        for m in rx.finditer(text)
    ]
    out.extend((s, e) for s, e in _code_tokens(text) if not _NOT_CODE.search(text[s:e]))
    return out


def protected_spans(text: str) -> list[str]:
    """The protected substrings of ``text``, in order."""
    return [text[s:e] for s, e in protected_intervals(text)]


def free_segments(
    text: str, intervals: list[tuple[int, int]] | None = None
) -> list[tuple[int, int]]:
    """The complement of :func:`protected_intervals` (given or computed): where edits may happen."""
    out: list[tuple[int, int]] = []
    pos = 0
    for s, e in protected_intervals(text) if intervals is None else intervals:
        if s > pos:
            out.append((pos, s))
        pos = max(pos, e)
    if pos < len(text):
        out.append((pos, len(text)))
    return out
