"""The identifiers stage: ``extract(dataset) -> Identifiers``.

Pipeline (each request-level array is built, aggregated to per-(account, value)
pairs and dropped before the next, to keep peak memory to a few int32 columns
on top of the dataset itself):

1. account codes (position in ``dataset.accounts``) and int64 ns timestamps per request;
2. per column — IP, subnet, device, template, topic, model — factorize, normalise
   the unique values, ``GROUP BY (account, value)``;
3. sign-up attributes (IP, subnet, device, e-mail, e-mail domain, payment, user
   agent) as pairs with ``n = 1`` merged into the same kinds;
4. the optional identifiers table as ``x:<kind>`` edges;
5. per-account features from the pair tables and per-account aggregates.

The prompt column is never copied: it is handed to the template and prompt
signal modules as the dataset's own Series.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from linkage._memory import release_memory
from linkage.dataset import Dataset
from linkage.identifiers._codes import (
    NAT,
    NS_PER_HOUR,
    Coded,
    as_string_series,
    column,
    epoch_ns,
    ns_to_seconds,
    small_codes,
    unify,
)
from linkage.identifiers.device import UA_OTHER, normalize_fingerprint, user_agent_family
from linkage.identifiers.edges import (
    combine_pairs,
    edges_frame,
    extra_identifier_edges,
    order_edges,
    pair_stats,
    signup_pairs,
)
from linkage.identifiers.emails import normalize_emails
from linkage.identifiers.features import FEATURE_COLUMNS, distinct_stats, flag, ratio
from linkage.identifiers.network import ip_subnet, normalize_ip
from linkage.identifiers.timing import timing_features
from linkage.settings import IdentifierSettings

__all__ = ["TEMPLATE_COLUMNS", "Identifiers", "extract"]

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


def _to_float(values: pd.Series) -> np.ndarray:
    """Numeric column → float64 array with NaN for unknown (no copy of the frame)."""
    return (
        pd.to_numeric(values, errors="coerce")
        .astype("Float64")
        .to_numpy(dtype=np.float64, na_value=np.nan)
    )


#: The steps of :func:`extract`, as its ``progress`` callback names them.
EXTRACT_STEPS = (
    "IPs and subnets",
    "devices",
    "prompt templates",
    "prompt signals",
    "tokens and timing",
    "sign-up attributes",
    "extra identifiers",
    "edges",
)


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

    def step(k: int, what: str) -> None:
        if progress is not None:
            progress(k, len(EXTRACT_STEPS), what)

    # Imported here so the normalisers stay importable without the template machinery.
    from linkage.identifiers.prompts import prompt_signals
    from linkage.identifiers.templates import assign_templates, factorize_text

    accounts, requests = dataset.accounts, dataset.requests
    account_ids = pd.Index(as_string_series(accounts["account_id"]).to_numpy(dtype=object))
    account_arrow = pa.array(account_ids.to_numpy(), type=pa.large_string())
    n_acc = len(account_ids)
    n_req = len(requests)

    # 1. account code and time per request (rows with an unknown account or time are ignored)
    acc = account_ids.get_indexer(requests["account_id"]).astype(np.int32)
    ts_ns = epoch_ns(requests["ts"]) if n_req else np.empty(0, np.int64)
    acc[ts_ns == NAT] = -1
    created_ns = epoch_ns(column(accounts, "created_at"))
    parts: dict[str, pd.DataFrame] = {}
    feats: dict[str, np.ndarray] = {}

    n_requests = np.bincount(acc[acc >= 0], minlength=n_acc).astype(np.float64)
    feats["n_requests"] = n_requests

    def known_count(codes: np.ndarray) -> np.ndarray:
        return np.bincount(acc[(acc >= 0) & (codes >= 0)], minlength=n_acc).astype(np.float64)

    def rate_feats(
        pairs: pd.DataFrame, codes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        distinct, top = distinct_stats(pairs, n_acc)
        known = known_count(codes)
        distinct[known == 0] = np.nan
        return distinct, top, known

    step(0, EXTRACT_STEPS[0])
    # 2-3. IPs and subnets (request ∪ sign-up)
    req_ip = Coded.of(column(requests, "ip")).map_values(normalize_ip)
    sign_ip = Coded.of(column(accounts, "signup_ip")).map_values(normalize_ip)
    req_ip, sign_ip = unify(req_ip, sign_ip)

    def subnet(s: pd.Series) -> pd.Series:
        return ip_subnet(s, v4_prefix=settings.ipv4_prefix, v6_prefix=settings.ipv6_prefix)

    req_sub = req_ip.map_values(subnet)
    sign_sub = sign_ip.map_values(subnet)
    req_sub, sign_sub = unify(req_sub, sign_sub)

    ip_pairs = pair_stats(acc, req_ip.codes, ts_ns, req_ip.n_values)
    n_ips, _, known_ip = rate_feats(ip_pairs, req_ip.codes)
    feats["n_ips"] = n_ips
    feats["ip_churn"] = ratio(n_ips, known_ip)
    parts["ip"] = edges_frame(
        combine_pairs(ip_pairs, signup_pairs(sign_ip, created_ns)),
        "ip",
        req_ip.values,
        account_arrow,
    )
    del ip_pairs, req_ip
    sub_pairs = pair_stats(acc, req_sub.codes, ts_ns, req_sub.n_values)
    feats["n_subnets"], _, _ = rate_feats(sub_pairs, req_sub.codes)
    parts["subnet"] = edges_frame(
        combine_pairs(sub_pairs, signup_pairs(sign_sub, created_ns)),
        "subnet",
        req_sub.values,
        account_arrow,
    )
    del sub_pairs, req_sub

    step(1, EXTRACT_STEPS[1])
    # devices (request ∪ sign-up)
    req_dev = Coded.of(column(requests, "device_fingerprint")).map_values(normalize_fingerprint)
    sign_dev = Coded.of(column(accounts, "device_fingerprint")).map_values(normalize_fingerprint)
    req_dev, sign_dev = unify(req_dev, sign_dev)
    dev_pairs = pair_stats(acc, req_dev.codes, ts_ns, req_dev.n_values)
    n_dev, _, known_dev = rate_feats(dev_pairs, req_dev.codes)
    feats["n_devices"] = n_dev
    feats["device_churn"] = ratio(n_dev, known_dev)
    any_device = (known_dev > 0) | (sign_dev.codes >= 0)
    dataset_has_devices = req_dev.n_values > 0
    feats["device_missing"] = (
        (~any_device).astype(np.float64) if dataset_has_devices else np.full(n_acc, np.nan)
    )
    parts["device"] = edges_frame(
        combine_pairs(dev_pairs, signup_pairs(sign_dev, created_ns)),
        "device",
        req_dev.values,
        account_arrow,
    )
    del dev_pairs, req_dev

    step(2, EXTRACT_STEPS[2])
    # templates (the prompt column is passed as is, never copied); the heaviest part of the
    # stage, so the pages freed so far go back first
    release_memory()
    prompts = column(requests, "prompt")
    factorized = factorize_text(prompts)  # shared by the template and prompt-signal stages
    assignment = assign_templates(
        prompts, settings=settings.templates, seed=seed, factorized=factorized
    )
    # integer codes all the way: the per-request id strings are never materialised
    # (ids are 48-bit content hashes: re-coding merges the practically impossible collision,
    # as grouping by the id strings would)
    tpl = Coded(small_codes(assignment.codes, len(assignment.ids)), assignment.ids)
    tpl = tpl.remap(*pd.factorize(tpl.values))
    request_template = pd.Series(
        pd.Categorical.from_codes(
            tpl.codes, categories=pd.Index(tpl.values, dtype="string"), validate=False
        ),
        index=requests.index,
        name="template_id",
    )
    tpl_pairs = pair_stats(acc, tpl.codes, ts_ns, tpl.n_values)
    n_tpl, top_tpl, known_tpl = rate_feats(tpl_pairs, tpl.codes)
    feats["n_templates"] = n_tpl
    feats["template_top_share"] = ratio(top_tpl, known_tpl)
    feats["template_repetition"] = 1.0 - ratio(n_tpl, known_tpl)
    parts["template"] = edges_frame(tpl_pairs, "template", tpl.values, account_arrow)
    templates = _templates_frame(assignment.templates, tpl_pairs, tpl.values)
    del tpl_pairs, tpl

    step(3, EXTRACT_STEPS[3])
    # prompt signals: reasoning and topic
    signals = prompt_signals(prompts, factorized=factorized)
    prompt_known = prompts.notna().to_numpy()
    reasoning = signals["reasoning"].astype("boolean").to_numpy(dtype=bool, na_value=False)
    n_prompt = known_count(np.where(prompt_known, 0, -1))
    n_reason = known_count(np.where(prompt_known & reasoning, 0, -1))
    feats["reasoning_share"] = ratio(n_reason, n_prompt)
    topic = Coded.of(as_string_series(signals["topic"]).mask(~prompt_known))
    del signals, reasoning, prompt_known, factorized
    release_memory()
    topic_pairs = pair_stats(acc, topic.codes, ts_ns, topic.n_values)
    _, top_topic, known_topic = rate_feats(topic_pairs, topic.codes)
    feats["topic_top_share"] = ratio(top_topic, known_topic)
    del topic_pairs, topic

    step(4, EXTRACT_STEPS[4])
    # response tokens
    tokens = _to_float(column(requests, "response_tokens")) if n_req else np.empty(0)
    ok = (acc >= 0) & ~np.isnan(tokens)
    feats["mean_response_tokens"] = ratio(
        np.bincount(acc[ok], weights=tokens[ok], minlength=n_acc),
        np.bincount(acc[ok], minlength=n_acc),
    )
    del tokens, ok

    # timing (hour entropy, active days/hours, first/last, model pivot)
    model = Coded.of(column(requests, "model"))
    timing = timing_features(acc, ts_ns, n_acc, model.codes, model.n_values)
    del model
    for c in timing.columns:
        feats[c] = timing[c].to_numpy(np.float64)
    feats["created_ts"] = ns_to_seconds(created_ns)
    first_ns = feats["first_ts"] * 1e9
    feats["signup_to_first_hours"] = (first_ns - created_ns.astype(np.float64)) / NS_PER_HOUR
    feats["signup_to_first_hours"][created_ns == NAT] = np.nan

    step(5, EXTRACT_STEPS[5])
    # sign-up only attributes: e-mail, payment, user agent
    mail = normalize_emails(column(accounts, "email"))
    for name in ("disposable", "alias", "freemail"):
        feats[f"email_{name}"] = flag(mail[name])
    email = Coded.of(mail["canonical"])
    parts["email"] = edges_frame(
        signup_pairs(email, created_ns), "email", email.values, account_arrow
    )
    # A freemail domain (gmail.com, outlook.com, …) is shared by millions of strangers:
    # it links nobody, so it makes no email_domain edge (the flag stays a feature).
    domain = Coded.of(mail["domain"].mask(mail["freemail"].fillna(False).to_numpy(bool)))
    parts["email_domain"] = edges_frame(
        signup_pairs(domain, created_ns), "email_domain", domain.values, account_arrow
    )
    del mail

    payment = Coded.of(as_string_series(column(accounts, "payment_fingerprint")).str.strip())
    payment = payment.map_values(lambda s: s.mask(s == ""))
    feats["payment_missing"] = (
        (payment.codes < 0).astype(np.float64) if payment.n_values else np.full(n_acc, np.nan)
    )
    parts["payment"] = edges_frame(
        signup_pairs(payment, created_ns), "payment", payment.values, account_arrow
    )

    # "other" lumps every unrecognised UA together: not a shared identifier, no edge.
    ua = Coded.of(column(accounts, "user_agent")).map_values(
        lambda s: user_agent_family(s).mask(lambda f: f == UA_OTHER)
    )
    parts["user_agent"] = edges_frame(
        signup_pairs(ua, created_ns), "user_agent", ua.values, account_arrow
    )

    step(6, EXTRACT_STEPS[6])
    # optional identifiers table
    extra = extra_identifier_edges(dataset.identifiers, account_ids)
    for kind, part in extra.groupby("kind", sort=True):
        parts[str(kind)] = part
    step(7, EXTRACT_STEPS[7])
    edges = order_edges(parts)

    features = pd.DataFrame(
        {c: np.asarray(feats[c], dtype=np.float64) for c in FEATURE_COLUMNS},
        index=pd.Index(account_ids, dtype="string", name="account_id"),
    )
    return Identifiers(
        edges=edges,
        features=features,
        templates=templates,
        request_template=request_template,
    )


def _templates_frame(
    templates: pd.DataFrame, tpl_pairs: pd.DataFrame, values: np.ndarray
) -> pd.DataFrame:
    """The template module's table (most requested first) plus ``n_accounts``.

    ``n_accounts``: distinct accounts using each template. The string columns are not
    copied or re-sorted (at scale they are the largest table of the stage).
    """
    n_accounts = np.bincount(tpl_pairs["v"].to_numpy(np.int64), minlength=len(values))
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
