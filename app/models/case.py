"""Cases (事件) and every transition they go through."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    ARRAY,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base
from app.models.people import POINT_IN_RANGE

CASE_SOURCES = ("resident", "patrol", "camera", "hotline", "superior")
CASE_STATUSES = (
    "reported",
    "dispatched",
    "accepted",
    "resolved",
    "verified",
    "closed",
    "cancelled",
)
# The states a case is finished in; every other state is open.
CASE_FINAL_STATUSES = ("closed", "cancelled")
# The open states in which a case still waits for handling: these can be overdue.
CASE_PENDING_STATUSES = ("reported", "dispatched", "accepted")


def sql_list(values: tuple[str, ...]) -> str:
    """``('a', 'b')`` for an SQL ``IN`` (the values are this module's constants)."""
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


class Case(Base):
    """An incident at a place, routed to the worker who owns the micro-grid containing it."""

    __tablename__ = "case"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The internal code (SJ + date + sequence) staff use; residents get ``public_code``.
    code: Mapped[str] = mapped_column(String(32), unique=True)
    # What a resident receives: 75 random bits and a check character (app.services.public_cases).
    public_code: Mapped[str] = mapped_column(
        String(16), unique=True, server_default=text("case_public_code()")
    )
    # SHA-256 of the secret given once in the report's answer (proof of being the reporter).
    reporter_secret_hash: Mapped[str | None] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(ForeignKey("case_category.code", onupdate="CASCADE"))
    description: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(12))
    # The position exactly as reported, and the CRS it came in.
    reported_x: Mapped[float] = mapped_column(Float)
    reported_y: Mapped[float] = mapped_column(Float)
    reported_crs: Mapped[str] = mapped_column(String(20))
    geom: Mapped[WKBElement] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grid.id", ondelete="SET NULL"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("worker.id", ondelete="SET NULL"))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    camera_id: Mapped[int | None] = mapped_column(ForeignKey("camera.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(12), server_default="reported")
    deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    satisfaction: Mapped[int | None] = mapped_column(SmallInteger)
    solved: Mapped[bool | None] = mapped_column(Boolean)
    reporter_contact: Mapped[str | None] = mapped_column(String(60))
    idempotency_key: Mapped[str | None] = mapped_column(String(80), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    # Added by the case-loop revision: routing, escalation, merges, idempotency, camera dedup.
    idempotency_hash: Mapped[str | None] = mapped_column(String(64))
    reporter_name: Mapped[str | None] = mapped_column(String(60))
    address: Mapped[str | None] = mapped_column(String(200))
    # 0 the micro-grid's worker, 1 the micro-grid chief, 2 the category's functional department.
    escalation_level: Mapped[int] = mapped_column(SmallInteger, server_default="0")
    routing: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("case.id", ondelete="SET NULL"))
    camera_event_type: Mapped[str | None] = mapped_column(String(40))
    camera_event_count: Mapped[int] = mapped_column(Integer, server_default="0")
    last_camera_event_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rating_note: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    events: Mapped[list[CaseEvent]] = relationship(
        back_populates="case", order_by="CaseEvent.at", cascade="all, delete-orphan"
    )

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        CheckConstraint(POINT_IN_RANGE, name="lonlat_range"),
        CheckConstraint(f"source IN {sql_list(CASE_SOURCES)}", name="source_known"),
        CheckConstraint(f"status IN {sql_list(CASE_STATUSES)}", name="status_known"),
        CheckConstraint("satisfaction BETWEEN 1 AND 5", name="satisfaction_range"),
        CheckConstraint("escalation_level BETWEEN 0 AND 2", name="escalation_level_range"),
        Index("ix_case_geom", "geom", postgresql_using="gist"),
        Index("ix_case_code_pattern", "code", postgresql_ops={"code": "text_pattern_ops"}),
        Index("ix_case_category_status", "category", "status"),
        Index("ix_case_created_at", "created_at"),
        Index(
            "ix_case_camera_open",
            "camera_id",
            "camera_event_type",
            postgresql_where=text("status NOT IN ('closed', 'cancelled')"),
        ),
        Index("ix_case_grid_id_status", "grid_id", "status"),
        Index("ix_case_assignee_id_status", "assignee_id", "status"),
    )


class CaseEvent(Base):
    """One transition of a case: who did what, when, where, with which note."""

    __tablename__ = "case_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(20))
    from_status: Mapped[str | None] = mapped_column(String(12))
    to_status: Mapped[str] = mapped_column(String(12))
    actor: Mapped[str | None] = mapped_column(String(80))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    note: Mapped[str | None] = mapped_column(Text)
    geom: Mapped[WKBElement | None] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=False)
    )
    # Added by the case-loop revision: the actor's role and worker id, and what the action changed.
    actor_role: Mapped[str | None] = mapped_column(String(20))
    actor_worker_id: Mapped[int | None] = mapped_column(
        ForeignKey("worker.id", ondelete="SET NULL")
    )
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONB)

    case: Mapped[Case] = relationship(back_populates="events")

    __table_args__ = (Index("ix_case_event_case_id_at", "case_id", "at"),)


class CaseCategory(Base):
    """A kind of case with its time limit (working hours), escalation department and review rule."""

    __tablename__ = "case_category"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(60))
    time_limit_hours: Mapped[float] = mapped_column(Float)
    # A department code (department.code); kept as a code so a department re-import keeps it.
    escalation_department_code: Mapped[str | None] = mapped_column(String(40))
    # Whether a resolved case waits for a micro-grid chief or the centre to verify it.
    verify_required: Mapped[bool] = mapped_column(Boolean, server_default="true")
    camera_event_types: Mapped[list[str]] = mapped_column(ARRAY(String(40)), server_default="{}")
    description: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    # A departmental network (多网合一) whose grid at the point names who handles the case.
    network_id: Mapped[int | None] = mapped_column(ForeignKey("network.id", ondelete="SET NULL"))

    __table_args__ = (
        CheckConstraint("time_limit_hours > 0", name="time_limit_positive"),
        CheckConstraint("code ~ '^[a-z0-9_]+$'", name="code_chars"),
    )


class WorkCalendarDay(Base):
    """A day that differs from "Monday to Friday are working days": a holiday or a make-up day."""

    __tablename__ = "work_calendar"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    is_workday: Mapped[bool] = mapped_column(Boolean)
    name: Mapped[str] = mapped_column(String(60))
    source: Mapped[str | None] = mapped_column(Text)


class CaseSetting(Base):
    """One setting of the case loop (camera review, dedup window, duplicate radius …)."""

    __tablename__ = "case_setting"

    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONB)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CaseMerge(Base):
    """A duplicate case folded into another one by the desk."""

    __tablename__ = "case_merge"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id", ondelete="CASCADE"), unique=True)
    into_case_id: Mapped[int] = mapped_column(ForeignKey("case.id", ondelete="CASCADE"))
    actor: Mapped[str | None] = mapped_column(String(80))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint("case_id <> into_case_id", name="not_itself"),
        Index("ix_case_merge_into_case_id", "into_case_id"),
    )


class CameraEvent(Base):
    """One event a camera's video analytics fired, and the case it opened or was merged into."""

    __tablename__ = "camera_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    camera_id: Mapped[int] = mapped_column(ForeignKey("camera.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(40))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    case_id: Mapped[int | None] = mapped_column(ForeignKey("case.id", ondelete="SET NULL"))
    # True when the event joined an open case of the same camera and type inside the window.
    merged: Mapped[bool] = mapped_column(Boolean, server_default="false")
    photo_id: Mapped[int | None] = mapped_column(ForeignKey("case_photo.id", ondelete="SET NULL"))

    __table_args__ = (
        Index("ix_camera_event_camera_type_at", "camera_id", "event_type", "occurred_at"),
        Index("ix_camera_event_case_id", "case_id"),
    )


class CasePhoto(Base):
    """A photo of a case (report, handling, camera snapshot), re-encoded without metadata."""

    __tablename__ = "case_photo"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id", ondelete="CASCADE"))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("case_event.id", ondelete="SET NULL"))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    mime: Mapped[str] = mapped_column(String(30))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_case_photo_case_id", "case_id"),)


class PublicRateLimit(Base):
    """Failed tries on the public case endpoints per client address and time window."""

    __tablename__ = "public_rate_limit"

    bucket: Mapped[str] = mapped_column(String(20), primary_key=True)
    client: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    hits: Mapped[int] = mapped_column(Integer, server_default="0")

    __table_args__ = (Index("ix_public_rate_limit_window_start", "window_start"),)
