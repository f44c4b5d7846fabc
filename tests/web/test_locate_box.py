"""The e-map's locate box in a real browser: typed coordinates in a CRS, and a click on the map."""

from __future__ import annotations

import json
import urllib.request

import pytest

from gis.crs import from_wgs84
from tests.web.emap_page import spots_inside

POINT = (117.23, 31.82)


def _api(base: str, path: str) -> dict:
    with urllib.request.urlopen(base + path, timeout=10) as res:  # loopback test server only
        return json.load(res)


@pytest.mark.browser
def test_locate_box_typed_click_and_errors(live_server: str, page) -> None:  # type: ignore[no-untyped-def]
    expected = _api(live_server, f"/api/locate?lon={POINT[0]}&lat={POINT[1]}")
    page.goto(f"{live_server}/emap")
    page.wait_for_selector("html[data-emap-ready='1']", timeout=20000)
    assert page.inner_text(".gg-locate-title") == "坐标定位"

    # Pasted AMap (GCJ-02) coordinates with a full-width comma, CRS chosen in the dropdown.
    gx, gy = (float(v) for v in from_wgs84(*POINT, "gcj02"))
    page.fill("#gg-locate-input", f"{gx:.7f}，{gy:.7f}")
    page.select_option("#gg-locate-crs", "gcj02")
    page.click("#gg-locate-go")
    page.wait_for_selector("html[data-locate-done]", timeout=10000)
    result = page.locator(".gg-locate-result")
    assert result.get_attribute("data-grid-id") == str(expected["grid"]["id"])
    text = result.inner_text()
    assert expected["grid"]["name"] in text and expected["owner"]["name"] in text
    assert expected["chain"][0]["name"] in text and "指挥中心" in text
    assert "位于网格内" in text and "gcj02" in text
    # A marker at the point (back in WGS84) and the micro-grid highlighted.
    marker = page.evaluate(
        "() => { const m = GridGov.locate.marker.getLatLng(); return [m.lng, m.lat]; }"
    )
    assert abs(marker[0] - POINT[0]) < 1e-6 and abs(marker[1] - POINT[1]) < 1e-6
    assert (
        page.evaluate(
            "() => GridGov.map.hasLayer(GridGov.locate.highlight) && "
            "GridGov.locate.highlight.getLayers()[0].feature.properties.id"
        )
        == expected["grid"]["id"]
    )

    # A click on the map in pick mode locates that spot (even on top of a grid).
    page.check("#gg-locate-pick")
    micro = _api(live_server, "/api/grids?level=4")["features"][5]
    lon, lat = spots_inside(micro["geometry"])[0]
    other = {"id": micro["id"], "lon": lon, "lat": lat}
    page.evaluate("(o) => { GridGov.map.setView([o.lat, o.lon], 17, {animate: false}); }", other)
    page.evaluate("() => GridGov.tilesIdle()")  # the view has settled and its tiles are drawn
    before = page.get_attribute("html", "data-locate-done")
    spot = page.evaluate(
        """(o) => { const p = GridGov.map.latLngToContainerPoint([o.lat, o.lon]);
                    const r = GridGov.map.getContainer().getBoundingClientRect();
                    return {x: r.left + p.x, y: r.top + p.y}; }""",
        other,
    )
    page.mouse.click(spot["x"], spot["y"])
    page.wait_for_function(
        "(b) => document.documentElement.getAttribute('data-locate-done') !== b", arg=before
    )
    clicked = page.evaluate("() => GridGov.locate.marker.getLatLng()")
    here = _api(live_server, f"/api/locate?lon={clicked['lng']}&lat={clicked['lat']}")
    assert page.locator(".gg-locate-result").get_attribute("data-grid-id") == str(
        here["grid"]["id"]
    )
    assert page.locator(".gg-board").count() == 0  # the click located; no notice board opened

    # Swapped coordinates: the server's reason is shown, in the box.
    page.fill("#gg-locate-input", "31.82, 117.23")
    page.select_option("#gg-locate-crs", "wgs84")
    page.click("#gg-locate-go")
    page.wait_for_selector("#gg-locate-msg:not(:empty)")
    assert "写反" in page.inner_text("#gg-locate-msg")  # in Chinese: no English in the box
    assert "swapped" not in page.inner_text("#gg-locate-msg")
    assert "无法定位" in page.inner_text("#gg-locate-msg")
