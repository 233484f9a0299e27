"""Render evidence for people (terminal); the API and notebooks use the same records."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def render_cluster(cluster: dict[str, Any], console: Console) -> None:
    console.print(
        f"[bold]cluster {cluster['cluster_id']}[/]  size {cluster['size']}  "
        f"score {cluster['score']:.3f}  level [bold]{cluster['level']}[/]",
        highlight=False,
    )
    t = Table(show_header=True, header_style="bold")
    t.add_column("contribution", justify="right")
    t.add_column("kind")
    t.add_column("evidence")
    for e in cluster.get("evidence", []):
        c = float(e.get("contribution", 0.0))
        colour = "red" if c > 0.5 else "green" if c < -0.5 else "white"
        t.add_row(f"[{colour}]{c:+.2f}[/]", e["kind"], e.get("summary", ""))
    console.print(t)
    for e in cluster.get("evidence", [])[:3]:
        d = e.get("details", {})
        for ident in d.get("identifiers", [])[:5]:
            console.print(
                f"  {e['kind']}: {ident['kind']}={ident['value']} held by {ident['members']} members "
                f"of {ident['holders']} accounts ({ident['weight_nats']} nats)",
                highlight=False,
            )
        for tpl in d.get("templates", [])[:3]:
            console.print(
                f"  template {tpl['template_id']} ({tpl['requests_in_cluster']} requests, rows {tpl['request_rows']}): "
                f"{tpl['skeleton'][:120]!r}",
                highlight=False,
            )
    members = cluster.get("members", [])
    console.print(
        f"members ({len(members)}): {', '.join(members[:20])}{' …' if len(members) > 20 else ''}"
    )
