"""The score's terms are declared once and every consumer iterates the declaration."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from linkage.explain.evidence import EVIDENCE_KIND
from linkage.fixtures.small_provider import small_provider
from linkage.pipeline import prepare
from linkage.score.model import coordination_model, load_model
from linkage.score.terms import TERM_DECLARATIONS, TERMS, terms_markdown
from linkage.settings import CoordinationSettings, ScoreSettings, Settings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "MODEL.md"


def test_docs_table_is_the_declaration():
    """docs/MODEL.md holds the generated table verbatim: regenerate it with
    `python -m linkage.score.terms` after changing a term or a default constant."""
    text = DOCS.read_text(encoding="utf-8")
    m = re.search(r"<!-- terms:begin[^>]*-->\n(.*?)<!-- terms:end -->", text, re.S)
    assert m is not None, "docs/MODEL.md lost its terms:begin / terms:end markers"
    assert m.group(1) == terms_markdown()


def test_every_term_has_an_evidence_kind_and_a_model_coefficient():
    model = coordination_model()
    assert model.features == TERMS
    for t in TERM_DECLARATIONS:
        assert EVIDENCE_KIND[t.name] == t.evidence
    assert len(set(TERMS)) == len(TERMS)


def test_table_shows_the_settings_constants():
    table = terms_markdown(CoordinationSettings(extraction_scale=5.0, extraction_floor=0.6))
    assert "`5·(p̄ − 0.6)`" in table
    assert "`8·(p̄ − 0.75)`" in terms_markdown()


def test_settings_round_trip_and_reach_the_model():
    s = Settings(score=ScoreSettings(coordination=CoordinationSettings(prior=-2.5)))
    back = Settings.model_validate_json(s.model_dump_json())
    assert back == s
    assert load_model(back.score).intercept == -2.5
    assert load_model(ScoreSettings()).intercept == CoordinationSettings().prior


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory):
    return small_provider(tmp_path_factory.mktemp("provider"))


def test_constants_change_the_terms_as_declared(provider):
    """Doubling the cue weight doubles every concealment and openness term; the
    coordination scale scales the coordination term; the prior moves every logit."""
    base = prepare(provider, settings=Settings())
    cs = CoordinationSettings(cue_nats=2.0, coordination_scale=3.0, prior=-1.5)
    other = prepare(provider, settings=Settings(score=ScoreSettings(coordination=cs)))
    a, b = base.coordination, other.coordination
    assert a is not None and b is not None
    cues = [t.name for t in TERM_DECLARATIONS if t.evidence in ("concealment", "openness")]
    assert np.abs(a.terms[cues].to_numpy()).sum() > 0
    np.testing.assert_allclose(b.terms[cues].to_numpy(), 2.0 * a.terms[cues].to_numpy())
    np.testing.assert_allclose(
        b.terms["coordination"].to_numpy(), 1.5 * a.terms["coordination"].to_numpy()
    )
    np.testing.assert_allclose(b.terms["extraction"], a.terms["extraction"])
    assert b.prior == -1.5
    np.testing.assert_allclose(b.logit - b.terms.to_numpy().sum(axis=1), -1.5)
