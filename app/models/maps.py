"""The e-map's own tables: layer data versions (tile cache keys) and the default basemap."""

from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Index,
    Integer,
    SmallInteger,
    String,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base

BASEMAP_KINDS = ("road", "building", "water", "green", "rail")


class MapLayerVersion(Base):
    """A counter per map layer, raised by statement triggers on every change of its tables."""

    __tablename__ = "map_layer_version"

    layer: Mapped[str] = mapped_column(String(20), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, server_default="1")
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class BasemapFeature(Base):
    """A road, building, water body … of the project's own basemap (drawn as vector tiles)."""

    __tablename__ = "basemap_feature"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('road', 'building', 'water', 'green', 'rail')",
            name="basemap_feature_kind_check",
        ),
        Index("ix_basemap_feature_geom", "geom", postgresql_using="gist"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    class_: Mapped[str | None] = mapped_column("class", String(20))
    name: Mapped[str | None] = mapped_column(String(120))
    min_zoom: Mapped[int] = mapped_column(SmallInteger, server_default="0")
    geom: Mapped[WKBElement] = mapped_column(Geometry(srid=4326, spatial_index=False))
