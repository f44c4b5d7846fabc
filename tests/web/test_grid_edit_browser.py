"""Edit mode in a real browser: draw a grid, save it, split it with a drawn line, see the counts;
the names on the map follow renames, merges and undo."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from shapely.geometry import Point, shape
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from tests.cleanup import delete_cases
from tests.committed import committed_state_restored
from tests.web.emap_page import click_vertex, free_spot, rendered_grids, settle


def get(base: str, path: str) -> dict:
    with urllib.request.urlopen(base + path, timeout=30) as res:
        return json.loads(res.read())


@pytest.fixture()
def restored(database_url: str) -> Iterator[None]:
    with committed_state_restored(database_url):
        yield


@pytest.fixture()
def report_case(
    live_server: str, database_url: str, restored
) -> Iterator[Callable[[float, float], dict]]:  # type: ignore[no-untyped-def]
    """Report open cases through the API (they show on the e-map); removed after the test."""
    codes: list[str] = []

    def report(lon: float, lat: float) -> dict:
        body = {
            "x": lon,
            "y": lat,
            "crs": "wgs84",
            "category": "dispute",
            "source": "patrol",
            "description": "测试：编辑时附近的事件",
        }
        req = urllib.request.Request(
            live_server + "/api/cases",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as res:
            case = json.loads(res.read())["case"]
        codes.append(case["code"])
        return case

    yield report
    engine = create_engine(database_url)
    try:
        with Session(engine) as s:
            ids = s.scalars(
                text('SELECT id FROM "case" WHERE code = ANY(:codes)'), {"codes": codes}
            ).all()
            delete_cases(s, list(ids))
            s.commit()
    finally:
        engine.dispose()


def metres_from(a: tuple[float, float], b: tuple[float, float]) -> float:
    dx = (a[0] - b[0]) * 111_320 * math.cos(math.radians(a[1]))
    return math.hypot(dx, (a[1] - b[1]) * 110_574)


def counted_in_database(database_url: str, grid_ids: list[int]) -> dict[int, dict[str, int]]:
    """Per grid: households filed under it, and households lying inside its boundary."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT g.id,"
                    " (SELECT count(*) FROM household h WHERE h.grid_id = g.id) AS filed,"
                    " (SELECT count(*) FROM household h WHERE ST_Covers(g.geom, h.geom)) AS inside"
                    " FROM grid g WHERE g.id = ANY(:ids)"
                ),
                {"ids": grid_ids},
            ).all()
    finally:
        engine.dispose()
    return {r.id: {"filed": r.filed, "inside": r.inside} for r in rows}


def wait_for(page, selector: str) -> None:  # type: ignore[no-untyped-def]
    """Wait for the panel to show ``selector``; fail with the server's message if it shows an error."""
    page.wait_for_selector(f"{selector}, #gg-error", timeout=10000)
    error = page.query_selector("#gg-error")
    assert error is None, error.inner_text()


def table_rows(page) -> list[dict]:  # type: ignore[no-untyped-def]
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('#gg-edit-body table.gg-result tbody tr'))
               .map(tr => ({id: Number(tr.dataset.gridId),
                            name: tr.cells[0].innerText.trim(),
                            households: Number(tr.querySelector('.gg-count').innerText)}))"""
    )


@pytest.mark.browser
def test_draw_save_split_and_see_household_counts(  # type: ignore[no-untyped-def]
    live_server: str, database_url: str, page, report_case
) -> None:  # type: ignore[no-untyped-def]
    micro = next(
        f
        for f in get(live_server, "/api/grids?level=4")["features"]
        if f["properties"]["is_leaf"] and f["properties"]["household_count"] >= 40
    )
    gid = micro["id"]
    minx, miny, maxx, maxy = get(live_server, f"/api/grids/{gid}")["properties"]["bounds"]
    w, h = maxx - minx, maxy - miny
    # An open case about 6 m (12 px at zoom 18) east of where the split line starts: within
    # the snapping distance, but only grid boundaries may pull a vertex.
    split_start = (minx + 0.3 * w, miny - 0.15 * h)
    case_at = (
        split_start[0] + 6 / (111_320 * math.cos(math.radians(split_start[1]))),
        split_start[1],
    )
    report_case(*case_at)

    page.goto(f"{live_server}/emap")
    # Ready means settled: the map has finished flying to its home extent, so the view set
    # below is not dropped by that animation.
    page.wait_for_selector("html[data-emap-ready='1']", timeout=20000)
    # Household points sit on top of the grids; hide them as a user would in the layer list.
    # Keep the grid clear of the edit panel (left) and the layer list (right).
    # Zoom 18 (about 0.5 m a pixel) puts the ~200 m micro-grid between the two, and the clicks
    # below far enough (> 15 px) from its vertices that snapping leaves them where they are.
    zoom = page.evaluate(
        """(b) => { const map = GridGov.map;
                    map.removeLayer(GridGov.layers.households);
                    map.invalidateSize({animate: false});
                    map.setView([(b[1] + b[3]) / 2, (b[0] + b[2]) / 2], 18, {animate: false});
                    map.panBy([-80, 0], {animate: false});
                    return map.getZoom(); }""",
        [minx, miny, maxx, maxy],
    )
    assert zoom == 18
    page.evaluate("() => GridGov.tilesIdle()")

    def click_at(lon: float, lat: float) -> None:
        p = page.evaluate(
            """([lon, lat]) => { const p = GridGov.map.latLngToContainerPoint([lat, lon]);
                                 const r = GridGov.map.getContainer().getBoundingClientRect();
                                 return {x: r.left + p.x, y: r.top + p.y}; }""",
            [lon, lat],
        )
        click_vertex(page, p["x"], p["y"])

    page.click("#gg-edit-toggle")
    spot = free_spot(page, micro["geometry"])
    assert spot, "no free spot inside the micro-grid to click"
    page.mouse.click(spot["x"], spot["y"])
    page.wait_for_selector(f".gg-selected[data-grid-id='{gid}']", timeout=5000)

    # Draw a patch over the western 60 % of the micro-grid, overhanging it: clipped on save.
    page.click("#gg-draw-child")
    page.fill("#gg-new-name", "测试片区")
    for lon, lat in [
        (minx - 0.1 * w, miny - 0.1 * h),
        (minx + 0.6 * w, miny - 0.1 * h),
        (minx + 0.6 * w, maxy + 0.1 * h),
        (minx - 0.1 * w, maxy + 0.1 * h),
    ]:
        click_at(lon, lat)
    page.keyboard.press("Enter")
    wait_for(page, "#gg-preview")
    assert "预览" in page.inner_text("#gg-preview")
    (shown,) = table_rows(page)
    assert shown["households"] > 0
    page.click("#gg-confirm")
    wait_for(page, "#gg-saved")
    (created,) = table_rows(page)
    assert created["name"] == "测试片区" and created["households"] == shown["households"]
    api = get(live_server, f"/api/grids/{created['id']}")["properties"]
    assert api["parent_id"] == gid and api["household_count"] == created["households"]
    # The drawn patch holds exactly the households of the micro-grid that lie inside it.
    in_db = counted_in_database(database_url, [created["id"]])[created["id"]]
    assert in_db == {"filed": created["households"], "inside": created["households"]}
    page.wait_for_selector(f".gg-selected[data-grid-id='{created['id']}']")

    # Split the new grid with a line drawn across it.
    page.click("#gg-split")
    click_at(*split_start)
    click_at(minx + 0.3 * w, maxy + 0.15 * h)
    page.keyboard.press("Enter")
    wait_for(page, "#gg-preview")
    start = page.evaluate(
        "() => { const ll = GridGov.edit.drawn.getLatLngs()[0]; return [ll.lng, ll.lat]; }"
    )
    assert metres_from(start, case_at) > 3, "the split line snapped to the case marker"
    assert metres_from(start, split_start) < 1
    preview = table_rows(page)
    assert len(preview) == 2
    page.click("#gg-confirm")
    wait_for(page, "#gg-saved")
    parts = table_rows(page)
    counts = [p["households"] for p in parts]
    assert counts == [p["households"] for p in preview]
    assert sum(counts) == created["households"] and min(counts) > 0
    # The map now shows the two grids; the server agrees on the counts.
    on_map = rendered_grids(page, 5)
    assert {p["id"] for p in parts} <= set(on_map) and created["id"] not in on_map
    for p in parts:
        props = get(live_server, f"/api/grids/{p['id']}")["properties"]
        assert props["household_count"] == p["households"] and props["valid_to"] is None
    children = get(live_server, f"/api/grids?parent={gid}")["features"]
    assert sorted(f["id"] for f in children) == sorted(p["id"] for p in parts)
    # The database files each household under the part whose boundary holds it, and the
    # counts the user saw (preview and saved) are those.
    in_db = counted_in_database(database_url, [p["id"] for p in parts])
    for p in parts:
        assert in_db[p["id"]] == {"filed": p["households"], "inside": p["households"]}, p
    assert get(live_server, f"/api/grids/{created['id']}")["properties"]["valid_to"] is not None


def post(base: str, path: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            return res.status, json.loads(res.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


LABELS = """() => { const out = [];
  GridGov.layers.labels.eachLayer(m => {
    const el = m.getElement() && m.getElement().querySelector('.gg-label');
    if (el) out.push({name: el.textContent, lon: m.getLatLng().lng, lat: m.getLatLng().lat});
  });
  return out; }"""


@pytest.mark.browser
def test_labels_follow_rename_merge_and_undo(live_server: str, page, restored) -> None:  # type: ignore[no-untyped-def]
    """The names written on the map change with the grids, without a reload."""
    grids = get(live_server, "/api/grids?level=3")["features"]
    # Two neighbouring 网格 of one community that the server agrees to merge.
    a, b = next(
        (x, y)
        for x in grids
        for y in grids
        if x["id"] < y["id"]
        and x["properties"]["parent_id"] == y["properties"]["parent_id"]
        and post(
            live_server,
            "/api/grids/merge",
            {
                "ids": [x["id"], y["id"]],
                "versions": [x["properties"]["version"], y["properties"]["version"]],
                "dry_run": True,
            },
        )[0]
        == 200
    )
    a_name, b_name, renamed = a["properties"]["name"], b["properties"]["name"], "测试改名网格"

    page.goto(f"{live_server}/emap")
    page.wait_for_selector("html[data-emap-ready='1']", timeout=20000)
    # Show the 网格 level on top, as a user does by unticking 微网格 and 片区 in the layer list.
    bounds = shape(a["geometry"]).union(shape(b["geometry"])).bounds
    page.evaluate(
        """(b) => { const map = GridGov.map;
                    ['grids_level_4', 'grids_level_5', 'households'].forEach(k => {
                      if (GridGov.layers[k]) map.removeLayer(GridGov.layers[k]); });
                    map.fitBounds([[b[1], b[0]], [b[3], b[2]]],
                                  {animate: false, paddingTopLeft: [460, 80], paddingBottomRight: [320, 60]}); }""",
        list(bounds),
    )
    settle(page)

    def names() -> list[str]:
        return sorted(label["name"] for label in page.evaluate(LABELS))

    def label_of(name: str) -> Point:
        (label,) = [lb for lb in page.evaluate(LABELS) if lb["name"] == name]
        return Point(label["lon"], label["lat"])

    before = names()
    assert before.count(a_name) == 1 and before.count(b_name) == 1 and renamed not in before

    page.click("#gg-edit-toggle")
    spot = free_spot(page, a["geometry"])
    assert spot, "no free spot inside the first grid to click"
    page.mouse.click(spot["x"], spot["y"])
    page.wait_for_selector(f".gg-selected[data-grid-id='{a['id']}']", timeout=5000)

    # Save: rename the grid; its label says the new name at once.
    page.fill("#gg-rename", renamed)
    page.click("button[data-act='rename']")
    wait_for(page, "#gg-preview")
    page.click("#gg-confirm")
    wait_for(page, "#gg-saved")
    after_rename = names()
    assert after_rename.count(renamed) == 1 and a_name not in after_rename
    assert sorted(before) == sorted([n for n in after_rename if n != renamed] + [a_name])
    assert shape(a["geometry"]).contains(label_of(renamed))

    # Merge the two: both labels go, the merged grid's label comes, inside the merged grid.
    page.click("#gg-merge")
    spot = free_spot(page, b["geometry"])
    assert spot, "no free spot inside the second grid to click"
    page.mouse.click(spot["x"], spot["y"])
    page.wait_for_selector(f"#gg-edit-body li:has-text('{b_name}')", timeout=5000)
    page.click("#gg-merge-preview")
    wait_for(page, "#gg-preview")
    page.click("#gg-confirm")
    wait_for(page, "#gg-saved")
    (merged,) = table_rows(page)
    after_merge = names()
    assert after_merge.count(merged["name"]) == 1
    assert renamed not in after_merge and b_name not in after_merge
    merged_shape = shape(get(live_server, f"/api/grids/{merged['id']}")["geometry"])
    assert merged_shape.contains(label_of(merged["name"]))

    # Undo the merge: the two grids and their labels come back, the merged one's goes.
    page.click("#gg-history")
    page.wait_for_selector("#gg-edit-body button[data-act='undo']", timeout=10000)
    page.click("#gg-edit-body button[data-act='undo'] >> nth=0")
    wait_for(page, "#gg-saved")
    assert "已撤销" in page.inner_text("#gg-saved")
    after_undo = names()
    assert merged["name"] not in after_undo
    assert after_undo == after_rename
    assert shape(b["geometry"]).contains(label_of(b_name))
