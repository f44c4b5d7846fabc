"""The history of the grid map: every edit (who, when, what moved) and earlier boundaries.

A split or merge keeps the grids it replaces as rows of ``grid`` with ``valid_to`` set. An edit
in place (a moved boundary, a new name, a new parent) keeps the grid's id and writes its
previous state to ``grid_state``. ``grid_change`` records each edit with what it moved, which is
what an undo needs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    ARRAY,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base

CHANGE_KINDS = ("create", "update", "delete", "split", "merge", "divide", "undo")
CHANGE_NAMES = {
    "create": "新建",
    "update": "修改",
    "delete": "删除",
    "split": "拆分",
    "merge": "合并",
    "divide": "自动划分",
    "undo": "撤销",
}


class GridChange(Base):
    """One edit of the grid map, with what it moved, so that it can be listed and undone.

    ``before_ids`` are the grids the edit retired or changed in place, ``after_ids`` the grids
    it created or changed. ``detail`` holds the moves (households, cameras, service points,
    open cases and child grids: id, from, to), the previous states written to ``grid_state``
    and the versions the grids had after the edit.
    """

    __tablename__ = "grid_change"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    actor: Mapped[str] = mapped_column(String(80))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("grid.id", ondelete="RESTRICT"))
    before_ids: Mapped[list[int]] = mapped_column(ARRAY(Integer), server_default="{}")
    after_ids: Mapped[list[int]] = mapped_column(ARRAY(Integer), server_default="{}")
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    undoes_id: Mapped[int | None] = mapped_column(ForeignKey("grid_change.id"))
    undone_by_id: Mapped[int | None] = mapped_column(ForeignKey("grid_change.id"))

    __table_args__ = (
        CheckConstraint(
            "kind IN ('create', 'update', 'delete', 'split', 'merge', 'divide', 'undo')",
            name="kind_known",
        ),
        Index("ix_grid_change_before_ids", "before_ids", postgresql_using="gin"),
        Index("ix_grid_change_after_ids", "after_ids", postgresql_using="gin"),
        Index("ix_grid_change_parent_id", "parent_id"),
        Index("ix_grid_change_at", "at"),
    )


class GridState(Base):
    """A grid's state (boundary, name, parent) before an edit changed it in place."""

    __tablename__ = "grid_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("grid.id", ondelete="CASCADE"))
    change_id: Mapped[int] = mapped_column(ForeignKey("grid_change.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(20))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("grid.id", ondelete="RESTRICT"))
    geom: Mapped[WKBElement] = mapped_column(
        Geometry("MULTIPOLYGON", srid=4326, spatial_index=False)
    )
    area_m2: Mapped[float] = mapped_column(Float)
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    valid_to: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("valid_to >= valid_from", name="validity_ordered"),
        CheckConstraint("ST_IsValid(geom)", name="geom_valid"),
        Index("ix_grid_state_grid_id_valid_from", "grid_id", "valid_from"),
    )
