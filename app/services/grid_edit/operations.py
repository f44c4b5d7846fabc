"""Create, reshape, delete, split and merge grids."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import shapely
from geoalchemy2.shape import from_shape
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import ValidationFailed
from app.models import Grid, Household
from app.services.grid_edit.base import (
    DEFAULT_OPTIONS,
    POINT_TABLES,
    EditOptions,
    _check_version,
    _children,
    _lock,
    _lock_one,
    _locked,
    _Moves,
    _now,
    _peek,
    _require_current,
    _shape,
    _siblings,
)
from app.services.grid_edit.codes import next_codes
from app.services.grid_edit.moves import (
    _copy_assignments,
    _finish,
    _move_by_area,
    _move_ids,
    _new_change,
    _points_of,
    _reassign_after_reshape,
    _recount,
    _reparent,
    _result,
    _save_state,
)
from gis import topology
from gis.crs import geodesic_area_m2
from gis.metric import polygon_area_m2
from gis.validate import (
    DEFAULT_LIMITS,
    BoundaryLimits,
    as_geometry,
    check_coordinates,
    check_polygonal,
    fmt_point,
    to_multipolygon,
    validate_boundary,
)

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
    options: EditOptions = DEFAULT_OPTIONS,
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
        area_m2=geodesic_area_m2(ok.geometry),
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
    options: EditOptions = DEFAULT_OPTIONS,
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
        grid.area_m2 = geodesic_area_m2(ok.geometry)
        session.flush()
        _reassign_after_reshape(session, moves, grid, ok.geometry)
    session.flush()
    _finish(session, change, moves, [grid.id], state_ids={str(grid.id): state.id})
    _recount(session, [grid.id, grid.parent_id])
    return _result(session, change, moves, after=[grid.id], notes=_clip_notes(ok) if ok else {})


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
    for k, (part, _area) in enumerate(zip(plan.parts, plan.areas_m2, strict=True)):
        new = Grid(
            code=codes[k],
            name=(names[k].strip() if names else f"{grid.name}（{k + 1}）"),
            level=grid.level,
            kind=grid.kind,
            parent_id=grid.parent_id,
            geom=from_shape(to_multipolygon(part), srid=4326),
            area_m2=geodesic_area_m2(part),
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
        area_m2=geodesic_area_m2(ok.geometry),
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
