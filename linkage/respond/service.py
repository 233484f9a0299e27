"""The respond service over a store: per-account actions and corpus attribution.

``Responder(store)`` answers :meth:`~Responder.action` (what an account gets now: the
latest run's level and score, the cluster's size as its volume, the latest feedback
verdict on the account or its cluster, the cluster's watermark key) from an in-memory
view of the latest run, the verdicts and the keys — dictionary look-ups, refreshed when
the store changed (checked at most every ``refresh_seconds``) — and
:meth:`~Responder.detect` (test a corpus against every watermark key of the store).
Respond settings are the latest imported run's (``settings.respond`` in its manifest),
or the defaults, or those passed in.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, select

from linkage.respond.perturb import perturb
from linkage.respond.policy import Action, decide, needs_key
from linkage.respond.watermark import CorpusStats, detect
from linkage.settings import RespondSettings, ScoreSettings, Settings
from linkage.store.models import ClusterRow, FeedbackRow, MembershipRow, RunRow, SignupRow
from linkage.store.verdicts import resolve
from linkage.store.watermark_keys import WatermarkKeyRow, WatermarkKeys


@dataclass(frozen=True)
class Attribution:
    """One key's result on a corpus (no secret)."""

    key_id: str
    cluster_id: str
    retired: bool
    z: float
    p_value: float
    n_contexts: int
    attributed: bool
    log10_p: float = 0.0  # exact in log space: p_value underflows to 0 beyond z ~ 38
    channels: dict[str, Any] = field(default_factory=dict)  # per channel: z, log10_p, contexts

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "cluster_id": self.cluster_id,
            "retired": self.retired,
            "z": self.z,
            "p_value": self.p_value,
            "n_contexts": self.n_contexts,
            "attributed": self.attributed,
            "log10_p": self.log10_p,
            "channels": self.channels,
        }


def owner_of(account_id: str, cluster_id: str | None) -> str:
    """Who a watermark key belongs to: the cluster, or the lone account."""
    return cluster_id if cluster_id else f"account:{account_id}"


class Responder:
    """Actions and attribution over a :class:`linkage.store.db.Store`."""

    def __init__(
        self, store: Any, settings: Settings | None = None, *, refresh_seconds: float = 1.0
    ) -> None:
        self.store = store
        self.engine = store.engine
        self.keys = WatermarkKeys(self.engine)
        #: how stale the in-memory view may get: a run import, a verdict or a key rotation
        #: made elsewhere is seen at the first lookup after this many seconds
        self.refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._checked: float | None = None
        self._token: tuple[Any, ...] | None = None
        self._members: dict[str, tuple[str | None, float, str]] = {}
        self._sizes: dict[str, float] = {}
        self._verdicts: dict[tuple[str, str], tuple[Any, int, str]] = {}
        if settings is None:
            settings = self._latest_settings()
        self.respond: RespondSettings = settings.respond
        self.score: ScoreSettings = settings.score

    def _latest_settings(self) -> Settings:
        with self.engine.connect() as conn:
            raw = conn.execute(select(RunRow.settings).order_by(RunRow.id.desc()).limit(1)).scalar()
        base = Settings()
        if not isinstance(raw, dict):
            return base
        try:  # only the parts this module uses; a run of an older linkage has no `respond`
            respond = RespondSettings.model_validate(raw.get("respond", {}))
            score = ScoreSettings.model_validate(raw.get("score", {}))
        except ValueError:
            return base
        return base.model_copy(update={"respond": respond, "score": score})

    # ------------------------------------------------------------------ actions
    def _state_token(self, conn: Any) -> tuple[Any, ...]:
        run = conn.execute(select(func.max(RunRow.id))).scalar()
        fb = conn.execute(select(func.count(), func.max(FeedbackRow.id))).one()
        keys = conn.execute(select(func.count(), func.count(WatermarkKeyRow.retired_at))).one()
        return (run, *fb, *keys)

    def _refresh(self) -> None:
        """Reload what changed (latest run, verdicts, keys) since the last check."""
        now = time.monotonic()
        if self._checked is not None and now - self._checked < self.refresh_seconds:
            return
        with self._lock, self.engine.connect() as conn:
            token = self._state_token(conn)
            self._checked = now
            if token == self._token:
                return
            old = self._token
            self._token = token
            if old is None or old[0] != token[0]:
                self._load_run(conn, token[0])
            if old is None or old[1:3] != token[1:3]:
                self._load_feedback(conn)
            if old is None or old[3:] != token[3:]:
                self.keys.forget()

    def _load_run(self, conn: Any, run_id: int | None) -> None:
        self._members = {}
        self._sizes = {}
        if run_id is None:
            return
        for r in conn.execute(
            select(
                MembershipRow.account_id,
                MembershipRow.cluster_id,
                MembershipRow.score,
                MembershipRow.level,
            ).where(MembershipRow.run_id == run_id)
        ):
            self._members[r.account_id] = (r.cluster_id, float(r.score), r.level)
        for r in conn.execute(
            select(ClusterRow.cluster_id, ClusterRow.size).where(ClusterRow.run_id == run_id)
        ):
            self._sizes[r.cluster_id] = float(r.size)

    def _load_feedback(self, conn: Any) -> None:
        latest: dict[tuple[str, str], tuple[Any, int, str]] = {}
        for f in conn.execute(
            select(
                FeedbackRow.target_type,
                FeedbackRow.target_id,
                FeedbackRow.verdict,
                FeedbackRow.ts,
                FeedbackRow.id,
            ).order_by(FeedbackRow.ts, FeedbackRow.id)
        ):
            latest[(f.target_type, f.target_id)] = (f.ts, f.id, f.verdict)
        self._verdicts = latest

    def _verdict(self, account_id: str, cluster_id: str | None) -> str | None:
        """The verdict that applies (one resolution for every view: linkage.store.verdicts)."""
        own = self._verdicts.get(("account", account_id))
        bulk = self._verdicts.get(("cluster", cluster_id)) if cluster_id is not None else None
        r = resolve(own[2] if own else None, bulk[2] if bulk else None)
        return r.verdict if r is not None else None

    def _signup(self, account_id: str) -> tuple[None, float, str] | None:
        """Accounts seen only at signup (not in the latest run): their scored level."""
        with self.engine.connect() as conn:
            s = conn.execute(
                select(SignupRow.score, SignupRow.level)
                .where(SignupRow.account_id == account_id)
                .order_by(SignupRow.id.desc())
                .limit(1)
            ).first()
        return None if s is None else (None, float(s.score), s.level)

    def action(self, account_id: str) -> Action | None:
        """The action for an account (None if the store has never seen it)."""
        self._refresh()
        m = self._members.get(account_id) or self._signup(account_id)
        if m is None:
            return None
        cluster_id, score, level = m
        volume = self._sizes.get(cluster_id, 1.0) if cluster_id is not None else 1.0
        verdict = self._verdict(account_id, cluster_id)
        key_id = None
        if needs_key(level, verdict, self.respond):
            key_id = self.keys.ensure(owner_of(account_id, cluster_id))
        return decide(
            level,
            score,
            volume=volume,
            verdict=verdict,
            key_id=key_id,
            respond=self.respond,
            score_settings=self.score,
        )

    def perturb_output(self, account_id: str, text: str) -> tuple[str, Action | None]:
        """What the serving path would return for ``account_id``: ``text`` perturbed under
        its cluster's key when the action says so, unchanged otherwise."""
        a = self.action(account_id)
        if a is None or not a.perturbs or a.watermark_key_id is None:
            return text, a
        secret = self.keys.secret(a.watermark_key_id)
        assert secret is not None
        return perturb(text, a.perturbation_strength, secret), a

    # ------------------------------------------------------------------ attribution
    def detect(
        self, texts: Iterable[str] | CorpusStats, *, threshold: float | None = None
    ) -> list[Attribution]:
        """Test a corpus against every watermark key (active and retired), best first."""
        thr = self.respond.attribution_p_value if threshold is None else threshold
        info = {k.key_id: k for k in self.keys.list()}
        res = detect(texts, self.keys.secrets(), threshold=thr)
        return [
            Attribution(
                r.key_id,
                info[r.key_id].cluster_id,
                info[r.key_id].retired_at is not None,
                r.z,
                r.p_value,
                r.n_contexts,
                r.attributed,
                r.log10_p,
                {c: asdict(v) for c, v in r.channels.items()},
            )
            for r in res
            if r.key_id in info
        ]
