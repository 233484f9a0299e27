"""The run directory: what ``linkage detect`` writes and everything downstream reads.

Layout (see docs/ARCHITECTURE.md)::

    OUT/accounts.csv          account_id, cluster_id, score, level   (every input account)
    OUT/clusters.jsonl        one cluster per line: cluster_id, size, score, level, members, evidence
    OUT/manifest.json         settings, input hashes, counts, stage timings, ingest report,
                              and ``files``: bytes, rows and sha256 of the three files above
                              (checked whole by :func:`verify_run` before a run is imported)
    OUT/signup_index.parquet  kind, value, account_id, weight  (for signup verification)
    OUT/communities.parquet   Leiden's membership before weak members are released
                              (graph runs; ``linkage detect --previous OUT`` warm-starts from it)
    OUT/quarantine/*.csv      rejected input rows (written by ingest)

Files are written to a temporary name and renamed, so a killed run never leaves a
half-written file that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import math
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
#: files whose bytes, rows and sha256 ``write_run`` records in ``manifest["files"]``
CHECKED_FILES = ("accounts.csv", "clusters.jsonl", "signup_index.parquet")


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
    files = {
        "accounts.csv": file_record(out / "accounts.csv", rows=len(acc)),
        "clusters.jsonl": file_record(out / "clusters.jsonl", rows=len(lines)),
    }
    if signup_index is not None:
        tmpp = out / "signup_index.parquet.tmp"
        cols = [c for c in (*INDEX_COLUMNS, "holders") if c in signup_index.columns]
        signup_index[cols].to_parquet(tmpp, index=False)
        os.replace(tmpp, out / "signup_index.parquet")
        files["signup_index.parquet"] = file_record(
            out / "signup_index.parquet", rows=len(signup_index)
        )
    else:
        (out / "signup_index.parquet").unlink(missing_ok=True)  # never a stale one
    write_manifest(out, {**dict(manifest), "files": files})
    return out


def file_record(path: Path, *, rows: int) -> dict[str, Any]:
    """``{"bytes", "rows", "sha256"}`` of one run file (what :func:`verify_run` checks)."""
    return {"bytes": path.stat().st_size, "rows": int(rows), "sha256": sha256_file(path)}


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(out: str | Path, manifest: Mapping[str, Any]) -> None:
    """(Re)write OUT/manifest.json atomically.

    A manifest without ``files`` keeps the ``files`` block :func:`write_run` recorded
    (``detect`` rewrites the manifest with its final timings after the files are written).
    """
    man = {"format_version": FORMAT_VERSION, **dict(manifest)}
    path = Path(out) / "manifest.json"
    if "files" not in man and path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = {}
        if isinstance(old, dict) and isinstance(old.get("files"), dict):
            man["files"] = old["files"]
    text = json.dumps(man, indent=2, ensure_ascii=False, default=_json_default)
    _atomic_write_text(path, text)


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


@dataclass(frozen=True)
class Verified:
    """A run that passed :func:`verify_run`: the run, its manifest digest and how it was checked."""

    run: Run
    digest: str  # sha256 of manifest.json (which holds the files' checksums)
    checked: str  # "checksums" (files block present) or "counts" (run from an older linkage)


def _failed(path: Path, why: str) -> RunError:
    """The error :func:`verify_run` raises for ``path``."""
    return RunError(f"run {path} failed verification: {why}")


def _read_manifest(path: Path) -> tuple[dict[str, Any], str]:
    """``(manifest, sha256 of manifest.json)`` of a run directory."""
    man_path = path / "manifest.json"
    if not man_path.is_file():
        raise RunError(
            f"{path} is not a run directory written by `linkage detect`: no manifest.json"
        )
    digest = sha256_file(man_path)
    try:
        man = json.loads(man_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _failed(path, f"manifest.json is not JSON ({exc})") from None
    if not isinstance(man, dict):
        raise _failed(path, "manifest.json is not an object")
    return man, digest


def _checksum_problems(path: Path, files: dict[str, Any]) -> list[str]:
    """Each file the manifest's ``files`` block lists that is missing, or differs from
    its recorded bytes or sha256."""
    problems: list[str] = []
    for name in CHECKED_FILES:
        rec = files.get(name)
        if not isinstance(rec, dict):
            continue
        p = path / name
        if not p.is_file():
            problems.append(f"{name} is missing (the manifest lists it)")
            continue
        size = p.stat().st_size
        if size != rec.get("bytes"):
            problems.append(f"{name} has {size} bytes, the manifest says {rec.get('bytes')}")
        elif sha256_file(p) != rec.get("sha256"):
            problems.append(f"{name} does not match its sha256 in the manifest (edited?)")
    return problems


def _load_verified(path: Path) -> Run:
    """:func:`load_run`, any failure to read a file said as a verification failure."""
    try:
        return load_run(path)
    except RunError as exc:
        raise _failed(path, str(exc)) from None
    except (ValueError, TypeError, OSError) as exc:  # pandas / pyarrow parse errors
        raise _failed(
            path,
            f"a file cannot be read ({exc.__class__.__name__}: {str(exc).splitlines()[0][:200]})",
        ) from None


def _count_problems(run: Run, man: dict[str, Any], files: Any) -> list[str]:
    """Rows and clusters read against the manifest's ``files`` rows (when recorded)
    and its ``counts``; a run without accounts."""
    problems: list[str] = []
    if isinstance(files, dict):
        rows = {
            "accounts.csv": len(run.accounts),
            "clusters.jsonl": len(run.clusters),
            "signup_index.parquet": len(run.signup_index),
        }
        for name, n in rows.items():
            want = (files.get(name) or {}).get("rows")
            if want is not None and n != want:
                problems.append(f"{name} has {n} rows, the manifest says {want}")
    counts = man.get("counts")
    if not isinstance(counts, dict):
        counts = {}
    n_acc = len(run.accounts)
    if n_acc == 0:
        problems.append("accounts.csv has no accounts")
    if counts.get("accounts") is not None and counts["accounts"] != n_acc:
        problems.append(
            f"accounts.csv has {n_acc} rows, manifest counts.accounts says {counts['accounts']}"
        )
    if counts.get("clusters") is not None and counts["clusters"] != len(run.clusters):
        problems.append(
            f"clusters.jsonl has {len(run.clusters)} clusters, manifest counts.clusters says "
            f"{counts['clusters']}"
        )
    return problems


def _content_problems(run: Run) -> list[str]:
    """Accounts with a bad level, score or id, or naming a cluster that is not in
    clusters.jsonl; the first cluster line without an id or a finite score."""
    problems: list[str] = []
    acc = run.accounts
    bad_level = ~acc["level"].isin(LEVELS)
    if bool(bad_level.any()):
        problems.append(f"accounts.csv: {int(bad_level.sum())} rows with a level not in {LEVELS}")
    score = pd.to_numeric(acc["score"], errors="coerce")
    bad_score = ~score.between(0.0, 1.0)
    if bool(bad_score.any()):
        problems.append(f"accounts.csv: {int(bad_score.sum())} rows without a score in [0, 1]")
    if acc["account_id"].isna().any() or acc["account_id"].duplicated().any():
        problems.append("accounts.csv: empty or repeated account ids")
    known = {str(c.get("cluster_id")) for c in run.clusters}
    orphans = set(acc["cluster_id"].dropna().astype(str)) - known
    if orphans:
        problems.append(
            f"accounts.csv names {len(orphans)} cluster(s) missing from clusters.jsonl "
            f"(e.g. {sorted(orphans)[0]!r})"
        )
    for c in run.clusters:
        if not isinstance(c, dict) or "cluster_id" not in c:
            problems.append("clusters.jsonl: a line without cluster_id")
            break
        s = c.get("score")
        if not isinstance(s, int | float) or not math.isfinite(s):
            problems.append(f"clusters.jsonl: cluster {c['cluster_id']!r} has no finite score")
            break
    return problems


def verify_run(path: str | Path) -> Verified:
    """Check a run directory whole before it is served; RunError says what is wrong.

    * every file the manifest's ``files`` block lists exists with its bytes, sha256 and
      row count (an empty, truncated or edited file is refused);
    * ``accounts.csv`` has ``counts.accounts`` rows and at least one, each with a level
      in ``clear|review|block`` and a finite score in [0, 1]; ``clusters.jsonl`` has
      ``counts.clusters`` clusters and every account's cluster is among them.

    A run written before checksums were recorded (no ``files`` block) is checked on
    its counts and contents only (``checked == "counts"``).
    """
    path = Path(path)
    man, digest = _read_manifest(path)
    files = man.get("files")
    checked = "checksums" if isinstance(files, dict) else "counts"
    if isinstance(files, dict):
        problems = _checksum_problems(path, files)
        if problems:  # do not even parse files that are not the ones detect wrote
            raise _failed(path, "; ".join(problems))
    run = _load_verified(path)
    problems = _count_problems(run, man, files) + _content_problems(run)
    if problems:
        raise _failed(path, "; ".join(problems))
    return Verified(run=run, digest=digest, checked=checked)
