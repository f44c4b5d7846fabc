"""What an edit moves and records: the things grids hold, saved states, recounts, the change row."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import ARRAY, Integer, any_, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from app.errors import ValidationFailed
from app.models import Case, Grid, GridAssignment, Household
from app.models.grid_history import CHANGE_NAMES, GridChange, GridState
from app.services import grid_tree
from app.services import grids as grid_read
from app.services.grid_edit.base import FINISHED_CASE_STATES, POINT_TABLES, _Moves
from gis import topology


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


def _move_by_containment(
    session: Session,
    moves: _Moves,
    sources: Iterable[int],
    shapes: Sequence[BaseGeometry],
    targets: Sequence[int],
) -> None:
    """Move what ``sources`` hold to ``targets[k]`` whose ``shapes[k]`` contains each point (the
    nearest target for a point in none of them), recording each move."""
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
    grid_tree.recount(session, grid_ids)


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
