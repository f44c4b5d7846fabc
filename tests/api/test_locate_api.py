"""Locate API: one point, errors that say what is wrong, batches, neighbours, override areas."""

from __future__ import annotations

import csv
import io

import pytest
import shapely

from gis.crs import from_wgs84

POINT = (117.23, 31.82)  # inside a micro-grid of the sample street


def test_locate_one_point(client) -> None:  # type: ignore[no-untyped-def]
    res = client.get(f"/api/locate?lon={POINT[0]}&lat={POINT[1]}")
    assert res.status_code == 200
    body = res.get_json()
    assert body["method"] == "inside" and body["crs"] == "wgs84"
    assert body["point"] == {"lon": POINT[0], "lat": POINT[1]}
    assert body["grid"]["level"] == 4 and body["chain"][-1] == body["grid"]
    assert [g["level"] for g in body["chain"]] == [1, 2, 3, 4]
    assert body["owner"]["role_name"] == "专职网格员" and body["owner"]["phone"]
    assert body["fallback"][0]["role_name"] == "微网格长"
    assert body["fallback"][-1] == {"kind": "command_centre", "name": "指挥中心"}


@pytest.mark.parametrize("crs", ["gcj02", "bd09", "EPSG:4548"])
def test_locate_in_other_crs(client, crs: str) -> None:  # type: ignore[no-untyped-def]
    x, y = (float(v) for v in from_wgs84(*POINT, crs))
    names = ("x", "y") if crs.startswith("EPSG") else ("lon", "lat")
    body = client.get(f"/api/locate?{names[0]}={x}&{names[1]}={y}&crs={crs}").get_json()
    wgs = client.get(f"/api/locate?lon={POINT[0]}&lat={POINT[1]}").get_json()
    assert body["grid"] == wgs["grid"] and body["crs"] == crs
    assert abs(body["point"]["lon"] - POINT[0]) < 1e-6


@pytest.mark.parametrize(
    "query,code,words",
    [
        ("lon=31.82&lat=117.23", "bad_coordinates", "swapped"),
        ("lon=521500&lat=3521300", "bad_coordinates", "projected metres"),
        ("lon=190&lat=20", "bad_coordinates", "out of range"),
        ("lon=117.2&lat=31.8&crs=utm", "unknown_crs", "unknown CRS"),
        ("lon=117.2&lat=31.8&crs=EPSG:999999", "unknown_crs", "not a known code"),
        ("x=117.2&y=31.8&crs=EPSG:4548", "bad_coordinates", "look like lon/lat degrees"),
        ("lon=abc&lat=31.8", "bad_parameter", "not a number"),
        ("lon=117.2", "bad_parameter", "give both"),
        ("", "bad_parameter", "lon="),
        ("lon=nan&lat=31.8", "bad_parameter", "finite"),
    ],
)
def test_bad_coordinates_get_a_clear_400(client, query: str, code: str, words: str) -> None:  # type: ignore[no-untyped-def]
    res = client.get(f"/api/locate?{query}")
    assert res.status_code == 400
    err = res.get_json()["error"]
    assert err["code"] == code and words in err["message"]


def test_swap_is_flagged(client) -> None:  # type: ignore[no-untyped-def]
    err = client.get("/api/locate?lon=31.82&lat=117.23").get_json()["error"]
    assert err["likely_swap"] is True and "lon=117.23, lat=31.82" in err["message"]


def test_outside_every_grid_goes_to_the_command_centre(client) -> None:  # type: ignore[no-untyped-def]
    body = client.get("/api/locate?lon=100&lat=40").get_json()
    assert body["method"] == "unassigned" and body["owner"] is None
    assert body["fallback"] == [{"kind": "command_centre", "name": "指挥中心"}]


def test_batch_geojson(client) -> None:  # type: ignore[no-untyped-def]
    gx, gy = (float(v) for v in from_wgs84(*POINT, "gcj02"))
    fc = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "id": "r1", "geometry": {"type": "Point", "coordinates": [gx, gy]}},
            {"type": "Feature", "id": "r2", "geometry": {"type": "Point", "coordinates": [200, 1]}},
            {
                "type": "Feature",
                "id": "r3",
                "geometry": {"type": "Point", "coordinates": [100, 40]},
            },
        ],
    }
    res = client.post("/api/locate/batch?crs=gcj02", json=fc)
    assert res.status_code == 200
    body = res.get_json()
    single = client.get(f"/api/locate?lon={gx}&lat={gy}&crs=gcj02").get_json()
    assert body["count"] == 3 and body["crs"] == "gcj02"
    first, bad, far = body["results"]
    assert first["id"] == "r1" and first["grid"] == single["grid"]
    assert first["owner"] == single["owner"] and first["next"] == single["fallback"][0]
    assert bad["method"] == "invalid" and "out of range" in bad["error"]
    assert (
        bad["error"].split(" / ")[0] == "坐标 (200.0, 1.0) 超出范围（经度 -180..180，纬度 -90..90）"
    )
    assert far["method"] == "unassigned" and far["owner"] is None
    assert body["counts"]["inside"] == 1 and body["counts"]["invalid"] == 1


def test_batch_csv_in_and_out(client) -> None:  # type: ignore[no-untyped-def]
    x, y = (float(v) for v in from_wgs84(*POINT, "EPSG:4548"))
    data = f"id,X,Y\nh1,{x},{y}\nh2,{x + 5000},{y}\n"
    res = client.post(
        "/api/locate/batch?crs=EPSG:4548",
        data=data,
        content_type="text/csv",
        headers={"Accept": "text/csv"},
    )
    assert res.status_code == 200 and res.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(res.get_data(as_text=True))))
    single = client.get(f"/api/locate?lon={POINT[0]}&lat={POINT[1]}").get_json()
    assert rows[0]["id"] == "h1" and rows[0]["grid_code"] == single["grid"]["code"]
    assert rows[0]["owner_name"] == single["owner"]["name"]
    assert rows[1]["method"] == "unassigned" and rows[1]["owner_name"] == "指挥中心"


def test_batch_geojson_crs_member_and_bad_bodies(client) -> None:  # type: ignore[no-untyped-def]
    x, y = (float(v) for v in from_wgs84(*POINT, "EPSG:4548"))
    fc = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::4548"}},
        "features": [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [x, y]}}],
    }
    body = client.post("/api/locate/batch", json=fc).get_json()
    assert body["crs"] == "EPSG:4548" and body["results"][0]["method"] == "inside"
    line = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}}
        ],
    }
    res = client.post("/api/locate/batch", json=line)
    assert res.status_code == 400 and "feature 0" in res.get_json()["error"]["message"]
    res = client.post("/api/locate/batch", data="a,b\n1,2\n", content_type="text/csv")
    assert res.status_code == 400 and "lon/lat" in res.get_json()["error"]["message"]


def test_neighbours_for_a_one_step_transfer(client) -> None:  # type: ignore[no-untyped-def]
    here = client.get(f"/api/locate?lon={POINT[0]}&lat={POINT[1]}").get_json()
    res = client.get(f"/api/locate/neighbours?lon={POINT[0]}&lat={POINT[1]}&within=100")
    body = res.get_json()
    assert res.status_code == 200 and body["grid_id"] == here["grid"]["id"]
    assert body["neighbours"] and all(
        n["grid"]["id"] != here["grid"]["id"] and n["distance_m"] <= 100 and n["owner"]
        for n in body["neighbours"]
    )
    dists = [n["distance_m"] for n in body["neighbours"]]
    assert dists == sorted(dists)


def _area(geometry, **props):  # type: ignore[no-untyped-def]
    return {
        "type": "Feature",
        "geometry": geometry,
        "properties": {"name": "长江路（主干道）", "category": "占道经营", **props},
    }


def test_override_area_crud_and_locate(client) -> None:  # type: ignore[no-untyped-def]
    box = shapely.geometry.mapping(shapely.Point(POINT).buffer(0.0005, quad_segs=2))
    res = client.post("/api/override-areas", json=_area(box, department_code="CG-AH"))
    assert res.status_code == 201, res.get_json()
    area = res.get_json()
    aid = area["id"]
    assert area["properties"]["keeper"] == "安和城管中队" and area["properties"]["version"] == 1
    listed = client.get("/api/override-areas?category=占道经营").get_json()
    assert aid in [f["id"] for f in listed["features"]]
    body = client.get(f"/api/locate?lon={POINT[0]}&lat={POINT[1]}&category=占道经营").get_json()
    assert body["override"]["id"] == aid and body["owner"]["name"] == "安和城管中队"
    # Edit: move it away; a stale version is refused.
    away = shapely.geometry.mapping(shapely.box(117.24, 31.825, 117.241, 31.826))
    res = client.put(f"/api/override-areas/{aid}", json=_area(away, version=1))
    assert res.status_code == 200 and res.get_json()["properties"]["version"] == 2
    res = client.put(f"/api/override-areas/{aid}", json=_area(away, version=1))
    assert res.status_code == 409
    body = client.get(f"/api/locate?lon={POINT[0]}&lat={POINT[1]}&category=占道经营").get_json()
    assert body["override"] is None
    assert client.delete(f"/api/override-areas/{aid}").status_code == 204
    assert client.get(f"/api/override-areas/{aid}").status_code == 404


@pytest.mark.parametrize(
    "geometry,props,words",
    [
        (
            {
                "type": "Polygon",
                "coordinates": [
                    [
                        [117.23, 31.82],
                        [117.24, 31.83],
                        [117.24, 31.82],
                        [117.23, 31.83],
                        [117.23, 31.82],
                    ]
                ],
            },
            {"department_code": "CG-AH"},
            "Self-intersection",
        ),
        (
            {
                "type": "Polygon",
                "coordinates": [[[117.23, 91], [117.24, 91], [117.24, 92], [117.23, 91]]],
            },
            {"department_code": "CG-AH"},
            "out of range",
        ),
        (
            {"type": "Point", "coordinates": [117.23, 31.82]},
            {"department_code": "CG-AH"},
            "not a Polygon",
        ),
        (
            shapely.geometry.mapping(shapely.box(117.23, 31.82, 117.231, 31.821)),
            {},
            "exactly one keeper",
        ),
        (
            shapely.geometry.mapping(shapely.box(117.23, 31.82, 117.231, 31.821)),
            {"department_code": "NOPE"},
            "does not exist",
        ),
    ],
)
def test_override_area_validation(client, geometry, props, words) -> None:  # type: ignore[no-untyped-def]
    res = client.post("/api/override-areas", json=_area(geometry, **props))
    assert res.status_code == 422
    err = res.get_json()["error"]
    assert words in err["message"]
    if words == "Self-intersection":
        assert err["location"]["type"] == "Point"  # where to look on the map


def test_override_area_in_gcj02(client) -> None:  # type: ignore[no-untyped-def]
    """Drawn over an AMap basemap: the outline comes in GCJ-02 and is stored in WGS84."""
    ring = [
        from_wgs84(x, y, "gcj02")
        for x, y in shapely.box(117.229, 31.819, 117.231, 31.821).exterior.coords
    ]
    geom = {"type": "Polygon", "coordinates": [[[float(x), float(y)] for x, y in ring]]}
    res = client.post("/api/override-areas?crs=gcj02", json=_area(geom, department_code="CG-AH"))
    assert res.status_code == 201
    stored = shapely.geometry.shape(res.get_json()["geometry"])
    assert stored.contains(shapely.Point(POINT))
    assert abs(stored.bounds[0] - 117.229) < 1e-6


def test_locate_survives_a_dead_pooled_connection(live_server: str, database_url: str) -> None:
    """The read pool does not ping before use: a connection the server dropped is replaced."""
    import urllib.request

    from sqlalchemy import create_engine, text

    def get() -> int:
        with urllib.request.urlopen(f"{live_server}/api/locate?lon=117.23&lat=31.82") as res:
            return res.status

    assert get() == 200
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            killed = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND usename = current_user "  # the app's role may end only its own
                    "AND backend_type = 'client backend' AND state = 'idle'"
                )
            ).scalar()
    finally:
        engine.dispose()
    assert killed >= 1
    assert get() == 200 and get() == 200


def test_override_area_keepers_and_bad_version(client) -> None:  # type: ignore[no-untyped-def]
    keepers = client.get("/api/override-areas/keepers").get_json()
    assert "CG-AH" in [d["code"] for d in keepers["departments"]]
    assert keepers["workers"] and {"id", "code", "name"} <= set(keepers["workers"][0])
    box = shapely.geometry.mapping(shapely.box(117.23, 31.82, 117.231, 31.821))
    aid = client.post("/api/override-areas", json=_area(box, department_code="CG-AH")).get_json()[
        "id"
    ]
    res = client.put(f"/api/override-areas/{aid}", json=_area(box, version="abc"))
    assert res.status_code in (400, 422) and "version" in res.get_json()["error"]["message"]
