"""Accounts and sessions: create users, check passwords, sign in and out, API tokens.

Passwords are hashed with Argon2id (``argon2-cffi``). Signing in is limited twice: after
``LOGIN_MAX_FAILURES`` failures in a row of one account from one address, that pair waits one
minute, doubling with each further failure up to ``LOGIN_LOCK_MINUTES`` (other addresses are not
held back), and one address may try at most ``LOGIN_IP_LIMIT`` times in
``LOGIN_IP_WINDOW_MINUTES``. Both are counted atomically (advisory locks). A locked, unknown or
wrong sign-in answers alike, after the same Argon2 work. A session is a
random token given to the browser (a cookie) or to a machine client (a bearer token); only its
SHA-256 is stored, so the table leaks no usable token. A browser session ends after
``SESSION_IDLE_MINUTES`` without a request and ``SESSION_ABSOLUTE_HOURS`` after sign-in, or at
logout — after which the same cookie is refused.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from app.errors import AppError, BadParameter, Conflict, NotFound, ValidationFailed
from app.models import AppUser, Department, LoginAttempt, UserSession, Worker
from app.models.auth import USER_ROLE_NAMES, USER_ROLES

LOGGER = logging.getLogger(__name__)

HASHER = PasswordHasher()  # Argon2id, the library's recommended parameters
# Verified when the username is unknown, so that a miss takes as long as a wrong password.
_DUMMY_HASH = HASHER.hash(secrets.token_urlsafe(16))
MIN_PASSWORD_LENGTH = 10

DEFAULT_LIMITS: dict[str, float] = {
    "LOGIN_MAX_FAILURES": 5,
    "LOGIN_LOCK_MINUTES": 15,
    "LOGIN_IP_LIMIT": 30,
    "LOGIN_IP_WINDOW_MINUTES": 10,
    "SESSION_IDLE_MINUTES": 30,
    "SESSION_ABSOLUTE_HOURS": 12,
    "TOKEN_DAYS": 365,
}


class LoginFailed(AppError):
    """Wrong username or password (which of the two is not said)."""

    http_status = 401
    code = "login_failed"


class TooManyAttempts(AppError):
    """Too many sign-in attempts from one address."""

    http_status = 429
    code = "too_many_attempts"


@dataclass(frozen=True)
class NewSession:
    token: str
    csrf_token: str
    session: UserSession


def _now() -> datetime:
    return datetime.now(UTC)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_password_strength(password: str, username: str | None = None) -> None:
    """Refuse passwords that are short, all one kind of character, or the username."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"密码至少 {MIN_PASSWORD_LENGTH} 位 / the password needs at least "
            f"{MIN_PASSWORD_LENGTH} characters",
            field="password",
        )
    kinds = sum(
        [
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        ]
    )
    if kinds < 2:
        raise ValidationFailed(
            "密码需含字母、数字、符号中至少两类 / the password needs at least two kinds of "
            "characters (letters, digits, symbols)",
            field="password",
        )
    if username and username.lower() in password.lower():
        raise ValidationFailed(
            "密码不能包含用户名 / the password must not contain the username", field="password"
        )


def create_user(
    session: Session,
    username: str,
    role: str,
    password: str | None,
    *,
    display_name: str | None = None,
    worker_code: str | None = None,
    worker_id: int | None = None,
    department_code: str | None = None,
    department_id: int | None = None,
    grid_code: str | None = None,
    grid_id: int | None = None,
) -> AppUser:
    """Create an account; a person's role needs its link (worker, department, grid)."""
    if role not in USER_ROLES:
        raise BadParameter("role", f"'{role}' is not one of {', '.join(USER_ROLES)}")
    if not username or not isinstance(username, str):
        raise BadParameter("username", "is required")
    if not _username_ok(username):
        raise BadParameter("username", "3–60 characters: letters, digits and _ . @ -")
    if session.scalar(select(AppUser.id).where(AppUser.username == username)) is not None:
        raise Conflict(f"用户名 {username} 已存在 / the username '{username}' is taken")
    if role == "camera_feed":
        if password:
            raise BadParameter("password", "a camera_feed account signs in with a token only")
    else:
        if not password:
            raise BadParameter("password", "is required")
        check_password_strength(password, username)
    if worker_code:
        worker_id = session.scalar(select(Worker.id).where(Worker.code == worker_code))
        if worker_id is None:
            raise NotFound(f"worker '{worker_code}' not found")
    elif worker_id is not None and session.get(Worker, worker_id) is None:
        raise NotFound(f"worker {worker_id} not found")
    if department_code:
        department_id = session.scalar(
            select(Department.id).where(Department.code == department_code)
        )
        if department_id is None:
            raise NotFound(f"department '{department_code}' not found")
    if grid_code:
        grid_id = session.scalar(
            text("SELECT id FROM grid WHERE code = :c AND valid_to IS NULL"), {"c": grid_code}
        )
        if grid_id is None:
            raise NotFound(f"grid '{grid_code}' not found")
    if role in ("grid_chief", "micro_chief", "worker", "party_member") and worker_id is None:
        raise BadParameter("worker", f"a {role} account must be linked to a worker")
    if role == "department" and department_id is None:
        raise BadParameter("department", "a department account must name its department")
    user = AppUser(
        username=username,
        role=role,
        display_name=display_name,
        password_hash=HASHER.hash(password) if password else None,
        worker_id=worker_id,
        department_id=department_id,
        grid_id=grid_id,
        password_changed_at=_now() if password else None,
    )
    session.add(user)
    session.flush()
    return user


def _username_ok(username: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9_.@-]{3,60}", username) is not None


def set_password(session: Session, user: AppUser, password: str) -> None:
    """Give the account a new password and end its other sessions."""
    check_password_strength(password, user.username)
    user.password_hash = HASHER.hash(password)
    user.password_changed_at = _now()
    user.failed_logins = 0
    user.locked_until = None
    unlock(session, user.username)
    session.execute(
        update(UserSession)
        .where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
        .values(ended_at=func.now())
    )


def user_dict(u: AppUser) -> dict[str, Any]:
    return {
        "id": u.id,
        "username": u.username,
        "display_name": u.display_name,
        "role": u.role,
        "role_name": USER_ROLE_NAMES.get(u.role, u.role),
        "worker_id": u.worker_id,
        "department_id": u.department_id,
        "grid_id": u.grid_id,
        "active": u.active,
        "locked_until": u.locked_until.isoformat() if u.locked_until else None,
        "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None,
    }


def list_users(session: Session) -> list[dict[str, Any]]:
    """Every account; ``locked_until`` is the latest wait of any of its addresses."""
    locks = dict(
        session.execute(
            text(
                "SELECT username, max(locked_until) FROM login_lock "
                "WHERE locked_until > now() GROUP BY username"
            )
        ).all()
    )
    out = []
    for u in session.scalars(select(AppUser).order_by(AppUser.username)):
        row = user_dict(u)
        if u.username in locks:
            row["locked_until"] = locks[u.username].isoformat()
        out.append(row)
    return out


def get_user(session: Session, user_id: int) -> AppUser:
    user = session.get(AppUser, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


# ---------------------------------------------------------------- signing in


def password_matches(user: AppUser | None, password: str) -> bool:
    """Say whether ``password`` is the account's (as slow for no account as for a wrong one)."""
    stored = user.password_hash if user is not None and user.password_hash else None
    try:
        HASHER.verify(stored or _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return stored is not None


SIGN_IN_FAILED = (
    "用户名或密码错误，或失败次数过多请稍后再试 / wrong username or password, or too many "
    "failures: wait a while and try again"
)


def _advisory_lock(session: Session, key: str) -> None:
    """Serialise, until the transaction ends, every sign-in that counts under ``key``."""
    session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 7303))"), {"k": key})


def _ip_attempts(session: Session, ip: str, since: datetime) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(LoginAttempt)
            .where(LoginAttempt.ip == ip, LoginAttempt.at > since)
        )
        or 0
    )


def lock_delay(failures: int, limits: dict[str, Any]) -> timedelta | None:
    """How long an (account, address) pair waits after ``failures`` failures in a row.

    None below ``LOGIN_MAX_FAILURES``; then one minute, doubling with every further failure,
    at most ``LOGIN_LOCK_MINUTES``.
    """
    first = int(limits["LOGIN_MAX_FAILURES"])
    if failures < first:
        return None
    minutes = min(2.0 ** min(failures - first, 20), float(limits["LOGIN_LOCK_MINUTES"]))
    return timedelta(minutes=minutes)


def _too_many(window: timedelta) -> TooManyAttempts:
    return TooManyAttempts(
        "登录尝试过于频繁，请稍后再试 / too many sign-in attempts from this address; "
        f"wait {int(window.total_seconds() // 60)} minutes",
        retry_after=int(window.total_seconds()),
    )


def check_attempt(
    session: Session,
    username: str,
    user: AppUser | None,
    password: str,
    ip: str | None,
    limits: dict[str, Any],
    *,
    now: datetime | None = None,
    message: str = SIGN_IN_FAILED,
) -> AppUser:
    """Check ``password`` for ``username`` within the limits and record the attempt.

    The per-address limit and the per-(account, address) lock are counted under advisory
    locks held to the end of the transaction, so concurrent attempts cannot overtake each
    other. A locked pair, an unknown account and a wrong password all cost one Argon2
    verification and raise the same ``LoginFailed`` (``message``); ``TooManyAttempts`` (429)
    says only that this address tries too often. The caller commits even when this raises.
    """
    now = now or _now()
    window = timedelta(minutes=float(limits["LOGIN_IP_WINDOW_MINUTES"]))
    ip_limit = int(limits["LOGIN_IP_LIMIT"])
    # A quick refusal that spends no hash; the counting that holds is the locked one below.
    if ip is not None and _ip_attempts(session, ip, now - window) >= ip_limit:
        raise _too_many(window)
    ok = password_matches(user, password) and user is not None and user.active
    if ip is not None:
        _advisory_lock(session, f"login-ip:{ip}")
        if _ip_attempts(session, ip, now - window) >= ip_limit:
            raise _too_many(window)
    pair = {"u": username, "ip": ip or ""}
    _advisory_lock(session, f"login:{username}|{ip or ''}")
    attempt = LoginAttempt(ip=ip, username=username, success=False, at=now)
    session.add(attempt)
    lock = session.execute(
        text("SELECT failures, locked_until FROM login_lock WHERE username = :u AND ip = :ip"),
        pair,
    ).first()
    locked = lock is not None and lock.locked_until is not None and lock.locked_until > now
    if locked or not ok:
        if not locked:
            failures = session.scalar(
                text(
                    """INSERT INTO login_lock (username, ip, failures, last_failure_at)
                       VALUES (:u, :ip, 1, :now)
                       ON CONFLICT (username, ip) DO UPDATE SET
                         failures = CASE WHEN login_lock.last_failure_at < :stale THEN 1
                                         ELSE login_lock.failures + 1 END,
                         last_failure_at = :now
                       RETURNING failures"""
                ),
                pair | {"now": now, "stale": now - timedelta(days=1)},
            )
            delay = lock_delay(int(failures), limits)
            if delay is not None:
                session.execute(
                    text(
                        "UPDATE login_lock SET locked_until = :t WHERE username = :u AND ip = :ip"
                    ),
                    pair | {"t": now + delay},
                )
        session.flush()
        raise LoginFailed(message)
    assert user is not None
    session.execute(text("DELETE FROM login_lock WHERE username = :u AND ip = :ip"), pair)
    attempt.success = True
    session.flush()
    return user


def authenticate(
    session: Session,
    username: str,
    password: str,
    ip: str | None,
    limits: dict[str, Any],
    *,
    now: datetime | None = None,
) -> AppUser:
    """Sign in with a username and password (see ``check_attempt``); return the account.

    Raises ``TooManyAttempts`` (429) or ``LoginFailed`` (401, the same for a locked, an
    unknown and a wrong sign-in). The attempt is recorded whatever the outcome; the caller
    commits even when this raises.
    """
    now = now or _now()
    username = (username or "").replace("\x00", "")[:60]
    user = session.scalar(select(AppUser).where(AppUser.username == username))
    user = check_attempt(session, username, user, password, ip, limits, now=now)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    if HASHER.check_needs_rehash(user.password_hash):  # type: ignore[arg-type]
        user.password_hash = HASHER.hash(password)
    session.flush()
    return user


def unlock(session: Session, username: str) -> int:
    """Lift every sign-in lock of an account (all addresses); return how many there were."""
    result = session.execute(text("DELETE FROM login_lock WHERE username = :u"), {"u": username})
    return result.rowcount or 0


def start_session(
    session: Session,
    user: AppUser,
    ip: str | None,
    limits: dict[str, Any],
    *,
    kind: str = "browser",
    now: datetime | None = None,
) -> NewSession:
    """Open a session (``browser``) or issue an API token (``token``) for ``user``."""
    now = now or _now()
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    lifetime = (
        timedelta(hours=float(limits["SESSION_ABSOLUTE_HOURS"]))
        if kind == "browser"
        else timedelta(days=float(limits["TOKEN_DAYS"]))
    )
    row = UserSession(
        token_hash=token_hash(token),
        user_id=user.id,
        kind=kind,
        csrf_token=csrf,
        created_at=now,
        last_seen_at=now,
        expires_at=now + lifetime,
        ip=ip,
    )
    session.add(row)
    session.flush()
    return NewSession(token=token, csrf_token=csrf, session=row)


# Looked up on every request: one statement (in the driver's parameter style, run through
# ``app.db.Reader`` on the read pool's bare connection), the account with it.
_LOOKUP = """SELECT s.id AS session_id, s.kind, s.csrf_token, s.last_seen_at, s.expires_at,
              u.id AS user_id, u.username, u.display_name, u.role, u.worker_id,
              u.department_id, u.grid_id
       FROM user_session s JOIN app_user u ON u.id = s.user_id
       WHERE s.token_hash = %(h)s AND s.ended_at IS NULL AND u.active
         AND s.expires_at > now()
         AND (s.kind = 'token' OR s.last_seen_at > now() - make_interval(secs => %(idle)s))"""
#: The session look-up, for a statement that reads something else in the same round trip
#: (the single locate): its rows, with ``lookup_params``, then ``keep_alive``.
LOOKUP_SQL = _LOOKUP
_TOUCH = "UPDATE user_session SET last_seen_at = now() WHERE id = %(id)s RETURNING id"


def lookup_session(reader: Any, token: str, limits: dict[str, Any]) -> Any | None:
    """Return the live session row of ``token`` with its account, or None; keep it alive.

    ``reader`` runs driver-level SQL (``app.db.Reader``). ``last_seen_at`` is
    written at most once a minute, so most requests cost one read.
    """
    row = reader.first(_LOOKUP, lookup_params(token, limits))
    if row is None:
        return None
    keep_alive(reader, row)
    return row


def lookup_params(token: str, limits: dict[str, Any]) -> dict[str, Any]:
    """The parameters of ``LOOKUP_SQL`` for a token (``h``: its hash, ``idle``: seconds)."""
    return {"h": token_hash(token), "idle": float(limits["SESSION_IDLE_MINUTES"]) * 60}


def keep_alive(reader: Any, row: Any) -> None:
    """Record a browser session's use, at most once a minute (``row`` from ``LOOKUP_SQL``)."""
    if row.kind == "browser" and (_now() - row.last_seen_at) > timedelta(seconds=60):
        reader.first(_TOUCH, {"id": row.session_id})


def end_session(session: Session, session_id: int) -> None:
    session.execute(
        update(UserSession)
        .where(UserSession.id == session_id, UserSession.ended_at.is_(None))
        .values(ended_at=func.now())
    )


def end_user_sessions(session: Session, user_id: int) -> int:
    """End every session and token of an account; return how many were open."""
    result = session.execute(
        update(UserSession)
        .where(UserSession.user_id == user_id, UserSession.ended_at.is_(None))
        .values(ended_at=func.now())
    )
    return result.rowcount or 0
