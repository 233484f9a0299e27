"""Really malformed files: the bad lines are quarantined with their editor line
number and reason, the rest of the file is used, and nothing aborts the run."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from linkage.errors import SchemaError
from linkage.ingest import load_dataset, summarize
from linkage.ingest.loader import quarantine_reasons

from .conftest import small_tables, write_dataset

HEADER = b"account_id,ts,ip,device_fingerprint,prompt,response_tokens,model\n"


def good(i: int) -> bytes:
    return f"a1,2024-02-01T00:00:{i:02d}Z,1.2.3.4,d1,prompt {i},{i},m1\n".encode()


def _load(tmp_path: Path, name: str, payload: bytes):
    write_dataset(tmp_path / "ds", {"accounts": small_tables()["accounts"]})
    (tmp_path / "ds" / name).write_bytes(payload)
    qdir = tmp_path / "q"
    ds = load_dataset(tmp_path / "ds", quarantine_dir=qdir)
    q = (
        pd.read_csv(qdir / "requests.csv", dtype=str, keep_default_na=False)
        if (qdir / "requests.csv").exists()
        else None
    )
    return ds, q


def _errors(ds) -> list[tuple[int | None, str]]:
    return [(p.row, p.message) for p in ds.report.problems if p.severity == "error"]


def test_ragged_line_and_bad_utf8_are_quarantined_rest_used(tmp_path: Path) -> None:
    payload = (
        HEADER
        + good(1)
        + b"onlytwo,fields\n"  # line 3
        + good(2)
        + b"a1,2024-02-01T00:00:09Z,1.2.3.4,d1,caf\xe9 latin-1,5,m1\n"  # line 5
        + good(3)
    )
    ds, q = _load(tmp_path, "requests.csv", payload)
    assert ds.requests["prompt"].tolist() == ["prompt 1", "prompt 2", "prompt 3"]
    assert _errors(ds) == [(3, "wrong number of fields"), (5, "not valid UTF-8")]
    t = ds.report.tables["requests"]
    assert (t.rows_read, t.rows_kept, t.rows_quarantined) == (5, 3, 2)
    assert q["_row"].tolist() == ["3", "5"]
    assert q["_problem"].tolist() == [
        "wrong number of fields (2, the header has 7)",
        "not valid UTF-8 (byte 0xe9 at character 39)",
    ]
    assert q["_raw"][0] == "onlytwo,fields" and "caf\\xe9" in q["_raw"][1]


def test_kept_rows_are_the_same_as_from_a_clean_file(tmp_path: Path) -> None:
    clean = HEADER + good(1) + good(2) + good(3)
    dirty = HEADER + good(1) + b"x\n" + good(2) + b"\xff\xfe,\n" + good(3)
    a, _ = _load(tmp_path / "a", "requests.csv", clean)
    b, _ = _load(tmp_path / "b", "requests.csv", dirty)
    cols = [c for c in a.requests.columns if c != "_row"]
    pd.testing.assert_frame_equal(a.requests[cols], b.requests[cols])


def test_unbalanced_quote_only_costs_its_line(tmp_path: Path) -> None:
    payload = (
        HEADER
        + good(1)
        + b'a1,2024-02-01T00:00:05Z,1.2.3.4,d1,"never closed,5,m1\n'  # line 3
        + good(2)
        + b'a1,2024-02-01T00:00:06Z,1.2.3.4,d1,"two\nlines",6,m1\n'  # lines 5-6, fine
        + good(3)  # line 7
    )
    ds, q = _load(tmp_path, "requests.csv", payload)
    assert ds.requests["prompt"].tolist() == ["prompt 1", "prompt 2", "two\nlines", "prompt 3"]
    assert _errors(ds) == [(3, 'unbalanced quote: a `"` opens a value that never closes')]
    assert q["_row"].tolist() == ["3"]


def test_nul_bytes_quarantined_in_the_fast_path_too(tmp_path: Path) -> None:
    payload = HEADER + good(1) + b"a1,2024-02-01T00:00:05Z,1.2.3.4,d1,x\x00y,5,m1\n" + good(2)
    ds, q = _load(tmp_path, "requests.csv", payload)
    assert ds.requests["prompt"].tolist() == ["prompt 1", "prompt 2"]
    assert _errors(ds) == [(3, "NUL byte in line")]
    assert q["_row"].tolist() == ["3"] and q["_problem"][0] == "NUL byte in line"


def test_bom_and_crlf(tmp_path: Path) -> None:
    body = HEADER + good(1) + b'a1,2024-02-01T00:00:05Z,1.2.3.4,d1,"in\r\nside",5,m1\n' + good(2)
    payload = b"\xef\xbb\xbf" + body.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n")
    ds, _ = _load(tmp_path, "requests.csv", payload)
    assert ds.requests["account_id"].tolist() == ["a1", "a1", "a1"]
    assert ds.requests["model"].tolist() == ["m1", "m1", "m1"]  # no stray \r
    assert ds.requests["prompt"][1] == "in\r\nside"
    assert _errors(ds) == []
    # the same file with one ragged line goes through the tolerant reader: same rows
    ragged = payload + b"junk\r\n"
    ds2, q = _load(tmp_path / "r", "requests.csv", ragged)
    assert ds2.requests["model"].tolist() == ["m1", "m1", "m1"]
    assert ds2.requests["prompt"][1] == "in\r\nside"
    assert q["_row"].tolist() == ["6"]


def test_truncated_last_line(tmp_path: Path) -> None:
    payload = HEADER + good(1) + good(2) + b"a1,2024-02-01T00:0"
    ds, q = _load(tmp_path, "requests.csv", payload)
    assert len(ds.requests) == 2
    assert _errors(ds) == [(4, "wrong number of fields")]
    assert "last line of the file, without a line end: cut short?" in q["_problem"][0]


def test_gzip_cut_short(tmp_path: Path) -> None:
    body = HEADER + b"".join(good(i) for i in range(40))
    packed = gzip.compress(body)
    ds, _ = _load(tmp_path, "requests.csv.gz", packed[: len(packed) * 2 // 3])
    n = len(ds.requests)
    assert 0 < n < 40
    assert ds.requests["prompt"].tolist() == [f"prompt {i}" for i in range(n)]
    notes = [p.message for p in ds.report.problems if p.severity == "warning" and p.row is None]
    assert any("gzip stream ends early" in m for m in notes)
    t = ds.report.tables["requests"]
    assert t.rows_read == t.rows_kept + t.rows_quarantined


def test_semicolon_separated_file_is_named_as_such(tmp_path: Path) -> None:
    write_dataset(tmp_path, {"accounts": small_tables()["accounts"]})
    (tmp_path / "requests.csv").write_bytes(
        HEADER.replace(b",", b";") + b"a1;2024-02-01;1.2.3.4;d;p;1;m\n"
    )
    with pytest.raises(SchemaError) as err:
        load_dataset(tmp_path)
    assert "looks like `;`-separated" in str(err.value)


def test_jsonl_bad_lines_have_line_numbers(tmp_path: Path) -> None:
    rec = {
        "account_id": "a1",
        "ts": "2024-02-01T00:00:00Z",
        "ip": "1.2.3.4",
        "prompt": "p",
        "response_tokens": 3,
        "model": "m",
    }
    lines = [
        json.dumps(rec),
        "{broken",  # line 2
        json.dumps(rec),
        "[1, 2]",  # line 4
        "",  # blank line 5: skipped, still counted
        json.dumps(rec).encode().replace(b'"p"', b'"\xff"').decode("latin-1"),  # line 6
        json.dumps({**rec, "response_tokens": "7"}),  # mixed type: kept
    ]
    payload = "\n".join(lines).encode("latin-1") + b"\n"
    ds, q = _load(tmp_path, "requests.jsonl", payload)
    assert len(ds.requests) == 3
    assert ds.requests["response_tokens"].tolist() == [3, 3, 7]
    assert _errors(ds) == [
        (2, "invalid JSON"),
        (4, "not a JSON object"),
        (6, "not valid UTF-8"),
    ]
    assert q["_row"].tolist() == ["2", "4", "6"]
    assert "byte offset" not in " ".join(q["_problem"])


def test_summary_names_top_reasons_with_first_line(tmp_path: Path) -> None:
    payload = (
        HEADER
        + good(1)
        + b"a1,yesterday,1.2.3.4,d1,p,1,m1\n"  # line 3
        + b"short\n"  # line 4
        + b"a1,not a time,1.2.3.4,d1,p,1,m1\n"  # line 5
        + good(2)
    )
    ds, _ = _load(tmp_path, "requests.csv", payload)
    text = summarize(ds.report)
    assert "2  requests/ts/unparseable timestamp  (first at line 3)" in text
    assert "1  requests/-/wrong number of fields  (first at line 4)" in text


def test_quarantine_reasons_line() -> None:
    q = pd.DataFrame(
        {
            "_row": [6, 3, 9],
            "_problem": [
                "ts: unparseable timestamp",
                "ts: unparseable timestamp; account_id: account_id not in accounts",
                "wrong number of fields (2, the header has 7)",
            ],
        }
    )
    assert quarantine_reasons(q) == (
        "2 rows: ts: unparseable timestamp, first at line 3; "
        "1 row: account_id: account_id not in accounts, first at line 3; "
        "1 row: wrong number of fields, first at line 9"
    )
