"""Field work: visits to households (走访/遍访/慰问) and duty check-ins (打卡)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base

VISIT_KINDS = {
    "monthly": "月走访",
    "quarterly": "季遍访",
    "yearly": "年慰问",
    "adhoc": "临时走访",
}


class Visit(Base):
    """A worker's visit to a household: when, where the phone was, what was found."""

    __tablename__ = "visit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("worker.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    household_id: Mapped[int] = mapped_column(ForeignKey("household.id", ondelete="CASCADE"))
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grid.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(20))
    visited_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    geom: Mapped[WKBElement | None] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=False)
    )
    reported_x: Mapped[float | None] = mapped_column(Float)
    reported_y: Mapped[float | None] = mapped_column(Float)
    reported_crs: Mapped[str | None] = mapped_column(String(40))
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    distance_m: Mapped[float | None] = mapped_column(Float)
    place_flag: Mapped[bool] = mapped_column(Boolean, server_default="false")
    note: Mapped[str | None] = mapped_column(Text)
    problems: Mapped[str | None] = mapped_column(Text)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("case.id", ondelete="SET NULL"))
    idempotency_key: Mapped[str | None] = mapped_column(String(80), unique=True)

    __table_args__ = (
        CheckConstraint("kind IN ('monthly', 'quarterly', 'yearly', 'adhoc')", name="kind_known"),
        CheckConstraint("accuracy_m IS NULL OR accuracy_m >= 0", name="accuracy_non_negative"),
        Index("ix_visit_worker_id_visited_at", "worker_id", "visited_at"),
        Index("ix_visit_household_id_visited_at", "household_id", "visited_at"),
        Index("ix_visit_grid_id", "grid_id"),
        Index("ix_visit_case_id", "case_id"),
    )


class Checkin(Base):
    """A duty check-in (打卡): where and when, and whether it was inside one's own grids."""

    __tablename__ = "checkin"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("worker.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    checked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # Cleared (with the accuracy) once older than the ``visit_position_days`` setting.
    geom: Mapped[WKBElement | None] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=False)
    )
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    inside: Mapped[bool] = mapped_column(Boolean)
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grid.id", ondelete="SET NULL"))
    distance_m: Mapped[float | None] = mapped_column(Float)
    idempotency_key: Mapped[str | None] = mapped_column(String(80), unique=True)

    __table_args__ = (
        CheckConstraint("accuracy_m IS NULL OR accuracy_m >= 0", name="accuracy_non_negative"),
        Index("ix_checkin_worker_id_checked_at", "worker_id", "checked_at"),
    )


class VisitSetting(Base):
    """A visit-plan setting (key groups, distance limit); absent keys take their defaults."""

    __tablename__ = "visit_setting"

    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONB)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
