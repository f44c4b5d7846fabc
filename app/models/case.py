"""Cases (事件) and every transition they go through."""

from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    func,
)
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


class Case(Base):
    """An incident at a place, routed to the worker who owns the micro-grid containing it."""

    __tablename__ = "case"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    category: Mapped[str] = mapped_column(String(40))
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

    events: Mapped[list[CaseEvent]] = relationship(
        back_populates="case", order_by="CaseEvent.at", cascade="all, delete-orphan"
    )

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        CheckConstraint(POINT_IN_RANGE, name="lonlat_range"),
        CheckConstraint(
            "source IN ('resident', 'patrol', 'camera', 'hotline', 'superior')", name="source_known"
        ),
        CheckConstraint(
            "status IN ('reported', 'dispatched', 'accepted', 'resolved', 'verified', 'closed', "
            "'cancelled')",
            name="status_known",
        ),
        CheckConstraint("satisfaction BETWEEN 1 AND 5", name="satisfaction_range"),
        Index("ix_case_geom", "geom", postgresql_using="gist"),
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

    case: Mapped[Case] = relationship(back_populates="events")

    __table_args__ = (Index("ix_case_event_case_id_at", "case_id", "at"),)
