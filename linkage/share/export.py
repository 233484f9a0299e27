"""Export: the indicators of a run's confirmed or blocked clusters as a STIX 2.1 bundle.

A cluster is shared when its level is ``block`` or analysts confirmed it
(``confirmed_farm`` feedback on its members outnumbers ``false_positive`` /
``appeal_upheld``); a blocked cluster that analysts reversed is not shared.

Per shared cluster, one STIX ``indicator`` holds keyed hashes
(:class:`~linkage.share.hashing.PartnershipKey`) of the canonical values its members
hold, kind by kind (:data:`~linkage.share.settings.SHARED_KINDS`), each with the
cluster's share of the value's holders (rounded down), plus the cluster's score, level,
verdict, first/last sign-up day and sign-up cadence.  Values come from the run's
``signup_index.parquet`` (already normalised by :mod:`linkage.identifiers.kinds`) and
template signatures from the cluster's coordination evidence.  Nothing else leaves:
no raw identifier, no account or cluster id, no prompt text.

The pattern is standard STIX (``[x-linkage-identifier:payment_hmac IN (...)] OR ...``)
so generic tools can store it; ``x_linkage_hashes`` carries the same hashes with their
shares, which :mod:`linkage.share.bundle_store` reads.  Every bundle is a full
snapshot of what the exporter currently shares: an indicator missing from a newer
bundle is withdrawn.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from linkage.errors import LinkageError
from linkage.identifiers.kinds import SIGNUP_KINDS
from linkage.share.hashing import PartnershipKey, ShareError
from linkage.share.settings import SHARED_KINDS, ShareSettings
from linkage.store.rundir import Run

if TYPE_CHECKING:
    import stix2

__all__ = [
    "FORMAT",
    "build_pattern",
    "export_bundle",
    "run_accounts",
    "shared_clusters",
    "write_bundle",
]

#: ``x_linkage_format`` of the bundles this module writes.
FORMAT = "linkage-share/1"
_NS = uuid.UUID("6f1c2f0e-3b0a-5d8e-9c1b-2a7e4d5c6b01")
_CONFIRM = "confirmed_farm"
_REVERSE = ("false_positive", "appeal_upheld")
log = logging.getLogger(__name__)
#: Shared kinds never seen at sign-up (templates): not in the signup index, their values
#: and holder counts come from the cluster's coordination evidence.
_EVIDENCE_KINDS = frozenset(k for k in SHARED_KINDS if k not in SIGNUP_KINDS)


def build_pattern(hashes: Mapping[str, list[str]]) -> str:
    """The STIX pattern of a kind → hashes mapping (one observation per kind)."""
    parts = []
    for kind in sorted(hashes):
        if hashes[kind]:
            vals = ", ".join(f"'{h}'" for h in sorted(hashes[kind]))
            parts.append(f"[x-linkage-identifier:{kind}_hmac IN ({vals})]")
    if not parts:
        raise ShareError("an indicator needs at least one hash")
    return " OR ".join(parts)


def shared_clusters(run: Run, *, feedback: pd.DataFrame | None = None) -> dict[str, str]:
    """Cluster id → verdict (``confirmed_farm`` | ``blocked``) of the clusters to share."""
    votes: dict[str, list[int]] = {}
    if feedback is not None and len(feedback):
        fb = feedback.copy()
        if "ts" in fb.columns:
            fb = fb.sort_values("ts", kind="stable")
        latest = fb.groupby(fb["account_id"].astype(str))["verdict"].last()
        acc = run.accounts.dropna(subset=["cluster_id"])
        cl = pd.Series(
            acc["cluster_id"].astype(str).to_numpy(), index=acc["account_id"].astype(str)
        )
        for aid, verdict in latest.items():
            cid = cl.get(aid)
            if cid is None:
                continue
            v = votes.setdefault(str(cid), [0, 0])
            v[0] += verdict == _CONFIRM
            v[1] += verdict in _REVERSE
    out: dict[str, str] = {}
    for c in run.clusters:
        cid = str(c["cluster_id"])
        yes, no = votes.get(cid, (0, 0))
        if yes > no:
            out[cid] = _CONFIRM
        elif c.get("level") == "block" and no == 0:
            out[cid] = "blocked"
    return out


def _hashes(
    run: Run,
    members: set[str],
    cluster: Mapping[str, Any],
    key: PartnershipKey,
    settings: ShareSettings,
    index: pd.DataFrame,
) -> dict[str, dict[str, float]]:
    """kind → {hmac: share} of one cluster."""
    step = settings.share_step
    found: dict[str, list[tuple[int, float, str]]] = {}  # kind -> (members, share, value)

    def add(kind: str, value: str, m: int, h: int) -> None:
        share = m / max(h, m, 1)
        if m >= 1 and share >= settings.min_share:
            found.setdefault(kind, []).append((m, share, value))

    sub = index[index["account_id"].isin(members)]
    if len(sub):
        g = sub.groupby(["kind", "value"], sort=True).agg(
            m=("account_id", "nunique"), h=("holders", "max")
        )
        for (k, v), m, h in zip(g.index, g["m"], g["h"], strict=True):
            add(str(k), str(v), int(m), int(h))
    for ev in cluster.get("evidence") or []:
        for ident in (ev.get("details") or {}).get("identifiers") or []:
            if ident.get("kind") in _EVIDENCE_KINDS and ident.get("value"):
                add(
                    str(ident["kind"]),
                    str(ident["value"]),
                    int(ident.get("members", 0)),
                    int(ident.get("holders", 0)),
                )
    out: dict[str, dict[str, float]] = {}
    for kind, rows in found.items():
        # values held by most members first (the ones a next wave reuses), then the most specific
        rows.sort(key=lambda t: (-t[0], -t[1], t[2]))
        for _m, share, value in rows[: settings.max_hashes_per_kind]:
            q = max(step, math.floor(share / step + 1e-9) * step)
            out.setdefault(kind, {})[key.digest(kind, value)] = round(min(q, 1.0), 4)
    return out


def _day(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%d")


def _cadence(created: pd.Series) -> dict[str, Any] | None:
    """Coarse sign-up cadence of a cluster: no single time, only its rhythm."""
    t = pd.to_datetime(created, utc=True, errors="coerce").dropna().sort_values()
    if len(t) < 2:
        return None
    gaps = np.diff((t - t.iloc[0]).dt.total_seconds().to_numpy())
    med = float(np.median(gaps))
    return {
        "median_gap_s_log2": round(math.log2(med)) if med >= 1 else 0,
        "burst_share": round(math.floor(float(np.mean(gaps <= 600)) * 10) / 10, 1),
        "span_days": int((t.iloc[-1] - t.iloc[0]).total_seconds() // 86_400),
        "busiest_hour_utc": int(t.dt.hour.value_counts().idxmax()),
    }


def _shared_index(run: Run) -> pd.DataFrame:
    """The run's signup index restricted to the shared kinds, with each value's number of
    holders (counted here if the index predates its ``holders`` column)."""
    index = run.signup_index
    if index is None or index.empty:
        index = pd.DataFrame({"kind": [], "value": [], "account_id": [], "holders": []})
    index = index[index["kind"].isin(list(SHARED_KINDS))].copy()
    index["account_id"] = index["account_id"].astype(str)
    if "holders" not in index.columns:
        index["holders"] = index.groupby(["kind", "value"])["account_id"].transform("nunique")
    return index


def _created(accounts: pd.DataFrame | None) -> pd.Series | None:
    """Sign-up time per account id (None without an accounts table with ``created_at``)."""
    if accounts is None or "created_at" not in accounts.columns:
        return None
    return pd.Series(
        pd.to_datetime(accounts["created_at"], utc=True, errors="coerce").to_numpy(),
        index=accounts["account_id"].astype(str).to_numpy(),
    )


def _seen(created: pd.Series | None, members: set[str]) -> dict[str, Any]:
    """The cluster's first/last sign-up day and cadence, as indicator properties."""
    extra: dict[str, Any] = {}
    if created is not None:
        t = created.reindex(sorted(members)).dropna()
        if len(t):
            extra["x_linkage_first_seen"] = _day(t.min())
            extra["x_linkage_last_seen"] = _day(t.max())
            cad = _cadence(t)
            if cad is not None:
                extra["x_linkage_cadence"] = cad
    return extra


def _indicator(
    cluster: Mapping[str, Any],
    hashes: Mapping[str, Mapping[str, float]],
    *,
    indicator_id: str,
    identity: str,
    verdict: str,
    key: PartnershipKey,
    settings: ShareSettings,
    now: datetime,
    extra: Mapping[str, Any],
) -> stix2.Indicator:
    """The STIX indicator of one shared cluster (``identity``: the producer's id)."""
    import stix2

    score = float(cluster.get("score", 0.0))
    return stix2.Indicator(
        id=indicator_id,
        created=now,
        modified=now,
        created_by_ref=identity,
        name="coordinated account farm (keyed identifier hashes)",
        indicator_types=["malicious-activity"],
        pattern=build_pattern({k: list(d) for k, d in hashes.items()}),
        pattern_type="stix",
        valid_from=now,
        valid_until=now + timedelta(days=settings.expiry_days),
        confidence=round(100 * score),
        x_linkage_key_id=key.key_id,
        x_linkage_score=round(score, 4),
        x_linkage_level=str(cluster.get("level", "")),
        x_linkage_verdict=verdict,
        x_linkage_hashes={k: dict(sorted(d.items())) for k, d in sorted(hashes.items())},
        allow_custom=True,
        **extra,
    )


def export_bundle(
    run: Run,
    key: PartnershipKey,
    *,
    producer: str = "linkage",
    feedback: pd.DataFrame | None = None,
    accounts: pd.DataFrame | None = None,
    settings: ShareSettings | None = None,
    now: datetime | None = None,
) -> tuple[stix2.Bundle, dict[str, Any]]:
    """The bundle of ``run``'s shared clusters and a summary (counts by kind).

    ``accounts``: the run's accounts table (``account_id, created_at``) for first/last
    seen and cadence; without it they are left out.
    """
    import stix2  # 0.16 s to import: only when exporting

    settings = settings or ShareSettings()
    now = (now or datetime.now(UTC)).astimezone(UTC)
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # STIX keeps milliseconds
    chosen = shared_clusters(run, feedback=feedback)
    index = _shared_index(run)
    created = _created(accounts)
    identity = stix2.Identity(
        id=f"identity--{uuid.uuid5(_NS, 'producer/' + key.key_id + '/' + producer)}",
        name=producer,
        identity_class="organization",
        created=now,
        modified=now,
    )
    objects: list[Any] = [identity]
    counts: dict[str, int] = {}
    run_tag = str(run.manifest.get("created_at", ""))
    for c in run.clusters:
        cid = str(c["cluster_id"])
        if cid not in chosen:
            continue
        members = {str(m) for m in c.get("members") or []}
        hashes = _hashes(run, members, c, key, settings, index)
        if not hashes:
            continue
        for k, d in hashes.items():
            counts[k] = counts.get(k, 0) + len(d)
        objects.append(
            _indicator(
                c,
                hashes,
                indicator_id=f"indicator--{uuid.uuid5(_NS, key.key_id + '/' + run_tag + '/' + cid)}",
                identity=identity.id,
                verdict=chosen[cid],
                key=key,
                settings=settings,
                now=now,
                extra=_seen(created, members),
            )
        )
    bundle = stix2.Bundle(
        objects=objects,
        allow_custom=True,
        x_linkage_format=FORMAT,
        x_linkage_key_id=key.key_id,
        x_linkage_created=now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        x_linkage_snapshot=True,
    )
    summary = {
        "bundle_id": bundle.id,
        "indicators": len(objects) - 1,
        "clusters_shared": len(chosen),
        "hashes_by_kind": dict(sorted(counts.items())),
        "key_id": key.key_id,
    }
    return bundle, summary


def write_bundle(bundle: stix2.Bundle, path: str | Path) -> Path:
    """Write the bundle as JSON (atomically)."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(json.loads(bundle.serialize()), indent=1) + "\n", encoding="utf-8")
    tmp.replace(p)
    return p


def run_accounts(run_dir: str | Path, dataset: str | Path | None = None) -> pd.DataFrame | None:
    """``account_id, created_at`` of a run's accounts (for first/last seen and cadence):
    from ``dataset`` or the accounts file named in the run's manifest (None if gone)."""
    run_dir = Path(run_dir)
    from linkage.ingest.readers import discover

    path: Path | None = None
    if dataset is not None:
        tf = discover(Path(dataset)).get("accounts")
        if tf is None:
            raise LinkageError(f"{dataset} has no accounts table")
        path = Path(tf.path)
    else:
        try:
            man = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
            p = (man.get("inputs") or {}).get("accounts", {}).get("path")
        except (OSError, json.JSONDecodeError):
            p = None
        if p and Path(p).is_file():
            path = Path(p)
    if path is None:
        log.warning("accounts table not found: first/last seen and cadence left out")
        return None
    cols = ["account_id", "created_at"]
    name = path.name
    try:
        if name.endswith(".parquet") or path.is_dir():
            return pd.read_parquet(path, columns=cols)
        if ".jsonl" in name:
            return pd.read_json(path, lines=True, dtype=False)[cols]
        return pd.read_csv(path, usecols=cols, dtype=str)
    except (OSError, ValueError, KeyError) as exc:
        log.warning("cannot read %s (%s): first/last seen and cadence left out", path, exc)
        return None
