"""Propose and commit the automatic division of a grid (户数相近、地域相连), and 片区 patches.

A proposal is computed by ``gis.partition`` from the grid's polygon, the households it holds (in
itself and its current descendants) and an optional road layer; nothing is written. Committing
recomputes the same proposal (same input and seed give the same answer) and, in the caller's
transaction: creates the parts as new child grids one level down, with codes that continue the
grid's own code; moves the households by part, and cameras, service points and open cases by
containment; and, for patches, gives each patch its party member and links its households to
that member. Current children of the grid are replaced (kept as history) only when asked.

This commit path is our own. The split-by-line edit (grid editing) has its own transactional
path; the two write grids, codes and moves the same way and can share one later.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from geoalchemy2.shape import from_shape, to_shape
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.orm import Session

from app.errors import BadParameter, Conflict, NotFound, ValidationFailed
from app.models import Camera, Case, Grid, GridAssignment, Household, ServicePoint, Worker
from app.models.grid import LEVEL_NAMES
from app.services.importer import refresh_household_counts
from gis.assign import assign_points
from gis.crs import geodesic_area_m2
from gis.partition import Proposal, partition_grid, split_into_patches

LOGGER = logging.getLogger(__name__)

#: Cases in these states stay with the grid they were handled in.
FINISHED_CASE_STATES = ("closed", "cancelled")
#: The tables whose rows follow the new grids by containment (households follow by part).
CONTAINED = {"camera": Camera, "service_point": ServicePoint, "case": Case}
MOVE_NAMES = {
    "household": "住户",
    "camera": "监控探头",
    "service_point": "服务阵地",
    "case": "未结事件",
}


def load_roads(path: str | Path | None) -> list[BaseGeometry]:
    """Read road lines from a GeoJSON file (a FeatureCollection of (Multi)LineStrings)."""
    if path is None or not Path(path).exists():
        return []
    return roads_from_geojson(json.loads(Path(path).read_text(encoding="utf-8")), field="roads")


def roads_from_geojson(value: Any, *, field: str = "roads") -> list[BaseGeometry]:
    """Return the lines of a GeoJSON geometry, Feature or FeatureCollection of road lines."""
    if not isinstance(value, dict) or "type" not in value:
        raise BadParameter(field, "give GeoJSON lines (a geometry, Feature or FeatureCollection)")
    if value["type"] == "FeatureCollection":
        geoms = [f.get("geometry") for f in value.get("features", [])]
    elif value["type"] == "Feature":
        geoms = [value.get("geometry")]
    else:
        geoms = [value]
    out = []
    for i, g in enumerate(geoms):
        try:
            geom = shape(g)
        except Exception as exc:  # shapely raises several types for bad GeoJSON
            raise BadParameter(field, f"feature {i} is not valid GeoJSON: {exc}") from exc
        if geom.geom_type not in ("LineString", "MultiLineString"):
            raise BadParameter(field, f"feature {i} is a {geom.geom_type}, not a line")
        out.append(geom)
    return out


def _grid(session: Session, grid_id: int, *, lock: bool = False) -> Grid:
    stmt = select(Grid).where(Grid.id == grid_id)
    if lock:
        stmt = stmt.with_for_update()
    grid = session.scalars(stmt).first()
    if grid is None:
        raise NotFound(f"grid {grid_id} does not exist", grid_id=grid_id)
    if grid.valid_to is not None:
        raise Conflict(
            f"网格已停用 / grid {grid.code} is history (retired {grid.valid_to.isoformat()})",
            grid_id=grid_id,
        )
    return grid


def _subtree_ids(session: Session, grid_id: int) -> list[int]:
    rows = session.execute(
        text(
            "WITH RECURSIVE t AS (SELECT id FROM grid WHERE id = :id UNION ALL"
            " SELECT c.id FROM grid c JOIN t ON c.parent_id = t.id WHERE c.valid_to IS NULL)"
            " SELECT id FROM t"
        ),
        {"id": grid_id},
    ).scalars()
    return list(rows)


def _households(session: Session, grid_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Return ids and lon/lat of the households held by these grids, ordered by id."""
    rows = session.execute(
        select(Household.id, func.ST_X(Household.geom), func.ST_Y(Household.geom))
        .where(Household.grid_id.in_(list(grid_ids)))
        .order_by(Household.id)
    ).all()
    if not rows:
        return np.empty(0, dtype=np.int64), np.empty((0, 2))
    arr = np.asarray(rows, dtype=float)
    return arr[:, 0].astype(np.int64), arr[:, 1:3]


def _current_children(session: Session, grid_id: int) -> list[Grid]:
    return list(
        session.scalars(
            select(Grid)
            .where(Grid.parent_id == grid_id, Grid.valid_to.is_(None))
            .order_by(Grid.code)
        )
    )


def propose(
    session: Session,
    grid_id: int,
    *,
    k: int | None = None,
    target_size: float | None = None,
    size_range: tuple[float, float] | None = None,
    seed: int = 0,
    roads: Sequence[BaseGeometry] | None = None,
    lock: bool = False,
) -> tuple[Grid, Proposal, np.ndarray]:
    """Compute a division of the grid; return the grid, the proposal and the household ids."""
    grid = _grid(session, grid_id, lock=lock)
    ids, lonlat = _households(session, _subtree_ids(session, grid.id))
    proposal = partition_grid(
        to_shape(grid.geom),
        lonlat,
        k=k,
        target_size=target_size,
        size_range=size_range,
        roads=roads or None,
        seed=seed,
    )
    return grid, proposal, ids


def proposal_geojson(
    grid: Grid, proposal: Proposal, *, names: Sequence[str] | None = None
) -> dict[str, Any]:
    """Return the proposal as GeoJSON with the grid it divides and the proposed names."""
    body = proposal.to_geojson()
    level = grid.level + 1
    for f, name in zip(body["features"], part_names(grid, len(proposal.parts), names), strict=True):
        f["properties"]["name"] = name
        f["properties"]["level"] = level
        f["properties"]["level_name"] = LEVEL_NAMES.get(level, str(level))
    body["grid"] = {
        "id": grid.id,
        "code": grid.code,
        "name": grid.name,
        "level": grid.level,
        "version": grid.version,
    }
    return body


def part_names(grid: Grid, count: int, names: Sequence[str] | None = None) -> list[str]:
    """Names of the new grids: the given ones, or the grid's name with a number."""
    if names is not None:
        if not isinstance(names, list | tuple) or len(names) != count or not all(isinstance(n, str) and n.strip() for n in names):
            raise BadParameter("names", f"give {count} non-empty names, one per part")
        return [n.strip() for n in names]
    word = "片区" if grid.level + 1 == 5 else "微网格" if grid.level + 1 == 4 else "网格"
    return [f"{grid.name}第{i + 1}{word}" for i in range(count)]


def next_child_codes(session: Session, parent: Grid, count: int) -> list[str]:
    """Return ``count`` codes continuing ``parent``'s code, never reusing one ever given.

    A child's code is the parent's code plus a sequence number of fixed width (3 digits under a
    street or town, 2 below, or the width the children already use), counted on from the
    highest number ever used under the parent, history included.
    """
    used = session.scalars(select(Grid.code).where(Grid.parent_id == parent.id)).all()
    tails = [c[len(parent.code) :] for c in used if c.startswith(parent.code)]
    tails = [t for t in tails if t.isdigit()]
    width = max((len(t) for t in tails), default=3 if parent.level == 1 else 2)
    start = max((int(t) for t in tails), default=0) + 1
    if start + count - 1 >= 10**width:
        raise ValidationFailed(
            f"编码已用尽 / no free {width}-digit codes are left under {parent.code}",
            parent_code=parent.code,
        )
    codes = [f"{parent.code}{n:0{width}d}" for n in range(start, start + count)]
    clash = session.scalars(
        select(Grid.code).where(Grid.code.in_(codes), Grid.valid_to.is_(None))
    ).all()
    if clash:
        raise Conflict(f"编码已被占用 / codes already in use: {', '.join(sorted(clash))}")
    return codes


def _to_multipolygon(geom: BaseGeometry) -> MultiPolygon:
    if isinstance(geom, Polygon):
        return MultiPolygon([geom])
    return MultiPolygon(list(shapely.get_parts(geom)))


def _move(session: Session, table: Any, ids: Sequence[int], dst: int) -> None:
    """Give the rows with these ids to grid ``dst``."""
    if len(ids) == 0:
        return
    session.execute(
        update(table).where(table.c.id.in_(bindparam("ids", expanding=True))).values(grid_id=dst),
        {"ids": [int(i) for i in ids]},
    )


def commit(
    session: Session,
    grid_id: int,
    *,
    k: int | None = None,
    target_size: float | None = None,
    size_range: tuple[float, float] | None = None,
    seed: int = 0,
    roads: Sequence[BaseGeometry] | None = None,
    names: Sequence[str] | None = None,
    base_version: int | None = None,
    replace_children: bool = False,
) -> dict[str, Any]:
    """Divide the grid into new child grids as proposed; run inside the caller's transaction."""
    grid = _grid(session, grid_id, lock=True)
    return _commit_parts(
        session,
        grid,
        base_version=base_version,
        replace_children=replace_children,
        names=names,
        compute=lambda lonlat: partition_grid(
            to_shape(grid.geom),
            lonlat,
            k=k,
            target_size=target_size,
            size_range=size_range,
            roads=roads or None,
            seed=seed,
        ),
    )


def _commit_parts(
    session: Session,
    grid: Grid,
    *,
    base_version: int | None,
    replace_children: bool,
    names: Sequence[str] | None,
    compute: Any,
) -> dict[str, Any]:
    if base_version is not None and grid.version != base_version:
        raise Conflict(
            f"网格已被修改 / grid {grid.code} is at version {grid.version}, "
            f"the proposal was made on version {base_version}; ask for a new proposal",
            grid_id=grid.id,
            version=grid.version,
        )
    if grid.level >= 5:
        raise ValidationFailed(
            f"片区已是最低层级 / grid {grid.code} is a level-5 patch and cannot be divided further",
            grid_id=grid.id,
        )
    children = _current_children(session, grid.id)
    if children and not replace_children:
        raise Conflict(
            f"网格已有 {len(children)} 个下级网格 / grid {grid.code} already has {len(children)} "
            "current child grids; commit with replace_children to replace them",
            grid_id=grid.id,
            children=[c.code for c in children],
        )
    deep = [
        c.code
        for c in children
        if session.scalar(
            select(func.count()).where(Grid.parent_id == c.id, Grid.valid_to.is_(None))
        )
    ]
    if deep:
        raise Conflict(
            "下级网格还有下级 / these child grids have children of their own and cannot be "
            f"replaced: {', '.join(deep)}",
            grid_id=grid.id,
            children=deep,
        )
    holders = [grid.id] + [c.id for c in children]
    hh_ids, lonlat = _households(session, holders)
    proposal: Proposal = compute(lonlat)
    count = len(proposal.parts)
    labels = part_names(grid, count, names)
    now: datetime = session.scalar(select(func.now()))  # type: ignore[assignment]
    for c in children:
        c.valid_to = now
    session.flush()
    codes = next_child_codes(session, grid, count)
    new_grids: list[Grid] = []
    for part, code, name in zip(proposal.parts, codes, labels, strict=True):
        geom = _to_multipolygon(part.geometry)
        row = Grid(
            code=code,
            name=name,
            level=grid.level + 1,
            kind=grid.kind,
            parent_id=grid.id,
            geom=from_shape(geom, srid=4326),
            area_m2=geodesic_area_m2(geom),
            valid_from=now,
        )
        session.add(row)
        new_grids.append(row)
    session.flush()
    moved = {"household": 0}
    for part, row in zip(proposal.parts, new_grids, strict=True):
        chosen = hh_ids[part.household_indices]
        _move(session, Household.__table__, chosen, row.id)
        moved["household"] += len(chosen)
    polygons = [p.geometry for p in proposal.parts]
    for kind, model in CONTAINED.items():
        where = [model.grid_id.in_(holders)]
        if kind == "case":
            where.append(model.status.notin_(FINISHED_CASE_STATES))
        rows = session.execute(
            select(model.id, func.ST_X(model.geom), func.ST_Y(model.geom)).where(*where)
        ).all()
        moved[kind] = 0
        if not rows:
            continue
        arr = np.asarray(rows, dtype=float)
        owner = assign_points(arr[:, 1], arr[:, 2], polygons, codes)
        for i, row in enumerate(new_grids):
            chosen = arr[owner == i, 0].astype(np.int64).tolist()
            _move(session, model.__table__, chosen, row.id)
            moved[kind] += len(chosen)
    session.flush()
    refresh_household_counts(session)
    LOGGER.info("divided grid %s into %d grids %s", grid.code, count, ",".join(codes))
    body = proposal_geojson(grid, proposal, names=labels)
    for f, row in zip(body["features"], new_grids, strict=True):
        f["id"] = row.id
        f["properties"].update(id=row.id, code=row.code, version=row.version)
    body["dry_run"] = False
    body["created"] = [row.id for row in new_grids]
    body["retired"] = [c.id for c in children]
    body["moved"] = moved
    body["moved_names"] = {MOVE_NAMES[k]: v for k, v in moved.items()}
    return body


# --- 片区 patches ----------------------------------------------------------------------------


def party_members_of(session: Session, grid_id: int) -> list[int]:
    """Return the party members assigned to a grid (role party_member), by worker id."""
    return list(
        session.scalars(
            select(GridAssignment.worker_id)
            .where(GridAssignment.grid_id == grid_id, GridAssignment.role == "party_member")
            .order_by(GridAssignment.worker_id)
        )
    )


def _check_members(session: Session, member_ids: Sequence[int]) -> list[int]:
    ids = [int(m) for m in member_ids]
    if len(set(ids)) != len(ids):
        raise BadParameter("members", "a party member is listed twice")
    found = set(session.scalars(select(Worker.id).where(Worker.id.in_(ids))).all())
    missing = [m for m in ids if m not in found]
    if missing:
        raise NotFound(f"workers {missing} do not exist", members=missing)
    return ids


def _patch_grid(session: Session, grid_id: int, *, lock: bool) -> Grid:
    grid = _grid(session, grid_id, lock=lock)
    if grid.level != 4:
        raise ValidationFailed(
            f"片区只能在微网格内划分 / patches are cut from a level-4 micro-grid; "
            f"grid {grid.code} is level {grid.level}",
            grid_id=grid.id,
        )
    return grid


def propose_patches(
    session: Session,
    grid_id: int,
    *,
    member_ids: Sequence[int] | None = None,
    size_range: tuple[float, float] = (5, 10),
    seed: int = 0,
    roads: Sequence[BaseGeometry] | None = None,
) -> dict[str, Any]:
    """Cut a micro-grid into 片区 of ``size_range`` households, one party member each."""
    grid = _patch_grid(session, grid_id, lock=False)
    return _patches(session, grid, member_ids, size_range, seed, roads)[0]


def _patches(
    session: Session,
    grid: Grid,
    member_ids: Sequence[int] | None,
    size_range: tuple[float, float],
    seed: int,
    roads: Sequence[BaseGeometry] | None,
) -> tuple[dict[str, Any], Any, np.ndarray]:
    members = _check_members(
        session, party_members_of(session, grid.id) if member_ids is None else member_ids
    )
    if not members:
        raise ValidationFailed(
            f"网格没有党员 / grid {grid.code} has no party member assigned; give members",
            grid_id=grid.id,
        )
    ids, lonlat = _households(session, _subtree_ids(session, grid.id))
    result = split_into_patches(
        to_shape(grid.geom), lonlat, members, size_range=size_range, roads=roads or None, seed=seed
    )
    body = proposal_geojson(grid, result.proposal)
    names = {w.id: w.name for w in session.scalars(select(Worker).where(Worker.id.in_(members)))}
    for f, member in zip(body["features"], result.members, strict=True):
        f["properties"]["member_id"] = member
        f["properties"]["member_name"] = names.get(member) if member is not None else None
    body["households_per_member"] = [
        {"member_id": m, "member_name": names.get(m), "households": n}
        for m, n in result.households_per_member.items()
    ]
    body["unassigned_members"] = result.unassigned_members
    body["dry_run"] = True
    return body, result, ids


def commit_patches(
    session: Session,
    grid_id: int,
    *,
    member_ids: Sequence[int] | None = None,
    size_range: tuple[float, float] = (5, 10),
    seed: int = 0,
    roads: Sequence[BaseGeometry] | None = None,
    base_version: int | None = None,
    replace_children: bool = False,
) -> dict[str, Any]:
    """Create the patches as level-5 grids, assign their members and link their households."""
    grid = _patch_grid(session, grid_id, lock=True)
    preview, result, _ = _patches(session, grid, member_ids, size_range, seed, roads)
    k = len(result.proposal.parts)
    body = _commit_parts(
        session,
        grid,
        base_version=base_version,
        replace_children=replace_children,
        names=None,
        compute=lambda _lonlat: result.proposal,
    )
    for f, member, part in zip(
        body["features"], result.members, result.proposal.parts, strict=True
    ):
        f["properties"]["member_id"] = member
        f["properties"]["member_name"] = preview["features"][part.index]["properties"][
            "member_name"
        ]
        if member is None:
            continue
        session.add(GridAssignment(worker_id=member, grid_id=f["id"], role="party_member"))
        session.execute(
            update(Household.__table__)
            .where(Household.__table__.c.grid_id == f["id"])
            .values(linked_member_id=member)
        )
    session.flush()
    body["households_per_member"] = preview["households_per_member"]
    body["unassigned_members"] = preview["unassigned_members"]
    LOGGER.info("cut micro-grid %s into %d patches", grid.code, k)
    return body
