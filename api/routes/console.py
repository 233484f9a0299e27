"""``/console``: the review console for fraud teams (pages + the JSON they read).

The pages are plain files in ``api/console/static`` (no build step, no CDN). A
login form takes an API key once; the key is checked exactly like a ``Bearer``
key (same rate limits, revocation and scopes) and kept **server-side** in an
in-memory session; the browser only holds a random session id in an
``HttpOnly; SameSite=Strict`` cookie scoped to ``/console`` (never in a URL or in
storage scripts can read). Every request re-checks the key, so a revoked key is
out at once. Writes need the session's CSRF token in ``X-CSRF-Token`` (the page
keeps it in memory) and, when the browser sends one, a same-origin ``Origin``.
Every page carries a strict Content-Security-Policy: scripts and styles from this
origin only, no inline script.

Verdicts go through the same store call, schema and audit columns as
``POST /v1/feedback`` (the key id is recorded); cluster and account views are the
``/v1`` payloads (``ClusterDetail``, ``AccountDetail``), so the page shows the
effective decision exactly as the API does.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from linkage.api.console.drawing import MAX_IDENTIFIERS, drawing
from linkage.api.console.queries import QUEUE_SORTS, VERDICT_FILTERS, list_runs, queue, run_info
from linkage.api.deps import admit, authenticate
from linkage.api.errors import ApiError
from linkage.api.routes.feedback import record_feedback
from linkage.api.schemas import AccountDetail, ClusterDetail, FeedbackIn, FeedbackOut, Level
from linkage.errors import LinkageError
from linkage.explain.graph import build_cluster_graph, input_path, read_rows
from linkage.store.db import ApiKey, Store

log = logging.getLogger("linkage.api.console")

router = APIRouter(prefix="/console", include_in_schema=False)

STATIC = Path(__file__).resolve().parents[1] / "console" / "static"
_ASSETS = {"app.js": "text/javascript; charset=utf-8", "console.css": "text/css; charset=utf-8"}

COOKIE = "linkage_console"
#: a session lasts this long after login (then the key is asked again)
SESSION_SECONDS = 8 * 3600
#: members fetched for the cluster page (and drawn, grouped above 120)
MAX_MEMBERS = 5000
#: members listed on the cluster page (all fetched ones are drawn)
MEMBERS_SHOWN = 200
#: raw request rows shown per evidence item
MAX_ROWS = 50
PROMPT_CHARS = 4000

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
}


# ------------------------------------------------------------------ sessions
@dataclass
class _Session:
    token: str
    csrf: str
    expires: float


class _Sessions:
    """Console sessions in memory (a restart logs everyone out)."""

    def __init__(self) -> None:
        self._items: dict[str, _Session] = {}
        self._lock = threading.Lock()

    def create(self, token: str) -> tuple[str, _Session]:
        sid = secrets.token_urlsafe(32)
        s = _Session(token, secrets.token_urlsafe(32), time.time() + SESSION_SECONDS)
        with self._lock:
            now = time.time()
            for k in [k for k, v in self._items.items() if v.expires < now]:
                del self._items[k]
            self._items[sid] = s
        return sid, s

    def get(self, sid: str | None) -> _Session | None:
        if not sid:
            return None
        with self._lock:
            s = self._items.get(sid)
            if s is not None and s.expires < time.time():
                del self._items[sid]
                return None
            return s

    def drop(self, sid: str | None) -> None:
        with self._lock:
            self._items.pop(sid or "", None)


def _state(request: Request, name: str, factory: Any) -> Any:
    value = getattr(request.app.state, name, None)
    if value is None:
        value = factory()
        setattr(request.app.state, name, value)
    return value


def _sessions(request: Request) -> _Sessions:
    return _state(request, "console_sessions", _Sessions)


def _unauthorized(message: str = "log in with an API key") -> ApiError:
    return ApiError(401, "unauthorized", message)


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host


def console_key(scope: str) -> Any:
    """A dependency: the session's key, re-verified, holding ``scope`` (CSRF-checked writes)."""

    async def dependency(request: Request) -> ApiKey:
        sid = request.cookies.get(COOKIE)
        session = _sessions(request).get(sid)
        if session is None:
            raise _unauthorized()
        if request.method not in ("GET", "HEAD"):
            sent = request.headers.get("x-csrf-token", "")
            if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
                raise ApiError(403, "csrf", "missing or wrong X-CSRF-Token: reload the console")
            if not _same_origin(request):
                raise ApiError(403, "csrf", "cross-origin write refused")
        try:
            key = await authenticate(request, session.token)
        except ApiError as exc:
            if exc.status == 401:
                _sessions(request).drop(sid)
                raise _unauthorized("the key of this session is no longer valid") from None
            raise
        return admit(request, key, scope)

    return dependency


def _key_view(key: ApiKey, csrf: str) -> dict[str, Any]:
    return {"key_id": key.id, "name": key.name, "scopes": sorted(key.scopes), "csrf": csrf}


def _store(request: Request) -> Store:
    return request.app.state.store


# ------------------------------------------------------------------ pages
@router.get("")
async def console_root() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=307)


@router.get("/")
async def console_page() -> FileResponse:
    """The single page (queue, cluster, account views are routed in the page)."""
    return FileResponse(
        STATIC / "index.html", media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS
    )


@router.get("/static/{name}")
async def console_asset(name: str) -> FileResponse:
    if name not in _ASSETS:
        raise ApiError(404, "not_found", f"no console asset {name!r}")
    return FileResponse(STATIC / name, media_type=_ASSETS[name], headers=SECURITY_HEADERS)


# ------------------------------------------------------------------ login
class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1, max_length=400)


@router.post("/api/login")
async def login(body: LoginIn, request: Request, response: Response) -> dict[str, Any]:
    """Check the key (as a Bearer key would be) and open a session cookie."""
    if not _same_origin(request):
        raise ApiError(403, "csrf", "cross-origin login refused")
    key = await authenticate(request, body.key.strip())
    if not key.allows("read"):
        raise ApiError(
            403,
            "forbidden",
            "this key lacks the `read` scope the console needs",
            {"required_scope": "read", "key_scopes": sorted(key.scopes)},
        )
    sid, session = _sessions(request).create(body.key.strip())
    response.set_cookie(
        COOKIE,
        sid,
        max_age=SESSION_SECONDS,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    response.headers.update(SECURITY_HEADERS)
    log.info("console login with key %s", key.id)
    return _key_view(key, session.csrf)


@router.post("/api/logout")
async def logout(
    request: Request, response: Response, _: ApiKey = Depends(console_key("read"))
) -> dict[str, Any]:
    _sessions(request).drop(request.cookies.get(COOKIE))
    response.delete_cookie(COOKIE, path="/console")
    return {"ok": True}


@router.get("/api/session")
async def session(request: Request, key: ApiKey = Depends(console_key("read"))) -> dict[str, Any]:
    """Who is logged in, with the CSRF token the page keeps in memory."""
    s = _sessions(request).get(request.cookies.get(COOKIE))
    assert s is not None  # console_key checked it
    return _key_view(key, s.csrf)


# ------------------------------------------------------------------ reads
Read = Annotated[ApiKey, Depends(console_key("read"))]


@router.get("/api/runs")
def runs(request: Request, _: Read) -> dict[str, Any]:
    return {"runs": list_runs(_store(request).engine)}


@router.get("/api/queue")
def review_queue(
    request: Request,
    _: Read,
    level: Annotated[list[Level] | None, Query()] = None,
    verdict: Annotated[str | None, Query()] = None,
    run: Annotated[int | None, Query(ge=1)] = None,
    sort: Annotated[str, Query()] = "uncertain",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> dict[str, Any]:
    """Clusters to review: flagged levels by default, the most uncertain first."""
    if sort not in QUEUE_SORTS:
        raise ApiError(422, "validation_error", f"sort must be one of {', '.join(QUEUE_SORTS)}")
    if verdict not in (None, "", *VERDICT_FILTERS):
        raise ApiError(
            422, "validation_error", f"verdict must be one of {', '.join(VERDICT_FILTERS)}"
        )
    return queue(
        _store(request).engine,
        run_id=run,
        levels=level if level is not None else ("review", "block"),
        verdict=verdict or None,
        sort=sort,
        limit=limit,
        offset=offset,
    )


class _GraphCache:
    """The last few cluster drawings (layout is the costly part)."""

    def __init__(self, size: int = 32) -> None:
        self._items: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.size = size

    def get(self, key: tuple[Any, ...]) -> dict[str, Any] | None:
        with self._lock:
            v = self._items.get(key)
            if v is not None:
                self._items.move_to_end(key)
            return v

    def put(self, key: tuple[Any, ...], value: dict[str, Any]) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class _RunFiles:
    """Per run, read once: its signup index and the ``account_id`` column of its requests
    input (dictionary-encoded: a few bytes per request), so a cluster page only filters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._index: dict[str, pa.Table | None] = {}
        self._owners: dict[tuple[str, int, float], pa.ChunkedArray] = {}

    def index(self, run_path: str) -> pa.Table | None:
        with self._lock:
            if run_path not in self._index:
                p = Path(run_path) / "signup_index.parquet"
                self._index = {
                    run_path: pq.read_table(p, read_dictionary=["kind", "account_id"])
                    if p.is_file()
                    else None
                }  # keep one run (the one being reviewed)
            return self._index[run_path]

    def owners(self, manifest: dict[str, Any], rows: list[int]) -> pd.DataFrame:
        """``_row, account_id`` of request rows (Parquet inputs cached; others read directly)."""
        path = input_path(manifest, "requests")
        if not (path.is_dir() or path.name.lower().endswith(".parquet")):
            return read_rows(manifest, "requests", rows, columns=["account_id"])
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime)
        with self._lock:
            col = self._owners.get(key)
            if col is None:
                parts = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
                col = pa.chunked_array(
                    [
                        c
                        for part in parts
                        for c in pq.read_table(
                            part, columns=["account_id"], read_dictionary=["account_id"]
                        )["account_id"].chunks
                    ]
                )
                self._owners = {key: col}
        ok = [r for r in rows if 0 <= r < len(col)]
        return pd.DataFrame(
            {"_row": ok, "account_id": col.take(pa.array(ok, pa.int64())).to_pylist()}
        )


def _cluster_drawing(
    files: _RunFiles, cluster: dict[str, Any], run: dict[str, Any], n_members: int
) -> dict[str, Any]:
    members = [m["account_id"] for m in cluster["members"]]
    # members are coloured by the level the API resolves after verdicts when it gives one
    accounts = {
        m["account_id"]: (m["score"], m.get("effective_level") or m["level"])
        for m in cluster["members"]
    }
    notes = []
    index = pd.DataFrame(columns=["kind", "value", "account_id", "weight"])
    try:
        table = files.index(run["path"])
        if table is None:
            notes.append("the run's identifier index is not on this server")
        else:
            mask = pc.is_in(table["account_id"].cast(pa.string()), pa.array(members, pa.string()))
            index = table.filter(mask).to_pandas()
    except (OSError, pa.ArrowException) as exc:
        notes.append(f"the run's identifier index cannot be read: {exc}")
    rows = None
    wanted = sorted(
        {
            int(r)
            for e in cluster["evidence"]
            for t in (e.get("details") or {}).get("templates") or ()
            for r in (t.get("request_rows") or ())
        }
    )
    if wanted:
        try:
            rows = files.owners(run["manifest"], wanted)
        except (LinkageError, OSError, pa.ArrowException) as exc:
            notes.append(f"templates drawn without their accounts: {exc}")
    g = build_cluster_graph(
        {**cluster, "members": members},
        accounts=accounts,
        index=index,
        request_rows=rows,
        max_identifiers=MAX_IDENTIFIERS,
    )
    out = drawing(g)
    if n_members > len(members):
        out["notes"].insert(0, f"the {len(members):,} highest-scored of {n_members:,} members")
    out["notes"] += notes
    return out


@router.get("/api/clusters/{cluster_id}")
def cluster_page(request: Request, cluster_id: str, _: Read) -> dict[str, Any]:
    """The ``/v1`` cluster (members up to MAX_MEMBERS) plus its drawing and its run's lines."""
    store = _store(request)
    c = store.get_cluster(cluster_id[:64], members_limit=MAX_MEMBERS)
    if c is None:
        raise ApiError(404, "not_found", f"no cluster {cluster_id!r}", {"cluster_id": cluster_id})
    detail = ClusterDetail.model_validate(c).model_dump(mode="json")
    run = run_info(store.engine, c["run_id"]) or {}
    cache = _state(request, "console_drawings", _GraphCache)
    key = (cluster_id, c["run_id"], len(c["members"]))
    pic = cache.get(key)
    if pic is None:
        files = _state(request, "console_run_files", _RunFiles)
        pic = _cluster_drawing(files, detail, run, int(c["size"]))
        cache.put(key, pic)
    detail["drawing"] = pic
    detail["members"] = detail["members"][:MEMBERS_SHOWN]  # the page lists the top ones
    detail["run"] = {
        "run_id": run.get("run_id"),
        "path": run.get("path"),
        "review_threshold": run.get("review_threshold"),
        "block_threshold": run.get("block_threshold"),
    }
    return detail


@router.get("/api/clusters/{cluster_id}/rows")
def cluster_rows(
    request: Request,
    cluster_id: str,
    _: Read,
    item: Annotated[int, Query(ge=0, le=1000)] = 0,
) -> dict[str, Any]:
    """The raw request rows behind evidence item ``item`` of the cluster."""
    store = _store(request)
    c = store.get_cluster(cluster_id[:64], members_limit=1)
    if c is None:
        raise ApiError(404, "not_found", f"no cluster {cluster_id!r}", {"cluster_id": cluster_id})
    if item >= len(c["evidence"]):
        raise ApiError(404, "not_found", f"cluster {cluster_id!r} has no evidence item {item}")
    details = c["evidence"][item].get("details") or {}
    by_row: dict[int, str] = {}
    for t in details.get("templates") or ():
        for r in t.get("request_rows") or ():
            by_row.setdefault(int(r), str(t.get("template_id", "")))
    for r in details.get("request_rows") or details.get("rows") or ():
        by_row.setdefault(int(r), "")
    wanted = sorted(by_row)[:MAX_ROWS]
    out: dict[str, Any] = {"cluster_id": cluster_id, "item": item, "rows": [], "error": None}
    if not wanted:
        return out
    run = run_info(store.engine, c["run_id"]) or {"manifest": {}}
    try:
        frame = read_rows(run["manifest"], "requests", wanted)
    except LinkageError as exc:
        out["error"] = str(exc)
        return out
    for rec in frame.to_dict("records"):
        row = {k: ("" if v is None else str(v)) for k, v in rec.items()}
        if len(row.get("prompt", "")) > PROMPT_CHARS:
            row["prompt"] = row["prompt"][:PROMPT_CHARS] + "…"
        row["template_id"] = by_row.get(int(rec["_row"]), "")
        out["rows"].append(row)
    return out


@router.get("/api/account")
async def account_page(
    request: Request,
    key: Read,
    account_id: Annotated[str, Query(alias="id", min_length=1, max_length=256)],
) -> dict[str, Any]:
    """The ``/v1`` account, plus its action when the key may read actions (``respond``).

    The id is a query parameter so that any account id (one holding ``/`` too) works."""
    store = _store(request)
    a = await run_in_threadpool(store.get_account, account_id)
    if a is None:
        raise ApiError(404, "not_found", f"no account {account_id!r}", {"account_id": account_id})
    out = AccountDetail.model_validate(a).model_dump(mode="json")
    out["action"] = None
    if key.allows("respond"):
        from linkage.api.routes.respond import get_responder

        act = get_responder(request).action(account_id)
        out["action"] = act.to_dict() if act is not None else None
    return out


# ------------------------------------------------------------------ writes
@router.post("/api/feedback", status_code=201)
def feedback(
    body: FeedbackIn,
    request: Request,
    response: Response,
    key: Annotated[ApiKey, Depends(console_key("feedback"))],
) -> FeedbackOut:
    """A verdict, recorded like ``POST /v1/feedback`` (server time, the key's id)."""
    out, created = record_feedback(_store(request), request.app.state.metrics, body, key_id=key.id)
    if created:
        log.info(
            "console verdict %s on %s %s by key %s",
            body.verdict,
            body.target_type,
            body.target_id,
            key.id,
        )
    else:
        response.status_code = 200
    return out
