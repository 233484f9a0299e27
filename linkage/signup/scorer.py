"""The signup scorer: a new signup's identifiers against a run's signup index
(:mod:`linkage.signup.index`), plus its velocity (:mod:`linkage.signup.velocity`) and
partners' indicators, decided into a score, a level and evidence. The method is told in
:mod:`linkage.signup`."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from linkage.errors import ModelError
from linkage.explain.records import Evidence, ordered
from linkage.identifiers.kinds import VELOCITY_LIMITS, link_family
from linkage.identifiers.signup_keys import record_identifiers, signup_identifiers
from linkage.score.scoring import level_of
from linkage.settings import Settings
from linkage.share.hook import partner_evidence, partners_for
from linkage.signup.index import SignupIndex
from linkage.signup.velocity import (
    VELOCITY_WINDOW_S,
    VelocityWindow,
    batch_velocity,
    epoch_seconds,
)
from linkage.store.rundir import Run, load_run

__all__ = ["SignupResult", "SignupScorer"]


@dataclass
class SignupResult:
    account_id: str
    score: float
    level: str
    cluster_id: str | None
    evidence: list[Evidence] = field(default_factory=list)
    velocity: dict[str, int] = field(default_factory=dict)
    degraded: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "score": round(float(self.score), 6),
            "level": self.level,
            "cluster_id": self.cluster_id,
            "evidence": [e.to_dict() for e in self.evidence],
            "velocity": dict(self.velocity),
            "degraded": self.degraded,
        }


class SignupScorer:
    """Scores new signups against one run (thread-safe)."""

    def __init__(
        self,
        run: Run,
        *,
        settings: Settings | None = None,
        window_s: float = VELOCITY_WINDOW_S,
        partners: Any = None,
    ) -> None:
        self.run = run
        self.settings = settings or Settings.model_validate(run.manifest.get("settings", {}))
        # partners' shared indicators (linkage.share): imported next to the run unless given
        self.partners = partners if partners is not None else partners_for(run, self.settings)
        self.window_s = float(window_s)
        self.window = VelocityWindow(self.window_s)
        self.index = SignupIndex.of_run(run)
        # the look-ups of the hot path, as plain attributes
        self._index = self.index.hits
        self._blocked = self.index.blocked
        self._cluster_score = self.index.cluster_score
        self._cluster_level = self.index.cluster_level

    @classmethod
    def from_run(
        cls, run_dir: str | Path | Run, *, settings: Settings | None = None, **kw: Any
    ) -> SignupScorer:
        run = run_dir if isinstance(run_dir, Run) else load_run(run_dir)
        if run.manifest.get("method", "graph") != "graph":
            raise ModelError(
                f"run {run.path} was made with method {run.manifest.get('method')!r}; signup scoring needs a graph run"
            )
        return cls(run, settings=settings, **kw)

    # -- velocity window -------------------------------------------------------
    def window_size(self) -> tuple[int, int]:
        """(identifiers, account entries) held in the velocity window now."""
        return self.window.size()

    def retract(self, record: Mapping[str, Any], t: float) -> None:
        """Undo what :meth:`score_one` recorded for ``record`` at server time ``t`` (the
        decision could not be stored: it must not count in anyone's velocity)."""
        keys, _ = record_identifiers(record, settings=self.settings)
        self.window.retract(keys, _account_key(record), t)

    def observe(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Warm the velocity window with already-scored signups (e.g. from the store).

        Each record is placed at its ``received_at`` (the server time it was scored;
        now when absent), never at the client's ``created_at``.
        """
        recs = list(records)
        if not recs:
            return 0
        frame = pd.DataFrame(recs)
        ids = signup_identifiers(frame, settings=self.settings)
        ts = epoch_seconds(frame.get("received_at"), len(frame))
        accounts = [_account_key(r) for r in recs]
        order: np.ndarray = (
            np.argsort(ts[ids["row"].to_numpy()], kind="stable") if len(ids) else np.empty(0, int)
        )
        rows, kinds, values = ids["row"].to_numpy(), ids["kind"].to_numpy(), ids["value"].to_numpy()
        self.window.warm(
            (float(ts[int(rows[i])]), (str(kinds[i]), str(values[i])), accounts[int(rows[i])])
            for i in order
        )
        return len(recs)

    # -- scoring ---------------------------------------------------------------
    def score_one(
        self,
        record: Mapping[str, Any],
        *,
        record_velocity: bool = True,
        now: float | None = None,
    ) -> SignupResult:
        """Score one signup.  ``now``: the server time (epoch seconds) it is scored at,
        default the clock; the record's ``created_at`` does not enter velocity."""
        keys, flags = record_identifiers(record, settings=self.settings)
        t = time.time() if now is None else float(now)
        velocity = self.window.count(keys, t, record=record_velocity, account=_account_key(record))
        return self._decide(
            str(record.get("account_id", "")), keys, velocity, flags, t=t, record=record_velocity
        )

    def _decide(
        self,
        account_id: str,
        keys: list[tuple[str, str]],
        velocity: dict[str, int],
        flags: Mapping[str, Any],
        *,
        t: float | None = None,
        record: bool = True,
    ) -> SignupResult:
        evidence: list[Evidence] = []
        best, link_score = self._link(keys, evidence)
        vel_score = self._velocity_score(velocity, evidence)
        if flags.get("disposable") or flags.get("alias"):
            evidence.append(
                Evidence(
                    kind="concealment",
                    summary=f"disposable e-mail: {bool(flags.get('disposable'))}, aliased e-mail: {bool(flags.get('alias'))} (context only)",
                    contribution=0.0,
                    details={
                        "disposable": bool(flags.get("disposable")),
                        "alias": bool(flags.get("alias")),
                    },
                )
            )
        partner_score = partner_evidence(
            self.partners, keys, evidence, t=t, record=record, account_id=account_id
        )
        score = 1.0 - (1.0 - link_score) * (1.0 - vel_score) * (1.0 - partner_score)
        level = str(level_of(np.array([score]), self.settings.score)[0])
        return SignupResult(
            account_id=account_id,
            score=float(score),
            level=level,
            cluster_id=best if link_score > 0 else None,
            evidence=ordered(evidence),
            velocity=velocity,
        )

    def _link(
        self, keys: list[tuple[str, str]], evidence: list[Evidence]
    ) -> tuple[str | None, float]:
        """The cluster the signup attaches to best and its link score (appends the
        evidence): per cluster the strongest vote of each family, a noisy-OR across
        families, times the cluster's score; one family alone stays below block."""
        votes: dict[str, dict[str, float]] = defaultdict(dict)  # cluster -> family -> best vote
        # popular identifiers (a browser version, a common device) link to 1000+ clusters:
        # this loop is the cost of a call, so it only keeps votes; the evidence rows are
        # built afterwards for the winning cluster alone
        for key in keys:
            fam = link_family(key[0])
            for cid, _w, m, h in self._index.get(key, ()):
                v = m / h
                fv = votes[cid]
                if v > fv.get(fam, 0.0):
                    fv[fam] = v
        best, link_score, attach = None, 0.0, 0.0
        for cid, fams in votes.items():
            miss = 1.0
            for v in fams.values():
                miss *= 1.0 - v
            a = 1.0 - miss
            sc = self._cluster_score.get(cid, 0.0) * a
            if sc > link_score or best is None:
                best, link_score, attach = cid, sc, a
        if best is None:
            return None, link_score
        block = self.settings.score.block_threshold
        # a signup that two independent families tie to a blocked farm, each through an
        # identifier held mostly inside it, is that farm's next account: it inherits the
        # block; one family alone (one proxy exit, a shared public template) stays below
        # block, as an account tied by one family does in the batch score
        vote = self.settings.score.signup_family_vote
        strong = sum(1 for v in votes[best].values() if v >= vote)
        if strong < 2:
            link_score *= block - 1e-3
        elif (
            self._cluster_level.get(best) == "block"
            or self._blocked_families(best, keys, vote) >= 2
        ):
            link_score = max(link_score, block)
        if link_score > 0:
            links: list[dict[str, Any]] = [
                {
                    "kind": key[0],
                    "value": key[1],
                    "members": m,
                    "holders": h,
                    "vote": round(m / h, 4),
                }
                for key in keys
                for cid, _w, m, h in self._index.get(key, ())
                if cid == best
            ]
            evidence.append(
                Evidence(
                    kind="attaches_to_cluster",
                    summary=(
                        f"shares {len(links)} identifier(s) with cluster {best} "
                        f"(score {self._cluster_score.get(best, 0):.2f}, {self._cluster_level.get(best, '?')}); "
                        f"attachment {attach:.2f}"
                    ),
                    contribution=_logit(link_score),
                    details={
                        "cluster_id": best,
                        "attachment": round(attach, 4),
                        "identifiers": sorted(links, key=lambda d: -d["vote"])[:10],
                    },
                )
            )
        return best, link_score

    def _velocity_score(self, velocity: dict[str, int], evidence: list[Evidence]) -> float:
        """``1 - (1 - review) * limit / count`` for the kind furthest over its limit (the
        review line at the limit; each doubling halves the distance to 1), 0 under every
        limit; appends the evidence."""
        over = {k: c for k, c in velocity.items() if c >= VELOCITY_LIMITS[k]}
        if not over:
            return 0.0
        excess = max(c / VELOCITY_LIMITS[k] for k, c in over.items())
        vel_score = float(1.0 - (1.0 - self.settings.score.review_threshold) / excess)
        evidence.append(
            Evidence(
                kind="velocity",
                summary="; ".join(
                    f"{c} signups on one {k} within {self.window_s / 60:.0f} min (limit {VELOCITY_LIMITS[k]})"
                    for k, c in sorted(over.items())
                ),
                contribution=_logit(vel_score),
                details={
                    "window_s": self.window_s,
                    "counts": dict(velocity),
                    "limits": dict(VELOCITY_LIMITS),
                },
            )
        )
        return vel_score

    def _blocked_families(self, cid: str, keys: list[tuple[str, str]], vote: float) -> int:
        """Families through which a signup is tied to *blocked* accounts of cluster ``cid``:
        an identifier held mostly inside the cluster (share >= ``vote``) whose holders there
        are mostly blocked. A farm's cluster can sit at review as a whole (its median member)
        while the accounts a signup shares its card and device with are blocked."""
        fams: set[str] = set()
        for key in keys:
            for c, _w, m, h in self._index.get(key, ()):
                if c == cid and m / h >= vote and self._blocked.get((*key, cid), 0.0) >= 0.5:
                    fams.add(link_family(key[0]))
        return len(fams)

    def score_frame(
        self, signups: pd.DataFrame, *, identifiers: pd.DataFrame | None = None
    ) -> pd.DataFrame:
        """Batch scoring (velocity counted among the batch, in created_at order).

        ``identifiers``: the dataset's identifiers table (``account_id, kind, value``);
        the rows of the signups' accounts link them as the provider's own identifiers
        (``x:<kind>``), as in the history."""
        import json

        frame = signups.reset_index(drop=True)
        ids = signup_identifiers(frame, settings=self.settings, identifiers=identifiers)
        flags = ids.attrs["flags"]
        ts = epoch_seconds(frame.get("created_at"), len(frame))
        # velocity by vectorised window counts per (kind, value)
        vel = batch_velocity(ids, ts, self.window_s)
        keys_by_row: dict[int, list[tuple[str, str]]] = defaultdict(list)
        for r, k, v in zip(ids["row"], ids["kind"], ids["value"], strict=True):
            keys_by_row[int(r)].append((k, v))
        results = []
        for r in range(len(frame)):
            res = self._decide(
                str(frame.at[r, "account_id"]) if "account_id" in frame.columns else str(r),
                keys_by_row.get(r, []),
                vel.get(r, {}),
                {
                    "disposable": bool(flags.at[r, "disposable"]),
                    "alias": bool(flags.at[r, "alias"]),
                },
                t=float(ts[r]),
            )
            results.append(res)
        return pd.DataFrame(
            {
                "account_id": [x.account_id for x in results],
                "score": [round(x.score, 6) for x in results],
                "level": [x.level for x in results],
                "cluster_id": pd.array([x.cluster_id for x in results], dtype="string"),
                "evidence": [json.dumps([e.to_dict() for e in x.evidence]) for x in results],
            }
        )


def _account_key(record: Mapping[str, Any]) -> str:
    """Who a signup is, for distinct counting (a record without an id counts alone)."""
    aid = record.get("account_id")
    return str(aid) if aid is not None and str(aid) != "" else f"\x00anon-{id(record)}"


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))
