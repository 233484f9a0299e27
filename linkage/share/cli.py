"""``linkage share``: exchange farm indicators with a partner provider (docs/SHARING.md).

* ``linkage share keygen K`` — a new partnership key (agree on it out of band);
* ``linkage share export RUN --key-file K --out bundle.json`` — confirmed / blocked
  clusters' indicators as a STIX 2.1 bundle of keyed hashes;
* ``linkage share import BUNDLE --run RUN --key-file K --partner NAME`` — validate a
  partner's bundle and keep its indicators next to the run (they act at sign-up);
* ``linkage share match RUN`` — existing accounts that match partners' indicators;
* ``linkage share status RUN`` — partners, bundles and active indicators.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from linkage.settings import Settings

err_console = Console(stderr=True)
log = logging.getLogger(__name__)
share_app = typer.Typer(
    help="Share farm indicators with partner providers as STIX 2.1 bundles of keyed hashes "
    "(never raw identifiers); import theirs as sign-up evidence.",
    no_args_is_help=True,
)
KEY_OPTION = typer.Option(
    ...,
    "--key-file",
    "-k",
    help="The partnership key (hex or base64, 32+ bytes) agreed with this partner.",
)


def _store_option(what: str) -> Any:
    """The optional ``--store`` URL (default: ``LINKAGE_STORE_URL``); ``what`` it is for."""
    return typer.Option(None, "--store", envvar="LINKAGE_STORE_URL", help=f"Store URL: {what}")


@share_app.command("keygen")
def keygen_cmd(
    path: Path = typer.Argument(..., help="Key file to create (0600; refuses to overwrite)."),
) -> None:
    """Create a new random partnership key; give it to the partner over a secure channel."""
    from linkage.share.hashing import PartnershipKey, write_key

    key = PartnershipKey.generate()
    write_key(path, key)
    err_console.print(f"wrote partnership key {key.key_id} to {path} (mode 0600)")


@share_app.command("export")
def export_cmd(
    run: Path = typer.Argument(..., help="Run directory written by `linkage detect`."),
    key_file: Path = KEY_OPTION,
    out: Path = typer.Option(..., "--out", "-o", help="Bundle file to write (JSON)."),
    producer: str = typer.Option("linkage", help="Name of this provider in the bundle."),
    dataset: Path | None = typer.Option(
        None,
        help="Dataset directory of the run (sign-up times for first/last seen and cadence; "
        "default: the accounts file named in the run's manifest, if it is still there).",
    ),
    store: str | None = _store_option(
        "analysts' verdicts add confirmed clusters and hold back reversed ones."
    ),
) -> None:
    """Write the indicators of RUN's blocked or confirmed clusters as a STIX 2.1 bundle.

    Every identifier is an HMAC-SHA-256 under the partnership key of its canonical value
    (cards, mailboxes, domains, /24 and /48 subnets, device fingerprints, template
    signatures); no raw identifier, account id or prompt leaves.
    """
    from linkage.share.export import export_bundle, run_accounts, write_bundle
    from linkage.share.hashing import PartnershipKey
    from linkage.store.rundir import load_run

    key = PartnershipKey.from_file(key_file)
    r = load_run(run)
    feedback = None
    if store:
        from linkage.store.db import Store

        st = Store(store)
        try:
            feedback = st.feedback_frame()
        finally:
            st.close()
    bundle, summary = export_bundle(
        r, key, producer=producer, feedback=feedback, accounts=run_accounts(run, dataset)
    )
    write_bundle(bundle, out)
    kinds = ", ".join(f"{k} {n:,}" for k, n in summary["hashes_by_kind"].items()) or "none"
    err_console.print(
        f"wrote {summary['indicators']} indicator(s) of {summary['clusters_shared']} shared "
        f"cluster(s) to {out} (key {summary['key_id']}; hashes: {kinds})"
    )


@share_app.command("import")
def import_cmd(
    bundle: Path = typer.Argument(..., help="A partner's bundle (from `linkage share export`)."),
    run: Path = typer.Option(
        ...,
        "--run",
        "-r",
        envvar="LINKAGE_SHARE_DIR",
        help="Run directory whose signup scoring should use the indicators; or the directory "
        "named by LINKAGE_SHARE_DIR (the default), which serves every run without its own.",
    ),
    key_file: Path = KEY_OPTION,
    partner: str = typer.Option(..., "--partner", "-p", help="Who sent the bundle."),
    confidence: float | None = typer.Option(
        None, min=0.0, max=1.0, help="Weight of this partner's indicators (default 0.8)."
    ),
    store: str | None = _store_option(
        "also record the partner's indicators in its shared_indicators table."
    ),
) -> None:
    """Validate BUNDLE and keep its indicators in RUN/shared/ (all or nothing).

    A newer bundle from the same partner replaces the older one: indicators it no longer
    holds, or marks revoked, stop acting.  Malformed, foreign-key, oversized, replayed or
    expired bundles are refused with the reason and change nothing.
    """
    from linkage.share.bundle_store import IndicatorStore

    ind_store = IndicatorStore(run)
    res = ind_store.import_bundle(bundle, key_file=key_file, partner=partner, confidence=confidence)
    if store:
        from linkage.share.store_rows import mirror_partner
        from linkage.store.db import Store

        st = Store(store)
        try:
            n = mirror_partner(st.engine, partner, ind_store.load())
        finally:
            st.close()
        err_console.print(f"recorded {n} indicator(s) of {partner} in the store")
    err_console.print(
        f"imported {res['bundle_id']} from {partner}: {res['added']} new, {res['updated']} "
        f"updated, {res['revoked']} revoked, {res['withdrawn']} withdrawn; {res['active']} active "
        f"indicator(s), {res['hashes']:,} hashes, confidence {res['confidence']:.2f}"
    )
    typer.echo(json.dumps(res))


@share_app.command("match")
def match_cmd(
    run: Path = typer.Argument(..., help="Run directory with partners' indicators imported."),
    dataset: Path | None = typer.Option(
        None, help="Dataset directory of the run (default: the accounts file of its manifest)."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="CSV to write (default: RUN/shared/matches.csv)."
    ),
) -> None:
    """List RUN's existing accounts that match partners' indicators, with the evidence item.

    Accounts are matched on their sign-up attributes and, for clustered or flagged accounts,
    the ranges and devices of their requests; levels as for a sign-up (one family alone is
    never a block).
    """
    from linkage.errors import LinkageError
    from linkage.share.export import run_accounts
    from linkage.share.match import PartnerMatcher, match_accounts
    from linkage.store.rundir import load_run

    r = load_run(run)
    settings = Settings.model_validate(r.manifest.get("settings", {}))
    matcher = PartnerMatcher.for_run(
        run,
        block_threshold=settings.score.block_threshold,
        review_threshold=settings.score.review_threshold,
    )
    if not matcher:
        raise LinkageError(f"no active partner indicators in {run}: `linkage share import` first")
    res = match_accounts(
        matcher, accounts=run_accounts(run, dataset), index=r.signup_index, settings=settings
    )
    out = out or (run / "shared" / "matches.csv")
    res.to_csv(out, index=False)
    counts = res["level"].value_counts().to_dict() if len(res) else {}
    err_console.print(
        f"{len(res):,} account(s) match partner indicators → {out}: "
        + ", ".join(f"{k} {counts.get(k, 0):,}" for k in ("clear", "review", "block"))
    )


@share_app.command("status")
def status_cmd(run: Path = typer.Argument(..., help="Run directory.")) -> None:
    """Partners, bundles and active indicators imported into RUN (JSON)."""
    from linkage.share.bundle_store import IndicatorStore

    data = IndicatorStore(run).load()
    out = []
    for name, info in sorted(data["partners"].items()):
        inds = data["indicators"].get(name, {}).values()
        out.append(
            {
                "partner": name,
                "key_id": info["key_id"],
                "confidence": info["confidence"],
                "bundles": len(info["bundles"]),
                "last_bundle": info["bundles"][-1] if info["bundles"] else None,
                "active": sum(1 for i in inds if not i.get("revoked")),
                "withdrawn": sum(1 for i in inds if i.get("revoked")),
            }
        )
    typer.echo(json.dumps(out, indent=2))


def register(app: typer.Typer) -> None:
    """Mount ``linkage share`` on the main CLI."""
    app.add_typer(share_app, name="share")
