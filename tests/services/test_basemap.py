"""The own basemap: the sample's roads, buildings and water, the basemap import, the PostGIS
tiles (decoded with mapbox-vector-tile), the PMTiles file and the browser's basemap settings."""

from __future__ import annotations

import gzip
import json
import math
import time

import mapbox_vector_tile
import pytest
from pmtiles.reader import MmapSource, Reader
from sqlalchemy import text

from app.errors import ImportRejected
from app.services import basemap as svc
from app.services import importer
from gis.crs import from_wgs84


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    n = 1 << z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return z, x, y


def street_centre(db_session) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    row = db_session.execute(
        text(
            "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(geom) c FROM grid "
            "WHERE code = '340188001' AND valid_to IS NULL) t"
        )
    ).first()
    return float(row[0]), float(row[1])


def render(db_session, z: int, x: int, y: int) -> list[dict]:  # type: ignore[no-untyped-def]
    raw = db_session.scalar(
        text("SELECT gridgov_tile_basemap(:z, :x, :y)"), {"z": z, "x": x, "y": y}
    )
    return mapbox_vector_tile.decode(bytes(raw or b"")).get("basemap", {}).get("features", [])


def sql_count(db_session, z: int, x: int, y: int) -> int:  # type: ignore[no-untyped-def]
    """Features a tile holds: shown at z, touching the tile (bounding box) and its 64-pixel buffer."""
    return db_session.scalar(
        text(
            "SELECT count(*) FROM basemap_feature WHERE min_zoom <= :z "
            "AND geom && ST_Transform(ST_TileEnvelope(:z, :x, :y), 4326) AND ST_Intersects("
            "ST_Transform(geom, 3857), ST_TileEnvelope(:z, :x, :y, margin => 64.0 / 4096))"
        ),
        {"z": z, "x": x, "y": y},
    )


def test_the_sample_loads_roads_buildings_water_and_green(db_session) -> None:  # type: ignore[no-untyped-def]
    rows = dict(
        db_session.execute(
            text(
                "SELECT kind || '/' || coalesce(class, '') || '/' || min_zoom, count(*) "
                "FROM basemap_feature GROUP BY 1"
            )
        ).all()
    )
    assert rows["road/primary/10"] == 3  # 和平路, 建设大道, 桃园路
    assert rows["road/secondary/11"] == 8
    assert rows["road/minor/13"] > 10
    assert rows["building/residential/15"] > 300
    assert rows["water/river/9"] == 1 and rows["water/lake/9"] == 1
    assert rows["green/park/12"] == 2


def test_basemap_tiles_hold_what_their_zoom_shows(db_session) -> None:  # type: ignore[no-untyped-def]
    lon, lat = street_centre(db_session)
    seen: dict[int, set[str]] = {}
    for z in (10, 12, 13, 15, 17):
        addr = tile_of(lon, lat, z)
        feats = render(db_session, *addr)
        assert len(feats) == sql_count(db_session, *addr)
        seen[z] = {f"{f['properties']['kind']}/{f['properties'].get('class', '')}" for f in feats}
    assert "road/primary" in seen[10] and "road/minor" not in seen[10]
    assert "building/residential" not in seen[13] and "road/minor" in seen[13]
    assert "building/residential" in seen[15]
    names = {f["properties"].get("name") for f in render(db_session, *tile_of(lon, lat, 12))}
    assert {"和平路", "建设大道"} <= names


def test_basemap_tiles_are_fast(db_session) -> None:  # type: ignore[no-untyped-def]
    lon, lat = street_centre(db_session)
    times = []
    for z in range(10, 18):
        addr = tile_of(lon, lat, z)
        start = time.perf_counter()
        raw = db_session.scalar(
            text("SELECT gridgov_tile_basemap(:z, :x, :y)"), dict(zip("zxy", addr, strict=True))
        )
        times.append(time.perf_counter() - start)
        assert len(bytes(raw or b"")) < 500_000
    assert max(times) < 0.5, times


def test_the_basemap_import_reports_each_bad_row_and_loads_nothing(db_session, tmp_path) -> None:  # type: ignore[no-untyped-def]
    before = db_session.scalar(text("SELECT count(*) FROM basemap_feature"))
    line = {"type": "LineString", "coordinates": [[117.28, 31.86], [117.29, 31.87]]}
    square = {
        "type": "Polygon",
        "coordinates": [[[117.28, 31.86], [117.281, 31.86], [117.281, 31.861], [117.28, 31.86]]],
    }
    bowtie = {
        "type": "Polygon",
        "coordinates": [
            [
                [117.28, 31.86],
                [117.281, 31.861],
                [117.281, 31.86],
                [117.28, 31.861],
                [117.28, 31.86],
            ]
        ],
    }
    feats = [
        ("road", "primary", line),
        ("lake", "", square),  # unknown kind
        ("building", "", line),  # a building must be a polygon
        ("water", "", bowtie),  # invalid
        ("road", "", square),  # a road must be a line
    ]
    path = tmp_path / "bad.geojson"
    path.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {"type": "Feature", "properties": {"kind": k, "class": c}, "geometry": g}
                    for k, c, g in feats
                ],
            }
        )
    )
    with pytest.raises(ImportRejected) as err:
        importer.import_file(db_session, "basemap", path)
    problems = err.value.problems
    where = {p["where"]: p for p in problems}
    assert set(where) == {"feature 2", "feature 3", "feature 4", "feature 5"}
    assert where["feature 2"]["field"] == "kind"
    assert "Polygon" in where["feature 3"]["reason"]
    assert "invalid geometry" in where["feature 4"]["reason"]
    assert db_session.scalar(text("SELECT count(*) FROM basemap_feature")) == before


def test_the_basemap_import_takes_a_kind_and_a_crs(db_session, tmp_path) -> None:  # type: ignore[no-untyped-def]
    lon, lat = 117.2901, 31.8702
    gx, gy = from_wgs84([lon, lon + 0.001], [lat, lat + 0.001], "gcj02")
    path = tmp_path / "rails.geojson"
    path.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"名称": "合肥铁路"},
                        "geometry": {
                            "type": "LineString",
                            "coordinates": [[gx[0], gy[0]], [gx[1], gy[1]]],
                        },
                    }
                ],
            },
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    n = importer.import_file(
        db_session, "basemap", path, crs="gcj02", mapping={"name": "名称"}, feature_kind="rail"
    )
    assert n == 1
    row = db_session.execute(
        text(
            "SELECT kind, name, min_zoom, ST_X(ST_StartPoint(geom)), ST_Y(ST_StartPoint(geom)) "
            "FROM basemap_feature WHERE name = '合肥铁路'"
        )
    ).one()
    assert row[:3] == ("rail", "合肥铁路", 11)
    assert abs(row[3] - lon) < 1e-5 and abs(row[4] - lat) < 1e-5  # shifted back to WGS84


def test_basemap_settings_for_each_kind(tmp_path) -> None:  # type: ignore[no-untyped-def]
    own = svc.basemap_settings({})
    assert own["kind"] == "own" and own["crs"] == "wgs84"
    assert own["sources"][0]["tiles"] == ["/tiles/basemap/{z}/{x}/{y}.mvt"]
    assert svc.tile_origins({}) == []
    assert svc.basemap_settings({"BASEMAP": "none"})["sources"] == []
    tdt = svc.basemap_settings({"BASEMAP": "tianditu", "TIANDITU_KEY": "k123"})
    assert [s["role"] for s in tdt["sources"]] == ["base", "labels"]
    assert len(tdt["sources"][0]["tiles"]) == 8
    assert "vec_w" in tdt["sources"][0]["tiles"][0] and "tk=k123" in tdt["sources"][1]["tiles"][0]
    assert svc.tile_origins({"BASEMAP": "tianditu", "TIANDITU_KEY": "k"}) == [
        "https://*.tianditu.gov.cn"
    ]
    xyz = svc.basemap_settings(
        {
            "BASEMAP": "xyz",
            "BASEMAP_URL": "https://{s}.tiles.example/{z}/{x}/{y}.png",
            "BASEMAP_MAX_ZOOM": "17",
        }
    )
    assert xyz["max_zoom"] == 17 and len(xyz["sources"][0]["tiles"]) == 3
    assert svc.tile_origins(
        {"BASEMAP": "xyz", "BASEMAP_URL": "https://t.example/{z}/{x}/{y}.png"}
    ) == ["https://t.example"]
    for bad, why in [
        ({"BASEMAP": "tianditu"}, "TIANDITU_KEY"),
        ({"BASEMAP": "xyz"}, "BASEMAP_URL"),
        ({"BASEMAP": "xyz", "BASEMAP_URL": "https://x.example/tiles.png"}, "{z}"),
        (
            {
                "BASEMAP": "xyz",
                "BASEMAP_URL": "https://webrd0{s}.is.autonavi.com/appmaptile?x={x}&y={y}&z={z}",
                "BASEMAP_SUBDOMAINS": "1234",
            },
            "GCJ-02",
        ),
        (
            {
                "BASEMAP": "xyz",
                "BASEMAP_URL": "https://t.example/{z}/{x}/{y}.png",
                "BASEMAP_CRS": "gcj02",
            },
            "GCJ-02",
        ),
        ({"BASEMAP": "pmtiles"}, "BASEMAP_PMTILES"),
        ({"BASEMAP_PMTILES": str(tmp_path / "missing.pmtiles")}, "cannot read"),
        ({"BASEMAP": "osm"}, "not one of"),
    ]:
        with pytest.raises(svc.BasemapConfigError, match=why):
            svc.basemap_settings(bad)


def test_a_gcj02_basemap_is_refused_at_start_up(database_url) -> None:  # type: ignore[no-untyped-def]
    from app import create_app

    with pytest.raises(svc.BasemapConfigError, match="GCJ-02"):
        create_app(
            {
                "DATABASE_URL": database_url,
                "TESTING": True,
                "BASEMAP": "xyz",
                "BASEMAP_URL": "https://rt{s}.map.gtimg.com/tile?z={z}&x={x}&y={y}",
            }
        )


def test_a_pmtiles_basemap_is_built_and_served(app, client, db_session, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "basemap.pmtiles"
    counts = svc.build_pmtiles(db_session, out, min_zoom=10, max_zoom=15)
    assert counts["tiles"] > 0
    lon, lat = street_centre(db_session)
    z, x, y = tile_of(lon, lat, 15)
    with open(out, "rb") as f:
        reader = Reader(MmapSource(f))
        stored = gzip.decompress(reader.get(z, x, y))
        assert reader.header()["max_zoom"] == 15
    cut = db_session.scalar(
        text("SELECT gridgov_tile_basemap(:z, :x, :y)"), {"z": z, "x": x, "y": y}
    )
    assert stored == bytes(cut)
    saved = {k: app.config.get(k) for k in ("BASEMAP", "BASEMAP_PMTILES")}
    app.config.update(BASEMAP=None, BASEMAP_PMTILES=str(out))  # unset: the file picks pmtiles
    try:
        settings = svc.basemap_settings(app.config)
        assert settings["kind"] == "pmtiles" and settings["pmtiles"] == "/basemap/basemap.pmtiles"
        assert settings["sources"][0]["type"] == "vector" and settings["sources"][0]["layers"] == [
            "basemap"
        ]
        assert settings["max_zoom"] == 15
        res = client.get("/basemap/basemap.pmtiles", headers={"Range": "bytes=0-126"})
        assert res.status_code == 206 and len(res.get_data()) == 127
        assert res.get_data()[:7] == b"PMTiles"
        res = client.get(f"/basemap/tiles/{z}/{x}/{y}", headers={"Accept-Encoding": "gzip"})
        assert res.status_code == 200 and res.headers["Content-Encoding"] == "gzip"
        assert res.mimetype == "application/vnd.mapbox-vector-tile"
        feats = mapbox_vector_tile.decode(gzip.decompress(res.get_data()))["basemap"]["features"]
        assert len(feats) == sql_count(db_session, z, x, y)
        assert client.get(f"/basemap/tiles/{z}/{x}/{y}").headers.get("Content-Encoding") is None
        assert client.get("/basemap/tiles/15/0/0").status_code == 204
        csp = client.get("/emap").headers["Content-Security-Policy"]
        assert "connect-src 'self';" in csp  # same origin: nothing to add
    finally:
        app.config.update(saved)
    assert client.get("/basemap/basemap.pmtiles").status_code == 404
