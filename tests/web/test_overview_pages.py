"""The overview, the ledgers and the resident's report page in a real browser."""

from __future__ import annotations

import io
import json
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.services import cases as svc
from tests.cleanup import delete_cases


def _get(base: str, path: str) -> dict:
    with urllib.request.urlopen(base + path, timeout=30) as res:
        return json.loads(res.read())


def _photo() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (60, 40), (200, 80, 20)).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.mark.browser
def test_overview_shows_the_figures_links_to_map_and_desk_and_prints_on_one_page(
    live_server, page, app
) -> None:  # type: ignore[no-untyped-def]
    engine = app.extensions["gridgov_db"].engine
    with Session(engine) as s:
        case = svc.create_case(
            s, svc.Report(x=117.2287344, y=31.8149002, category="garbage", description="一张图超期")
        )["case"]
        s.execute(
            text('UPDATE "case" SET deadline = :d WHERE id = :c'),
            {"d": datetime.now(UTC) - timedelta(hours=2), "c": case["id"]},
        )
        s.commit()
    try:
        figures = _get(live_server, "/api/overview")
        page.goto(f"{live_server}/overview")
        page.wait_for_selector("html[data-overview-ready='1']", timeout=20000)
        assert page.inner_text("[data-figure='households.count']") == str(
            figures["households"]["count"]
        )
        assert page.inner_text("[data-figure='cases.overdue']") == str(figures["cases"]["overdue"])
        assert page.inner_text("[data-figure='service_points.covered_share']").endswith("%")
        assert page.evaluate("() => Object.keys(window.OverviewCharts).length") == 3
        worst = figures["worst_grids"][0]
        assert worst["id"] == case["grid"]["id"]
        row = page.locator(f"#ov-worst tr[data-grid-id='{worst['id']}']")
        assert worst["name"] in row.inner_text()
        # Refreshes without reloading: the next fetch brings a newer stamp to the same page.
        page.evaluate("() => { window.__samePage = true; }")
        before = page.get_attribute("html", "data-overview-at")
        page.click("#ov-refresh")
        page.wait_for_function(
            "(t) => document.documentElement.getAttribute('data-overview-at') !== t",
            arg=before,
            timeout=10000,
        )
        assert page.evaluate("() => window.__samePage === true")
        # Prints on one page.
        page.emulate_media(media="print")
        pdf = page.pdf(format="A4", landscape=True, prefer_css_page_size=True)
        assert pdf.count(b"/Type /Page") - pdf.count(b"/Type /Pages") == 1
        page.emulate_media(media="screen")
        # Click-through to the desk, filtered to the grid's overdue cases.
        row.locator("a", has_text="事件").click()
        page.wait_for_selector("html[data-desk-ready='1']", timeout=20000)
        assert page.is_checked("#filters input[name=overdue]")
        assert case["code"] in page.inner_text("#case-table")
        assert page.inner_text("#case-count") == f"共 {worst['overdue']} 件"
        # … and to the map, with the grid's notice board open.
        page.goto(f"{live_server}/overview")
        page.wait_for_selector("html[data-overview-ready='1']", timeout=20000)
        page.locator(f"#ov-worst tr[data-grid-id='{worst['id']}'] a", has_text="地图").click()
        page.wait_for_selector(f"html[data-emap-linked='{worst['id']}']", timeout=30000)
        assert page.locator(f".gg-board[data-grid-id='{worst['id']}']").count() == 1
    finally:
        with Session(engine) as s:
            delete_cases(s, [case["id"]])
            s.commit()


@pytest.mark.browser
def test_household_ledger_pages_sorts_and_reveals(live_server, page) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server}/ledgers/households")
    page.wait_for_selector("html[data-ledger-ready='1']", timeout=20000)
    total = _get(live_server, "/api/ledgers/households?limit=1")["total"]
    assert page.locator("#ledger-table tbody tr").count() == 50
    assert f"共 {total} 条" in page.inner_text("#ledger-page")
    # Sort by head count, largest first: the first row is the largest household.
    page.click("#ledger-table th[data-sort='people']")
    page.wait_for_selector("#ledger-table th.gg-sort-asc[data-sort='people']")
    page.click("#ledger-table th[data-sort='people']")
    page.wait_for_selector("#ledger-table th.gg-sort-desc[data-sort='people']")
    biggest = _get(live_server, "/api/ledgers/households?sort=people&order=desc&limit=1")["items"][
        0
    ]
    page.wait_for_selector(f"#ledger-table tbody tr:first-child[data-id='{biggest['id']}']")
    # Next page: other households.
    first_ids = page.eval_on_selector_all(
        "#ledger-table tbody tr", "rows => rows.map(r => r.dataset.id)"
    )
    page.click("#ledger-next")
    page.wait_for_function(
        "(id) => document.querySelector('#ledger-table tbody tr').dataset.id !== id",
        arg=first_ids[0],
    )
    assert "第 2 /" in page.inner_text("#ledger-page")
    assert not set(first_ids) & set(
        page.eval_on_selector_all("#ledger-table tbody tr", "rows => rows.map(r => r.dataset.id)")
    )
    # The phone is masked until asked for; asking shows the full number.
    row = page.locator("#ledger-table tbody tr", has=page.locator("button.gg-reveal")).first
    hid = row.get_attribute("data-id")
    masked = row.locator(".gg-head-phone").inner_text()
    assert "*" in masked
    row.locator("button.gg-reveal").click()
    page.wait_for_function(
        "(id) => !document.querySelector(`#ledger-table tr[data-id='${id}'] .gg-head-phone`).textContent.includes('*')",
        arg=hid,
    )
    # The export button takes the same grid filter.
    page.select_option("#ledger-filters select[name=grid]", index=1)
    page.click("#ledger-filters button[type=submit]")
    grid = page.eval_on_selector("#ledger-filters select[name=grid]", "s => s.value")
    page.wait_for_function(
        "(g) => document.getElementById('ledger-export').href.endsWith('grid=' + g)", arg=grid
    )


@pytest.mark.browser
def test_resident_reports_on_a_phone_and_follows_the_case(live_server, browser, app) -> None:  # type: ignore[no-untyped-def]
    engine = app.extensions["gridgov_db"].engine
    context = browser.new_context(
        viewport={"width": 390, "height": 844},
        locale="zh-CN",
        bypass_csp=True,
        is_mobile=True,
        has_touch=True,
    )
    context.grant_permissions(["geolocation"], origin=live_server)
    context.set_geolocation({"latitude": 31.81491, "longitude": 117.22876})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{live_server}/report")
        page.wait_for_selector("html[data-report-ready='1']", timeout=20000)
        assert (
            page.evaluate("() => document.documentElement.scrollWidth") <= 390
        )  # nothing wider than the phone
        assert (
            page.eval_on_selector("#report-category", "s => s.value") == ""
        )  # no default category
        # Nothing filled in: each missing field says so in Chinese, nothing is sent.
        page.click("#report-submit")
        assert page.inner_text("[data-error-for='category']") == "请选择事件类型"
        assert "位置" in page.inner_text("[data-error-for='place']")
        assert page.inner_text("[data-error-for='description']") == "请填写问题描述"
        page.select_option("#report-category", "garbage")
        # A tap on the map pins the place; the phone's GPS then moves the pin to where one stands.
        page.click("#report-map", position={"x": 180, "y": 120})
        assert page.inner_text("#report-where").startswith("已在地图上选择")
        assert page.inner_text("[data-error-for='place']") == ""
        page.click("#report-gps")
        page.wait_for_function(
            "() => document.getElementById('report-where').textContent.startsWith('已定位')"
        )
        page.fill("#report-description", "楼下垃圾堆放多日无人清运")
        page.fill("#report-contact", "13800001111")
        # A file that is no image: the API refuses it, the page says why in Chinese.
        page.set_input_files(
            "#report-photos",
            files=[{"name": "bad.jpg", "mimeType": "image/jpeg", "buffer": b"not a photo"}],
        )
        page.click("#report-submit")
        page.wait_for_function(
            "() => document.querySelector(\"[data-error-for='photo']\").textContent.includes('照片无效')"
        )
        assert page.get_attribute("html", "data-report-code") is None
        # A real photo: the report goes through and answers with the code to follow.
        page.set_input_files(
            "#report-photos",
            files=[{"name": "pile.jpg", "mimeType": "image/jpeg", "buffer": _photo()}],
        )
        page.click("#report-submit")
        page.wait_for_selector("html[data-report-code]", timeout=15000)
        code = page.get_attribute("html", "data-report-code")
        assert page.inner_text("#report-code") == code and len(code) == 19
        assert page.inner_text("#report-secret")
        page.click("#report-track")
        page.wait_for_selector("html[data-track-ready='1']", timeout=20000)
        status = page.inner_text("#case-status")
        assert code in status and "楼下垃圾堆放多日无人清运" in status
        assert page.locator("#case-status img.gg-thumb").count() == 1
        with Session(engine) as s:
            row = s.execute(
                text(
                    'SELECT category, source, ST_X(geom) AS lon, reporter_contact FROM "case" WHERE description = :d'
                ),
                {"d": "楼下垃圾堆放多日无人清运"},
            ).one()
        assert (row.category, row.source, row.reporter_contact) == (
            "garbage",
            "resident",
            "13800001111",
        )
        assert row.lon == pytest.approx(117.22876, abs=1e-6)  # the phone's GPS
        assert not errors, errors
    finally:
        context.close()
        with Session(engine) as s:
            ids = s.scalars(
                text("SELECT id FROM \"case\" WHERE description = '楼下垃圾堆放多日无人清运'")
            ).all()
            delete_cases(s, list(ids))
            s.commit()
