"""Undo a recorded grid change."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shapely.geometry.base import BaseGeometry
from sqlalchemy import ARRAY, Integer, any_, bindparam, delete, select, update
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import Grid, GridAssignment, Household
from app.models.grid_history import GridChange, GridState
from app.services.grid_edit.base import (
    POINT_TABLES,
    UndoRefused,
    _lock,
    _locked,
    _Moves,
    _now,
    _shape,
    _siblings,
)
from app.services.grid_edit.moves import (
    _finish,
    _move_by_containment,
    _new_change,
    _reassign_after_reshape,
    _recount,
    _reparent,
    _result,
    _save_state,
)
from gis.validate import (
    BoundaryLimits,
    GeometryRejected,
    validate_boundary,
)


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
    _move_by_containment(session, moves, sources, shapes, targets)
