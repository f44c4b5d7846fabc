"""Locating points: PostGIS single locate and numpy batch locate agree with an independent STRtree
computation on the sample, on every vertex, in holes and outside, and in every accepted CRS."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from geoalchemy2.shape import from_shape, to_shape
from pyproj import Transformer
from shapely import STRtree
from sqlalchemy import select, update

from app.models import Grid, GridAssignment, Worker
from app.services import overrides
from app.services.locate import (
    NEAREST_TOLERANCE_M,
    locate_batch,
    locate_point,
    neighbour_owners,
)
from gis.crs import from_wgs84, geodesic_area_m2, parse_crs

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample_boundaries" / "grids.geojson"
TO_GK = Transformer.from_crs("EPSG:4326", "EPSG:4548", always_xy=True)


@pytest.fixture(scope="module")
def truth():  # type: ignore[no-untyped-def]
    """The sample's leaf grids read straight from the GeoJSON file, with a plain STRtree."""
    grids = gpd.read_file(SAMPLE)
    leaf = grids[~grids["code"].isin(grids["parent_code"].dropna())].reset_index(drop=True)
    metric = leaf.to_crs("EPSG:4548")
    return {
        "codes": np.asarray(leaf["code"]),
        "tree": STRtree(list(leaf.geometry.values)),
        "metric": STRtree(list(metric.geometry.values)),
        "shapes": list(leaf.geometry.values),
        "metric_shapes": list(metric.geometry.values),
    }


def truth_codes(truth, lon: float, lat: float) -> list[str]:  # type: ignore[no-untyped-def]
    hits = truth["tree"].query(shapely.Point(lon, lat), predicate="intersects")
    return sorted(truth["codes"][hits])


def metric_distance(truth, lon: float, lat: float) -> float:  # type: ignore[no-untyped-def]
    x, y = TO_GK.transform(lon, lat)
    p = shapely.Point(x, y)
    i = truth["metric"].nearest(p)
    return float(truth["metric_shapes"][i].distance(p))


def random_points(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Points over the street's and the village's boxes, with a margin outside both."""
    grids = gpd.read_file(SAMPLE)
    rng = np.random.default_rng(seed)
    lon, lat = [], []
    for code, share in (("340188001", 0.8), ("340188101", 0.2)):
        x0, y0, x1, y1 = grids.loc[grids["code"] == code].total_bounds
        k = int(n * share)
        lon.append(rng.uniform(x0 - 0.001, x1 + 0.001, k))
        lat.append(rng.uniform(y0 - 0.001, y1 + 0.001, k))
    return np.concatenate(lon), np.concatenate(lat)


def test_random_points_agree_with_strtree(db_session, truth) -> None:  # type: ignore[no-untyped-def]
    lon, lat = random_points(2000, 5)
    batch = locate_batch(db_session, lon, lat)
    seen = set()
    for i in range(lon.size):
        res = locate_point(db_session, lon[i], lat[i])
        seen.add(res["method"])
        codes = truth_codes(truth, lon[i], lat[i])
        if codes:
            assert res["method"] in ("inside", "boundary")
            assert res["grid"]["code"] == codes[0]
            assert res["chain"][-1] == res["grid"] and res["chain"][0]["level"] == 1
            assert res["owner"] is not None
        else:
            d = metric_distance(truth, lon[i], lat[i])
            if res["method"] == "nearest":
                assert d <= NEAREST_TOLERANCE_M + 0.05
                j = STRtree(truth["metric_shapes"]).query(
                    shapely.Point(TO_GK.transform(lon[i], lat[i])), "dwithin", d + 0.05
                )
                assert res["grid"]["code"] in set(truth["codes"][j])
            else:
                assert res["method"] == "unassigned" and d > NEAREST_TOLERANCE_M - 0.05
                assert res["grid"] is None and res["owner"] is None
                assert res["fallback"] == [{"kind": "command_centre", "name": "指挥中心"}]
        rec = batch.record(i)
        assert rec["method"] == res["method"], (lon[i], lat[i])
        assert (rec["grid"] or {}).get("id") == (res["grid"] or {}).get("id")
        assert rec["owner"] == res["owner"]
    assert {"inside", "nearest", "unassigned"} <= seen


def test_every_vertex_goes_to_the_smallest_code_every_time(db_session, truth) -> None:  # type: ignore[no-untyped-def]
    xy = np.unique(shapely.get_coordinates(truth["shapes"]), axis=0)
    batch = locate_batch(db_session, xy[:, 0], xy[:, 1])
    shared = 0
    for i, (lon, lat) in enumerate(xy):
        codes = truth_codes(truth, lon, lat)
        shared += len(codes) > 1
        res = locate_point(db_session, lon, lat)
        assert res["method"] == "boundary"
        assert res["grid"]["code"] == codes[0]
        assert batch.record(i)["grid"]["code"] == codes[0]
        assert batch.record(i)["method"] == "boundary"
    assert shared > 100
    # ... and the same answer again.
    again = [locate_point(db_session, lon, lat)["grid"]["code"] for lon, lat in xy[:200]]
    assert again == [batch.record(i)["grid"]["code"] for i in range(200)]


def interior_points(truth, n: int, seed: int, clearance_m: float = 3.0) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Random points at least ``clearance_m`` inside one leaf grid (CRS round trips move points
    by millimetres; a point that close to an edge may honestly change sides)."""
    lon, lat = random_points(n * 4, seed)
    keep = []
    for x, y in zip(lon, lat, strict=True):
        if len(truth_codes(truth, x, y)) != 1:
            continue
        mx, my = TO_GK.transform(x, y)
        p = shapely.Point(mx, my)
        i = truth["metric"].query(p, predicate="intersects")[0]
        if truth["metric_shapes"][i].boundary.distance(p) > clearance_m:
            keep.append((x, y))
        if len(keep) == n:
            break
    assert len(keep) == n
    return np.asarray(keep)


@pytest.mark.parametrize(
    "crs", ["gcj02", "bd09", "cgcs2000", "EPSG:4548", "EPSG:4527", "EPSG:4498", "EPSG:4490"]
)
def test_every_crs_gives_the_same_micro_grid(db_session, truth, crs: str) -> None:  # type: ignore[no-untyped-def]
    pts = interior_points(truth, 60, 9)
    x, y = from_wgs84(pts[:, 0], pts[:, 1], crs)
    batch = locate_batch(db_session, x, y, crs)
    moved = 0.0
    for i in range(len(pts)):
        wgs = locate_point(db_session, pts[i, 0], pts[i, 1])
        other = locate_point(db_session, float(x[i]), float(y[i]), crs)
        assert other["grid"]["id"] == wgs["grid"]["id"]
        assert batch.record(i)["grid"]["id"] == wgs["grid"]["id"]
        moved = max(moved, abs(other["point"]["lon"] - pts[i, 0]) * 1e5)
        assert other["crs"] == parse_crs(crs).name
    assert moved < 0.5  # back in WGS84 within half a metre


def test_offset_coordinates_taken_as_wgs84_would_misroute(db_session, truth) -> None:  # type: ignore[no-untyped-def]
    """Why the CRS matters: GCJ-02 read as WGS84 lands in another grid for most points."""
    pts = interior_points(truth, 40, 21)
    gx, gy = from_wgs84(pts[:, 0], pts[:, 1], "gcj02")
    wrong = sum(
        locate_point(db_session, gx[i], gy[i])["grid"] != locate_point(db_session, *pts[i])["grid"]
        for i in range(len(pts))
    )
    assert wrong > len(pts) // 2


# --- a synthetic town with a hole and a gap ---------------------------------------------------
def _grid(session, code: str, level: int, geom, parent: Grid | None) -> Grid:  # type: ignore[no-untyped-def]
    mp = geom if geom.geom_type == "MultiPolygon" else shapely.MultiPolygon([geom])
    g = Grid(
        code=code,
        name=f"测试{code}",
        level=level,
        parent_id=parent.id if parent else None,
        geom=from_shape(mp, srid=4326),
        area_m2=geodesic_area_m2(mp),
    )
    session.add(g)
    session.flush()
    return g


def _person(session, grid: Grid, role: str, name: str, on_duty: bool = True) -> Worker:  # type: ignore[no-untyped-def]
    w = Worker(code=f"T-{name}", name=name, phone="13800000000", on_duty=on_duty)
    session.add(w)
    session.flush()
    session.add(GridAssignment(worker_id=w.id, grid_id=grid.id, role=role))
    session.flush()
    return w


@pytest.fixture()
def town(db_session):  # type: ignore[no-untyped-def]
    s = db_session
    box = shapely.box(118.500, 30.500, 118.510, 30.510)
    top = _grid(s, "T9000", 1, box, None)
    community = _grid(s, "T9000A", 2, box, top)
    grid = _grid(s, "T9000A1", 3, box, community)
    hole = shapely.box(118.501, 30.503, 118.504, 30.507)
    west = _grid(
        s, "T9000A1X1", 4, shapely.box(118.500, 30.500, 118.505, 30.510).difference(hole), grid
    )
    east = _grid(s, "T9000A1X2", 4, shapely.box(118.505, 30.500, 118.510, 30.508), grid)
    people = {
        "town_chief": _person(s, top, "grid_chief", "镇长甲"),
        "grid_chief": _person(s, grid, "grid_chief", "网格长乙"),
        "grid_worker": _person(s, grid, "worker_full", "网格员丙"),
        "west_worker": _person(s, west, "worker_full", "网格员丁"),
        "west_chief": _person(s, west, "micro_chief", "微网格长戊"),
        "east_worker": _person(s, east, "worker_full", "网格员己", on_duty=False),
        "east_chief": _person(s, east, "micro_chief", "微网格长庚"),
    }
    return {"top": top, "grid": grid, "west": west, "east": east, **people}


@pytest.mark.parametrize(
    "lon,lat,method,where",
    [
        (118.5025, 30.5050, "ancestor", "grid"),  # middle of the hole, 140 m from its edges
        (118.5011, 30.5050, "nearest", "west"),  # in the hole, 10 m from its edge
        (118.5075, 30.5090, "ancestor", "grid"),  # in the gap north of the east micro-grid
        (118.5075, 30.5082, "nearest", "east"),  # in the gap, 22 m from the east micro-grid
        (118.5102, 30.5040, "nearest", "east"),  # 19 m outside the town
        (118.5300, 30.5300, "unassigned", None),  # far outside
        (118.5050, 30.5020, "boundary", "west"),  # the shared edge: the smaller code
        (118.5100, 30.5000, "boundary", "east"),  # an outer corner
        (118.5030, 30.5010, "inside", "west"),
    ],
)
def test_holes_gaps_and_outside_follow_the_fallback(
    db_session, town, lon, lat, method, where
) -> None:  # type: ignore[no-untyped-def]
    res = locate_point(db_session, lon, lat)
    assert res["method"] == method
    if where is None:
        assert res["chain"] == [] and res["owner"] is None
        assert res["fallback"] == [{"kind": "command_centre", "name": "指挥中心"}]
    elif method == "ancestor":
        assert res["grid"] is None and res["chain"][-1]["id"] == town[where].id
        assert res["owner"]["worker_id"] == town["grid_worker"].id
    else:
        assert res["grid"]["id"] == town[where].id
    batch = locate_batch(db_session, [lon], [lat])
    rec = batch.record(0)
    assert rec["method"] == method
    assert rec["owner"] == res["owner"]
    if method == "ancestor":
        assert rec["ancestor"]["id"] == town[where].id


def test_owner_and_fallback_ladder(db_session, town) -> None:  # type: ignore[no-untyped-def]
    west = locate_point(db_session, 118.5030, 30.5010)
    assert west["owner"]["worker_id"] == town["west_worker"].id
    assert west["owner"]["role_name"] == "专职网格员"
    ladder = [p.get("worker_id") for p in west["fallback"]]
    assert ladder == [town["west_chief"].id, town["grid_chief"].id, town["town_chief"].id, None]
    assert west["fallback"][-1] == {"kind": "command_centre", "name": "指挥中心"}
    # The east micro-grid's worker is off duty: its micro-grid chief takes the case.
    east = locate_point(db_session, 118.5080, 30.5010)
    assert east["owner"]["worker_id"] == town["east_chief"].id
    assert [p.get("worker_id") for p in east["fallback"]] == [
        town["grid_chief"].id,
        town["town_chief"].id,
        None,
    ]
    # Back on duty: the worker again.
    db_session.execute(
        update(Worker).where(Worker.id == town["east_worker"].id).values(on_duty=True)
    )
    again = locate_point(db_session, 118.5080, 30.5010)
    assert again["owner"]["worker_id"] == town["east_worker"].id


def test_village_patch_is_owned_by_its_micro_grid_worker(db_session) -> None:  # type: ignore[no-untyped-def]
    patch = db_session.scalar(select(Grid).where(Grid.code == "3401881012010101"))
    p = to_shape(patch.geom).representative_point()
    res = locate_point(db_session, p.x, p.y)
    assert res["grid"]["code"] == "3401881012010101" and res["grid"]["level"] == 5
    assert [g["level"] for g in res["chain"]] == [1, 2, 4, 5]
    assert res["owner"]["role"] == "worker_part"
    assert res["owner"]["grid_id"] == res["chain"][2]["id"]  # the micro-grid's part-time worker
    assert [p["role"] for p in res["fallback"][:2]] == ["micro_chief", "grid_chief"]


def test_override_area_takes_precedence_for_its_category(db_session, town) -> None:  # type: ignore[no-untyped-def]
    from app.models import Department

    squad = db_session.scalar(select(Department).where(Department.code == "CG-AH"))
    road = overrides.create_area(
        db_session,
        {
            "type": "Feature",
            "geometry": shapely.geometry.mapping(shapely.box(118.502, 30.500, 118.508, 30.5015)),
            "properties": {"name": "测试主干道", "category": "占道经营", "department_id": squad.id},
        },
    )
    stall = overrides.create_area(
        db_session,
        {
            "type": "Feature",
            "geometry": shapely.geometry.mapping(shapely.box(118.5060, 30.5005, 118.5070, 30.5012)),
            "properties": {"name": "测试市场", "category": "占道经营", "worker_code": "T-网格员丙"},
        },
    )
    plain = locate_point(db_session, 118.5030, 30.5010)
    on_road = locate_point(db_session, 118.5030, 30.5010, category="占道经营")
    assert plain["override"] is None
    assert on_road["override"]["id"] == road["id"]
    assert on_road["owner"] == {
        "kind": "department",
        "department_id": squad.id,
        "worker_id": None,
        "name": "安和城管中队",
        "role": "department",
        "role_name": "职能部门",
        "phone": squad.phone,
    }
    assert on_road["fallback"][0] == plain["owner"]  # the grid's owner backs the department up
    assert on_road["grid"] == plain["grid"]
    assert locate_point(db_session, 118.5030, 30.5010, category="噪声")["override"] is None
    # Nested areas: the smaller one wins.
    in_market = locate_point(db_session, 118.5065, 30.5010, category="占道经营")
    assert in_market["override"]["id"] == stall["id"]
    assert in_market["owner"]["worker_id"] == town["grid_worker"].id
    batch = locate_batch(
        db_session, [118.5030, 118.5065, 118.5030], [30.5010, 30.5010, 30.5050], category="占道经营"
    )
    assert batch.record(0)["override"]["id"] == road["id"]
    assert batch.record(1)["override"]["id"] == stall["id"]
    assert batch.record(2)["override"] is None
    assert batch.record(0)["owner"] == on_road["owner"]


def test_neighbour_owners_near_a_shared_edge(db_session, town) -> None:  # type: ignore[no-untyped-def]
    res = locate_point(db_session, 118.5049, 30.5020)  # 10 m west of the shared edge
    assert res["grid"]["id"] == town["west"].id
    near = neighbour_owners(db_session, town["west"].id, 118.5049, 30.5020, within_m=50)
    assert [n["grid"]["id"] for n in near] == [town["east"].id]
    assert 9 < near[0]["distance_m"] < 11
    assert near[0]["owner"]["worker_id"] == town["east_chief"].id
    assert neighbour_owners(db_session, town["west"].id, 118.5030, 30.5010, within_m=50) == []


def test_a_dbapi_connection_locates_as_the_session_does(db_session, town) -> None:  # type: ignore[no-untyped-def]
    """The HTTP locate runs on a bare DBAPI connection of the read pool (no ORM session); it
    must answer exactly as the session does, on every method and with an override area."""
    from app.models import Department

    squad = db_session.scalar(select(Department).where(Department.code == "CG-AH"))
    overrides.create_area(
        db_session,
        {
            "type": "Feature",
            "geometry": shapely.geometry.mapping(shapely.box(118.502, 30.500, 118.508, 30.5015)),
            "properties": {"name": "测试主干道", "category": "占道经营", "department_id": squad.id},
        },
    )
    # The session's own connection: the same transaction, so it sees the town and the area.
    raw = db_session.connection().connection.dbapi_connection
    points = [
        (118.5025, 30.5050),
        (118.5011, 30.5050),
        (118.5075, 30.5090),
        (118.5075, 30.5082),
        (118.5102, 30.5040),
        (118.5300, 30.5300),
        (118.5050, 30.5020),
        (118.5100, 30.5000),
        (118.5030, 30.5010),
        (118.5080, 30.5010),
        (117.23, 31.82),
    ]
    methods = set()
    for lon, lat in points:
        for category in (None, "占道经营"):
            via_session = locate_point(db_session, lon, lat, category=category)
            via_dbapi = locate_point(raw, lon, lat, category=category)
            assert via_dbapi == via_session
            methods.add(via_session["method"])
    assert methods == {"inside", "boundary", "nearest", "ancestor", "unassigned"}
    assert locate_point(raw, 118.5030, 30.5010, category="占道经营")["override"] is not None


def test_batch_keeps_the_grid_map_until_the_database_changes(app) -> None:  # type: ignore[no-untyped-def]
    """A second batch reuses the fetched grids, indexes and owners; a committed change to a
    worker is seen by the next batch; a transaction's own changes neither use nor fill the map."""
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    from app.services.locate import batch as batch_module

    engine = app.extensions["gridgov_db"].engine
    with Session(engine) as s:
        first = batch_module._grid_map(s)
        s.rollback()
        assert batch_module._grid_map(s) is first
        s.rollback()
        wid, grid_id, phone = s.execute(
            text(
                "SELECT w.id, a.grid_id, w.phone FROM worker w "
                "JOIN grid_assignment a ON a.worker_id = w.id ORDER BY w.id LIMIT 1"
            )
        ).one()
        s.rollback()
        try:
            s.execute(text("UPDATE worker SET phone = '13700000001' WHERE id = :i"), {"i": wid})
            own = batch_module._grid_map(s)  # uncommitted: seen here, kept for no one
            assert own is not first
            assert {p["phone"] for p in own.people[grid_id] if p["worker_id"] == wid} == {
                "13700000001"
            }
            s.commit()
            changed = batch_module._grid_map(s)
            s.rollback()
            assert changed is not first and changed is not own
            assert batch_module._grid_map(s) is changed
            s.rollback()
        finally:
            s.execute(text("UPDATE worker SET phone = :p WHERE id = :i"), {"p": phone, "i": wid})
            s.commit()
        again = batch_module._grid_map(s)
        s.rollback()
        assert {p["phone"] for p in again.people[grid_id] if p["worker_id"] == wid} == {phone}
