"""The CLI behaves like a CLI: usage errors, `clusters`, a bare key on
stdout, Markdown not wrapped when piped, -q, progress printed once with a bar and log lines
in the same form."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.store.run_factory import make_run, members
from tests.test_cli import linkage

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "tiny"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["detcet"], "No such command 'detcet'"),
        (["detect"], "Missing argument"),
        (["--bogus"], "No such option: --bogus"),
        (["detect", "x", "--out", "y", "--bogus"], "No such option: --bogus"),
        (["keys", "create"], "Missing option '--scope'"),
        ([], "Usage:"),
    ],
)
def test_usage_errors_are_usage_errors(args: list[str], needle: str) -> None:
    proc = linkage(*args, check=False)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stdout + proc.stderr
    assert "Usage:" in proc.stdout + proc.stderr
    assert "internal error" not in proc.stderr and "bug in linkage" not in proc.stderr


def test_keys_create_prints_the_bare_key_on_stdout(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    proc = linkage("keys", "create", "--scope", "read", "--scope", "score", "--store", url)
    assert re.fullmatch(r"lk_\S+\n", proc.stdout), proc.stdout
    assert "store it now" in proc.stderr


def test_clusters_lists_id_size_score_level_top_evidence(tmp_path: Path) -> None:
    run = make_run(
        tmp_path / "run",
        {"farm": members("f", 6), "pair": members("p", 2)},
        levels={"farm": "block", "pair": "review"},
        scores={"farm": 0.97, "pair": 0.6},
    )
    lines = linkage("clusters", str(run)).stdout.splitlines()
    assert [ln.split("\t")[:4] for ln in lines] == [
        ["farm", "6", "0.970", "block"],
        ["pair", "2", "0.600", "review"],
    ]
    top = json.loads((run / "clusters.jsonl").read_text().splitlines()[0])["evidence"]
    best = max(top, key=lambda e: e["contribution"])["summary"]
    assert lines[0].split("\t")[4] == best
    only = linkage("clusters", str(run), "--level", "review", "--json").stdout.splitlines()
    assert [json.loads(x)["cluster_id"] for x in only] == ["pair"]


def test_example_dataset_detect_quiet_and_progress_once(tmp_path: Path) -> None:
    loud = linkage("detect", str(EXAMPLE), "--out", str(tmp_path / "run"))
    err = loud.stderr
    assert err.count("reading accounts.csv") == 1  # not a log line and a progress line
    assert "stage identifiers:" not in err
    assert re.search(r"identifiers \[#*\.*\] 2/5 identifier aggregation", err)
    # the stages' log lines read like the progress lines: elapsed seconds, no timestamp,
    # level or logger name (those are --verbose's)
    assert not re.search(r"^\d{4}-\d\d-\d\d .* INFO ", err, re.M)
    assert re.search(r"^ +\d+\.\ds graph: 11 accounts, \d+ identifiers", err, re.M)
    accounts = (tmp_path / "run" / "accounts.csv").read_text().splitlines()
    assert len(accounts) == 1 + 11  # every account of examples/tiny has a row
    quiet = linkage("-q", "detect", str(EXAMPLE), "--out", str(tmp_path / "run2"))
    assert quiet.stderr == ""
    assert "accounts" in quiet.stdout  # the summary table is the result, not progress


def test_quarantined_lines_on_screen_with_line_numbers(tmp_path: Path) -> None:
    data = tmp_path / "ds"
    shutil.copytree(EXAMPLE, data)
    req = data / "requests.csv"
    lines = req.read_bytes().splitlines(keepends=True)
    lines.insert(3, b"onlytwo,fields\n")  # line 4
    lines.insert(6, b"ind-1,2026-01-05T08:10:00Z,192.0.2.41,dev-i1,caf\xe9,1,m\n")  # line 7
    req.write_bytes(b"".join(lines))
    proc = linkage("detect", str(data), "--out", str(tmp_path / "run"))
    assert "1 row: wrong number of fields, first at line 4" in proc.stderr
    # a latin-1 byte costs nothing but a warning: the line is kept, the byte escaped
    assert "1 value not valid UTF-8, kept with the bad bytes escaped" in proc.stderr
    assert "first at line 7, column 'prompt'" in proc.stderr
    man = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert man["counts"]["quarantined_rows"] == 1
    assert man["counts"]["requests"] == 30
    assert "quarantined rows" in proc.stdout


def test_evaluate_markdown_is_not_wrapped_when_piped(tmp_path: Path) -> None:
    run = tmp_path / "run"
    linkage("-q", "detect", str(EXAMPLE), "--out", str(run))
    shutil.copytree(run, tmp_path / "same")
    out = linkage(
        "evaluate", str(EXAMPLE), "--run", str(run), "--run", str(tmp_path / "same")
    ).stdout
    table = [ln for ln in out.splitlines() if ln.startswith("| method")]
    assert table, out
    start = out.splitlines().index(table[0])
    rows = out.splitlines()[start : start + 4]
    assert all(r.startswith("|") and r.endswith("|") for r in rows), rows
    assert max(len(r) for r in rows) > 80  # a wrapped table would be cut at 80 columns


def test_log_lines_and_progress_lines_share_one_clock(capsys) -> None:
    """A run's log lines and its progress lines count from the same start (they used to
    keep a clock each, so their elapsed times disagreed)."""
    import logging
    import time

    from linkage import cli

    saved = cli._CLOCK["t0"]
    try:
        cli._CLOCK["t0"] = time.perf_counter() - 1234.0
        record = logging.LogRecord("linkage", logging.INFO, __file__, 1, "stage done", None, None)
        logged = cli._CliFormatter().format(record)
        cli._progress_printer(quiet=False)("identifiers: 1/2 prompts")
        say, _ = cli._demo_printers()
        say("demo line")
    finally:
        cli._CLOCK["t0"] = saved
    err = capsys.readouterr().err
    assert logged.split()[0].startswith("1234.")
    stamps = [line.split()[0] for line in err.splitlines() if line.strip()]
    assert len(stamps) == 2 and all(s.startswith("1234.") for s in stamps), err
