"""Tiny dataset writer for the ingest tests (no dependency on ``fixtures/``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

WriteFn = Callable[..., Path]


def small_tables() -> dict[str, pd.DataFrame]:
    """A valid, small dataset: 3 accounts, 5 requests, identifiers, labels, 1 signup."""
    accounts = pd.DataFrame(
        {
            "account_id": ["a1", "a2", "a3"],
            "created_at": ["2024-01-01T00:00:00Z", "2024-01-02T12:00:00+02:00", "2024-01-03"],
            "email": ["x@example.com", "y.z+1@gmail.com", "w@example.org"],
            "signup_ip": ["1.2.3.4", "2001:db8::1", "10.0.0.1"],
            "device_fingerprint": ["d1", "d2", ""],
            "payment_fingerprint": ["p1", "p1", "p2"],
            "user_agent": ["Mozilla/5.0", "curl/8.0", "python-requests/2.31"],
        }
    )
    requests = pd.DataFrame(
        {
            "account_id": ["a1", "a1", "a2", "a3", "a3"],
            "ts": [
                "2024-02-01T00:00:00Z",
                "2024-02-01T01:00:00Z",
                "2024-02-01T02:00:00+01:00",
                "2024-02-02T00:00:00",
                "2024-02-03 10:00:00Z",
            ],
            "ip": ["1.2.3.4", "1.2.3.5", "2001:db8::2", "10.0.0.1", "10.0.0.2"],
            "device_fingerprint": ["d1", "d1", "d2", "", "d3"],
            "prompt": [
                "Explain, step by step, how to sort a list.",
                'He said "hi", then left',
                "multi\nline\nprompt",
                "emoji 🧠 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
                "plain",
            ],
            "response_tokens": ["10", "0", "250", "7", "3"],
            "model": ["m1", "m1", "m2", "m1", "m2"],
        }
    )
    identifiers = pd.DataFrame(
        {
            "account_id": ["a1", "a2"],
            "kind": ["phone", "wallet"],
            "value": ["h1", "w1"],
            "ts": ["2024-01-05T00:00:00Z", ""],
        }
    )
    labels = pd.DataFrame(
        {
            "account_id": ["a1", "a2", "a3", "s1"],
            "is_farm": ["1", "1", "0", "0"],
            "group": ["g1", "g1", "", ""],
            "population": ["farm", "farm", "legit", "legit"],
        }
    )
    signups = accounts.iloc[:1].assign(account_id=["s1"])
    return {
        "accounts": accounts,
        "requests": requests,
        "identifiers": identifiers,
        "labels": labels,
        "signups": signups,
    }


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` in the format implied by ``path``'s suffix."""
    name = path.name
    if name.endswith(".csv.gz"):
        frame.to_csv(path, index=False, compression="gzip")
    elif name.endswith(".csv"):
        frame.to_csv(path, index=False)
    elif name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    elif name.endswith((".jsonl", ".jsonl.gz")):
        records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        if name.endswith(".gz"):
            import gzip

            path.write_bytes(gzip.compress(text.encode()))
        else:
            path.write_text(text, encoding="utf-8")
    else:  # pragma: no cover - test misuse
        raise ValueError(name)
    return path


def write_dataset(directory: Path, tables: dict[str, pd.DataFrame], suffix: str = ".csv") -> Path:
    """Write every table of ``tables`` as ``directory/<table><suffix>``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        write_table(frame, directory / f"{name}{suffix}")
    return directory


@pytest.fixture
def tables() -> dict[str, pd.DataFrame]:
    return small_tables()
