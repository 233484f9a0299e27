"""`linkage action` and `linkage watermark detect|keys|rotate|perturb` end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from linkage.fixtures.responses import responses
from linkage.settings import RespondSettings, Settings
from linkage.store.db import Store
from linkage.store.watermark_keys import WatermarkKeys
from tests.store.run_factory import make_run, members


def linkage(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from linkage.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_action_detect_rotate_from_the_cli(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    run = make_run(tmp_path / "run", {"farm": members("f", 6)}, levels={"farm": "block"})
    # the run's settings choose silent degradation
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["settings"] = json.loads(
        Settings(respond=RespondSettings(block_action="degrade")).to_json()
    )
    (run / "manifest.json").write_text(json.dumps(manifest))
    store = Store(url)
    store.import_run(run)
    store.close()

    a = linkage("action", "f0", "--store", url)
    assert a.returncode == 0, a.stderr
    act = json.loads(a.stdout)
    assert act["action"] == "degrade" and act["watermark_key_id"].startswith("wm-")
    assert linkage("action", "nobody", "--store", url).returncode == 2

    texts = responses(150, seed=8)
    leak = tmp_path / "leak"
    leak.mkdir()
    src = tmp_path / "in.txt"
    with (leak / "leak.jsonl").open("w") as fh:
        for i, t in enumerate(texts):
            src.write_text(t)
            p = linkage("watermark", "perturb", str(src), "--account", "f0", "--store", url)
            assert p.returncode == 0, p.stderr
            fh.write(json.dumps({"text": p.stdout}) + "\n")
            if i == 1:
                break
    # a larger leak built in-process with the same key (subprocess per response is slow)
    store = Store(url)
    kid = act["watermark_key_id"]
    secret = WatermarkKeys(store.engine).secret(kid)
    from linkage.respond.perturb import perturb

    with (leak / "more.jsonl").open("w") as fh:
        for t in texts[2:]:
            fh.write(
                json.dumps({"response": perturb(t, act["perturbation_strength"], secret)}) + "\n"
            )
    store.close()
    d = linkage("watermark", "detect", str(leak), "--store", url, "--json")
    assert d.returncode == 0, d.stderr
    first = json.loads(d.stdout.splitlines()[0])
    assert first["key_id"] == kid and first["attributed"] and first["p_value"] < 1e-6
    assert first["log10_p"] < -6 and set(first["channels"]) == {"lexical", "form", "order"}
    t = linkage("watermark", "detect", str(leak), "--store", url)
    row = next(r for r in t.stdout.splitlines() if kid in r)
    assert "| 0 |" not in row and "| 0.0 |" not in row  # a p-value is never printed as 0
    assert "secret" not in d.stdout

    clean = tmp_path / "clean"
    clean.mkdir()
    for i, t in enumerate(texts[:50]):
        (clean / f"{i}.txt").write_text(t)
    assert linkage("watermark", "detect", str(clean), "--store", url).returncode == 1

    r = linkage("watermark", "rotate", first["cluster_id"], "--store", url)
    assert r.returncode == 0 and r.stdout.strip() != kid
    k = linkage("watermark", "keys", "--store", url)
    assert kid in k.stdout and "retired" in k.stdout and "active" in k.stdout
    assert linkage("watermark", "detect", str(tmp_path / "nope"), "--store", url).returncode == 2
