"""Evidence: what supports each score, ordered by contribution."""

from linkage.explain.records import Evidence, ordered

__all__ = ["Evidence", "ordered"]
