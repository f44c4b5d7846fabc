"""Read the integrity report, the history and the change list of grids."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from geoalchemy2.shape import to_shape
from sqlalchemy import any_, func, select, true
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import Case, Grid
from app.models.grid_history import CHANGE_NAMES, GridChange, GridState
from app.services import grids as grid_read
from app.services.grid_edit.base import FINISHED_CASE_STATES, POINT_TABLES, _peek, _shape
from gis import topology


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
