"""Departments' own grids (多网合一): a network per department layer, its grids versioned like
the unified grids, and the notice-board (网格公示牌) choices of a unified grid."""

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
    LargeBinary,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base

# What kind of departmental grid a network is (free to extend: the check keeps them known).
NETWORK_KINDS = {
    "police": "公安网格",
    "urban": "城管网格",
    "environment": "环保网格",
    "market": "市场监管网格",
    "emergency": "应急网格",
    "health": "卫健网格",
    "other": "其他专业网格",
}


class Network(Base):
    """One department's grid layer, kept apart from the unified hierarchy.

    ``grid_id`` is the street (or any unified grid) it was imported for: a centre sees and
    imports the networks of its own street; none means city-wide (the administrator's).
    ``version`` counts the imports of the layer (a re-import closes the grids before it).
    """

    __tablename__ = "network"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(20), server_default="other")
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grid.id", ondelete="SET NULL"))
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint(
            "kind IN ('police', 'urban', 'environment', 'market', 'emergency', 'health', 'other')",
            name="kind_known",
        ),
        CheckConstraint("length(trim(name)) > 0", name="name_given"),
        Index("uq_network_department_id_name", "department_id", "name", unique=True),
    )


class NetworkGrid(Base):
    """One grid of a departmental network; rows with ``valid_to`` set are earlier versions."""

    __tablename__ = "network_grid"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    network_id: Mapped[int] = mapped_column(ForeignKey("network.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(120))
    person_name: Mapped[str | None] = mapped_column(String(60))
    person_phone: Mapped[str | None] = mapped_column(String(20))
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("worker.id", ondelete="SET NULL"))
    geom: Mapped[WKBElement] = mapped_column(
        Geometry("MULTIPOLYGON", srid=4326, spatial_index=False)
    )
    area_m2: Mapped[float] = mapped_column(Float)
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    note: Mapped[str | None] = mapped_column(Text)
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("ST_IsValid(geom)", name="geom_valid"),
        CheckConstraint("NOT ST_IsEmpty(geom)", name="geom_not_empty"),
        CheckConstraint("area_m2 > 0", name="area_positive"),
        CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="validity_ordered"),
        CheckConstraint("length(trim(code)) > 0", name="code_given"),
        Index(
            "uq_network_grid_code_current",
            "network_id",
            "code",
            unique=True,
            postgresql_where=text("valid_to IS NULL"),
        ),
        Index("ix_network_grid_geom", "geom", postgresql_using="gist"),
        Index("ix_network_grid_network_id", "network_id"),
    )


class NoticeSetting(Base):
    """How a unified grid's notice board (网格公示牌) shows its people: phones in full or masked."""

    __tablename__ = "notice_setting"

    grid_id: Mapped[int] = mapped_column(
        ForeignKey("grid.id", ondelete="CASCADE"), primary_key=True
    )
    show_phones: Mapped[bool] = mapped_column(Boolean, server_default="false")
    note: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


PHOTO_MEDIA_TYPES = ("image/jpeg", "image/png", "image/webp")


class WorkerPhoto(Base):
    """A responsible person's photo for the notice board (JPEG, PNG or WebP, size-capped)."""

    __tablename__ = "worker_photo"

    worker_id: Mapped[int] = mapped_column(
        ForeignKey("worker.id", ondelete="CASCADE"), primary_key=True
    )
    media_type: Mapped[str] = mapped_column(String(20))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint(
            "media_type IN (" + ", ".join(f"'{m}'" for m in PHOTO_MEDIA_TYPES) + ")",
            name="media_type_known",
        ),
    )
