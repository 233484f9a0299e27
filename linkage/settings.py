"""One frozen settings model for a whole run.

It round-trips to JSON (``Settings.model_validate_json(s.model_dump_json())``)
so that a run's manifest records exactly what produced it, like splink's settings.
Every default is argued where it is defined.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from linkage.errors import SettingsError


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class IngestSettings(_Frozen):
    max_problems_listed: int = Field(
        200, ge=1, description="problems kept verbatim in the report; all are counted"
    )


class TemplateSettings(_Frozen):
    shingle_size: int = Field(3, ge=1, le=8, description="word n-gram size of skeleton shingles")
    num_perm: int = Field(64, ge=8, le=512, description="MinHash bins (one-permutation hashing)")
    bands: int = Field(16, ge=1, description="LSH bands; num_perm must be a multiple")
    threshold: float = Field(
        0.6, gt=0, le=1, description="estimated Jaccard needed to merge two skeletons"
    )
    max_prompt_chars: int = Field(2000, ge=50, description="prompt prefix looked at")
    cache_dir: str | None = Field(
        None,
        description="directory of the cross-run template cache: skeletons and MinHash "
        "signatures of prompts already seen, so a daily run only sketches new prompts "
        "(None = no cache)",
    )


class IdentifierSettings(_Frozen):
    engine: Literal["duckdb", "spark"] = Field(
        "duckdb",
        description="SQL engine of the request aggregation: duckdb (embedded, out of core) "
        "or spark (PySpark, local or a cluster; docs/SCALING.md)",
    )
    ipv4_prefix: int = Field(24, ge=8, le=32)
    ipv6_prefix: int = Field(48, ge=16, le=128)
    templates: TemplateSettings = TemplateSettings()


class GraphSettings(_Frozen):
    dense_clique_max: int = Field(
        8,
        ge=2,
        description="identifiers shared by at most this many accounts link them as a clique; "
        "larger ones as a seeded random regular sparsifier of this degree (same strength per account)",
    )
    min_accounts: int = Field(
        2, ge=2, description="an identifier links only if shared by this many"
    )
    min_link_nats: float = Field(
        0.0,
        ge=0,
        description="an identifier links accounts in the projection only if its idf "
        "ln(N/df) is at least this many nats (held by at most N/e^x accounts); weaker ones "
        "stay in the incidence (features, ties, evidence)",
    )
    confirmed_boost: float = Field(
        1.0,
        ge=0,
        description="an identifier held by an account analysts confirmed as a farm weighs "
        "(1 + this) times its rarity: the verdict moves the farm's neighbours",
    )


class DetectSettings(_Frozen):
    resolution: float = Field(
        7.389,
        gt=0,
        description="modularity resolution (RB configuration model). e^2: a community must hold "
        "e^2 times the link weight the configuration-model null predicts (2 nats of surprise); "
        "at 1 the faint links of carrier NAT and popular devices merge strangers into blobs",
    )
    null: Literal["graph", "information"] = Field(
        "information",
        description="normaliser of the modularity null: graph = the projection's total link "
        "weight; information = the world's total identity information in nats (every "
        "identifier of every account, shared or not), so a lone ring among strangers is not "
        "'expected' because it holds most of the (small) link weight",
    )
    n_iterations: int = Field(
        2, description="Leiden iterations (leidenalg default 2; -1 = until stable, can be slow)"
    )
    backend: Literal["leidenalg", "igraph"] = Field(
        "igraph",
        description="Leiden implementation: leidenalg (reference) or igraph's C version (faster)",
    )
    split_below_null: bool = Field(
        True,
        description="solve each connected component of the above-null edges (w_uv > "
        "resolution * k_u k_v / 2M) on its own: an edge at or below the null between two "
        "such units can never make joining them pay, so it is dropped and kept as "
        "self-loops (strengths unchanged); proof in docs/MODEL.md",
    )
    min_cluster_size: int = Field(2, ge=2)
    min_link_bits_share: float = Field(
        0.5,
        ge=0,
        le=2,
        description="a member must be tied to its cluster by at least this share of ln(N) nats "
        "(ln N = the information that singles out one account among N); ties are counted as "
        "sum_i w_i * a_ui * (holders of i inside - 1) / (holders of i - 1)",
    )


class CoordinationSettings(_Frozen):
    """Every constant of the out-of-the-box score (terms declared in linkage.score.terms)."""

    prior: float = Field(
        -1.0, description="log-odds before any evidence: most coordinated groups are not farms"
    )
    coordination_scale: float = Field(
        2.0,
        ge=0,
        description="nats of the coordination term at full corroboration (and "
        "minus this for an account in no cluster)",
    )
    family_cap_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="a family counts at most this share of ln(N) nats "
        "(kappa): one family can make a group look related, never prove it",
    )
    corroboration_share: float = Field(
        0.5, gt=0, le=1, description="a family corroborates when its ties reach this share of kappa"
    )
    cue_nats: float = Field(
        1.0,
        ge=0,
        description="nats of each concealment or openness cue at full strength "
        "(one likelihood ratio of e: no single cue decides)",
    )
    min_requests_for_churn: int = Field(
        5, ge=2, description="fingerprint churn is only read on accounts with this many requests"
    )
    extraction_scale: float = Field(
        8.0, ge=0, description="nats per unit of the mean traffic percentile above the floor"
    )
    extraction_floor: float = Field(
        0.75,
        ge=0,
        le=1,
        description="mean traffic percentile at which extraction is 0 "
        '("far above normal use" = the top quarter of the provider\'s own traffic)',
    )


class ScoreSettings(_Frozen):
    review_threshold: float = Field(0.5, ge=0, le=1)
    coordination: CoordinationSettings = CoordinationSettings()
    block_threshold: float = Field(0.9, ge=0, le=1)
    model: Literal["coordination", "trained"] = Field(
        "coordination",
        description="coordination (default): the first-principles score (no training; "
        "docs/MODEL.md), kept as the default because no residual learnt from our world "
        "families beat it on its worst held-out family without blocking legit populations "
        "there (`python -m bench.fit_default`, bench/results/default-model.md); trained: "
        "the residual model shipped in linkage/score/model.json (own generator)",
    )
    signup_family_vote: float = Field(
        0.5,
        gt=0,
        le=1,
        description="a new signup inherits a blocked cluster's block when at least two "
        "independent identifier families tie it there, each through an identifier held at "
        "least this share inside that cluster (one family alone stays below block)",
    )
    block_needs_first_principles: bool = Field(
        True,
        description="an account is blocked only if the first-principles coordination score "
        "alone (no learnt term) reaches review: a learnt residual may rank, but it never "
        "blocks a group the evidence itself does not call coordinated and hidden",
    )
    model_path: str | None = Field(
        None, description="JSON scoring model from `linkage train` (overrides `model`)"
    )
    cap_by_corroboration: bool = Field(
        True,
        description="an account in no cluster stays below review, an account tied to its "
        "cluster by one identifier family alone below block: blocking needs independent "
        "corroboration",
    )


class RespondSettings(_Frozen):
    """What a flagged account gets (linkage.respond.policy) and how outputs are perturbed."""

    block_action: Literal["suspend", "degrade"] = Field(
        "suspend",
        description="block level: suspend the account, or degrade silently (perturbed, "
        "watermarked outputs) so the farm does not learn it was caught",
    )
    review_rate_limit_per_minute: int = Field(
        20, ge=1, description="requests per minute allowed to a review-level account"
    )
    review_strength: float = Field(
        0.0,
        ge=0,
        le=1,
        description="perturbation (and watermark) strength for review-level accounts; "
        "0 = none (review gets step-up verification and a rate limit only)",
    )
    min_strength: float = Field(
        0.3, gt=0, le=1, description="degradation strength at the block threshold, low volume"
    )
    max_strength: float = Field(1.0, gt=0, le=1, description="strength at score 1, high volume")
    volume_reference: int = Field(
        10_000,
        ge=1,
        description="cluster volume (requests, or members when requests are unknown) at "
        "which the volume term saturates (log scale)",
    )
    score_weight: float = Field(
        0.5,
        ge=0,
        le=1,
        description="share of the strength range driven by the score; the rest by volume",
    )
    attribution_p_value: float = Field(
        1e-6, gt=0, lt=1, description="a corpus is attributed to a key below this p-value"
    )


class Settings(_Frozen):
    """Everything that determines a run's output (with the input data)."""

    seed: int = 0
    ingest: IngestSettings = IngestSettings()
    identifiers: IdentifierSettings = IdentifierSettings()
    graph: GraphSettings = GraphSettings()
    detect: DetectSettings = DetectSettings()
    score: ScoreSettings = ScoreSettings()
    respond: RespondSettings = RespondSettings()

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str) -> Settings:
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            raise SettingsError(f"invalid settings: {exc}") from None

    @classmethod
    def load(cls, path: str | Path | None) -> Settings:
        """Read settings from a JSON file (None = defaults)."""
        if path is None:
            return cls()
        p = Path(path)
        if not p.is_file():
            raise SettingsError(f"settings file not found: {p}")
        try:
            data = json.loads(p.read_text())
        except json.JSONDecodeError as exc:
            raise SettingsError(f"settings file {p} is not JSON: {exc}") from None
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise SettingsError(f"invalid settings in {p}: {exc}") from None
