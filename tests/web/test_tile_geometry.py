"""Grid tiles after revision 0036 (rows in the order of their shapes, each shape cut once) hold
exactly what revision 0025's function put in them, for every scope, in dense and ordinary
tiles; and a dense tile's rows stay on few pages after an import and a household recount.

A city of 10,000 micro-grids of 100 m (``tests/web/city.py``), in a database of its own: a z13
tile over it holds about 2,000 micro-grids (dense), the others fewer."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterator
from pathlib import Path

import mapbox_vector_tile
import pytest
from sqlalchemy import create_engine, text

from app import create_app
from app.db import get_db, transaction
from app.services import importer
from tests.conftest import copy_database, own_database
from tests.web.city import CENTRE, SIDE_M, city_grids, city_households

ROOT = Path(__file__).resolve().parents[2]
DENSE = 1000


def _revision_0025_function() -> str:
    path = ROOT / "migrations" / "versions" / "0025_dense_grid_tiles.py"
    spec = importlib.util.spec_from_file_location("test_rev_0025", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.GRID_FUNCTION).replace("gridgov_tile_grids(", "test_old_tile_grids(")


@pytest.fixture(scope="module")
def city(cluster, migrated_template: str) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The owner's URL of a database holding the city's grids and, beside today's grid tile
    function, revision 0025's as ``test_old_tile_grids``; the grids come in no order in space."""
    name = own_database("gridgov_tile_geometry")
    url = copy_database(cluster, migrated_template, name)
    app = create_app({"DATABASE_URL": url, "TESTING": True})
    with app.app_context():
        session = get_db().session()
        with transaction(session):
            # In no order in space, as a city's file may come (the importer takes each level
            # in the file's order).
            shuffled = city_grids().sample(frac=1.0, random_state=7)
            importer.import_grids(session, shuffled, source="city grids")
        session.close()
    app.extensions["gridgov_db"].dispose()
    owner = cluster.owner_url(name)
    engine = create_engine(owner)
    with engine.begin() as conn:
        conn.execute(text(_revision_0025_function()))
    engine.dispose()
    try:
        yield owner
    finally:
        cluster.psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def tile_at(z: int, lon: float, lat: float) -> tuple[int, int]:
    """The x, y of the zoom-``z`` tile holding a WGS84 point."""
    n = 1 << z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return x, y


def tiles_over_city(z: int, limit: int) -> list[tuple[int, int]]:
    """Tiles of zoom ``z`` over the city (at most ``limit``, spread evenly, its edges included)."""
    lon0, lat0 = CENTRE
    half_lon = SIDE_M / 2 / (111_320.0 * math.cos(math.radians(lat0)))
    half_lat = SIDE_M / 2 / 110_574.0
    x0, y1 = tile_at(z, lon0 - half_lon, lat0 - half_lat)
    x1, y0 = tile_at(z, lon0 + half_lon, lat0 + half_lat)
    every = [(x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]
    step = max(1, len(every) // limit)
    return every[::step][:limit]


def features(body: bytes) -> dict[str, dict[int, tuple[object, object]]]:
    """Each layer's features by id: (properties, geometry), as a client decodes them."""
    tile = mapbox_vector_tile.decode(body)
    out: dict[str, dict[int, tuple[object, object]]] = {}
    for layer, content in tile.items():
        by_id: dict[int, tuple[object, object]] = {}
        for f in content["features"]:
            assert f["id"] not in by_id, (layer, f["id"])
            by_id[f["id"]] = (f["properties"], f["geometry"])
        out[layer] = by_id
    return out


def scopes(conn) -> dict[str, tuple[list[int] | None, list[int]]]:  # type: ignore[no-untyped-def]
    """(scope, outline) of an admin, of a community's head (its subtree; its street drawn as an
    outline) and of a micro-grid's worker."""
    community = conn.execute(
        text("SELECT id FROM grid WHERE level = 2 AND valid_to IS NULL ORDER BY code LIMIT 1")
    ).scalar()
    subtree = list(
        conn.execute(
            text(
                """WITH RECURSIVE t AS (SELECT id FROM grid WHERE id = :c
                   UNION ALL SELECT g.id FROM grid g JOIN t ON g.parent_id = t.id
                   WHERE g.valid_to IS NULL) SELECT id FROM t"""
            ),
            {"c": community},
        ).scalars()
    )
    street = conn.execute(
        text("SELECT parent_id FROM grid WHERE id = :c"), {"c": community}
    ).scalar()
    micro = conn.execute(
        text(
            "SELECT id, parent_id FROM grid WHERE level = 4 AND valid_to IS NULL "
            "ORDER BY code LIMIT 1 OFFSET 4321"
        )
    ).first()
    return {
        "admin": (None, []),
        "community": (subtree, [street]),
        "micro-grid": ([micro[0]], [micro[1]]),
    }


def test_tiles_hold_the_same_features_as_revision_0025s(city: str) -> None:
    """Every feature of every layer (id, properties, geometry) is the same in the new and the
    old function's tile, at zooms 10–17, for an admin, a community and a micro-grid."""
    engine = create_engine(city)
    compared = dense = ordinary = 0
    try:
        with engine.connect() as conn:
            for who, (scope, outline) in scopes(conn).items():
                for z in range(10, 18):
                    for x, y in tiles_over_city(z, 12 if z >= 15 else 40):
                        args = {"z": z, "x": x, "y": y, "s": scope, "o": outline}
                        new, old = (
                            bytes(
                                conn.execute(
                                    text(
                                        f"SELECT {fn}(:z, :x, :y, CAST(:s AS integer[]), "
                                        "CAST(:o AS integer[]))"
                                    ),
                                    args,
                                ).scalar()
                            )
                            for fn in ("gridgov_tile_grids", "test_old_tile_grids")
                        )
                        got, want = features(new), features(old)
                        assert got == want, (who, z, x, y)
                        grids = want.get("grids", {})
                        if len(grids) > DENSE:
                            dense += 1
                            assert "grid_labels" not in want
                        elif grids:
                            ordinary += 1
                        compared += len(grids)
    finally:
        engine.dispose()
    # The comparison saw dense tiles (ids only) of every scope that has them and ordinary ones.
    assert dense >= 4 and ordinary >= 100 and compared > 20_000, (dense, ordinary, compared)


def pages_of_dense_tile(conn) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(rows, distinct heap pages) of the band-3 rows of the densest z13 tile over the city."""
    best = (0, 0)
    for x, y in tiles_over_city(13, 100):
        rows, pages = conn.execute(
            text(
                "SELECT count(*), count(DISTINCT (ctid::text::point)[0]) FROM grid_tile "
                "WHERE band = 3 AND geom && ST_TileEnvelope(13, :x, :y)"
            ),
            {"x": x, "y": y},
        ).one()
        best = max(best, (rows, pages))
    return best


def test_a_dense_tiles_rows_share_pages_after_import_and_recount(city: str) -> None:
    """The import wrote the rows of a dense tile on neighbouring pages (a few rows a page, not
    one), and a household count refresh of every grid, which rewrites every row, keeps them
    there."""
    engine = create_engine(city)
    try:
        with engine.connect() as conn:
            rows, pages = pages_of_dense_tile(conn)
            assert rows > DENSE
            assert pages * 5 < rows, (rows, pages)
            conn.execute(text("UPDATE grid SET household_count = household_count + 7"))
            after_rows, after_pages = pages_of_dense_tile(conn)
            assert after_rows == rows
            assert after_pages * 5 < after_rows, (after_rows, after_pages)
            assert (
                conn.execute(
                    text("SELECT count(*) FROM grid_tile WHERE household_count < 7")
                ).scalar()
                == 0
            )
            conn.rollback()
    finally:
        engine.dispose()


def test_a_tiles_households_share_pages_after_an_import(city: str) -> None:
    """Households given in no order in space go in along a space-filling curve: the bare
    points of a z16 tile (what the map reads from the household table) and a z15 tile's lie a
    few to a page, not one a page. (The import is rolled back: the tests above see no
    households.)"""
    app = create_app({"DATABASE_URL": city, "TESTING": True})
    try:
        with app.app_context():
            session = get_db().session()
            try:
                shuffled = city_households().sample(frac=1.0, random_state=11)
                importer.import_households(session, shuffled, source="city households")
                for z in (16, 15):
                    x, y = tile_at(z, *CENTRE)
                    rows, pages = session.execute(
                        text(
                            "SELECT count(*), count(DISTINCT (ctid::text::point)[0]) "
                            "FROM household "
                            "WHERE geom && ST_Transform(ST_TileEnvelope(:z, :x, :y), 4326)"
                        ),
                        {"z": z, "x": x, "y": y},
                    ).one()
                    assert rows > 80, (z, rows)
                    assert pages * 10 < rows, (z, rows, pages)
            finally:
                session.rollback()
                session.close()
    finally:
        app.extensions["gridgov_db"].dispose()
