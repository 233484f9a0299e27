"""A signup's attributes as identifiers: the same normalisation as the history's.

Iterates the kind declarations (:data:`linkage.identifiers.kinds.KINDS`, the kinds with
``signup`` use): :func:`signup_identifiers` for a frame of signups (vectorised, each value
map once on the distinct values) and :func:`record_identifiers` for one record in pure
Python (the signup hot path). Used by the signup scorer (:mod:`linkage.signup`) and by
partner matching (:mod:`linkage.share.match`), so it sits below both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from linkage.identifiers.kinds import KINDS, VALUE_MAPS
from linkage.settings import Settings

__all__ = ["record_identifiers", "signup_identifiers"]

_SIGNUP_KINDS = tuple(k for k in KINDS if k.signup)
_SIGNUP_MAPS = tuple(dict.fromkeys(k.value_map for k in _SIGNUP_KINDS if k.value_map))
_FLAGS = {"disposable": "email_disposable", "alias": "email_alias"}
#: the value map that yields the e-mail flags (the flags are its attribute columns)
_FLAG_MAP = next(m.name for m in VALUE_MAPS.values() if set(_FLAGS.values()) <= set(m.columns))


def signup_identifiers(frame: pd.DataFrame, *, settings: Settings) -> pd.DataFrame:
    """Normalised (row, kind, value) pairs of signup attributes, vectorised.

    Iterates the kind declarations (:data:`linkage.identifiers.kinds.KINDS`): each
    value map runs once on the distinct values of its column, SQL-normalised kinds
    through their one-value Python twin on the distinct values.  ``attrs["flags"]``:
    per-row ``disposable`` and ``alias`` e-mail flags (False when unknown).
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
    (no pandas: this is the signup hot path); iterates the same declarations."""
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
    email = mapped.get(_FLAG_MAP, {})
    flags = {flag: bool(email.get(column)) for flag, column in _FLAGS.items()}
    return keys, flags
