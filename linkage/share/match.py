"""Matching: partners' indicators as evidence on a sign-up or an account.

For each partner, the canonical values of a sign-up (or an account) are hashed with
that partnership's key and looked up among the partner's active indicators (not
withdrawn, not expired).  Each matched indicator (one partner's cluster) is scored
like a signup attachment: per evidence family (payment, e-mail = mailbox + domain,
network, device, template) the strongest vote ``confidence x share`` (``share``: the
cluster's share of the value's holders at the partner, so a carrier NAT or a common
template the farm shares with strangers votes little), and a noisy-OR across
families::

    partner score = 1 - prod_family (1 - confidence * max_{kind in family} share)

**Corroboration**: with a single matched family the score is capped, whatever the
share: one partner's word on one card or one mailbox is a reason to look, not to
block (capped at ``block - 0.1``: it blocks only with review-level evidence of the
provider's own, e.g. velocity); a family that matched only on things shared by
nature (a /24, a domain, a prompt template: a carrier NAT, a disposable-mail domain,
a viral template) is context, capped at half the review line (it reaches review
only with evidence of the provider's own).  The evidence item
names the partner, its verdict and the matched kinds, never a value.
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from linkage.explain.records import Evidence
from linkage.share.bundle_store import IndicatorStore, ParsedBundle
from linkage.share.hashing import PartnershipKey, ShareError
from linkage.share.settings import PERSONAL_KINDS, SHARED_KINDS, ShareSettings

__all__ = ["EVIDENCE_KIND", "PartnerMatch", "PartnerMatcher", "match_accounts"]

log = logging.getLogger(__name__)

#: ``kind`` of the evidence item a partner match adds.
EVIDENCE_KIND = "partner_indicator"
#: How far below the block line a single personal-family match is kept.
_BELOW_BLOCK = 0.1


@dataclass(frozen=True)
class PartnerMatch:
    """The best-matching partner indicator of one sign-up / account."""

    partner: str
    indicator_id: str
    score: float
    families: dict[str, float]
    kinds: tuple[str, ...]
    confidence: float
    meta: Mapping[str, Any]
    wave: int = 0

    def evidence(self) -> Evidence:
        fams = ", ".join(sorted(self.families))
        one = len(self.families) == 1
        return Evidence(
            kind=EVIDENCE_KIND,
            summary=(
                f"matches {self.partner}'s {self.meta.get('verdict') or 'shared'} farm indicators "
                f"on {', '.join(self.kinds)} ({len(self.families)} famil{'y' if one else 'ies'}: {fams}; "
                f"partner confidence {self.confidence:.2f})"
                + ("; one family alone: not a block" if one else "")
                + (
                    f"; {self.wave} sign-ups on it within the wave window"
                    if "wave" in self.families
                    else ""
                )
            ),
            contribution=_logit(self.score),
            details={
                "partner": self.partner,
                "indicator_id": self.indicator_id,
                "matched_kinds": list(self.kinds),
                "families": {k: round(v, 4) for k, v in sorted(self.families.items())},
                "confidence": self.confidence,
                "partner_score": self.meta.get("score"),
                "partner_level": self.meta.get("level"),
                "verdict": self.meta.get("verdict"),
                "first_seen": self.meta.get("first_seen"),
                "last_seen": self.meta.get("last_seen"),
                "score": round(self.score, 4),
                "wave": self.wave,
            },
        )


class _Partner:
    __slots__ = ("confidence", "index", "indicators", "key", "name")

    def __init__(
        self,
        name: str,
        key: PartnershipKey,
        confidence: float,
        indicators: Iterable[Mapping[str, Any]],
    ) -> None:
        self.name = name
        self.key = key
        self.confidence = float(confidence)
        self.indicators: list[Mapping[str, Any]] = []
        self.index: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
        for ind in indicators:
            if ind.get("revoked") or not ind.get("hashes"):
                continue
            i = len(self.indicators)
            until = ind.get("valid_until")
            meta = {
                k: ind.get(k)
                for k in ("id", "score", "level", "verdict", "first_seen", "last_seen")
            }
            meta["until"] = (
                datetime.fromisoformat(str(until).replace("Z", "+00:00")).timestamp()
                if until
                else math.inf
            )
            self.indicators.append(meta)
            for kind, d in ind["hashes"].items():
                for h, share in d.items():
                    self.index[(kind, h)].append((i, float(share)))


class PartnerMatcher:
    """Partners' active indicators, ready to match (thread-safe: read-only after init)."""

    def __init__(
        self,
        partners: Iterable[_Partner],
        *,
        block_threshold: float = 0.9,
        review_threshold: float = 0.5,
        settings: ShareSettings | None = None,
    ) -> None:
        self.partners = [p for p in partners if p.indicators]
        self.cap_personal = max(0.0, float(block_threshold) - _BELOW_BLOCK)
        self.cap_shared = float(review_threshold) / 2
        self.review = float(review_threshold)
        self.settings = settings or ShareSettings()
        self._lock = threading.Lock()
        self._waves: dict[tuple[str, int], list[float]] = defaultdict(list)  # sorted times
        self._counted: dict[tuple[str, int], set[str]] = defaultdict(set)  # account ids

    def __bool__(self) -> bool:
        return bool(self.partners)

    @property
    def n_indicators(self) -> int:
        return sum(len(p.indicators) for p in self.partners)

    @classmethod
    def from_bundle(
        cls,
        bundle: ParsedBundle,
        key: PartnershipKey,
        *,
        partner: str,
        confidence: float,
        block_threshold: float = 0.9,
        review_threshold: float = 0.5,
    ) -> PartnerMatcher:
        """A matcher of one parsed bundle (no store): tests, benchmarks."""
        return cls(
            [_Partner(partner, key, confidence, bundle.indicators)],
            block_threshold=block_threshold,
            review_threshold=review_threshold,
        )

    @classmethod
    def for_run(
        cls, run_dir: str | Path, *, block_threshold: float = 0.9, review_threshold: float = 0.5
    ) -> PartnerMatcher | None:
        """The matcher of the indicators imported into ``run_dir`` (None: none imported).

        A partner whose key file is gone is skipped with a warning (its indicators
        cannot be matched without it)."""
        store = IndicatorStore(run_dir)
        if not store.path.is_file():
            return None
        data = store.load()
        partners = []
        for name, info in sorted(data.get("partners", {}).items()):
            try:
                key = PartnershipKey.from_file(info["key_file"])
            except ShareError as exc:
                log.warning("partner %s: indicators not matched: %s", name, exc)
                continue
            if key.key_id != info.get("key_id"):
                log.warning(
                    "partner %s: key file %s changed (id %s, expected %s): not matched",
                    name,
                    info["key_file"],
                    key.key_id,
                    info.get("key_id"),
                )
                continue
            partners.append(
                _Partner(name, key, info["confidence"], data["indicators"].get(name, {}).values())
            )
        m = cls(partners, block_threshold=block_threshold, review_threshold=review_threshold)
        log.info(
            "partner indicators: %d active from %d partner(s)", m.n_indicators, len(m.partners)
        )
        return m

    def _wave(self, partner: str, i: int, t: float, record: bool, account_id: str | None) -> int:
        """Sign-ups matching indicator ``i`` within the window ending at ``t`` (this one
        included); ``record``: remember this one (once per account id)."""
        w = self.settings.wave_window_s
        key = (partner, i)
        with self._lock:
            times = self._waves[key]
            seen = account_id is not None and account_id in self._counted[key]
            n = bisect.bisect_right(times, t) - bisect.bisect_left(times, t - w) + (not seen)
            if record and not seen:
                if account_id is not None:
                    self._counted[key].add(account_id)
                bisect.insort(times, t)
                if len(times) > 4096:  # keep the recent past only
                    del times[: bisect.bisect_left(times, times[-1] - w)]
        return n

    def match(
        self,
        keys: Iterable[tuple[str, str]],
        *,
        now: float | None = None,
        t: float | None = None,
        record: bool = False,
        account_id: str | None = None,
    ) -> PartnerMatch | None:
        """The best partner indicator matched by canonical ``(kind, value)`` pairs of a
        sign-up made at ``t`` (epoch seconds; None: no wave counting); ``now``: the clock
        expiry is checked against; ``record``: count this sign-up (``account_id``: once)
        in the wave window."""
        now = time.time() if now is None else now
        wanted = [(k, v) for k, v in keys if k in SHARED_KINDS]
        if not wanted:
            return None
        best: PartnerMatch | None = None
        for p in self.partners:
            fams: dict[int, dict[str, float]] = defaultdict(dict)
            kinds: dict[int, set[str]] = defaultdict(set)
            personal: set[int] = set()
            for k, v in wanted:
                hits = p.index.get((k, p.key.digest(k, v)))
                if not hits:
                    continue
                fam = SHARED_KINDS[k]
                for i, share in hits:
                    if p.indicators[i]["until"] <= now:
                        continue
                    vote = p.confidence * share
                    if vote > fams[i].get(fam, 0.0):
                        fams[i][fam] = vote
                    kinds[i].add(k)
                    if k in PERSONAL_KINDS:
                        personal.add(i)
            for i, fv in fams.items():
                miss = 1.0
                for vote in fv.values():
                    miss *= 1.0 - vote
                score = 1.0 - miss
                if len(fv) < 2:
                    score = min(score, self.cap_personal if i in personal else self.cap_shared)
                wave = 0
                if t is not None and score >= self.review:
                    wave = self._wave(p.name, i, t, record, account_id)
                    if wave >= self.settings.wave_min:
                        fv = {**fv, "wave": p.confidence}
                        score = 1.0 - (1.0 - score) * (1.0 - p.confidence)
                if best is None or score > best.score:
                    meta = p.indicators[i]
                    best = PartnerMatch(
                        partner=p.name,
                        indicator_id=str(meta["id"]),
                        score=score,
                        families=dict(fv),
                        kinds=tuple(k for k in SHARED_KINDS if k in kinds[i]),
                        confidence=p.confidence,
                        meta=meta,
                        wave=wave,
                    )
        return best

    def match_frame(self, idents: pd.DataFrame, *, now: float | None = None) -> pd.DataFrame:
        """Best match per ``account_id`` of an ``account_id, kind, value`` frame: columns
        ``account_id, partner, indicator_id, score, families, kinds`` (matched only)."""
        sub = idents[idents["kind"].isin(list(SHARED_KINDS))]
        by: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for a, k, v in zip(
            sub["account_id"].astype(str),
            sub["kind"].astype(str),
            sub["value"].astype(str),
            strict=True,
        ):
            by[a].append((k, v))
        rows = []
        for a, keys in by.items():
            m = self.match(keys, now=now)
            if m is not None:
                rows.append(
                    {
                        "account_id": a,
                        "partner": m.partner,
                        "indicator_id": m.indicator_id,
                        "score": m.score,
                        "families": len(m.families),
                        "kinds": ",".join(m.kinds),
                    }
                )
        return pd.DataFrame(
            rows, columns=["account_id", "partner", "indicator_id", "score", "families", "kinds"]
        )


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def match_accounts(
    matcher: PartnerMatcher,
    *,
    accounts: pd.DataFrame | None = None,
    index: pd.DataFrame | None = None,
    settings: Any = None,
) -> pd.DataFrame:
    """Existing accounts that match partner indicators, with their evidence item.

    ``accounts``: an accounts table (sign-up attributes, normalised as at sign-up);
    ``index``: a run's ``signup_index`` (``account_id, kind, value``: adds the ranges and
    devices clustered or flagged accounts were seen with in their requests).  Columns
    ``account_id, partner, indicator_id, score, level, families, kinds, evidence``
    (evidence: the item as JSON), strongest first.
    """
    import json

    from linkage.identifiers.signup_keys import signup_identifiers
    from linkage.score.scoring import level_of
    from linkage.settings import Settings

    settings = settings or Settings()
    frames = []
    if accounts is not None and len(accounts):
        acc = accounts.reset_index(drop=True)
        ids = signup_identifiers(acc, settings=settings)
        ids["account_id"] = acc["account_id"].astype(str).to_numpy()[ids["row"].to_numpy()]
        frames.append(ids[["account_id", "kind", "value"]])
    if index is not None and len(index):
        frames.append(index[["account_id", "kind", "value"]].astype(str))
    cols = [
        "account_id",
        "partner",
        "indicator_id",
        "score",
        "level",
        "families",
        "kinds",
        "evidence",
    ]
    if not frames:
        return pd.DataFrame(columns=cols)
    idents = pd.concat(frames, ignore_index=True).drop_duplicates()
    sub = idents[idents["kind"].isin(list(SHARED_KINDS))]
    by: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for a, k, v in zip(sub["account_id"], sub["kind"], sub["value"], strict=True):
        by[str(a)].append((str(k), str(v)))
    rows = []
    for a, keys in by.items():
        m = matcher.match(keys)
        if m is not None:
            rows.append(
                {
                    "account_id": a,
                    "partner": m.partner,
                    "indicator_id": m.indicator_id,
                    "score": round(m.score, 6),
                    "families": len(m.families),
                    "kinds": ",".join(m.kinds),
                    "evidence": json.dumps(m.evidence().to_dict()),
                }
            )
    out = pd.DataFrame(rows, columns=[c for c in cols if c != "level"])
    out.insert(
        4, "level", level_of(out["score"].to_numpy(dtype=float), settings.score) if len(out) else []
    )
    return out.sort_values(["score", "account_id"], ascending=[False, True], ignore_index=True)
