"""Undo puts every placed row back: households, cameras, service points, open and closed cases,
worker assignments, and the current grids themselves (id, code, parent, name, boundary, counts).

The whole database is snapshotted before an edit and compared after its undo, for each kind of
edit: a reshape, a split, a merge, a delete and a new grid."""

from __future__ import annotations

from typing import Any

import pytest
from shapely import box
from shapely.geometry import mapping, shape
from sqlalchemy import text

from tests.api.test_grid_edit_api import (
    add_case,
    adjacent_leaves,
    feature,
    leaf_with_households,
    vertical_line,
)

SNAPSHOT = {
    "households": "SELECT id, grid_id, linked_member_id FROM household",
    "cameras": "SELECT id, grid_id FROM camera",
    "service_points": "SELECT id, grid_id FROM service_point",
    "cases": 'SELECT id, grid_id, status, assignee_id FROM "case"',
    "assignments": "SELECT worker_id, grid_id, role FROM grid_assignment",
    "grids": """SELECT id, code, name, level, parent_id, kind, household_count,
                       md5(ST_AsBinary(ST_SnapToGrid(geom, 1e-7))) AS shape
                FROM grid WHERE valid_to IS NULL""",
}


def snapshot(db_session) -> dict[str, set[tuple[Any, ...]]]:  # type: ignore[no-untyped-def]
    return {
        k: {tuple(r) for r in db_session.execute(text(sql)).all()} for k, sql in SNAPSHOT.items()
    }


def _put_things_in(db_session, grid: dict) -> None:  # type: ignore[no-untyped-def]
    """A camera, a service point, an open and a closed case in the grid's eastern half."""
    g = shape(grid["geometry"])
    minx, miny, maxx, maxy = g.bounds
    east = g.intersection(box((minx + maxx) / 2, miny, maxx, maxy)).representative_point()
    west = g.intersection(box(minx, miny, (minx + maxx) / 2, maxy)).representative_point()
    gid = grid["id"]
    db_session.execute(
        text(
            "INSERT INTO camera (code, name, kind, analytics, geom, grid_id) VALUES "
            "('CAM-UNDO-1', '撤销测试探头', 'fixed', false, ST_SetSRID(ST_MakePoint(:x, :y), 4326), :g)"
        ),
        {"x": east.x, "y": east.y, "g": gid},
    )
    db_session.execute(
        text(
            "INSERT INTO service_point (name, kind, geom, grid_id) VALUES "
            "('撤销测试阵地', 'station', ST_SetSRID(ST_MakePoint(:x, :y), 4326), :g)"
        ),
        {"x": west.x, "y": west.y, "g": gid},
    )
    add_case(db_session, east, gid, "dispatched", "SJUNDO0000001")
    add_case(db_session, west, gid, "closed", "SJUNDO0000002")


def _reshape(client, db_session) -> Any:  # type: ignore[no-untyped-def]
    grid = leaf_with_households(client)
    _put_things_in(db_session, grid)
    g = shape(grid["geometry"])
    minx, miny, maxx, maxy = g.bounds
    smaller = g.intersection(box(minx - 1, miny - 1, (minx + maxx) / 2, maxy + 1))
    return lambda: client.patch(
        f"/api/grids/{grid['id']}",
        json={"geometry": mapping(smaller), "version": grid["properties"]["version"]},
    )


def _split(client, db_session) -> Any:  # type: ignore[no-untyped-def]
    grid = leaf_with_households(client)
    _put_things_in(db_session, grid)
    return lambda: client.post(
        f"/api/grids/{grid['id']}/split",
        json={
            "line": vertical_line(shape(grid["geometry"])),
            "version": grid["properties"]["version"],
        },
    )


def _merge(client, db_session) -> Any:  # type: ignore[no-untyped-def]
    a, b = adjacent_leaves(db_session)
    fa, fb = feature(client, a), feature(client, b)
    _put_things_in(db_session, fa)
    return lambda: client.post(
        "/api/grids/merge",
        json={
            "ids": [a, b],
            "versions": {str(a): fa["properties"]["version"], str(b): fb["properties"]["version"]},
        },
    )


def _delete(client, db_session) -> Any:  # type: ignore[no-untyped-def]
    grid = leaf_with_households(client, index=1)
    _put_things_in(db_session, grid)
    return lambda: client.delete(
        f"/api/grids/{grid['id']}", headers={"If-Match": str(grid["properties"]["version"])}
    )


def _create(client, db_session) -> Any:  # type: ignore[no-untyped-def]
    # A new micro-grid over a gap: first shrink a leaf (that edit stays), then draw into the gap.
    grid = leaf_with_households(client, index=2)
    g = shape(grid["geometry"])
    minx, miny, maxx, maxy = g.bounds
    west = g.intersection(box(minx - 1, miny - 1, (minx + maxx) / 2, maxy + 1))
    res = client.patch(
        f"/api/grids/{grid['id']}",
        json={"geometry": mapping(west), "version": grid["properties"]["version"]},
    )
    assert res.status_code == 200, res.get_json()
    gap = g.difference(west)
    _put_things_in(db_session, {"id": grid["properties"]["parent_id"], "geometry": mapping(g)})
    return lambda: client.post(
        "/api/grids",
        json={
            "type": "Feature",
            "geometry": mapping(gap),
            "properties": {
                "name": "新建微网格",
                "level": 4,
                "parent_id": grid["properties"]["parent_id"],
            },
        },
    )


@pytest.mark.parametrize(
    "edit", [_reshape, _split, _merge, _delete, _create], ids=lambda f: f.__name__[1:]
)
def test_undo_restores_every_placed_row(client, db_session, edit) -> None:  # type: ignore[no-untyped-def]
    request = edit(client, db_session)  # what the test puts in, and any edit that prepares it
    before = snapshot(db_session)
    res = request()
    assert res.status_code in (200, 201), res.get_json()
    after_edit = snapshot(db_session)
    assert after_edit != before  # the edit changed something to undo
    undo = client.post(f"/api/grids/changes/{res.get_json()['change']['id']}/undo")
    assert undo.status_code == 200, undo.get_json()
    after_undo = snapshot(db_session)
    for kind in SNAPSHOT:
        assert after_undo[kind] == before[kind], (kind, before[kind] ^ after_undo[kind])
