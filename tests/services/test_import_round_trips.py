"""Imports of real formats, checked record by record (not only counted): grids exported from the
sample as a GeoPackage in a Gauss-Krüger CRS (and read back with ``--crs EPSG:4548`` when the
file carries no CRS) and as a shapefile with its ``.prj`` (column names cut to ten characters),
households as CGCS2000 and GCJ-02 CSVs, each loaded into a database of its own and compared with
the source: every code, level, parent, boundary, grid and coordinate."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from app.services import exporter, importer
from gis.crs import wgs84_to_gcj02
from tests.conftest import copy_database, own_database

GRIDS = """SELECT g.code, g.level, p.code AS parent, g.name, ST_AsBinary(g.geom) AS wkb
           FROM grid g LEFT JOIN grid p ON p.id = g.parent_id WHERE g.valid_to IS NULL"""
HOUSEHOLDS = """SELECT g.code, ST_X(h.geom) AS lon, ST_Y(h.geom) AS lat, h.people
                FROM household h JOIN grid g ON g.id = h.grid_id"""


@pytest.fixture()
def fresh(cluster, migrated_template: str) -> Session:  # type: ignore[no-untyped-def]
    """An empty, migrated database of its own (a copy of the run's migrated template), dropped
    afterwards."""
    name = own_database("gridgov_roundtrip")
    url = copy_database(cluster, migrated_template, name)
    engine = create_engine(url)
    session = Session(engine)
    try:
        yield session
    finally:
        session.close()
        engine.dispose()
        cluster.psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _grids(session) -> dict[str, tuple]:  # type: ignore[no-untyped-def]
    return {
        r.code: (r.level, r.parent, r.name, shapely.from_wkb(bytes(r.wkb)))
        for r in session.execute(text(GRIDS))
    }


def _same_grids(got: dict[str, tuple], want: dict[str, tuple]) -> None:
    assert set(got) == set(want)
    for code, (level, parent, name, geom) in want.items():
        g_level, g_parent, g_name, g_geom = got[code]
        assert (g_level, g_parent, g_name) == (level, parent, name), code
        # Through a metric CRS and back: the boundary agrees to a few millimetres.
        assert shapely.symmetric_difference(g_geom, geom).area <= 1e-6 * geom.area, code
        assert shapely.hausdorff_distance(g_geom, geom) < 1e-7, code


def _import(session, kind: str, path: Path, **kw) -> int:  # type: ignore[no-untyped-def]
    n = importer.import_file(session, kind, path, **kw)
    session.commit()
    return n


def test_grids_through_a_gauss_kruger_geopackage_without_its_crs(
    db_session, fresh, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    want = _grids(db_session)
    path = tmp_path / "grids_4548.gpkg"
    exporter.export(db_session, "grids", path, fmt="gpkg", crs="EPSG:4548")
    frame = gpd.read_file(path)
    assert frame.crs.to_epsg() == 4548 and frame.total_bounds[0] > 100_000  # metres, not degrees
    bare = tmp_path / "grids_nocrs.gpkg"
    frame.set_crs(None, allow_override=True).to_file(bare, driver="GPKG")
    assert _import(fresh, "grids", bare, crs="EPSG:4548") == len(want)
    _same_grids(_grids(fresh), want)


def test_grids_through_a_shapefile_with_its_prj(db_session, fresh, tmp_path) -> None:  # type: ignore[no-untyped-def]
    want = _grids(db_session)
    path = tmp_path / "grids.shp"
    exporter.export(db_session, "grids", path, fmt="shapefile", crs="EPSG:4549")
    assert (tmp_path / "grids.prj").exists()
    columns = set(gpd.read_file(path).columns)
    assert "parent_cod" in columns  # a shapefile cuts names to ten characters: map it back
    assert _import(fresh, "grids", path, mapping={"parent_code": "parent_cod"}) == len(want)
    _same_grids(_grids(fresh), want)


@pytest.mark.parametrize("crs", ["cgcs2000", "gcj02"])
def test_households_through_a_csv_in_each_chinese_crs(
    db_session, fresh, tmp_path, crs: str
) -> None:  # type: ignore[no-untyped-def]
    grids = tmp_path / "grids.gpkg"
    exporter.export(db_session, "grids", grids, fmt="gpkg")
    _import(fresh, "grids", grids)
    source = pd.DataFrame(db_session.execute(text(HOUSEHOLDS)).mappings().all())
    lon, lat = source["lon"].to_numpy(), source["lat"].to_numpy()
    if crs == "gcj02":
        lon, lat = wgs84_to_gcj02(lon, lat)
        assert np.abs(lon - source["lon"]).min() > 1e-4  # hundreds of metres off, as GCJ-02 is
    path = tmp_path / f"households_{crs}.csv"
    pd.DataFrame(
        {"lon": np.round(lon, 8), "lat": np.round(lat, 8), "people": source["people"]}
    ).to_csv(path, index=False)
    assert _import(fresh, "households", path, crs=crs) == len(source)
    got = pd.DataFrame(fresh.execute(text(HOUSEHOLDS)).mappings().all())
    # Each household lands in the same grid, on its source point: to 1e-7° for CGCS2000 (the
    # same datum here) and to about 0.5 m for GCJ-02, whose inverse is iterative.
    assert Counter(got["code"]) == Counter(source["code"])
    order = ["code", "people", "lon", "lat"]
    a = got.sort_values(order).reset_index(drop=True)
    b = source.sort_values(order).reset_index(drop=True)
    assert (a["code"] == b["code"]).all() and (a["people"] == b["people"]).all()
    tolerance = 1e-7 if crs == "cgcs2000" else 5e-6
    assert np.abs(a["lon"] - b["lon"]).max() < tolerance
    assert np.abs(a["lat"] - b["lat"]).max() < tolerance
