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
from linkage.ingest.tolerant import ESCAPED_MESSAGE

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


def _warnings(ds) -> list[tuple[int | None, str | None, str, str | None]]:
    return [
        (p.row, p.column, p.message, p.value) for p in ds.report.problems if p.severity == "warning"
    ]


def test_ragged_line_quarantined_and_bad_utf8_kept_escaped(tmp_path: Path) -> None:
    payload = (
        HEADER
        + good(1)
        + b"onlytwo,fields\n"  # line 3
        + good(2)
        + b"a1,2024-02-01T00:00:09Z,1.2.3.4,d1,caf\xe9 latin-1,5,m1\n"  # line 5
        + good(3)
    )
    ds, q = _load(tmp_path, "requests.csv", payload)
    assert ds.requests["prompt"].tolist() == [
        "prompt 1",
        "prompt 2",
        "caf\\xe9 latin-1",
        "prompt 3",
    ]
    assert _errors(ds) == [(3, "wrong number of fields")]
    assert _warnings(ds) == [(5, "prompt", ESCAPED_MESSAGE, "caf\\xe9 latin-1")]
    t = ds.report.tables["requests"]
    assert (t.rows_read, t.rows_kept, t.rows_quarantined) == (5, 4, 1)
    assert q["_row"].tolist() == ["3"]
    assert q["_problem"].tolist() == ["wrong number of fields (2, the header has 7)"]
    assert q["_raw"][0] == "onlytwo,fields"
    assert any("1 value not valid UTF-8" in n and "line 5" in n for n in ds.report.notices)


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
    assert len(ds.requests) == 4
    assert ds.requests["response_tokens"].tolist() == [3, 3, 3, 7]
    assert _errors(ds) == [(2, "invalid JSON"), (4, "not a JSON object")]
    assert q["_row"].tolist() == ["2", "4"]
    # the latin-1 byte costs nothing: the line is kept, the byte escaped and reported
    assert ds.requests["prompt"].tolist()[2] == "\\xff"
    assert (6, "prompt", ESCAPED_MESSAGE, "\\xff") in _warnings(ds)
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


def _latin1(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert old in data
    path.write_bytes(data.replace(old, new))


def test_latin1_byte_in_an_email_keeps_the_account_its_requests_and_label(
    tmp_path: Path,
) -> None:
    """The contract's one output row per input account: a byte that is not UTF-8 in
    one e-mail must not make the account (then its requests, then its label) vanish."""
    ds_dir = write_dataset(tmp_path / "ds", small_tables())
    _latin1(ds_dir / "accounts.csv", b"x@example.com", b"caf\xe9@example.com")  # a1, line 2
    ds = load_dataset(ds_dir, quarantine_dir=tmp_path / "q")
    assert ds.accounts["account_id"].tolist() == ["a1", "a2", "a3"]
    assert ds.accounts["email"][0] == "caf\\xe9@example.com"
    assert (ds.requests["account_id"] == "a1").sum() == 2
    assert "a1" in set(ds.labels["account_id"])
    assert ds.report.rows_quarantined == 0 and not (tmp_path / "q").exists()
    [p] = [p for p in ds.report.problems if p.message == ESCAPED_MESSAGE]
    assert (p.table, p.file, p.row, p.column, p.severity) == (
        "accounts",
        "accounts.csv",
        2,
        "email",
        "warning",
    )
    assert ds.report.notices == [
        "accounts.csv: 1 value not valid UTF-8, kept with the bad bytes escaped as \\xNN "
        "(first at line 2, column 'email')"
    ]


def test_latin1_account_id_still_joins_its_requests(tmp_path: Path) -> None:
    """The same bad bytes always give the same text, so an id matches across files."""
    t = small_tables()
    t["labels"] = t["labels"][t["labels"]["account_id"] != "s1"]  # no signups table here
    ds_dir = write_dataset(tmp_path / "ds", {k: t[k] for k in ("accounts", "requests", "labels")})
    _latin1(ds_dir / "accounts.csv", b"\na2,", b"\na\xe92,")
    _latin1(ds_dir / "requests.csv", b"\na2,", b"\na\xe92,")
    _latin1(ds_dir / "labels.csv", b"\na2,", b"\na\xe92,")
    ds = load_dataset(ds_dir)
    assert "a\\xe92" in set(ds.accounts["account_id"])
    assert (ds.requests["account_id"] == "a\\xe92").sum() == 1
    assert "a\\xe92" in set(ds.labels["account_id"])
    assert ds.report.rows_quarantined == 0
    assert ds.report.problem_counts == {
        f"{t}/account_id/{ESCAPED_MESSAGE}": 1 for t in ("accounts", "labels", "requests")
    }


def test_many_escaped_values_are_all_counted(tmp_path: Path) -> None:
    """A whole latin-1 export: every row kept, every value counted, a capped sample listed."""
    from linkage.ingest.tolerant import MAX_ESCAPED_LISTED

    n = MAX_ESCAPED_LISTED + 50
    body = b"".join(
        f"a1,2024-02-01T00:00:{i % 60:02d}Z,1.2.3.4,d1,".encode() + b"r\xe9sum\xe9,1,m1\n"
        for i in range(n)
    )
    ds, q = _load(tmp_path, "requests.csv", HEADER + body)
    assert len(ds.requests) == n and q is None
    assert ds.report.problem_counts == {f"requests/prompt/{ESCAPED_MESSAGE}": n}
    assert ds.report.problem_first == {f"requests/prompt/{ESCAPED_MESSAGE}": 2}
    assert f"{n:,} values not valid UTF-8" in ds.report.notices[0]


def test_gzip_cut_short_is_a_notice_with_the_rows_read(tmp_path: Path) -> None:
    body = HEADER + b"".join(good(i % 60) for i in range(400))
    packed = gzip.compress(body, mtime=0)
    ds, _ = _load(tmp_path, "requests.csv.gz", packed[: len(packed) // 2])
    read = ds.report.tables["requests"].rows_read
    assert 0 < read < 400
    [notice] = ds.report.notices
    assert notice.startswith("requests.csv.gz: gzip stream ends early")
    assert f"{read:,} rows read before the cut, the rest is lost" in notice
