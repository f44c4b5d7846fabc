"""Errors, options and the locking and loading of grids shared by every grid edit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import shapely
from geoalchemy2.shape import to_shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import any_, func, select, text
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from app.errors import AppError, Conflict, NotFound
from app.models import Camera, Case, Grid, Household, ServicePoint
from app.models.grid_history import CHANGE_NAMES, GridChange, GridState
from gis.validate import (
    DEFAULT_LIMITS,
    BoundaryLimits,
)

#: First key of pg_advisory_xact_lock(int, int): "edits of the children of grid <second key>".
LOCK_NAMESPACE = 7301
#: Tables of things that sit at a point and belong to a grid, by the name used in moves.
POINT_TABLES = {
    "household": Household,
    "camera": Camera,
    "service_point": ServicePoint,
    "case": Case,
}
#: Cases in these states stay with the grid they were handled in.
FINISHED_CASE_STATES = ("closed", "cancelled")
MOVE_NAMES = {
    "household": "住户",
    "camera": "监控探头",
    "service_point": "服务阵地",
    "case": "未结事件",
    "child": "下级网格",
}


# --------------------------------------------------------------------------------------------
# errors


class VersionRequired(AppError):
    """An edit did not say which version of the grid it was based on."""

    http_status = 428
    code = "version_required"


class StaleVersion(Conflict):
    """The grid changed since the version the edit was based on."""

    code = "stale_version"

    def __init__(self, grid: Grid, given: int) -> None:
        super().__init__(
            f"网格已被他人修改 / grid {grid.code} ({grid.name}) has changed: the edit was based "
            f"on version {given}, the current version is {grid.version}; reload and edit again",
            grid_id=grid.id,
            given_version=given,
            current_version=grid.version,
        )


class GridRetired(Conflict):
    """The grid is history: a split, merge or delete replaced it."""

    code = "grid_retired"


class UndoRefused(Conflict):
    """The change cannot be undone (already undone, or something changed since)."""

    code = "undo_refused"


# --------------------------------------------------------------------------------------------
# options and results


@dataclass(frozen=True)
class EditOptions:
    """How to treat a boundary that sticks out of its parent or into its neighbours."""

    clip_to_parent: bool = False
    fit_to_neighbours: bool = False
    limits: BoundaryLimits = DEFAULT_LIMITS


#: The options of an edit that says nothing about clipping or fitting.
DEFAULT_OPTIONS = EditOptions()


@dataclass
class _Moves:
    """Moves of one edit: per kind, [id, from grid, to grid] triples."""

    rows: dict[str, list[list[int | None]]] = field(default_factory=dict)

    def add(self, kind: str, ids: Iterable[int], src: int | None, dst: int | None) -> None:
        self.rows.setdefault(kind, []).extend([int(i), src, dst] for i in ids)

    def counts_into(self, grid_id: int | None) -> dict[str, int]:
        return {
            kind: sum(1 for _, _, dst in rows if dst == grid_id)
            for kind, rows in self.rows.items()
            if any(dst == grid_id for _, _, dst in rows)
        }


def _now(session: Session) -> datetime:
    # clock_timestamp, not now(): several edits in one transaction get distinct times.
    return session.scalar(select(func.clock_timestamp()))  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# locking and loading


def _lock(session: Session, keys: Iterable[int | None]) -> None:
    """Take the advisory locks on the given parents (None: the top level), lowest key first."""
    for key in sorted({0 if k is None else int(k) for k in keys}):
        session.execute(
            text("SELECT pg_advisory_xact_lock(:ns, :key)"), {"ns": LOCK_NAMESPACE, "key": key}
        )


def _peek(session: Session, grid_id: int) -> Grid:
    grid = session.get(Grid, grid_id)
    if grid is None:
        raise NotFound(f"网格不存在 / grid {grid_id} does not exist", grid_id=grid_id)
    return grid


def _locked(session: Session, grid_id: int) -> Grid:
    """Return the grid row locked for update, read fresh from the database.

    A copy read before the lock (to find the parent to lock) is let go first: the row may
    have changed while we waited, which the version check below reports as a stale edit.
    """
    known = session.identity_map.get(identity_key(Grid, grid_id))
    if known is not None and known not in session.dirty:
        session.expunge(known)
    grid = session.get(Grid, grid_id, with_for_update=True, populate_existing=True)
    if grid is None:
        raise NotFound(f"网格不存在 / grid {grid_id} does not exist", grid_id=grid_id)
    return grid


def _require_current(session: Session, grid: Grid) -> None:
    if grid.valid_to is None:
        return
    later = session.execute(
        select(GridChange.id, GridChange.kind, GridChange.after_ids)
        .where(any_(GridChange.before_ids) == grid.id, GridChange.undone_by_id.is_(None))
        .order_by(GridChange.id.desc())
        .limit(1)
    ).first()
    raise GridRetired(
        f"网格已成为历史 / grid {grid.code} ({grid.name}) is history since "
        f"{grid.valid_to.isoformat()}"
        + (f": replaced by {CHANGE_NAMES[later.kind]} #{later.id}" if later else ""),
        grid_id=grid.id,
        replaced_by=list(later.after_ids) if later else [],
    )


def _lock_one(session: Session, grid_id: int, base_version: int | None) -> Grid:
    """Lock a grid for an edit (its parent's children and its own), check it is current and
    that the edit was based on its current version."""
    parent_id = _peek(session, grid_id).parent_id
    _lock(session, [parent_id, grid_id])
    grid = _locked(session, grid_id)
    _require_current(session, grid)
    _check_version(grid, base_version)
    if grid.parent_id != parent_id:  # moved under another parent while we waited
        raise StaleVersion(grid, base_version or 0)
    return grid


def _check_version(grid: Grid, base_version: int | None) -> None:
    if base_version is None:
        raise VersionRequired(
            f"请注明所依据的版本 / say which version of grid {grid.code} the edit is based on "
            "(If-Match header or a 'version' field)",
            grid_id=grid.id,
            current_version=grid.version,
        )
    if grid.version != base_version:
        raise StaleVersion(grid, base_version)


def _shape(grid: Grid | GridState) -> BaseGeometry:
    return to_shape(grid.geom)


def _children(session: Session, grid_id: int) -> list[Grid]:
    return list(
        session.scalars(
            select(Grid)
            .where(Grid.parent_id == grid_id, Grid.valid_to.is_(None))
            .order_by(Grid.code)
            .with_for_update()
        )
    )


def _siblings(
    session: Session, parent_id: int | None, exclude: Sequence[int], near: BaseGeometry
) -> dict[str, BaseGeometry]:
    """Return the current siblings (by code) whose envelope meets ``near``'s envelope."""
    minx, miny, maxx, maxy = near.bounds
    query = select(Grid.code, func.ST_AsBinary(Grid.geom)).where(
        Grid.valid_to.is_(None),
        Grid.parent_id.is_(None) if parent_id is None else Grid.parent_id == parent_id,
        Grid.geom.op("&&")(func.ST_MakeEnvelope(minx, miny, maxx, maxy, 4326)),
    )
    if exclude:
        query = query.where(Grid.id.notin_(list(exclude)))
    return {code: shapely.from_wkb(bytes(wkb)) for code, wkb in session.execute(query)}
