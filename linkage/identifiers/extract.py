"""The identifiers stage: ``extract(dataset) -> Identifiers``.

Steps:

1. prompt templates and prompt signals (numpy, :mod:`~linkage.identifiers.templates`,
   :mod:`~linkage.identifiers.prompts`): per request a template id, a topic and a
   reasoning flag; the prompt column is never copied;
2. the aggregation, one SQL path generated from the kind declarations
   (:func:`linkage.identifiers.sql.run_aggregation` on ``settings.engine``, DuckDB by
   default): the dataset's tables (plus the per-request template, topic and
   reasoning columns) are handed to the engine as Arrow tables, and it returns the
   edges of every kind (request rows and sign-up attributes together, and the
   optional identifiers table as ``x:<kind>``) and per-account aggregates;
3. per-request timing features (:func:`~linkage.identifiers.timing.timing_features`);
4. edges in their public order and the per-account feature table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from linkage.dataset import Dataset
from linkage.engine import open_engine
from linkage.identifiers._codes import (
    NAT,
    NS_PER_HOUR,
    Coded,
    as_string_series,
    column,
    epoch_ns,
    ns_to_seconds,
    small_codes,
)
from linkage.identifiers.edges import edges_from_table
from linkage.identifiers.features import FEATURE_COLUMNS, ratio
from linkage.identifiers.kinds import KINDS, kind, kinds_with, the_kind
from linkage.identifiers.sql import DUCKDB_THREADS, run_aggregation
from linkage.identifiers.timing import timing_features
from linkage.memory import release_memory
from linkage.settings import IdentifierSettings

if TYPE_CHECKING:  # the template machinery is imported lazily (see extract)
    from linkage.identifiers.templates import TemplateAssignment

__all__ = ["EXTRACT_STEPS", "TEMPLATE_COLUMNS", "Identifiers", "extract"]

TEMPLATE_COLUMNS: tuple[str, ...] = (
    "template_id",
    "skeleton",
    "example",
    "n_requests",
    "n_accounts",
    "n_variants",
)


@dataclass
class Identifiers:
    """Output of :func:`extract` (see docs/ARCHITECTURE.md, "Identifiers").

    - ``edges``: ``account_id, kind, value, n, first_ts, last_ts``: one row per
      (account, kind, value); ``n`` (int64) = request rows / observations behind it;
    - ``features``: index ``account_id``, one float64 row per account, NaN = unknown
      (columns: :data:`linkage.identifiers.features.FEATURE_COLUMNS`);
    - ``templates``: ``template_id, skeleton, example, n_requests, n_accounts``
      (+ ``n_variants`` from the template module);
    - ``request_template``: template id per requests row (aligned to ``dataset.requests.index``).
    """

    edges: pd.DataFrame
    features: pd.DataFrame
    templates: pd.DataFrame
    request_template: pd.Series


#: The steps of :func:`extract`, as its ``progress`` callback names them.
EXTRACT_STEPS = (
    "prompt templates",
    "prompt signals",
    "identifier aggregation",
    "tokens and timing",
    "edges and features",
)

#: Raw columns of the dataset the SQL reads (the kinds' sources and the token counts).
_REQUEST_RAW = tuple(
    dict.fromkeys(c for k in KINDS if (c := k.request_column) and not k.written_by_stage)
)
#: Columns the stage writes itself (integer codes into a vocabulary), and their kinds.
_CODED = tuple(str(k.request_column) for k in KINDS if k.request_column and k.written_by_stage)
_TEMPLATE = the_kind("template_ids")
_TOPIC = the_kind("topic_ids")
_ACCOUNT_RAW = tuple(dict.fromkeys(c for k in KINDS if (c := k.accounts_column)))


def _arrow(values: pd.Series) -> pa.Array | pa.ChunkedArray:
    """A string column as Arrow (zero-copy for pyarrow-backed pandas strings)."""
    arr = pa.array(values, from_pandas=True)
    if pa.types.is_dictionary(arr.type) or pa.types.is_string(arr.type):
        return arr
    if pa.types.is_large_string(arr.type) or pa.types.is_null(arr.type):
        return arr.cast(pa.string())
    return pa.array(as_string_series(values), from_pandas=True)


def _ns_array(ns: np.ndarray) -> pa.Array:
    return pa.array(ns, type=pa.int64(), mask=ns == NAT)


def _code_array(codes: np.ndarray) -> pa.Array:
    """Per-row integer codes (-1 unknown → NULL)."""
    return pa.array(codes.astype(np.int32, copy=False), mask=codes < 0)


def extract(
    dataset: Dataset,
    *,
    settings: IdentifierSettings,
    seed: int = 0,
    progress: Callable[[int, int, str], None] | None = None,
) -> Identifiers:
    """Normalise every identifier, aggregate requests and build edges and features.

    ``progress(done, total, what)`` is called as each of the stage's steps starts.
    """

    def step(k: int) -> None:
        if progress is not None:
            progress(k, len(EXTRACT_STEPS), EXTRACT_STEPS[k])

    # Imported here so the normalisers stay importable without the template machinery.
    from linkage.identifiers.templates import factorize_text

    accounts, requests = dataset.accounts, dataset.requests
    account_ids = pd.Index(as_string_series(accounts["account_id"]).to_numpy(dtype=object))
    account_arrow = pa.array(account_ids.to_numpy(), type=pa.string())
    n_acc = len(account_ids)

    step(0)
    # templates: the heaviest part of the stage, so freed pages go back first
    release_memory()
    prompts = column(requests, "prompt")
    factorized = factorize_text(prompts)  # shared by the template and prompt-signal stages
    assignment, tpl, request_template = _request_templates(
        prompts, factorized, requests.index, settings=settings, seed=seed
    )

    step(1)
    reasoning, prompt_known, topic = _request_signals(prompts, factorized)
    del factorized
    release_memory()

    step(2)
    req_table, acc, ts_ns = _request_table(
        requests, account_ids, tpl, topic, reasoning, prompt_known
    )
    del reasoning
    acc_table, created_ns = _account_table(accounts, account_arrow)
    agg = _aggregate(req_table, acc_table, _identifier_table(dataset), settings=settings)
    del req_table, acc_table

    step(3)
    # timing (hour entropy, active days/hours, first/last, model pivot) per request
    model = Coded.of(column(requests, "model"))
    timing = timing_features(acc, ts_ns, n_acc, model.codes, model.n_values)
    del model, acc, ts_ns

    step(4)
    edges = edges_from_table(
        agg["edges"],
        account_arrow,
        agg["coded_edges"],
        {_TEMPLATE: pa.array(tpl.values, type=pa.string())},
    )
    features = _feature_frame(agg, timing, created_ns, account_ids)
    templates = _templates_frame(assignment.templates, agg["coded_edges"], tpl.values)
    del agg, timing
    release_memory()  # the SQL outputs' Arrow buffers go back before the graph stage
    return Identifiers(
        edges=edges,
        features=features,
        templates=templates,
        request_template=request_template,
    )


def _request_templates(
    prompts: pd.Series,
    factorized: tuple[np.ndarray, pa.Array],
    index: pd.Index,
    *,
    settings: IdentifierSettings,
    seed: int,
) -> tuple[TemplateAssignment, Coded, pd.Series]:
    """Step 0: the template assignment, the template of every request as integer codes,
    and as the ``request_template`` column (categorical on ``index``)."""
    from linkage.identifiers.templates import assign_templates

    assignment = assign_templates(
        prompts, settings=settings.templates, seed=seed, factorized=factorized
    )
    # integer codes all the way: the per-request id strings are never materialised
    # (ids are 48-bit content hashes: re-coding merges the practically impossible collision)
    tpl = Coded(small_codes(assignment.codes, len(assignment.ids)), assignment.ids)
    tpl = tpl.remap(*pd.factorize(tpl.values))
    request_template = pd.Series(
        pd.Categorical.from_codes(
            tpl.codes, categories=pd.Index(tpl.values, dtype="string"), validate=False
        ),
        index=index,
        name="template_id",
    )
    return assignment, tpl, request_template


def _request_signals(
    prompts: pd.Series, factorized: tuple[np.ndarray, pa.Array]
) -> tuple[np.ndarray, np.ndarray, Coded]:
    """Step 1: (reasoning flag, prompt present, topic) of every request."""
    from linkage.identifiers.prompts import prompt_signals

    signals = prompt_signals(prompts, factorized=factorized)
    prompt_known = prompts.notna().to_numpy()
    reasoning = signals["reasoning"].astype("boolean").to_numpy(dtype=bool, na_value=False)
    topic = Coded.of(as_string_series(signals["topic"]).mask(~prompt_known))
    return reasoning, prompt_known, topic


def _request_table(
    requests: pd.DataFrame,
    account_ids: pd.Index,
    tpl: Coded,
    topic: Coded,
    reasoning: np.ndarray,
    prompt_known: np.ndarray,
) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """The requests input of the aggregation (raw kind columns, tokens, the stage's own
    template, topic and reasoning columns), and each request's account code (position
    in the accounts table; -1: unknown account or time) and time (epoch ns)."""
    ts_ns = epoch_ns(requests["ts"]) if len(requests) else np.empty(0, np.int64)
    acc = account_ids.get_indexer(requests["account_id"]).astype(np.int32)
    acc[ts_ns == NAT] = -1
    req_cols: dict[str, object] = {"account_code": acc, "ts_ns": _ns_array(ts_ns)}
    req_cols |= {c: _arrow(requests[c]) for c in _REQUEST_RAW if c in requests.columns}
    if "response_tokens" in requests.columns:
        req_cols["response_tokens"] = pa.array(
            pd.to_numeric(requests["response_tokens"], errors="coerce").astype("Int64"),
            type=pa.int64(),
            from_pandas=True,
        )
    req_cols[str(kind(_TEMPLATE).request_column)] = _code_array(tpl.codes)
    req_cols[str(kind(_TOPIC).request_column)] = _code_array(topic.codes)
    req_cols["reasoning"] = pa.array(reasoning, mask=~prompt_known)
    return pa.table(req_cols), acc, ts_ns


def _account_table(accounts: pd.DataFrame, account_arrow: pa.Array) -> tuple[pa.Table, np.ndarray]:
    """The accounts input of the aggregation (account codes are positions), and each
    account's sign-up time (epoch ns)."""
    created_ns = epoch_ns(column(accounts, "created_at"))
    acc_cols: dict[str, object] = {
        "account_id": account_arrow,
        "account_code": np.arange(len(account_arrow), dtype=np.int32),
        "created_ns": _ns_array(created_ns),
    }
    acc_cols |= {c: _arrow(accounts[c]) for c in _ACCOUNT_RAW if c in accounts.columns}
    return pa.table(acc_cols), created_ns


def _identifier_table(dataset: Dataset) -> pa.Table | None:
    """The optional identifiers input of the aggregation (None if the dataset has none)."""
    idents = dataset.identifiers
    if idents is None or not len(idents):
        return None
    its = epoch_ns(idents["ts"]) if "ts" in idents.columns else np.full(len(idents), NAT)
    return pa.table(
        {
            "account_id": _arrow(idents["account_id"]),
            "kind": _arrow(idents["kind"]),
            "value": _arrow(idents["value"]),
            "ts_ns": _ns_array(its),
        }
    )


def _aggregate(
    requests: pa.Table,
    accounts: pa.Table,
    identifiers: pa.Table | None,
    *,
    settings: IdentifierSettings,
) -> dict[str, pa.Table]:
    """Step 2: the SQL aggregation on ``settings.engine``."""
    engine_options = {"threads": DUCKDB_THREADS} if settings.engine == "duckdb" else {}
    engine = open_engine(settings.engine, **engine_options)
    try:
        return run_aggregation(
            engine,
            requests=requests,
            accounts=accounts,
            identifiers=identifiers,
            coded=_CODED,
            settings=settings,
        )
    finally:
        engine.close()


def _feature_frame(
    agg: dict[str, pa.Table],
    timing: pd.DataFrame,
    created_ns: np.ndarray,
    account_ids: pd.Index,
) -> pd.DataFrame:
    """The per-account feature table: the SQL outputs' features, the timing features
    and the sign-up times, in :data:`FEATURE_COLUMNS` order."""
    feats = _features(agg, len(account_ids))
    for c in timing.columns:
        feats[c] = timing[c].to_numpy(np.float64)
    feats["created_ts"] = ns_to_seconds(created_ns)
    first_ns = feats["first_ts"] * 1e9
    feats["signup_to_first_hours"] = (first_ns - created_ns.astype(np.float64)) / NS_PER_HOUR
    feats["signup_to_first_hours"][created_ns == NAT] = np.nan
    return pd.DataFrame(
        {c: np.asarray(feats[c], dtype=np.float64) for c in FEATURE_COLUMNS},
        index=pd.Index(account_ids, dtype="string", name="account_id"),
    )


def _codes(account_code: pa.ChunkedArray) -> np.ndarray:
    return account_code.to_numpy().astype(np.int64, copy=False)


def _per_account(
    table: pa.Table, name: str, codes: np.ndarray, n_acc: int, fill: float = 0.0
) -> np.ndarray:
    out = np.full(n_acc, fill, dtype=np.float64)
    values = table.column(name).to_numpy(zero_copy_only=False)
    out[codes] = values.astype(np.float64)
    return out


def _features(agg: dict[str, pa.Table], n_acc: int) -> dict[str, np.ndarray]:
    """Per-account features from the SQL outputs (request-kind counts, activity, edges,
    sign-up attributes)."""
    feats: dict[str, np.ndarray] = {}
    act = agg["account_activity"]
    a = _codes(act.column("account_code"))
    feats["n_requests"] = _per_account(act, "n_requests", a, n_acc)
    feats["mean_response_tokens"] = ratio(
        _per_account(act, "sum_tokens", a, n_acc), _per_account(act, "n_tokens", a, n_acc)
    )
    feats["reasoning_share"] = ratio(
        _per_account(act, "n_reasoning", a, n_acc), _per_account(act, "n_prompts", a, n_acc)
    )

    kinds = agg["account_kinds"]
    kind_col = kinds.column("kind")

    def stats(kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(distinct values, top value's rows, rows with a known value) per account."""
        sub = kinds.filter(pc.equal(kind_col, kind))
        codes = _codes(sub.column("account_code"))
        distinct = _per_account(sub, "n_values", codes, n_acc)
        known = _per_account(sub, "n_rows", codes, n_acc)
        distinct[known == 0] = np.nan
        return distinct, _per_account(sub, "top_n", codes, n_acc), known

    # the per-kind features its declaration asks for (kinds.ROLES), in declaration order
    for k in KINDS:
        if not k.roles & {"count", "churn", "top_share", "repetition"}:
            continue
        n_values, top, known = stats(k.name)
        if "count" in k.roles:
            feats[f"n_{k.name}s"] = n_values
        if "churn" in k.roles:
            feats[f"{k.name}_churn"] = ratio(n_values, known)
        if "top_share" in k.roles:
            feats[f"{k.name}_top_share"] = ratio(top, known)
        if "repetition" in k.roles:
            feats[f"{k.name}_repetition"] = 1.0 - ratio(n_values, known)

    # "missing": the account has no value of the kind at all (request or sign-up); NaN
    # for every account when the dataset has none (then it says nothing about anyone)
    edge_table = agg["edges"]
    for name in kinds_with("missing"):
        feature = f"{name}_missing"
        holders = edge_table.filter(pc.equal(edge_table.column("kind"), name))
        if holders.num_rows:
            has = np.zeros(n_acc, dtype=bool)
            has[_codes(holders.column("account_code"))] = True
            feats[feature] = (~has).astype(np.float64)
        else:
            feats[feature] = np.full(n_acc, np.nan)

    attrs = agg["account_attributes"]
    codes = _codes(attrs.column("account_code"))
    for name in ("disposable", "alias", "freemail"):
        col = f"email_{name}"
        out = np.full(n_acc, np.nan)
        if col in attrs.column_names:
            values = attrs.column(col).cast(pa.float64()).to_numpy(zero_copy_only=False)
            out[codes] = values
        feats[col] = out
    return feats


def _templates_frame(
    templates: pd.DataFrame, coded_edges: pa.Table, values: np.ndarray
) -> pd.DataFrame:
    """The template module's table (most requested first) plus ``n_accounts``.

    ``n_accounts``: distinct accounts using each template (its template edges, counted
    on the integer codes into ``values``). The string columns are not copied or
    re-sorted (at scale they are the largest table of the stage).
    """
    tpl = coded_edges.filter(pc.equal(coded_edges.column("kind"), _TEMPLATE))
    code = tpl.column("code").to_numpy().astype(np.int64, copy=False)
    n_accounts = np.bincount(code, minlength=len(values))
    per_id = pd.Series(n_accounts, index=pd.Index(values, dtype="string"), dtype=np.int64)
    out = templates.copy(deep=False)
    out["template_id"] = as_string_series(out["template_id"])
    out["n_accounts"] = (
        per_id.reindex(out["template_id"].to_numpy(dtype=object)).fillna(0).to_numpy(np.int64)
        if len(out)
        else np.int64(0)
    )
    if "n_requests" in out.columns:
        out["n_requests"] = out["n_requests"].astype(np.int64)
    cols = [c for c in TEMPLATE_COLUMNS if c in out.columns]
    cols += [c for c in out.columns if c not in cols]
    return out[cols].reset_index(drop=True)
