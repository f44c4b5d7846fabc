"""Accounts, their sessions, login attempts and the append-only audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import INET, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base

# The roles an account can have; app.auth.policy says what each may do.
USER_ROLES = (
    "admin",
    "centre",
    "grid_chief",
    "micro_chief",
    "worker",
    "party_member",
    "department",
    "camera_feed",
)
USER_ROLE_NAMES = {
    "admin": "系统管理员",
    "centre": "指挥中心",
    "grid_chief": "网格长",
    "micro_chief": "微网格长",
    "worker": "网格员",
    "party_member": "党员联户",
    "department": "职能部门",
    "camera_feed": "视频分析接入",
}


class AppUser(Base):
    """An account: a person of the centre, a chief or worker (linked to ``worker``), a department
    member, or a machine client (camera analytics) that signs in with a token."""

    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(60), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(60))
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str | None] = mapped_column(Text)
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("worker.id", ondelete="SET NULL"))
    department_id: Mapped[int | None] = mapped_column(
        ForeignKey("department.id", ondelete="SET NULL")
    )
    # The centre's territory (its street); None: every grid.
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grid.id", ondelete="SET NULL"))
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    failed_logins: Mapped[int] = mapped_column(Integer, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    password_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(
            "role IN (" + ", ".join(f"'{r}'" for r in USER_ROLES) + ")", name="role_known"
        ),
        CheckConstraint("username ~ '^[A-Za-z0-9_.@-]{3,60}$'", name="username_chars"),
    )


class UserSession(Base):
    """A signed-in session (browser cookie) or an API token; only the token's hash is kept."""

    __tablename__ = "user_session"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10), server_default="browser")
    csrf_token: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_seen_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ip: Mapped[str | None] = mapped_column(INET)

    __table_args__ = (
        CheckConstraint("kind IN ('browser', 'token')", name="kind_known"),
        Index("ix_user_session_user_id", "user_id"),
    )


class LoginAttempt(Base):
    """One try to sign in, for the per-account lockout and the per-address rate limit."""

    __tablename__ = "login_attempt"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    ip: Mapped[str | None] = mapped_column(INET)
    username: Mapped[str | None] = mapped_column(String(60))
    success: Mapped[bool] = mapped_column(Boolean)

    __table_args__ = (Index("ix_login_attempt_ip_at", "ip", "at"),)


class LoginLock(Base):
    """Failed sign-ins of one account from one address, and how long that pair must wait.

    The wait grows with each failure past the limit; another address is not held back, so
    nobody can lock an account out for everyone."""

    __tablename__ = "login_lock"

    username: Mapped[str] = mapped_column(String(60), primary_key=True)
    ip: Mapped[str] = mapped_column(String(64), primary_key=True)  # '' when unknown
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_failure_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RateHit(Base):
    """One use of a rate-limited action (e.g. an anonymous photo upload) by one address."""

    __tablename__ = "rate_hit"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    bucket: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(80))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    weight: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    __table_args__ = (Index("ix_rate_hit_bucket_key_at", "bucket", "key", "at"),)


class AuditEntry(Base):
    """One change or one read of personal data: who, when, what; rows are never changed
    (a trigger refuses UPDATE and DELETE)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    user_id: Mapped[int | None] = mapped_column(Integer)
    username: Mapped[str | None] = mapped_column(String(60))
    role: Mapped[str | None] = mapped_column(String(20))
    ip: Mapped[str | None] = mapped_column(INET)
    # change | read_personal | export | login | logout | login_failed | admin
    kind: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(80))
    object_type: Mapped[str | None] = mapped_column(String(40))
    object_id: Mapped[str | None] = mapped_column(String(80))
    status: Mapped[int | None] = mapped_column(Integer)
    before: Mapped[Any | None] = mapped_column(JSONB)
    after: Mapped[Any | None] = mapped_column(JSONB)
    detail: Mapped[Any | None] = mapped_column(JSONB)

    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_object", "object_type", "object_id"),
        Index("ix_audit_log_user_id", "user_id"),
    )
