"""A signup's attributes as identifiers: the same normalisation as the history's.

Iterates the kind declarations (:data:`linkage.identifiers.kinds.KINDS`, the kinds with
``signup`` use): :func:`signup_identifiers` for a frame of signups (vectorised, each value
map once on the distinct values) and :func:`record_identifiers` for one record in pure
Python (the signup hot path). A signup may also carry the provider's own identifiers
(the contract's optional identifiers table: a phone hash, a referral code): they become
``x:<kind>`` keys trimmed exactly as the history's identifiers table is
(``identifiers_clean`` in :mod:`linkage.identifiers.sql`), so they meet the signup
index's provider rows. Used by the signup scorer (:mod:`linkage.signup`) and by
partner matching (:mod:`linkage.share.match`), so it sits below both.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from linkage.identifiers.kinds import KINDS, VALUE_MAPS, provider_kind, trim_one
from linkage.settings import Settings

__all__ = ["PROVIDER_FIELD", "provider_keys", "record_identifiers", "signup_identifiers"]

#: The field of a signup record (and column of a signups frame) holding the provider's
#: own identifiers: ``{kind: value}`` or ``{kind: [values]}``, or a list of
#: ``{"kind": ..., "value": ...}`` objects (the identifiers table's rows).
PROVIDER_FIELD = "identifiers"

_SIGNUP_KINDS = tuple(k for k in KINDS if k.signup)
_SIGNUP_MAPS = tuple(dict.fromkeys(k.value_map for k in _SIGNUP_KINDS if k.value_map))
_FLAGS = {"disposable": "email_disposable", "alias": "email_alias"}
#: the value map that yields the e-mail flags (the flags are its attribute columns)
_FLAG_MAP = next(m.name for m in VALUE_MAPS.values() if set(_FLAGS.values()) <= set(m.columns))


def _present(v: object) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v)) and v is not pd.NA


def provider_keys(field: object) -> list[tuple[str, str]]:
    """``(x:<kind>, value)`` keys of one signup's provider identifiers (the record's
    :data:`PROVIDER_FIELD`), kind and value trimmed as the history's are; empty ones
    dropped.  Accepts ``{kind: value | [values]}`` or ``[{"kind", "value"}, ...]``."""
    if not _present(field):
        return []
    pairs: Iterable[tuple[object, object]]
    if isinstance(field, Mapping):
        pairs = (
            (kind, v)
            for kind, vals in field.items()
            for v in (vals if isinstance(vals, list | tuple) else [vals])
        )
    elif isinstance(field, list | tuple):
        pairs = ((row.get("kind"), row.get("value")) for row in field if isinstance(row, Mapping))
    else:
        raise TypeError(
            f"{PROVIDER_FIELD}: expected {{kind: value}} or a list of {{kind, value}}, "
            f"got {type(field).__name__}"
        )
    keys: list[tuple[str, str]] = []
    for kind, v in pairs:
        if not (_present(kind) and _present(v)):
            continue
        k, value = trim_one(str(kind)), trim_one(str(v))
        if k is not None and value is not None and (provider_kind(k), value) not in keys:
            keys.append((provider_kind(k), value))
    return keys


def _provider_rows(frame: pd.DataFrame, identifiers: pd.DataFrame | None) -> pd.DataFrame:
    """(row, kind, value) of the provider identifiers of a signups frame: its own
    :data:`PROVIDER_FIELD` column and the rows of an identifiers table (``account_id,
    kind, value``) whose account is one of the frame's."""
    rows: list[tuple[int, str, str]] = []
    if PROVIDER_FIELD in frame.columns:
        for r, field in enumerate(frame[PROVIDER_FIELD].to_numpy(dtype=object)):
            rows.extend((r, k, v) for k, v in provider_keys(field))
    if identifiers is not None and len(identifiers) and "account_id" in frame.columns:
        row_of = pd.Series(
            np.arange(len(frame)), index=frame["account_id"].astype("string").to_numpy()
        )
        row_of = row_of[~row_of.index.duplicated(keep="first")]
        table = identifiers[identifiers["account_id"].astype("string").isin(row_of.index)]
        grouped: dict[str, list[dict[str, object]]] = {}
        for acc, kind, value in zip(
            table["account_id"].astype("string"), table["kind"], table["value"], strict=True
        ):
            grouped.setdefault(str(acc), []).append({"kind": kind, "value": value})
        for acc, field in grouped.items():
            r = int(row_of[acc])
            rows.extend((r, k, v) for k, v in provider_keys(field))
    return pd.DataFrame(rows, columns=["row", "kind", "value"]).astype(
        {"row": "int64", "kind": object, "value": object}
    )


def signup_identifiers(
    frame: pd.DataFrame, *, settings: Settings, identifiers: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Normalised (row, kind, value) pairs of signup attributes, vectorised.

    Iterates the kind declarations (:data:`linkage.identifiers.kinds.KINDS`): each
    value map runs once on the distinct values of its column, SQL-normalised kinds
    through their one-value Python twin on the distinct values.  Then the provider's
    own identifiers (:func:`provider_keys`): the frame's :data:`PROVIDER_FIELD` column
    and, when given, the identifiers table's rows of the frame's accounts.
    ``attrs["flags"]``: per-row ``disposable`` and ``alias`` e-mail flags (False when
    unknown).
    """
    n = len(frame)
    ident = settings.identifiers

    def col(name: str) -> pd.Series:
        if name in frame.columns:
            return frame[name].astype("string").reset_index(drop=True)
        return pd.Series([pd.NA] * n, dtype="string")

    def distinct(name: str) -> tuple[np.ndarray, pd.Series]:
        codes, uniques = pd.factorize(col(name), use_na_sentinel=True)
        return codes, pd.Series(np.asarray(uniques, dtype=object), dtype="string")

    mapped: dict[str, tuple[np.ndarray, pd.DataFrame]] = {}
    for m in _SIGNUP_MAPS:
        column = next(k.accounts_column for k in _SIGNUP_KINDS if k.value_map == m)
        codes, uniques = distinct(str(column))
        mapped[m] = (codes, VALUE_MAPS[m].many(uniques, ident).reset_index(drop=True))

    def take(codes: np.ndarray, values: pd.Series) -> pd.Series:
        arr = pd.array(values.to_numpy(dtype=object), dtype=values.dtype)
        return pd.Series(arr.take(codes, allow_fill=True))

    rows = []
    for k in _SIGNUP_KINDS:
        if k.value_map is not None:
            codes, table = mapped[k.value_map]
            v = take(codes, table[k.name].astype("string"))
        else:
            codes, uniques = distinct(str(k.accounts_column))
            one = [k.normalize_one(u, ident) for u in uniques.to_numpy(dtype=object)]
            v = take(codes, pd.Series(one, dtype="string"))
        ok = v.notna().to_numpy()
        rows.append(
            pd.DataFrame(
                {"row": np.flatnonzero(ok), "kind": k.name, "value": v[ok].astype(str).to_numpy()}
            )
        )
    rows.append(_provider_rows(frame, identifiers))
    out = pd.concat(rows, ignore_index=True)
    email_codes, email_table = mapped[_FLAG_MAP]
    out.attrs["flags"] = pd.DataFrame(
        {
            flag: take(email_codes, email_table[column].astype("boolean"))
            .fillna(False)
            .astype(bool)
            .to_numpy()
            for flag, column in _FLAGS.items()
        }
    )
    return out


def record_identifiers(
    record: Mapping[str, Any], *, settings: Settings
) -> tuple[list[tuple[str, str]], dict[str, bool]]:
    """The same normalisation as :func:`signup_identifiers`, for one record, in pure Python
    (no pandas: this is the signup hot path); iterates the same declarations, then the
    record's provider identifiers (:data:`PROVIDER_FIELD`)."""
    ident = settings.identifiers
    keys: list[tuple[str, str]] = []
    mapped: dict[str, Mapping[str, object]] = {}
    for k in _SIGNUP_KINDS:
        v = record.get(str(k.accounts_column))
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        raw = str(v)
        if k.value_map is not None:
            if k.value_map not in mapped:
                mapped[k.value_map] = VALUE_MAPS[k.value_map].one(raw, ident)
            value = mapped[k.value_map][k.name]
        else:
            value = k.normalize_one(raw, ident)
        if value is not None:
            keys.append((k.name, str(value)))
    keys.extend(provider_keys(record.get(PROVIDER_FIELD)))
    email = mapped.get(_FLAG_MAP, {})
    flags = {flag: bool(email.get(column)) for flag, column in _FLAGS.items()}
    return keys, flags
