"""Signup scoring for the service: loads the model once, applies fail-open / fail-closed.

Wraps :class:`linkage.signup.SignupScorer` (loaded from a run directory) so that
the route stays thin: one call to :meth:`SignupService.score`, then one INSERT.
The scorer is thread-safe (it guards its own velocity window), so the sync
route can call it from the threadpool without a service-level lock.
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from linkage.api.config import ServiceSettings
from linkage.api.errors import ApiError
from linkage.api.metrics import Metrics
from linkage.memory import freeze_heap
from linkage.store.db import Store

log = logging.getLogger("linkage.api.scoring")


@dataclass
class ScoreOutcome:
    """What the signup route answers (and records)."""

    account_id: str
    score: float
    level: str
    cluster_id: str | None
    evidence: list[dict[str, Any]]
    velocity: dict[str, int]
    degraded: bool
    run_id: int | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    #: server time (epoch s) velocity was recorded at; None: nothing recorded
    velocity_t: float | None = None
    revision: int = 1
    previous_level: str | None = None


_RANK = {"clear": 0, "review": 1, "block": 2}


def keep_stricter(out: ScoreOutcome, previous: dict[str, Any] | None) -> ScoreOutcome:
    """Scoring an account id again is an update with history, never a silent downgrade.

    ``previous``: :meth:`Store.previous_decision`.  The outcome gets its ``revision``
    (1 = first decision on this id) and ``previous_level``; if the previous decision
    was stricter and no analyst cleared the account since, it is kept (level, score,
    cluster) with an evidence item saying so: new attributes can raise a decision,
    only a verdict lowers it.
    """
    if previous is None:
        return out
    out.revision = int(previous["count"]) + 1
    out.previous_level = str(previous["level"])
    if previous["cleared"] or _RANK.get(out.previous_level, 0) <= _RANK.get(out.level, 0):
        return out
    when = previous["created_at"].isoformat() if previous.get("created_at") else "?"
    out.evidence = [
        {
            "kind": "previous_decision",
            "summary": f"account already decided {out.previous_level} "
            f"(score {float(previous['score']):.2f}) at {when}; a new scoring does not lower "
            "it, an analyst verdict does",
            "contribution": 0.0,
            "details": {
                "signup_id": previous["id"],
                "level": out.previous_level,
                "score": float(previous["score"]),
                "cluster_id": previous["cluster_id"],
                "new_level": out.level,
                "new_score": out.score,
            },
        },
        *out.evidence,
    ]
    out.level = out.previous_level
    out.score = max(out.score, float(previous["score"]))
    out.cluster_id = previous["cluster_id"] or out.cluster_id
    return out


def clean_json(obj: Any, depth: int = 0) -> Any:
    """Make a value JSON-safe: NaN/inf -> None, tuples/sets -> lists, numpy scalars -> Python."""
    if depth > 20:
        return None
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, str | int | bool) or obj is None:
        return obj
    if isinstance(obj, dict):
        return {str(k): clean_json(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [clean_json(v, depth + 1) for v in obj]
    if hasattr(obj, "item"):
        return clean_json(obj.item(), depth + 1)
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    return str(obj)


def _evidence_dicts(items: Any, ids: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Evidence as the API answers it.  ``ids`` maps the run's cluster ids to the
    store's stable ones: the text and details then name the same cluster id as the
    response's ``cluster_id`` (the run's id stays in ``details.run_cluster_id``)."""
    out = []
    for e in items or ():
        d = e.to_dict() if hasattr(e, "to_dict") else dict(e)
        summary = str(d.get("summary", ""))
        details = dict(d.get("details") or {})
        local = details.get("cluster_id")
        stable = ids.get(str(local)) if ids and local is not None else None
        if stable is not None and stable != local:
            summary = re.sub(rf"\bcluster {re.escape(str(local))}\b", f"cluster {stable}", summary)
            details["cluster_id"] = stable
            details["run_cluster_id"] = local
        out.append(
            {
                "kind": str(d.get("kind", "")),
                "summary": summary,
                "contribution": clean_json(float(d.get("contribution") or 0.0)) or 0.0,
                "details": clean_json(details),
            }
        )
    out.sort(key=lambda e: (-e["contribution"], e["kind"], e["summary"]))
    return out


class SignupService:
    """The loaded signup model (if any) and the fail-open policy."""

    def __init__(self, store: Store, settings: ServiceSettings, metrics: Metrics) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.scorer: Any = None
        self.run_id: int | None = None
        self.run_path: str | None = None
        self.load_error: str | None = None
        self._ids: dict[str, str] = {}

    @property
    def loaded(self) -> bool:
        """Whether a model is loaded."""
        return self.scorer is not None

    def load(self) -> bool:
        """Load the model from the configured run dir, or the store's latest run.

        The run directory is verified whole first (files against the manifest's
        checksums, and against the manifest digest the store recorded at import): a run
        emptied, truncated or replaced on disk after the import is not served as an
        empty model; the service stays not ready and says why.
        Never raises: on failure ``load_error`` says why, and ``/readyz`` reports it.
        """
        try:
            from linkage.store.rundir import verify_run

            run_dir: str | Path | None = self.settings.run_dir
            expected: str | None = None
            if run_dir is None:
                latest = self.store.latest_run()
                if latest is None:
                    raise LookupError("no run imported in the store and no run_dir configured")
                run_dir = latest["path"]
                expected = latest.get("digest")
            verified = verify_run(run_dir)
            if expected is not None and verified.digest != expected:
                raise ValueError(
                    f"run directory {run_dir} is not the run imported into the store "
                    "(its manifest.json changed since the import): re-run `linkage import-run`"
                )
            from linkage.signup import SignupScorer

            scorer = SignupScorer.from_run(
                verified.run, window_s=float(self.settings.velocity_window_seconds)
            )
            run_id = self.store.run_by_path(run_dir)
            self._ids = self.store.stable_ids(run_id) if run_id is not None else {}
            if self.settings.warm_velocity and hasattr(scorer, "observe"):
                since = datetime.now(UTC) - timedelta(seconds=self.settings.velocity_window_seconds)
                recent = self.store.recent_signups(since)
                if recent:
                    scorer.observe(recent)
            self.scorer, self.run_id, self.run_path = scorer, run_id, str(run_dir)
            freeze_heap()  # the model lives as long as the service: keep it out of GC pauses
            self.load_error = None
            log.info("signup model loaded from %s (store run %s)", run_dir, run_id)
        except Exception as exc:
            self.scorer = None
            self.load_error = f"{exc.__class__.__name__}: {exc}"
            log.warning("signup model not loaded: %s", self.load_error)
        self.metrics.set("linkage_model_loaded", 1.0 if self.scorer is not None else 0.0)
        return self.scorer is not None

    def _degraded(self, record: dict[str, Any], why: str) -> ScoreOutcome:
        if not self.settings.fail_open:
            raise ApiError(503, "unavailable", "signup model unavailable", {"reason": why})
        return ScoreOutcome(
            account_id=str(record["account_id"]),
            score=0.0,
            level="clear",
            cluster_id=None,
            evidence=[],
            velocity={},
            degraded=True,
            run_id=self.run_id,
            payload=record,
        )

    def retract(self, out: ScoreOutcome) -> None:
        """The decision was not stored: take its signup back out of the velocity window."""
        scorer = self.scorer
        if out.velocity_t is not None and scorer is not None and hasattr(scorer, "retract"):
            scorer.retract(out.payload, out.velocity_t)

    def score(self, record: dict[str, Any], *, now: datetime | None = None) -> ScoreOutcome:
        """Score one signup record (contract account fields); fail-open or 503 on failure.

        ``now``: the server time it was received; velocity is counted on it (never on
        the record's ``created_at``)."""
        t = (now or datetime.now(UTC)).timestamp()
        scorer = self.scorer
        if scorer is None:
            self.metrics.inc("linkage_signup_errors_total", {"stage": "model_not_loaded"})
            return self._degraded(record, "model not loaded")
        t0 = time.perf_counter()
        try:
            res = scorer.score_one(record, now=t)
            level = str(res.level)
            score = float(res.score)
            if not math.isfinite(score):
                raise ValueError("scorer returned a non-finite score")
            cluster = res.cluster_id
            cluster_id = (
                None
                if cluster is None or (isinstance(cluster, float) and math.isnan(cluster))
                else str(cluster)
            )
            out = ScoreOutcome(
                account_id=str(record["account_id"]),
                score=min(max(score, 0.0), 1.0),
                level=level,
                cluster_id=self._ids.get(cluster_id, cluster_id) if cluster_id else None,
                evidence=_evidence_dicts(getattr(res, "evidence", ()), self._ids),
                velocity={
                    str(k): int(v) for k, v in (getattr(res, "velocity", None) or {}).items()
                },
                degraded=bool(getattr(res, "degraded", False)),
                run_id=self.run_id,
                payload=record,
                velocity_t=t,
            )
        except ApiError:
            raise
        except Exception as exc:
            log.exception("signup scorer failed for account %r", record.get("account_id"))
            self.metrics.inc("linkage_signup_errors_total", {"stage": "model"})
            return self._degraded(record, f"scorer error: {exc.__class__.__name__}")
        finally:
            self.metrics.observe("linkage_signup_score_duration_seconds", time.perf_counter() - t0)
        return out
