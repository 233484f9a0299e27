"""The lexicon of the perturbation: keyed synonym pairs and unkeyed phrasing swaps.

``PAIRS`` are single words, each in exactly one pair, chosen to be interchangeable in
most contexts (same part of speech and inflection; words that are also a noun / verb
with another meaning, or start phrasal verbs, were left out).  The keyed watermark
picks, per pair and per context (the previous word), which member is *green*; the
perturbation moves occurrences towards it.

Technical text: pairs whose members have a second, technical meaning were removed
after they damaged real documentation (``remove``/``delete`` — ``list.remove(x)``, "remove
the battery"; ``option``/``alternative`` — "the -b option"; ``main``/``primary``;
``method``, ``instance``, ``compute``, ``merge``, ``collect``, ``queries``, ``appear``,
``establish``, ``think``/``believe`` ("think of it as", "think step by step"),
``pressing``, ``outstanding``, ``concerned``, ``authorized``, ``issues``,
``accurate``/``precise``, ``quick``/``fast``).  :data:`NOT_AFTER` / :data:`NOT_BEFORE` list
the idioms in which a remaining member may not move ("in particular", "take part in",
"as though", "whole number"); an occurrence there is no opportunity, for the embedder and the
detector alike.

``FORMS`` are the second watermark channel: contraction alternations ("do not" / "don't",
"it is" / "it's", …), keyed like the pairs but invisible to a word-for-word synonym map.

``PHRASES`` are multi-word rephrasings applied with the perturbation's strength; they
carry no watermark, they only lower the value of the text as training data.
"""

from __future__ import annotations

PAIRS: tuple[tuple[str, str], ...] = (
    # adjectives
    ("big", "large"),
    ("bigger", "larger"),
    ("biggest", "largest"),
    ("huge", "enormous"),
    ("rapid", "swift"),
    ("important", "crucial"),
    ("necessary", "essential"),
    ("whole", "entire"),
    ("significant", "substantial"),
    ("different", "distinct"),
    ("similar", "comparable"),
    ("possible", "feasible"),
    ("difficult", "challenging"),
    ("simple", "straightforward"),
    ("appropriate", "suitable"),
    ("relevant", "pertinent"),
    ("useful", "helpful"),
    ("complex", "complicated"),
    ("basic", "fundamental"),
    ("additional", "extra"),
    ("previous", "prior"),
    ("obvious", "evident"),
    ("specific", "particular"),
    ("strong", "robust"),
    ("slow", "sluggish"),
    ("surprised", "astonished"),
    ("faulty", "defective"),
    ("incorrect", "wrong"),
    # adverbs and connectives
    ("often", "frequently"),
    ("usually", "typically"),
    ("mostly", "mainly"),
    ("primarily", "chiefly"),
    ("maybe", "perhaps"),
    ("almost", "nearly"),
    ("completely", "entirely"),
    ("clearly", "obviously"),
    ("currently", "presently"),
    ("therefore", "thus"),
    ("hence", "consequently"),
    ("moreover", "furthermore"),
    ("quickly", "rapidly"),
    ("slowly", "gradually"),
    ("easily", "readily"),
    ("especially", "particularly"),
    ("approximately", "roughly"),
    ("exactly", "precisely"),
    ("correctly", "accurately"),
    ("basically", "essentially"),
    ("significantly", "substantially"),
    ("slightly", "marginally"),
    ("recently", "lately"),
    ("immediately", "instantly"),
    ("eventually", "ultimately"),
    ("normally", "ordinarily"),
    ("unfortunately", "regrettably"),
    ("fortunately", "luckily"),
    ("although", "though"),
    ("toward", "towards"),
    ("among", "amongst"),
    ("until", "till"),
    ("everyone", "everybody"),
    ("someone", "somebody"),
    ("anyone", "anybody"),
    # verbs (one inflection per pair)
    ("begin", "commence"),
    ("begins", "commences"),
    ("choose", "select"),
    ("chooses", "selects"),
    ("choosing", "selecting"),
    ("verify", "confirm"),
    ("verifies", "confirms"),
    ("verified", "confirmed"),
    ("verifying", "confirming"),
    ("shows", "demonstrates"),
    ("showed", "demonstrated"),
    ("suggest", "recommend"),
    ("suggests", "recommends"),
    ("suggested", "recommended"),
    ("ensure", "guarantee"),
    ("ensures", "guarantees"),
    ("improve", "enhance"),
    ("improves", "enhances"),
    ("improved", "enhanced"),
    ("improving", "enhancing"),
    ("reduce", "decrease"),
    ("reduces", "decreases"),
    ("reduced", "decreased"),
    ("reducing", "decreasing"),
    ("allow", "permit"),
    ("allows", "permits"),
    ("allowed", "permitted"),
    ("includes", "contains"),
    ("understand", "comprehend"),
    ("modify", "alter"),
    ("modifies", "alters"),
    ("modified", "altered"),
    ("identify", "recognize"),
    ("evaluate", "assess"),
    ("evaluates", "assesses"),
    ("evaluated", "assessed"),
    ("evaluating", "assessing"),
    ("evaluation", "assessment"),
    ("analyze", "examine"),
    ("analyzes", "examines"),
    ("analyzed", "examined"),
    ("happen", "occur"),
    ("happens", "occurs"),
    ("happened", "occurred"),
    ("handling", "managing"),
    ("obtain", "acquire"),
    ("buy", "purchase"),
    ("bought", "purchased"),
    ("postponing", "delaying"),
    ("reviewing", "inspecting"),
    ("explains", "describes"),
    # nouns
    ("issue", "problem"),
    ("goal", "objective"),
    ("goals", "objectives"),
    ("idea", "notion"),
    ("amount", "quantity"),
    ("part", "portion"),
    ("parts", "portions"),
    ("drawback", "downside"),
    ("drawbacks", "downsides"),
    ("purpose", "intent"),
    ("trouble", "difficulty"),
)

#: lexicon word -> previous words after which it may not move (idioms)
NOT_AFTER: dict[str, frozenset[str]] = {
    w: frozenset(prev)
    for ws, prev in (
        (("specific", "particular"), ("in",)),
        (
            ("part", "parts", "portion", "portions"),
            ("in", "take", "takes", "took", "taking", "most"),
        ),
        (("although", "though"), ("as", "even")),
        (("idea", "notion"), ("no",)),
        (("whole", "entire"), ("on",)),
        (("issue", "problem"), ("not",)),
    )
    for w in ws
}
#: lexicon word -> next words before which it may not move (idioms, technical terms)
NOT_BEFORE: dict[str, frozenset[str]] = {
    w: frozenset(nxt)
    for ws, nxt in (
        (("whole", "entire"), ("number", "numbers")),
        (("complex", "complicated"), ("number", "numbers", "conjugate", "plane")),
        (("strong", "robust"), ("typing", "typed", "reference", "references", "consistency")),
        (("basic", "fundamental"), ("auth", "authentication", "block", "blocks")),
        (("previous", "prior"), ("to",)),
        (("shows", "demonstrates", "showed", "demonstrated"), ("up",)),
        (("goal", "objective", "goals", "objectives"), ("function", "functions")),
        (("big", "large"), ("o", "data", "endian")),
        (("issue", "problem"), ("a", "an", "the")),
        (("significant", "substantial"), ("digit", "digits", "figure", "figures", "bit", "bits")),
        (("different", "distinct"), ("values", "count")),
    )
    for w in ws
}
#: words that are opportunities only when a word follows (never at a clause end:
#: "it works, though." / "on the whole.")
NEEDS_NEXT_WORD: frozenset[str] = frozenset(
    ["although", "though", "whole", "entire", "big", "large", "huge", "enormous"]
)

#: contraction alternations (long form, short form), the keyed *form* channel
FORMS: tuple[tuple[str, str], ...] = (
    ("do not", "don't"),
    ("does not", "doesn't"),
    ("did not", "didn't"),
    ("is not", "isn't"),
    ("are not", "aren't"),
    ("was not", "wasn't"),
    ("were not", "weren't"),
    ("cannot", "can't"),
    ("will not", "won't"),
    ("would not", "wouldn't"),
    ("should not", "shouldn't"),
    ("could not", "couldn't"),
    ("has not", "hasn't"),
    ("have not", "haven't"),
    ("it is", "it's"),
    ("there is", "there's"),
    ("you are", "you're"),
    ("we are", "we're"),
    ("they are", "they're"),
    ("you will", "you'll"),
    ("we will", "we'll"),
)
#: forms whose long form starts with a pronoun: an opportunity only when a word follows
#: that is not "not" ("as it is." cannot contract; "it is not" is the site "is not")
FORMS_PRONOUN: frozenset[int] = frozenset(
    i
    for i, (long, _) in enumerate(FORMS)
    if long.split()[0] in ("it", "there", "you", "we", "they")
)
#: next words that make a short form ambiguous ("it's been" is "it has been")
FORMS_NOT_BEFORE: frozenset[str] = frozenset(["been", "got", "gotten", "had"])

#: multi-word phrasing swaps (lower-case; applied in the listed direction only, never
#: before "to" / "of": "in addition to", "as a result of", "make sure to")
PHRASES: tuple[tuple[str, str], ...] = (
    ("in order to", "to"),
    ("it is important to note that", "note that"),
    ("it is worth noting that", "note that"),
    ("as well as", "and"),
    ("due to the fact that", "because"),
    ("at this point", "now"),
    ("in addition", "also"),
    ("for the most part", "mostly"),
    ("in the event that", "if"),
    ("a number of", "several"),
    ("on the other hand", "conversely"),
    ("in other words", "that is"),
    ("let's", "let us"),
    ("we can see that", "so"),
    ("make sure", "ensure"),
    ("take a look at", "look at"),
    ("keep in mind that", "remember that"),
    ("as a result", "so"),
)


def _build() -> tuple[dict[str, tuple[int, int]], tuple[tuple[str, str], ...]]:
    index: dict[str, tuple[int, int]] = {}
    for g, pair in enumerate(PAIRS):
        for m, w in enumerate(pair):
            key = w.lower()
            if key in index:
                raise ValueError(f"lexicon word {w!r} is in two pairs")
            index[key] = (g, m)
    return index, PAIRS


#: lower-case word -> (pair index, member 0/1)
WORD_INDEX, _ = _build()
