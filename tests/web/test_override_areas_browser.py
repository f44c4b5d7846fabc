"""Override areas (管辖例外区域) in a real browser: draw one, save it, see locate route to its
keeper, edit its vertices (a concurrent edit is refused), delete it."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest
import shapely
from sqlalchemy import create_engine, text

from tests.web.emap_page import click_vertex

CATEGORY = "road_occupation"
DEPARTMENT = "SJ-AH"  # 安和市场监管所: not whom the grid's owner would escalate this to


def call(base: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict | None]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        base + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as res:  # loopback test server only
            raw = res.read()
            return res.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def get(base: str, path: str) -> dict:
    status, body = call(base, "GET", path)
    assert status == 200, body
    assert body is not None
    return body


def locate(base: str, lon: float, lat: float, category: str | None = None) -> dict:
    query = {"lon": f"{lon:.8f}", "lat": f"{lat:.8f}"}
    if category:
        query["category"] = category
    return get(base, "/api/locate?" + urllib.parse.urlencode(query))


@pytest.fixture()
def areas_removed(database_url: str) -> Iterator[None]:
    """Delete, after the test, every override area it committed through the live server."""
    engine = create_engine(database_url)
    with engine.connect() as conn:
        mark = conn.execute(text("SELECT coalesce(max(id), 0) FROM override_area")).scalar_one()
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM override_area WHERE id > :m"), {"m": mark})
        engine.dispose()


def wait_for(page, selector: str) -> None:  # type: ignore[no-untyped-def]
    """Wait for ``selector``; fail with the server's message if the panel shows an error."""
    page.wait_for_selector(f"{selector}, #gg-ov-error", timeout=10000)
    error = page.query_selector("#gg-ov-error")
    assert error is None, error.inner_text()


@pytest.mark.browser
def test_draw_edit_delete_override_area(live_server: str, page, areas_removed) -> None:  # type: ignore[no-untyped-def]
    # A spot well inside a micro-grid (no boundary within snapping reach of the square drawn
    # around it), and who owns it without any override area.
    spots = []
    for f in sorted(get(live_server, "/api/grids?level=4")["features"], key=lambda f: f["id"]):
        shape = shapely.geometry.shape(f["geometry"])
        spot = shape.representative_point()
        if f["properties"]["is_leaf"] and shape.boundary.distance(spot) > 0.0007:
            spots.append(spot.coords[0])
    assert spots, "no micro-grid wide enough for the test square"
    cx, cy = spots[0]
    before = locate(live_server, cx, cy, CATEGORY)
    assert before["override"] is None and before["owner"]["kind"] == "worker"
    keepers = get(live_server, "/api/override-areas/keepers")
    dept = next(d for d in keepers["departments"] if d["code"] == DEPARTMENT)

    page.goto(f"{live_server}/emap")
    page.wait_for_selector("html[data-emap-ready='1']", timeout=20000)
    # Zoom 18 (about 0.5 m a pixel) with the spot right of the panel; households hidden.
    page.evaluate(
        """([lon, lat]) => { const map = GridGov.map;
                             map.removeLayer(GridGov.layers.households);
                             map.invalidateSize({animate: false});
                             map.setView([lat, lon], 18, {animate: false});
                             map.panBy([-100, 0], {animate: false}); }""",
        [cx, cy],
    )
    page.evaluate("() => GridGov.tilesIdle()")  # the view has settled and its tiles are drawn

    def screen(lon: float, lat: float) -> dict:
        return page.evaluate(
            """([lon, lat]) => { const p = GridGov.map.latLngToContainerPoint([lat, lon]);
                                 const r = GridGov.map.getContainer().getBoundingClientRect();
                                 return {x: r.left + p.x, y: r.top + p.y}; }""",
            [lon, lat],
        )

    def click_at(lon: float, lat: float) -> None:
        p = screen(lon, lat)
        click_vertex(page, p["x"], p["y"])

    page.click("#gg-ov-toggle")
    page.wait_for_selector("#gg-ov-category option[value='road_occupation']", state="attached")
    assert "管辖例外区域" in page.inner_text(".gg-ov h2")
    page.select_option("#gg-ov-category", CATEGORY)
    page.wait_for_selector("#gg-ov-list .gg-hint, #gg-ov-list table")

    # Draw a square of about 50 m around the spot.
    dx, dy = 0.00027, 0.00023
    page.click("#gg-ov-new")
    page.fill("#gg-ov-name", "")
    page.select_option("#gg-ov-kind", "department")
    page.select_option("#gg-ov-dept", str(dept["id"]))
    for lon, lat in [
        (cx - dx, cy - dy),
        (cx + dx, cy - dy),
        (cx + dx, cy + dy),
        (cx - dx, cy + dy),
    ]:
        click_at(lon, lat)
    page.keyboard.press("Enter")
    page.wait_for_selector("#gg-ov-save:not([disabled])")

    # No name: the server refuses, the panel says why, Chinese first.
    page.click("#gg-ov-save")
    page.wait_for_selector("#gg-ov-error")
    message = page.inner_text("#gg-ov-error")
    assert message.startswith("保存失败（数据校验未通过）") and "name" in message

    page.fill("#gg-ov-name", "测试农贸市场")
    page.click("#gg-ov-save")
    wait_for(page, "#gg-ov-saved")
    aid = int(page.get_attribute("#gg-ov-saved", "data-area-id"))
    area = get(live_server, f"/api/override-areas/{aid}")
    props = area["properties"]
    assert props["name"] == "测试农贸市场" and props["category"] == CATEGORY
    assert props["department_id"] == dept["id"] and props["version"] == 1
    drawn = shapely.geometry.shape(area["geometry"])
    assert drawn.contains(shapely.Point(cx, cy)) and 1500 < props["area_m2"] < 4000
    page.wait_for_selector(f"#gg-ov-list tr[data-area-id='{aid}']")

    # Locate with the category now routes to the area's keeper; the grid's owner backs it up.
    here = locate(live_server, cx, cy, CATEGORY)
    assert here["override"]["id"] == aid
    assert here["owner"]["kind"] == "department" and here["owner"]["name"] == dept["name"]
    assert here["fallback"][0]["worker_id"] == before["owner"]["worker_id"]
    assert locate(live_server, cx, cy)["override"] is None  # other categories: the grid's owner

    def drag_north_east_corner(pixels: int) -> None:
        page.click(f"#gg-ov-list tr[data-area-id='{aid}'] .gg-ov-edit")
        page.wait_for_selector(f"#gg-ov-editing[data-area-id='{aid}']")
        current = shapely.geometry.shape(get(live_server, f"/api/override-areas/{aid}")["geometry"])
        corner = max(shapely.get_coordinates(current).tolist(), key=lambda c: c[0] + c[1])
        p = screen(*corner)
        page.mouse.move(p["x"], p["y"])
        page.mouse.down()
        page.mouse.move(p["x"] + pixels, p["y"] - pixels, steps=8)
        page.mouse.up()
        # The area being edited has taken the drag: its north-east corner lies further out.
        page.wait_for_function(
            """(reach) => Math.max(...GridGov.overrides.editing.layer.getLatLngs().flat(Infinity)
                                     .map((v) => v.lng + v.lat)) > reach + 1e-7""",
            arg=corner[0] + corner[1],
            timeout=5000,
        )

    # Someone else renames the area while it is being edited here: the save is refused.
    drag_north_east_corner(40)
    status, _ = call(
        live_server,
        "PUT",
        f"/api/override-areas/{aid}",
        {"type": "Feature", "geometry": None, "properties": {"name": "农贸市场", "version": 1}},
    )
    assert status == 200
    page.click("#gg-ov-update")
    page.wait_for_selector("#gg-ov-error")
    assert page.inner_text("#gg-ov-error").startswith("保存修改失败（区域已被他人修改）")
    page.click("#gg-ov-reload")
    page.wait_for_selector(f"#gg-ov-list tr[data-area-id='{aid}'][data-version='2']")

    # Edited again from the current version: saved, and the new corner is the keeper's too.
    drag_north_east_corner(40)
    assert page.input_value("#gg-ov-name") == "农贸市场"
    page.click("#gg-ov-update")
    wait_for(page, "#gg-ov-saved")
    edited = get(live_server, f"/api/override-areas/{aid}")
    assert edited["properties"]["version"] == 3
    grown = shapely.geometry.shape(edited["geometry"])
    assert grown.area > drawn.area * 1.1 and grown.contains(shapely.Point(cx, cy))
    nx, ny = grown.difference(drawn).representative_point().coords[0]
    assert locate(live_server, nx, ny, CATEGORY)["override"]["id"] == aid

    # Delete it: asked first, then gone, and locate is back to the grid's owner.
    page.click(f"#gg-ov-list tr[data-area-id='{aid}'] .gg-ov-delete")
    page.click("#gg-ov-confirm-delete")
    wait_for(page, "#gg-ov-deleted")
    assert call(live_server, "GET", f"/api/override-areas/{aid}")[0] == 404
    assert page.query_selector(f"#gg-ov-list tr[data-area-id='{aid}']") is None
    after = locate(live_server, cx, cy, CATEGORY)
    assert after["override"] is None and after["owner"] == before["owner"]
