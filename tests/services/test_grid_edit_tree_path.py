"""Every kind of grid write keeps ``grid.path`` (the materialised path the grid tree reads) equal to
the chain of ``parent_id``: draw, reshape, split, merge, division, delete, undo and import. The
grid tree then answers what a walk over ``parent_id`` answers."""

from __future__ import annotations

import geopandas as gpd
from shapely import LineString, box
from shapely.geometry import mapping, shape
from sqlalchemy import text

from app.services import grid_tree, importer

# The independent answer: the path of every grid by walking ``parent_id`` from the top.
WALKED = """
    WITH RECURSIVE t AS (
        SELECT id, ARRAY[id] AS path FROM grid WHERE parent_id IS NULL
        UNION ALL
        SELECT g.id, t.path || g.id FROM grid g JOIN t ON g.parent_id = t.id
    )
"""


def assert_tree_exact(db_session, *roots: int) -> None:  # type: ignore[no-untyped-def]
    """Every stored path is the walked one, no current grid lies under a retired one, and the
    grid tree's subtrees and chains equal the walk's."""
    wrong = db_session.execute(
        text(
            WALKED + "SELECT g.id, g.path, t.path FROM grid g LEFT JOIN t ON t.id = g.id "
            "WHERE t.path IS DISTINCT FROM g.path LIMIT 5"
        )
    ).all()
    assert wrong == []
    orphans = db_session.scalar(
        text(
            "SELECT count(*) FROM grid c JOIN grid p ON p.id = c.parent_id "
            "WHERE c.valid_to IS NULL AND p.valid_to IS NOT NULL"
        )
    )
    assert orphans == 0
    for root in roots:
        for current in (False, True):
            walked = set(
                db_session.scalars(
                    text(
                        "WITH RECURSIVE s AS (SELECT id FROM grid WHERE id = :r UNION "
                        "SELECT c.id FROM grid c JOIN s ON c.parent_id = s.id"
                        + (" WHERE c.valid_to IS NULL)" if current else ")")
                        + " SELECT id FROM s"
                    ),
                    {"r": root},
                )
            )
            assert grid_tree.subtree_ids(db_session, [root], current=current) == walked
        up = db_session.scalars(
            text(
                "WITH RECURSIVE u AS (SELECT id, parent_id, level FROM grid WHERE id = :r "
                "UNION ALL SELECT p.id, p.parent_id, p.level FROM grid p JOIN u ON p.id = u.parent_id) "
                "SELECT id FROM u WHERE id <> :r ORDER BY level"
            ),
            {"r": root},
        ).all()
        assert [g["id"] for g in grid_tree.chain(db_session, root)] == up
        assert grid_tree.ancestor_ids(db_session, [root], include_self=False) == set(up)


def _feature(client, grid_id: int) -> dict:  # type: ignore[no-untyped-def]
    res = client.get(f"/api/grids/{grid_id}")
    assert res.status_code == 200, res.get_json()
    return res.get_json()


def _ok(res, status: int = 200) -> dict:  # type: ignore[no-untyped-def]
    assert res.status_code == status, res.get_json()
    return res.get_json()


def _micro_with_households(db_session) -> int:  # type: ignore[no-untyped-def]
    return db_session.scalar(
        text(
            "SELECT g.id FROM grid g WHERE g.level = 4 AND g.valid_to IS NULL "
            "AND g.household_count >= 40 AND NOT EXISTS "
            "(SELECT 1 FROM grid c WHERE c.parent_id = g.id) ORDER BY g.code LIMIT 1"
        )
    )


def test_every_kind_of_edit_keeps_the_path_of_every_grid(client, db_session) -> None:  # type: ignore[no-untyped-def]
    micro = _feature(client, _micro_with_households(db_session))
    mid, geom = micro["id"], shape(micro["geometry"])
    street = grid_tree.chain(db_session, mid)[0]["id"]
    minx, miny, maxx, maxy = geom.bounds
    xm = (minx + maxx) / 2

    # Draw two patches under the micro-grid.
    patches = []
    for name, (x0, x1) in (("西片区", (minx - 0.001, xm)), ("东片区", (xm, maxx + 0.001))):
        made = _ok(
            client.post(
                "/api/grids?clip_to_parent=true",
                json={
                    "type": "Feature",
                    "geometry": mapping(box(x0, miny - 0.001, x1, maxy + 0.001)),
                    "properties": {"parent_id": mid, "name": name},
                },
            ),
            201,
        )
        patches.append(made["features"][0]["id"])
    assert_tree_exact(db_session, mid, *patches)

    # Reshape the east patch: a little narrower.
    east = _feature(client, patches[1])
    e_shape = shape(east["geometry"])
    e_minx, e_miny, e_maxx, e_maxy = e_shape.bounds
    narrower = e_shape.intersection(box(e_minx, e_miny, e_maxx - (e_maxx - e_minx) / 4, e_maxy))
    _ok(
        client.patch(
            f"/api/grids/{patches[1]}",
            json={
                "type": "Feature",
                "geometry": mapping(narrower),
                "properties": {},
                "version": east["properties"]["version"],
            },
        )
    )
    assert_tree_exact(db_session, mid, *patches)

    # Split the micro-grid along the patches' shared edge: each patch moves under a part.
    line = mapping(LineString([(xm, miny - 0.001), (xm, maxy + 0.001)]))
    split = _ok(
        client.post(
            f"/api/grids/{mid}/split",
            json={"line": line, "version": _feature(client, mid)["properties"]["version"]},
        )
    )
    parts = [f["id"] for f in split["features"]]
    moved = dict(
        db_session.execute(
            text("SELECT id, path FROM grid WHERE id = ANY(:ids)"), {"ids": patches}
        ).all()
    )
    assert {tuple(p[-2:]) for p in moved.values()} == {
        (parts[0], patches[0]),
        (parts[1], patches[1]),
    }
    assert_tree_exact(db_session, street, mid, *parts, *patches)

    # Undo the split: the patches go back under the micro-grid.
    _ok(client.post(f"/api/grids/changes/{split['change']['id']}/undo"))
    assert_tree_exact(db_session, street, mid, *patches)

    # Merge the micro-grid's grid with a neighbour: the micro-grid moves under the merged grid
    # and its patches (two levels down) follow; undo moves them all back.
    g3 = grid_tree.chain(db_session, mid)[-1]["id"]
    other = db_session.scalar(
        text(
            "SELECT b.id FROM grid a JOIN grid b ON b.parent_id = a.parent_id AND b.id <> a.id "
            "AND b.valid_to IS NULL AND ST_Relate(a.geom, b.geom, 'F***1****') "
            "WHERE a.id = :g ORDER BY b.code LIMIT 1"
        ),
        {"g": g3},
    )
    versions = {str(g): _feature(client, g)["properties"]["version"] for g in (g3, other)}
    merged = _ok(
        client.post("/api/grids/merge", json={"ids": [g3, other], "versions": versions}), 201
    )
    whole = merged["features"][0]["id"]
    path = db_session.scalar(text("SELECT path FROM grid WHERE id = :i"), {"i": patches[0]})
    assert path[-3:] == [whole, mid, patches[0]]
    assert_tree_exact(db_session, street, whole, g3, other, mid, *patches)
    _ok(client.post(f"/api/grids/changes/{merged['change']['id']}/undo"))
    path = db_session.scalar(text("SELECT path FROM grid WHERE id = :i"), {"i": patches[0]})
    assert path[-3:] == [g3, mid, patches[0]]
    assert_tree_exact(db_session, street, whole, g3, other, mid, *patches)

    # Merge two neighbouring leaves, then undo the merge.
    a, b = db_session.execute(
        text(
            """
            SELECT a.id, b.id FROM grid a JOIN grid b
              ON a.parent_id = b.parent_id AND a.id < b.id AND a.level = 4
             AND a.valid_to IS NULL AND b.valid_to IS NULL
             AND ST_Relate(a.geom, b.geom, 'F***1****')
            WHERE NOT EXISTS (SELECT 1 FROM grid c WHERE c.parent_id IN (a.id, b.id))
            ORDER BY a.code LIMIT 1
            """
        )
    ).one()
    versions = {str(g): _feature(client, g)["properties"]["version"] for g in (a, b)}
    merged = _ok(client.post("/api/grids/merge", json={"ids": [a, b], "versions": versions}), 201)
    assert_tree_exact(db_session, street, a, b, merged["features"][0]["id"])
    _ok(client.post(f"/api/grids/changes/{merged['change']['id']}/undo"))
    assert_tree_exact(db_session, street, a, b)

    # Divide a level-3 grid, replacing its children; then undo the division.
    level3 = db_session.scalar(
        text(
            "SELECT g.id FROM grid g WHERE g.level = 3 AND g.valid_to IS NULL "
            "AND EXISTS (SELECT 1 FROM grid c WHERE c.parent_id = g.id AND c.valid_to IS NULL) "
            "AND NOT EXISTS (SELECT 1 FROM grid c JOIN grid d ON d.parent_id = c.id "
            "  WHERE c.parent_id = g.id AND c.valid_to IS NULL AND d.valid_to IS NULL) "
            "ORDER BY g.code LIMIT 1"
        )
    )
    divided = _ok(
        client.post(
            f"/api/grids/{level3}/partition",
            json={
                "k": 3,
                "seed": 2,
                "dry_run": False,
                "replace_children": True,
                "base_version": _feature(client, level3)["properties"]["version"],
            },
        ),
        201,
    )
    assert_tree_exact(db_session, level3, *divided["created"], *divided["retired"])
    _ok(client.post(f"/api/grids/changes/{divided['change']['id']}/undo"))
    assert_tree_exact(db_session, level3, *divided["retired"])

    # Delete a patch, then undo it.
    gone = _feature(client, patches[0])
    deleted = _ok(
        client.delete(
            f"/api/grids/{patches[0]}", headers={"If-Match": str(gone["properties"]["version"])}
        )
    )
    assert_tree_exact(db_session, mid, patches[0])
    _ok(client.post(f"/api/grids/changes/{deleted['change']['id']}/undo"))
    assert_tree_exact(db_session, mid, *patches)

    # Import a new street with a community and a grid below it (COPY, one level at a time).
    frame = gpd.GeoDataFrame(
        {
            "code": ["PATHT", "PATHT-01", "PATHT-01-01"],
            "name": ["路径测试街道", "路径测试社区", "路径测试网格"],
            "level": [1, 2, 3],
            "parent_code": ["", "PATHT", "PATHT-01"],
        },
        geometry=[
            box(101.0, 30.0, 101.02, 30.02),
            box(101.0, 30.0, 101.01, 30.01),
            box(101.0, 30.0, 101.005, 30.005),
        ],
        crs="EPSG:4326",
    )
    assert importer.import_grids(db_session, frame, source="grids.geojson") == 3
    ids = dict(
        db_session.execute(
            text("SELECT code, id FROM grid WHERE code LIKE 'PATHT%' AND valid_to IS NULL")
        ).all()
    )
    path = db_session.scalar(text("SELECT path FROM grid WHERE id = :i"), {"i": ids["PATHT-01-01"]})
    assert path == [ids["PATHT"], ids["PATHT-01"], ids["PATHT-01-01"]]
    assert_tree_exact(db_session, *ids.values())
