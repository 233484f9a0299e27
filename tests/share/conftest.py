"""A tiny hand-made run (one blocked farm, one office, strangers on a carrier range) and keys."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from linkage.share.hashing import PartnershipKey, write_key
from linkage.store.rundir import write_run

FARM = [f"farm{i}" for i in range(6)]
OFFICE = [f"office{i}" for i in range(4)]
STRANGERS = [f"nat{i}" for i in range(60)]
#: canonical values the farm holds (what the index of a real run holds)
FARM_VALUES = {
    "payment": "pay_farmcard_1",
    "email": "farmboss@gmail.com",
    "email_domain": "farmco.example",
    "subnet": "203.0.113.0/24",
    "device": "fp_kit_777",
}
NAT_SUBNET = "198.51.100.0/24"  # a carrier NAT: the farm and 60 strangers
TEMPLATE = "t00c0ffee1234"  # a public template: the farm and the office


def _index() -> pd.DataFrame:
    rows = []
    for a in FARM:
        for k, v in FARM_VALUES.items():
            rows.append((k, v, a, 1.0, len(FARM)))
        rows.append(("subnet", NAT_SUBNET, a, 0.1, len(FARM) + len(STRANGERS)))
    for a in OFFICE:
        rows.append(("email_domain", "office.example", a, 1.0, len(OFFICE)))
    return pd.DataFrame(rows, columns=["kind", "value", "account_id", "weight", "holders"])


def make_tiny_run(out: Path, *, farm_level: str = "block") -> Path:
    accounts = pd.DataFrame(
        {
            "account_id": FARM + OFFICE + STRANGERS,
            "cluster_id": ["cfarm"] * len(FARM)
            + ["coffice"] * len(OFFICE)
            + [None] * len(STRANGERS),
            "score": [0.97] * len(FARM) + [0.2] * len(OFFICE) + [0.01] * len(STRANGERS),
            "level": [farm_level] * len(FARM) + ["clear"] * (len(OFFICE) + len(STRANGERS)),
        }
    )
    template_ev = {
        "kind": "coordination",
        "summary": "",
        "contribution": 1.0,
        "details": {
            "identifiers": [
                {"kind": "template", "value": TEMPLATE, "members": 6, "holders": 10},
                {"kind": "ip", "value": "203.0.113.9", "members": 6, "holders": 6},
            ]
        },
    }
    clusters = [
        {
            "cluster_id": "cfarm",
            "size": len(FARM),
            "score": 0.97,
            "level": farm_level,
            "members": FARM,
            "evidence": [template_ev],
        },
        {
            "cluster_id": "coffice",
            "size": len(OFFICE),
            "score": 0.2,
            "level": "clear",
            "members": OFFICE,
            "evidence": [],
        },
    ]
    manifest = {"method": "graph", "created_at": "2026-03-02T00:00:00Z", "settings": {}}
    return write_run(
        out, accounts=accounts, clusters=clusters, manifest=manifest, signup_index=_index()
    )


@pytest.fixture
def tiny_run(tmp_path: Path) -> Path:
    return make_tiny_run(tmp_path / "run")


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return write_key(tmp_path / "ab.key", PartnershipKey(bytes(range(32))))


@pytest.fixture
def key(key_file: Path) -> PartnershipKey:
    return PartnershipKey.from_file(key_file)
