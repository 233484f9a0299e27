"""What a flagged account gets.

| level (after feedback) | action | perturbation |
|---|---|---|
| clear | ``none`` | never |
| review | ``step_up`` (verification + ``review_rate_limit_per_minute``) | ``review_strength`` (default 0: none) |
| block | ``suspend``, or ``degrade`` with ``block_action="degrade"`` | ``strength(score, volume)`` |

Feedback overrides the run: the verdict that applies (:func:`linkage.store.verdicts.resolve`:
the account's own latest verdict, else its cluster's) decides; an upheld appeal or a false
positive clears the action; a confirmed farm is treated as block.  Strength grows with the
score above the block threshold and with the cluster's volume (log scale), between
``min_strength`` and ``max_strength``.  A perturbing action names the cluster's active
watermark key id (never the secret).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from linkage.settings import RespondSettings, ScoreSettings
from linkage.store.verdicts import CLEARING_VERDICTS

ACTIONS = ("none", "step_up", "suspend", "degrade")


@dataclass(frozen=True)
class Action:
    """The decision for one account."""

    action: str
    perturbation_strength: float
    watermark_key_id: str | None
    reason: str
    level: str
    rate_limit_per_minute: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def perturbs(self) -> bool:
        return self.perturbation_strength > 0


def strength(
    score: float, volume: float, respond: RespondSettings, block_threshold: float
) -> float:
    """Degradation strength in ``[min_strength, max_strength]``: grows with the score above
    the block threshold and with ``log(1 + volume) / log(1 + volume_reference)``."""
    span = max(1e-9, 1.0 - block_threshold)
    s_term = min(1.0, max(0.0, (score - block_threshold) / span))
    v_term = min(1.0, math.log1p(max(0.0, volume)) / math.log1p(respond.volume_reference))
    w = respond.score_weight
    f = w * s_term + (1.0 - w) * v_term
    lo, hi = respond.min_strength, max(respond.min_strength, respond.max_strength)
    return round(lo + (hi - lo) * f, 4)


def decide(
    level: str,
    score: float,
    *,
    volume: float = 0.0,
    verdict: str | None = None,
    key_id: str | None = None,
    respond: RespondSettings | None = None,
    score_settings: ScoreSettings | None = None,
) -> Action:
    """The action for an account of ``level`` / ``score`` whose cluster has ``volume``.

    ``verdict`` is the latest feedback verdict that applies (account or its cluster);
    ``key_id`` the cluster's active watermark key (returned only if outputs are perturbed).
    """
    respond = respond or RespondSettings()
    score_settings = score_settings or ScoreSettings()
    if verdict in CLEARING_VERDICTS:
        return Action("none", 0.0, None, f"feedback: {verdict.replace('_', ' ')}", "clear")
    reason_src = f"level {level} (score {score:.2f})"
    if verdict == "confirmed_farm":
        level = "block"
        score = max(score, score_settings.block_threshold)
        reason_src = "feedback: confirmed farm"
    if level == "block":
        if respond.block_action == "suspend":
            return Action("suspend", 0.0, None, f"{reason_src}: suspended", level)
        s = strength(score, volume, respond, score_settings.block_threshold)
        return Action(
            "degrade",
            s,
            key_id,
            f"{reason_src}: silent degradation, volume {volume:g}",
            level,
        )
    if level == "review":
        s = respond.review_strength
        return Action(
            "step_up",
            s,
            key_id if s > 0 else None,
            f"{reason_src}: step-up verification and rate limit",
            level,
            respond.review_rate_limit_per_minute,
        )
    return Action("none", 0.0, None, f"{reason_src}: no action", "clear")


def needs_key(level: str, verdict: str | None, respond: RespondSettings) -> bool:
    """Whether an account in this state gets perturbed outputs (and so needs a key)."""
    if verdict in CLEARING_VERDICTS:
        return False
    if verdict == "confirmed_farm" or level == "block":
        return respond.block_action == "degrade"
    return level == "review" and respond.review_strength > 0
