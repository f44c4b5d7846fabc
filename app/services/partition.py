"""Propose and commit the automatic division of a grid (户数相近、地域相连), and 片区 patches.

A proposal is computed by ``gis.partition`` from the grid's polygon, the households it holds (in
itself and its current descendants) and an optional road layer; nothing is written. Committing
hands the proposal to :func:`app.services.grid_edit.divide_grid`, the one path of every grid
write: it takes the grid-edit locks, makes the proposal again on the households held then (same
input and seed give the same answer), creates the parts as child grids one level down with
codes from ``grid_edit.next_codes``, moves households by part and cameras, service points and
open cases by containment, records the change (history, audit with the boundaries before and
after, undo) and recounts the grids that changed. For patches it also gives each patch its
party member and links its households to that member. Current children of the grid are
replaced (kept as history) only when asked.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from geoalchemy2.shape import to_shape
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import BadParameter, Conflict, NotFound, ValidationFailed
from app.models import Grid, GridAssignment, Household, Worker
from app.models.grid import LEVEL_NAMES
from app.services import grid_edit, grid_tree
from gis.partition import Proposal, choose_part_count, partition_grid, split_into_patches

LOGGER = logging.getLogger(__name__)

#: What a division moves, by the names of ``grid_edit``'s moves.
MOVE_NAMES = {
    "household": "住户",
    "camera": "监控探头",
    "service_point": "服务阵地",
    "case": "未结事件",
}


#: The most parts one division makes (the ``k`` of the API, and the count a target size or a
#: size range comes to): a street is divided level by level, each level into tens of parts;
#: ``bench/bench_partition.py`` divides 100,000 households into 200 in a few seconds. Checked
#: before the division is searched, so a request for thousands of parts costs nothing.
MAX_PARTS = 200


def part_count(
    households: int,
    *,
    k: int | None = None,
    target_size: float | None = None,
    size_range: tuple[float, float] | None = None,
    names: Sequence[str] | None = None,
) -> int:
    """The number of parts a division of ``households`` households is asked for, checked before
    any division is searched: at most ``MAX_PARTS``, and as many ``names`` as parts."""
    count = choose_part_count(households, k=k, target_size=target_size, size_range=size_range)
    if count > MAX_PARTS:
        field = "k" if k is not None else "target_size" if target_size is not None else "size_range"
        raise BadParameter(
            field,
            f"这会分成 {count} 个，一次最多 {MAX_PARTS} 个，请逐级划分 / this asks for {count} parts; "
            f"one division makes at most {MAX_PARTS} (divide level by level)",
        )
    if names is not None and len(names) != count:
        raise BadParameter("names", f"give {count} non-empty names, one per part")
    return count


#: The sample road layer, used when the app names no ``ROADS_FILE``.
SAMPLE_ROADS = Path(__file__).resolve().parents[2] / "data" / "sample_boundaries" / "roads.geojson"


def roads(value: Any, configured: str | Path | None = None) -> list[BaseGeometry]:
    """Return the road lines a request asks for: ``True`` the configured road layer (else the
    sample's), ``False`` or None none, or inline GeoJSON lines."""
    if value is False or value is None:
        return []
    if value is True:
        return load_roads(configured or SAMPLE_ROADS)
    return roads_from_geojson(value)


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


def _grid(session: Session, grid_id: int) -> Grid:
    grid = session.scalars(select(Grid).where(Grid.id == grid_id)).first()
    if grid is None:
        raise NotFound(f"grid {grid_id} does not exist", grid_id=grid_id)
    if grid.valid_to is not None:
        raise Conflict(
            f"网格已停用 / grid {grid.code} is history (retired {grid.valid_to.isoformat()})",
            grid_id=grid_id,
        )
    return grid


def _subtree_ids(session: Session, grid_id: int) -> list[int]:
    return sorted(grid_tree.subtree_ids(session, [grid_id], current=True))


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


def propose(
    session: Session,
    grid_id: int,
    *,
    k: int | None = None,
    target_size: float | None = None,
    size_range: tuple[float, float] | None = None,
    seed: int = 0,
    roads: Sequence[BaseGeometry] | None = None,
    names: Sequence[str] | None = None,
) -> tuple[Grid, Proposal, np.ndarray]:
    """Compute a division of the grid; return the grid, the proposal and the household ids.
    The part count and the names' count are checked first (``part_count``)."""
    grid = _grid(session, grid_id)
    ids, lonlat = _households(session, _subtree_ids(session, grid.id))
    count = part_count(len(ids), k=k, target_size=target_size, size_range=size_range, names=names)
    proposal = partition_grid(
        to_shape(grid.geom),
        lonlat,
        k=count,
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
        if (
            not isinstance(names, list | tuple)
            or len(names) != count
            or not all(isinstance(n, str) and n.strip() for n in names)
        ):
            raise BadParameter("names", f"give {count} non-empty names, one per part")
        return [n.strip() for n in names]
    word = "片区" if grid.level + 1 == 5 else "微网格" if grid.level + 1 == 4 else "网格"
    return [f"{grid.name}第{i + 1}{word}" for i in range(count)]


def _moved(division: grid_edit.Division) -> dict[str, int]:
    return {kind: len(division.moves.rows.get(kind, [])) for kind in MOVE_NAMES}


def _body(
    division: grid_edit.Division, proposal: Proposal, labels: Sequence[str]
) -> dict[str, Any]:
    """The proposal as committed: the new grids' ids, codes and versions, the change (for the
    history and undo), what was replaced and what moved."""
    body = proposal_geojson(division.grid, proposal, names=labels)
    for f, row in zip(body["features"], division.created, strict=True):
        f["id"] = row.id
        f["properties"].update(id=row.id, code=row.code, version=row.version)
    moved = _moved(division)
    body["dry_run"] = False
    body["created"] = [row.id for row in division.created]
    body["retired"] = [c.id for c in division.retired]
    body["moved"] = moved
    body["moved_names"] = {MOVE_NAMES[k]: v for k, v in moved.items()}
    body["change"] = division.result["change"]
    return body


def commit(
    session: Session,
    grid_id: int,
    *,
    actor: str,
    k: int | None = None,
    target_size: float | None = None,
    size_range: tuple[float, float] | None = None,
    seed: int = 0,
    roads: Sequence[BaseGeometry] | None = None,
    names: Sequence[str] | None = None,
    base_version: int | None = None,
    replace_children: bool = False,
) -> dict[str, Any]:
    """Divide the grid into new child grids as proposed; run inside the caller's transaction.

    The proposal is made again under the grid-edit locks, on the households held then (the
    same input and seed give the proposal that was shown), and written by
    :func:`app.services.grid_edit.divide_grid`.
    """
    made: dict[str, Any] = {}

    def plan(grid: Grid, _ids: np.ndarray, lonlat: np.ndarray) -> grid_edit.DivisionPlan:
        count = part_count(
            len(lonlat), k=k, target_size=target_size, size_range=size_range, names=names
        )
        proposal = partition_grid(
            to_shape(grid.geom), lonlat, k=count, roads=roads or None, seed=seed
        )
        labels = part_names(grid, len(proposal.parts), names)
        made.update(proposal=proposal, labels=labels)
        return grid_edit.DivisionPlan(
            parts=[p.geometry for p in proposal.parts],
            names=labels,
            households=[p.household_indices for p in proposal.parts],
        )

    division = grid_edit.divide_grid(
        session,
        grid_id,
        plan,
        base_version=base_version,
        actor=actor,
        replace_children=replace_children,
    )
    return _body(division, made["proposal"], made["labels"])


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


def _patch_grid(session: Session, grid_id: int) -> Grid:
    grid = _grid(session, grid_id)
    _require_micro_grid(grid)
    return grid


def _require_micro_grid(grid: Grid) -> None:
    if grid.level != 4:
        raise ValidationFailed(
            f"片区只能在微网格内划分 / patches are cut from a level-4 micro-grid; "
            f"grid {grid.code} is level {grid.level}",
            grid_id=grid.id,
        )


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
    grid = _patch_grid(session, grid_id)
    _, lonlat = _households(session, _subtree_ids(session, grid.id))
    return _patches(session, grid, lonlat, member_ids, size_range, seed, roads)[0]


def _patches(
    session: Session,
    grid: Grid,
    lonlat: np.ndarray,
    member_ids: Sequence[int] | None,
    size_range: tuple[float, float],
    seed: int,
    roads: Sequence[BaseGeometry] | None,
) -> tuple[dict[str, Any], Any]:
    members = _check_members(
        session, party_members_of(session, grid.id) if member_ids is None else member_ids
    )
    if not members:
        raise ValidationFailed(
            f"网格没有党员 / grid {grid.code} has no party member assigned; give members",
            grid_id=grid.id,
        )
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
    return body, result


def commit_patches(
    session: Session,
    grid_id: int,
    *,
    actor: str,
    member_ids: Sequence[int] | None = None,
    size_range: tuple[float, float] = (5, 10),
    seed: int = 0,
    roads: Sequence[BaseGeometry] | None = None,
    base_version: int | None = None,
    replace_children: bool = False,
) -> dict[str, Any]:
    """Create the patches as level-5 grids, assign their members and link their households
    (through :func:`app.services.grid_edit.divide_grid`, so the cut can be undone)."""
    _patch_grid(session, grid_id)
    made: dict[str, Any] = {}

    def plan(grid: Grid, _ids: np.ndarray, lonlat: np.ndarray) -> grid_edit.DivisionPlan:
        _require_micro_grid(grid)
        preview, result = _patches(session, grid, lonlat, member_ids, size_range, seed, roads)
        labels = part_names(grid, len(result.proposal.parts))
        made.update(preview=preview, result=result, labels=labels)
        return grid_edit.DivisionPlan(
            parts=[p.geometry for p in result.proposal.parts],
            names=labels,
            households=[p.household_indices for p in result.proposal.parts],
            members=list(result.members),
        )

    division = grid_edit.divide_grid(
        session,
        grid_id,
        plan,
        base_version=base_version,
        actor=actor,
        replace_children=replace_children,
    )
    preview, result = made["preview"], made["result"]
    body = _body(division, result.proposal, made["labels"])
    for f, member, part in zip(
        body["features"], result.members, result.proposal.parts, strict=True
    ):
        f["properties"]["member_id"] = member
        f["properties"]["member_name"] = preview["features"][part.index]["properties"][
            "member_name"
        ]
    body["households_per_member"] = preview["households_per_member"]
    body["unassigned_members"] = preview["unassigned_members"]
    LOGGER.info("cut micro-grid %s into %d patches", division.grid.code, len(division.created))
    return body
