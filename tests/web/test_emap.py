"""The e-map: every asset from the app (no CDN), and a real browser that draws the grids."""

from __future__ import annotations

import re

import pytest

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
    app.config.update(BASEMAP="xyz", BASEMAP_URL="/tiles/{z}/{x}/{y}.png")
    try:
        html = client.get("/emap").get_data(as_text=True)
        assert "/tiles/{z}/{x}/{y}.png" in html
    finally:
        app.config.update(BASEMAP="none", BASEMAP_URL=None)


@pytest.mark.browser
def test_browser_draws_grids_and_shows_the_notice_board(live_server: str, page) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server}/emap")
    page.wait_for_selector("html[data-emap-ready='1']", timeout=20000)
    # Grids are drawn as vector paths (canvas renderer): ask Leaflet how many grid features it holds.
    counts = page.evaluate(
        """() => Object.entries(GridGov.layers)
               .filter(([k]) => k.startsWith('grids_level_'))
               .map(([k, l]) => [k, l.getLayers().length, GridGov.map.hasLayer(l)])"""
    )
    drawn = {k: n for k, n, shown in counts if shown}
    assert drawn["grids_level_4"] > 150 and drawn["grids_level_1"] == 2
    # Click inside a micro-grid: its notice board opens with its people.
    # Pick a spot inside the micro-grid where nothing else (a cluster icon, a marker) sits on top.
    page.evaluate(
        """() => { const l = GridGov.layers.grids_level_4.getLayers()[0];
                   GridGov.map.setView(l.getBounds().getCenter(), 17, {animate: false}); }"""
    )
    page.wait_for_timeout(500)  # the canvas redraws on the next animation frame
    target = page.evaluate(
        """() => {
          const l = GridGov.layers.grids_level_4.getLayers()[0], map = GridGov.map;
          const b = l.getBounds();
          for (let i = 1; i < 10; i++) for (let j = 1; j < 10; j++) {
            const ll = L.latLng(b.getSouth() + (b.getNorth() - b.getSouth()) * i / 10,
                                b.getWest() + (b.getEast() - b.getWest()) * j / 10);
            const p = map.latLngToContainerPoint(ll);
            const el = document.elementFromPoint(p.x, p.y);
            if (l._containsPoint(map.latLngToLayerPoint(ll)) && el && el.tagName === 'CANVAS')
              return {x: p.x, y: p.y, name: l.feature.properties.name};
          }
          return null;
        }"""
    )
    assert target, "no free spot inside the micro-grid to click"
    page.mouse.click(target["x"], target["y"])
    board = page.wait_for_selector(".gg-board", timeout=10000)
    text = board.inner_text()
    assert "网格公示牌" in text and "微网格长" in text and "专职网格员" in text
    assert page.inner_text(".gg-board .gg-name") == target["name"]
