"""Stage 4: community detection (Leiden per connected component)."""

from linkage.detect.leiden import Clustering, detect_clusters

__all__ = ["Clustering", "detect_clusters"]
