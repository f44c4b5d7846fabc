"""Patrols (巡查): a worker's tracks on duty — the positions a phone posts in batches, the points
refused with their reason, the batches seen (for idempotent retries) and the track as a line."""

from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base

#: Why a posted position was not taken into the track.
DROP_REASONS = {
    "speed": "速度不可能（定位跳点）",
    "accuracy": "定位精度太差",
    "time": "时间超出范围",
}


class Patrol(Base):
    """One patrol of a worker, from start to stop; ``track`` is built from its points (a
    MULTILINESTRING M, the measure being the time in seconds since the epoch, broken where the
    phone was silent or jumped: ``gridgov_patrol_line`` of migration 0033)."""

    __tablename__ = "patrol"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("worker.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    track: Mapped[WKBElement | None] = mapped_column(
        Geometry("MULTILINESTRINGM", srid=4326, dimension=3, spatial_index=False)
    )
    # The track's distinct segments (simplified by 2 m, snapped to 1 m): what coverage buffers.
    trace: Mapped[WKBElement | None] = mapped_column(
        Geometry("MULTILINESTRING", srid=4326, spatial_index=False)
    )
    # The trace buffered by ``reach_m`` metres (the buffer setting when it was built), unioned:
    # what the coverage takes instead of buffering the trace again while the setting holds.
    reach: Mapped[WKBElement | None] = mapped_column(
        Geometry("MULTIPOLYGON", srid=4326, spatial_index=False)
    )
    reach_m: Mapped[float | None] = mapped_column(Float)
    point_count: Mapped[int] = mapped_column(Integer, server_default="0")
    dropped_count: Mapped[int] = mapped_column(Integer, server_default="0")
    length_m: Mapped[float | None] = mapped_column(Float)
    idempotency_key: Mapped[str | None] = mapped_column(String(80), unique=True)
    purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("ended_at IS NULL OR ended_at >= started_at", name="ends_after_start"),
        Index("ix_patrol_worker_id_started_at", "worker_id", "started_at"),
        Index("ix_patrol_started_at", "started_at"),
        Index("ix_patrol_track", "track", postgresql_using="gist"),
    )


class PatrolPoint(Base):
    """A position taken into a patrol's track: one per patrol and moment (a retry adds nothing)."""

    __tablename__ = "patrol_point"

    patrol_id: Mapped[int] = mapped_column(
        ForeignKey("patrol.id", ondelete="CASCADE"), primary_key=True
    )
    t: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    geom: Mapped[WKBElement] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))
    accuracy_m: Mapped[float | None] = mapped_column(Float)


class PatrolDrop(Base):
    """A posted position left out of the track, with the reason (kept, never silently lost)."""

    __tablename__ = "patrol_drop"

    patrol_id: Mapped[int] = mapped_column(
        ForeignKey("patrol.id", ondelete="CASCADE"), primary_key=True
    )
    t: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    geom: Mapped[WKBElement | None] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=False)
    )
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(String(20))
    speed_mps: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        CheckConstraint("reason IN ('speed', 'accuracy', 'time')", name="reason_known"),
    )


class PatrolBatch(Base):
    """A batch of positions received, by the phone's key: a retry answers what it answered."""

    __tablename__ = "patrol_batch"

    patrol_id: Mapped[int] = mapped_column(
        ForeignKey("patrol.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    accepted: Mapped[int] = mapped_column(Integer)
    duplicate: Mapped[int] = mapped_column(Integer)
    dropped: Mapped[int] = mapped_column(Integer)
