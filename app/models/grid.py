"""Grid polygons of the hierarchy: street/town → community/village → grid → micro-grid (→ patch)."""

from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    ARRAY,
    CheckConstraint,
    DateTime,
    FetchedValue,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base

LEVEL_NAMES = {1: "街道/乡镇", 2: "社区/村", 3: "网格", 4: "微网格", 5: "片区"}
GRID_KINDS = ("comprehensive", "dedicated")


class Grid(Base):
    """One grid polygon. Rows with ``valid_to`` set are history, not the current map."""

    __tablename__ = "grid"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(120))
    level: Mapped[int] = mapped_column(SmallInteger)
    kind: Mapped[str] = mapped_column(String(20), server_default="comprehensive")
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("grid.id", ondelete="RESTRICT"))
    geom: Mapped[WKBElement] = mapped_column(
        Geometry("MULTIPOLYGON", srid=4326, spatial_index=False)
    )
    area_m2: Mapped[float] = mapped_column(Float)
    household_count: Mapped[int] = mapped_column(Integer, server_default="0")
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The ids from the top-level grid down to this one, kept by the database's triggers
    # (revision 0027) on every insert and change of ``parent_id``; read by ``grid_tree``.
    path: Mapped[list[int]] = mapped_column(
        ARRAY(Integer), server_default=FetchedValue(), server_onupdate=FetchedValue()
    )

    parent: Mapped[Grid | None] = relationship(remote_side=[id])

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        CheckConstraint("level BETWEEN 1 AND 5", name="level_range"),
        CheckConstraint("kind IN ('comprehensive', 'dedicated')", name="kind_known"),
        CheckConstraint("ST_IsValid(geom)", name="geom_valid"),
        CheckConstraint("NOT ST_IsEmpty(geom)", name="geom_not_empty"),
        CheckConstraint("area_m2 > 0", name="area_positive"),
        CheckConstraint("household_count >= 0", name="households_non_negative"),
        CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="validity_ordered"),
        CheckConstraint("code ~ '^[0-9A-Za-z_-]+$'", name="code_chars"),
        # One current grid per code; history rows may repeat a code.
        Index(
            "uq_grid_code_current", "code", unique=True, postgresql_where=text("valid_to IS NULL")
        ),
        Index("ix_grid_geom", "geom", postgresql_using="gist"),
        Index("ix_grid_parent_id", "parent_id"),
        Index(
            "ix_grid_path", "path", postgresql_using="gin", postgresql_with={"fastupdate": "off"}
        ),
        Index("ix_grid_level", "level"),
        # The search box's code lookup from its start, the population ledger by households
        # (migration 0026_search_ledger_speed).
        Index(
            "ix_grid_code_pattern",
            "code",
            postgresql_ops={"code": "text_pattern_ops"},
            postgresql_where=text("valid_to IS NULL"),
        ),
        Index("ix_grid_name_current", "name", postgresql_where=text("valid_to IS NULL")),
        Index(
            "ix_grid_level_households",
            "level",
            "household_count",
            "id",
            postgresql_where=text("valid_to IS NULL"),
        ),
    )

    @property
    def level_name(self) -> str:
        return LEVEL_NAMES.get(self.level, str(self.level))
