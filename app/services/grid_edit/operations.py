"""Edit the grid map without ever breaking the hierarchy: create, reshape, delete, split, merge, undo.

Each function is one business operation inside the caller's transaction (wrap it in
``app.db.transaction``; a dry run is the same call followed by a rollback, so a preview shows
exactly what saving would do).

How the hierarchy is kept:
- Every geometry goes through :mod:`gis.validate` and :mod:`gis.topology` on the server.
- Edits under one parent are serialised: each takes a transaction-level advisory lock on the
  parent (and on the grids it changes, as parents of their children), in ascending order. Then
  the grid rows are locked and their versions compared with the version the edit was based on;
  a stale edit gets :class:`StaleVersion` (409) with the current version. Nothing is overwritten
  silently, and two edits can never each validate against the other's old geometry.
- What a grid carries moves with its territory: households, cameras, service points, open
  cases (closed ones keep their grid for the statistics) and child grids. Points that fall in
  no child of a parent (a gap) are held by the parent itself until a child covers them again.
- Every edit is recorded in ``grid_change`` with each move (id, from, to); grids changed in
  place keep their previous state in ``grid_state``; grids replaced by a split or merge stay as
  rows with ``valid_to`` set. That is what the history and :func:`undo_change` read.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import shapely
from geoalchemy2.shape import from_shape, to_shape
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry
from sqlalchemy import ARRAY, Integer, any_, bindparam, delete, func, select, text, true, update
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from app.errors import AppError, Conflict, NotFound, ValidationFailed
from app.models import Camera, Case, Grid, GridAssignment, Household, ServicePoint
from app.models.grid_history import CHANGE_NAMES, GridChange, GridState
from app.services import grids as grid_read
from gis import topology
from gis.metric import polygon_area_m2
from gis.validate import (
    DEFAULT_LIMITS,
    BoundaryLimits,
    GeometryRejected,
    as_geometry,
    check_coordinates,
    check_polygonal,
    fmt_point,
    to_multipolygon,
    validate_boundary,
)

LOGGER = logging.getLogger(__name__)

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


def _points_of(session: Session, kind: str, grid_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ids and lon/lat of the things of one kind held directly by a grid."""
    table = POINT_TABLES[kind].__table__
    where = [table.c.grid_id == grid_id]
    if kind == "case":
        where.append(table.c.status.notin_(FINISHED_CASE_STATES))
    # One row of three arrays: thousands of points without a Python object per row.
    ids, xs, ys = session.execute(
        select(
            func.array_agg(aggregate_order_by(table.c.id, table.c.id)),
            func.array_agg(aggregate_order_by(func.ST_X(table.c.geom), table.c.id)),
            func.array_agg(aggregate_order_by(func.ST_Y(table.c.geom), table.c.id)),
        ).where(*where)
    ).one()
    if not ids:
        return np.empty(0, dtype=np.int64), np.empty((0, 2))
    return np.asarray(ids, dtype=np.int64), np.column_stack([xs, ys]).astype(float)


def _move_ids(session: Session, kind: str, ids: Sequence[int], dst: int | None) -> None:
    if len(ids) == 0:
        return
    table = POINT_TABLES[kind].__table__
    session.execute(
        update(table)
        .where(table.c.id == any_(bindparam("ids", [int(i) for i in ids], type_=ARRAY(Integer))))
        .values(grid_id=dst)
    )


def _move_by_area(
    session: Session,
    moves: _Moves,
    *,
    src: int | None,
    dst: int | None,
    area: BaseGeometry,
    inside: bool,
) -> None:
    """Move what ``src`` holds inside (or outside) ``area`` to ``dst``, recording each move.

    The selection runs in PostGIS with the spatial index. A point on the edge of ``area``
    counts as inside.
    """
    shape_sql = func.ST_GeomFromWKB(shapely.to_wkb(area), 4326)
    for kind, table in POINT_TABLES.items():
        where = [table.grid_id.is_(None) if src is None else table.grid_id == src]
        hit = func.ST_Intersects(table.geom, shape_sql)
        where.append(hit if inside else ~hit)
        if kind == "case":
            where.append(Case.status.notin_(FINISHED_CASE_STATES))
        if src is None and kind == "household":
            continue  # every household already has a grid
        ids = session.scalars(
            update(table).where(*where).values(grid_id=dst).returning(table.id),
            execution_options={"synchronize_session": False},
        ).all()
        moves.add(kind, ids, src, dst)


def _save_state(session: Session, grid: Grid, change: GridChange, now: datetime) -> GridState:
    """Keep the grid's current state in grid_state before an in-place change."""
    state = GridState(
        grid_id=grid.id,
        change_id=change.id,
        version=grid.version,
        code=grid.code,
        name=grid.name,
        kind=grid.kind,
        parent_id=grid.parent_id,
        geom=grid.geom,
        area_m2=grid.area_m2,
        valid_from=grid.valid_from,
        valid_to=now,
    )
    session.add(state)
    grid.valid_from = now
    return state


def _recount(session: Session, grid_ids: Iterable[int]) -> None:
    """Recount households of these grids (each counts those of its current descendants)."""
    ids = sorted({int(i) for i in grid_ids if i is not None})
    if not ids:
        return
    session.flush()
    session.execute(
        text(
            """
            WITH RECURSIVE tree AS (
                SELECT id, id AS root FROM grid WHERE id = ANY(:ids)
                UNION ALL
                SELECT c.id, t.root FROM grid c JOIN tree t ON c.parent_id = t.id
                WHERE c.valid_to IS NULL
            ), counts AS (
                SELECT t.root, count(h.id) AS n FROM tree t
                LEFT JOIN household h ON h.grid_id = t.id GROUP BY t.root
            )
            UPDATE grid g SET household_count = counts.n FROM counts
            WHERE g.id = counts.root AND g.household_count IS DISTINCT FROM counts.n
            """
        ),
        {"ids": ids},
    )


_TRAILING_NUMBER = re.compile(r"(.*\D)?(\d+)")
_SEPARATORS = "-_"


def code_pattern(code: str, prefix: str = "") -> tuple[str, int, int] | None:
    """Split a code into its stem, the width of its trailing number and that number.

    A code that starts with ``prefix`` (its parent's code) keeps the whole prefix in its stem,
    so ``340188001002`` under ``340188001`` is stem ``340188001`` and number ``002``, and
    ``HEL-02-003`` under ``HEL-02`` is stem ``HEL-02-`` and number ``003``. None when the
    code does not end in a number.
    """
    if prefix and code.startswith(prefix):
        m = _TRAILING_NUMBER.fullmatch(code[len(prefix) :])
        if m is not None:
            return prefix + (m[1] or ""), len(m[2]), int(m[2])
    m = _TRAILING_NUMBER.fullmatch(code)
    if m is None:
        return None
    return m[1] or "", len(m[2]), int(m[2])


def next_codes(
    session: Session, parent: Grid | None, count: int, *, like: Grid | None = None
) -> list[str]:
    """Return ``count`` unused codes for new grids under ``parent`` (None: the top level).

    The one rule for every new grid (drawn, split, merged, divided): new codes follow the
    pattern the siblings already use, stem and width, counted on after the highest number ever
    given with that stem under the parent, history included, so a code is never reused for a
    different territory. Splitting ``HEL-02-002`` (siblings ``HEL-02-001`` …) gives
    ``HEL-02-003`` …; the first children of ``340188001`` get ``340188001001`` …. ``like``
    (the grid being split or merged) names the pattern when siblings mix several. Without
    siblings, the parent's code is continued with its own separator (``HEL-02-002-01``) or
    none (``34018800101``), 3 digits under a street or town, 2 below.
    """
    if parent is not None:
        prefix = parent.code
        rows = session.scalars(select(Grid.code).where(Grid.parent_id == parent.id)).all()
    else:
        prefix = ""
        rows = session.scalars(select(Grid.code).where(Grid.parent_id.is_(None))).all()
    numbers: dict[str, list[tuple[int, int]]] = {}
    for code in rows:
        found = code_pattern(code, prefix)
        if found is not None:
            numbers.setdefault(found[0], []).append(found[1:])
    own = code_pattern(like.code, prefix) if like is not None else None
    if own is not None and own[0] in numbers:
        stem = own[0]
    elif numbers:
        stem = max(numbers, key=lambda s: (len(numbers[s]), max(n for _, n in numbers[s])))
    elif parent is not None:
        sep = next((c for c in reversed(parent.code) if c in _SEPARATORS), "")
        stem = parent.code + sep
    else:
        raise ValidationFailed(
            "顶级网格须填写编码 / a top-level grid needs its code (the administrative code of "
            "the street or town)",
            field="code",
        )
    used = numbers.get(stem, [])
    default_width = 3 if parent is not None and parent.level == 1 else 2
    width = max((w for w, _ in used), default=default_width)
    start = max((n for _, n in used), default=0) + 1
    if start + count - 1 >= 10**width:
        raise ValidationFailed(
            f"编码已用尽 / no free {width}-digit codes are left after {stem or 'the top level'}",
            parent_code=prefix,
        )
    taken = set(
        session.scalars(
            select(Grid.code).where(
                Grid.code.in_([f"{stem}{n:0{width}d}" for n in range(start, start + 2 * count)])
            )
        ).all()
    )
    out, n = [], start
    while len(out) < count:
        code = f"{stem}{n:0{width}d}"
        if n >= 10**width:
            raise ValidationFailed(
                f"编码已用尽 / no free {width}-digit codes are left after {stem}",
                parent_code=prefix,
            )
        if code not in taken and not (
            n >= start + 2 * count
            and session.scalar(select(Grid.id).where(Grid.code == code).limit(1))
        ):
            out.append(code)
        n += 1
    return out


def _result(
    session: Session,
    change: GridChange,
    moves: _Moves,
    *,
    after: Sequence[int],
    retired: Sequence[int] = (),
    notes: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the edit's outcome as a FeatureCollection of the resulting grids."""
    session.flush()
    features = grid_read.grid_features(session, list(after))
    for f in features:
        f["properties"]["moved_in"] = moves.counts_into(f["id"])
    gone = grid_read.grid_features(session, list(retired))
    return grid_read.collection(
        features,
        change={
            "id": change.id,
            "kind": change.kind,
            "kind_name": CHANGE_NAMES[change.kind],
            "at": change.at.isoformat(),
            "actor": change.actor,
        },
        retired=[
            {k: f["properties"][k] for k in ("id", "code", "name", "version", "valid_to")}
            for f in gone
        ],
        moved={kind: len(rows) for kind, rows in moves.rows.items() if rows},
        moved_to_parent=moves.counts_into(change.parent_id)
        if change.kind in ("update", "delete")
        else {},
        notes=dict(notes or {}),
    )


def _new_change(
    session: Session,
    kind: str,
    *,
    actor: str,
    parent_id: int | None,
    before: Sequence[int],
    now: datetime,
) -> GridChange:
    change = GridChange(
        kind=kind, actor=actor, parent_id=parent_id, before_ids=list(before), after_ids=[], at=now
    )
    session.add(change)
    session.flush()
    return change


def _finish(
    session: Session, change: GridChange, moves: _Moves, after: Sequence[int], **extra: Any
) -> None:
    """Record the edit's moves and the versions its grids have now (undo checks them)."""
    session.flush()
    children = [int(r[0]) for r in moves.rows.get("child", [])]
    versions = dict(
        session.execute(
            select(Grid.id, Grid.version).where(
                Grid.id.in_([*after, *change.before_ids, *children])
            )
        ).all()
    )
    change.after_ids = list(after)
    change.detail = {
        "moves": moves.rows,
        "versions": {str(k): v for k, v in versions.items()},
        **extra,
    }
    session.flush()


# --------------------------------------------------------------------------------------------
# create, update, delete


def create_grid(
    session: Session,
    geometry: Any,
    *,
    parent_id: int | None,
    name: str,
    actor: str,
    code: str | None = None,
    kind: str = "comprehensive",
    options: EditOptions = EditOptions(),
) -> dict[str, Any]:
    """Draw a new grid under ``parent_id`` (None: a new top-level grid).

    What the parent held inside the new boundary (points in a gap of the parent, or all of a
    leaf parent's points there) moves into the new grid.
    """
    _lock(session, [parent_id])
    parent = _locked(session, parent_id) if parent_id is not None else None
    if parent is not None:
        _require_current(session, parent)
        if parent.level >= 5:
            raise ValidationFailed(
                f"片区（第5级）下不能再划分 / grid {parent.code} is at level 5 and cannot have children",
                parent_id=parent.id,
            )
    if not name or not name.strip():
        raise ValidationFailed("请填写网格名称 / a new grid needs a name", field="name")
    if kind not in ("comprehensive", "dedicated"):
        raise ValidationFailed(f"未知的网格类型 / unknown kind '{kind}'", field="kind")
    if parent is None and not code:
        raise ValidationFailed(
            "顶级网格须填写编码 / a top-level grid needs its code (the administrative code of "
            "the street or town)",
            field="code",
        )
    shape = _readable(geometry)
    ok = validate_boundary(
        shape,
        parent=_shape(parent) if parent is not None else None,
        siblings=_siblings(session, parent_id, [], shape),
        clip_to_parent=options.clip_to_parent,
        fit_to_siblings=options.fit_to_neighbours,
        limits=options.limits,
    )
    if code:
        if session.scalar(select(Grid.id).where(Grid.code == code, Grid.valid_to.is_(None))):
            raise ValidationFailed(f"编码已被使用 / code {code} is taken", field="code")
    else:
        code = next_codes(session, parent, 1)[0]
    now = _now(session)
    change = _new_change(session, "create", actor=actor, parent_id=parent_id, before=[], now=now)
    grid = Grid(
        code=code,
        name=name.strip(),
        level=parent.level + 1 if parent is not None else 1,
        kind=kind,
        parent_id=parent_id,
        geom=from_shape(ok.geometry, srid=4326),
        area_m2=ok.area_m2,
        valid_from=now,
    )
    session.add(grid)
    session.flush()
    moves = _Moves()
    _move_by_area(session, moves, src=parent_id, dst=grid.id, area=ok.geometry, inside=True)
    _finish(session, change, moves, [grid.id])
    _recount(session, [grid.id, parent_id])
    return _result(session, change, moves, after=[grid.id], notes=_clip_notes(ok))


def _readable(geometry: Any) -> BaseGeometry:
    """Read a boundary and run the checks that must pass before it is used in a query."""
    shape = as_geometry(geometry)
    check_polygonal(shape)
    check_coordinates(shape)
    return shape


def _clip_notes(ok: Any) -> dict[str, Any]:
    notes: dict[str, Any] = {"area_m2": round(ok.area_m2, 1), "vertices": ok.vertex_count}
    if ok.clipped_parent_m2:
        notes["clipped_to_parent_m2"] = round(ok.clipped_parent_m2, 1)
    if ok.clipped_siblings_m2:
        notes["fitted_to_neighbours_m2"] = {
            k: round(v, 1) for k, v in ok.clipped_siblings_m2.items()
        }
    return notes


def update_grid(
    session: Session,
    grid_id: int,
    *,
    base_version: int | None,
    actor: str,
    geometry: Any = None,
    name: str | None = None,
    kind: str | None = None,
    options: EditOptions = EditOptions(),
) -> dict[str, Any]:
    """Reshape or rename a grid in place (its id and code stay).

    A new boundary is checked against the parent and the siblings; the grid's own children
    must stay inside it. Points the grid no longer covers go to the parent (a gap of the
    parent); points of a gap of the parent that the grid now covers come in.
    """
    grid = _lock_one(session, grid_id, base_version)
    if geometry is None and name is None and kind is None:
        raise ValidationFailed(
            "没有要修改的内容 / nothing to change: give a geometry, a name or a kind",
            grid_id=grid_id,
        )
    if name is not None and not name.strip():
        raise ValidationFailed("网格名称不能为空 / the name cannot be empty", field="name")
    if kind is not None and kind not in ("comprehensive", "dedicated"):
        raise ValidationFailed(f"未知的网格类型 / unknown kind '{kind}'", field="kind")
    ok = None
    if geometry is not None:
        shape = _readable(geometry)
        parent = session.get(Grid, grid.parent_id) if grid.parent_id is not None else None
        ok = validate_boundary(
            shape,
            parent=_shape(parent) if parent is not None else None,
            siblings=_siblings(session, grid.parent_id, [grid.id], shape),
            clip_to_parent=options.clip_to_parent,
            fit_to_siblings=options.fit_to_neighbours,
            limits=options.limits,
            snap_to=[_shape(c) for c in _children(session, grid.id)],
        )
        _check_children_inside(session, grid, ok.geometry, options.limits)
    now = _now(session)
    change = _new_change(
        session, "update", actor=actor, parent_id=grid.parent_id, before=[grid.id], now=now
    )
    state = _save_state(session, grid, change, now)
    if name is not None:
        grid.name = name.strip()
    if kind is not None:
        grid.kind = kind
    moves = _Moves()
    if ok is not None:
        grid.geom = from_shape(ok.geometry, srid=4326)
        grid.area_m2 = ok.area_m2
        session.flush()
        _reassign_after_reshape(session, moves, grid, ok.geometry)
    session.flush()
    _finish(session, change, moves, [grid.id], state_ids={str(grid.id): state.id})
    _recount(session, [grid.id, grid.parent_id])
    return _result(session, change, moves, after=[grid.id], notes=_clip_notes(ok) if ok else {})


def _reassign_after_reshape(
    session: Session, moves: _Moves, grid: Grid, shape: BaseGeometry
) -> None:
    """After a boundary moved: what it lost goes to the parent, what it gained comes in."""
    if grid.parent_id is None:
        lost = session.scalar(
            select(func.count())
            .select_from(Household)
            .where(
                Household.grid_id == grid.id,
                ~func.ST_Intersects(
                    Household.geom, func.ST_GeomFromWKB(shapely.to_wkb(shape), 4326)
                ),
            )
        )
        if lost:
            raise ValidationFailed(
                f"有 {lost} 户将不在任何网格内 / {lost} households would fall outside every grid: "
                "a top-level grid cannot give up inhabited territory",
                households=lost,
            )
    _move_by_area(session, moves, src=grid.id, dst=grid.parent_id, area=shape, inside=False)
    _move_by_area(session, moves, src=grid.parent_id, dst=grid.id, area=shape, inside=True)


def _check_children_inside(
    session: Session, grid: Grid, shape: BaseGeometry, limits: BoundaryLimits
) -> None:
    shapely.prepare(shape)
    for child in _children(session, grid.id):
        cshape = _shape(child)
        if shape.covers(cshape):
            continue
        out = cshape.difference(shape)
        area = polygon_area_m2(out)
        if area > limits.tolerance_m2:
            at = out.representative_point()
            raise ValidationFailed(
                f"下级网格将超出边界 / child grid {child.code} ({child.name}) would stick out of "
                f"the new boundary by {area:,.1f} m² near {fmt_point(at.x, at.y)}; "
                "change the child first",
                child=child.code,
                area_m2=area,
                location=mapping(out),
            )


def delete_grid(
    session: Session, grid_id: int, *, base_version: int | None, actor: str
) -> dict[str, Any]:
    """Delete a grid that has no children; what it held goes to its parent.

    The row stays as history (``valid_to``); the deletion can be undone.
    """
    grid = _lock_one(session, grid_id, base_version)
    children = _children(session, grid.id)
    if children:
        names = "、".join(f"{c.code} {c.name}" for c in children[:5])
        raise ValidationFailed(
            f"网格还有 {len(children)} 个下级网格，不能删除 / grid {grid.code} still has "
            f"{len(children)} child grid(s) ({names}): delete or merge them first",
            children=[c.code for c in children],
        )
    if grid.parent_id is None:
        held = session.scalar(
            select(func.count()).select_from(Household).where(Household.grid_id == grid.id)
        )
        if held:
            raise ValidationFailed(
                f"顶级网格内有 {held} 户，不能删除 / top-level grid {grid.code} holds {held} "
                "households and has no parent to take them",
                households=held,
            )
    now = _now(session)
    change = _new_change(
        session, "delete", actor=actor, parent_id=grid.parent_id, before=[grid.id], now=now
    )
    moves = _Moves()
    for kind in POINT_TABLES:
        ids, _ = _points_of(session, kind, grid.id)
        _move_ids(session, kind, ids, grid.parent_id)
        moves.add(kind, ids.tolist(), grid.id, grid.parent_id)
    grid.valid_to = now
    _finish(session, change, moves, [])
    _recount(session, [grid.parent_id])
    return _result(session, change, moves, after=[], retired=[grid.id])


# --------------------------------------------------------------------------------------------
# split and merge


def _copy_assignments(
    session: Session, sources: Sequence[int], targets: Sequence[int]
) -> list[int]:
    """Give the new grids the responsible people of the grids they replace; return new ids."""
    rows = session.execute(
        select(GridAssignment.worker_id, GridAssignment.role)
        .where(GridAssignment.grid_id.in_(list(sources)))
        .distinct()
        .order_by(GridAssignment.role, GridAssignment.worker_id)
    ).all()
    added = []
    for target in targets:
        for worker_id, role in rows:
            a = GridAssignment(worker_id=worker_id, role=role, grid_id=target)
            session.add(a)
            session.flush()
            added.append(a.id)
    return added


def _reparent(
    session: Session,
    change: GridChange,
    child: Grid,
    new_parent: int,
    now: datetime,
    moves: _Moves,
    states: dict[str, int],
) -> None:
    state = _save_state(session, child, change, now)
    session.flush()
    states[str(child.id)] = state.id
    moves.add("child", [child.id], child.parent_id, new_parent)
    child.parent_id = new_parent


def split_grid(
    session: Session,
    grid_id: int,
    line: Any,
    *,
    base_version: int | None,
    actor: str,
    names: Sequence[str] | None = None,
    limits: BoundaryLimits = DEFAULT_LIMITS,
) -> dict[str, Any]:
    """Split a grid along a line into new grids that tile it exactly.

    Households, cameras, service points and open cases go to the part that contains them;
    child grids follow their part (a child across the line refuses the split, naming it). The
    parts get the next codes under the parent, numbered from the left of the line as drawn;
    the old grid stays as history. The responsible people of the old grid are given to every
    part until someone reassigns them.
    """
    grid = _lock_one(session, grid_id, base_version)
    children = _children(session, grid.id)
    held = {kind: _points_of(session, kind, grid.id) for kind in POINT_TABLES}
    plan = topology.plan_split(
        _shape(grid),
        line,
        points={kind: xy for kind, (_, xy) in held.items()},
        children={c.code: _shape(c) for c in children},
        min_part_area_m2=limits.min_area_m2,
        tolerance_m2=limits.tolerance_m2,
    )
    n = len(plan.parts)
    if names is not None and len(names) != n:
        raise ValidationFailed(
            f"名称个数不符 / the line makes {n} parts but {len(names)} names were given",
            field="names",
            parts=n,
        )
    parent = session.get(Grid, grid.parent_id) if grid.parent_id is not None else None
    codes = next_codes(session, parent, n, like=grid)
    now = _now(session)
    change = _new_change(
        session, "split", actor=actor, parent_id=grid.parent_id, before=[grid.id], now=now
    )
    grid.valid_to = now
    session.flush()  # frees the code index before the parts are inserted
    parts: list[Grid] = []
    for k, (part, area) in enumerate(zip(plan.parts, plan.areas_m2, strict=True)):
        new = Grid(
            code=codes[k],
            name=(names[k].strip() if names else f"{grid.name}（{k + 1}）"),
            level=grid.level,
            kind=grid.kind,
            parent_id=grid.parent_id,
            geom=from_shape(to_multipolygon(part), srid=4326),
            area_m2=area,
            valid_from=now,
        )
        session.add(new)
        parts.append(new)
    session.flush()
    moves = _Moves()
    for kind, (ids, _) in held.items():
        owner = plan.points[kind]
        for k, part in enumerate(parts):
            chosen = ids[owner == k].tolist()
            _move_ids(session, kind, chosen, part.id)
            moves.add(kind, chosen, grid.id, part.id)
    states: dict[str, int] = {}
    by_code = {c.code: c for c in children}
    for code, k in sorted(plan.children.items()):
        _reparent(session, change, by_code[code], parts[k].id, now, moves, states)
    added = _copy_assignments(session, [grid.id], [p.id for p in parts])
    after = [p.id for p in parts]
    _finish(
        session,
        change,
        moves,
        after,
        line=mapping(as_geometry(line)),
        state_ids=states,
        assignments_added=added,
    )
    _recount(session, after)
    return _result(
        session,
        change,
        moves,
        after=after,
        retired=[grid.id],
        notes={"areas_m2": [round(a, 3) for a in plan.areas_m2]},
    )


def merge_grids(
    session: Session,
    grid_ids: Sequence[int],
    *,
    base_versions: Mapping[int, int | None],
    actor: str,
    name: str | None = None,
) -> dict[str, Any]:
    """Merge adjacent sibling grids into one new grid; the union must be one polygon.

    Everything the grids held and their children move to the new grid, which takes the next
    code under the parent; the merged grids stay as history.
    """
    ids = sorted({int(i) for i in grid_ids})
    if len(ids) < 2:
        raise ValidationFailed("至少选择两个网格 / choose at least two grids to merge", ids=ids)
    peeks = [_peek(session, i) for i in ids]
    parents = {p.parent_id for p in peeks}
    if len(parents) != 1:
        raise ValidationFailed(
            "只能合并同一上级下的网格 / only grids under the same parent can be merged",
            parents=sorted(str(p) for p in parents),
        )
    parent_id = parents.pop()
    _lock(session, [parent_id, *ids])
    grids = [_locked(session, i) for i in ids]
    for g in grids:
        _require_current(session, g)
        _check_version(g, base_versions.get(g.id))
    if len({g.parent_id for g in grids}) != 1:
        raise ValidationFailed("网格的上级已变化 / the grids no longer share a parent", ids=ids)
    union = topology.merge_grids({g.code: _shape(g) for g in grids})
    ok = validate_boundary(union)
    parent = session.get(Grid, parent_id) if parent_id is not None else None
    code = next_codes(session, parent, 1, like=grids[0])[0]
    now = _now(session)
    change = _new_change(session, "merge", actor=actor, parent_id=parent_id, before=ids, now=now)
    for g in grids:
        g.valid_to = now
    session.flush()
    kinds = {g.kind for g in grids}
    first = min(grids, key=lambda g: g.code)
    merged = Grid(
        code=code,
        name=(name or "").strip() or f"{first.name}等{len(grids)}格合并",
        level=first.level,
        kind=kinds.pop() if len(kinds) == 1 else "comprehensive",
        parent_id=parent_id,
        geom=from_shape(ok.geometry, srid=4326),
        area_m2=ok.area_m2,
        valid_from=now,
    )
    session.add(merged)
    session.flush()
    moves = _Moves()
    states: dict[str, int] = {}
    for g in grids:
        for kind in POINT_TABLES:
            pids, _ = _points_of(session, kind, g.id)
            _move_ids(session, kind, pids, merged.id)
            moves.add(kind, pids.tolist(), g.id, merged.id)
        for child in _children(session, g.id):
            _reparent(session, change, child, merged.id, now, moves, states)
    added = _copy_assignments(session, ids, [merged.id])
    _finish(session, change, moves, [merged.id], state_ids=states, assignments_added=added)
    _recount(session, [merged.id])
    return _result(session, change, moves, after=[merged.id], retired=ids)


# --------------------------------------------------------------------------------------------
# division into child grids (automatic division, 片区 patches)


@dataclass(frozen=True)
class DivisionPlan:
    """New child grids proposed for a grid: their polygons (tiling it), names, the households
    of each (indices into the held households handed to the planner) and, for 片区, the
    party member of each (None: nobody)."""

    parts: Sequence[BaseGeometry]
    names: Sequence[str]
    households: Sequence[Sequence[int]]
    members: Sequence[int | None] | None = None


@dataclass
class Division:
    """A committed division: the change, the divided grid, the new and the replaced children."""

    change: GridChange
    grid: Grid
    created: list[Grid]
    retired: list[Grid]
    moves: _Moves
    result: dict[str, Any]


def _held_households(
    session: Session, grid_ids: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ids, lon/lat and holding grid of the households these grids hold directly,
    ordered by id (the order ``gis.partition`` numbers them in)."""
    ids, xy, src = [], [], []
    for gid in grid_ids:
        i, p = _points_of(session, "household", gid)
        ids.append(i)
        xy.append(p)
        src.append(np.full(len(i), gid, dtype=np.int64))
    all_ids = np.concatenate(ids) if ids else np.empty(0, dtype=np.int64)
    if len(all_ids) == 0:
        return all_ids, np.empty((0, 2)), all_ids.copy()
    order = np.argsort(all_ids, kind="stable")
    return all_ids[order], np.concatenate(xy)[order], np.concatenate(src)[order]


def divide_grid(
    session: Session,
    grid_id: int,
    plan: Callable[[Grid, np.ndarray, np.ndarray], DivisionPlan],
    *,
    base_version: int | None,
    actor: str,
    replace_children: bool = False,
    max_level: int = 5,
) -> Division:
    """Divide a grid into new child grids one level down, as ``plan`` proposes.

    ``plan(grid, household_ids, lonlat)`` runs under the locks, on the households the grid
    and its current children hold (ordered by id), so the proposal is made on what is there
    when it is written. Current children are replaced (kept as history) only when asked, and
    only when they have no children of their own. Households go to the part the plan gives
    them; cameras, service points and open cases to the part that contains them; party
    members (片区) are assigned to their part and linked to its households. The grid itself
    keeps its boundary but takes a new version (its state is kept): an edit based on the
    version before the division is refused. The change is recorded as ``divide`` with its
    moves and can be undone like a split.
    """
    peek = _peek(session, grid_id)
    known = _child_ids(session, grid_id)
    _lock(session, [peek.parent_id, grid_id, *known])
    grid = _locked(session, grid_id)
    _require_current(session, grid)
    if base_version is not None:
        _check_version(grid, base_version)
    if grid.parent_id != peek.parent_id:
        raise StaleVersion(grid, base_version or grid.version)
    if grid.level >= max_level:
        raise ValidationFailed(
            f"片区已是最低层级 / grid {grid.code} is a level-{grid.level} grid and cannot be "
            "divided further",
            grid_id=grid.id,
        )
    children = _children(session, grid.id)
    if sorted(c.id for c in children) != sorted(known):
        raise Conflict(
            f"下级网格刚被修改 / the child grids of {grid.code} changed meanwhile; try again",
            grid_id=grid.id,
        )
    if children and not replace_children:
        raise Conflict(
            f"网格已有 {len(children)} 个下级网格 / grid {grid.code} already has {len(children)} "
            "current child grids; commit with replace_children to replace them",
            grid_id=grid.id,
            children=[c.code for c in children],
        )
    deep = [c.code for c in children if _child_ids(session, c.id)]
    if deep:
        raise Conflict(
            "下级网格还有下级 / these child grids have children of their own and cannot be "
            f"replaced: {', '.join(deep)}",
            grid_id=grid.id,
            children=deep,
        )
    holders = [grid.id, *(c.id for c in children)]
    hh_ids, lonlat, hh_src = _held_households(session, holders)
    proposal = plan(grid, hh_ids, lonlat)
    n = len(proposal.parts)
    codes = next_codes(session, grid, n)
    now = _now(session)
    change = _new_change(
        session,
        "divide",
        actor=actor,
        parent_id=grid.id,
        before=[grid.id, *(c.id for c in children)],
        now=now,
    )
    state = _save_state(session, grid, change, now)  # a new version: the grid's children change
    for c in children:
        c.valid_to = now
    session.flush()  # frees the codes of the replaced children
    created: list[Grid] = []
    shapes: list[BaseGeometry] = []
    for code, name, part in zip(codes, proposal.names, proposal.parts, strict=True):
        geom = to_multipolygon(part)
        shapes.append(geom)
        row = Grid(
            code=code,
            name=name,
            level=grid.level + 1,
            kind=grid.kind,
            parent_id=grid.id,
            geom=from_shape(geom, srid=4326),
            area_m2=polygon_area_m2(geom),
            valid_from=now,
        )
        session.add(row)
        created.append(row)
    session.flush()
    moves = _Moves()
    for row, chosen in zip(created, proposal.households, strict=True):
        chosen = np.asarray(chosen, dtype=np.int64)
        for src in np.unique(hh_src[chosen]).tolist():
            pids = hh_ids[chosen[hh_src[chosen] == src]].tolist()
            _move_ids(session, "household", pids, row.id)
            moves.add("household", pids, src, row.id)
    # The rest by containment (and a household the plan left out, should there be one).
    for src in holders:
        for kind in POINT_TABLES:
            ids, xy = _points_of(session, kind, src)
            if len(ids) == 0:
                continue
            owner = topology.assign_points(shapes, xy, outside="nearest")
            for k, row in enumerate(created):
                chosen_ids = ids[owner == k].tolist()
                _move_ids(session, kind, chosen_ids, row.id)
                moves.add(kind, chosen_ids, src, row.id)
    added: list[int] = []
    links: list[list[int | None]] = []
    for row, member in zip(created, proposal.members or [None] * n, strict=True):
        if member is None:
            continue
        a = GridAssignment(worker_id=member, grid_id=row.id, role="party_member")
        session.add(a)
        session.flush()
        added.append(a.id)
        hh = Household.__table__
        links.extend(
            [int(hid), prev]
            for hid, prev in session.execute(
                select(hh.c.id, hh.c.linked_member_id).where(
                    hh.c.grid_id == row.id, hh.c.linked_member_id.is_distinct_from(member)
                )
            ).all()
        )
        session.execute(update(hh).where(hh.c.grid_id == row.id).values(linked_member_id=member))
    after = [row.id for row in created]
    _finish(
        session,
        change,
        moves,
        after,
        state_ids={str(grid.id): state.id},
        assignments_added=added,
        links_before=links,
        divided=grid.id,
    )
    _recount(session, [grid.id, *after])
    result = _result(
        session,
        change,
        moves,
        after=after,
        retired=[c.id for c in children],
        notes={"areas_m2": [round(r.area_m2, 3) for r in created]},
    )
    LOGGER.info("divided grid %s into %s (change %d)", grid.code, ",".join(codes), change.id)
    return Division(change, grid, created, children, moves, result)


def _child_ids(session: Session, grid_id: int) -> list[int]:
    return list(
        session.scalars(select(Grid.id).where(Grid.parent_id == grid_id, Grid.valid_to.is_(None)))
    )


# --------------------------------------------------------------------------------------------
# undo


def undo_change(session: Session, change_id: int, *, actor: str) -> dict[str, Any]:
    """Undo an edit, as long as nothing changed since: the previous grids come back with their
    codes, and everything that moved moves back.

    Things that arrived in the edit's grids afterwards (a new case) go to the restored grid
    that contains them.
    """
    change = session.get(GridChange, change_id, with_for_update=True, populate_existing=True)
    if change is None:
        raise NotFound(f"修改记录不存在 / change {change_id} does not exist", change_id=change_id)
    if change.undone_by_id is not None:
        raise UndoRefused(
            f"已撤销 / change {change_id} was already undone by change {change.undone_by_id}",
            change_id=change_id,
        )
    if change.kind == "undo":
        raise UndoRefused(
            "撤销操作不能再撤销 / an undo cannot itself be undone: make the edit again",
            change_id=change_id,
        )
    detail = change.detail or {}
    moved_children = [int(r[0]) for r in detail.get("moves", {}).get("child", [])]
    touched = {*change.before_ids, *change.after_ids, *moved_children}
    _lock(session, [change.parent_id, *touched])
    versions = {int(k): v for k, v in detail.get("versions", {}).items()}
    grids = {i: _locked(session, i) for i in sorted(touched)}
    for gid in [*change.after_ids, *moved_children]:
        g = grids[gid]
        if g.valid_to is not None or g.version != versions.get(gid):
            raise UndoRefused(
                f"网格 {g.code}（{g.name}）此后已有改动，不能撤销 / grid {g.code} has changed "
                f"since change {change_id} (version {g.version}, was {versions.get(gid)})",
                change_id=change_id,
                grid_id=gid,
            )
    later = session.scalar(
        select(GridChange.id)
        .where(
            GridChange.id > change.id,
            GridChange.undone_by_id.is_(None),
            GridChange.kind != "undo",
            GridChange.parent_id.in_(list(change.after_ids) or [-1]),
        )
        .limit(1)
    )
    if later is not None:
        raise UndoRefused(
            f"此后已在其下级作了修改（#{later}），不能撤销 / change {later} edited the children "
            f"of the grids made by change {change_id}; undo that first",
            change_id=change_id,
            later_change=later,
        )
    _check_restorable(session, change, grids)
    now = _now(session)
    undo = _new_change(
        session,
        "undo",
        actor=actor,
        parent_id=change.parent_id,
        before=list(change.after_ids),
        now=now,
    )
    undo.undoes_id = change.id
    moves = _Moves()
    states: dict[str, int] = {}
    # 1. Child grids go back to their former parents (their state is saved again first).
    for cid, src, dst in reversed(detail.get("moves", {}).get("child", [])):
        child = grids[int(cid)]
        if child.parent_id == dst:
            _reparent(session, undo, child, src, now, moves, states)
    # 2. Grids changed in place get their previous state back.
    restored_states: list[int] = []
    if change.kind == "update":
        for gid_s, sid in detail.get("state_ids", {}).items():
            g = grids[int(gid_s)]
            prev = session.get(GridState, sid)
            assert prev is not None
            st = _save_state(session, g, undo, now)
            session.flush()
            states[gid_s] = st.id
            g.name, g.kind, g.geom, g.area_m2 = prev.name, prev.kind, prev.geom, prev.area_m2
            restored_states.append(int(gid_s))
    if change.kind == "divide":
        # The divided grid keeps its boundary; a new version tells edits based on the
        # divided state that its children changed again.
        g = grids[int(detail["divided"])]
        st = _save_state(session, g, undo, now)
        session.flush()
        states[str(g.id)] = st.id
    # 3. The grids the change created are retired; those it retired come back.
    for gid in change.after_ids:
        if change.kind != "update":
            grids[gid].valid_to = now
    session.flush()
    back = [gid for gid in change.before_ids if grids[gid].valid_to is not None]
    for gid in back:
        g = grids[gid]
        taken = session.scalar(
            select(Grid.id).where(Grid.code == g.code, Grid.valid_to.is_(None), Grid.id != gid)
        )
        if taken:
            raise UndoRefused(
                f"编码 {g.code} 已被其他网格使用 / code {g.code} is now used by grid {taken}",
                change_id=change_id,
                grid_id=gid,
            )
        # The row's first life ended when the change retired it; keep that in grid_state so
        # that "as of" queries between the change and this undo do not see it.
        retired_at = g.valid_to
        g.valid_to = None
        session.flush()
        st = _save_state(session, g, undo, now)
        st.valid_to = retired_at
        session.flush()
        states[str(gid)] = st.id
    session.flush()
    # 4. Everything that moved moves back, if it is still where the change put it.
    for kind, rows in detail.get("moves", {}).items():
        if kind == "child":
            continue
        table = POINT_TABLES[kind].__table__
        by_pair: dict[tuple[int | None, int | None], list[int]] = {}
        for pid, src, dst in rows:
            by_pair.setdefault((src, dst), []).append(int(pid))
        for (src, dst), pids in by_pair.items():
            still = table.c.grid_id.is_(None) if dst is None else table.c.grid_id == dst
            ids = session.scalars(
                update(table)
                .where(table.c.id == any_(bindparam("ids", pids, type_=ARRAY(Integer))), still)
                .values(grid_id=src)
                .returning(table.c.id)
            ).all()
            moves.add(kind, ids, dst, src)
    # 5. Newcomers in retired grids go to the restored grid that contains them.
    retired_now = [gid for gid in change.after_ids if change.kind != "update"]
    if retired_now:
        targets = back or ([change.parent_id] if change.parent_id is not None else [])
        _rehome(session, moves, retired_now, targets)
    if change.kind == "update":
        for gid in restored_states:
            _reassign_after_reshape(session, moves, grids[gid], _shape(grids[gid]))
    # 6. Responsible people given to the retired grids by the change are taken away again.
    added = detail.get("assignments_added", [])
    if added:
        session.execute(delete(GridAssignment).where(GridAssignment.id.in_(added)))
    # 7. Households linked to the party members of retired 片区 get their former links back.
    links = detail.get("links_before", [])
    if links:
        hh = Household.__table__
        session.execute(
            update(hh)
            .where(hh.c.id == bindparam("hid"))
            .values(linked_member_id=bindparam("prev")),
            [{"hid": int(h), "prev": prev} for h, prev in links],
        )
    change.undone_by_id = undo.id
    after = list(change.before_ids)
    _finish(session, undo, moves, after, state_ids=states)
    _recount(session, [*after, change.parent_id])
    return _result(
        session,
        undo,
        moves,
        after=[a for a in after if grids[a].valid_to is None],
        retired=retired_now,
    )


def _check_restorable(session: Session, change: GridChange, grids: Mapping[int, Grid]) -> None:
    """Refuse an undo whose restored boundaries would no longer fit their parent or siblings.

    Siblings may have moved into territory the change freed (a grid grown into a gap left by a
    shrunk or deleted one); the undo must not then create an overlap.
    """
    restore: dict[int, BaseGeometry] = {}
    if change.kind == "update":
        for gid_s, sid in (change.detail or {}).get("state_ids", {}).items():
            prev = session.get(GridState, sid)
            assert prev is not None
            restore[int(gid_s)] = _shape(prev)
    else:  # the grids the change retired (a divided grid itself stays)
        restore = {
            gid: _shape(grids[gid]) for gid in change.before_ids if grids[gid].valid_to is not None
        }
    exclude = [*change.after_ids, *restore]
    relaxed = BoundaryLimits(min_area_m2=0.0, max_vertices=10**9)
    for gid, shape in restore.items():
        g = grids[gid]
        parent = session.get(Grid, g.parent_id) if g.parent_id is not None else None
        try:
            if parent is not None and parent.valid_to is not None:
                raise UndoRefused(
                    f"上级网格 {parent.code} 已成为历史 / the parent {parent.code} of grid "
                    f"{g.code} is history now",
                    change_id=change.id,
                    grid_id=gid,
                )
            validate_boundary(
                shape,
                parent=_shape(parent) if parent is not None else None,
                siblings=_siblings(session, g.parent_id, exclude, shape),
                limits=relaxed,
            )
        except GeometryRejected as exc:
            raise UndoRefused(
                f"不能撤销：恢复的网格 {g.code} 与现状冲突 / cannot undo change {change.id}: "
                f"grid {g.code} would not fit any more — {exc.message}",
                change_id=change.id,
                grid_id=gid,
                location=exc.location_geojson(),
            ) from exc


def _rehome(
    session: Session, moves: _Moves, sources: Sequence[int], targets: Sequence[int]
) -> None:
    """Move whatever ``sources`` still hold to the target grid that contains each point."""
    if not targets:
        return
    shapes = [_shape(session.get(Grid, t)) for t in targets]  # type: ignore[arg-type]
    for src in sources:
        for kind in POINT_TABLES:
            ids, xy = _points_of(session, kind, src)
            if len(ids) == 0:
                continue
            owner = topology.assign_points(shapes, xy, outside="nearest")
            for k, target in enumerate(targets):
                chosen = ids[owner == k].tolist()
                _move_ids(session, kind, chosen, target)
                moves.add(kind, chosen, src, target)


# --------------------------------------------------------------------------------------------
# reading: integrity, history, changes


def integrity(session: Session, grid_id: int) -> dict[str, Any]:
    """Return the integrity report of a grid's children as GeoJSON (gaps, overlaps, slivers).

    A grid without children (a leaf) has nothing to cover: its report is empty.
    """
    grid = _peek(session, grid_id)
    children = session.execute(
        select(Grid.code, Grid.geom).where(Grid.parent_id == grid_id, Grid.valid_to.is_(None))
    ).all()
    report = topology.integrity_report(_shape(grid), {code: to_shape(g) for code, g in children})
    if not children:
        report.gaps = []
    out = report.to_geojson()
    held = {
        kind: int(
            session.scalar(
                select(func.count())
                .select_from(table)
                .where(table.grid_id == grid_id)
                .where(Case.status.notin_(FINISHED_CASE_STATES) if kind == "case" else true())
            )
            or 0
        )
        for kind, table in POINT_TABLES.items()
    }
    out["grid"] = {"id": grid.id, "code": grid.code, "name": grid.name, "version": grid.version}
    out["summary"]["children"] = len(children)
    # With children, what the grid holds itself lies in its gaps.
    out["summary"]["held_in_gaps" if children else "held"] = held
    return out


def history(session: Session, grid_id: int, *, at: datetime | None = None) -> dict[str, Any]:
    """Return a grid's states over time and the changes that touched it; or its state at ``at``."""
    grid = _peek(session, grid_id)
    rows = session.execute(
        select(
            GridState.version,
            GridState.code,
            GridState.name,
            GridState.kind,
            GridState.parent_id,
            GridState.area_m2,
            GridState.valid_from,
            GridState.valid_to,
            func.ST_AsGeoJSON(GridState.geom, 7),
        )
        .where(GridState.grid_id == grid_id)
        .order_by(GridState.valid_from, GridState.id)
    ).all()
    current_gj = session.scalar(select(func.ST_AsGeoJSON(Grid.geom, 7)).where(Grid.id == grid_id))
    states = [
        {
            "version": r[0],
            "code": r[1],
            "name": r[2],
            "kind": r[3],
            "parent_id": r[4],
            "area_m2": round(r[5], 1),
            "valid_from": r[6],
            "valid_to": r[7],
            "geometry": r[8],
        }
        for r in rows
    ]
    states.append(
        {
            "version": grid.version,
            "code": grid.code,
            "name": grid.name,
            "kind": grid.kind,
            "parent_id": grid.parent_id,
            "area_m2": round(grid.area_m2, 1),
            "valid_from": grid.valid_from,
            "valid_to": grid.valid_to,
            "geometry": current_gj,
        }
    )

    def feature(s: dict[str, Any]) -> dict[str, Any]:
        props = {k: v for k, v in s.items() if k != "geometry"}
        props["valid_from"] = s["valid_from"].isoformat()
        props["valid_to"] = s["valid_to"].isoformat() if s["valid_to"] else None
        return {
            "type": "Feature",
            "id": grid_id,
            "geometry": json.loads(s["geometry"]),
            "properties": props,
        }

    if at is not None:
        for s in states:
            if s["valid_from"] <= at and (s["valid_to"] is None or at < s["valid_to"]):
                f = feature(s)
                f["properties"]["as_of"] = at.isoformat()
                return f
        raise NotFound(
            f"该时间网格不存在 / grid {grid.code} did not exist at {at.isoformat()}",
            grid_id=grid_id,
            at=at.isoformat(),
        )
    return grid_read.collection(
        [feature(s) for s in states],
        grid={"id": grid.id, "code": grid.code, "name": grid.name},
        changes=list_changes(session, grid_id=grid_id)["changes"],
    )


def list_changes(
    session: Session,
    *,
    grid_id: int | None = None,
    limit: int = 100,
    scope: frozenset[int] | None = None,
) -> dict[str, Any]:
    """Return changes, newest first: all, or those that touched a grid or its children
    (``scope``: only changes under a grid in it)."""
    query = select(GridChange).order_by(GridChange.id.desc()).limit(limit)
    if scope is not None:
        query = query.where(GridChange.parent_id.in_(sorted(scope)))
    if grid_id is not None:
        query = query.where(
            (any_(GridChange.before_ids) == grid_id)
            | (any_(GridChange.after_ids) == grid_id)
            | (GridChange.parent_id == grid_id)
        )
    changes = session.scalars(query).all()
    codes = dict(
        session.execute(
            select(Grid.id, Grid.code).where(
                Grid.id.in_({i for c in changes for i in (*c.before_ids, *c.after_ids)})
            )
        ).all()
    )
    return {
        "changes": [
            {
                "id": c.id,
                "kind": c.kind,
                "kind_name": CHANGE_NAMES[c.kind],
                "at": c.at.isoformat(),
                "actor": c.actor,
                "parent_id": c.parent_id,
                "before": [{"id": i, "code": codes.get(i)} for i in c.before_ids],
                "after": [{"id": i, "code": codes.get(i)} for i in c.after_ids],
                "moved": {k: len(v) for k, v in (c.detail or {}).get("moves", {}).items() if v},
                "undoes": c.undoes_id,
                "undone_by": c.undone_by_id,
            }
            for c in changes
        ]
    }
