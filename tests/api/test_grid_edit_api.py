"""Grid editing through the API: every edit keeps the hierarchy whole, or is refused with a reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import shapely
from shapely import LineString, box
from shapely.geometry import mapping, shape
from sqlalchemy import text

from gis.crs import geodesic_area_m2
from gis.metric import polygon_area_m2

# --------------------------------------------------------------------------------------------
# reading the API and the database


def feature(client, grid_id: int) -> dict:  # type: ignore[no-untyped-def]
    res = client.get(f"/api/grids/{grid_id}")
    assert res.status_code == 200, res.get_json()
    return res.get_json()


def leaf_with_households(client, minimum: int = 40, index: int = 0) -> dict:  # type: ignore[no-untyped-def]
    leaves = [
        f
        for f in client.get("/api/grids?level=4").get_json()["features"]
        if f["properties"]["is_leaf"] and f["properties"]["household_count"] >= minimum
    ]
    return leaves[index]


def vertical_line(geom, frac: float = 0.5) -> dict:  # type: ignore[no-untyped-def]
    """A south-to-north line across the grid at ``frac`` of its width."""
    minx, miny, maxx, maxy = geom.bounds
    x = minx + frac * (maxx - minx)
    return mapping(LineString([(x, miny - 0.001), (x, maxy + 0.001)]))


def held(db_session, table: str, grid_ids) -> dict[int, set[int]]:  # type: ignore[no-untyped-def]
    rows = db_session.execute(
        text(f'SELECT grid_id, id FROM "{table}" WHERE grid_id = ANY(:ids)'),
        {"ids": list(grid_ids)},
    ).all()
    out: dict[int, set[int]] = {int(g): set() for g in grid_ids}
    for gid, hid in rows:
        out[gid].add(hid)
    return out


def same_area(a, b) -> bool:  # type: ignore[no-untyped-def]
    """Tell whether two shapes agree up to the API's 7-decimal rounding."""
    return shapely.symmetric_difference(a, b).area <= 1e-4 * b.area


def current(db_session, grid_id: int) -> bool:  # type: ignore[no-untyped-def]
    return db_session.execute(
        text("SELECT valid_to IS NULL FROM grid WHERE id = :id"), {"id": grid_id}
    ).scalar_one()


def add_case(db_session, point, grid_id: int, status: str, code: str) -> int:  # type: ignore[no-untyped-def]
    return db_session.execute(
        text(
            'INSERT INTO "case" (code, category, source, reported_x, reported_y, reported_crs, '
            "geom, grid_id, status) VALUES (:code, 'dispute', 'patrol', :x, :y, 'wgs84', "
            "ST_SetSRID(ST_MakePoint(:x, :y), 4326), :g, :status) RETURNING id"
        ),
        {"code": code, "x": point.x, "y": point.y, "g": grid_id, "status": status},
    ).scalar_one()


# --------------------------------------------------------------------------------------------
# split


def test_split_preview_then_save_moves_every_household_to_one_part(client, db_session) -> None:  # type: ignore[no-untyped-def]
    grid = leaf_with_households(client)
    gid, props = grid["id"], grid["properties"]
    geom = shape(grid["geometry"])
    before = held(db_session, "household", [gid])[gid]
    assert len(before) == props["household_count"] > 0
    body = {"line": vertical_line(geom), "version": props["version"]}

    preview = client.post(f"/api/grids/{gid}/split", json={**body, "dry_run": True})
    assert preview.status_code == 200, preview.get_json()
    shown = preview.get_json()
    assert shown["dry_run"] is True and shown["change"] is None
    assert len(shown["features"]) == 2
    counts = [f["properties"]["household_count"] for f in shown["features"]]
    assert sum(counts) == len(before) and min(counts) > 0
    assert [f["properties"]["moved_in"]["household"] for f in shown["features"]] == counts
    # Nothing was saved.
    assert current(db_session, gid)
    assert feature(client, gid)["properties"]["version"] == props["version"]

    saved = client.post(f"/api/grids/{gid}/split", json=body)
    assert saved.status_code == 200, saved.get_json()
    out = saved.get_json()
    parts = [f["id"] for f in out["features"]]
    # The same parts as the preview showed, with the codes that continue the parent's code.
    assert [f["properties"]["household_count"] for f in out["features"]] == counts
    codes = [f["properties"]["code"] for f in out["features"]]
    parent_code = feature(client, props["parent_id"])["properties"]["code"]
    assert all(c.startswith(parent_code) and len(c) == len(props["code"]) for c in codes)
    assert codes == sorted(codes) and codes[0] > max(
        c["code"]
        for c in feature(client, props["parent_id"])["properties"]["children"]
        if c["code"] not in codes
    )
    assert out["retired"][0]["id"] == gid and not current(db_session, gid)
    # Households: each of the old grid's in exactly one part, none lost, none added.
    after = held(db_session, "household", parts)
    assert set().union(*after.values()) == before
    assert sum(len(s) for s in after.values()) == len(before)
    assert [len(after[p]) for p in parts] == counts
    # The parts tile the old grid: areas (geodesic) add up — to a part in a million, as a cut's
    # new vertices sit on the old edges in degrees, millimetres off the geodesic between its ends.
    areas = db_session.execute(
        text("SELECT sum(area_m2) FROM grid WHERE id = ANY(:ids)"), {"ids": parts}
    ).scalar_one()
    assert areas == pytest.approx(geodesic_area_m2(geom), rel=1e-6)
    # No gap, no overlap, at full precision (the API rounds to 7 decimals).
    stored = db_session.execute(
        text(
            "SELECT ST_Area(ST_SymDifference(ST_Union(p.geom), o.geom)) / ST_Area(o.geom), "
            "sum(ST_Area(p.geom)) / ST_Area(o.geom) FROM grid p, grid o "
            "WHERE p.id = ANY(:ids) AND o.id = :old GROUP BY o.geom"
        ),
        {"ids": parts, "old": gid},
    ).one()
    assert stored[0] < 1e-9 and stored[1] == pytest.approx(1, rel=1e-9)


def test_split_moves_cameras_and_open_cases_but_not_closed_ones(client, db_session) -> None:  # type: ignore[no-untyped-def]
    grid = leaf_with_households(client, index=1)
    gid, geom = grid["id"], shape(grid["geometry"])
    minx, miny, maxx, maxy = geom.bounds
    east = geom.intersection(box((minx + maxx) / 2, miny, maxx, maxy)).representative_point()
    open_case = add_case(db_session, east, gid, "dispatched", "T-OPEN-1")
    closed_case = add_case(db_session, east, gid, "closed", "T-CLOSED-1")
    camera = db_session.execute(
        text(
            "INSERT INTO camera (code, geom, grid_id) VALUES ('T-CAM-1', "
            "ST_SetSRID(ST_MakePoint(:x, :y), 4326), :g) RETURNING id"
        ),
        {"x": east.x, "y": east.y, "g": gid},
    ).scalar_one()
    res = client.post(
        f"/api/grids/{gid}/split",
        json={"line": vertical_line(geom), "version": grid["properties"]["version"]},
    )
    assert res.status_code == 200, res.get_json()
    west_id, east_id = (f["id"] for f in res.get_json()["features"])
    cases = held(db_session, "case", [gid, west_id, east_id])
    assert cases[east_id] == {open_case}
    assert cases[gid] == {closed_case}  # a closed case stays with the grid it was handled in
    assert held(db_session, "camera", [east_id])[east_id] >= {camera}


def test_a_line_that_does_not_cross_is_refused_with_its_place(client) -> None:  # type: ignore[no-untyped-def]
    grid = leaf_with_households(client)
    geom = shape(grid["geometry"])
    p = geom.representative_point()
    stub = mapping(LineString([(p.x, geom.bounds[1] - 0.001), (p.x, p.y)]))
    res = client.post(
        f"/api/grids/{grid['id']}/split",
        json={"line": stub, "version": grid["properties"]["version"]},
    )
    assert res.status_code == 422
    err = res.get_json()["error"]
    assert err["code"] == "line_does_not_cross"
    assert "stops inside" in err["message"]
    assert err["location"]["type"] == "Point"
    assert err["location"]["coordinates"] == pytest.approx([p.x, p.y])


def test_edits_need_the_current_version(client) -> None:  # type: ignore[no-untyped-def]
    grid = leaf_with_households(client)
    gid, version = grid["id"], grid["properties"]["version"]
    line = vertical_line(shape(grid["geometry"]))
    missing = client.post(f"/api/grids/{gid}/split", json={"line": line})
    assert missing.status_code == 428
    assert missing.get_json()["error"]["current_version"] == version
    renamed = client.patch(
        f"/api/grids/{gid}",
        json={"type": "Feature", "geometry": None, "properties": {"name": "新名称"}},
        headers={"If-Match": f'"{version}"'},
    )
    assert renamed.status_code == 200, renamed.get_json()
    assert renamed.headers["ETag"] == f'"{version + 1}"'
    stale = client.post(f"/api/grids/{gid}/split", json={"line": line, "version": version})
    assert stale.status_code == 409
    err = stale.get_json()["error"]
    assert err["code"] == "stale_version" and err["current_version"] == version + 1
    assert feature(client, gid)["properties"]["name"] == "新名称"


def test_a_retired_grid_cannot_be_edited(client) -> None:  # type: ignore[no-untyped-def]
    grid = leaf_with_households(client)
    gid, version = grid["id"], grid["properties"]["version"]
    line = vertical_line(shape(grid["geometry"]))
    parts = client.post(f"/api/grids/{gid}/split", json={"line": line, "version": version})
    again = client.patch(f"/api/grids/{gid}", json={"properties": {"name": "x"}, "version": 2})
    assert again.status_code == 409
    err = again.get_json()["error"]
    assert err["code"] == "grid_retired"
    assert err["replaced_by"] == [f["id"] for f in parts.get_json()["features"]]


def test_children_follow_their_part_and_a_straddling_child_refuses(client, db_session) -> None:  # type: ignore[no-untyped-def]
    micro = leaf_with_households(client)
    mid, geom = micro["id"], shape(micro["geometry"])
    minx, miny, maxx, maxy = geom.bounds
    xm = (minx + maxx) / 2
    made = []
    for name, (x0, x1) in (("西片区", (minx - 0.001, xm)), ("东片区", (xm, maxx + 0.001))):
        res = client.post(
            "/api/grids?clip_to_parent=true",
            json={
                "type": "Feature",
                "geometry": mapping(box(x0, miny - 0.001, x1, maxy + 0.001)),
                "properties": {"parent_id": mid, "name": name},
            },
        )
        assert res.status_code == 201, res.get_json()
        made.append(res.get_json()["features"][0])
    west, east = made
    assert west["properties"]["level"] == 5
    assert west["properties"]["code"].startswith(micro["properties"]["code"])
    total = micro["properties"]["household_count"]
    assert west["properties"]["household_count"] + east["properties"]["household_count"] == total
    version = feature(client, mid)["properties"]["version"]

    across = client.post(
        f"/api/grids/{mid}/split", json={"line": vertical_line(geom, 0.7), "version": version}
    )
    assert across.status_code == 422
    err = across.get_json()["error"]
    assert err["code"] == "child_straddles_cut"
    assert err["children"] == [east["properties"]["code"]]
    assert east["properties"]["code"] in err["message"]

    along = client.post(
        f"/api/grids/{mid}/split", json={"line": vertical_line(geom, 0.5), "version": version}
    )
    assert along.status_code == 200, along.get_json()
    parts = along.get_json()["features"]
    parent_of = dict(
        db_session.execute(
            text("SELECT id, parent_id FROM grid WHERE id = ANY(:ids)"),
            {"ids": [west["id"], east["id"]]},
        ).all()
    )
    assert parent_of == {west["id"]: parts[0]["id"], east["id"]: parts[1]["id"]}
    assert [p["properties"]["household_count"] for p in parts] == [
        west["properties"]["household_count"],
        east["properties"]["household_count"],
    ]


# --------------------------------------------------------------------------------------------
# merge and undo


def adjacent_leaves(db_session) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    row = db_session.execute(
        text(
            """
            SELECT a.id, b.id FROM grid a JOIN grid b
              ON a.parent_id = b.parent_id AND a.id < b.id AND a.level = 4
             AND a.valid_to IS NULL AND b.valid_to IS NULL
             AND ST_Relate(a.geom, b.geom, 'F***1****')
            WHERE a.household_count > 0 AND b.household_count > 0
              AND NOT EXISTS (SELECT 1 FROM grid c WHERE c.parent_id IN (a.id, b.id))
            ORDER BY a.code LIMIT 1
            """
        )
    ).one()
    return int(row[0]), int(row[1])


def test_merge_of_neighbours_then_undo_puts_everything_back(client, db_session) -> None:  # type: ignore[no-untyped-def]
    a, b = adjacent_leaves(db_session)
    fa, fb = feature(client, a), feature(client, b)
    before = held(db_session, "household", [a, b])
    res = client.post(
        "/api/grids/merge",
        json={
            "ids": [a, b],
            "versions": {str(a): fa["properties"]["version"], str(b): fb["properties"]["version"]},
        },
    )
    assert res.status_code == 201, res.get_json()
    out = res.get_json()
    (merged,) = out["features"]
    assert merged["properties"]["household_count"] == len(before[a]) + len(before[b])
    assert held(db_session, "household", [merged["id"]])[merged["id"]] == before[a] | before[b]
    assert shape(merged["geometry"]).geom_type == "MultiPolygon"
    assert len(shape(merged["geometry"]).geoms) == 1
    assert out["change"]["actor"] == "test-admin"  # the signed-in account
    assert {r["id"] for r in out["retired"]} == {a, b}

    undo = client.post(f"/api/grids/changes/{out['change']['id']}/undo")
    assert undo.status_code == 200, undo.get_json()
    restored = undo.get_json()
    assert sorted(f["id"] for f in restored["features"]) == [a, b]
    assert {f["properties"]["code"] for f in restored["features"]} == {
        fa["properties"]["code"],
        fb["properties"]["code"],
    }
    assert held(db_session, "household", [a, b]) == before
    assert current(db_session, a) and current(db_session, b)
    assert not current(db_session, merged["id"])
    again = client.post(f"/api/grids/changes/{out['change']['id']}/undo")
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "undo_refused"


def test_merge_of_grids_that_do_not_touch_is_refused(client, db_session) -> None:  # type: ignore[no-untyped-def]
    a, c = db_session.execute(
        text(
            """
            SELECT a.id, b.id FROM grid a JOIN grid b
              ON a.parent_id = b.parent_id AND a.id < b.id AND a.level = 4
             AND a.valid_to IS NULL AND b.valid_to IS NULL AND NOT ST_Intersects(a.geom, b.geom)
            ORDER BY a.code LIMIT 1
            """
        )
    ).one()
    versions = [
        feature(client, a)["properties"]["version"],
        feature(client, c)["properties"]["version"],
    ]
    res = client.post("/api/grids/merge", json={"ids": [a, c], "versions": versions})
    assert res.status_code == 422
    err = res.get_json()["error"]
    assert err["code"] == "merge_refused"
    assert "apart" in err["message"]
    assert err["location"] is not None


def test_merge_with_a_stale_version_is_refused(client, db_session) -> None:  # type: ignore[no-untyped-def]
    a, b = adjacent_leaves(db_session)
    res = client.post("/api/grids/merge", json={"ids": [a, b], "versions": [1, 99]})
    assert res.status_code == 409
    assert res.get_json()["error"]["grid_id"] == b


def test_split_undo_brings_back_the_old_grid_and_its_households(client, db_session) -> None:  # type: ignore[no-untyped-def]
    grid = leaf_with_households(client)
    gid, props = grid["id"], grid["properties"]
    before = held(db_session, "household", [gid])
    res = client.post(
        f"/api/grids/{gid}/split",
        json={"line": vertical_line(shape(grid["geometry"])), "version": props["version"]},
    )
    change = res.get_json()["change"]["id"]
    undo = client.post(f"/api/grids/changes/{change}/undo")
    assert undo.status_code == 200, undo.get_json()
    (back,) = undo.get_json()["features"]
    assert back["id"] == gid and back["properties"]["code"] == props["code"]
    assert back["properties"]["household_count"] == props["household_count"]
    assert held(db_session, "household", [gid]) == before


def test_undo_is_refused_once_a_result_changed(client) -> None:  # type: ignore[no-untyped-def]
    grid = leaf_with_households(client)
    res = client.post(
        f"/api/grids/{grid['id']}/split",
        json={
            "line": vertical_line(shape(grid["geometry"])),
            "version": grid["properties"]["version"],
        },
    )
    out = res.get_json()
    part = out["features"][0]
    client.patch(
        f"/api/grids/{part['id']}",
        json={"properties": {"name": "改过名"}, "version": part["properties"]["version"]},
    )
    undo = client.post(f"/api/grids/changes/{out['change']['id']}/undo")
    assert undo.status_code == 409
    err = undo.get_json()["error"]
    assert err["code"] == "undo_refused" and err["grid_id"] == part["id"]


# --------------------------------------------------------------------------------------------
# reshape, create, delete, integrity, history


def test_shrinking_leaves_a_gap_the_report_shows_and_a_new_grid_fills(client, db_session) -> None:  # type: ignore[no-untyped-def]
    grid = leaf_with_households(client)
    gid, props = grid["id"], grid["properties"]
    geom = shape(grid["geometry"])
    minx, miny, maxx, maxy = geom.bounds
    kept = geom.intersection(box(minx - 1, miny - 1, minx + 0.6 * (maxx - minx), maxy + 1))
    gap = geom.difference(kept)
    res = client.patch(
        f"/api/grids/{gid}",
        json={"type": "Feature", "geometry": mapping(kept), "properties": {}},
        headers={"If-Match": str(props["version"])},
    )
    assert res.status_code == 200, res.get_json()
    out = res.get_json()
    lost = out["moved_to_parent"].get("household", 0)
    assert lost > 0
    assert out["features"][0]["properties"]["household_count"] == props["household_count"] - lost

    report = client.get(f"/api/grids/{props['parent_id']}/integrity").get_json()
    assert report["summary"]["gap_count"] == 1
    assert report["summary"]["gap_area_m2"] == pytest.approx(polygon_area_m2(gap), rel=1e-6)
    assert report["summary"]["held_in_gaps"]["household"] == lost
    (issue,) = report["features"]
    assert issue["properties"]["kind"] == "gap"

    # Draw roughly over the old grid: fitted to the neighbours, it fills the gap exactly.
    filled = client.post(
        "/api/grids?fit_to_neighbours=1&clip_to_parent=1",
        json={
            "type": "Feature",
            "geometry": mapping(geom.buffer(0.0002)),
            "properties": {"parent": props["parent_id"], "name": "新划微网格"},
        },
    )
    assert filled.status_code == 201, filled.get_json()
    new = filled.get_json()["features"][0]
    assert new["properties"]["household_count"] == lost
    assert shapely.symmetric_difference(shape(new["geometry"]), gap).area < 1e-6 * gap.area
    clean = client.get(f"/api/grids/{props['parent_id']}/integrity").get_json()["summary"]
    assert clean["gap_count"] == 0 and clean["overlap_count"] == 0


def test_boundary_errors_come_back_with_reason_and_place(client) -> None:  # type: ignore[no-untyped-def]
    grid = leaf_with_households(client)
    gid, version = grid["id"], grid["properties"]["version"]
    minx, miny, maxx, maxy = shape(grid["geometry"]).bounds
    bow = {
        "type": "Polygon",
        "coordinates": [[[minx, miny], [maxx, maxy], [maxx, miny], [minx, maxy], [minx, miny]]],
    }
    res = client.patch(f"/api/grids/{gid}", json={"geometry": bow, "version": version})
    assert res.status_code == 422
    err = res.get_json()["error"]
    assert err["code"] == "self_intersection"
    assert err["location"]["coordinates"] == pytest.approx([(minx + maxx) / 2, (miny + maxy) / 2])

    grown = mapping(shape(grid["geometry"]).buffer(0.0003))
    over = client.patch(f"/api/grids/{gid}", json={"geometry": grown, "version": version})
    assert over.status_code == 422
    assert over.get_json()["error"]["code"] in ("overlaps_sibling", "outside_parent")

    fitted = client.patch(
        f"/api/grids/{gid}?fit_to_neighbours=true&clip_to_parent=true",
        json={"geometry": grown, "version": version},
    )
    assert fitted.status_code == 200, fitted.get_json()
    summary = client.get(f"/api/grids/{grid['properties']['parent_id']}/integrity").get_json()[
        "summary"
    ]
    assert summary["overlap_count"] == 0 and summary["outside_count"] == 0


def test_delete_a_leaf_then_undo(client, db_session) -> None:  # type: ignore[no-untyped-def]
    grid = leaf_with_households(client)
    gid, props = grid["id"], grid["properties"]
    before = held(db_session, "household", [gid])[gid]
    refused = client.delete(
        f"/api/grids/{props['parent_id']}",
        headers={"If-Match": str(feature(client, props["parent_id"])["properties"]["version"])},
    )
    assert refused.status_code == 422 and "child grid" in refused.get_json()["error"]["message"]
    res = client.delete(f"/api/grids/{gid}", headers={"If-Match": str(props["version"])})
    assert res.status_code == 200, res.get_json()
    assert res.get_json()["moved_to_parent"]["household"] == len(before)
    assert before <= held(db_session, "household", [props["parent_id"]])[props["parent_id"]]
    undo = client.post(f"/api/grids/changes/{res.get_json()['change']['id']}/undo")
    assert undo.status_code == 200, undo.get_json()
    assert held(db_session, "household", [gid])[gid] == before


def test_history_gives_the_boundary_as_of_a_date(client) -> None:  # type: ignore[no-untyped-def]
    grid = leaf_with_households(client)
    gid, props = grid["id"], grid["properties"]
    old = shape(grid["geometry"])
    minx, miny, maxx, maxy = old.bounds
    smaller = old.intersection(box(minx - 1, miny - 1, (minx + maxx) / 2, maxy + 1))
    res = client.patch(
        f"/api/grids/{gid}",
        json={"geometry": mapping(smaller), "version": props["version"]},
    )
    assert res.status_code == 200, res.get_json()
    hist = client.get(f"/api/grids/{gid}/history").get_json()
    assert [f["properties"]["version"] for f in hist["features"]] == [
        props["version"],
        props["version"] + 1,
    ]
    (change,) = [c for c in hist["changes"] if c["kind"] == "update"]
    assert change["actor"] == "test-admin" and change["kind_name"] == "修改"
    edited_at = datetime.fromisoformat(hist["features"][0]["properties"]["valid_to"])
    then = client.get(
        f"/api/grids/{gid}/history?at={(edited_at - timedelta(seconds=1)).isoformat()}"
    ).get_json()
    assert same_area(shape(then["geometry"]), old)
    now = client.get(f"/api/grids/{gid}/history?at={edited_at.isoformat()}").get_json()
    assert same_area(shape(now["geometry"]), smaller)
    gone = client.get(f"/api/grids/{gid}/history?at=1999-01-01")
    assert gone.status_code == 404
    listed = client.get(f"/api/grids/changes?grid={gid}").get_json()["changes"]
    assert listed[0]["id"] == change["id"]


def test_history_at_without_an_offset_means_china_time(client) -> None:  # type: ignore[no-untyped-def]
    """`at=` as a date means the end of that day in China; a date-time without an offset is a
    China time (a server in UTC must not read it eight hours off)."""
    grid = leaf_with_households(client)
    gid, props = grid["id"], grid["properties"]
    old = shape(grid["geometry"])
    minx, miny, maxx, maxy = old.bounds
    smaller = old.intersection(box(minx - 1, miny - 1, (minx + maxx) / 2, maxy + 1))
    res = client.patch(
        f"/api/grids/{gid}", json={"geometry": mapping(smaller), "version": props["version"]}
    )
    assert res.status_code == 200, res.get_json()
    hist = client.get(f"/api/grids/{gid}/history").get_json()
    edited_at = datetime.fromisoformat(hist["features"][0]["properties"]["valid_to"])
    china = edited_at.astimezone(ZoneInfo("Asia/Shanghai")).replace(tzinfo=None)

    def shape_at(at: str):  # type: ignore[no-untyped-def]
        res = client.get(f"/api/grids/{gid}/history", query_string={"at": at})
        assert res.status_code == 200, (at, res.get_json())
        return shape(res.get_json()["geometry"])

    assert same_area(shape_at((china - timedelta(seconds=1)).isoformat()), old)
    assert same_area(shape_at((china + timedelta(seconds=1)).isoformat()), smaller)
    # The same wall-clock reading taken as UTC would be eight hours later: the new boundary.
    utc_naive = edited_at.astimezone(UTC).replace(tzinfo=None)
    assert same_area(shape_at((utc_naive - timedelta(seconds=1)).isoformat() + "+00:00"), old)
    # A China date: the boundary in force at the end of that day.
    assert same_area(shape_at(china.date().isoformat()), smaller)
    assert same_area(
        shape_at(china.strftime("%Y-%m-%d %H:%M:%S")), smaller if china.microsecond == 0 else old
    )
    # As the pages show times (YYYY-MM-DD HH:mm), a minute later.
    assert same_area(shape_at((china + timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M")), smaller)


def test_bad_requests_name_the_parameter(client) -> None:  # type: ignore[no-untyped-def]
    grid = leaf_with_households(client)
    res = client.post(f"/api/grids/{grid['id']}/split", json={"version": 1})
    assert res.status_code == 400 and res.get_json()["error"]["param"] == "line"
    res = client.post("/api/grids/merge", json={"ids": "1,2"})
    assert res.status_code == 400 and res.get_json()["error"]["param"] == "ids"
    res = client.get(f"/api/grids/{grid['id']}/history?at=yesterday")
    assert res.status_code == 400 and res.get_json()["error"]["param"] == "at"
    res = client.post("/api/grids", json={"type": "Feature", "geometry": None, "properties": {}})
    assert res.status_code == 400
    res = client.patch(f"/api/grids/{grid['id']}", json={"version": 1})
    assert res.status_code == 422 and "nothing to change" in res.get_json()["error"]["message"]


def test_a_leaf_has_nothing_to_cover(client) -> None:  # type: ignore[no-untyped-def]
    grid = leaf_with_households(client)
    report = client.get(f"/api/grids/{grid['id']}/integrity").get_json()
    assert report["summary"]["ok"] is True and report["summary"]["children"] == 0
    assert report["summary"]["held"]["household"] == grid["properties"]["household_count"]


def test_undo_that_would_overlap_a_newer_neighbour_is_refused(client, db_session) -> None:  # type: ignore[no-untyped-def]
    grid = leaf_with_households(client)
    gid, props = grid["id"], grid["properties"]
    geom = shape(grid["geometry"])
    before = held(db_session, "household", [gid])[gid]
    minx, miny, maxx, maxy = geom.bounds
    kept = geom.intersection(box(minx - 1, miny - 1, minx + 0.5 * (maxx - minx), maxy + 1))
    shrink = client.patch(
        f"/api/grids/{gid}", json={"geometry": mapping(kept), "version": props["version"]}
    )
    assert shrink.status_code == 200, shrink.get_json()
    fill = client.post(
        "/api/grids?fit_to_neighbours=1&clip_to_parent=1",
        json={
            "type": "Feature",
            "geometry": mapping(geom),
            "properties": {"parent_id": props["parent_id"], "name": "后来的网格"},
        },
    )
    assert fill.status_code == 201, fill.get_json()
    undo = client.post(f"/api/grids/changes/{shrink.get_json()['change']['id']}/undo")
    assert undo.status_code == 409
    err = undo.get_json()["error"]
    assert err["code"] == "undo_refused" and "overlaps" in err["message"]
    assert err["location"] is not None
    # Undo the newer grid first; then the shrink can be undone, and every household is back.
    assert (
        client.post(f"/api/grids/changes/{fill.get_json()['change']['id']}/undo").status_code == 200
    )
    again = client.post(f"/api/grids/changes/{shrink.get_json()['change']['id']}/undo")
    assert again.status_code == 200, again.get_json()
    assert held(db_session, "household", [gid])[gid] == before
