"""Policy: level -> action, feedback overrides, strength from score and volume."""

from __future__ import annotations

from linkage.respond.policy import decide, needs_key, strength
from linkage.settings import RespondSettings

DEGRADE = RespondSettings(block_action="degrade")


def test_levels_map_to_actions():
    assert decide("clear", 0.1).action == "none"
    r = decide("review", 0.6)
    assert r.action == "step_up" and r.rate_limit_per_minute == 20
    assert r.perturbation_strength == 0 and r.watermark_key_id is None
    b = decide("block", 0.95, key_id="wm-1")
    assert b.action == "suspend" and b.watermark_key_id is None and b.perturbation_strength == 0
    d = decide("block", 0.95, key_id="wm-1", respond=DEGRADE)
    assert d.action == "degrade" and d.watermark_key_id == "wm-1"
    assert 0.3 <= d.perturbation_strength <= 1.0


def test_clear_is_never_perturbed_whatever_the_settings():
    s = RespondSettings(block_action="degrade", review_strength=0.5)
    a = decide("clear", 0.99, key_id="wm-1", respond=s)
    assert a.action == "none" and a.perturbation_strength == 0 and a.watermark_key_id is None
    assert not needs_key("clear", None, s)


def test_upheld_appeal_or_false_positive_clears():
    for verdict in ("appeal_upheld", "false_positive"):
        a = decide("block", 0.99, verdict=verdict, key_id="wm-1", respond=DEGRADE)
        assert a.action == "none" and a.perturbation_strength == 0
        assert a.watermark_key_id is None and "feedback" in a.reason
        assert not needs_key("block", verdict, DEGRADE)


def test_confirmed_farm_is_treated_as_block():
    a = decide("review", 0.6, verdict="confirmed_farm", key_id="wm-2", respond=DEGRADE)
    assert a.action == "degrade" and a.level == "block" and a.watermark_key_id == "wm-2"
    assert needs_key("review", "confirmed_farm", DEGRADE)


def test_review_strength_setting_watermarks_review():
    s = RespondSettings(review_strength=0.2)
    a = decide("review", 0.6, key_id="wm-3", respond=s)
    assert a.action == "step_up" and a.perturbation_strength == 0.2 and a.watermark_key_id == "wm-3"
    assert needs_key("review", None, s)


def test_strength_grows_with_score_and_volume_within_bounds():
    r = RespondSettings()
    assert strength(0.9, 0, r, 0.9) == r.min_strength
    assert strength(1.0, 10**9, r, 0.9) == r.max_strength
    assert strength(0.95, 10, r, 0.9) < strength(0.99, 10, r, 0.9)
    assert strength(0.95, 10, r, 0.9) < strength(0.95, 5000, r, 0.9)
