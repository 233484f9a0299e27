"""A cluster as a networkx graph: its accounts and the identifiers they share.

The same picture the review console draws, for notebooks and other tools
(Gephi, Cytoscape through ``linkage export-graph``)::

    from linkage.explain.graph import cluster_graph
    g = cluster_graph("runs/today", "c42")          # a run directory and its cluster id
    g = store_cluster_graph(Store(url), "cl-000042")  # or a store's stable cluster id
    g.graph["evidence"]                              # the evidence records (JSON text)
    [n for n, d in g.nodes(data=True) if d["type"] == "identifier"]

Nodes
    ``account:<id>``: ``type="account"``, ``kind="account"``, ``account_id``, ``score``, ``level``.
    ``<kind>:<value>`` (an identifier held by at least ``min_members`` members, from
    the run's ``signup_index.parquet``): ``type="identifier"``, ``kind``, ``value``,
    ``weight`` (rarity, nats), ``holders`` (accounts holding it in the whole
    history), ``members`` (in this cluster), ``evidence`` (the evidence kind that
    cites it, or ``""``).
    ``template:<id>`` (the cluster's top prompt templates from the evidence):
    ``type="template"``, ``kind="template"``, ``skeleton``, ``requests`` (requests of
    the cluster using it), ``request_rows`` (raw input rows, comma separated).
Edges
    account — identifier: ``weight`` = the identifier's rarity weight (nats);
    account — template: ``weight`` = the template's weight when the evidence cites
    it, else 1, and ``request_rows`` = the rows that tie them (read from the
    run's requests input when it is still there).
Graph attributes
    ``cluster_id``, ``size``, ``score``, ``level``, ``run``, ``shared_identifiers``
    (how many identifiers at least ``min_members`` members share), and ``evidence``:
    the evidence records as JSON text.

Every attribute is a string or a number, so GraphML and GEXF can hold the graph as is.
:func:`read_rows` reads the raw input rows that evidence ``details`` point to.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from linkage.errors import LinkageError, RunError
from linkage.identifiers.kinds import the_kind
from linkage.store.rundir import Run, load_run

__all__ = [
    "GRAPH_FORMATS",
    "TEMPLATE_TYPE",
    "build_cluster_graph",
    "cluster_graph",
    "input_path",
    "read_rows",
    "store_cluster_graph",
    "write_graph",
]

#: file formats :func:`write_graph` writes
GRAPH_FORMATS = ("graphml", "gexf")

#: ``type`` and ``kind`` of the template nodes (and the prefix of their names): the
#: declared kind whose column holds each request's template id
#: (:mod:`linkage.identifiers.kinds`), so the evidence's template identifiers match them.
TEMPLATE_TYPE: str = the_kind("template_ids")


def cluster_graph(
    run: str | Path | Run,
    cluster_id: str,
    *,
    min_members: int = 2,
    with_rows: bool = True,
) -> nx.Graph:
    """The graph of cluster ``cluster_id`` of a run directory (or a loaded :class:`Run`).

    ``min_members``: keep identifiers held by at least this many members (2 =
    shared ones).  ``with_rows``: tie templates to the accounts that sent the
    request rows the evidence lists (reads those rows from the run's requests
    input; skipped when the input is gone).  Raises :class:`RunError` for an
    unknown cluster.
    """
    rr = run if isinstance(run, Run) else load_run(run)
    cluster = rr.cluster(str(cluster_id))
    if cluster is None:
        raise RunError(
            f"cluster {cluster_id!r} not found in {rr.path} ({len(rr.clusters)} clusters there)"
        )
    members = [str(m) for m in cluster.get("members") or ()]
    acc = rr.accounts[rr.accounts["account_id"].isin(members)]
    accounts = {
        str(a): (float(s), str(lv))
        for a, s, lv in zip(acc["account_id"], acc["score"], acc["level"], strict=True)
    }
    index = rr.signup_index[rr.signup_index["account_id"].isin(members)]
    rows = None
    if with_rows:
        rows = _template_rows(rr.manifest, cluster.get("evidence") or ())
    return build_cluster_graph(
        cluster,
        accounts=accounts,
        index=index,
        request_rows=rows,
        min_members=min_members,
        run=str(rr.path),
    )


def store_cluster_graph(store: Any, cluster_id: str, *, min_members: int = 2) -> nx.Graph:
    """The graph of a store's cluster by its **stable** id (``cl-000042``), as last seen.

    Members, levels and evidence come from the store (``Store.get_cluster``); the shared
    identifiers from the signup index of the run directory the store imported it from.
    Raises :class:`RunError` for an unknown cluster.
    """
    from sqlalchemy import select

    from linkage.store.models import RunRow

    c = store.get_cluster(cluster_id, members_limit=1_000_000)
    if c is None:
        raise RunError(f"no cluster {cluster_id!r} in the store")
    with store.engine.connect() as conn:
        run = conn.execute(
            select(RunRow.path, RunRow.manifest).where(RunRow.id == c["run_id"])
        ).first()
    members = [m["account_id"] for m in c["members"]]
    index = pd.DataFrame(columns=["kind", "value", "account_id", "weight"])
    idx_path = Path(run.path) / "signup_index.parquet" if run is not None else None
    if idx_path is not None and idx_path.is_file():
        index = pq.read_table(idx_path, filters=[("account_id", "in", members)]).to_pandas()
    return build_cluster_graph(
        {**c, "members": members},
        accounts={m["account_id"]: (m["score"], m["level"]) for m in c["members"]},
        index=index,
        request_rows=_template_rows(run.manifest or {}, c["evidence"]) if run else None,
        min_members=min_members,
        run=run.path if run is not None else "",
    )


def build_cluster_graph(
    cluster: Mapping[str, Any],
    *,
    accounts: Mapping[str, tuple[float, str]],
    index: pd.DataFrame,
    request_rows: pd.DataFrame | None = None,
    min_members: int = 2,
    max_identifiers: int | None = None,
    run: str = "",
) -> nx.Graph:
    """The graph of one cluster from its parts (what :func:`cluster_graph` reads).

    ``cluster``: ``cluster_id, size, score, level, members, evidence``;
    ``accounts``: member -> (score, level); ``index``: signup-index rows
    (``kind, value, account_id, weight[, holders]``) of the members;
    ``request_rows``: raw request rows (``_row, account_id``) the evidence cites;
    ``max_identifiers``: keep only the shared identifiers that tie the most members,
    weighted by rarity (None = all; ``g.graph["shared_identifiers"]`` counts them all).
    """
    members = [str(m) for m in cluster.get("members") or ()]
    evidence = [dict(e) for e in cluster.get("evidence") or () if isinstance(e, Mapping)]
    g = nx.Graph(
        cluster_id=str(cluster.get("cluster_id", "")),
        size=int(cluster.get("size") or len(members)),
        score=float(cluster.get("score") or 0.0),
        level=str(cluster.get("level") or ""),
        run=run,
        shared_identifiers=0,
        evidence=json.dumps(evidence, ensure_ascii=False, default=str),
    )
    for m in members:
        score, level = accounts.get(m, (float(cluster.get("score") or 0.0), ""))
        g.add_node(
            f"account:{m}", type="account", kind="account", account_id=m, score=score, level=level
        )
    cited, tpl_weight = _cited(evidence)
    if len(index):
        _add_identifiers(
            g,
            index,
            members,
            cited=cited,
            min_members=min_members,
            max_identifiers=max_identifiers,
        )
    _add_templates(g, evidence, request_rows, members, cited=cited, tpl_weight=tpl_weight)
    return g


def _cited(
    evidence: Iterable[Mapping[str, Any]],
) -> tuple[dict[tuple[str, str], str], dict[str, float]]:
    """What the evidence cites: the evidence kind per ``(kind, value)`` identifier (first
    mention wins), and the weight (nats, 1 when unsaid) per cited template id."""
    cited: dict[tuple[str, str], str] = {}
    tpl_weight: dict[str, float] = {}
    for e in evidence:
        for item in (e.get("details") or {}).get("identifiers") or ():
            if isinstance(item, Mapping):
                key = (str(item.get("kind")), str(item.get("value")))
                cited.setdefault(key, str(e.get("kind", "")))
                if key[0] == TEMPLATE_TYPE:
                    tpl_weight[key[1]] = float(item.get("weight_nats") or 1.0)
    return cited, tpl_weight


def _index_rows(index: pd.DataFrame, members: Sequence[str]) -> pd.DataFrame:
    """The members' signup-index rows as plain typed columns, one per (kind, value,
    account) (``holders`` 0 when the index has none)."""
    idx = index[index["account_id"].astype(str).isin(members)]
    return pd.DataFrame(
        {
            "kind": idx["kind"].astype(str).to_numpy(),
            "value": idx["value"].astype(str).to_numpy(),
            "account_id": idx["account_id"].astype(str).to_numpy(),
            "weight": idx["weight"].astype(float).to_numpy(),
            "holders": (
                idx["holders"].to_numpy() if "holders" in idx.columns else np.zeros(len(idx))
            ),
        }
    ).drop_duplicates(["kind", "value", "account_id"])


def _shared(idx: pd.DataFrame, *, min_members: int, has_holders: bool) -> pd.DataFrame:
    """Per (kind, value) held by at least ``min_members`` members: ``members``, ``weight``
    and ``holders`` (the members when the index records no holders)."""
    per = idx.groupby(["kind", "value"], sort=True).agg(
        members=("account_id", "size"), weight=("weight", "max"), holders=("holders", "max")
    )
    per = per[per["members"] >= min_members]
    if not has_holders:
        per["holders"] = per["members"]
    return per


def _add_identifiers(
    g: nx.Graph,
    index: pd.DataFrame,
    members: Sequence[str],
    *,
    cited: Mapping[tuple[str, str], str],
    min_members: int,
    max_identifiers: int | None,
) -> None:
    """Add the shared identifier nodes (the strongest ``max_identifiers`` of them, by
    members x rarity) and their account edges; count them all in ``shared_identifiers``."""
    idx = _index_rows(index, members)
    per = _shared(idx, min_members=min_members, has_holders="holders" in index.columns)
    g.graph["shared_identifiers"] = len(per)
    if max_identifiers is not None and len(per) > max_identifiers:
        strength = per["members"] * per["weight"]
        per = per.loc[strength.sort_values(ascending=False, kind="stable").index]
        per = per.iloc[:max_identifiers]
    g.add_nodes_from(
        (
            f"{k}:{v}",
            {
                "type": "identifier",
                "kind": k,
                "value": v,
                "weight": float(w),
                "holders": int(h),
                "members": int(n),
                "evidence": cited.get((k, v), ""),
            },
        )
        for (k, v), n, w, h in zip(
            per.index, per["members"], per["weight"], per["holders"], strict=True
        )
    )
    edges = idx.merge(per[[]], left_on=["kind", "value"], right_index=True)
    g.add_edges_from(
        (f"account:{a}", f"{k}:{v}", {"weight": float(w)})
        for a, k, v, w in zip(
            edges["account_id"].to_numpy(dtype=object),
            edges["kind"].to_numpy(dtype=object),
            edges["value"].to_numpy(dtype=object),
            edges["weight"].to_numpy(dtype=float),
            strict=True,
        )
    )


def _add_templates(
    g: nx.Graph,
    evidence: Iterable[Mapping[str, Any]],
    request_rows: pd.DataFrame | None,
    members: Sequence[str],
    *,
    cited: Mapping[tuple[str, str], str],
    tpl_weight: Mapping[str, float],
) -> None:
    """Add a node per template the evidence lists, tied to the members that sent its
    request rows (``request_rows`` says who sent which; none: no template edges)."""
    owner: dict[int, str] = {}
    if request_rows is not None and len(request_rows):
        owner = dict(
            zip(
                request_rows["_row"].astype(int),
                request_rows["account_id"].astype(str),
                strict=True,
            )
        )
    member_set = set(members)
    for t in _templates(evidence):
        tid = str(t.get("template_id"))
        node = f"{TEMPLATE_TYPE}:{tid}"
        rows = [int(r) for r in t.get("request_rows") or ()]
        g.add_node(
            node,
            type=TEMPLATE_TYPE,
            kind=TEMPLATE_TYPE,
            value=tid,
            skeleton=str(t.get("skeleton", "")),
            requests=int(t.get("requests_in_cluster") or 0),
            request_rows=",".join(map(str, rows)),
            weight=tpl_weight.get(tid, 1.0),
            evidence=cited.get((TEMPLATE_TYPE, tid), ""),
        )
        by_account: dict[str, list[int]] = {}
        for r in rows:
            a = owner.get(r)
            if a in member_set:
                by_account.setdefault(a, []).append(r)
        for a, rs in by_account.items():
            g.add_edge(
                f"account:{a}",
                node,
                weight=tpl_weight.get(tid, 1.0),
                request_rows=",".join(map(str, rs)),
            )


def _templates(evidence: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The distinct templates the evidence lists (first mention wins)."""
    seen: dict[str, Mapping[str, Any]] = {}
    for e in evidence:
        for t in (e.get("details") or {}).get("templates") or ():
            if isinstance(t, Mapping) and t.get("template_id") is not None:
                seen.setdefault(str(t["template_id"]), t)
    return list(seen.values())


def _template_rows(
    manifest: Mapping[str, Any], evidence: Iterable[Mapping[str, Any]]
) -> pd.DataFrame | None:
    rows = sorted({int(r) for t in _templates(evidence) for r in t.get("request_rows") or ()})
    if not rows:
        return None
    try:
        return read_rows(manifest, "requests", rows, columns=["account_id"])
    except LinkageError:
        return None  # the input moved or changed: the graph is drawn without those edges


def input_path(manifest: Mapping[str, Any], table: str) -> Path:
    """The input file (or directory of Parquet parts) a run read ``table`` from."""
    info = (manifest.get("inputs") or {}).get(table) or {}
    path = info.get("path")
    if not path:
        raise RunError(f"the run's manifest records no {table} input")
    p = Path(path)
    if not p.exists():
        raise RunError(f"the run's {table} input {p} is not on this machine any more")
    size = info.get("bytes")
    if p.is_file() and size is not None and p.stat().st_size != int(size):
        raise RunError(
            f"the run's {table} input {p} changed since the run ({p.stat().st_size} bytes, "
            f"the run read {size}): its rows no longer match the evidence"
        )
    return p


def read_rows(
    manifest: Mapping[str, Any],
    table: str,
    rows: Sequence[int],
    *,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Raw rows of an input table by their 0-based data row number (``_row``).

    ``manifest`` is the run's manifest (it records where each input was read);
    rows past the end are left out.  Only the Parquet row groups holding the rows
    are read; CSV and JSON lines are streamed up to the last row wanted.  Raises
    :class:`RunError` when the input is gone or changed size since the run.
    """
    path = input_path(manifest, table)
    wanted = sorted({int(r) for r in rows if int(r) >= 0})
    if not wanted:
        return pd.DataFrame(columns=["_row", *(columns or [])])
    name = path.name.lower()
    try:
        if path.is_dir() or name.endswith(".parquet"):
            parts = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
            out = _parquet_rows(parts, wanted, columns)
        elif ".csv" in name:
            out = _csv_rows(path, wanted, columns)
        else:
            out = _jsonl_rows(path, wanted, columns)
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise RunError(f"cannot read rows of {path}: {exc}") from None
    return out.reset_index(drop=True)


#: a chunk of an input read in order: its row count, and how to read some of its rows
#: (0-based within the chunk) as a table of the wanted columns
_Chunk = tuple[int, Callable[[pa.Array], pa.Table]]


def _take_rows(chunks: Iterable[_Chunk], wanted: Sequence[int]) -> pd.DataFrame:
    """The ``wanted`` rows (sorted, 0-based across the chunks) with their ``_row``; the
    chunks after the one that holds the last wanted row are never read."""
    frames = []
    start = 0
    for n, read in chunks:
        take = [r - start for r in wanted if start <= r < start + n]
        if take:
            f = read(pa.array(take)).to_pandas()
            f.insert(0, "_row", [start + r for r in take])
            frames.append(f)
        start += n
        if start > wanted[-1]:
            break
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["_row"])


def _parquet_rows(
    parts: Sequence[Path], wanted: Sequence[int], columns: Sequence[str] | None
) -> pd.DataFrame:
    return _take_rows(_parquet_chunks(parts, columns), wanted)


def _parquet_chunks(parts: Sequence[Path], columns: Sequence[str] | None) -> Iterator[_Chunk]:
    """The row groups of the Parquet parts in order (a part is opened when reached)."""
    for part in parts:
        pf = pq.ParquetFile(part)
        cols = [c for c in columns if c in pf.schema_arrow.names] if columns else None
        for i in range(pf.num_row_groups):
            yield (
                pf.metadata.row_group(i).num_rows,
                partial(_take_group, pf, i, cols),
            )


def _take_group(pf: pq.ParquetFile, i: int, cols: list[str] | None, take: pa.Array) -> pa.Table:
    return pf.read_row_group(i, columns=cols).take(take)


def _csv_rows(path: Path, wanted: Sequence[int], columns: Sequence[str] | None) -> pd.DataFrame:
    reader = pacsv.open_csv(
        pa.input_stream(str(path), compression="detect"),
        read_options=pacsv.ReadOptions(block_size=1 << 22),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            strings_can_be_null=False,
            column_types={f.name: pa.string() for f in _csv_schema(path)},
        ),
    )
    return _take_rows(
        ((batch.num_rows, partial(_take_batch, batch, columns)) for batch in reader), wanted
    )


def _take_batch(batch: pa.RecordBatch, columns: Sequence[str] | None, take: pa.Array) -> pa.Table:
    t = pa.Table.from_batches([batch]).take(take)
    if columns:
        t = t.select([c for c in columns if c in t.column_names])
    return t


def _csv_schema(path: Path) -> list[pa.Field]:
    reader = pacsv.open_csv(pa.input_stream(str(path), compression="detect"))
    return list(reader.schema)


def _jsonl_rows(path: Path, wanted: Sequence[int], columns: Sequence[str] | None) -> pd.DataFrame:
    want = set(wanted)
    last = wanted[-1]
    records = []
    n = 0
    with (
        pa.input_stream(str(path), compression="detect") as raw,
        io.TextIOWrapper(raw, encoding="utf-8", errors="replace") as text,
    ):
        for line in text:
            if not line.strip():
                continue
            if n in want:
                rec = json.loads(line)
                if columns:
                    rec = {c: rec.get(c) for c in columns}
                records.append({"_row": n, **rec})
            n += 1
            if n > last:
                break
    return pd.DataFrame.from_records(records)


def write_graph(g: nx.Graph, out: str | Path, *, fmt: str = "graphml") -> Path:
    """Write ``g`` as GraphML or GEXF (both open in Gephi and Cytoscape); returns the path."""
    if fmt not in GRAPH_FORMATS:
        raise LinkageError(f"unknown graph format {fmt!r}: use one of {', '.join(GRAPH_FORMATS)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    if fmt == "graphml":
        nx.write_graphml(g, tmp)
    else:
        nx.write_gexf(g, tmp)
    tmp.replace(out)
    return out
