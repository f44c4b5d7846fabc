"""The tables behind fast tiles stay exact: household density per cell and leaf grid (kept by
triggers on every insert, COPY, move and delete), the same per grid for everything below it
(also kept when a grid moves in the tree), and pre-simplified grids per zoom band (kept on every
edit, split and undo), so low-zoom tiles show the data as it is now and only the caller's."""

from __future__ import annotations

import json
import math
from collections import defaultdict

import pandas as pd
from shapely.geometry import LineString, mapping, shape
from sqlalchemy import text

from app.services.importer import copy_frame
from tests.auth.conftest import bearer
from tests.web.test_tiles import (
    OWN_MICRO,
    STREET_A,
    STREET_B,
    centre_of,
    decode,
    features,
    grid_ids_under,
    tile_of,
)

CELL_ZOOMS = range(10, 15)
SUBTREE_ZOOMS = range(10, 13)


def expected_cells(db_session) -> dict[tuple[int, int, int, int], tuple[int, int, float, float]]:  # type: ignore[no-untyped-def]
    """Households and people per (grid, zoom, cell) counted here from the households themselves."""
    out: dict[tuple[int, int, int, int], list[float]] = defaultdict(lambda: [0, 0, 0.0, 0.0])
    for gid, lon, lat, people in db_session.execute(
        text("SELECT grid_id, ST_X(geom), ST_Y(geom), people FROM household")
    ):
        fx = (lon + 180.0) / 360.0
        fy = (1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0
        for z in CELL_ZOOMS:
            n = 1 << (z + 6)
            cell = (z, int(fx * n), int(fy * n))
            for key in ((gid, *cell), (0, *cell)):
                acc = out[key]
                acc[0] += 1
                acc[1] += people
                acc[2] += fx
                acc[3] += fy
    return {k: (int(v[0]), int(v[1]), v[2], v[3]) for k, v in out.items()}


def expected_subtree_cells(
    db_session,
) -> dict[tuple[int, int, int, int], tuple[int, int, float, float]]:  # type: ignore[no-untyped-def]
    """Households and people per (grid, zoom, cell) of the households of every grid below it,
    counted here from the households and the parents of their grids."""
    parent = dict(db_session.execute(text("SELECT id, parent_id FROM grid")).all())
    out: dict[tuple[int, int, int, int], list[float]] = defaultdict(lambda: [0, 0, 0.0, 0.0])
    for gid, lon, lat, people in db_session.execute(
        text("SELECT grid_id, ST_X(geom), ST_Y(geom), people FROM household")
    ):
        fx = (lon + 180.0) / 360.0
        fy = (1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0
        above = parent[gid]
        while above is not None:
            for z in SUBTREE_ZOOMS:
                n = 1 << (z + 6)
                acc = out[(above, z, int(fx * n), int(fy * n))]
                acc[0] += 1
                acc[1] += people
                acc[2] += fx
                acc[3] += fy
            above = parent[above]
    return {k: (int(v[0]), int(v[1]), v[2], v[3]) for k, v in out.items()}


def stored_cells(
    db_session, table: str = "household_cell"
) -> dict[tuple[int, int, int, int], tuple[int, int, float, float]]:  # type: ignore[no-untyped-def]
    return {
        (g, z, cx, cy): (n, p, sx, sy)
        for g, z, cx, cy, n, p, sx, sy in db_session.execute(
            text(f"SELECT grid_id, z, cx, cy, households, people, sx, sy FROM {table}")
        )
    }


def assert_cells_exact(db_session) -> None:  # type: ignore[no-untyped-def]
    for want, got in (
        (expected_cells(db_session), stored_cells(db_session)),
        (expected_subtree_cells(db_session), stored_cells(db_session, "household_subtree_cell")),
    ):
        assert set(got) == set(want)
        for key, (n, p, sx, sy) in want.items():
            gn, gp, gsx, gsy = got[key]
            assert (gn, gp) == (n, p), key
            assert abs(gsx - sx) < 1e-7 and abs(gsy - sy) < 1e-7, key


def assert_grid_tiles_current(db_session) -> None:  # type: ignore[no-untyped-def]
    """Every current grid, and nothing else, in each zoom band that shows its level, with its
    code, name and household count of now."""
    want = set(
        db_session.execute(
            text(
                "SELECT g.id, b.band, g.code, g.name, g.household_count FROM grid g "
                "JOIN (VALUES (1, 2), (2, 3), (3, 4), (4, 5)) AS b(band, deepest) ON g.level <= b.deepest "
                "WHERE g.valid_to IS NULL"
            )
        ).all()
    )
    got = set(
        db_session.execute(
            text("SELECT grid_id, band, code, name, household_count FROM grid_tile")
        ).all()
    )
    assert got == want


def test_density_cells_follow_every_household_change(db_session) -> None:  # type: ignore[no-untyped-def]
    assert_cells_exact(db_session)
    gid, lon, lat = db_session.execute(
        text("SELECT h.grid_id, ST_X(h.geom), ST_Y(h.geom) FROM household h ORDER BY h.id LIMIT 1")
    ).one()
    other = db_session.scalar(
        text("SELECT grid_id FROM household WHERE grid_id <> :g LIMIT 1"), {"g": gid}
    )
    # A row inserted, a bulk COPY (what an import does), a move to another grid, a change of
    # people, a delete.
    db_session.execute(
        text(
            "INSERT INTO household (geom, people, grid_id) VALUES "
            "(ST_SetSRID(ST_MakePoint(:x, :y), 4326), 3, :g)"
        ),
        {"x": lon + 0.0001, "y": lat, "g": gid},
    )
    frame = pd.DataFrame(
        {
            "geom": [f"SRID=4326;POINT({lon + k * 1e-5} {lat - k * 1e-5})" for k in range(500)],
            "people": [k % 5 + 1 for k in range(500)],
            "grid_id": [gid if k % 2 else other for k in range(500)],
        }
    )
    copy_frame(db_session, "household", frame)
    db_session.execute(
        text(
            "UPDATE household SET grid_id = :o, geom = ST_Translate(geom, 0.002, 0.001) "
            "WHERE id IN (SELECT id FROM household WHERE grid_id = :g ORDER BY id LIMIT 40)"
        ),
        {"g": gid, "o": other},
    )
    db_session.execute(
        text(
            "UPDATE household SET people = people + 1 WHERE id IN "
            "(SELECT id FROM household ORDER BY id DESC LIMIT 30)"
        )
    )
    db_session.execute(
        text(
            "DELETE FROM household WHERE id IN (SELECT id FROM household WHERE grid_id = :o "
            "ORDER BY id LIMIT 300)"
        ),
        {"o": other},
    )
    assert_cells_exact(db_session)
    # No empty cell is kept.
    assert not db_session.scalar(text("SELECT count(*) FROM household_cell WHERE households <= 0"))
    assert not db_session.scalar(
        text("SELECT count(*) FROM household_subtree_cell WHERE households <= 0")
    )


def test_a_grid_that_moves_in_the_tree_takes_its_households_density_along(db_session) -> None:  # type: ignore[no-untyped-def]
    """A grid moved under another parent (its whole subtree with it) leaves the density of the
    grids it left and adds to those it joined; moved back, everything is as before."""
    assert_cells_exact(db_session)
    before = stored_cells(db_session, "household_subtree_cell")
    grid, old_parent = db_session.execute(
        text(
            "SELECT g.id, g.parent_id FROM grid g WHERE g.valid_to IS NULL AND g.level = 3 "
            "AND EXISTS (SELECT 1 FROM household h JOIN grid m ON m.id = h.grid_id "
            "WHERE g.id = ANY(m.path)) ORDER BY g.id LIMIT 1"
        )
    ).one()

    def street_of(gid: int) -> int:
        return db_session.scalar(
            text(
                "SELECT s.id FROM grid g JOIN grid s ON s.id = ANY(g.path) AND s.level = 1 "
                "WHERE g.id = :g"
            ),
            {"g": gid},
        )

    street_left = street_of(old_parent)
    new_parent = db_session.scalar(
        text(
            "SELECT id FROM grid WHERE valid_to IS NULL AND level = 2 AND NOT (:s = ANY(path)) "
            "ORDER BY id LIMIT 1"
        ),
        {"s": street_left},
    )
    street_joined = street_of(new_parent)
    db_session.execute(
        text("UPDATE grid SET parent_id = :n WHERE id = :g"), {"n": new_parent, "g": grid}
    )
    assert_cells_exact(db_session)
    moved = stored_cells(db_session, "household_subtree_cell")
    households = db_session.scalar(
        text(
            "SELECT count(*) FROM household h JOIN grid m ON m.id = h.grid_id "
            "WHERE :g = ANY(m.path)"
        ),
        {"g": grid},
    )

    def total(cells, gid: int) -> int:  # type: ignore[no-untyped-def]
        return sum(v[0] for k, v in cells.items() if k[0] == gid and k[1] == 10)

    assert total(moved, street_left) == total(before, street_left) - households
    assert total(moved, street_joined) == total(before, street_joined) + households
    db_session.execute(
        text("UPDATE grid SET parent_id = :p WHERE id = :g"), {"p": old_parent, "g": grid}
    )
    assert_cells_exact(db_session)


def test_density_tiles_count_the_callers_households(app, db_session, accounts) -> None:  # type: ignore[no-untyped-def]
    """At every zoom, the households of a tile add up to the households of the caller's grids
    in the tile's envelope (a direct count)."""
    c = app.test_client()
    lon, lat = centre_of(db_session, STREET_A)
    street = grid_ids_under(db_session, STREET_A)
    for who, scope in (
        ("admin", None),
        ("centre", street),
        ("grid_chief", grid_ids_under(db_session, "34018800100101")),
        ("micro_chief", grid_ids_under(db_session, OWN_MICRO)),
    ):
        for z in (9, 10, 12, 14, 15, 16):
            zz, x, y = tile_of(lon, lat, z)
            for dx in (-1, 0, 1):
                t = decode(
                    c.get(f"/tiles/households/{zz}/{x + dx}/{y}.mvt", headers=bearer(accounts[who]))
                )
                got = sum(f["properties"]["households"] for f in features(t, "households"))
                want = db_session.scalar(
                    text(
                        "SELECT count(*) FROM household h WHERE ST_Intersects(ST_Transform(h.geom, 3857), "
                        "ST_TileEnvelope(:z, :x, :y)) AND (CAST(:s AS integer[]) IS NULL "
                        "OR h.grid_id = ANY(CAST(:s AS integer[])))"
                    ),
                    {"z": zz, "x": x + dx, "y": y, "s": None if scope is None else sorted(scope)},
                )
                assert got == want, (who, z, dx)
                if who == "centre" and z == 10 and dx == 0:
                    assert 0 < got < db_session.scalar(text("SELECT count(*) FROM household"))


def test_a_tile_from_the_callers_roots_is_the_tile_from_each_of_its_grids(db_session) -> None:  # type: ignore[no-untyped-def]
    """The density tile made from the roots of a scope (each root's cells and its subtree's, or
    the cells in the tile kept by the scope) is byte for byte the one made by probing every grid
    of the scope, at every zoom of the cells, also when one root lies under another or the roots
    lie in two streets."""
    street = db_session.scalar(
        text("SELECT id FROM grid WHERE code = :c AND valid_to IS NULL"), {"c": STREET_A}
    )
    micro = db_session.scalar(
        text("SELECT id FROM grid WHERE code = :c AND valid_to IS NULL"), {"c": OWN_MICRO}
    )
    community = db_session.scalar(text("SELECT parent_id FROM grid WHERE id = :m"), {"m": micro})
    far = db_session.scalar(
        text(
            "SELECT h.grid_id FROM household h JOIN grid g ON g.id = h.grid_id "
            "WHERE NOT (:s = ANY(g.path)) ORDER BY h.id LIMIT 1"
        ),
        {"s": street},
    )
    lon, lat = centre_of(db_session, OWN_MICRO)
    call = text(
        "SELECT gridgov_tile_households(:z, :x, :y, CAST(:s AS integer[]), NULL, "
        "CAST(:r AS integer[]))"
    )
    for roots in ([street], [community, micro], [micro, far]):
        scope = sorted(
            db_session.scalars(
                text("SELECT id FROM grid WHERE path && CAST(:r AS integer[])"), {"r": roots}
            )
        )
        shown = 0
        for z in range(8, 17):
            zz, x, y = tile_of(lon, lat, z)
            for dx, dy in ((0, 0), (1, 0), (0, 1), (-1, -1)):
                args = {"z": zz, "x": x + dx, "y": y + dy, "s": scope}
                by_roots = db_session.scalar(call, {**args, "r": roots})
                by_grids = db_session.scalar(call, {**args, "r": None})
                assert bytes(by_roots) == bytes(by_grids), (roots, z, dx, dy)
                shown += len(by_roots)
        assert shown > 0, roots


def test_a_split_and_its_undo_show_on_the_next_low_zoom_tiles(client, db_session) -> None:  # type: ignore[no-untyped-def]
    lon, lat = centre_of(db_session, OWN_MICRO)
    gid, version, geojson = db_session.execute(
        text(
            "SELECT id, version, ST_AsGeoJSON(geom) FROM grid WHERE code = :c AND valid_to IS NULL"
        ),
        {"c": OWN_MICRO},
    ).one()
    geom = shape(json.loads(geojson))
    minx, miny, maxx, maxy = geom.bounds
    mid = (minx + maxx) / 2
    line = mapping(LineString([(mid, miny - 0.001), (mid, maxy + 0.001)]))

    def shown(z: int) -> set[int]:
        zz, x, y = tile_of(lon, lat, z)
        return {
            f["id"] for f in features(decode(client.get(f"/tiles/grids/{zz}/{x}/{y}.mvt")), "grids")
        }

    def households(z: int) -> int:
        zz, x, y = tile_of(lon, lat, z)
        t = decode(client.get(f"/tiles/households/{zz}/{x}/{y}.mvt"))
        return sum(f["properties"]["households"] for f in features(t, "households"))

    assert gid in shown(13) and gid in shown(14) and gid in shown(16)
    before = {z: households(z) for z in (11, 13)}
    res = client.post(f"/api/grids/{gid}/split", json={"line": line, "version": version})
    assert res.status_code == 200, res.get_json()
    parts = {f["id"] for f in res.get_json()["features"]}
    for z in (13, 14, 16):
        now = shown(z)
        assert gid not in now and parts <= now, z
    assert {z: households(z) for z in (11, 13)} == before
    assert_grid_tiles_current(db_session)
    undo = client.post(f"/api/grids/changes/{res.get_json()['change']['id']}/undo")
    assert undo.status_code == 200, undo.get_json()
    for z in (13, 16):
        now = shown(z)
        assert gid in now and not (parts & now), z
    assert_cells_exact(db_session)
    assert_grid_tiles_current(db_session)


def test_stored_tile_shapes_are_what_postgis_cuts(db_session) -> None:  # type: ignore[no-untyped-def]
    """A band's stored tile-unit shape, moved to the tile around it, has the orientation a tile
    needs (the one ST_AsMVTGeom gives) and the same area within 2 %."""
    rows = db_session.execute(
        text(
            """WITH r AS (
                 SELECT b.first, t.geom, t.px, 40075016.685578488 / (2.0 ^ b.first) AS size,
                        floor((ST_X(t.label) + 20037508.342789244) / (40075016.685578488 / (2.0 ^ b.first)))::int AS tx,
                        floor((20037508.342789244 - ST_Y(t.label)) / (40075016.685578488 / (2.0 ^ b.first)))::int AS ty
                 FROM grid_tile t JOIN (VALUES (1, 10), (2, 11), (3, 13), (4, 15)) AS b(band, first)
                   ON b.band = t.band
                 WHERE t.px IS NOT NULL)
               SELECT ST_IsPolygonCCW(m.cut), ST_IsPolygonCCW(m.moved), ST_Area(m.cut), ST_Area(m.moved)
               FROM (SELECT ST_AsMVTGeom(geom, ST_TileEnvelope(first, tx, ty), 4096, 64, false) AS cut,
                            ST_Translate(px, -4096.0 * tx, -4096.0 * ty) AS moved FROM r) m
               WHERE m.cut IS NOT NULL"""
        )
    ).all()
    assert len(rows) > 200
    for cut_ccw, moved_ccw, cut_area, moved_area in rows:
        assert cut_ccw and moved_ccw
        assert abs(moved_area - cut_area) <= 0.02 * cut_area + 2


def cached_tiles(db_session) -> dict[tuple[int, int, int, str], object]:  # type: ignore[no-untyped-def]
    return {
        (z, x, y, s): made
        for z, x, y, s, made in db_session.execute(
            text("SELECT z, x, y, scope, made_at FROM tile_cache WHERE layer = 'grids'")
        )
    }


def test_the_shared_tile_cache_drops_exactly_the_tiles_an_edit_touches(  # type: ignore[no-untyped-def]
    app, db_session, accounts
) -> None:
    """Grid tiles are kept in PostgreSQL for every app process; a rename and a moved boundary
    delete the cached tiles they touch at every zoom (another process, with an empty memory
    cache, then cuts them anew) and keep the others."""
    from app.services import tiles as svc

    c = app.test_client()
    lon, lat = centre_of(db_session, OWN_MICRO)
    far_lon, far_lat = centre_of(db_session, STREET_B)
    gid = db_session.scalar(
        text("SELECT id FROM grid WHERE code = :c AND valid_to IS NULL"), {"c": OWN_MICRO}
    )

    def get(who: str, z: int, x: int, y: int) -> dict:
        return decode(c.get(f"/tiles/grids/{z}/{x}/{y}.mvt", headers=bearer(accounts[who])))

    db_session.execute(text("DELETE FROM tile_cache"))
    svc.CACHE.clear()
    near = [tile_of(lon, lat, z) for z in (11, 13, 15, 17)]
    far = tile_of(far_lon, far_lat, 15)
    assert far not in near
    for who in ("admin", "micro_chief"):
        for t in [*near, far]:
            get(who, *t)
    cached = cached_tiles(db_session)
    assert {k[:3] for k in cached} == {*near, far}
    assert len({k[3] for k in cached}) == 2  # one per scope
    # A second process (no memory cache) reads the stored tile, not a new cut.
    svc.CACHE.clear()
    name = {
        f["properties"]["name"] for f in features(get("admin", *near[2]), "grids") if f["id"] == gid
    }
    assert cached_tiles(db_session) == cached

    db_session.execute(text("UPDATE grid SET name = name || '（新）' WHERE id = :g"), {"g": gid})
    left = cached_tiles(db_session)
    assert {k[:3] for k in left} == {far}, "the renamed grid's tiles are dropped, the far one kept"
    assert all(left[k] == cached[k] for k in left)
    svc.CACHE.clear()
    renamed = {
        f["properties"]["name"] for f in features(get("admin", *near[2]), "grids") if f["id"] == gid
    }
    assert renamed == {n + "（新）" for n in name}

    # A boundary moved east by about 200 m: the new shape shows in the next tile of each zoom.
    for t in near:
        get("admin", *t)
    db_session.execute(
        text("UPDATE grid SET geom = ST_Translate(geom, 0.002, 0) WHERE id = :g"), {"g": gid}
    )
    assert {k[:3] for k in cached_tiles(db_session)} == {far}
    svc.CACHE.clear()
    z, x, y = near[3]
    moved = [f for f in features(get("admin", z, x, y), "grids") if f["id"] == gid]
    want = db_session.scalar(
        text(
            "SELECT ST_Intersects(ST_Transform(geom, 3857), ST_TileEnvelope(:z, :x, :y)) FROM grid WHERE id = :g"
        ),
        {"z": z, "x": x, "y": y, "g": gid},
    )
    assert bool(moved) == bool(want)


def test_a_tile_cut_while_a_change_is_open_is_not_stored(app, database_url) -> None:  # type: ignore[no-untyped-def]
    """While a grid change is uncommitted, a tile request elsewhere is served but not stored,
    so the cache never keeps a tile older than a committed change."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from app.services import tiles as svc

    engine = create_engine(database_url)
    try:
        with Session(engine) as editor, Session(engine) as reader:
            lon, lat = centre_of(editor, OWN_MICRO)
            z, x, y = tile_of(lon, lat, 14)
            scope = svc.Scope(None, (), None, True, None, None, None)
            reader.execute(
                text(
                    "DELETE FROM tile_cache WHERE layer = 'grids' AND z = :z AND x = :x AND y = :y"
                ),
                {"z": z, "x": x, "y": y},
            )
            reader.commit()
            editor.execute(
                text(
                    "UPDATE grid SET name = name || '（改）' WHERE code = :c AND valid_to IS NULL"
                ),
                {"c": OWN_MICRO},
            )
            body = svc.shared_tile(reader, scope, "grids", z, x, y)
            assert features(mapbox_decode(body), "grids")
            reader.commit()
            stored = reader.scalar(
                text(
                    "SELECT count(*) FROM tile_cache WHERE layer = 'grids' AND z = :z "
                    "AND x = :x AND y = :y"
                ),
                {"z": z, "x": x, "y": y},
            )
            assert stored == 0
            editor.rollback()
            svc.shared_tile(reader, scope, "grids", z, x, y)
            stored = reader.scalar(
                text(
                    "SELECT count(*) FROM tile_cache WHERE layer = 'grids' AND z = :z "
                    "AND x = :x AND y = :y"
                ),
                {"z": z, "x": x, "y": y},
            )
            assert stored == 1
            reader.execute(text("DELETE FROM tile_cache WHERE layer = 'grids'"))
            reader.commit()
    finally:
        engine.dispose()


def test_only_the_cache_commits_without_waiting_for_the_disk(app, database_url) -> None:  # type: ignore[no-untyped-def]
    """A stored tile commits without waiting for the disk, but what the request wrote before it
    is committed first and flushed as usual, and the next transaction on the same connection
    (an edit) waits for the disk again."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from app.services import tiles as svc

    def setting(s: Session) -> str:
        return str(s.scalar(text("SHOW synchronous_commit")))

    engine = create_engine(database_url, pool_size=2, max_overflow=0)
    try:
        with Session(engine) as reader, Session(engine) as other:
            lon, lat = centre_of(reader, OWN_MICRO)
            z, x, y = tile_of(lon, lat, 14)
            at = {"z": z, "x": x, "y": y}
            where = "layer = 'grids' AND z = :z AND x = :x AND y IN (:y, :y + 1)"
            scope = svc.Scope(None, (), None, True, None, None, None)
            other.execute(text(f"DELETE FROM tile_cache WHERE {where}"), at)
            other.commit()
            assert setting(reader) == "on"
            # A write of the request before the tile (here another cache row, a logged write).
            reader.execute(
                text(
                    "INSERT INTO tile_cache (layer, z, x, y, scope, body, size) "
                    "VALUES ('grids', :z, :x, :y + 1, 'earlier', '', 0)"
                ),
                at,
            )
            written = reader.scalar(text("SELECT pg_current_wal_insert_lsn()::text"))
            svc.shared_tile(reader, scope, "grids", z, x, y)
            flushed = reader.scalar(
                text("SELECT pg_current_wal_flush_lsn() >= CAST(:w AS pg_lsn)"), {"w": written}
            )
            assert flushed is True, "the request's earlier write waited for the disk"
            assert setting(reader) == "on"
            reader.commit()
            rows = other.execute(
                text(f"SELECT y - :y, scope FROM tile_cache WHERE {where} ORDER BY y"), at
            ).all()
            assert [(d, s == "earlier") for d, s in rows] == [(0, False), (1, True)]
            # A read of a tile whose last use is old writes that use in the same way.
            other.execute(
                text(f"UPDATE tile_cache SET used_at = now() - interval '1 day' WHERE {where}"),
                at,
            )
            other.commit()
            svc.shared_tile(reader, scope, "grids", z, x, y)
            assert setting(reader) == "on"
            used = other.scalar(
                text(
                    "SELECT used_at > now() - interval '1 hour' FROM tile_cache "
                    "WHERE layer = 'grids' AND z = :z AND x = :x AND y = :y"
                ),
                at,
            )
            assert used is True
            reader.commit()
            other.execute(text(f"DELETE FROM tile_cache WHERE {where}"), at)
            other.commit()
    finally:
        engine.dispose()


def mapbox_decode(body: bytes) -> dict:
    import gzip

    import mapbox_vector_tile

    return mapbox_vector_tile.decode(gzip.decompress(body))
