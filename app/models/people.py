"""Households, workers and who is responsible for which grid."""

from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    ARRAY,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base
from app.models.grid import Grid

ROLES = ("grid_chief", "micro_chief", "worker_full", "worker_part", "party_member")
ROLE_NAMES = {
    "grid_chief": "网格长",
    "micro_chief": "微网格长",
    "worker_full": "专职网格员",
    "worker_part": "兼职网格员",
    "party_member": "党员联户",
}
SENSITIVE_TAGS = {
    "elderly_alone": "独居老人",
    "disability": "残疾人",
    "low_income": "低保户",
    "left_behind_child": "留守儿童",
    "veteran": "退役军人",
}

POINT_IN_RANGE = "ST_X(geom) BETWEEN -180 AND 180 AND ST_Y(geom) BETWEEN -90 AND 90"


class Worker(Base):
    """A person who works in the grids: chief, grid worker, party member."""

    __tablename__ = "worker"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str | None] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(60))
    phone: Mapped[str | None] = mapped_column(String(20))
    on_duty: Mapped[bool] = mapped_column(Boolean, server_default="true")
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    assignments: Mapped[list[GridAssignment]] = relationship(back_populates="worker")

    # The search box's lookups of a name or a code (migration 0026_search_ledger_speed).
    __table_args__ = (
        Index("ix_worker_code_pattern", "code", postgresql_ops={"code": "text_pattern_ops"}),
        Index("ix_worker_name", "name"),
    )


class GridAssignment(Base):
    """A worker's role in one grid."""

    __tablename__ = "grid_assignment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("worker.id", ondelete="CASCADE"))
    grid_id: Mapped[int] = mapped_column(ForeignKey("grid.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(20))

    worker: Mapped[Worker] = relationship(back_populates="assignments")
    grid: Mapped[Grid] = relationship()

    __table_args__ = (
        UniqueConstraint("worker_id", "grid_id", "role"),
        CheckConstraint(
            "role IN ('grid_chief', 'micro_chief', 'worker_full', 'worker_part', 'party_member')",
            name="role_known",
        ),
        Index("ix_grid_assignment_grid_id", "grid_id"),
    )


class Household(Base):
    """A household at a building point, in exactly one leaf grid. Head's name and phone are personal data."""

    __tablename__ = "household"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    geom: Mapped[WKBElement] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))
    building: Mapped[str | None] = mapped_column(String(80))
    unit: Mapped[str | None] = mapped_column(String(20))
    room: Mapped[str | None] = mapped_column(String(20))
    address: Mapped[str | None] = mapped_column(Text)
    people: Mapped[int] = mapped_column(SmallInteger, server_default="1")
    grid_id: Mapped[int] = mapped_column(ForeignKey("grid.id", ondelete="RESTRICT"))
    linked_member_id: Mapped[int | None] = mapped_column(
        ForeignKey("worker.id", ondelete="SET NULL")
    )
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(30)), server_default="{}")
    head_name: Mapped[str | None] = mapped_column(String(60))
    head_phone: Mapped[str | None] = mapped_column(String(20))

    grid: Mapped[Grid] = relationship()
    linked_member: Mapped[Worker | None] = relationship()

    __table_args__ = (
        CheckConstraint(POINT_IN_RANGE, name="lonlat_range"),
        CheckConstraint("people BETWEEN 0 AND 200", name="people_range"),
        Index("ix_household_geom", "geom", postgresql_using="gist"),
        Index(
            "ix_household_grid_id",
            "grid_id",
            postgresql_include=["people", "linked_member_id", "tags"],
        ),
        Index("ix_household_linked_member_id", "linked_member_id"),
        Index("ix_household_address_id", "address", "id", postgresql_include=["grid_id"]),
    )
