"""A newcomer's first runs: `detect` never writes into its input, what ingest set aside
is said on screen (also with -q), one bad byte does not lose an account, --verbose
works where a user types it, `clusters --level` checks its value, store commands are
quiet, and the demo says a few clean lines after reading its world once."""

from __future__ import annotations

import gzip
import json
import re
import shutil
from pathlib import Path

import pytest

from linkage.cli import _hoist_root_flags
from linkage.errors import LinkageError
from linkage.pipeline import check_out_dir
from tests.store.run_factory import make_run, members
from tests.test_cli import linkage

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "tiny"
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ", re.M)


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_detect_refuses_an_out_that_is_in_or_around_its_input(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(EXAMPLE, data)
    before = _snapshot(tmp_path)
    for out, how in (
        (data, "is the input dataset directory"),
        (data / "run", "lies inside the input dataset directory"),
        (tmp_path, "contains the input dataset directory"),
    ):
        proc = linkage("detect", str(data), "--out", str(out), check=False)
        assert proc.returncode == 2, proc.stderr
        assert how in proc.stderr and "Traceback" not in proc.stderr
        assert _snapshot(tmp_path) == before  # nothing written, nothing overwritten


def test_detect_out_that_is_a_file_is_a_user_error(tmp_path: Path) -> None:
    afile = tmp_path / "notes.txt"
    afile.write_text("mine\n")
    for out, how in ((afile, "is a file"), (afile / "run", f"lies under the file {afile}")):
        proc = linkage("detect", str(EXAMPLE), "--out", str(out), check=False)
        assert proc.returncode == 2, proc.stderr
        assert how in proc.stderr.replace("\n", " ")
        assert "internal error" not in proc.stderr and "bug in linkage" not in proc.stderr
    assert afile.read_text() == "mine\n"


def test_check_out_dir_allows_a_sibling_and_a_dataset_object(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    assert check_out_dir(tmp_path / "data", tmp_path / "run") == tmp_path / "run"
    assert check_out_dir(tmp_path / "data", tmp_path / "data-run") == tmp_path / "data-run"
    with pytest.raises(LinkageError, match="is the input dataset directory"):
        check_out_dir(tmp_path / "data", tmp_path / "data" / ".." / "data")


def test_set_aside_input_is_said_in_the_run_summary_even_with_quiet(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(EXAMPLE, data)
    body = (data / "requests.csv").read_bytes()
    header, rows = body.split(b"\n", 1)
    packed = gzip.compress(header + b"\n" + rows * 40, mtime=0)  # 1,160 requests
    (data / "requests.csv.gz").write_bytes(packed[: len(packed) // 2])
    (data / "requests.csv").unlink()
    with (data / "accounts.csv").open("ab") as fh:
        fh.write(b"ragged,line\n")  # line 13: quarantined
    for args in (["-q", "detect", str(data), "--out", str(tmp_path / "r1")],
                 ["detect", str(data), "--out", str(tmp_path / "r2"), "-q"]):  # fmt: skip
        proc = linkage(*args)
        run = Path(args[args.index("--out") + 1])
        man = json.loads((run / "manifest.json").read_text())
        read = man["ingest"]["tables"]["requests"]["rows_read"]
        assert 0 < read < 1160
        err = proc.stderr.replace("\n", " ")
        assert "warning: input rows set aside or changed" in err
        assert "requests.csv.gz: gzip stream ends early" in err
        assert f"{read:,} rows read before the cut, the rest is lost" in err
        quarantine = run / "quarantine" / "accounts.csv"
        assert quarantine.is_file() and f"→ {quarantine}" in err
        assert "reading accounts.csv" not in err and "identifiers [" not in err  # still -q


def test_latin1_byte_in_an_email_keeps_the_account_in_the_output(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(EXAMPLE, data)
    acc = data / "accounts.csv"
    raw = acc.read_bytes()
    assert b"kx82.q@mailinator.com" in raw  # farm-2, line 3
    acc.write_bytes(raw.replace(b"kx82.q@mailinator.com", b"kx82.q\xe9@mailinator.com"))
    proc = linkage("-q", "detect", str(data), "--out", str(tmp_path / "run"))
    out = (tmp_path / "run" / "accounts.csv").read_text().splitlines()
    assert len(out) == 1 + 11 and any(line.startswith("farm-2,") for line in out)
    man = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert man["counts"]["quarantined_rows"] == 0
    assert man["counts"]["requests"] == 29  # farm-2's requests kept too
    [p] = [p for p in man["ingest"]["problems"] if p["column"] == "email"]
    assert (p["file"], p["row"], p["severity"]) == ("accounts.csv", 3, "warning")
    assert p["value"] == "kx82.q\\xe9@mailinator.com"
    assert "first at line 3, column 'email'" in proc.stderr.replace("\n", " ")


def test_root_flags_are_accepted_after_the_command() -> None:
    assert _hoist_root_flags(["detect", "d", "--out", "r", "--verbose"]) == [
        "--verbose",
        "detect",
        "d",
        "--out",
        "r",
    ]
    assert _hoist_root_flags(["-q", "keys", "list", "-v", "--", "-q"]) == [
        "-q",
        "-v",
        "keys",
        "list",
        "--",
        "-q",
    ]
    assert _hoist_root_flags(["--help"]) == ["--help"]


def test_verbose_works_where_the_error_hint_says(tmp_path: Path) -> None:
    proc = linkage("explain", str(tmp_path / "nope"), "c1", "--verbose", check=False)
    assert proc.returncode == 2
    assert "run directory not found" in proc.stderr
    assert "No such option" not in proc.stderr
    run = make_run(tmp_path / "run", {"farm": members("f", 3)}, levels={"farm": "block"})
    quiet = linkage("clusters", str(run), "-q")
    assert quiet.stdout.startswith("farm\t3\t")


def test_clusters_unknown_level_is_a_usage_error(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", {"farm": members("f", 3)}, levels={"farm": "block"})
    proc = linkage("clusters", str(run), "--level", "blok", check=False)
    assert proc.returncode == 2
    assert "'blok' is not one of 'block', 'review', 'clear'" in proc.stderr
    assert "Usage:" in proc.stderr and proc.stdout == ""


def test_store_commands_print_no_alembic_lines(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    made = linkage("keys", "create", "--scope", "read", "--store", url)
    listed = linkage("keys", "list", "--store", url)
    for proc in (made, listed):
        assert "alembic" not in proc.stderr, proc.stderr
    # quiet by default, not lost: creating a store with --verbose shows the migration
    loud = linkage("--verbose", "keys", "list", "--store", f"sqlite:///{tmp_path / 'new.db'}")
    assert "alembic.runtime.migration" in loud.stderr


@pytest.mark.slow
def test_demo_says_a_few_clean_lines_and_reads_its_world_once(tmp_path: Path) -> None:
    proc = linkage("demo", "--out", str(tmp_path / "demo"))
    lines = proc.stderr.splitlines()
    assert len(lines) <= 6, proc.stderr
    assert not _LOG_LINE.search(proc.stderr), proc.stderr  # one format, no log lines
    assert all(re.match(r"^ +\d+\.\ds ", ln) for ln in lines), lines
    assert sum(" ingest: " in ln for ln in lines) == 1
    for run in ("run", "run-rules"):  # both runs got the dataset read once, not a path
        man = json.loads((tmp_path / "demo" / run / "manifest.json").read_text())
        assert "ingest" not in man["timings"] and man["counts"]["accounts"] > 300
    assert re.search(r"^\| linkage \| 0\.\d{3} ", proc.stdout, re.M)
    assert re.search(r"^\| rules +\| 0\.\d{3} ", proc.stdout, re.M)
