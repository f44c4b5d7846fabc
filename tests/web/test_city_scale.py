"""The e-map at city scale: a generated city of 10,000 micro-grids in a database of its own
(built once for this module, dropped afterwards). The page stays small and opens on the city;
a click opens a micro-grid's notice board; a split made on the map and its undo show on the
next tiles (drawn by MapLibre, and decoded from the server's tile)."""

from __future__ import annotations

import gzip
import json
import math
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import mapbox_vector_tile
import pytest
from shapely.geometry import shape
from sqlalchemy import text

from app import create_app
from app.db import get_db, transaction
from app.services import importer
from app.services import users as user_svc
from tests.conftest import LIVE_SETTINGS, TEST_PASSWORD, copy_database, own_database
from tests.own_server import own_server
from tests.web.city import CENTRE, city_grids, city_households
from tests.web.emap_page import click_vertex, free_spot, rendered_grids

pytestmark = pytest.mark.browser


@dataclass
class City:
    base: str
    token: str
    cookie: str
    app: object

    def get(self, path: str) -> bytes:
        req = urllib.request.Request(
            self.base + path, headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=60) as res:
            return res.read()


@pytest.fixture(scope="module")
def city(cluster, migrated_template: str) -> Iterator[City]:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    name = own_database("gridgov_city")
    # The app's role; migrated by the owner (a copy of the run's migrated template).
    url = copy_database(cluster, migrated_template, name)
    app = create_app({"DATABASE_URL": url, "TESTING": True, "SESSION_IDLE_MINUTES": 600})
    with app.app_context():
        session = get_db().session()
        with transaction(session):
            importer.import_grids(session, city_grids(), source="city grids")
            importer.import_households(session, city_households(), source="city households")
            importer.refresh_household_counts(session)
            user = user_svc.create_user(session, "city-admin", "admin", TEST_PASSWORD)
            limits = dict(user_svc.DEFAULT_LIMITS, SESSION_IDLE_MINUTES=600)
            token = user_svc.start_session(session, user, None, limits, kind="token").token
            cookie = user_svc.start_session(session, user, None, limits).token
        session.close()
    print(f"city built in {time.monotonic() - started:.1f} s")
    # Served by gunicorn, as in production; the in-process app reads the database for the checks.
    try:
        with own_server(
            url, threads=8, workers=2, app_spec="tests.own_server:testing_app()", **LIVE_SETTINGS
        ) as server:
            yield City(server.base, token, cookie, app)
    finally:
        app.extensions["gridgov_db"].dispose()
        cluster.psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def tile_codes(city: City, lon: float, lat: float, z: int = 16) -> set[str]:
    """Codes of the grids in the server's tile over a point (decoded MVT)."""
    n = 1 << z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    raw = city.get(f"/tiles/grids/{z}/{x}/{y}.mvt")
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    tile = mapbox_vector_tile.decode(raw)
    return {f["properties"]["code"] for f in tile.get("grids", {}).get("features", [])}


RENDERED_CODES = """() => { const out = new Set();
  GridGov.gl.queryRenderedFeatures({layers: ['grids-line-4', 'grids-fill-4']})
    .forEach(f => out.add(f.properties.code));
  return Array.from(out); }"""


def test_city_emap_click_split_and_undo_show_on_the_next_tiles(city: City, browser) -> None:  # type: ignore[no-untyped-def]
    # The page stays small whatever the data, and opens on the city (not a fixed place).
    ctx = browser.new_context(
        viewport={"width": 1400, "height": 900}, locale="zh-CN", bypass_csp=True
    )
    ctx.add_cookies(
        [
            {
                "name": "gridgov_session",
                "value": city.cookie,
                "url": city.base,
                "httpOnly": True,
                "secure": True,
                "sameSite": "Lax",
            }
        ]
    )
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        res = page.goto(city.base + "/emap")
        assert res is not None and res.status == 200
        assert len(res.body()) < 300_000
        page.wait_for_selector("html[data-emap-ready='1']", timeout=30000)
        centre = page.evaluate(
            "() => { const c = GridGov.map.getCenter(); return [c.lng, c.lat]; }"
        )
        assert abs(centre[0] - CENTRE[0]) < 0.05 and abs(centre[1] - CENTRE[1]) < 0.05

        # A micro-grid in the middle of the city: click it, its notice board opens.
        with city.app.app_context():  # type: ignore[attr-defined]
            s = get_db().session()
            gid, code, name, gj = s.execute(
                text(
                    "SELECT id, code, name, ST_AsGeoJSON(geom) FROM grid WHERE level = 4 AND valid_to IS NULL"
                    " AND ST_Covers(geom, ST_SetSRID(ST_MakePoint(:x, :y), 4326)) LIMIT 1"
                ),
                {"x": CENTRE[0] + 0.0003, "y": CENTRE[1] + 0.0003},
            ).one()
            s.close()
        geometry = json.loads(gj)
        minx, miny, maxx, maxy = shape(geometry).bounds
        w, h = maxx - minx, maxy - miny
        mid = ((minx + maxx) / 2, (miny + maxy) / 2)
        page.evaluate(
            "([lon, lat]) => { GridGov.map.removeLayer(GridGov.layers.households);"
            " GridGov.map.setView([lat, lon], 18, {animate: false}); GridGov.map.panBy([-150, 0], {animate: false}); }",
            list(mid),
        )
        assert code in rendered_grids(page) or gid in rendered_grids(page, 4)
        spot = free_spot(page, geometry)
        assert spot, "no free spot inside the micro-grid to click"
        page.mouse.click(spot["x"], spot["y"])
        page.wait_for_selector(f".gg-board[data-grid-id='{gid}']", timeout=10000)
        assert page.inner_text(".gg-board .gg-name") == name
        assert code in tile_codes(city, *mid)

        # Split it on the map (edit mode: select, draw a line across, confirm).
        page.click("#gg-edit-toggle")
        page.mouse.click(spot["x"], spot["y"])
        page.wait_for_selector(f".gg-selected[data-grid-id='{gid}']", timeout=10000)
        page.click("#gg-split")
        for lon, lat in ((minx + 0.5 * w, miny - 0.2 * h), (minx + 0.5 * w, maxy + 0.2 * h)):
            p = page.evaluate(
                """([lon, lat]) => { const p = GridGov.map.latLngToContainerPoint([lat, lon]);
                                     const r = GridGov.map.getContainer().getBoundingClientRect();
                                     return {x: r.left + p.x, y: r.top + p.y}; }""",
                [lon, lat],
            )
            click_vertex(page, p["x"], p["y"])
        page.keyboard.press("Enter")
        page.wait_for_selector("#gg-preview, #gg-error", timeout=20000)
        assert page.query_selector("#gg-error") is None, page.inner_text("#gg-error")
        page.click("#gg-confirm")
        page.wait_for_selector("#gg-saved, #gg-error", timeout=20000)
        assert page.query_selector("#gg-error") is None, page.inner_text("#gg-error")
        parts = page.evaluate(
            "() => Array.from(document.querySelectorAll('#gg-edit-body table.gg-result tbody tr'))"
            ".map(tr => tr.cells[1].innerText.trim())"
        )
        assert len(parts) == 2 and code not in parts
        # The next tiles show the parts, not the grid split.
        page.evaluate("() => GridGov.tilesIdle()")
        drawn = set(page.evaluate(RENDERED_CODES))
        assert set(parts) <= drawn and code not in drawn
        served = tile_codes(city, *mid)
        assert set(parts) <= served and code not in served

        # Undo it (select a part, its history, undo): the next tiles show it whole again.
        left = {
            "type": "Polygon",
            "coordinates": [
                [
                    [minx, miny],
                    [minx + 0.5 * w, miny],
                    [minx + 0.5 * w, maxy],
                    [minx, maxy],
                    [minx, miny],
                ]
            ],
        }
        spot = free_spot(page, left)
        assert spot, "no free spot inside the part to click"
        page.mouse.click(spot["x"], spot["y"])
        page.wait_for_selector(".gg-selected", timeout=10000)
        page.click("#gg-history")
        page.wait_for_selector("#gg-edit-body button[data-act='undo']", timeout=10000)
        page.click("#gg-edit-body button[data-act='undo'] >> nth=0")
        page.wait_for_selector("#gg-saved, #gg-error", timeout=20000)
        assert "已撤销" in page.inner_text("#gg-saved")
        page.evaluate("() => GridGov.tilesIdle()")
        drawn = set(page.evaluate(RENDERED_CODES))
        assert code in drawn and not set(parts) & drawn
        served = tile_codes(city, *mid)
        assert code in served and not set(parts) & served
        assert errors == []
    finally:
        ctx.close()


def decoded_tile(city: City, z: int, lon: float, lat: float) -> tuple[tuple[int, int], dict]:
    n = 1 << z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    raw = city.get(f"/tiles/grids/{z}/{x}/{y}.mvt")
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return (x, y), mapbox_vector_tile.decode(raw)


def test_city_dense_tiles_carry_ids_and_the_hover_fetches_the_name(city: City, browser) -> None:  # type: ignore[no-untyped-def]
    # Zoom 13 over the city: thousands of micro-grids in one tile, each with its id and level
    # only (no names to encode), and every grid of the tile is there.
    (x, y), tile = decoded_tile(city, 13, *CENTRE)
    feats = tile["grids"]["features"]
    assert len(feats) > 1000
    assert all(set(f["properties"]) <= {"level", "outline"} for f in feats)
    assert "grid_labels" not in tile
    with city.app.app_context():  # type: ignore[attr-defined]
        s = get_db().session()
        expected = set(
            s.scalars(
                text(
                    "SELECT id FROM grid WHERE valid_to IS NULL AND level <= 4 AND geom && "
                    "ST_Transform(ST_TileEnvelope(13, :x, :y), 4326) AND ST_Intersects("
                    "ST_Transform(geom, 3857), ST_TileEnvelope(13, :x, :y, margin => 64.0 / 4096))"
                ),
                {"x": x, "y": y},
            )
        )
        # A community-level grid near the centre (the deepest level tinted at that zoom).
        gid = s.execute(
            text(
                "SELECT id FROM grid WHERE level = 3 AND valid_to IS NULL"
                " AND ST_Covers(geom, ST_SetSRID(ST_MakePoint(:x, :y), 4326))"
            ),
            {"x": CENTRE[0] + 0.0031, "y": CENTRE[1] + 0.0027},
        ).scalar_one()
        s.close()
    assert {f["id"] for f in feats} == expected
    # A tile of few grids still carries their names.
    _, sparse = decoded_tile(city, 16, *CENTRE)
    assert all(f["properties"].get("name") for f in sparse["grids"]["features"])

    # In the browser, the pointer resting on a grid drawn from the dense tile shows its name.
    ctx = browser.new_context(viewport={"width": 1200, "height": 800}, locale="zh-CN")
    ctx.add_cookies(
        [
            {
                "name": "gridgov_session",
                "value": city.cookie,
                "url": city.base,
                "httpOnly": True,
                "secure": True,
                "sameSite": "Lax",
            }
        ]
    )
    page = ctx.new_page()
    try:
        page.goto(city.base + "/emap")
        page.wait_for_selector("html[data-emap-ready='1']", timeout=30000)
        spot = [CENTRE[0] + 0.0031, CENTRE[1] + 0.0027]
        page.evaluate(
            "([lon, lat]) => { GridGov.map.removeLayer(GridGov.layers.households);"
            " GridGov.map.setView([lat, lon], 14, {animate: false}); }",
            spot,
        )
        page.evaluate("() => GridGov.tilesIdle()")
        assert gid in page.evaluate("() => GridGov.renderedGrids(3)")
        p = page.evaluate(
            """([lon, lat]) => { const p = GridGov.map.latLngToContainerPoint([lat, lon]);
                                 const r = GridGov.map.getContainer().getBoundingClientRect();
                                 return {x: r.left + p.x, y: r.top + p.y}; }""",
            spot,
        )
        page.mouse.move(p["x"], p["y"])
        page.mouse.move(p["x"] + 1, p["y"] + 1)
        # The grid drawn under the pointer (from the dense tile: an id, no name).
        under = page.evaluate(
            """(p) => { const r = GridGov.map.getContainer().getBoundingClientRect();
                 const ll = GridGov.map.containerPointToLatLng([p.x + 1 - r.left, p.y + 1 - r.top]);
                 const q = GridGov.glPoint(ll);
                 return GridGov.gl.queryRenderedFeatures([q.x, q.y],
                   {layers: ['grids-fill-3']}).map(f => [f.id, f.properties.name || null]); }""",
            p,
        )
        assert len(under) == 1 and under[0][1] is None, under
        with city.app.app_context():  # type: ignore[attr-defined]
            s = get_db().session()
            name = s.scalar(text("SELECT name FROM grid WHERE id = :g"), {"g": under[0][0]})
            s.close()
        tip = "() => Array.from(document.querySelectorAll('.leaflet-tooltip.gg-hover')).map(el => el.textContent).join()"
        try:
            page.wait_for_function(
                "(name) => Array.from(document.querySelectorAll('.leaflet-tooltip.gg-hover'))"
                ".some(el => el.textContent.includes(name))",
                arg=name,
                timeout=15000,
            )
        except Exception:
            raise AssertionError(f"tooltip shows {page.evaluate(tip)!r}, not {name!r}") from None
    finally:
        ctx.close()
