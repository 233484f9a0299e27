"""Respond to flagged clusters: actions, adaptive output perturbation, keyed watermarks.

- :mod:`linkage.respond.policy` — what an account gets (none / step-up + rate limit /
  suspend / silent degradation) from its level, score, cluster volume and feedback;
- :mod:`linkage.respond.perturb` — ``perturb(text, strength, key)``;
- :mod:`linkage.respond.watermark` — the keyed lexical watermark and its detector;
- :mod:`linkage.respond.spans` — what perturbation never touches.
"""

from linkage.respond.perturb import edit_budget, perturb, word_edit_fraction
from linkage.respond.spans import protected_spans
from linkage.respond.watermark import (
    ATTRIBUTION_P,
    corpus_stats,
    detect,
    new_key_id,
    new_secret,
)

__all__ = [
    "ATTRIBUTION_P",
    "corpus_stats",
    "detect",
    "edit_budget",
    "new_key_id",
    "new_secret",
    "perturb",
    "protected_spans",
    "word_edit_fraction",
]
