"""Benchmark of linkage.share: two providers cut from one generated world.

    python -m bench.share                       # scale 0.4, seed 8 (~3 min)
    python -m bench.share --scale 0.2 --seed 20 --out /tmp/share   # quick look

The world (``fixtures.world.make_world``) is cut into provider **A** and provider **B**:

- legit and grey accounts (history and sign-ups) go to A or B by organisation
  (``group``; an individual by account), half each, with their requests and identifiers;
- every farm campaign spans both: its accounts in creation order, the first
  ``1 - wave`` share is its **first wave**, at A, with its requests; the last ``wave``
  share and the world's own farm sign-ups are its **second wave**, which arrives at B
  as sign-ups after A banned the first (history waves are shifted to start one hour
  after the cut-off, their gaps kept), with no requests yet.

A and B each run ``linkage detect``.  A's analysts review A's ``review`` clusters
(label majority: farm → ``confirmed_farm`` on the members); A exports the indicators
of its blocked or confirmed clusters under the A–B key; B imports them and scores its
sign-ups (velocity + B's own clusters + the partner's indicators) against scoring
without them (**B alone**).  Measured:

- second-wave recall at sign-up (level ``block``; ``review or block`` too), overall and
  per campaign, and time to block per campaign: from the campaign's first sign-up at B
  to its first blocked sign-up, and how many sign-ups got through before it;
- harm to B's legit customers: per population, sign-ups blocked with and without the
  bundle, and B's legit *history* accounts that the partner evidence alone would block
  or review (they share public things with the farms: carrier / proxy ranges,
  disposable domains); how many touch any partner hash at all;
- a bundle A exported under another partnership's key: import refused, and forced
  through the matcher with the A–B key it matches nothing;
- the bundle holds no raw value of the world (every account id, e-mail and canonical
  mailbox, domain, IP and subnet, device and card token, user agent, extra identifier,
  A's cluster and template ids, prompt prefixes).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np
import pandas as pd

from linkage.fixtures import make_world, write_world
from linkage.identifiers.kinds import VALUE_MAPS
from linkage.identifiers.templates import assign_templates
from linkage.pipeline import run_detect
from linkage.settings import Settings
from linkage.share.bundle_store import IndicatorStore, read_bundle
from linkage.share.export import export_bundle, shared_clusters, write_bundle
from linkage.share.hashing import PartnershipKey, ShareError, write_key
from linkage.share.match import PartnerMatcher, match_accounts
from linkage.signup import SignupScorer, signup_identifiers
from linkage.store.rundir import load_run

RESULTS = Path(__file__).resolve().parent / "results"
HOUR = 3600


def _to_provider(labels: pd.DataFrame) -> pd.Series:
    """'A' or 'B' per legit/grey account: by organisation, an individual by account."""
    key = labels["group"].fillna("").astype(str)
    key = key.where(key != "", labels["account_id"].astype(str))
    h = key.map(lambda s: zlib.crc32(s.encode()) & 1)
    return pd.Series(np.where(h.to_numpy() == 0, "A", "B"), index=labels["account_id"].to_numpy())


def split_world(w: dict[str, pd.DataFrame], *, wave: float) -> dict[str, Any]:
    """The two providers' datasets and the second wave's account ids."""
    lab = w["labels"].copy()
    lab["account_id"] = lab["account_id"].astype(str)
    farm = lab.set_index("account_id")["is_farm"].astype(int)
    prov = _to_provider(lab)
    hist = w["accounts"].copy()
    sig = w["signups"].copy()
    cutoff = pd.to_datetime(hist["created_at"], utc=True, format="ISO8601").max()
    hist["_t"] = pd.to_datetime(hist["created_at"], utc=True, format="ISO8601")
    hf = hist[hist["account_id"].map(farm).eq(1)]
    group = lab.set_index("account_id")["group"]
    wave_rows = []
    for _g, part in hf.groupby(hf["account_id"].map(group)):
        part = part.sort_values("_t", kind="stable")
        n2 = max(1, round(len(part) * wave))
        second = part.iloc[len(part) - n2 :].copy()
        t0 = second["_t"].min()
        second["created_at"] = (cutoff + pd.Timedelta(hours=1) + (second["_t"] - t0)).dt.strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        wave_rows.append(second)
    second_wave = pd.concat(wave_rows).drop(columns="_t")
    hist = hist.drop(columns="_t")
    wave_ids = set(second_wave["account_id"]) | set(
        sig.loc[sig["account_id"].map(farm).eq(1), "account_id"]
    )
    a_ids = set(hist.loc[hist["account_id"].map(farm).eq(1), "account_id"]) - wave_ids
    a_ids |= {a for a in hist["account_id"] if farm.get(a, 0) == 0 and prov.get(a) == "A"}
    b_ids = {a for a in hist["account_id"] if farm.get(a, 0) == 0 and prov.get(a) == "B"}
    sig_b = pd.concat(
        [
            sig[sig["account_id"].map(lambda a: farm.get(a, 0) == 1 or prov.get(a) == "B")],
            second_wave,
        ],
        ignore_index=True,
    )
    # B receives its sign-ups in time order
    sig_b = sig_b.iloc[
        np.argsort(
            pd.to_datetime(sig_b["created_at"], utc=True, format="ISO8601").to_numpy(),
            kind="stable",
        )
    ]
    sig_a = sig[sig["account_id"].map(lambda a: farm.get(a, 0) == 0 and prov.get(a) == "A")]

    def tables(ids: set[str], signups: pd.DataFrame) -> dict[str, pd.DataFrame]:
        out = {
            "accounts": hist[hist["account_id"].isin(ids)].reset_index(drop=True),
            "requests": w["requests"][w["requests"]["account_id"].isin(ids)].reset_index(drop=True),
            "signups": signups.reset_index(drop=True),
            "labels": lab[lab["account_id"].isin(ids | set(signups["account_id"]))],
        }
        if "identifiers" in w:
            out["identifiers"] = w["identifiers"][w["identifiers"]["account_id"].isin(ids)]
        return out

    return {
        "A": tables(a_ids, sig_a),
        "B": tables(b_ids, sig_b),
        "wave": wave_ids,
        "labels": lab.set_index("account_id"),
    }


def analyst_feedback(run_dir: Path, labels: pd.DataFrame) -> pd.DataFrame:
    """A's review queue, judged by the ground truth: farm-majority review clusters confirmed."""
    run = load_run(run_dir)
    rows = []
    for c in run.clusters:
        if c["level"] != "review":
            continue
        members = [str(m) for m in c["members"]]
        is_farm = labels["is_farm"].reindex(members).fillna(0).astype(int)
        if is_farm.mean() > 0.5:
            rows += [
                {
                    "account_id": m,
                    "verdict": "confirmed_farm",
                    "ts": None,
                    "who": "bench",
                    "why": "",
                }
                for m in members
            ]
    return pd.DataFrame(rows, columns=["account_id", "verdict", "ts", "who", "why"])


def raw_values(w: dict[str, pd.DataFrame], run_dir: Path) -> set[str]:
    """Every raw (and canonical) value a bundle must not contain."""
    vals: set[str] = set()
    settings = Settings().identifiers
    for t in ("accounts", "signups"):
        df = w[t]
        for c in (
            "account_id",
            "email",
            "signup_ip",
            "device_fingerprint",
            "payment_fingerprint",
            "user_agent",
        ):
            vals |= set(df[c].dropna().astype(str))
        em = VALUE_MAPS["email"].many(df["email"].astype("string"), settings)
        vals |= set(em["email"].dropna().astype(str)) | set(em["email_domain"].dropna().astype(str))
        ip = VALUE_MAPS["ip"].many(df["signup_ip"].astype("string"), settings)
        vals |= set(ip["ip"].dropna().astype(str)) | set(ip["subnet"].dropna().astype(str))
    req = w["requests"]
    vals |= set(req["ip"].dropna().astype(str).unique())
    vals |= set(req["device_fingerprint"].dropna().astype(str).unique())
    prompts = req["prompt"].dropna().astype(str).drop_duplicates()
    vals |= {p[:40] for p in prompts.sample(min(5000, len(prompts)), random_state=0)}
    if "identifiers" in w:
        vals |= set(w["identifiers"]["value"].dropna().astype(str))
    run = load_run(run_dir)
    for c in run.clusters:
        vals.add(str(c["cluster_id"]))
        for ev in c.get("evidence") or []:
            for i in (ev.get("details") or {}).get("identifiers") or []:
                vals.add(str(i.get("value")))
    idx = run.signup_index
    vals |= set(idx["value"].astype(str))
    return {v for v in vals if len(v) >= 6}


def _templates_of(requests: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """``account_id, kind="template", value`` of every account's prompt templates."""
    ta = assign_templates(
        requests["prompt"].astype("string").reset_index(drop=True),
        settings=settings.identifiers.templates,
        seed=settings.seed,
    )
    out = pd.DataFrame(
        {
            "account_id": requests["account_id"].astype(str).to_numpy(),
            "kind": "template",
            "value": ta.template_id.astype("string").to_numpy(),
        }
    )
    return out.dropna().drop_duplicates(ignore_index=True).astype(str)


def _rate(mask: pd.Series) -> float:
    return round(float(mask.mean()), 4) if len(mask) else 0.0


def time_to_block(scored: pd.DataFrame) -> dict[str, Any]:
    """Per campaign: seconds from its first sign-up at B to its first blocked one."""
    out = {}
    for g, part in scored.groupby("group"):
        part = part.sort_values("t", kind="stable")
        blocked = part[part["level"] == "block"]
        if blocked.empty:
            out[g] = {
                "signups": len(part),
                "first_block_s": None,
                "through_before_block": len(part),
            }
        else:
            first = blocked["t"].iloc[0]
            out[g] = {
                "signups": len(part),
                "first_block_s": float((first - part["t"].iloc[0]).total_seconds()),
                "through_before_block": int((part["t"] < first).sum()),
            }
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    t_start = time.perf_counter()
    w = make_world(scale=args.scale, seed=args.seed)
    cut = split_world(w, wave=args.wave)
    lab = cut["labels"]
    settings = Settings()
    res: dict[str, Any] = {
        "scale": args.scale,
        "seed": args.seed,
        "wave": args.wave,
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": platform.platform(),
    }
    with TemporaryDirectory(prefix="bench-share-", dir=args.workdir) as tmp:
        tmpd = Path(tmp)
        runs = {}
        for p in ("A", "B"):
            write_world(cut[p], tmpd / f"data{p}", fmt="parquet")
            t0 = time.perf_counter()
            run_detect(tmpd / f"data{p}", tmpd / f"run{p}", settings=settings)
            runs[p] = tmpd / f"run{p}"
            res[f"detect_{p}_s"] = round(time.perf_counter() - t0, 1)
            res[f"provider_{p}"] = {
                "history_accounts": len(cut[p]["accounts"]),
                "farm_history_accounts": int(
                    lab["is_farm"].reindex(cut[p]["accounts"]["account_id"]).sum()
                ),
                "signups": len(cut[p]["signups"]),
            }
        k_ab = PartnershipKey.generate()
        k_ac = PartnershipKey.generate()
        write_key(tmpd / "ab.key", k_ab)
        run_a = load_run(runs["A"])
        fb = analyst_feedback(runs["A"], lab)
        acc_a = cut["A"]["accounts"][["account_id", "created_at"]]
        t0 = time.perf_counter()
        bundle, summary = export_bundle(
            run_a, k_ab, producer="provider A", feedback=fb, accounts=acc_a
        )
        res["export_s"] = round(time.perf_counter() - t0, 2)
        write_bundle(bundle, tmpd / "a_to_b.json")
        bundle_blocked, sum_blocked = export_bundle(
            run_a, k_ab, producer="provider A", accounts=acc_a
        )
        foreign, _ = export_bundle(run_a, k_ac, producer="provider A", feedback=fb, accounts=acc_a)
        write_bundle(foreign, tmpd / "a_to_c.json")
        text = (tmpd / "a_to_b.json").read_text(encoding="utf-8")
        shared_ids = shared_clusters(run_a, feedback=fb)
        shared_members = {
            str(m) for c in run_a.clusters if c["cluster_id"] in shared_ids for m in c["members"]
        }
        first_wave = lab.loc[
            lab.index.isin(cut["A"]["accounts"]["account_id"]) & (lab["is_farm"] == 1)
        ]
        banned_share = first_wave.index.isin(sorted(shared_members))
        banned_by_group = (
            pd.Series(banned_share, index=first_wave.index).groupby(first_wave["group"]).mean()
        )
        banned_groups = sorted(g for g, v in banned_by_group.items() if v >= 0.5)
        res["bundle"] = {
            **summary,
            "bytes": len(text.encode()),
            "analyst_confirmed_accounts": len(fb),
            "blocked_only_indicators": sum_blocked["indicators"],
            "first_wave_share_banned_by_campaign": {
                g: round(float(v), 3) for g, v in banned_by_group.items()
            },
            "farm_accounts_at_A_in_shared_clusters": int(
                lab["is_farm"].reindex(sorted(shared_members)).fillna(0).sum()
            ),
        }
        # raw-value scan
        raw = raw_values(w, runs["A"])
        leaked = sorted(v for v in raw if v in text)
        res["raw_scan"] = {
            "values_checked": len(raw),
            "found_in_bundle": len(leaked),
            "examples": leaked[:5],
        }
        # B: alone, then with A's bundle
        sig_b = cut["B"]["signups"]
        alone = SignupScorer.from_run(runs["B"], partners=PartnerMatcher([]))
        t0 = time.perf_counter()
        s_alone = alone.score_frame(sig_b)
        res["score_alone_s"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        imp = IndicatorStore(runs["B"]).import_bundle(
            tmpd / "a_to_b.json",
            key_file=tmpd / "ab.key",
            partner="provider A",
            confidence=args.confidence,
        )
        res["import_s"] = round(time.perf_counter() - t0, 2)
        res["import"] = imp
        withb = SignupScorer.from_run(runs["B"])
        t0 = time.perf_counter()
        s_with = withb.score_frame(sig_b)
        if args.keep:
            import shutil

            shutil.copytree(
                tmpd, Path(args.workdir or ".") / "bench-share-kept", dirs_exist_ok=True
            )
        res["score_with_s"] = round(time.perf_counter() - t0, 2)
        res["signups_scored"] = len(sig_b)

        def annotate(s: pd.DataFrame) -> pd.DataFrame:
            s = s.copy()
            s["account_id"] = s["account_id"].astype(str)
            s["t"] = pd.to_datetime(sig_b["created_at"].to_numpy(), utc=True, format="ISO8601")
            s["wave"] = s["account_id"].isin(cut["wave"])
            s["population"] = lab["population"].reindex(s["account_id"]).to_numpy()
            s["group"] = lab["group"].reindex(s["account_id"]).to_numpy()
            s["is_farm"] = lab["is_farm"].reindex(s["account_id"]).fillna(0).astype(int).to_numpy()
            return s

        a_s, w_s = annotate(s_alone), annotate(s_with)
        wave_a, wave_w = a_s[a_s["wave"]], w_s[w_s["wave"]]
        banned_w = wave_w[wave_w["group"].isin(banned_groups)]
        banned_a = wave_a[wave_a["group"].isin(banned_groups)]
        res["second_wave"] = {
            "signups": len(wave_w),
            "campaigns_banned_at_A": banned_groups,
            "signups_of_banned_campaigns": len(banned_w),
            "recall_block_banned_alone": _rate(banned_a["level"] == "block"),
            "recall_block_banned_with_bundle": _rate(banned_w["level"] == "block"),
            "recall_block_alone": _rate(wave_a["level"] == "block"),
            "recall_block_with_bundle": _rate(wave_w["level"] == "block"),
            "recall_review_or_block_alone": _rate(wave_a["level"] != "clear"),
            "recall_review_or_block_with_bundle": _rate(wave_w["level"] != "clear"),
            "partner_evidence_share": _rate(wave_w["evidence"].str.contains('"partner_indicator"')),
            "per_campaign": {
                g: {
                    "signups": len(part),
                    "recall_alone": _rate(a_s.loc[part.index, "level"] == "block"),
                    "recall_with_bundle": _rate(part["level"] == "block"),
                }
                for g, part in wave_w.groupby("group")
            },
            "time_to_block_alone": time_to_block(wave_a),
            "time_to_block_with_bundle": time_to_block(wave_w),
        }
        # blocked-only bundle (no analyst confirmations)
        parsed_blocked = read_bundle(json.dumps(json.loads(bundle_blocked.serialize())), key=k_ab)
        only_b = SignupScorer.from_run(
            runs["B"],
            partners=PartnerMatcher.from_bundle(
                parsed_blocked, k_ab, partner="provider A", confidence=args.confidence
            ),
        ).score_frame(sig_b)
        only_b = annotate(only_b)
        res["second_wave"]["recall_block_with_blocked_only_bundle"] = _rate(
            only_b.loc[only_b["wave"], "level"] == "block"
        )
        # legit harm: B's legit sign-ups
        legit_a, legit_w = a_s[a_s["is_farm"] == 0], w_s[w_s["is_farm"] == 0]
        res["legit_signups"] = {
            pop: {
                "n": len(part),
                "block_alone": _rate(legit_a.loc[part.index, "level"] == "block"),
                "block_with_bundle": _rate(part["level"] == "block"),
                "review_or_block_alone": _rate(legit_a.loc[part.index, "level"] != "clear"),
                "review_or_block_with_bundle": _rate(part["level"] != "clear"),
            }
            for pop, part in legit_w.groupby("population")
        }
        # legit harm: B's history accounts, partner evidence alone (the product's
        # match_accounts: sign-up attributes, the run's index of request ranges and devices,
        # and every account's prompt templates as B's engine groups them)
        acc_b = cut["B"]["accounts"].reset_index(drop=True)
        req_b = cut["B"]["requests"]
        tpl = _templates_of(req_b, settings)
        index_b = pd.concat(
            [load_run(runs["B"]).signup_index[["account_id", "kind", "value"]].astype(str), tpl],
            ignore_index=True,
        )
        matcher = withb.partners
        m = match_accounts(matcher, accounts=acc_b, index=index_b, settings=settings)
        m["population"] = lab["population"].reindex(m["account_id"]).to_numpy()
        pops = lab["population"].reindex(acc_b["account_id"].astype(str))
        block_t, review_t = settings.score.block_threshold, settings.score.review_threshold
        res["legit_history_partner_only"] = {
            pop: {
                "n": int(n),
                "touch_any_hash": round(int((m["population"] == pop).sum()) / int(n), 4),
                "touch_template": round(
                    int(((m["population"] == pop) & m["kinds"].str.contains("template")).sum())
                    / int(n),
                    4,
                ),
                "review_or_block": round(
                    int(((m["population"] == pop) & (m["score"] >= review_t)).sum()) / int(n), 4
                ),
                "block": round(
                    int(((m["population"] == pop) & (m["score"] >= block_t)).sum()) / int(n), 4
                ),
            }
            for pop, n in pops.value_counts().sort_index().items()
        }
        res["b_accounts_with_templates"] = int(tpl["account_id"].nunique())
        res["legit_history_matched_kinds"] = m["kinds"].value_counts().head(10).to_dict()
        # a bundle under another partnership key
        try:
            IndicatorStore(runs["B"]).import_bundle(
                tmpd / "a_to_c.json", key_file=tmpd / "ab.key", partner="provider A"
            )
            refused = None
        except ShareError as exc:
            refused = str(exc)
        forced = PartnerMatcher.from_bundle(
            read_bundle(tmpd / "a_to_c.json", key=None), k_ab, partner="provider C?", confidence=1.0
        )
        sig_ids = signup_identifiers(sig_b.reset_index(drop=True), settings=settings)
        sig_ids["account_id"] = (
            sig_b["account_id"].astype(str).to_numpy()[sig_ids["row"].to_numpy()]
        )
        res["foreign_key_bundle"] = {
            "import_refused": refused,
            "matches_b_signups": len(forced.match_frame(sig_ids)),
            "matches_b_history_accounts": len(
                match_accounts(forced, accounts=acc_b, index=index_b, settings=settings)
            ),
            "same_key_matches_b_signups": len(matcher.match_frame(sig_ids)),
        }
    res["total_s"] = round(time.perf_counter() - t_start, 1)
    return res


def _md(r: dict[str, Any]) -> str:
    sw = r["second_wave"]
    lines = [
        f"# Sharing benchmark (scale {r['scale']}, seed {r['seed']}, second wave {r['wave']:.0%} of each farm)",
        "",
        f"Run {r['date']} on {r['machine']}; `python -m bench.share --scale {r['scale']} --seed {r['seed']}`; total {r['total_s']} s "
        f"(detect A {r['detect_A_s']} s, B {r['detect_B_s']} s; export {r['export_s']} s, import {r['import_s']} s).",
        "",
        f"- A: {r['provider_A']['history_accounts']:,} history accounts ({r['provider_A']['farm_history_accounts']:,} farm, the first waves); "
        f"B: {r['provider_B']['history_accounts']:,} history accounts (no farm), {r['provider_B']['signups']:,} sign-ups "
        f"({sw['signups']:,} of them the farms' second wave).",
        f"- A's bundle: {r['bundle']['indicators']} indicators ({r['bundle']['blocked_only_indicators']} from blocked clusters, the rest analyst-confirmed review clusters), "
        f"{r['bundle']['bytes']:,} bytes, hashes {r['bundle']['hashes_by_kind']}.",
        f"- Share of each campaign's first wave in the clusters A shares (blocked or confirmed): {r['bundle']['first_wave_share_banned_by_campaign']}.",
        f"- Raw-value scan: {r['raw_scan']['values_checked']:,} raw values of the world checked, **{r['raw_scan']['found_in_bundle']} found** in the bundle.",
        "",
        "## Second wave at B's sign-up",
        "",
        "| | B alone | B with A's bundle |",
        "|---|---|---|",
        f"| recall (block), campaigns A banned ({', '.join(sw['campaigns_banned_at_A'])}; {sw['signups_of_banned_campaigns']} sign-ups) | {sw['recall_block_banned_alone']:.3f} | **{sw['recall_block_banned_with_bundle']:.3f}** |",
        f"| recall (block), every campaign | {sw['recall_block_alone']:.3f} | {sw['recall_block_with_bundle']:.3f} |",
        f"| recall (review or block) | {sw['recall_review_or_block_alone']:.3f} | {sw['recall_review_or_block_with_bundle']:.3f} |",
        f"| recall (block), bundle of blocked clusters only | | {sw['recall_block_with_blocked_only_bundle']:.3f} |",
        "",
        "| campaign | sign-ups | recall alone | recall with bundle | first block alone | first block with bundle | through before block (alone / with) |",
        "|---|---|---|---|---|---|---|",
    ]
    ta, tw = sw["time_to_block_alone"], sw["time_to_block_with_bundle"]

    def fmt(s: float | None) -> str:
        if s is None:
            return "never"
        return f"{s / 3600:.1f} h" if s >= 3600 else f"{s:.0f} s"

    for g, pc in sw["per_campaign"].items():
        lines.append(
            f"| {g} | {pc['signups']} | {pc['recall_alone']:.3f} | {pc['recall_with_bundle']:.3f} | "
            f"{fmt(ta[g]['first_block_s'])} | {fmt(tw[g]['first_block_s'])} | "
            f"{ta[g]['through_before_block']} / {tw[g]['through_before_block']} |"
        )
    lines += [
        "",
        "## B's legit customers",
        "",
        "Sign-ups (B's own legit sign-ups, scored with and without the bundle):",
        "",
        "| population | n | block alone | block with bundle | review+ alone | review+ with bundle |",
        "|---|---|---|---|---|---|",
    ]
    for pop, v in r["legit_signups"].items():
        lines.append(
            f"| {pop} | {v['n']} | {v['block_alone']:.3f} | {v['block_with_bundle']:.3f} | "
            f"{v['review_or_block_alone']:.3f} | {v['review_or_block_with_bundle']:.3f} |"
        )
    lines += [
        "",
        "History accounts (`match_accounts`: sign-up attributes, B's index of request ranges and "
        f"devices, the prompt templates of {r['b_accounts_with_templates']:,} accounts; the partner evidence alone):",
        "",
        "| population | n | touch a partner hash | touch a partner template | partner score ≥ review | ≥ block |",
        "|---|---|---|---|---|---|",
    ]
    for pop, v in r["legit_history_partner_only"].items():
        lines.append(
            f"| {pop} | {v['n']} | {v['touch_any_hash']:.4f} | {v['touch_template']:.4f} | "
            f"{v['review_or_block']:.4f} | {v['block']:.4f} |"
        )
    fk = r["foreign_key_bundle"]
    lines += [
        "",
        f"Matched kinds among B's history accounts: {r['legit_history_matched_kinds']}.",
        "",
        "## A bundle under another partnership key",
        "",
        f"- import: {'refused: ' + fk['import_refused'] if fk['import_refused'] else 'ACCEPTED'}",
        f"- forced through B's matcher (A–B key): {fk['matches_b_signups']} of B's sign-ups and "
        f"{fk['matches_b_history_accounts']} of B's history accounts match "
        f"(the A–B bundle matches {fk['same_key_matches_b_signups']} sign-ups).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=0.4)
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--wave", type=float, default=0.3, help="share of each farm in its second wave")
    ap.add_argument("--workdir", type=Path, default=None, help="temporary files under here")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (debugging)")
    ap.add_argument("--confidence", type=float, default=0.8, help="B's confidence in A")
    ap.add_argument(
        "--out", type=Path, default=RESULTS / "share", help="writes OUT.json and OUT.md"
    )
    args = ap.parse_args(argv)
    res = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(res, indent=2, default=str) + "\n")
    args.out.with_suffix(".md").write_text(_md(res))
    print(_md(res))
    return res


if __name__ == "__main__":
    main()
