"""The signup scorer's hook: partners' indicators as one more piece of evidence.

:mod:`linkage.signup` calls :func:`partners_for` once when a scorer loads a run and
:func:`partner_evidence` in each decision; everything else about sharing stays in
this package.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from linkage.explain.records import Evidence
from linkage.share.hashing import ShareError
from linkage.share.match import PartnerMatcher

__all__ = ["SHARE_DIR_ENV", "partner_evidence", "partners_for"]

#: A directory holding partners' indicators for every run (``linkage share import B --run
#: DIR``), used by runs that have none of their own: a daily run then needs no re-import.
SHARE_DIR_ENV = "LINKAGE_SHARE_DIR"

log = logging.getLogger(__name__)


def partners_for(run: Any, settings: Any) -> PartnerMatcher | None:
    """The matcher of the partners' indicators imported into ``run``, else into
    ``$LINKAGE_SHARE_DIR`` (None if none; a damaged indicator file is logged and
    ignored, never fatal to scoring)."""
    for path in (getattr(run, "path", None), os.environ.get(SHARE_DIR_ENV) or None):
        if path is None:
            continue
        try:
            m = PartnerMatcher.for_run(
                path,
                block_threshold=settings.score.block_threshold,
                review_threshold=settings.score.review_threshold,
            )
        except ShareError as exc:
            log.warning("partner indicators ignored: %s", exc)
            continue
        if m is not None:
            return m if m else None
    return None


def partner_evidence(
    matcher: PartnerMatcher | None,
    keys: Sequence[tuple[str, str]],
    evidence: list[Evidence],
    *,
    t: float | None = None,
    record: bool = True,
    account_id: str | None = None,
) -> float:
    """The partner score of canonical ``keys`` of a sign-up made at ``t`` (epoch seconds;
    0 without a match); appends its evidence.  ``record``: count it in the wave window."""
    if not matcher:
        return 0.0
    m = matcher.match(keys, t=t, record=record, account_id=account_id)
    if m is None or m.score <= 0:
        return 0.0
    evidence.append(m.evidence())
    return m.score
