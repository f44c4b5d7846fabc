"""The search box in a real browser: a household, a worker and a case, each landed on."""

from __future__ import annotations

import json
import urllib.request

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from tests.cleanup import delete_cases

POINT = (117.2287344, 31.8149002)  # inside 爱辉社区第一网格第1微网格


def _post(base: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as res:
        return json.loads(res.read())


def _type(page, text_: str) -> None:  # type: ignore[no-untyped-def]
    box = page.locator("#gg-search input")
    box.fill("")
    box.type(text_, delay=20)
    page.wait_for_selector("#gg-search .gg-search-item", timeout=10000)


def _centre(page) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    c = page.evaluate("(() => { const c = GridGov.map.getCenter(); return [c.lng, c.lat]; })()")
    return c[0], c[1]


@pytest.mark.browser
def test_search_lands_on_a_household_a_worker_and_a_case(live_server: str, page, app) -> None:  # type: ignore[no-untyped-def]
    engine = app.extensions["gridgov_db"].engine
    with Session(engine) as s:
        hh = s.execute(
            text(
                """SELECT h.id, h.address, h.head_name, ST_X(h.geom) AS lon, ST_Y(h.geom) AS lat
                   FROM household h JOIN grid g ON g.id = h.grid_id
                   WHERE g.code LIKE '3401880010010%' AND h.address LIKE '%馨苑小区2栋3单元%'
                   ORDER BY h.id LIMIT 1"""
            )
        ).one()
        worker = s.execute(
            text(
                """SELECT w.id, w.name, a.grid_id FROM worker w
                   JOIN grid_assignment a ON a.worker_id = w.id JOIN grid g ON g.id = a.grid_id
                   WHERE w.code = 'W00005' ORDER BY g.level DESC, a.grid_id LIMIT 1"""
            )
        ).one()
    case = _post(
        live_server,
        "/api/cases",
        {
            "x": POINT[0],
            "y": POINT[1],
            "category": "streetlight",
            "description": "搜索浏览器测试",
            "source": "hotline",
        },
    )["case"]
    try:
        page.goto(f"{live_server}/emap")
        page.wait_for_selector("html[data-emap-ready='1']", timeout=20000)
        # 1. A household by its address: the suggestion shows the address, the name masked.
        _type(page, hh.address.replace("安和街道", ""))
        # The list may still be that of a prefix typed earlier (answers arrive as one types):
        # wait for the list of the whole address.
        page.wait_for_function(
            "(a) => { const f = document.querySelector('#gg-search .gg-search-item');"
            " return !!f && f.innerText.includes(a); }",
            arg=hh.address,
            timeout=10000,
        )
        first = page.locator("#gg-search .gg-search-item").first
        assert first.get_attribute("data-kind") == "household"
        shown = page.locator("#gg-search .gg-search-list").inner_text()
        assert hh.head_name not in shown and hh.head_name[0] + "*" in shown
        first.click()
        popup = page.wait_for_selector(".leaflet-popup .gg-search-popup", timeout=10000)
        assert popup.get_attribute("data-kind") == "household"
        assert hh.address in popup.inner_text()
        lon, lat = _centre(page)
        assert abs(lon - hh.lon) < 2e-4 and abs(lat - hh.lat) < 2e-4
        assert page.evaluate("GridGov.map.getZoom()") >= 17
        # 2. A worker by name: the map goes to the worker's grid and opens its notice board.
        _type(page, worker.name)
        item = page.locator(
            f"#gg-search .gg-search-item[data-kind='worker'][data-id='{worker.id}']"
        )
        item.first.click()
        board = page.wait_for_selector(
            f"#gg-panel .gg-board[data-grid-id='{worker.grid_id}']", timeout=10000
        )
        assert worker.name in board.inner_text()
        # 3. A case by its code: a popup at the case with a link to its detail on the desk.
        _type(page, case["code"])
        page.locator(
            f"#gg-search .gg-search-item[data-kind='case'][data-id='{case['id']}']"
        ).click()
        popup = page.wait_for_selector(
            ".leaflet-popup .gg-search-popup[data-kind='case']", timeout=10000
        )
        link = popup.query_selector("a")
        assert link.get_attribute("href") == f"/cases/desk?case={case['id']}"
        link.click()
        page.wait_for_selector("html[data-desk-ready='1']", timeout=20000)
        assert case["code"] in page.locator("#case-detail").inner_text()
        # 4. On the desk, the same box opens a case in place.
        page.goto(f"{live_server}/cases/desk")
        page.wait_for_selector("html[data-desk-ready='1']", timeout=20000)
        _type(page, case["code"][-8:])
        page.locator(
            f"#gg-search .gg-search-item[data-kind='case'][data-id='{case['id']}']"
        ).click()
        page.wait_for_function(
            f"document.querySelector('#case-detail') && document.querySelector('#case-detail').textContent.includes('{case['code']}')",
            timeout=10000,
        )
        # ...and anything else on the e-map.
        _type(page, hh.address.replace("安和街道", ""))
        page.locator("#gg-search .gg-search-item[data-kind='household']").first.click()
        page.wait_for_selector(
            ".leaflet-popup .gg-search-popup[data-kind='household']", timeout=20000
        )
        assert page.url.endswith("/emap")
    finally:
        with Session(engine) as s, s.begin():
            delete_cases(s, [case["id"]])
