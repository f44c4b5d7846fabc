"""Sign in and out (API and page), the current account, user management, the audit log."""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from app.auth import (
    CSRF_HEADER,
    SESSION_COOKIE,
    client_ip,
    current_principal,
    limits,
    who,
)
from app.auth.policy import Forbidden
from app.db import get_session, transaction
from app.errors import AppError, BadParameter
from app.models.auth import USER_ROLE_NAMES, USER_ROLES
from app.params import body_fields, int_arg, int_field, moment_arg
from app.services import audit
from app.services import users as svc

api_bp = Blueprint("auth_api", __name__, url_prefix="/api")
pages_bp = Blueprint("auth_pages", __name__)

LOGIN_CSRF_COOKIE = "gridgov_login_csrf"


_body = body_fields


def _str(data: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = data.get(name)
    if value in (None, ""):
        if required:
            raise BadParameter(name, "is required")
        return None
    if not isinstance(value, str):
        raise BadParameter(name, "must be a string")
    if len(value) > 200:
        raise BadParameter(name, "is too long (at most 200 characters)")
    if "\x00" in value:
        raise BadParameter(name, "must not contain NUL characters")
    return value


def _set_session_cookie(response: Response, token: str) -> None:
    cfg = current_app.config
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(float(limits()["SESSION_ABSOLUTE_HOURS"]) * 3600),
        path="/",
        secure=bool(cfg.get("SESSION_COOKIE_SECURE", True)),
        httponly=True,
        samesite="Lax",
    )


def _sign_in(username: str, password: str) -> tuple[dict[str, Any], str]:
    """Check the password and open a session; failures are recorded and committed too."""
    session = get_session()
    ip = client_ip()
    try:
        user = svc.authenticate(session, username, password, ip, limits())
    except AppError as exc:
        g.audit_skip = True  # the attempt is logged below, not as a change
        audit.record(
            session,
            audit.Who(username=username[:60], ip=ip),
            "login_failed",
            exc.code,
            object_type="user",
            object_id=username[:60],
            status=exc.http_status,
        )
        session.commit()
        raise
    previous = current_principal()
    if previous.session_id is not None and previous.session_kind == "browser":
        svc.end_session(session, previous.session_id)  # a sign-in never keeps an older session
    new = svc.start_session(session, user, ip, limits())
    g.audit_skip = True
    audit.record(
        session,
        audit.Who(user_id=user.id, username=user.username, role=user.role, ip=ip),
        "login",
        "login",
        object_type="user",
        object_id=user.id,
    )
    session.commit()
    return svc.user_dict(user) | {"csrf_token": new.csrf_token}, new.token


def _sign_out() -> None:
    p = current_principal()
    if p.session_id is None:
        return
    session = get_session()
    svc.end_session(session, p.session_id)
    g.audit_skip = True
    audit.record(session, who(), "logout", "logout", object_type="user", object_id=p.user_id)
    session.commit()


# ---------------------------------------------------------------- API


@api_bp.post("/auth/login")
def login():  # type: ignore[no-untyped-def]
    """Sign in with username and password; the session comes back as an HttpOnly cookie."""
    data = _body()
    user, token = _sign_in(_str(data, "username") or "", _str(data, "password") or "")
    response = jsonify(user=user, csrf_token=user.pop("csrf_token"))
    _set_session_cookie(response, token)
    return response


@api_bp.post("/auth/logout")
def logout():  # type: ignore[no-untyped-def]
    """End the session: the same cookie is refused from now on."""
    _sign_out()
    response = jsonify(logged_out=True)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@api_bp.get("/auth/me")
def me():  # type: ignore[no-untyped-def]
    """Who is signed in (or nobody), with the CSRF token to send on changes."""
    p = current_principal()
    if not p.authenticated:
        return jsonify(authenticated=False, role="anonymous")
    return jsonify(
        authenticated=True,
        id=p.user_id,
        username=p.username,
        display_name=p.display_name,
        role=p.role,
        role_name=USER_ROLE_NAMES.get(p.role, p.role),
        worker_id=p.worker_id,
        department_id=p.department_id,
        grid_id=p.grid_id,
        csrf_token=p.csrf_token if p.session_kind == "browser" else None,
        csrf_header=CSRF_HEADER,
    )


@api_bp.post("/auth/password")
def password():  # type: ignore[no-untyped-def]
    """Change one's own password (the old one is asked again); other sessions end."""
    data = _body()
    p = current_principal()
    session = get_session()
    user = svc.get_user(session, p.user_id)  # type: ignore[arg-type]
    old = _str(data, "old_password") or ""
    ip = client_ip()
    try:
        # The same limits as signing in: a stolen session cannot guess the password freely.
        svc.check_attempt(
            session,
            user.username,
            user,
            old,
            ip,
            limits(),
            message="原密码错误，或失败次数过多请稍后再试 / the current password is wrong, or "
            "too many failures: wait a while and try again",
        )
    except AppError as exc:
        g.audit_skip = True
        audit.record(
            session,
            who(),
            "login_failed",
            f"password change: {exc.code}",
            object_type="user",
            object_id=user.id,
            status=exc.http_status,
        )
        session.commit()
        raise
    with transaction(session):
        svc.set_password(session, user, _str(data, "new_password") or "")
    return jsonify(changed=True)


@api_bp.get("/users")
def list_users():  # type: ignore[no-untyped-def]
    """Every account (no password hashes)."""
    return jsonify(items=svc.list_users(get_session()), roles=list(USER_ROLES))


@api_bp.post("/users")
def create_user():  # type: ignore[no-untyped-def]
    """Create an account: username, role, password, and its worker / department / grid."""
    data = _body()
    session = get_session()
    with transaction(session):
        user = svc.create_user(
            session,
            _str(data, "username") or "",
            _str(data, "role") or "",
            _str(data, "password", required=False),
            display_name=_str(data, "display_name", required=False),
            worker_code=_str(data, "worker_code", required=False),
            worker_id=int_field(data, "worker_id", minimum=1),
            department_code=_str(data, "department_code", required=False),
            department_id=int_field(data, "department_id", minimum=1),
            grid_code=_str(data, "grid_code", required=False),
            grid_id=int_field(data, "grid_id", minimum=1),
        )
    return jsonify(svc.user_dict(user)), 201


@api_bp.patch("/users/<int:user_id>")
def update_user(user_id: int):  # type: ignore[no-untyped-def]
    """Change an account: active, role, display name, a new password, unlock."""
    data = _body()
    session = get_session()
    with transaction(session):
        user = svc.get_user(session, user_id)
        if "active" in data:
            if not isinstance(data["active"], bool):
                raise BadParameter("active", "must be true or false")
            user.active = data["active"]
            if not user.active:
                svc.end_user_sessions(session, user.id)
        if data.get("role") is not None:
            role = _str(data, "role") or ""
            if role not in USER_ROLES:
                raise BadParameter("role", f"'{role}' is not one of {', '.join(USER_ROLES)}")
            user.role = role
            svc.end_user_sessions(session, user.id)
        if data.get("display_name") is not None:
            user.display_name = (_str(data, "display_name") or "")[:60]
        if data.get("password"):
            svc.set_password(session, user, _str(data, "password") or "")
        if data.get("unlock"):
            user.locked_until = None
            user.failed_logins = 0
            svc.unlock(session, user.username)
    return jsonify(svc.user_dict(user))


@api_bp.post("/users/<int:user_id>/end-sessions")
def end_sessions(user_id: int):  # type: ignore[no-untyped-def]
    """Sign an account out everywhere (browser sessions and tokens)."""
    session = get_session()
    with transaction(session):
        svc.get_user(session, user_id)
        n = svc.end_user_sessions(session, user_id)
    return jsonify(ended=n)


def _text_arg(name: str) -> str | None:
    value = request.args.get(name) or None
    if value is not None and ("\x00" in value or len(value) > 80):
        raise BadParameter(name, "at most 80 characters, no NUL")
    return value


def _audit_filters() -> dict[str, Any]:
    kind = request.args.get("kind") or None
    if kind and kind not in audit.KINDS:
        raise BadParameter("kind", f"'{kind}' is not one of {', '.join(audit.KINDS)}")
    return {
        "kind": kind,
        "username": _text_arg("username"),
        "object_type": _text_arg("object_type"),
        "object_id": _text_arg("object_id"),
        "since": moment_arg("since"),
        "until": moment_arg("until"),
    }


@api_bp.get("/audit")
def audit_log():  # type: ignore[no-untyped-def]
    """The audit log, newest first (filters: kind, username, object_type, object_id, since, until)."""
    return jsonify(
        audit.entries(
            get_session(),
            limit=int_arg("limit", minimum=1, maximum=5000, default=200),
            offset=int_arg("offset", minimum=0, default=0),
            **_audit_filters(),
        )
    )


@api_bp.get("/audit/export.csv")
def audit_export():  # type: ignore[no-untyped-def]
    """The audit log as CSV (same filters); the export itself is logged."""
    filters = _audit_filters()
    body = audit.export_csv(get_session(), **filters)
    from app.auth import record_personal_read

    record_personal_read("audit export", "audit_log", None, ["*"], kind="export")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Response(
        body,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="audit-{stamp}.csv"'},
    )


# ---------------------------------------------------------------- pages


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no scheme, no host, no //): never an open redirect."""
    if not target:
        return url_for("emap.emap")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("emap.emap")
    return target


@pages_bp.get("/login")
def login_page():  # type: ignore[no-untyped-def]
    """The sign-in page."""
    token = secrets.token_urlsafe(24)
    html = render_template(
        "auth/login.html", form_token=token, next=_safe_next(request.args.get("next")), error=None
    )
    response = Response(html, mimetype="text/html")
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=1800,
        path="/login",
        httponly=True,
        samesite="Strict",
        secure=bool(current_app.config.get("SESSION_COOKIE_SECURE", True)),
    )
    return response


@pages_bp.post("/login")
def login_submit():  # type: ignore[no-untyped-def]
    """Check the form; on success set the session cookie and go where the user was going."""
    target = _safe_next(request.form.get("next"))
    sent, expected = request.form.get("csrf_token", ""), request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not sent or not expected or not hmac.compare_digest(sent, expected):
        raise Forbidden("登录表单已过期，请刷新页面 / the sign-in form expired; reload the page")
    try:
        _user, token = _sign_in(
            request.form.get("username", "")[:60], request.form.get("password", "")[:200]
        )
    except AppError as exc:
        html = render_template("auth/login.html", form_token=sent, next=target, error=exc.message)
        return Response(html, status=exc.http_status, mimetype="text/html")
    response = redirect(target)
    _set_session_cookie(response, token)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@pages_bp.post("/logout")
def logout_page():  # type: ignore[no-untyped-def]
    """End the session and go back to the sign-in page."""
    _sign_out()
    response = redirect(url_for("auth_pages.login_page"))
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@pages_bp.get("/admin/users")
def users_page():  # type: ignore[no-untyped-def]
    """Accounts, for the administrator."""
    from app.web.labels import link_names

    session = get_session()
    return render_template(
        "auth/users.html",
        users=link_names(session, svc.list_users(session)),
        role_names=USER_ROLE_NAMES,
    )


@pages_bp.get("/admin/audit")
def audit_page():  # type: ignore[no-untyped-def]
    """The audit log, for the administrator."""
    from app.services import audit as audit_svc
    from app.web.labels import audit_rows

    session = get_session()
    entries = audit_svc.entries(session, limit=200, **_audit_filters())["items"]
    return render_template("auth/audit.html", entries=audit_rows(session, entries))
