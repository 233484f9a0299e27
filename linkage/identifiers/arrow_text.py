"""Text columns as Arrow arrays: the prompt stage's conversions, shared by the template
and prompt-signal modules (no Python string per prompt once a column is in Arrow)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["as_arrow", "dictionary_encode"]


def as_arrow(values: pd.Series | pd.Index | np.ndarray | pa.Array) -> pa.Array:
    """Unique prompts as a pyarrow large_string array (nulls kept)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        return values.cast(pa.large_string())
    try:
        return pa.array(values, type=pa.large_string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeEncodeError):
        # Lone surrogates or non-string cells: rare, so the slow path is fine.
        s = pd.Series(np.asarray(values, dtype=object)).map(
            lambda v: (
                None
                if v is None or (isinstance(v, float) and np.isnan(v))
                else str(v).encode("utf-8", "replace").decode("utf-8")
            )
        )
        return pa.array(s, type=pa.large_string(), from_pandas=True)


def dictionary_encode(arr: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """(int64 codes, -1 for null; distinct values in order of first appearance).

    Chunked input is encoded chunk by chunk against one growing hash table (every
    chunk's dictionary is the final one), so nothing is concatenated but the codes.
    """
    enc = pc.dictionary_encode(arr)
    if isinstance(enc, pa.ChunkedArray):
        if enc.num_chunks == 0:
            return np.empty(0, dtype=np.int64), pa.array([], type=arr.type)
        dictionary = enc.chunk(0).dictionary
        indices = [c.indices for c in enc.chunks]
    else:
        dictionary = enc.dictionary
        indices = [enc.indices]
    codes = np.concatenate(
        [pc.fill_null(i.cast(pa.int64()), -1).to_numpy(zero_copy_only=False) for i in indices]
    )
    return codes, dictionary
