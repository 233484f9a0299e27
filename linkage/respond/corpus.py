"""Read a suspect corpus: a directory (recursively) or a single file.

* ``*.txt`` / ``*.md``: one response per file;
* ``*.jsonl`` (optionally ``.gz``): one response per line, a JSON string or an object with
  one of the fields ``text``, ``response``, ``output``, ``completion``, ``content``
  (chat-style ``messages`` lists: the assistant turns);
* ``*.json``: a list of such items.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from linkage.errors import LinkageError

FIELDS = ("text", "response", "output", "completion", "content")


class CorpusError(LinkageError):
    """The corpus cannot be read."""


def _texts(item: Any) -> Iterator[str]:
    if isinstance(item, str):
        yield item
    elif isinstance(item, dict):
        for f in FIELDS:
            v = item.get(f)
            if isinstance(v, str):
                yield v
                return
        msgs = item.get("messages")
        if isinstance(msgs, list):
            for m in msgs:
                if isinstance(m, dict) and m.get("role") == "assistant":
                    yield from _texts(m)


def read_corpus(path: str | Path) -> list[str]:
    """Every response under ``path`` (see the module doc for the formats)."""
    p = Path(path)
    if not p.exists():
        raise CorpusError(f"corpus not found: {p}")
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    out: list[str] = []
    for f in files:
        name = f.name.lower()
        try:
            if name.endswith((".txt", ".md")):
                out.append(f.read_text(encoding="utf-8", errors="replace"))
            elif name.endswith((".jsonl", ".jsonl.gz")):
                opener = gzip.open if name.endswith(".gz") else open
                with opener(f, "rt", encoding="utf-8", errors="replace") as fh:
                    for line in fh:
                        if line.strip():
                            out.extend(_texts(json.loads(line)))
            elif name.endswith(".json"):
                data = json.loads(f.read_text(encoding="utf-8", errors="replace"))
                for item in data if isinstance(data, list) else [data]:
                    out.extend(_texts(item))
        except (json.JSONDecodeError, OSError, EOFError) as exc:
            raise CorpusError(f"cannot read {f}: {exc}") from None
    if not out:
        raise CorpusError(f"no responses found under {p} (.txt, .md, .jsonl[.gz], .json)")
    return out
