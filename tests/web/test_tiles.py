"""Vector tiles: cut by PostGIS, scoped to the caller, new on the next request after an edit.

Tiles are decoded with ``mapbox-vector-tile`` (an implementation independent of PostGIS) and
their features compared with what the caller may see and with the database.
"""

from __future__ import annotations

import gzip
import math

import mapbox_vector_tile
import pytest
from sqlalchemy import text

from tests.auth.conftest import bearer

STREET_A, STREET_B = "340188001", "340188101"
OWN_MICRO = "3401880010010101"


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    n = 1 << z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return z, x, y


def decode(res) -> dict:  # type: ignore[no-untyped-def]
    assert res.status_code == 200, res.get_data(as_text=True)
    assert res.mimetype == "application/vnd.mapbox-vector-tile"
    raw = res.get_data()
    if res.headers.get("Content-Encoding") == "gzip":
        raw = gzip.decompress(raw)
    return mapbox_vector_tile.decode(raw)


def features(tile: dict, layer: str) -> list[dict]:
    return tile.get(layer, {}).get("features", [])


def centre_of(db_session, code: str) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    row = db_session.execute(
        text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM grid "
            "WHERE code = :c AND valid_to IS NULL) s"
        ),
        {"c": code},
    ).one()
    return row[0], row[1]


def grid_ids_under(db_session, code: str) -> set[int]:  # type: ignore[no-untyped-def]
    return set(
        db_session.scalars(
            text(
                """WITH RECURSIVE t AS (SELECT id FROM grid WHERE code = :c AND valid_to IS NULL
                   UNION SELECT g.id FROM grid g JOIN t ON g.parent_id = t.id WHERE g.valid_to IS NULL)
                   SELECT id FROM t"""
            ),
            {"c": code},
        )
    )


def test_admin_tile_holds_the_grids_of_the_tile_with_labels(client, db_session) -> None:  # type: ignore[no-untyped-def]
    lon, lat = centre_of(db_session, STREET_A)
    z, x, y = tile_of(lon, lat, 12)
    t = decode(client.get(f"/tiles/grids/{z}/{x}/{y}.mvt", headers={"Accept-Encoding": "gzip"}))
    got = {f["properties"]["code"] for f in features(t, "grids")}
    # Independent: the current grids of levels <= 3 whose box meets the tile's box.
    n = 1 << z
    west, east = x / n * 360 - 180, (x + 1) / n * 360 - 180
    north = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * y / n))))
    south = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * (y + 1) / n))))
    expected = set(
        db_session.scalars(
            text(
                "SELECT code FROM grid WHERE valid_to IS NULL AND level <= 3 AND "
                "ST_Intersects(geom, ST_MakeEnvelope(:w, :s, :e, :n, 4326))"
            ),
            {"w": west, "s": south, "e": east, "n": north},
        )
    )
    assert got == expected and STREET_A in got
    labels = {f["properties"]["name"] for f in features(t, "grid_labels")}
    assert labels and labels <= {f["properties"]["name"] for f in features(t, "grids")}
    assert all(not f["properties"]["outline"] for f in features(t, "grids"))


@pytest.mark.parametrize("role", ["centre", "worker", "party_member", "department"])
def test_a_tile_holds_only_the_callers_grids(app, db_session, accounts, role: str) -> None:  # type: ignore[no-untyped-def]
    c = app.test_client()
    acct = accounts[role]
    shown: dict[int, bool] = {}
    homes = 0
    for place in (OWN_MICRO, STREET_A, STREET_B):
        lon, lat = centre_of(db_session, place)
        for z in (12, 15, 16):
            zz, x, y = tile_of(lon, lat, z)
            t = decode(c.get(f"/tiles/grids/{zz}/{x}/{y}.mvt", headers=bearer(acct)))
            for f in features(t, "grids"):
                shown[f["id"]] = f["properties"]["outline"]
            hh = decode(c.get(f"/tiles/households/{zz}/{x}/{y}.mvt", headers=bearer(acct)))
            homes += sum(f["properties"]["households"] for f in features(hh, "households"))
            for f in features(hh, "households"):
                assert set(f["properties"]) <= {"households", "people"}  # never personal data
    other = grid_ids_under(db_session, STREET_B)
    assert not (set(shown) & other), "another street's grids in the tile"
    if role == "department":
        assert shown == {} and homes == 0
        return
    scope = (
        grid_ids_under(db_session, STREET_A)
        if role == "centre"
        else set(
            db_session.scalars(
                text("""WITH RECURSIVE t AS (SELECT grid_id AS id FROM grid_assignment a
                    JOIN worker w ON w.id = a.worker_id WHERE w.code = :w
                    UNION SELECT g.id FROM grid g JOIN t ON g.parent_id = t.id)
                    SELECT id FROM t"""),
                {"w": {"worker": "W00005", "party_member": "W00010"}[role]},
            )
        )
    )
    full = {gid for gid, outline in shown.items() if not outline}
    assert full and full <= scope
    assert all(gid not in scope for gid, outline in shown.items() if outline)
    assert homes > 0


def test_an_edit_shows_on_the_next_tile(client, db_session) -> None:  # type: ignore[no-untyped-def]
    lon, lat = centre_of(db_session, OWN_MICRO)
    z, x, y = tile_of(lon, lat, 16)
    url = f"/tiles/grids/{z}/{x}/{y}.mvt"
    before = client.get(url)
    names = {
        f["properties"]["code"]: f["properties"]["name"] for f in features(decode(before), "grids")
    }
    assert OWN_MICRO in names
    etag = before.headers["ETag"]
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    gid, version = db_session.execute(
        text("SELECT id, version FROM grid WHERE code = :c AND valid_to IS NULL"), {"c": OWN_MICRO}
    ).one()
    res = client.patch(
        f"/api/grids/{gid}",
        json={
            "type": "Feature",
            "geometry": None,
            "properties": {"name": "改名后的微网格", "version": version},
        },
    )
    assert res.status_code == 200, res.get_json()
    after = client.get(url, headers={"If-None-Match": etag})
    assert after.status_code == 200
    names = {
        f["properties"]["code"]: f["properties"]["name"] for f in features(decode(after), "grids")
    }
    assert names[OWN_MICRO] == "改名后的微网格"


def test_bad_tile_addresses_are_refused(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/tiles/grids/25/0/0.mvt").status_code == 400
    assert client.get("/tiles/grids/3/8/0.mvt").status_code == 400
    assert client.get("/tiles/secrets/3/1/1.mvt").status_code == 404


def test_tiles_need_an_account(anon_client) -> None:  # type: ignore[no-untyped-def]
    assert anon_client.get("/tiles/grids/12/3381/1662.mvt").status_code == 401


def server_timing(res) -> dict[str, float]:  # type: ignore[no-untyped-def]
    out = {}
    for part in res.headers["Server-Timing"].split(","):
        name, dur = part.strip().split(";dur=")
        out[name] = float(dur)
    return out


def test_a_tile_says_where_its_time_went(client, db_session) -> None:  # type: ignore[no-untyped-def]
    """Server-Timing: a tile cut anew has its cut, its gzip and its store (grids are kept in
    the shared cache); a tile from the process's memory has no cut; phases fit in the total."""
    from app.services import tiles as svc

    lon, lat = centre_of(db_session, OWN_MICRO)
    z, x, y = tile_of(lon, lat, 15)
    db_session.execute(text("DELETE FROM tile_cache"))
    svc.CACHE.clear()
    cold = client.get(f"/tiles/grids/{z}/{x}/{y}.mvt")
    assert features(decode(cold), "grids")
    t = server_timing(cold)
    assert {"auth", "version", "lookup", "cut", "gzip", "store", "gc", "total"} <= set(t)
    assert all(v >= 0 for v in t.values())
    assert t["cut"] > 0
    assert sum(v for k, v in t.items() if k not in ("total", "gc")) <= t["total"] + 0.2
    warm = server_timing(client.get(f"/tiles/grids/{z}/{x}/{y}.mvt"))
    assert "cut" not in warm and "store" not in warm
    households = server_timing(client.get(f"/tiles/households/{z}/{x}/{y}.mvt"))
    assert "cut" in households and "store" not in households
