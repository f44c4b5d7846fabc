"""The e-map: every asset from the app (no CDN), and a real browser that draws the grids."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest
from shapely.geometry import shape

from app.services.cases import OVERDUE_COLOR, STATUS_COLORS
from tests.web.emap_page import free_spot, rendered_grids, settle

EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", re.I)
ANY_URL = re.compile(r"https?://[^\s\"'<>)]+")


def test_emap_html_links_no_external_url(client) -> None:  # type: ignore[no-untyped-def]
    res = client.get("/emap")
    assert res.status_code == 200
    html = res.get_data(as_text=True)
    assert 'lang="zh-CN"' in html and "电子地图" in html
    assert not EXTERNAL.search(html)
    # the only absolute URLs allowed are none at all with the default basemap
    assert ANY_URL.findall(html) == []
    for asset in re.findall(r'(?:src|href)="(/[^"]+)"', html):
        assert client.get(asset).status_code == 200, asset


def test_vendor_route_serves_only_allowed_packages(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/vendor/leaflet/leaflet.js").status_code == 200
    assert client.get("/vendor/leaflet/../package.json").status_code == 404
    assert client.get("/vendor/left-pad/index.js").status_code == 404


def test_basemap_is_configurable(app, client) -> None:  # type: ignore[no-untyped-def]
    saved = {k: app.config.get(k) for k in ("BASEMAP", "BASEMAP_URL")}
    app.config.update(BASEMAP="xyz", BASEMAP_URL="/tiles/{z}/{x}/{y}.png")
    try:
        html = client.get("/emap").get_data(as_text=True)
        assert "/tiles/{z}/{x}/{y}.png" in html
    finally:
        app.config.update(saved)


def test_emap_page_stays_small_and_holds_no_grid(client) -> None:  # type: ignore[no-untyped-def]
    html = client.get("/emap").get_data(as_text=True)
    assert len(html.encode()) < 300_000
    # The page has settings (where to open, level styles), not the city: no grid shape in it.
    assert '"coordinates"' not in html and "MultiPolygon" not in html
    assert client.get("/api/emap/layers").status_code == 404


@pytest.mark.browser
def test_browser_draws_grids_and_shows_the_notice_board(live_server: str, page) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server}/emap")
    page.wait_for_selector("html[data-emap-ready='1']", timeout=20000)
    # The map opens on the caller's grids (the sample street) and draws them from tiles.
    assert len(rendered_grids(page, 4)) > 150 and len(rendered_grids(page, 1)) >= 1
    # Names are written without overlap.
    settle(page)
    boxes = page.evaluate(
        """() => Array.from(document.querySelectorAll('.gg-label')).map(el => {
              const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })"""
    )
    assert len(boxes) > 10
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b)
    # The metric scale bar only, a legend and a layer list that collapse.
    assert page.locator(".leaflet-control-scale-line").count() == 1
    assert page.locator("details.gg-legend").count() == 1
    assert page.locator(".leaflet-control-layers.leaflet-control-layers-expanded").count() == 0
    # Open cases are drawn in the server's colours: red when overdue, else their state's.
    paint = page.evaluate("() => GridGov.gl.getPaintProperty('cases', 'circle-color')")
    assert paint[2] == OVERDUE_COLOR
    by_state = paint[3][2:-1]
    assert dict(zip(by_state[::2], by_state[1::2], strict=True)) == STATUS_COLORS
    # Click inside a micro-grid: the server picks it, its notice board opens with its people.
    micro = get_json(live_server, "/api/grids?level=4")["features"][0]
    b = micro["properties"]
    page.evaluate(
        """(g) => { const c = g.geometry.coordinates[0][0][0];
                    GridGov.map.setView([c[1], c[0]], 17, {animate: false}); }""",
        micro,
    )
    minx, miny, maxx, maxy = shape(micro["geometry"]).bounds
    page.evaluate(
        "(b) => { GridGov.map.setView([(b[1] + b[3]) / 2, (b[0] + b[2]) / 2], 17, {animate: false}); }",
        [minx, miny, maxx, maxy],
    )
    target = free_spot(page, micro["geometry"])
    assert target, "no free spot inside the micro-grid to click"
    page.mouse.click(target["x"], target["y"])
    board = page.wait_for_selector(".gg-board", timeout=10000)
    text = board.inner_text()
    assert "网格公示牌" in text and "微网格长" in text and "专职网格员" in text
    assert page.inner_text(".gg-board .gg-name") == b["name"]


def get_json(base: str, path: str) -> dict:
    with urllib.request.urlopen(base + path, timeout=30) as res:
        return json.loads(res.read())


def test_the_page_names_its_basemap(app, client) -> None:  # type: ignore[no-untyped-def]
    """By default the page draws the project's own basemap tiles; a configured XYZ server is a
    raster source instead."""
    import json
    import re as _re

    def settings() -> dict:  # type: ignore[type-arg]
        html = client.get("/emap").get_data(as_text=True)
        block = _re.search(
            r'<script type="application/json" id="gg-emap-settings">(.*?)</script>', html, _re.S
        )
        assert block
        return json.loads(block.group(1))["basemap"]

    own = settings()
    assert own["kind"] == "own" and own["sources"][0]["type"] == "vector"
    assert own["sources"][0]["tiles"] == ["/tiles/basemap/{z}/{x}/{y}.mvt"]
    assert client.get("/tiles/basemap/14/13528/6652.mvt").status_code == 200
    saved = {k: app.config.get(k) for k in ("BASEMAP", "BASEMAP_URL")}
    app.config.update(BASEMAP="xyz", BASEMAP_URL="https://tiles.intranet.example/{z}/{x}/{y}.png")
    try:
        xyz = settings()
        assert xyz["kind"] == "xyz" and xyz["sources"][0]["type"] == "raster"
    finally:
        app.config.update(saved)


@pytest.mark.browser
def test_a_layer_hidden_while_tiles_load_stays_hidden(live_server: str, page) -> None:  # type: ignore[no-untyped-def]
    # MapLibre counts its style as "not loaded" while any tile is on its way; a layer switched
    # off in the layer list then must still go off, not wait for a load event long past.
    page.goto(f"{live_server}/emap")
    page.wait_for_selector("html[data-emap-ready='1']", timeout=20000)
    settle(page)
    held: list = []
    hold = [True]
    page.route(
        "**/tiles/households/**",
        lambda route: held.append(route) if hold[0] else route.continue_(),
    )
    page.evaluate("() => { GridGov.map.setZoom(GridGov.map.getZoom() + 1, {animate: false}); }")
    page.wait_for_function("() => !GridGov.gl.isStyleLoaded()", timeout=10000)
    # The style counts as not loaded once any tile is asked for; the household tiles' requests
    # reach the route handler a little later (it runs while the test waits on the page).
    for _ in range(100):
        if held:
            break
        page.wait_for_timeout(100)  # the interval between two looks
    assert held, "no household tile was asked for"
    page.hover(".leaflet-control-layers")
    page.locator(".leaflet-control-layers-overlays label", has_text="住户").locator(
        "input"
    ).uncheck()
    hold[0] = False
    for route in held:
        route.continue_()
    settle(page)
    assert page.evaluate("() => GridGov.gl.getLayoutProperty('households', 'visibility')") == "none"
    # ... and switched on again, it is drawn again.
    page.locator(".leaflet-control-layers-overlays label", has_text="住户").locator("input").check()
    settle(page)
    assert (
        page.evaluate("() => GridGov.gl.getLayoutProperty('households', 'visibility')") == "visible"
    )


# The household dots in view, as drawn: each one's count, radius (px) and colour, by the
# layer's own paint properties (MapLibre's evaluation of the style), and the same for counts
# no tile holds here.
HOUSEHOLD_DOTS = """() => {
  const gl = GridGov.gl, paint = gl.style._layers.households.paint;
  const dot = n => { const f = {type: 1, properties: {households: n}};
    const c = paint.get('circle-color').evaluate(f, {});
    return {n: n, r: paint.get('circle-radius').evaluate(f, {}),
            lightness: (c.r + c.g + c.b) / 3}; };
  const counts = gl.queryRenderedFeatures({layers: ['households']})
    .map(f => f.properties.households);
  return {shown: counts.map(dot), many: dot(100000), one: dot(1)};
}"""


@pytest.mark.browser
def test_household_dots_keep_to_their_cells_and_darken(live_server: str, page) -> None:  # type: ignore[no-untyped-def]
    # A density tile's cells lie 1/64 of a 512-px tile apart (8 px on the map). A dot wider
    # than that covers its neighbours: at city scale a street became one blue blot, painted
    # many times over (most of a software-rendered repaint). The count shows in the colour.
    page.goto(f"{live_server}/emap")
    page.wait_for_selector("html[data-emap-ready='1']", timeout=20000)
    settle(page)
    dots = page.evaluate(HOUSEHOLD_DOTS)
    shown = dots["shown"]
    assert len(shown) > 50, "no household dots drawn on the sample street"
    assert max(d["r"] for d in shown) <= 4 and dots["many"]["r"] <= 4
    assert min(d["r"] for d in shown) >= 2  # still a dot to see and to hover
    few = min(shown, key=lambda d: d["n"])
    most = max(shown, key=lambda d: d["n"])
    assert most["n"] > few["n"]
    assert most["lightness"] < few["lightness"]
    assert dots["many"]["lightness"] < dots["one"]["lightness"]
    # The legend explains the colours.
    assert "颜色越深" in (page.text_content(".gg-legend") or "")


@pytest.mark.browser
def test_a_layer_hidden_before_the_first_render_stays_hidden(live_server: str, page) -> None:  # type: ignore[no-untyped-def]
    # The page adds the household layer while MapLibre has not read its style yet: showing it
    # waits for the map's "load" event, which comes after the first complete render (late on a
    # busy machine). A layer hidden meanwhile, once the style was read, must stay hidden when
    # that event comes.
    held: list = []
    hold = [True]
    page.route("**/tiles/**", lambda route: held.append(route) if hold[0] else route.continue_())
    page.goto(f"{live_server}/emap")
    page.wait_for_function(
        "() => window.GridGov && GridGov.layers && GridGov.gl && GridGov.gl.style"
        " && GridGov.gl.style._loaded",
        timeout=20000,
    )
    assert not page.evaluate("() => GridGov.gl.loaded()")  # no "load" yet: tiles are held
    page.evaluate("() => GridGov.map.removeLayer(GridGov.layers.households)")
    hold[0] = False
    for route in held:
        route.continue_()
    page.wait_for_selector("html[data-emap-ready='1']", timeout=20000)
    settle(page)
    assert page.evaluate("() => GridGov.gl.getLayoutProperty('households', 'visibility')") == "none"
