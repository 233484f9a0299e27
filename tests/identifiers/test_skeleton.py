"""The compiled skeleton scanner against the RE2 masks it replaces.

The RE2 path (``skeleton_chunk_re2``) is the definition of a skeleton; the scanner
must give the same bytes on any text. Each mask is held against its own RE2 rewrite
(one ``replace_substring_regex`` call) on adversarial text built from the characters
and pieces the patterns look at, and the whole pipeline against the RE2 pipeline.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linkage.identifiers import skeleton as sk

# characters the masks look at (whitespace of every kind, placeholders, quotes, URL and
# e-mail punctuation, hex digits, digits of other scripts, cased letters, letters that
# RE2 folds onto ASCII ones: U+017F long s, U+212A Kelvin)
_CHARS = [
    *" \t\n\r\x0b\x0c\x1c\x1f\x85\xa0\u1680\u180e\u2000\u200a\u2028\u2029\u202f\u3000",
    *"\ue000\ue001\ue002\ue003\ue004<>",
    *"`'\"“”„«»‘’「」『』",
    *"htpsfwHTPSFW:/.@%+-_,;",
    *"0123456789xXabcdefABCDEFgGz",
    *"٣½²Ⅳ",
    *"ABÉİǅßıΣσςNnQqCcOoDdEeIiMm",
    "ſ",
    "K",
    "\u0301",
    "中",
    "😀",
    "\x00",
]
_PIECES = [
    "<n>",
    "<N>",
    "<q>",
    "<code>",
    "<CODE>",
    "<id>",
    "<name>",
    "<Name>",
    "<nam>",
    "http://",
    "https://",
    "HTTPſ://",
    "ftp://",
    "www.",
    "WWW.",
    "a@b.co",
    "x.y@d-1.c9.io",
    "@a.b.cd9",
    "0x",
    "0X1f",
    "deadbeef",
    "DEADBEEF12",
    "12345678a",
    "123456789",
    "123e4567-e89b-12d3-a456-426614174000",
    "    ",
    "\n    ",
    "\n\t",
    "```",
    "``",
    "```py\n",
    " `x` ",
    "don't",
    " 'q' ",
    "''",
    '"x y"',
    "«a»",
    "„b“",
    "3.5",
    "1,000:2",
    " Alice Bob",
    ", Carl",
    "; Dmitri Ivanov",
    "a Bob Smith1",
    " İstanbul",
    "\u0301",
    "  ",
]
_atom = st.one_of(
    st.sampled_from(_CHARS),
    st.sampled_from(_PIECES),
    st.characters(blacklist_categories=("Cs",)),
)
_adversarial = st.lists(_atom, max_size=40).map("".join)
_batch = st.lists(_adversarial, min_size=1, max_size=25)
_hyp = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _arr(values: list[str | None]) -> pa.Array:
    return pa.array(values, type=pa.large_string())


def _random_texts(seed: int, n: int, max_atoms: int = 30) -> list[str]:
    """Bulk adversarial texts (numpy): atoms from the characters and pieces above."""
    rng = np.random.default_rng(seed)
    atoms = np.array(_CHARS + _PIECES, dtype=object)
    return [
        "".join(atoms[rng.integers(0, len(atoms), rng.integers(0, max_atoms))]) for _ in range(n)
    ]


# --------------------------------------------------------------------------- mask by mask

_PH = "\ue000\ue001\ue002\ue003\ue004"


def _re2_mask(arr: pa.Array, name: str) -> pa.Array:
    """One run of one mask by RE2, as the reference path applies it."""
    if name == "unmask":
        for tok, ph in sk._UNMASK:
            arr = pc.replace_substring_regex(arr, "(?i)" + tok, ph)
        return arr
    if name == "hex":
        return sk._mask_hex(arr)
    if name == "hex_fast":
        return pc.replace_substring_regex(arr, sk._HEX_FAST, sk._I)
    index = {
        "fenced": 0,
        "indented": 1,
        "space": 2,
        "inline": 3,
        "code_run": 4,
        "url": 5,
        "quote": 6,
        "apostrophe": 7,
        "hex_slow": 8,
        "number": 9,
        "name": 10,
    }[name]
    _, pattern, repl, _ = sk._MASKS[index]
    out = pc.replace_substring_regex(arr, pattern, repl)
    if name == "space":
        out = pc.utf8_trim(out, " ")
    return out


_MASK_NAMES = [
    "unmask",
    "fenced",
    "indented",
    "space",
    "inline",
    "code_run",
    "url",
    "quote",
    "apostrophe",
    "hex_fast",
    "hex_slow",
    "hex",
    "number",
    "name",
]


@pytest.mark.parametrize("name", _MASK_NAMES)
def test_each_mask_equals_its_re2_rewrite_on_bulk_adversarial_text(name: str) -> None:
    arr = _arr(_random_texts(seed=_MASK_NAMES.index(name), n=4000))
    assert sk.apply_mask(arr, name).to_pylist() == _re2_mask(arr, name).to_pylist()


@_hyp
@given(_batch, st.sampled_from(_MASK_NAMES))
def test_each_mask_equals_its_re2_rewrite(texts: list[str], name: str) -> None:
    arr = _arr(texts)
    assert sk.apply_mask(arr, name).to_pylist() == _re2_mask(arr, name).to_pylist()


def test_masks_match_the_documented_cases() -> None:
    """A few hand-checked cases where RE2's leftmost-first backtracking decides."""
    cases = {
        "url": [
            ("mail x.y@d-1.c9.io now", "mail \ue003 now"),
            ("a@b.cd9", "\ue003" + "9"),  # the TLD stops at the digit
            ("a@b.c1.de.f", "\ue003.f"),  # deepest label followed by 2+ letters
            ("see httpſ://x", "see \ue003"),  # RE2 folds U+017F onto s
        ],
        "name": [
            ("ask a Bob Smith1", "ask a \ue004 Smith1"),  # backs off to "Bob "
            ("x, Carl.", "x, \ue004."),
        ],
        "apostrophe": [("'a' 'b' 'c'", "\ue001 'b' \ue001")],  # the second run takes 'b'
        "hex_slow": [("deadbeef1 deadbeef2 deadbeef3", "\ue003 deadbeef2 \ue003")],
    }
    for name, pairs in cases.items():
        arr = _arr([x for x, _ in pairs])
        assert sk.apply_mask(arr, name).to_pylist() == [y for _, y in pairs]
        assert _re2_mask(arr, name).to_pylist() == [y for _, y in pairs]


# --------------------------------------------------------------------------- end to end


@_hyp
@given(_batch, st.sampled_from([50, 2000]))
def test_scanner_equals_re2_skeletons(texts: list[str], max_chars: int) -> None:
    arr = _arr([*texts, None])
    want = sk.skeleton_chunk_re2(arr, max_chars)
    got = sk.skeleton_chunk(arr, max_chars)
    assert got.to_pylist() == want.to_pylist()
    got.validate(full=True)


@pytest.mark.parametrize("max_chars", [50, 300])
def test_scanner_equals_re2_skeletons_on_bulk_adversarial_text(max_chars: int) -> None:
    texts = _random_texts(seed=max_chars, n=6000, max_atoms=90)
    texts += ["<code>" * 60 + "x", "<n>" * 120, "é" * 400 + "<id>", ""]  # truncation edges
    arr = _arr([*texts, None, *texts[:50]])
    assert sk.skeleton_chunk(arr, max_chars).to_pylist() == (
        sk.skeleton_chunk_re2(arr, max_chars).to_pylist()
    )


def test_scanner_keeps_nulls_and_slices() -> None:
    arr = _arr(["Ask Alice about 42", None, "", "x  y", None]).slice(1, 4)
    got = sk.skeleton_chunk(arr, 2000)
    assert got.to_pylist() == [None, "", "x y", None]
    assert got.null_count == 2


def test_chunked_and_threaded_output_equals_one_chunk() -> None:
    texts = _random_texts(seed=3, n=70_000, max_atoms=6)
    arr = _arr(texts)
    whole = sk.skeleton_chunk(arr, 2000)
    parts = sk.skeletonize_arrow(arr, 2000)
    assert parts.num_chunks > 1
    assert parts.combine_chunks().equals(whole)


def test_invalid_utf8_is_never_decoded_by_the_scanner() -> None:
    """The scanner decodes valid UTF-8 only: other input takes the RE2 path, which
    rejects it as before (Arrow's readers never produce such strings)."""
    bad = pa.array([b"ok 12", b"\xff\xfe 12"], type=pa.large_binary()).cast(
        pa.large_string(), safe=False
    )
    with pytest.raises(pa.ArrowInvalid, match="UTF8"):
        sk.skeleton_chunk(bad, 2000)
    assert sk.skeleton_chunk(bad.slice(0, 1), 2000).to_pylist() == ["ok <n>"]


def test_class_tables_follow_re2() -> None:
    cls, fold, lower = sk.tables()
    from linkage.identifiers import _skeleton_kernel as k

    assert fold[0x17F] == ord("s") and fold[0x212A] == 0  # Kelvin folds to k, not used
    assert fold[ord("S")] == ord("s") and fold[ord("x")] == ord("x")
    assert cls[0x2028] & k.SNB and cls[ord(" ")] & k.SPACE and not cls[ord(" ")] & k.SNB
    assert cls[0xE002] & k.W and not cls[ord("-")] & k.W
    assert cls[0] & k.URL and not cls[ord("<")] & k.URL
    assert lower[ord("İ")] == ord("i") and lower[0x23A] == 0x2C65


# --------------------------------------------------------------------------- template ids


def _assign_with(engine: str, prompts, monkeypatch: pytest.MonkeyPatch):
    from linkage.identifiers import templates as tm
    from linkage.settings import TemplateSettings

    real = sk.skeletonize_arrow
    monkeypatch.setattr(
        tm, "skeletonize_arrow", lambda arr, max_chars: real(arr, max_chars, engine=engine)
    )
    return tm.assign_templates(prompts, settings=TemplateSettings(), seed=1)


@pytest.mark.parametrize("world", ["tiny", pytest.param("world", marks=pytest.mark.slow)])
def test_template_ids_equal_with_the_re2_skeletons(world: str, monkeypatch) -> None:
    import pandas as pd

    if world == "tiny":
        prompts = pd.read_csv("examples/tiny/requests.csv", dtype=str)["prompt"]
    else:
        from linkage.fixtures.world import make_world

        prompts = make_world(scale=0.02, seed=1)["requests"]["prompt"]
    old = _assign_with("re2", prompts, monkeypatch)
    new = _assign_with("scanner", prompts, monkeypatch)
    assert len(new.templates) > 5
    np.testing.assert_array_equal(new.codes, old.codes)
    np.testing.assert_array_equal(new.ids, old.ids)
    pd.testing.assert_frame_equal(new.templates, old.templates)
