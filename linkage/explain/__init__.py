"""Stage 6: evidence -- what supports each score, ordered by contribution."""

from linkage.explain.evidence import (
    EVIDENCE_KIND,
    EvidenceContext,
    account_evidence,
    build_context,
    cluster_evidence,
)
from linkage.explain.records import Evidence, ordered

__all__ = [
    "EVIDENCE_KIND",
    "Evidence",
    "EvidenceContext",
    "account_evidence",
    "build_context",
    "cluster_evidence",
    "ordered",
]
