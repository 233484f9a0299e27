"""Cross-run cache of prompt skeletons and MinHash signatures.

A daily run sees mostly prompts it has seen before (farms resend their
templates, users repeat themselves), and the skeleton regexes and the MinHash
sketch of a prompt depend on its text and a few settings only. This cache
keeps, per distinct prompt ever sketched, its skeleton and the signature of
that skeleton, so a run only sketches the prompts it has not seen. LSH and
clustering still run over all skeletons, so the template ids are exactly
those of an uncached run.

Layout: one Parquet file per *cache key* in ``TemplateSettings.cache_dir``,
``templates-<key>.parquet``. The key is a hash of everything that changes a
cached value: :data:`CACHE_VERSION` (bumped whenever the skeleton or
signature code changes its output), ``shingle_size``, ``num_perm``,
``max_prompt_chars`` and the run seed. Rows: ``h1, h2`` (two independent
64-bit SipHashes of the prompt's UTF-8 bytes: a 128-bit content key, so a
wrong hit needs a 128-bit collision), ``skeleton`` and ``sig`` (the
signature, ``num_perm`` little-endian uint32), in the order they were added.

Safety: the file is written to a temporary file in the same directory with
Parquet page checksums and moved into place (``os.replace``), so a reader
sees the old or the new file, never half of one. A missing directory is
created; a file that cannot be read, fails its checksums, or whose footer
key, schema or sort order is not what this code writes is ignored with a
:class:`TemplateCacheWarning` (the run sketches everything and rewrites it):
a bad cache costs time, never a wrong answer. Entries are never evicted:
delete the directory to reset it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from linkage.identifiers import _template_kernel as _kernel
from linkage.settings import TemplateSettings

__all__ = ["CACHE_VERSION", "TemplateCache", "TemplateCacheWarning"]

# Bump whenever skeletonize or the signature kernel changes its output.
CACHE_VERSION = 1
# Fixed SipHash keys of the prompt content key (16 bytes each).
_KEY1 = "linkage-cache-h1"
_KEY2 = "linkage-cache-h2"
_META = b"linkage.template_cache"
_BATCH = 1 << 16  # rows per read batch / row group (bounds the read's memory)


class TemplateCacheWarning(UserWarning):
    """The template cache could not be read or written; the run goes on without it."""


def prompt_keys(raw: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """128-bit content key ``(h1, h2)`` of every (null-free) prompt."""
    return _kernel.siphash_strings(raw, _KEY1), _kernel.siphash_strings(raw, _KEY2)


@dataclass
class Lookup:
    """Cache hits of a batch of prompts: ``row[i]`` is the cache row of prompt
    ``i`` or -1; hit ``j`` (in file order) is prompt ``prompt[j]``, with skeleton
    ``skeleton[j]`` and signature ``sig[j]``."""

    row: np.ndarray
    prompt: np.ndarray
    skeleton: pa.ChunkedArray
    sig: np.ndarray


class TemplateCache:
    """The cache file of one key (see the module docs)."""

    def __init__(self, cache_dir: str | os.PathLike[str], settings: TemplateSettings, seed: int):
        self.num_perm = settings.num_perm
        spec = {
            "version": CACHE_VERSION,
            "shingle_size": settings.shingle_size,
            "num_perm": settings.num_perm,
            "max_prompt_chars": settings.max_prompt_chars,
            "seed": int(seed),
        }
        self.key = json.dumps(spec, sort_keys=True)
        digest = hashlib.sha256(self.key.encode()).hexdigest()[:20]
        self.dir = Path(cache_dir)
        self.path = self.dir / f"templates-{digest}.parquet"
        self._h1 = np.empty(0, np.uint64)  # keys, sorted by (h1, h2)
        self._h2 = np.empty(0, np.uint64)
        self._file_row = np.empty(0, np.int64)  # file row of each sorted key
        self._loaded = False

    # ------------------------------------------------------------------ read

    def _warn(self, what: str, err: BaseException) -> None:
        warnings.warn(
            f"template cache {self.path}: {what} ({type(err).__name__}: {err}); "
            "the run sketches every prompt and rewrites the cache",
            TemplateCacheWarning,
            stacklevel=3,
        )

    def _open(self) -> pq.ParquetFile | None:
        if not self.path.exists():
            return None
        pf = pq.ParquetFile(self.path, page_checksum_verification=True)
        meta = pf.schema_arrow.metadata or {}
        if meta.get(_META) != self.key.encode():
            raise ValueError("footer key does not match this cache key")
        want = _schema(self.num_perm)
        if not pf.schema_arrow.remove_metadata().equals(want):
            raise ValueError(f"unexpected schema {pf.schema_arrow}")
        return pf

    def _load_keys(self) -> None:
        self._loaded = True
        try:
            pf = self._open()
            if pf is None:
                return
            t = pf.read(columns=["h1", "h2"])
            if t["h1"].null_count or t["h2"].null_count:
                raise ValueError("null keys")
            h1 = t["h1"].to_numpy()
            h2 = t["h2"].to_numpy()
            # rows are stored in the order they were added; lookups walk the keys sorted
            self._file_row = np.lexsort((h2, h1))
            self._h1, self._h2 = h1[self._file_row], h2[self._file_row]
        except Exception as err:  # any unreadable cache is ignored, never fatal
            self._warn("unreadable, ignored", err)
            self._h1 = self._h2 = np.empty(0, np.uint64)

    def __len__(self) -> int:
        if not self._loaded:
            self._load_keys()
        return len(self._h1)

    def _rows(self, h1: np.ndarray, h2: np.ndarray) -> np.ndarray:
        """File row of each key, -1 if absent (queries sorted first: a merge-like
        walk of two sorted arrays instead of random probes)."""
        q = np.argsort(h1, kind="stable")
        sh1 = h1[q]
        lo = np.searchsorted(self._h1, sh1, side="left")
        hi = np.searchsorted(self._h1, sh1, side="right")
        found = np.full(len(h1), -1, dtype=np.int64)
        # almost always at most one candidate per h1; the rare h1 ties are resolved on h2
        span = hi - lo
        for width in np.unique(span[span > 0]):
            sel = np.flatnonzero(span == width)
            for j in range(int(width)):
                cand = lo[sel] + j
                ok = self._h2[cand] == h2[q[sel]]
                found[sel[ok]] = self._file_row[cand[ok]]
        row = np.empty(len(h1), dtype=np.int64)
        row[q] = found
        return row

    def lookup(self, h1: np.ndarray, h2: np.ndarray) -> Lookup:
        """Skeletons and signatures of the prompts with these keys that are cached.

        Reads only the row groups that hold hits, and keeps the hit rows only,
        so the memory of a read grows with the hits, not with the file.
        """
        if not self._loaded:
            self._load_keys()
        empty = Lookup(
            np.full(len(h1), -1, dtype=np.int64),
            np.empty(0, dtype=np.int64),
            pa.chunked_array([], type=pa.large_string()),
            np.empty((0, self.num_perm), dtype=np.uint32),
        )
        if len(self._h1) == 0 or len(h1) == 0:
            return empty
        row = self._rows(h1, h2)
        hit = np.flatnonzero(row >= 0)
        if len(hit) == 0:
            return empty
        order = np.argsort(row[hit], kind="stable")  # hits in file order
        prompt = hit[order]
        wanted = row[prompt]
        skel_parts: list[pa.Array] = []
        sig = np.empty((len(wanted), self.num_perm), dtype=np.uint32)
        try:
            pf = self._open()
            if pf is None:
                raise FileNotFoundError("the cache file disappeared")
            start = 0
            for g in range(pf.num_row_groups):
                end = start + pf.metadata.row_group(g).num_rows
                a, b = np.searchsorted(wanted, [start, end])
                if b > a:
                    t = pf.read_row_group(g, columns=["skeleton", "sig"], use_threads=False)
                    if t.num_rows != end - start:
                        raise ValueError("row group length differs from its metadata")
                    take = pa.array(wanted[a:b] - start)
                    skel_parts.append(
                        t.column(0).take(take).combine_chunks().cast(pa.large_string())
                    )
                    raw_sig = t.column(1).take(take).combine_chunks()
                    if raw_sig.null_count:
                        raise ValueError("null signatures")
                    buf = np.frombuffer(raw_sig.buffers()[1], dtype="<u4")
                    off = raw_sig.offset * self.num_perm
                    sig[a:b] = buf[off : off + len(raw_sig) * self.num_perm].reshape(
                        -1, self.num_perm
                    )
                start = end
            if start != len(self._h1):
                raise ValueError("value columns and keys differ in length")
        except Exception as err:  # any unreadable cache is ignored, never fatal
            self._warn("unreadable, ignored", err)
            self._h1 = self._h2 = np.empty(0, np.uint64)
            return empty
        # chunks as read (concatenating would copy every cached skeleton once more)
        skel = pa.chunked_array(skel_parts, type=pa.large_string())
        return Lookup(row, prompt, skel, sig)

    # ----------------------------------------------------------------- write

    def add(
        self, h1: np.ndarray, h2: np.ndarray, docs: pa.Array, doc: np.ndarray, sig: np.ndarray
    ) -> None:
        """Write the cache with these new entries added (keys not yet cached).

        Entry ``j`` has the key ``(h1[j], h2[j])``, the skeleton ``docs[doc[j]]`` and
        the signature ``sig[doc[j]]``; ``doc[j] = -1`` stands for an empty skeleton
        (no document: stored as ``""`` with a zero signature). The new rows are
        gathered and written one row group at a time, so adding them costs one part
        of memory, not a copy of every new skeleton and signature.

        The old row groups are copied, the new rows appended, into a temporary
        file that then replaces the old one atomically. Failures warn and leave
        the old file in place.
        """
        if len(h1) == 0:
            return
        if not self._loaded:
            self._load_keys()
        docs = docs.cast(pa.large_string())
        schema = _schema(self.num_perm)

        def new_parts() -> Iterator[pa.Table]:
            for lo in range(0, len(h1), _BATCH):
                d = doc[lo : lo + _BATCH]
                at = np.maximum(d, 0)
                part_sig = np.ascontiguousarray(sig[at], dtype="<u4")
                part_sig[d < 0] = 0
                skel = docs.take(pa.array(at, mask=d < 0)).fill_null("")
                yield pa.table(
                    {
                        "h1": h1[lo : lo + _BATCH],
                        "h2": h2[lo : lo + _BATCH],
                        "skeleton": skel,
                        "sig": _sig_array(part_sig, self.num_perm),
                    },
                    schema=schema,
                )

        new = new_parts()
        tmp = None
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".templates-", suffix=".tmp", dir=self.dir)
            os.close(fd)
            self._merge_write(new, tmp)
            os.replace(tmp, self.path)
            tmp = None
        except Exception as err:  # a cache that cannot be written is skipped
            self._warn("could not be written", err)
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
        self._loaded = False  # re-read on next use

    def _merge_write(self, new: Iterable[pa.Table], tmp: str) -> None:
        """The old file's row groups, then the new rows (part by part), into ``tmp``."""
        schema = _schema(self.num_perm).with_metadata({_META: self.key.encode()})
        old = None
        if len(self._h1):
            try:
                old = self._open()
            except Exception:  # unreadable old file: start afresh
                old = None
        with pq.ParquetWriter(
            tmp,
            schema,
            write_page_checksum=True,
            use_dictionary=False,
            # keys and signatures are random bits: compressing them costs time for nothing
            compression={"h1": "none", "h2": "none", "skeleton": "zstd", "sig": "none"},
            compression_level={"skeleton": 1},
        ) as writer:
            if old is not None:
                for g in range(old.num_row_groups):
                    part = old.read_row_group(g, use_threads=False)
                    writer.write_table(part.replace_schema_metadata(schema.metadata), _BATCH)
            for part in new:
                writer.write_table(part.replace_schema_metadata(schema.metadata), _BATCH)


def _schema(num_perm: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("h1", pa.uint64(), nullable=False),
            pa.field("h2", pa.uint64(), nullable=False),
            pa.field("skeleton", pa.large_string(), nullable=False),
            pa.field("sig", pa.binary(4 * num_perm), nullable=False),
        ]
    )


def _sig_array(sig: np.ndarray, num_perm: int) -> pa.Array:
    """Signature rows as a fixed-size binary array (num_perm little-endian uint32)."""
    data = np.ascontiguousarray(sig, dtype="<u4")
    return pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(4 * num_perm), len(data), [None, pa.py_buffer(data.tobytes())]
    )
