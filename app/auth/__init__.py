"""Sign-in, sessions, CSRF, security headers and the audit of every change.

``init_app`` wires four hooks into the app:

- before each request: find the principal (session cookie or bearer token), refuse a
  state-changing call from a cookie session without its CSRF token or from another site, and
  ask ``app.auth.policy.authorize`` whether the principal may call the endpoint at all and see
  the record it names;
- before each commit made through ``app.db.transaction``: append an audit entry for the change
  (with the grid boundaries before and after, for grid edits), in the same transaction;
- after each request: security headers (a CSP with a per-request nonce that admits only the
  app's own scripts and the configured tile server), ``Cache-Control: no-store`` on API answers;
- on the CLI: nothing; ``gridgov users`` manages accounts.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import secrets
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Request, current_app, g, has_request_context, redirect, request, url_for
from sqlalchemy.orm import Session

from app import replicas
from app.auth.policy import Forbidden, Principal, Unauthenticated, authorize
from app.config import DEFAULTS
from app.db import Reader, get_session, run_read_dbapi
from app.services import audit
from app.services import users as user_svc

LOGGER = logging.getLogger(__name__)

SESSION_COOKIE = "gridgov_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Changes named by these endpoints get the grid boundaries before and after in their entry.
GRID_EDIT_ENDPOINTS = frozenset(
    {
        "grid_edit_api.create",
        "grid_edit_api.patch",
        "grid_edit_api.remove",
        "grid_edit_api.split",
        "grid_edit_api.merge",
        "grid_edit_api.undo",
        "partition_api.partition",
        "partition_api.patches",
    }
)
# Body fields that may name personal data: audit entries keep their names, never their values.
PERSONAL_FIELDS = frozenset(
    {
        "password",
        "new_password",
        "old_password",
        "reporter_contact",
        "reporter_name",
        "head_name",
        "head_phone",
        "phone",
        "id_number",
        "email",
        "contact",
        "first_name",
        "last_name",
        "photo_base64",
        "snapshot",
        "snapshot_base64",
        "media_url",
        "secret",
    }
)


def current_principal() -> Principal:
    """Return who is asking in this request (anonymous outside a request)."""
    if has_request_context():
        p = g.get("principal")
        if p is not None:
            return p
    return Principal()


def limits() -> dict[str, Any]:
    """The sign-in and session limits: the configuration's, else ``users.DEFAULT_LIMITS``."""
    cfg = current_app.config
    return {k: v if cfg.get(k) is None else cfg[k] for k, v in user_svc.DEFAULT_LIMITS.items()}


def proxy_hops() -> int:
    """How many proxies in front of the app to trust (``TRUST_PROXY``: a number; true is 1)."""
    raw = current_app.config.get("TRUST_PROXY")
    if raw is True:
        return 1
    if raw in (None, False, ""):
        return 0
    try:
        return max(0, int(str(raw).strip()))
    except ValueError:
        return 1 if str(raw).strip().lower() in ("true", "yes", "on") else 0


def _address(value: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address((value or "").strip()))
    except ValueError:
        return None


def client_ip(req: Request | None = None) -> str | None:
    """The caller's address.

    Behind ``TRUST_PROXY`` = n proxies the address is the n-th entry from the right of
    X-Forwarded-For — the one the outermost trusted proxy added (werkzeug ProxyFix's rule);
    entries further left are the client's own words and are never used. With fewer entries
    than hops, or an entry that is no address, the connection's address is used.
    """
    req = req or request
    hops = proxy_hops()
    if hops:
        entries = [
            e.strip()
            for header in req.headers.getlist("X-Forwarded-For")
            for e in header.split(",")
        ]
        if len(entries) >= hops:
            found = _address(entries[-hops])
            if found is not None:
                return found
    return _address(req.remote_addr)


def who() -> audit.Who:
    p = current_principal()
    return audit.Who(
        user_id=p.user_id,
        username=p.username,
        role=p.role,
        ip=client_ip() if has_request_context() else None,
    )


def _token_from_request() -> tuple[str | None, str | None]:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None, "token"
    cookie = request.cookies.get(SESSION_COOKIE)
    return (cookie, "browser") if cookie else (None, None)


def load_principal() -> Principal:
    """Find the principal of the current request, or an anonymous one."""
    token, via = _token_from_request()
    if not token or len(token) > 200:
        return Principal()
    try:
        # Where the look-up reads, and where its last-use update goes: app/replicas.py.
        row = replicas.look_up_session(
            Reader, lambda r: user_svc.lookup_session(r, token, limits())
        )
    finally:
        # Give a read session back now (tests): one left open across the view would, as a
        # savepoint of the test's transaction, undo what the view wrote when it closes.
        stale = g.pop("db_read_session", None)
        if stale is not None:
            stale.close()
    return _principal_of(row, via)


def _principal_of(row: Any, via: str | None) -> Principal:
    """The principal of a session row (``users.LOOKUP_SQL``'s columns), anonymous without one."""
    p = principal_of_row(row, via)
    if p is None:
        g.stale_cookie = via == "browser"
        return Principal()
    return p


def principal_of_row(row: Any, via: str | None) -> Principal | None:
    """The principal of a live session row (``users.LOOKUP_SQL``'s columns) brought by a bearer
    token (``via`` "token") or a session cookie ("browser"); None without one, or when the row's
    kind is not the way it came (a token sent as a cookie). Needs no request context."""
    if row is None or row.session_id is None or (via == "token") != (row.kind == "token"):
        return None
    return Principal(
        user_id=row.user_id,
        username=row.username,
        role=row.role,
        worker_id=row.worker_id,
        department_id=row.department_id,
        grid_id=row.grid_id,
        session_id=row.session_id,
        session_kind=row.kind,
        csrf_token=row.csrf_token,
        display_name=row.display_name,
    )


#: GET endpoints that look the caller's session up in the same statement as their own read
#: (one round trip instead of two; the single locate). ``read(lookup)`` gets the parameters
#: of ``users.LOOKUP_SQL`` and returns that statement's row — its read done only for a live
#: session — or None when the request is not one it can serve so (bad parameters: the usual
#: look-up runs, then the view answers as always). The row goes to the view as ``g.prefetched``;
#: authorisation is the same as for every request.
ONE_TRIP: dict[str, Callable[[dict[str, Any]], Any]] = {}


def _one_trip_principal(read: Callable[[dict[str, Any]], Any]) -> Principal | None:
    """The principal found by an endpoint's one-trip read, or None: look it up as usual."""
    token, via = _token_from_request()
    if not token or len(token) > 200 or current_app.extensions["gridgov_db"].router is not None:
        return None  # anonymous, or replicas decide where the look-up reads (app/replicas.py)
    try:
        row = read(user_svc.lookup_params(token, limits()))
    finally:
        stale = g.pop("db_read_session", None)  # as in load_principal (tests)
        if stale is not None:
            stale.close()
    if row is None:
        return None
    p = _principal_of(row, via)
    if p.authenticated:
        if row.kind == "browser":
            run_read_dbapi(lambda db: user_svc.keep_alive(Reader(db), row))
        g.prefetched = row
    return p


def _same_origin(value: str) -> bool:
    parts = urlsplit(value)
    return bool(parts.netloc) and parts.netloc == request.host


def _check_cross_site() -> None:
    """Refuse a state-changing request that a browser says came from another site."""
    origin = request.headers.get("Origin")
    if origin and origin != "null" and not _same_origin(origin):
        raise Forbidden(f"跨站请求被拒绝 / cross-site request from {origin} refused")
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        raise Forbidden("跨站请求被拒绝 / cross-site request refused")


def _check_csrf(p: Principal) -> None:
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.mimetype in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        sent = request.form.get("csrf_token")
    if not sent or not p.csrf_token or not hmac.compare_digest(sent, p.csrf_token):
        raise Forbidden(
            f"缺少或错误的 CSRF 令牌 / missing or wrong CSRF token (send the {CSRF_HEADER} header)",
            reason="csrf",
        )


def _json_body() -> dict[str, Any]:
    if request.is_json:
        data = request.get_json(silent=True)
        if isinstance(data, dict):
            return data
    return {}


def _before_request():  # type: ignore[no-untyped-def]
    g.request_started = time.perf_counter()  # for the Server-Timing of tiles
    g.csp_nonce = secrets.token_urlsafe(16)
    endpoint = request.endpoint
    if endpoint is None:  # 404 / 405: Flask answers (a page's answer shows who is signed in)
        from app.web.errors import is_page_request

        g.principal = load_principal() if is_page_request() else Principal()
        return None
    if endpoint in ("static", "vendor.asset"):
        g.principal = Principal()
        return None
    one_trip = ONE_TRIP.get(endpoint) if request.method == "GET" else None
    p = _one_trip_principal(one_trip) if one_trip else None
    if p is None:
        p = load_principal()
    g.principal = p
    if request.method not in SAFE_METHODS:
        _check_cross_site()
        if p.session_kind == "browser":
            _check_csrf(p)
    try:
        args = dict(request.view_args or {})
        if request.method not in SAFE_METHODS:
            args["_body"] = _json_body()
        authorize(get_session, p, endpoint, args)
    except Unauthenticated:
        if (
            not request.path.startswith(("/api/", "/open311/", "/tiles/", "/basemap/"))
            and request.method == "GET"
        ):
            return redirect(url_for("auth_pages.login_page", next=request.full_path.rstrip("?")))
        raise
    return None


def security_headers(
    config: Any, nonce: str, secure: bool, no_store: bool
) -> list[tuple[str, str]]:
    """The security headers of every answer, in order: the CSP with the request's ``nonce``,
    HSTS when the request came over HTTPS (``secure``) or cookies are HTTPS-only, and
    ``Cache-Control: no-store`` where ``no_store`` (API answers and pages)."""
    out = [
        ("Content-Security-Policy", content_security_policy(nonce, config)),
        *STATIC_HEADERS,
    ]
    if secure or config.get("SESSION_COOKIE_SECURE"):
        out.append(("Strict-Transport-Security", "max-age=31536000"))
    if no_store:
        out.append(("Cache-Control", "no-store"))
    return out


#: The security headers that never change, in the order they are sent.
STATIC_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Permissions-Policy", "geolocation=(self), camera=(self), microphone=()"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)
NO_STORE_PREFIXES = ("/api/", "/open311/")


def _after_request(response):  # type: ignore[no-untyped-def]
    h = response.headers
    # A view may have set one of them itself: it keeps its own (one pass over the headers,
    # instead of a search of every header for each name).
    have = {name.lower() for name in h.keys()}
    for name, value in security_headers(
        current_app.config,
        g.get("csp_nonce", ""),
        request.is_secure,
        request.path.startswith(NO_STORE_PREFIXES) or response.mimetype == "text/html",
    ):
        if name.lower() not in have:
            h.add(name, value)
    if g.get("stale_cookie") and SESSION_COOKIE not in h.get("Set-Cookie", ""):
        response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def tile_origins(config: Any = None) -> list[str]:
    """The origins of the configured basemap's tiles, for the CSP (app.services.basemap)."""
    from app.services.basemap import tile_origins as origins

    return origins(current_app.config if config is None else config)


def content_security_policy(nonce: str, config: Any = None) -> str:
    """The CSP of an answer (``config``: the app's, the current app's when not given)."""
    config = current_app.config if config is None else config
    key = tuple(repr(config.get(k)) for k in BASEMAP_KEYS)  # any value, hashable
    parts = _CSP_PARTS.get(key)
    if parts is None:
        tiles = " ".join(tile_origins(config))
        parts = _CSP_PARTS[key] = (
            "default-src 'self'; script-src 'self' 'nonce-",
            "'; style-src 'self' 'unsafe-inline'; "
            + f"img-src 'self' data: blob: {tiles}".rstrip()
            + f"; font-src 'self' data:; connect-src 'self' {tiles}".rstrip()
            + "; object-src 'none'; base-uri 'self'; "
            "form-action 'self'; frame-ancestors 'none'",
        )
    return parts[0] + nonce + parts[1]


#: The settings the CSP depends on (the basemap's: where its tiles come from), and the CSP
#: around the nonce for each combination of them met so far (built once, not per answer).
BASEMAP_KEYS = tuple(k for k in DEFAULTS if k.startswith(("BASEMAP", "TIANDITU")))
_CSP_PARTS: dict[tuple[Any, ...], tuple[str, str]] = {}


def csp_nonce() -> str:
    return g.get("csp_nonce", "")


def user_label() -> str:
    """Who is signed in, for the page corner: name and role (empty for nobody)."""
    from app.models.auth import USER_ROLE_NAMES

    p = current_principal()
    if not p.authenticated:
        return ""
    return f"{p.label}（{USER_ROLE_NAMES.get(p.role, p.role)}）"


def csrf_token() -> str:
    """The CSRF token of the current session (empty when nobody is signed in)."""
    return current_principal().csrf_token or ""


# ---------------------------------------------------------------- audit of changes


def _body_summary() -> dict[str, Any]:
    """What the request asked, without personal values: field names, ids, flags."""
    data: dict[str, Any] = {}
    src: dict[str, Any] = _json_body() or {k: v for k, v in request.form.items()}
    for key, value in src.items():
        if key in PERSONAL_FIELDS:
            data[key] = "<personal data withheld>"
        elif key in ("geometry", "line", "features", "roads", "candidates"):
            data[key] = f"<{type(value).__name__}>"
        elif isinstance(value, str | int | float | bool) or value is None:
            data[key] = value if not isinstance(value, str) else value[:200]
        elif isinstance(value, list) and all(isinstance(v, int | str) for v in value[:50]):
            data[key] = value[:50]
        elif isinstance(value, dict) and key in ("actor", "properties"):
            data[key] = {
                k: ("<personal data withheld>" if k in PERSONAL_FIELDS else v)
                for k, v in value.items()
                if isinstance(v, str | int | float | bool) or v is None
            }
    if request.files:
        data["_files"] = sorted(request.files.keys())
    return data


def audit_before_commit(session: Session) -> None:
    """Append the audit entry of the change being committed (called by ``transaction``)."""
    if not has_request_context():
        who_ = audit.Who(username="cli", role="operator")
        audit.record(session, who_, "change", "cli " + " ".join(sys.argv[1:3])[:70])
        return
    if g.get("audit_skip"):
        return
    endpoint = request.endpoint or "?"
    view_args = request.view_args or {}
    obj_type, obj_id = _object_of(endpoint, view_args)
    before = after = None
    if endpoint in GRID_EDIT_ENDPOINTS:
        changes = audit.grid_boundary_changes(session)
        before = [c["before"] for c in changes] or None
        after = [
            {"change_id": c["change_id"], "kind": c["kind"], "grids": c["after"]} for c in changes
        ] or None
        if changes and obj_id is None:
            obj_type, obj_id = "grid_change", changes[-1]["change_id"]
    audit.record(
        session,
        who(),
        "change",
        f"{request.method} {endpoint}",
        object_type=obj_type,
        object_id=obj_id,
        before=before,
        after=after,
        detail={"path": request.path, "args": view_args, "body": _body_summary()},
    )


def _object_of(endpoint: str, args: dict[str, Any]) -> tuple[str | None, Any]:
    for key, kind in (
        ("grid_id", "grid"),
        ("ref", "case"),
        ("code", "case"),
        ("area_id", "override_area"),
        ("change_id", "grid_change"),
        ("household_id", "household"),
        ("user_id", "user"),
        ("kind", "import"),
    ):
        if key in args:
            return kind, args[key]
    return endpoint.split(".")[0].removesuffix("_api"), None


def record_personal_read(
    what: str, object_type: str, object_id: Any, fields: list[str], kind: str = "read_personal"
) -> None:
    """Record that personal data was read (a full value shown, an export), and commit it.

    It is written through the request's session, which a read commits nowhere else, so the
    entry is on record before the response with the data leaves.
    """
    session = get_session()
    g.audit_skip = True  # this commit is the entry itself, not a change to describe
    try:
        audit.record(
            session,
            who(),
            kind,
            what,
            object_type=object_type,
            object_id=object_id,
            detail={"fields": fields, "path": request.path if has_request_context() else None},
        )
        session.commit()
    finally:
        g.audit_skip = False


def init_app(app: Flask) -> None:
    """Wire sign-in, CSRF, authorisation, headers and the audit into the app."""
    app.before_request(_before_request)
    app.after_request(_after_request)
    get_db_hooks(app).append(audit_before_commit)
    app.jinja_env.globals.update(
        csp_nonce=csp_nonce,
        csrf_token=csrf_token,
        user_label=user_label,
        user_role=lambda: current_principal().role,
    )

    from app.auth import views

    app.register_blueprint(views.api_bp)
    app.register_blueprint(views.pages_bp)


def get_db_hooks(app: Flask) -> list[Any]:
    return app.extensions["gridgov_db"].before_commit


__all__ = [
    "SESSION_COOKIE",
    "CSRF_HEADER",
    "Forbidden",
    "Principal",
    "Unauthenticated",
    "current_principal",
    "init_app",
    "limits",
]
