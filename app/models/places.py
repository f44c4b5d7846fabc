"""Service points, cameras and functional departments."""

from __future__ import annotations

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import CheckConstraint, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base
from app.models.people import POINT_IN_RANGE

# Camera kinds and their Chinese names (固定枪机, 球机 …).
CAMERA_KINDS = {"fixed": "固定枪机", "dome": "球机", "panoramic": "全景", "other": "其他"}
SERVICE_POINT_KINDS = {
    "centre": "党群服务中心",
    "station": "党群服务站",
    "point": "党群服务点",
    "civilisation": "新时代文明实践站",
    "convenience": "便民服务中心",
    "other": "其他服务点",
}


class Department(Base):
    """A functional department cases escalate to (派出所, 城管中队, 市场监管所 …)."""

    __tablename__ = "department"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    phone: Mapped[str | None] = mapped_column(String(20))
    duties: Mapped[str | None] = mapped_column(Text)


class ServicePoint(Base):
    """A party-mass service centre, station or point, with its service radius."""

    __tablename__ = "service_point"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(20))
    geom: Mapped[WKBElement] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))
    radius_m: Mapped[float] = mapped_column(Float, server_default="1000")
    status: Mapped[str] = mapped_column(String(10), server_default="active")
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grid.id", ondelete="SET NULL"))
    address: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint(POINT_IN_RANGE, name="lonlat_range"),
        CheckConstraint(
            "kind IN ('centre', 'station', 'point', 'civilisation', 'convenience', 'other')",
            name="kind_known",
        ),
        CheckConstraint("radius_m > 0 AND radius_m <= 50000", name="radius_range"),
        CheckConstraint("status IN ('active', 'planned', 'closed')", name="status_known"),
        Index("ix_service_point_geom", "geom", postgresql_using="gist"),
    )


class Camera(Base):
    """A surveillance camera in a leaf grid."""

    __tablename__ = "camera"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str | None] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(20), server_default="fixed")
    geom: Mapped[WKBElement] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grid.id", ondelete="SET NULL"))
    analytics: Mapped[bool] = mapped_column(server_default="false")

    __table_args__ = (
        CheckConstraint(POINT_IN_RANGE, name="lonlat_range"),
        CheckConstraint(
            "kind IN (" + ", ".join(f"'{k}'" for k in CAMERA_KINDS) + ")", name="kind_known"
        ),
        Index("ix_camera_geom", "geom", postgresql_using="gist"),
        Index("ix_camera_grid_id", "grid_id"),
        Index("ix_camera_code_pattern", "code", postgresql_ops={"code": "text_pattern_ops"}),
    )
