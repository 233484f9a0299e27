"""The run directory: what ``linkage detect`` writes and everything downstream reads.

Layout (see docs/ARCHITECTURE.md)::

    OUT/accounts.csv          account_id, cluster_id, score, level   (every input account)
    OUT/clusters.jsonl        one cluster per line: cluster_id, size, score, level, members, evidence
    OUT/manifest.json         settings, input hashes, counts, stage timings, ingest report
    OUT/signup_index.parquet  kind, value, account_id, weight  (for signup verification)
    OUT/communities.parquet   Leiden's membership before weak members are released
                              (graph runs; ``linkage detect --previous OUT`` warm-starts from it)
    OUT/quarantine/*.csv      rejected input rows (written by ingest)

Files are written to a temporary name and renamed, so a killed run never leaves a
half-written file that looks complete.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from linkage.errors import RunError

FORMAT_VERSION = 1
LEVELS = ("clear", "review", "block")
ACCOUNT_COLUMNS = ["account_id", "cluster_id", "score", "level"]
INDEX_COLUMNS = ["kind", "value", "account_id", "weight"]


@dataclass
class Run:
    path: Path
    accounts: pd.DataFrame  # ACCOUNT_COLUMNS; cluster_id <NA> for unclustered
    clusters: list[dict[str, Any]]
    manifest: dict[str, Any]
    signup_index: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=INDEX_COLUMNS))

    def cluster(self, cluster_id: str) -> dict[str, Any] | None:
        for c in self.clusters:
            if c["cluster_id"] == cluster_id:
                return c
        return None


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_run(
    out: str | Path,
    *,
    accounts: pd.DataFrame,
    clusters: Iterable[Mapping[str, Any]],
    manifest: Mapping[str, Any],
    signup_index: pd.DataFrame | None = None,
) -> Path:
    """Write a run directory; returns its path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    missing = [c for c in ACCOUNT_COLUMNS if c not in accounts.columns]
    if missing:
        raise RunError(f"accounts frame lacks columns {missing}")
    acc = accounts[ACCOUNT_COLUMNS].copy()
    acc["score"] = acc["score"].astype(float).round(6)
    tmp = out / "accounts.csv.tmp"
    acc.to_csv(tmp, index=False)
    os.replace(tmp, out / "accounts.csv")
    lines = [json.dumps(dict(c), ensure_ascii=False, default=_json_default) for c in clusters]
    _atomic_write_text(out / "clusters.jsonl", "\n".join(lines) + ("\n" if lines else ""))
    if signup_index is not None:
        tmpp = out / "signup_index.parquet.tmp"
        cols = [c for c in (*INDEX_COLUMNS, "holders") if c in signup_index.columns]
        signup_index[cols].to_parquet(tmpp, index=False)
        os.replace(tmpp, out / "signup_index.parquet")
    write_manifest(out, manifest)
    return out


def write_manifest(out: str | Path, manifest: Mapping[str, Any]) -> None:
    """(Re)write OUT/manifest.json atomically."""
    man = {"format_version": FORMAT_VERSION, **dict(manifest)}
    text = json.dumps(man, indent=2, ensure_ascii=False, default=_json_default)
    _atomic_write_text(Path(out) / "manifest.json", text)


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "isoformat"):
        return o.isoformat()
    if isinstance(o, set | frozenset):
        return sorted(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def iter_clusters(path: str | Path) -> Iterator[dict[str, Any]]:
    """Stream clusters.jsonl (one dict per cluster)."""
    p = Path(path) / "clusters.jsonl"
    if not p.is_file():
        raise RunError(
            f"{p} not found: is {Path(path)} a run directory written by `linkage detect`?"
        )
    with p.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise RunError(f"{p} line {n} is not JSON: {exc}") from None


def load_run(path: str | Path) -> Run:
    """Read a run directory written by :func:`write_run` (clear error if incomplete)."""
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"run directory not found: {path}")
    missing = [
        f for f in ("accounts.csv", "clusters.jsonl", "manifest.json") if not (path / f).is_file()
    ]
    if missing:
        raise RunError(f"{path} is not a complete run directory: missing {', '.join(missing)}")
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RunError(f"{path / 'manifest.json'} is not JSON: {exc}") from None
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise RunError(
            f"{path} was written by a newer linkage (format {manifest.get('format_version')}); "
            f"this one reads format {FORMAT_VERSION}"
        )
    accounts = pd.read_csv(
        path / "accounts.csv",
        dtype={"account_id": "string", "cluster_id": "string", "level": "string"},
        keep_default_na=False,
        na_values={"cluster_id": [""]},
    )
    accounts["score"] = accounts["score"].astype(float)
    clusters = list(iter_clusters(path))
    idx_path = path / "signup_index.parquet"
    signup_index = (
        pd.read_parquet(idx_path)
        if idx_path.is_file()
        else pd.DataFrame(
            {c: pd.Series(dtype="string") for c in INDEX_COLUMNS[:3]}
            | {"weight": pd.Series(dtype=float)}
        )
    )
    return Run(
        path=path,
        accounts=accounts,
        clusters=clusters,
        manifest=manifest,
        signup_index=signup_index,
    )
