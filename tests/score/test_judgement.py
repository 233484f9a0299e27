"""Judgement: farms blocked, legit groups left alone, and the evidence reads true."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from linkage.fixtures.small_provider import small_provider
from linkage.pipeline import prepare, run_detect, score_prepared
from linkage.score.model import coordination_model, load_model, shrink_residual
from linkage.score.scoring import first_principles_gate
from linkage.score.terms import TERMS
from linkage.settings import CoordinationSettings, ScoreSettings, Settings
from linkage.signup import SignupScorer

PRIOR = CoordinationSettings().prior


@pytest.fixture(scope="module")
def provider_run(tmp_path_factory: pytest.TempPathFactory):
    world = small_provider(tmp_path_factory.mktemp("provider"))
    out = tmp_path_factory.mktemp("provider-run")
    run_detect(world, out, settings=Settings())
    return world, out


def test_the_blatant_five_account_farm_is_blocked_and_the_company_is_clear(provider_run):
    _, out = provider_run
    acc = pd.read_csv(out / "accounts.csv", dtype={"cluster_id": "string"})
    farm = acc[acc["account_id"].str.startswith("farm")]
    company = acc[acc["account_id"].str.startswith("acme")]
    people = acc[acc["account_id"].str.startswith("ind")]
    assert len(farm) == 5 and (farm["level"] == "block").all()
    assert farm["cluster_id"].nunique() == 1
    assert (acc["cluster_id"] == farm["cluster_id"].iloc[0]).sum() == 5  # nobody else
    assert (company["level"] == "clear").all()
    assert (people["level"] == "clear").all()


def test_the_farm_is_blocked_without_throwaway_mail_or_a_signup_cadence(tmp_path):
    """The same farm on ordinary Gmail addresses, signing up over a week: still blocked
    (one card, one IP, one template, heavy traffic), the company still clear."""
    world = small_provider(tmp_path / "w", throwaway=False)
    s = Settings()
    sc = score_prepared(prepare(world, settings=s), settings=s).accounts
    assert (sc.loc[sc["account_id"].str.startswith("farm"), "level"] == "block").all()
    assert (sc.loc[sc["account_id"].str.startswith("acme"), "level"] == "clear").all()


def test_the_farm_is_blocked_by_the_first_principles_score_alone(provider_run):
    world, _ = provider_run
    s = Settings(score=ScoreSettings(model="coordination"))
    sc = score_prepared(prepare(world, settings=s), settings=s).accounts
    assert (sc.loc[sc["account_id"].str.startswith("farm"), "level"] == "block").all()
    assert (sc.loc[sc["account_id"].str.startswith("acme"), "level"] == "clear").all()


def test_a_signup_tied_to_the_blocked_farm_by_two_families_is_blocked(provider_run):
    _, out = provider_run
    scorer = SignupScorer.from_run(out)
    base = {
        "created_at": "2026-04-01T00:00:00Z",
        "email": "someone.new@gmail.com",
        "signup_ip": "192.0.2.99",
        "device_fingerprint": "fp-new",
        "payment_fingerprint": "",
        "user_agent": "Mozilla/5.0",
    }
    two = scorer.score_one(
        {
            **base,
            "account_id": "n1",
            "payment_fingerprint": "card_farm",
            "signup_ip": "45.77.10.20",
        },
        record_velocity=False,
    )
    one = scorer.score_one(
        {**base, "account_id": "n2", "signup_ip": "45.77.10.20"}, record_velocity=False
    )
    nothing = scorer.score_one({**base, "account_id": "n3"}, record_velocity=False)
    assert two.level == "block" and two.cluster_id is not None
    assert one.level != "block"
    assert nothing.level == "clear"


def test_a_disposable_domain_is_never_an_organisation_domain(provider_run):
    """The farm signs up on one disposable domain: concealment, not openness."""
    world, _ = provider_run
    prep = prepare(world, settings=Settings())
    farm = prep.X.loc[[f"farm{i}" for i in range(5)]]
    assert (farm["open_org_domain"] == 0).all()
    assert (farm["open_shared_card"] == 0).all()  # one card behind throwaway mailboxes
    assert (farm["conceal_throwaway_mail"] > 0).all()
    company = prep.X.loc[[f"acme{i}" for i in range(8)]]
    assert (company["open_org_domain"] < 0).all() and (company["open_shared_card"] < 0).all()


def test_no_ip_wording_on_data_without_ips(tmp_path):
    """A friend-list data set has no IPs: its evidence must not speak of IP ties."""
    from linkage.fixtures.friends import friend_world

    world = friend_world(tmp_path / "w", seed=3, communities=2, batches=2)
    out = tmp_path / "run"
    run_detect(world, out, settings=Settings())
    text = (out / "clusters.jsonl").read_text()
    assert text.strip(), "the friend world must yield clusters to explain"
    summaries = [e["summary"] for line in text.splitlines() for e in json.loads(line)["evidence"]]
    assert not any("IP ties" in s or "IP and" in s for s in summaries)
    assert any("provider-identifier ties shared with outsiders" in s for s in summaries)


def test_shrinkage_zero_is_the_base_score_and_one_the_fit(provider_run):
    world, _ = provider_run
    X = prepare(world, settings=Settings()).X
    fitted = load_model(ScoreSettings(model="trained"))
    base = [f for f in fitted.features if f in TERMS]
    n_base = len(base)
    assert tuple(fitted.features[:n_base]) == tuple(base)
    zero = shrink_residual(fitted, 0.0, n_base=n_base, base_intercept=PRIOR)
    one = shrink_residual(fitted, 1.0, n_base=n_base, base_intercept=PRIOR)
    half = shrink_residual(fitted, 0.5, n_base=n_base, base_intercept=PRIOR)
    base_logit = X[base].to_numpy().sum(axis=1) + PRIOR
    np.testing.assert_allclose(zero.logit(X), base_logit, atol=1e-9)
    np.testing.assert_allclose(one.logit(X), fitted.logit(X), atol=1e-9)
    np.testing.assert_allclose(half.logit(X), (base_logit + fitted.logit(X)) / 2, atol=1e-9)


def test_the_gate_never_blocks_what_the_first_principles_score_keeps_below_review():
    rng = np.random.default_rng(0)
    n = 200
    X = pd.DataFrame(rng.normal(0, 1.5, size=(n, len(TERMS))), columns=list(TERMS))
    X["corroboration"] = rng.integers(0, 4, n).astype(float)
    s = ScoreSettings()
    score = rng.uniform(0, 1, n)
    gated = first_principles_gate(score, X, s)
    p0 = coordination_model().predict(X)
    below = p0 * np.where(X["corroboration"] < 1, 0.499, np.where(X["corroboration"] < 2, 0.899, 1))
    assert (gated[below < s.review_threshold] < s.block_threshold).all()
    assert np.array_equal(gated[below >= s.review_threshold], score[below >= s.review_threshold])
    assert np.array_equal(np.argsort(gated[below < 0.5]), np.argsort(score[below < 0.5]))


def _review_cluster_run(tmp_path) -> object:
    """A cluster at review as a whole (its median member) whose two card-and-device
    sharing members are blocked."""
    from linkage.store.rundir import Run

    acc = pd.DataFrame(
        {
            "account_id": ["a1", "a2", "a3", "a4", "a5"],
            "cluster_id": pd.array(["c1"] * 5, dtype="string"),
            "score": [0.95, 0.95, 0.8, 0.8, 0.8],
            "level": ["block", "block", "review", "review", "review"],
        }
    )
    rows = [("payment", "card_k", a) for a in ("a1", "a2")]
    rows += [("device", "dev_d", a) for a in ("a1", "a2")]
    rows += [("payment", "card_r", a) for a in ("a3", "a4")]
    rows += [("device", "dev_r", a) for a in ("a3", "a4")]
    idx = pd.DataFrame(rows, columns=["kind", "value", "account_id"])
    idx["weight"] = 3.0
    idx["holders"] = 2
    clusters = [{"cluster_id": "c1", "size": 5, "score": 0.8, "level": "review"}]
    return Run(tmp_path, acc, clusters, {"method": "graph", "settings": {}}, idx)


def test_a_signup_tied_to_blocked_members_of_a_review_cluster_is_blocked(tmp_path):
    scorer = SignupScorer(_review_cluster_run(tmp_path))
    base = {"created_at": "2026-04-01T00:00:00Z", "email": "", "signup_ip": "", "user_agent": ""}
    to_blocked = scorer.score_one(
        {
            **base,
            "account_id": "n1",
            "payment_fingerprint": "card_k",
            "device_fingerprint": "dev_d",
        },
        record_velocity=False,
    )
    to_review = scorer.score_one(
        {
            **base,
            "account_id": "n2",
            "payment_fingerprint": "card_r",
            "device_fingerprint": "dev_r",
        },
        record_velocity=False,
    )
    one_family = scorer.score_one(
        {**base, "account_id": "n3", "payment_fingerprint": "card_k", "device_fingerprint": ""},
        record_velocity=False,
    )
    assert to_blocked.level == "block"
    assert to_review.level == "review"
    assert one_family.level != "block"
