// linkage review console: plain JavaScript, no framework, no build step.
// Every piece of data is put in the page with textContent / setAttribute (never
// innerHTML), so an account id or a prompt holding markup stays text.
// The API key is never kept here: the server holds it behind an HttpOnly session
// cookie. The CSRF token lives in this closure only (not in any storage).
"use strict";
(function () {
  const state = { csrf: null, key: null, runs: null, flash: null };
  const timings = (window.consoleTimings = {});
  const LEVELS = ["block", "review", "clear"];
  const VERDICTS = [
    ["confirmed_farm", "confirm: a farm"],
    ["false_positive", "false positive"],
    ["appeal_upheld", "appeal upheld"],
  ];
  const KIND_COLORS = {
    ip: "#dd8452", subnet: "#f2b880", email: "#55a868", email_domain: "#8fd19e",
    device: "#c44e52", payment: "#8172b3", user_agent: "#937860", template: "#da8bc3",
  };
  const LEVEL_COLORS = { block: "#c0392b", review: "#e6a100", clear: "#2e86ab", "": "#98a2b3" };
  const SVGNS = "http://www.w3.org/2000/svg";

  // ------------------------------------------------------------------ DOM helpers
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }
  const $ = (id) => document.getElementById(id);
  const fmt = (x, d = 3) => (x === null || x === undefined ? "–" : Number(x).toFixed(d));
  const int = (x) => Number(x || 0).toLocaleString("en-US");
  const badge = (level) => el("span", { class: `badge ${level || "none"}` }, level || "none");
  const link = (hash, text) => el("a", { href: hash }, text);
  const clusterHash = (id) => `#/cluster/${encodeURIComponent(id)}`;
  const accountHash = (id) => `#/account/${encodeURIComponent(id)}`;
  const short = (s, n) => (s.length > n ? s.slice(0, n - 1) + "…" : s);

  // ------------------------------------------------------------------ API
  class ApiFailure extends Error {
    constructor(status, body) {
      super((body && body.error && body.error.message) || `HTTP ${status}`);
      this.status = status;
      this.code = body && body.error && body.error.code;
    }
  }
  async function api(path, { method = "GET", body } = {}) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") {
      headers["Content-Type"] = "application/json";
      if (state.csrf) headers["X-CSRF-Token"] = state.csrf;
    }
    const resp = await fetch(`/console/api/${path}`, {
      method, headers, credentials: "same-origin", cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (!resp.ok) {
      if (resp.status === 401 && path !== "login") showLogin("Your session ended: log in again.");
      throw new ApiFailure(resp.status, data);
    }
    return data;
  }

  // ------------------------------------------------------------------ login
  function showLogin(message) {
    state.csrf = null;
    state.key = null;
    $("whoami").hidden = true;
    $("view").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("login-key").focus();
    document.body.dataset.view = "login";
  }
  function loggedIn(who) {
    state.csrf = who.csrf;
    state.key = who;
    $("keyname").textContent = `${who.name} (${who.key_id}) · ${who.scopes.join(", ")}`;
    $("whoami").hidden = false;
    $("login").hidden = true;
    $("view").hidden = false;
  }
  async function onLogin(ev) {
    ev.preventDefault();
    const input = $("login-key");
    const key = input.value;
    input.value = ""; // do not keep the key in the page
    try {
      loggedIn(await api("login", { method: "POST", body: { key } }));
      route();
    } catch (e) {
      $("login-error").textContent = e.status === 401 ? "This key is not valid (or revoked)." : e.message;
    }
  }
  async function onLogout() {
    try { await api("logout", { method: "POST", body: {} }); } catch (e) { /* gone already */ }
    showLogin("Logged out.");
  }

  // ------------------------------------------------------------------ router
  function parseHash() {
    const h = location.hash.replace(/^#\/?/, "");
    const [path, query] = h.split("?");
    const parts = path.split("/").map((p) => decodeURIComponent(p));
    return { view: parts[0] || "queue", id: parts.slice(1).join("/"), params: new URLSearchParams(query || "") };
  }
  let routeToken = 0;
  async function route() {
    if (!state.csrf) return;
    const token = ++routeToken;
    const t0 = performance.now();
    const { view, id, params } = parseHash();
    const main = $("view");
    document.body.dataset.view = "loading";
    try {
      let content;
      if (view === "cluster" && id) content = await clusterView(id);
      else if (view === "account" && id) content = await accountView(id);
      else content = await queueView(params);
      if (token !== routeToken) return;
      main.replaceChildren(content);
      window.scrollTo(0, 0);
      timings[view === "cluster" || view === "account" ? view : "queue"] = performance.now() - t0;
      // since navigation start: the first view's paint on a page load
      if (timings.firstPaint === undefined) timings.firstPaint = performance.now();
      document.body.dataset.view = view === "cluster" || view === "account" ? view : "queue";
    } catch (e) {
      if (token !== routeToken || e.status === 401) return;
      main.replaceChildren(el("div", { class: "card" }, el("p", { class: "error" }, e.message), link("#/queue", "back to the queue")));
      document.body.dataset.view = "error";
    }
  }

  // ------------------------------------------------------------------ queue
  async function queueView(params) {
    const level = params.get("level") || "flagged";
    const verdict = params.get("verdict") || "";
    const sort = params.get("sort") || "uncertain";
    const run = params.get("run") || "";
    const offset = Math.max(0, parseInt(params.get("offset") || "0", 10) || 0);
    const limit = 50;
    const q = new URLSearchParams({ sort, limit, offset });
    if (level === "flagged") { q.append("level", "review"); q.append("level", "block"); }
    else if (level !== "all") q.append("level", level);
    else LEVELS.forEach((l) => q.append("level", l));
    if (verdict) q.set("verdict", verdict);
    if (run) q.set("run", run);
    const [page, runs] = await Promise.all([
      api(`queue?${q}`),
      state.runs ? Promise.resolve(state.runs) : api("runs").then((r) => (state.runs = r)),
    ]);

    const go = (changes) => {
      const p = new URLSearchParams({ level, verdict, sort, run, offset: 0, ...changes });
      for (const [k, v] of [...p.entries()]) if (v === "" || (k === "offset" && v === "0")) p.delete(k);
      location.hash = `#/queue?${p}`;
    };
    const select = (name, value, options, onChange) => {
      const s = el("select", { name }, options.map(([v, t]) => el("option", { value: v, selected: v === value }, t)));
      s.addEventListener("change", () => onChange(s.value));
      return s;
    };
    const filters = el("div", { class: "filters" },
      el("label", {}, "level", select("level", level, [["flagged", "flagged (review + block)"], ["block", "block"], ["review", "review"], ["clear", "clear"], ["all", "all"]], (v) => go({ level: v }))),
      el("label", {}, "verdict", select("verdict", verdict, [["", "any status"], ["none", "no verdict yet"], ["any", "with a verdict"], ...VERDICTS], (v) => go({ verdict: v }))),
      el("label", {}, "run", select("run", run, [["", "latest run"], ...runs.runs.map((r) => [String(r.run_id), `run ${r.run_id} · ${int(r.n_clusters)} clusters`])], (v) => go({ run: v }))),
      el("label", {}, "order", select("sort", sort, [["uncertain", "needs a label most (nearest a line)"], ["-score", "score, high first"], ["score", "score, low first"], ["-size", "size, large first"]], (v) => go({ sort: v }))),
    );
    const rows = page.items.map((c, i) => {
      const tr = el("tr", { class: "row-link", "data-cluster": c.cluster_id },
        el("td", { class: "num muted" }, offset + i + 1),
        el("td", {}, link(clusterHash(c.cluster_id), c.cluster_id)),
        el("td", {}, badge(c.level)),
        el("td", { class: "num" }, fmt(c.score)),
        el("td", { class: "num" }, int(c.size)),
        el("td", {}, c.verdict ? el("span", {}, c.verdict.replace("_", " "), el("span", { class: "muted" }, ` (${c.verdicts})`)) : el("span", { class: "muted" }, "none")),
        el("td", {}, short(c.top_evidence || "", 160)),
      );
      tr.addEventListener("click", (ev) => { if (ev.target.tagName !== "A") location.hash = clusterHash(c.cluster_id); });
      return tr;
    });
    const last = Math.min(offset + page.items.length, page.total);
    const prev = el("button", { type: "button", disabled: offset === 0 }, "← previous");
    const next = el("button", { type: "button", disabled: offset + limit >= page.total }, "next →");
    prev.addEventListener("click", () => go({ offset: Math.max(0, offset - limit) }));
    next.addEventListener("click", () => go({ offset: offset + limit }));
    return el("div", {},
      el("h1", {}, "Review queue"),
      el("p", { class: "muted" },
        page.run_id ? `Run ${page.run_id}; review line ${page.review_threshold}, block line ${page.block_threshold}. ` : "No run imported yet. ",
        sort === "uncertain" ? "Clusters whose score sits nearest a line come first: a verdict on them teaches the engine most." : ""),
      el("div", { class: "card" }, filters,
        el("table", { id: "queue" },
          el("thead", {}, el("tr", {}, ["#", "cluster", "level", "score", "accounts", "verdict", "strongest evidence"].map((h) => el("th", {}, h)))),
          el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No cluster matches these filters.")))),
        el("div", { class: "pager" }, prev, next,
          el("span", { class: "muted", id: "queue-count" }, page.total ? `${int(offset + 1)}–${int(last)} of ${int(page.total)} clusters` : "0 clusters"))),
    );
  }

  // ------------------------------------------------------------------ verdicts
  function verdictForm(targetType, targetId, onDone) {
    const canWrite = state.key && (state.key.scopes.includes("feedback") || state.key.scopes.includes("admin"));
    const verdict = el("select", { name: "verdict" }, VERDICTS.map(([v, t]) => el("option", { value: v }, t)));
    const who = el("input", { name: "who", value: state.key ? state.key.name : "", maxlength: 256, required: true });
    const why = el("textarea", { name: "why", maxlength: 4000, required: true, placeholder: "why: what you checked, ticket link…" });
    const status = el("span", { class: state.flash ? "verdict-status ok" : "verdict-status", role: "status" }, state.flash || "");
    state.flash = null;
    const submit = el("button", { type: "submit", class: "primary" }, "Record verdict");
    const form = el("form", { class: "verdict", "data-target": targetType },
      el("label", {}, "verdict"), verdict,
      el("label", {}, "who"), who,
      el("label", {}, "why"), why,
      el("div", { class: "actions" }, submit, status),
    );
    if (!canWrite) form.append(el("p", { class: "muted note" }, "This key has no feedback scope: the server will refuse a verdict."));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      submit.disabled = true;
      status.className = "verdict-status";
      status.textContent = "recording…";
      try {
        const f = await api("feedback", { method: "POST", body: { target_type: targetType, target_id: targetId, verdict: verdict.value, who: who.value, why: why.value } });
        status.className = "verdict-status ok";
        status.textContent = `recorded: ${f.verdict} (key ${f.key_id})`;
        state.flash = status.textContent; // shown again by the refreshed view
        await onDone();
      } catch (e) {
        status.className = "verdict-status error";
        status.textContent = e.status === 403 ? `refused: ${e.message}` : e.message;
      } finally {
        submit.disabled = false;
      }
    });
    return form;
  }
  function feedbackTable(feedback) {
    if (!feedback.length) return el("p", { class: "muted" }, "No verdict yet.");
    return el("table", { class: "feedback" },
      el("thead", {}, el("tr", {}, ["when (server)", "on", "verdict", "who", "why", "key"].map((h) => el("th", {}, h)))),
      el("tbody", {}, [...feedback].reverse().map((f) => el("tr", {},
        el("td", { class: "mono" }, (f.ts || "").replace("T", " ").slice(0, 19)),
        el("td", {}, f.target_type),
        el("td", {}, f.verdict.replace("_", " ")),
        el("td", {}, f.who), el("td", {}, f.why), el("td", { class: "mono" }, f.key_id || "–")))));
  }

  // ------------------------------------------------------------------ cluster
  function drawGraph(d) {
    const W = 1000, H = 560, pad = 28;
    const s = svg("svg", { class: "graph", viewBox: `0 0 ${W} ${H}`, role: "img", "data-nodes": d.nodes.length, "data-edges": d.edges.length });
    s.append(svg("title", {}, `${d.accounts} accounts and ${d.identifiers} shared identifiers`));
    const at = {};
    for (const n of d.nodes) at[n.id] = [pad + n.x * (W - 5 * pad), pad + n.y * (H - 2 * pad)];
    const maxW = Math.max(1e-9, ...d.edges.map((e) => e.weight));
    const edges = svg("g", { class: "edges" });
    for (const e of d.edges) {
      const [x1, y1] = at[e.source], [x2, y2] = at[e.target];
      edges.append(svg("line", { x1, y1, x2, y2, "stroke-width": (0.4 + 3.6 * Math.sqrt(e.weight / maxW)).toFixed(2) }));
    }
    s.append(edges);
    const accountNodes = d.nodes.filter((n) => n.type === "account").length;
    const nodes = svg("g", { class: "nodes" });
    // accounts first, identifiers on top of them
    const order = [...d.nodes.filter((n) => n.type === "account"), ...d.nodes.filter((n) => n.type !== "account")];
    for (const n of order) {
      const [x, y] = at[n.id];
      const g = svg("g", { class: "node", "data-type": n.type, "data-kind": n.kind || "", transform: `translate(${x.toFixed(1)},${y.toFixed(1)})` });
      let tip;
      if (n.type === "account") {
        const r = n.count > 1 ? Math.min(26, 4 + 2.2 * Math.sqrt(n.count)) : 5;
        g.append(svg("circle", { r: r.toFixed(1), fill: LEVEL_COLORS[n.level || ""] || "#98a2b3", stroke: "#fff", "stroke-width": 1 }));
        tip = n.count > 1 ? `${n.label} (${n.level}), best score ${fmt(n.score)}` : `account ${n.label} · ${n.level} · score ${fmt(n.score)}`;
        if (accountNodes <= 30 || n.count >= Math.max(10, d.accounts / 20)) g.append(svg("text", { x: r + 2, y: 3 }, short(String(n.label), 22)));
        if (n.count === 1) {
          g.setAttribute("class", "node link");
          g.addEventListener("click", () => { location.hash = accountHash(n.label); });
        }
      } else {
        const r = 4 + Math.min(8, Math.sqrt(n.members || 1));
        g.append(svg(n.type === "template" ? "polygon" : "rect", n.type === "template"
          ? { points: `0,${-r} ${r},0 0,${r} ${-r},0`, fill: KIND_COLORS.template, stroke: "#333", "stroke-width": 0.6 }
          : { x: -r, y: -r, width: 2 * r, height: 2 * r, fill: KIND_COLORS[n.kind] || "#8c8c8c", stroke: "#333", "stroke-width": 0.6 }));
        g.append(svg("text", { x: r + 2, y: 3 }, short(`${n.kind}: ${n.label}`, 28)));
        tip = `${n.kind} ${n.label}: ${n.members} members, ${n.holders ?? "?"} holders overall, weight ${fmt(n.weight, 2)} nats` + (n.skeleton ? `\n${n.skeleton}` : "");
      }
      g.append(svg("title", {}, tip));
      nodes.append(g);
    }
    s.append(nodes);
    return s;
  }
  function legend(d) {
    const kinds = [...new Set(d.nodes.filter((n) => n.type !== "account").map((n) => n.kind))];
    return el("div", { class: "legend" },
      LEVELS.map((l) => el("span", {}, el("i", { class: `dot ${l}` }), `account: ${l}`)),
      kinds.map((k) => {
        const i = el("i", {});
        i.style.background = KIND_COLORS[k] || "#8c8c8c";
        return el("span", {}, i, k);
      }),
      el("span", { class: "muted" }, "edge width = identifier weight (rarity, nats)"));
  }
  function waterfall(evidence) {
    const rowH = 22, left = 150, W = 640, right = 70;
    let acc = 0;
    const steps = evidence.map((e) => { const s = acc; acc += e.contribution; return [e, s, acc]; });
    const xs = [0, acc, ...steps.flatMap(([, a, b]) => [a, b])];
    const lo = Math.min(...xs), hi = Math.max(...xs), span = Math.max(1e-9, hi - lo);
    const X = (v) => left + ((v - lo) / span) * (W - left - right);
    const H = rowH * (steps.length + 1) + 10;
    const s = svg("svg", { class: "waterfall", viewBox: `0 0 ${W} ${H}`, role: "img" });
    s.append(svg("title", {}, "Evidence waterfall: log-odds contributions, strongest first"));
    s.append(svg("line", { x1: X(0), y1: 0, x2: X(0), y2: H, stroke: "#333", "stroke-width": 0.8 }));
    steps.forEach(([e, a, b], i) => {
      const y = i * rowH + 4;
      s.append(svg("text", { x: 4, y: y + 13 }, short(e.kind, 22)));
      s.append(svg("rect", { x: Math.min(X(a), X(b)), y, width: Math.max(1, Math.abs(X(b) - X(a))), height: rowH - 6, fill: e.contribution >= 0 ? "#c0392b" : "#2e86ab" }));
      s.append(svg("text", { x: Math.max(X(a), X(b)) + 4, y: y + 13 }, (e.contribution >= 0 ? "+" : "") + e.contribution.toFixed(2)));
    });
    const y = steps.length * rowH + 4;
    s.append(svg("text", { x: 4, y: y + 13, "font-weight": 700 }, "sum (log-odds)"));
    s.append(svg("rect", { x: Math.min(X(0), X(acc)), y, width: Math.max(1, Math.abs(X(acc) - X(0))), height: rowH - 6, fill: "#444" }));
    s.append(svg("text", { x: Math.max(X(0), X(acc)) + 4, y: y + 13 }, acc.toFixed(2)));
    return s;
  }
  function counterfactual(c) {
    const review = c.run.review_threshold, block = c.run.block_threshold;
    const lines = c.evidence.filter((e) => typeof e.details.score_without === "number").map((e) => [e, e.details.score_without]);
    if (!lines.length) return el("p", { class: "counterfactual" }, "No counterfactual recorded for this cluster.");
    const lvl = (s) => (s >= block ? "block" : s >= review ? "review" : "clear");
    const decisive = lines.filter(([, s]) => lvl(s) !== c.level);
    const [e, s] = (decisive.length ? decisive : lines).reduce((m, x) => (x[1] < m[1] ? x : m));
    const text = decisive.length
      ? `Without ${e.kind.replace("_", " ")} the score would be ${s.toFixed(2)} instead of ${c.score.toFixed(2)}: ${lvl(s)}, not ${c.level}.`
      : `No single piece of evidence changes the level: without ${e.kind.replace("_", " ")} (the strongest) the score would still be ${s.toFixed(2)} (${lvl(s)}).`;
    return el("p", { class: "counterfactual", id: "counterfactual" }, text);
  }
  function rowsTable(data) {
    if (data.error) return el("p", { class: "error" }, data.error);
    if (!data.rows.length) return el("p", { class: "muted" }, "This evidence cites no raw request row.");
    const cols = Object.keys(data.rows[0]).filter((k) => k !== "template_id" && k !== "_row");
    return el("table", { class: "rows-table" },
      el("thead", {}, el("tr", {}, ["row", "template", ...cols].map((h) => el("th", {}, h)))),
      el("tbody", {}, data.rows.map((r) => el("tr", {},
        el("td", { class: "mono" }, r._row), el("td", { class: "mono" }, r.template_id || ""),
        cols.map((k) => k === "account_id"
          ? el("td", {}, link(accountHash(r[k]), r[k]))
          : el("td", { class: k === "prompt" ? "prompt" : "" }, r[k]))))));
  }
  function evidenceList(c) {
    return c.evidence.map((e, i) => {
      const rows = el("div", { class: "rows" });
      const cites = (e.details.templates || []).some((t) => (t.request_rows || []).length) || (e.details.request_rows || []).length;
      const btn = el("button", { type: "button", "data-item": i }, "raw request rows");
      btn.addEventListener("click", async () => {
        btn.disabled = true;
        rows.replaceChildren(el("span", { class: "muted" }, "reading the rows…"));
        try { rows.replaceChildren(rowsTable(await api(`clusters/${encodeURIComponent(c.cluster_id)}/rows?item=${i}`))); }
        catch (err) { rows.replaceChildren(el("p", { class: "error" }, err.message)); }
      });
      const ids = (e.details.identifiers || []).slice(0, 8).map((x) => `${x.kind} ${x.value} (${x.members}/${x.holders})`);
      return el("div", { class: "evidence-item" },
        el("div", { class: "head" }, el("b", {}, e.kind.replace("_", " ")),
          el("span", { class: `contrib ${e.contribution >= 0 ? "pos" : "neg"}` }, (e.contribution >= 0 ? "+" : "") + e.contribution.toFixed(2))),
        el("div", {}, e.summary),
        ids.length ? el("div", { class: "muted mono" }, "identifiers (members/holders): " + ids.join(" · ")) : null,
        cites ? btn : null, rows);
    });
  }
  async function clusterView(id) {
    const c = await api(`clusters/${encodeURIComponent(id)}`);
    const last = c.feedback.length ? c.feedback[c.feedback.length - 1] : null;
    // the API's own resolution when it gives one (verdict, effective_level), else the latest
    const verdictNow = "verdict" in c ? c.verdict : last ? last.verdict : null;
    const effective = c.effective_level || c.level;
    const refresh = async () => { const again = await clusterView(id); $("view").replaceChildren(again); document.body.dataset.view = "cluster"; };
    const lineage = (items, word) => items.length
      ? el("ul", { class: "plain" }, items.map((x) => word === "from" && !x.parent_cluster_id ? el("li", {}, `${x.relation} in run ${x.run_id}`) : el("li", {}, `${x.relation} ${word} `, link(clusterHash(word === "from" ? x.parent_cluster_id || "" : x.cluster_id), (word === "from" ? x.parent_cluster_id : x.cluster_id) || "–"), el("span", { class: "muted" }, ` · run ${x.run_id} · overlap ${fmt(x.overlap, 2)}`))))
      : el("p", { class: "muted" }, word === "from" ? "First seen in this run (no parent)." : "No later cluster derives from it.");
    const members = c.members.slice(0, 200).map((m) => el("tr", { class: "row-link" },
      el("td", {}, link(accountHash(m.account_id), m.account_id)), el("td", {}, badge(m.effective_level || m.level)), el("td", { class: "num" }, fmt(m.score))));
    return el("div", { id: "cluster", "data-cluster": c.cluster_id },
      el("p", {}, link("#/queue", "← queue")),
      el("h1", {}, "Cluster ", el("span", { class: "mono", id: "cluster-id" }, c.cluster_id), " ", badge(effective)),
      el("div", { class: "facts" },
        el("div", {}, el("b", {}, fmt(c.score)), el("span", {}, "score")),
        el("div", {}, el("b", {}, int(c.size)), el("span", {}, "accounts")),
        el("div", {}, el("b", {}, `run ${c.run_id}`), el("span", {}, c.current ? "latest run" : "not in the latest run")),
        el("div", {}, el("b", { id: "cluster-verdict" }, verdictNow ? verdictNow.replace("_", " ") : "none"), el("span", {}, "verdict on the cluster")),
        el("div", {}, el("b", { id: "cluster-level" }, `${c.level}${effective !== c.level ? ` → ${effective}` : ""}`), el("span", {}, "engine level → after verdicts")),
        el("div", {}, el("b", {}, `${c.run.review_threshold} / ${c.run.block_threshold}`), el("span", {}, "review / block lines"))),
      counterfactual(c),
      el("div", { class: "grid" },
        el("div", {},
          el("div", { class: "card" }, el("h2", {}, "Accounts and what they share"), drawGraph(c.drawing), legend(c.drawing),
            c.drawing.notes.map((n) => el("p", { class: "muted" }, n))),
          el("div", { class: "card" }, el("h2", {}, "Evidence"), waterfall(c.evidence), evidenceList(c))),
        el("div", {},
          el("div", { class: "card" }, el("h2", {}, "Verdict on the cluster"), verdictForm("cluster", c.cluster_id, refresh), feedbackTable(c.feedback)),
          el("div", { class: "card" }, el("h2", {}, "Lineage across runs"), el("h3", {}, "comes from"), lineage(c.lineage.parents, "from"), el("h3", {}, "went on as"), lineage(c.lineage.children, "into")),
          el("div", { class: "card" }, el("h2", {}, `Members (${int(c.size)})`),
            el("table", { id: "members" }, el("thead", {}, el("tr", {}, ["account", "level", "score"].map((h) => el("th", {}, h)))), el("tbody", {}, members)),
            c.size > 200 ? el("p", { class: "muted" }, `the 200 highest-scored of ${int(c.size)} shown`) : null))));
  }

  // ------------------------------------------------------------------ account
  async function accountView(id) {
    const a = await api(`account?id=${encodeURIComponent(id)}`);
    const refresh = async () => { const again = await accountView(id); $("view").replaceChildren(again); document.body.dataset.view = "account"; };
    const act = a.action;
    const own = a.feedback.filter((f) => f.target_type === "account");
    const why = own.length ? own[own.length - 1] : null;
    return el("div", { id: "account", "data-account": a.account_id },
      el("p", {}, link("#/queue", "← queue"), a.cluster_id ? el("span", {}, " · ", link(clusterHash(a.cluster_id), `cluster ${a.cluster_id}`)) : null),
      el("h1", {}, "Account ", el("span", { class: "mono", id: "account-id" }, a.account_id), " ", el("span", { id: "effective-level" }, badge(a.effective_level))),
      el("div", { class: "facts" },
        el("div", {}, el("b", { id: "effective-level-text" }, a.effective_level), el("span", {}, "effective level (after verdicts)")),
        el("div", {}, el("b", {}, a.level), el("span", {}, "level from the engine")),
        el("div", {}, el("b", {}, fmt(a.score)), el("span", {}, "score")),
        el("div", {}, el("b", {}, a.verdict ? a.verdict.replace("_", " ") : "none"), el("span", {}, "latest verdict on the account")),
        el("div", {}, el("b", {}, act ? act.action : "–"), el("span", {}, act ? "action now" : "action (needs the respond scope)"))),
      el("p", { class: "counterfactual" }, why
        ? `Why: ${why.verdict.replace("_", " ")} by ${why.who} — “${why.why}”` + (a.cleared ? " (kept clear by the next detect)." : ".")
        : act ? `Why: ${act.reason}` : `Why: the engine scored it ${fmt(a.score)} (${a.level}); see the evidence below.`),
      el("div", { class: "grid" },
        el("div", {},
          el("div", { class: "card" }, el("h2", {}, "Evidence that concerns it"),
            a.evidence.length ? a.evidence.map((e) => el("div", { class: "evidence-item" },
              el("div", { class: "head" }, el("b", {}, e.kind.replace("_", " ")), el("span", { class: `contrib ${e.contribution >= 0 ? "pos" : "neg"}` }, e.contribution.toFixed(2))),
              el("div", {}, e.summary))) : el("p", { class: "muted" }, "No evidence (not in a cluster)."))),
        el("div", {},
          el("div", { class: "card" }, el("h2", {}, "Verdict on the account"), verdictForm("account", a.account_id, refresh)),
          el("div", { class: "card" }, el("h2", {}, "Verdicts (account and its cluster)"), feedbackTable(a.feedback)),
          act ? el("div", { class: "card" }, el("h2", {}, "Action"), el("p", {}, `${act.action}: ${act.reason}`),
            act.rate_limit_per_minute ? el("p", {}, `rate limit ${act.rate_limit_per_minute}/min`) : null) : null)));
  }

  // ------------------------------------------------------------------ start
  async function start() {
    $("login-form").addEventListener("submit", onLogin);
    $("logout").addEventListener("click", onLogout);
    window.addEventListener("hashchange", route);
    try {
      loggedIn(await api("session"));
      await route();
    } catch (e) {
      if (e.status !== 401) showLogin(e.message);
    }
  }
  document.addEventListener("DOMContentLoaded", start);
})();
