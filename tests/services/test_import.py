"""Imports validate every record, report bad ones by row/feature, and load all or nothing."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pytest
from sqlalchemy import text

from app.errors import ImportRejected
from app.services import exporter, importer
from gis.crs import from_wgs84

HEADER = "lon,lat,building,unit,room,address,people,head_name,head_phone,tags\n"


def _count(session, table: str) -> int:  # type: ignore[no-untyped-def]
    return session.execute(text(f'SELECT count(*) FROM "{table}"')).scalar()


def _leaf_point(session) -> tuple[float, float, str]:  # type: ignore[no-untyped-def]
    row = session.execute(
        text(
            """SELECT ST_X(p), ST_Y(p), code FROM (
                 SELECT ST_PointOnSurface(geom) AS p, code FROM grid g WHERE level = 4 AND code LIKE '340188001%'
                 ORDER BY code LIMIT 1) s"""
        )
    ).one()
    return row[0], row[1], row[2]


def test_bad_household_rows_are_reported_and_nothing_is_loaded(db_session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lon, lat, _ = _leaf_point(db_session)
    path = tmp_path / "hh.csv"
    path.write_text(
        HEADER
        + f"{lon},{lat},1栋,1,101,a,3,张三,13900000000,\n"  # good (row 2)
        + f"{lon},{lat},1栋,1,102,a,many,李四,13900000001,\n"  # people not a number (row 3)
        + "10.0,10.0,1栋,1,103,a,2,王五,13900000002,\n"  # in no grid (row 4)
        + f"{lon},{lat},1栋,1,104,a,2,赵六,13900000003,rich\n",  # unknown tag (row 5)
        encoding="utf-8",
    )
    before = _count(db_session, "household")
    with pytest.raises(ImportRejected) as err:
        importer.import_file(db_session, "households", path)
    where = {p["where"]: p["reason"] for p in err.value.problems}
    assert set(where) == {"row 3", "row 4", "row 5"}
    assert "people" in where["row 3"]
    assert "no leaf grid" in where["row 4"]
    assert "rich" in where["row 5"]
    assert err.value.http_status == 422
    assert _count(db_session, "household") == before


def test_out_of_range_and_swapped_coordinates_are_reported(db_session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lon, lat, _ = _leaf_point(db_session)
    path = tmp_path / "hh.csv"
    path.write_text(
        HEADER + f"{lon},{lat},1,1,1,a,1,,,\n{lat},{lon},1,1,1,a,1,,,\n200,20,1,1,1,a,1,,,\n",
        encoding="utf-8",
    )
    with pytest.raises(ImportRejected) as err:
        importer.import_file(db_session, "households", path)
    problems = {p["where"]: p["reason"] for p in err.value.problems}
    assert set(problems) == {"row 3", "row 4"}
    assert "swapped" in problems["row 3"]
    assert "out of range" in problems["row 4"]


def test_households_in_gcj02_land_in_the_same_grid(db_session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lon, lat, code = _leaf_point(db_session)
    glon, glat = from_wgs84(lon, lat, "gcj02")
    path = tmp_path / "amap.csv"
    path.write_text(f"X,Y,people\n{float(glon)},{float(glat)},2\n", encoding="utf-8")
    n = importer.import_file(
        db_session, "households", path, crs="gcj02", mapping={"lon": "X", "lat": "Y"}
    )
    assert n == 1
    got = db_session.execute(
        text(
            "SELECT g.code, ST_X(h.geom), ST_Y(h.geom) FROM household h JOIN grid g ON g.id = h.grid_id ORDER BY h.id DESC LIMIT 1"
        )
    ).one()
    assert got[0] == code
    assert abs(got[1] - lon) < 1e-7 and abs(got[2] - lat) < 1e-7


def test_invalid_and_overlapping_grids_are_rejected_whole(db_session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    street = db_session.execute(
        text("SELECT ST_AsGeoJSON(geom) FROM grid WHERE code = '340188001'")
    ).scalar()
    bowtie = {
        "type": "Polygon",
        "coordinates": [[[117, 31], [117.01, 31.01], [117.01, 31], [117, 31.01], [117, 31]]],
    }
    features = [
        {
            "type": "Feature",
            "properties": {"code": "999001", "name": "新街道", "level": 1},
            "geometry": json.loads(street),
        },
        {
            "type": "Feature",
            "properties": {"code": "999002", "name": "坏网格", "level": 1},
            "geometry": bowtie,
        },
    ]
    path = tmp_path / "grids.geojson"
    path.write_text(
        json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8"
    )
    before = _count(db_session, "grid")
    with pytest.raises(ImportRejected) as err:
        importer.import_file(db_session, "grids", path)
    problems = err.value.problems
    assert problems[0]["where"] == "feature 2" and "Self-intersection" in problems[0]["reason"]
    assert _count(db_session, "grid") == before
    # without the bowtie, the copy of the street overlaps its sibling and is refused with a location
    path.write_text(
        json.dumps({"type": "FeatureCollection", "features": features[:1]}), encoding="utf-8"
    )
    with pytest.raises(ImportRejected) as err:
        importer.import_file(db_session, "grids", path)
    assert "overlaps sibling 340188001" in err.value.problems[0]["reason"]
    assert err.value.problems[0]["where"] == "feature 1"
    assert json.loads(err.value.problems[0]["location"])["type"] == "Point"


def test_child_outside_parent_and_unknown_parent_are_rejected(db_session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    far = {
        "type": "Polygon",
        "coordinates": [[[100, 30], [100.01, 30], [100.01, 30.01], [100, 30.01], [100, 30]]],
    }
    features = [
        {
            "type": "Feature",
            "properties": {"code": "X1", "name": "外", "level": 2, "parent_code": "340188001"},
            "geometry": far,
        },
        {
            "type": "Feature",
            "properties": {"code": "X2", "name": "孤", "level": 3, "parent_code": "NOPE"},
            "geometry": far,
        },
    ]
    path = tmp_path / "grids.geojson"
    path.write_text(
        json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8"
    )
    with pytest.raises(ImportRejected) as err:
        importer.import_file(db_session, "grids", path)
    assert err.value.problems == [
        {
            "where": "feature 2",
            "field": "parent_code",
            "reason": "parent 'NOPE' not found",
            "code": "X2",
        }
    ]
    path.write_text(
        json.dumps({"type": "FeatureCollection", "features": features[:1]}), encoding="utf-8"
    )
    with pytest.raises(ImportRejected) as err:
        importer.import_file(db_session, "grids", path)
    assert "outside its parent 340188001" in err.value.problems[0]["reason"]


@pytest.mark.parametrize(
    "fmt,suffix",
    [("geojson", ".geojson"), ("shapefile", ".shp"), ("gpkg", ".gpkg"), ("csv", ".csv")],
)
def test_export_then_import_round_trip(db_session, tmp_path: Path, fmt: str, suffix: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / f"cameras{suffix}"
    n = exporter.export(db_session, "cameras", path, fmt=fmt)
    assert n == _count(db_session, "camera")
    frame = gpd.read_file(path) if fmt != "csv" else None
    if frame is not None:
        assert len(frame) == n
    db_session.execute(text("DELETE FROM camera"))
    assert importer.import_file(db_session, "cameras", path) == n
    assert _count(db_session, "camera") == n


def test_export_masks_personal_data_by_default(db_session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "hh.csv"
    exporter.export(db_session, "households", path)
    text_out = path.read_text(encoding="utf-8")
    phone = db_session.execute(
        text("SELECT head_phone FROM household ORDER BY id LIMIT 1")
    ).scalar()
    assert phone not in text_out
    assert phone[:3] + "****" + phone[-4:] in text_out
    assert "elderly_alone" not in text_out


def test_households_given_in_a_gauss_kruger_zone(db_session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lon, lat, code = _leaf_point(db_session)
    x, y = from_wgs84(lon, lat, "EPSG:4548")
    path = tmp_path / "gk.csv"
    path.write_text(f"x,y\n{float(x):.3f},{float(y):.3f}\n", encoding="utf-8")
    importer.import_file(
        db_session, "households", path, crs="EPSG:4548", mapping={"lon": "x", "lat": "y"}
    )
    got = db_session.execute(
        text(
            "SELECT g.code FROM household h JOIN grid g ON g.id = h.grid_id ORDER BY h.id DESC LIMIT 1"
        )
    ).scalar()
    assert got == code


def test_a_bad_grid_among_thousands_is_named(db_session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The bulk path (COPY per level, set-based hierarchy checks) still names each bad record."""
    import shapely

    from gis.synthetic import city

    c = city(2500, 0, seed=3, centre=(110.0, 25.0))
    frame = gpd.GeoDataFrame(
        {
            "code": [g[0] for g in c.grids],
            "name": [g[1] for g in c.grids],
            "level": [g[2] for g in c.grids],
            "parent_code": [g[3] or "" for g in c.grids],
        },
        geometry=[g[4] for g in c.grids],
        crs=4326,
    )
    micro = frame.index[frame["level"] == 4]
    assert len(micro) >= 2500
    shifted, outside, invalid = int(micro[1234]), int(micro[2001]), int(micro[77])
    frame.loc[shifted, "geometry"] = shapely.affinity.translate(
        frame.geometry[shifted], xoff=0.0002
    )  # about 20 m into its eastern sibling
    frame.loc[outside, "geometry"] = shapely.affinity.translate(
        frame.geometry[outside], xoff=0.05
    )  # far outside its parent
    path = tmp_path / "city.geojson"
    good = frame.geometry[invalid]
    frame.loc[invalid, "geometry"] = shapely.Polygon(
        [(110, 25), (110.001, 25.001), (110.001, 25), (110, 25.001), (110, 25)]
    )
    frame.to_file(path, driver="GeoJSON")
    before = _count(db_session, "grid")
    with pytest.raises(ImportRejected) as err:
        importer.import_file(db_session, "grids", path)
    assert [(p["where"], p["code"]) for p in err.value.problems] == [
        (f"feature {invalid + 1}", frame["code"][invalid])
    ]
    assert _count(db_session, "grid") == before
    frame.loc[invalid, "geometry"] = good
    frame.to_file(path, driver="GeoJSON")
    with pytest.raises(ImportRejected) as err:
        importer.import_file(db_session, "grids", path)
    named = {(p["where"], p["code"]) for p in err.value.problems}
    assert (f"feature {shifted + 1}", frame["code"][shifted]) in named
    assert (f"feature {outside + 1}", frame["code"][outside]) in named
    reasons = " ".join(
        p["reason"] for p in err.value.problems if p["code"] == frame["code"][outside]
    )
    assert "outside its parent" in reasons
    reasons = " ".join(
        p["reason"] for p in err.value.problems if p["code"] == frame["code"][shifted]
    )
    assert "overlaps sibling" in reasons
    # every problem is about one of the two moved grids (or a sibling they now overlap)
    assert all(p["where"].startswith("feature ") for p in err.value.problems)


def test_imported_households_keep_every_field_and_the_grids_count_them(
    db_session, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """What COPY receives is what the file says — a backslash, a tab, quotes and commas in an
    address, empty fields as nothing, tags, a linked party member, the exact coordinates — and
    the household counts of the grid each lands in and of every grid above it grow by as many
    (equal to a recount afterwards)."""
    lon, lat, code = _leaf_point(db_session)
    member = db_session.execute(
        text("SELECT id, code FROM worker WHERE code IS NOT NULL ORDER BY id LIMIT 1")
    ).one()
    before = dict(db_session.execute(text("SELECT id, household_count FROM grid")).all())
    address = '馨苑小区\\1栋\t"东"门,2单元'
    frame = gpd.GeoDataFrame(
        {
            "address": [address, ""],
            "building": ["", "3栋"],
            "unit": ["", "2"],
            "room": ["", "301"],
            "people": [4, 1],
            "head_name": ["王五", ""],
            "tags": ["elderly_alone;low_income", ""],
            "linked_member_code": [member.code, ""],
        },
        geometry=gpd.points_from_xy([lon, lon], [lat, lat]),
        crs=4326,
    )
    path = tmp_path / "households.geojson"
    frame.to_file(path, driver="GeoJSON")
    assert importer.import_file(db_session, "households", path) == 2
    rows = db_session.execute(
        text(
            """SELECT h.address, h.building, h.unit, h.room, h.people, h.head_name, h.tags,
                      h.linked_member_id, ST_X(h.geom), ST_Y(h.geom), g.code
               FROM household h JOIN grid g ON g.id = h.grid_id ORDER BY h.id DESC LIMIT 2"""
        )
    ).all()
    second, first = rows
    assert first[:8] == (
        address,
        None,
        None,
        None,
        4,
        "王五",
        ["elderly_alone", "low_income"],
        member.id,
    )
    assert second[:8] == (None, "3栋", "2", "301", 1, None, [], None)
    assert all((r[8], r[9], r[10]) == (lon, lat, code) for r in rows)
    after = dict(db_session.execute(text("SELECT id, household_count FROM grid")).all())
    grown = {g: after[g] - before[g] for g in after if after[g] != before[g]}
    chain = db_session.execute(
        text(
            """WITH RECURSIVE up AS (SELECT id, parent_id FROM grid WHERE code = :c AND valid_to IS NULL
                                      UNION ALL SELECT p.id, p.parent_id FROM grid p JOIN up ON p.id = up.parent_id)
               SELECT id FROM up"""
        ),
        {"c": code},
    ).scalars()
    assert grown == {g: 2 for g in chain}
    importer.refresh_household_counts(db_session)
    assert dict(db_session.execute(text("SELECT id, household_count FROM grid")).all()) == after
