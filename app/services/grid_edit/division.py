"""Divide a grid into child grids at once (automatic division, 片区 patches)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from geoalchemy2.shape import from_shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.errors import Conflict, ValidationFailed
from app.models import Grid, GridAssignment, Household
from app.models.grid_history import GridChange
from app.services.grid_edit.base import (
    StaleVersion,
    _check_version,
    _children,
    _lock,
    _locked,
    _Moves,
    _now,
    _peek,
    _require_current,
)
from app.services.grid_edit.codes import next_codes
from app.services.grid_edit.moves import (
    _finish,
    _move_by_containment,
    _move_ids,
    _new_change,
    _points_of,
    _recount,
    _result,
    _save_state,
)
from gis.crs import geodesic_area_m2
from gis.validate import (
    to_multipolygon,
)

LOGGER = logging.getLogger(__name__)


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
            area_m2=geodesic_area_m2(geom),
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
    _move_by_containment(session, moves, holders, shapes, [row.id for row in created])
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
