"""Signup verification: does a new account attach to a known farm?

A new signup has no requests yet, only its sign-up attributes (e-mail, IP,
device, card, user agent).  We normalise them exactly as the history was
normalised, look them up in the run's ``signup_index`` (identifiers of clustered or flagged accounts).  Each
identifier votes for a cluster with the share of its holders that belong to it
(``m_ic / holders_i``: a card held only by a farm votes 1, a residential subnet where
a third of the holders are farm accounts votes 1/3, a carrier NAT votes ~0); votes
are combined by identifier *family* (network = ip+subnet, e-mail = mailbox+domain,
device = fingerprint+user agent, payment, other) taking the strongest vote in a
family (an IP and its subnet are not independent evidence) and a noisy-OR across
families::

    attach_c = 1 - prod_family (1 - max_{i in family} m_ic / holders_i)
    link score = max_c  cluster_score_c * attach_c

**Velocity** catches a farm that has not been clustered yet: many new accounts on
one card / device / canonical mailbox / domain / subnet within minutes.  It counts
*distinct account ids* per identifier within the window, on the **server's clock**
(the time :meth:`SignupScorer.score_one` is called, or the ``now`` it is given): the
client's ``created_at`` is recorded by the caller but never moves the window, so a
signup dated hours ahead or years back neither resets nor escapes it, and a retry of
the same account does not count twice.  The in-memory window is warmed from the
store on start-up (``observe``, by the time each signup was received).  The two are
combined as a noisy-OR.  Scoring one signup is a handful of dictionary look-ups.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from linkage.errors import ModelError
from linkage.explain.records import Evidence, ordered
from linkage.identifiers.kinds import VELOCITY_LIMITS as VELOCITY_LIMITS
from linkage.identifiers.kinds import link_family
from linkage.identifiers.signup_keys import record_identifiers, signup_identifiers
from linkage.score.scoring import level_of
from linkage.settings import Settings
from linkage.share.hook import partner_evidence, partners_for
from linkage.store.rundir import Run, load_run

# velocity: how many signups sharing one value within the window make it suspicious
# (limits declared per kind in linkage.identifiers.kinds).
VELOCITY_WINDOW_S = 600.0


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
        self._lock = threading.Lock()
        #: (kind, value) -> {account id: server time first seen in the window}, oldest first
        self._recent: dict[tuple[str, str], dict[str, float]] = {}
        #: every (time, key, account) recorded, oldest first: what leaves the window is
        #: evicted on each call whatever its key, so the window holds only its last
        #: ``window_s`` (identifiers seen once are forgotten too, not kept for ever)
        self._expiry: deque[tuple[float, tuple[str, str], str]] = deque()
        clusters = {c["cluster_id"]: c for c in run.clusters}
        self._cluster_score = {cid: float(c["score"]) for cid, c in clusters.items()}
        self._cluster_level = {cid: str(c["level"]) for cid, c in clusters.items()}
        acc = run.accounts
        acc_cluster = pd.Series(
            acc["cluster_id"].to_numpy(dtype=object), index=acc["account_id"].astype(str).to_numpy()
        )
        idx = run.signup_index
        if idx is None or idx.empty:
            self._index: dict[tuple[str, str], tuple[tuple[str, float, int, int], ...]] = {}
            self._blocked: dict[tuple[str, str, str], float] = {}
            return
        idx = idx.copy()
        idx["account_id"] = idx["account_id"].astype(str)
        idx["cluster_id"] = acc_cluster.reindex(idx["account_id"].to_numpy()).to_numpy()
        if "holders" not in idx.columns:
            idx["holders"] = idx.groupby(["kind", "value"])["account_id"].transform("size")
        idx = idx[pd.notna(idx["cluster_id"])]
        g = (
            idx.groupby(["kind", "value", "cluster_id"], sort=True)
            .agg(
                weight=("weight", "max"), members=("account_id", "size"), holders=("holders", "max")
            )
            .reset_index()
        )
        index: dict[tuple[str, str], list[tuple[str, float, int, int]]] = defaultdict(list)
        for k, v, c, w, m, h in zip(
            g["kind"],
            g["value"],
            g["cluster_id"],
            g["weight"],
            g["members"],
            g["holders"],
            strict=True,
        ):
            index[(str(k), str(v))].append((str(c), float(w), int(m), int(max(h, m))))
        # tuples of atomics are untracked by the cyclic GC (lists are not): ~60% fewer
        # objects for every full collection to walk while the scorer serves
        self._index = {key: tuple(hits) for key, hits in index.items()}
        self._blocked = _blocked_shares(idx, acc)

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
    def _velocity(
        self, keys: list[tuple[str, str]], t: float, record: bool, account: str
    ) -> dict[str, int]:
        """Distinct accounts per identifier in ``[t - window, t]``, this one included;
        ``record``: remember this account at ``t`` (unless already in the window)."""
        out: dict[str, int] = {}
        cutoff = t - self.window_s
        with self._lock:
            self._evict(cutoff)
            for key in keys:
                if key[0] not in VELOCITY_LIMITS:
                    continue
                seen = self._recent.get(key)
                if seen is None:
                    seen = {}
                    if record:
                        self._recent[key] = seen
                while seen:  # oldest first: drop what left the window
                    first = next(iter(seen))
                    if seen[first] >= cutoff:
                        break
                    del seen[first]
                # O(1): entries are server times, none after t (a concurrent later
                # signup already recorded counts too)
                count = len(seen)
                if account not in seen:
                    count += 1
                    if record:
                        seen[account] = t
                        self._expiry.append((t, key, account))
                out[key[0]] = max(out.get(key[0], 0), count)
        return out

    def _evict(self, cutoff: float) -> None:
        """Forget what was recorded before ``cutoff`` (call with the lock held): amortised
        O(1) per signup, and an identifier whose window empties is dropped."""
        expiry, recent = self._expiry, self._recent
        while expiry and expiry[0][0] < cutoff:
            t0, key, account = expiry.popleft()
            seen = recent.get(key)
            if seen is None:
                continue
            if seen.get(account) == t0:
                del seen[account]
            if not seen:
                del recent[key]

    def window_size(self) -> tuple[int, int]:
        """(identifiers, account entries) held in the velocity window now."""
        with self._lock:
            return len(self._recent), sum(len(v) for v in self._recent.values())

    def retract(self, record: Mapping[str, Any], t: float) -> None:
        """Undo what :meth:`score_one` recorded for ``record`` at server time ``t`` (the
        decision could not be stored: it must not count in anyone's velocity)."""
        keys, _ = record_identifiers(record, settings=self.settings)
        account = _account_key(record)
        with self._lock:
            for key in keys:
                seen = self._recent.get(key)
                if seen is not None and seen.get(account) == t:
                    del seen[account]
                    if not seen:
                        del self._recent[key]

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
        ts = _epoch(frame.get("received_at"), len(frame))
        accounts = [_account_key(r) for r in recs]
        order: np.ndarray = (
            np.argsort(ts[ids["row"].to_numpy()], kind="stable") if len(ids) else np.empty(0, int)
        )
        rows, kinds, values = ids["row"].to_numpy(), ids["kind"].to_numpy(), ids["value"].to_numpy()
        with self._lock:
            for i in order:
                r, k = int(rows[i]), str(kinds[i])
                if k in VELOCITY_LIMITS:
                    key = (k, str(values[i]))
                    seen = self._recent.setdefault(key, {})
                    if accounts[r] not in seen:
                        seen[accounts[r]] = float(ts[r])
                        self._expiry.append((float(ts[r]), key, accounts[r]))
            for key, seen in self._recent.items():  # keep each window oldest first
                if len(seen) > 1:
                    self._recent[key] = dict(sorted(seen.items(), key=lambda kv: kv[1]))
            self._expiry = deque(sorted(self._expiry, key=lambda e: e[0]))
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
        velocity = self._velocity(keys, t, record_velocity, _account_key(record))
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
        ts = _epoch(frame.get("created_at"), len(frame))
        # velocity by vectorised window counts per (kind, value)
        vel = _batch_velocity(ids, ts, self.window_s)
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


def _batch_velocity(
    ids: pd.DataFrame, ts: np.ndarray, window_s: float
) -> dict[int, dict[str, int]]:
    sel = ids["kind"].isin(list(VELOCITY_LIMITS)).to_numpy()
    sub = ids.loc[sel, ["row", "kind", "value"]].reset_index(drop=True)
    if sub.empty:
        return {}
    code, _ = pd.factorize(sub["kind"] + "\x1f" + sub["value"])
    t = ts[sub["row"].to_numpy()]
    order = np.lexsort((t, code))
    c, tt = code[order], t[order]
    # position of the first signup of the same value within the window, via one searchsorted
    key = c.astype(np.float64) * 1e12 + tt
    lo = np.searchsorted(key, c.astype(np.float64) * 1e12 + tt - window_s, side="left")
    counts = np.arange(len(key)) - lo + 1
    out: dict[int, dict[str, int]] = defaultdict(dict)
    rows = sub["row"].to_numpy()[order]
    kinds = sub["kind"].to_numpy()[order]
    for r, k, n in zip(rows, kinds, counts, strict=True):
        out[int(r)][k] = max(out[int(r)].get(k, 0), int(n))
    return out


def _blocked_shares(idx: pd.DataFrame, accounts: pd.DataFrame) -> dict[tuple[str, str, str], float]:
    """``(kind, value, cluster) -> share of the cluster's holders that are blocked`` (only
    entries with a blocked holder: the rest are 0)."""
    if "level" not in accounts.columns or idx.empty:
        return {}
    level = pd.Series(
        accounts["level"].astype(str).to_numpy(),
        index=accounts["account_id"].astype(str).to_numpy(),
    )
    blocked = (level.reindex(idx["account_id"].to_numpy()).to_numpy() == "block").astype(float)
    g = (
        idx.assign(blocked=blocked)
        .groupby(["kind", "value", "cluster_id"], sort=False)["blocked"]
        .mean()
    )
    g = g[g > 0]
    return {(str(k), str(v), str(c)): float(b) for (k, v, c), b in g.items()}


def _epoch(col: Any, n: int) -> np.ndarray:
    """created_at -> epoch seconds (now where unknown)."""
    now = pd.Timestamp.now(tz="UTC").timestamp()
    if col is None:
        return np.full(n, now)
    ts = pd.to_datetime(
        pd.Series(col).reset_index(drop=True), utc=True, errors="coerce", format="ISO8601"
    )
    secs = ((ts - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(dtype=float)
    return np.where(ts.isna().to_numpy(), now, secs)


def _account_key(record: Mapping[str, Any]) -> str:
    """Who a signup is, for distinct counting (a record without an id counts alone)."""
    aid = record.get("account_id")
    return str(aid) if aid is not None and str(aid) != "" else f"\x00anon-{id(record)}"


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))
