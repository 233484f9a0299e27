"""Stage 3: the weighted account graph (projection of account–identifier links)."""

from linkage.graph.build import AccountGraph, build_graph, reference_size

__all__ = ["AccountGraph", "build_graph", "reference_size"]
