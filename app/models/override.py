"""Override areas: places where one category of case belongs to someone other than the grid."""

from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import CheckConstraint, DateTime, Float, ForeignKey, Index, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class OverrideArea(Base):
    """An area (a main road, a park, a market) whose cases of one category go to a department or
    a named worker instead of the micro-grid's owner."""

    __tablename__ = "override_area"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    category: Mapped[str] = mapped_column(
        String(40), ForeignKey("case_category.code", onupdate="CASCADE")
    )
    geom: Mapped[WKBElement] = mapped_column(
        Geometry("MULTIPOLYGON", srid=4326, spatial_index=False)
    )
    area_m2: Mapped[float] = mapped_column(Float)
    department_id: Mapped[int | None] = mapped_column(
        ForeignKey("department.id", ondelete="RESTRICT")
    )
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("worker.id", ondelete="RESTRICT"))
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        CheckConstraint("ST_IsValid(geom)", name="geom_valid"),
        CheckConstraint("NOT ST_IsEmpty(geom)", name="geom_not_empty"),
        CheckConstraint(
            "ST_XMin(geom) >= -180 AND ST_XMax(geom) <= 180 AND ST_YMin(geom) >= -90 "
            "AND ST_YMax(geom) <= 90",
            name="lonlat_range",
        ),
        CheckConstraint("area_m2 > 0", name="area_positive"),
        CheckConstraint("(department_id IS NULL) <> (worker_id IS NULL)", name="one_keeper"),
        CheckConstraint("length(trim(category)) > 0", name="category_given"),
        Index("ix_override_area_geom", "geom", postgresql_using="gist"),
        Index("ix_override_area_category", "category"),
    )
