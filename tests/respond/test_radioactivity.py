"""The watermark survives into a student model and into a diluted corpus, and a clean
student or corpus is never attributed."""

from __future__ import annotations

import numpy as np
import pytest

from bench.watermark import BigramStudent, probe_prefixes
from linkage.fixtures.responses import responses
from linkage.respond.perturb import perturb
from linkage.respond.watermark import (
    ATTRIBUTION_P,
    detect,
    preference_stats,
    stats_from_opportunities,
    text_opportunities,
)

KEY = b"cluster-key-radioactive-0000000"


@pytest.fixture(scope="module")
def pool() -> list[str]:
    return responses(2000, seed=23)


def _keys(n: int) -> dict[str, bytes]:
    rng = np.random.default_rng(5)
    return {f"other-{i}": rng.bytes(32) for i in range(n)}


def _student_stats(student: BigramStudent, served: list[str]):
    # the student's next-token preferences at the context words of the responses the
    # cluster was served, each weighted by how often the student saw the word
    probes = probe_prefixes(served)
    return preference_stats(
        student.next_probs(), weight={w: student.freq.get(w, 0.0) for w in probes}
    )


@pytest.mark.slow
def test_student_trained_on_ten_percent_watermarked_outputs_is_attributed(pool):
    served = pool[:200]
    corpus = [perturb(t, 0.3, KEY) for t in served] + pool[200:]  # 10 % of 2,000
    student = BigramStudent(corpus)
    keys = {"cluster": KEY, **_keys(200)}
    res = detect(_student_stats(student, served), keys)
    assert res[0].key_id == "cluster" and res[0].p_value < ATTRIBUTION_P
    assert not any(r.attributed for r in res[1:])
    # a student that never saw the outputs: nobody, its own key included
    clean = BigramStudent(pool[200:] + responses(200, seed=24))
    assert not any(r.attributed for r in detect(_student_stats(clean, served), keys))


@pytest.mark.slow
def test_student_samples_carry_the_lexical_choice(pool):
    """The mechanism, on a student trained on the watermarked outputs only: its free
    samples (10,000 tokens) are attributed to the key."""
    student = BigramStudent([perturb(t, 0.6, KEY) for t in pool[:400]])
    text = student.sample(10_000, np.random.default_rng(1))
    (r,) = detect([text], {"cluster": KEY})
    assert r.attributed and r.channels["lexical"].z > 5


@pytest.mark.slow
def test_two_hundred_watermarked_responses_in_ninety_percent_other_text(pool):
    secret = b"cluster-key-diluted-000000000000"
    wm = [text_opportunities(perturb(t, 0.3, secret)) for t in responses(200, seed=25)]
    other = [text_opportunities(t) for t in pool[:1800]]
    keys = {"cluster": secret, **_keys(200)}
    res = detect(stats_from_opportunities(wm + other), keys)
    assert res[0].key_id == "cluster" and res[0].attributed
    assert not any(r.attributed for r in res[1:])
    assert not any(r.attributed for r in detect(stats_from_opportunities(other), keys))
