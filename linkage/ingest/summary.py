"""Human-readable summary of an :class:`~linkage.dataset.IngestReport`."""

from __future__ import annotations

from linkage.dataset import IngestReport


def summarize(report: IngestReport, *, top: int = 10) -> str:
    """Multi-line text: rows read / kept / quarantined per table, the ``top`` most
    frequent problem kinds with counts, and where the quarantine files are."""
    lines = ["ingest summary:"]
    width = max((len(n) for n in report.tables), default=5)
    for name, t in report.tables.items():
        lines.append(
            f"  {name:<{width}}  {t.rows_read:>12,} read  {t.rows_kept:>12,} kept  "
            f"{t.rows_quarantined:>10,} quarantined  {t.fields_nulled:>10,} fields set unknown"
            f"  ({t.file})"
        )
    if report.problem_counts:
        total = sum(report.problem_counts.values())
        lines.append(f"problems ({total:,} in {len(report.problem_counts)} kinds):")
        ranked = sorted(report.problem_counts.items(), key=lambda kv: (-kv[1], kv[0]))
        for key, n in ranked[:top]:
            first = report.problem_first.get(key)
            at = f"  (first at line {first})" if first is not None else ""
            lines.append(f"  {n:>12,}  {key}{at}")
        if len(ranked) > top:
            lines.append(f"  … and {len(ranked) - top} more kinds")
    else:
        lines.append("no problems found")
    if report.quarantine_files:
        lines.append("quarantine files:")
        lines += [f"  {t}: {p}" for t, p in report.quarantine_files.items()]
    elif report.rows_quarantined:
        lines.append("quarantined rows were not written (no quarantine directory given)")
    return "\n".join(lines)
