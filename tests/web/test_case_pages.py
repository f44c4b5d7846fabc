"""Case pages: served without external links, and the whole loop in a real browser."""

from __future__ import annotations

import io
import json
import re
import urllib.request

import pytest
from PIL import Image
from shapely.geometry import shape
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.services import cases as svc
from tests.cleanup import delete_cases
from tests.web.emap_page import free_spot

EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", re.I)
PAGES = (
    "/cases/desk",
    "/cases/worker?worker=5",
    "/cases/track?code=0000-0000-0000-0000",
    "/cases/kpi",
)


@pytest.mark.parametrize("path", PAGES)
def test_pages_load_every_asset_from_the_app(client, path: str) -> None:  # type: ignore[no-untyped-def]
    res = client.get(path)
    assert res.status_code == 200
    html = res.get_data(as_text=True)
    assert 'lang="zh-CN"' in html and not EXTERNAL.search(html)
    for asset in re.findall(r'(?:src|href)="(/[^"]+\.(?:js|css))"', html):
        assert client.get(asset).status_code == 200, asset


def test_the_desk_filters_by_every_state_and_source_the_server_defines(client) -> None:  # type: ignore[no-untyped-def]
    html = client.get("/cases/desk").get_data(as_text=True)
    select = html[html.index('<select name="status">') : html.index("</select>")]
    offered = dict(re.findall(r'<option value="(\w+)">([^<（]+)', select))
    assert {k: v for k, v in offered.items() if k != "all"} == svc.STATUS_NAMES
    for code, name in svc.SOURCE_NAMES.items():
        assert f'<option value="{code}">{name}</option>' in html
    block = re.search(r'id="gg-case-vocabulary">(.*?)</script>', html, re.S)
    assert block is not None
    vocabulary = json.loads(block.group(1))
    assert vocabulary["status_colors"] == svc.STATUS_COLORS
    assert vocabulary["overdue_color"] == svc.OVERDUE_COLOR


def test_chart_library_is_served_from_npm(client) -> None:  # type: ignore[no-untyped-def]
    res = client.get("/vendor/chart.js/chart.umd.min.js")
    assert res.status_code == 200 and b"Chart" in res.data


def _get(base: str, path: str) -> dict:
    with urllib.request.urlopen(base + path, timeout=30) as res:
        return json.loads(res.read())


def _photo() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 120, 200)).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.mark.browser
def test_report_on_emap_handle_on_phone_verify_on_desk_rate_as_resident(
    live_server: str,
    page,
    app,  # type: ignore[no-untyped-def]
) -> None:
    engine = app.extensions["gridgov_db"].engine
    code = None
    try:
        # 1. Report on the e-map: switch to reporting, click inside a micro-grid, fill the form.
        page.goto(f"{live_server}/emap")
        page.wait_for_selector("html[data-emap-ready='1']", timeout=20000)
        micro = _get(live_server, "/api/grids?level=4")["features"][0]
        minx, miny, maxx, maxy = shape(micro["geometry"]).bounds
        page.evaluate(
            "(b) => { GridGov.map.setView([(b[1] + b[3]) / 2, (b[0] + b[2]) / 2], 17, {animate: false}); }",
            [minx, miny, maxx, maxy],
        )
        target = free_spot(page, micro["geometry"])
        if target:
            target["name"] = micro["properties"]["name"]
        assert target, "no free spot inside the micro-grid to click"
        page.click("#gg-report-btn")
        page.mouse.click(target["x"], target["y"])
        page.wait_for_selector("#gg-report-form", timeout=10000)
        assert page.locator(".gg-board").count() == 0  # reporting, not the notice board
        page.select_option("#gg-report-form select[name=category]", "streetlight")
        page.fill("#gg-report-form textarea[name=description]", "小区门口路灯不亮")
        page.fill("#gg-report-form input[name=reporter_contact]", "13700001234")
        page.click("#gg-report-form button[type=submit]")
        done = page.wait_for_selector(".gg-reported", timeout=10000)
        code = done.get_attribute("data-code")
        worker = done.get_attribute("data-assignee")
        public_code = done.get_attribute("data-public-code")
        assert code and code.startswith("SJ") and worker
        assert public_code and len(public_code) == 19 and done.get_attribute("data-secret")
        assert target["name"] in done.inner_text()
        # The new case shows on the e-map's case layer.
        page.wait_for_function(
            "code => GridGov.renderedCases().some(c => c.code === code && c.status === 'dispatched')",
            arg=code,
            timeout=10000,
        )

        # 2. The worker's phone page: type the worker's number, see the case in the list and on
        #    the map, accept it, then resolve it with a note, a photo and the phone's GPS.
        page.context.grant_permissions(["geolocation"], origin=live_server)
        page.context.set_geolocation({"latitude": 31.81491, "longitude": 117.22876})
        page.goto(f"{live_server}/cases/worker")
        page.wait_for_selector("html[data-worker-ready='1']", timeout=20000)
        page.fill("#worker-id", worker)
        page.click("#who button[type=submit]")
        card = f".gg-card[data-code='{code}']"
        page.wait_for_selector(card, timeout=10000)
        assert "已派单" in page.inner_text(f"{card} .gg-status")
        assert "小区门口路灯不亮" in page.inner_text(card)
        on_map = page.evaluate(
            """() => CaseWorkerMap.markers.getLayers().filter(m =>
                   m.getTooltip().getContent() === '路灯损坏 已派单').length"""
        )
        assert on_map, "the worker's map shows no marker for the case"
        page.click(f"{card} button[data-action=accept]")
        page.wait_for_selector(f"{card} form.gg-resolve", timeout=10000)
        assert "处置中" in page.inner_text(f"{card} .gg-status")
        page.wait_for_function(
            "() => document.getElementById('gps-state').textContent.startsWith('已定位')",
            timeout=10000,
        )
        page.fill(f"{card} textarea[name=note]", "已更换灯泡，恢复照明")
        page.set_input_files(
            f"{card} input[type=file]",
            files=[{"name": "done.jpg", "mimeType": "image/jpeg", "buffer": _photo()}],
        )
        page.click(f"{card} .gg-resolve-btn")
        page.wait_for_function(
            f"""() => {{ const c = document.querySelector("{card}");
                         return c && c.innerText.includes('等待核查'); }}""",
            timeout=10000,
        )
        assert "已反馈" in page.inner_text(f"{card} .gg-status")

        # 3. The centre verifies it on the desk.
        page.goto(f"{live_server}/cases/desk")
        page.wait_for_selector("html[data-desk-ready='1']", timeout=20000)
        page.click(f"#case-table tr:has-text('{code}')")
        page.click("#act-form button[data-action=verify]", timeout=10000)
        page.wait_for_function(
            "() => (document.getElementById('act-msg') || {}).textContent === '核查通过：已完成'",
            timeout=10000,
        )

        # 4. The resident types the case code, sees the handling feedback and rates it: the
        #    case closes, and whether the problem was solved is kept apart from that.
        page.goto(f"{live_server}/cases/track")
        page.wait_for_selector("html[data-track-ready='1']", timeout=20000)
        page.fill("#case-code", public_code)
        page.click("#lookup button[type=submit]")
        page.wait_for_selector("#rate-form", timeout=10000)
        status = page.inner_text("#case-status")
        assert public_code in status and code not in status and "已核查" in status
        assert "已更换灯泡，恢复照明" in status  # the worker's report-back note
        assert page.locator("#case-status img.gg-thumb").count() == 1  # and the photo
        page.check("#rate-form input[name=satisfaction][value='4']")
        page.check("#rate-form input[name=solved][value='false']")
        page.fill("#rate-form textarea[name=note]", "处理及时，但灯又灭了")
        page.fill("#rate-form input[name=proof]", "137 0000 1234")  # the phone of the report
        page.click("#rate-form button[type=submit]")
        rated = page.wait_for_selector(".gg-rated", timeout=10000)
        assert "已结案" in rated.inner_text() and "★★★★" in rated.inner_text()
        assert "★★★★★" not in rated.inner_text() and "问题未解决" in rated.inner_text()
        assert "已结案" in page.inner_text("#case-status .gg-status")

        with Session(engine) as s:
            view = svc.case_view(s, code)
            assert view["status"] == "closed" and view["satisfaction"] == 4
            assert view["solved"] is False  # closed, yet not fixed
            actions = [e["action"] for e in view["events"]]
            assert actions == ["report", "dispatch", "accept", "resolve", "verify", "rate"]
            resolve = view["events"][3]
            assert resolve["note"] == "已更换灯泡，恢复照明"
            assert resolve["point"] == {"lon": 117.22876, "lat": 31.81491}  # the phone's GPS
            assert len(view["photos"]) == 1
    finally:
        with Session(engine) as s:
            ids = s.scalars(
                text("SELECT id FROM \"case\" WHERE description = '小区门口路灯不亮'")
            ).all()
            delete_cases(s, list(ids))
            s.commit()


def _closed_case(s: Session, *, solved: bool, satisfaction: int) -> int:
    """Report, handle, verify and rate a case through the service (committed by the caller)."""
    case = svc.create_case(
        s,
        svc.Report(x=117.2287344, y=31.8149002, category="streetlight", description="KPI页面"),
    )["case"]
    worker = svc.Actor("worker", worker_id=case["assignee"]["id"])
    svc.perform(s, case["id"], "accept", worker)
    svc.perform(s, case["id"], "resolve", worker, svc.ActionInput(note="已修复"))
    svc.perform(s, case["id"], "verify", svc.Actor("centre"))
    svc.perform(
        s,
        case["id"],
        "rate",
        svc.Actor("resident"),
        svc.ActionInput(params={"satisfaction": satisfaction, "solved": solved}),
    )
    return case["id"]


@pytest.mark.browser
def test_kpi_page_charts_the_figures_of_the_api(live_server: str, page, app) -> None:  # type: ignore[no-untyped-def]
    engine = app.extensions["gridgov_db"].engine
    with Session(engine) as s:
        ids = [
            _closed_case(s, solved=True, satisfaction=5),
            _closed_case(s, solved=False, satisfaction=2),
            svc.create_case(
                s,
                svc.Report(x=117.2287344, y=31.8149002, category="garbage", description="KPI页面"),
            )["case"]["id"],
        ]
        grid = svc.case_view(s, ids[0])["grid"]
        s.commit()
    try:
        page.goto(f"{live_server}/cases/kpi")
        page.wait_for_selector("html[data-kpi-ready='1']", timeout=20000)
        page.select_option("#kpi-form select[name=view]", "grid:4")  # by micro-grid
        page.click("#kpi-form button[type=submit]")
        row = page.wait_for_selector(f"#kpi-table tr:has-text('{grid['name']}')", timeout=10000)
        cells = [c.inner_text() for c in row.query_selector_all("td")]
        # 名称 事件数 结案数 结案率 按期结案率 时长 满意度 满意率 问题解决率 超期
        assert cells[1:4] == ["3", "2", "66.7%"]
        assert cells[4] == "100.0%" and cells[6] == "3.5" and cells[7] == "50.0%"
        assert cells[8] == "50.0%"  # one of the two closed cases was not fixed
        charts = page.evaluate(
            """() => Object.fromEntries(Object.entries(CaseKpiCharts).map(([id, ch]) => [id, {
                   labels: ch.data.labels,
                   sets: ch.data.datasets.map(d => [d.label, d.data])}]))"""
        )
        rates = charts["chart-rates"]
        at = rates["labels"].index(grid["name"])
        by_label = {label: data[at] for label, data in rates["sets"]}
        assert by_label == {"结案率（%）": 66.7, "按期结案率（%）": 100, "问题解决率（%）": 50}
        sat = {label: data[at] for label, data in charts["chart-satisfaction"]["sets"]}
        assert sat["满意度（1–5）"] == 3.5
        # The page shows what the API says.
        api = page.request.get(f"{live_server}/api/cases/kpis?group=grid&level=4").json()
        item = next(i for i in api["items"] if i["key"] == grid["id"])
        assert (item["total"], item["closed"], item["solved_rate"]) == (3, 2, 0.5)
        # Drawn on the canvas, not just configured: the chart area has coloured pixels.
        painted = page.evaluate(
            """() => { const c = document.getElementById('chart-rates');
                       const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                       let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
                       return n; }"""
        )
        assert painted > 1000
    finally:
        with Session(engine) as s:
            delete_cases(s, ids)
            s.commit()


@pytest.mark.browser
def test_desk_lists_overdue_first_shows_them_red_and_merges_a_duplicate(
    live_server: str,
    page,
    app,  # type: ignore[no-untyped-def]
) -> None:
    engine = app.extensions["gridgov_db"].engine
    here = dict(x=117.2287344, y=31.8149002, description="受理台测试")
    with Session(engine) as s:
        first = svc.create_case(s, svc.Report(category="garbage", **here))["case"]
        late = svc.create_case(s, svc.Report(category="fire_hazard", **here))["case"]
        again = svc.create_case(s, svc.Report(category="garbage", **here))["case"]
        s.execute(
            text("""UPDATE "case" SET deadline = now() - interval '2 hours' WHERE id = :id"""),
            {"id": late["id"]},
        )
        s.commit()
    ids = [first["id"], late["id"], again["id"]]
    try:
        page.goto(f"{live_server}/cases/desk")
        page.wait_for_selector("html[data-desk-ready='1']", timeout=20000)
        rows = page.locator("#case-table tbody tr")
        top = rows.nth(0)
        assert late["code"] in top.inner_text() and "超期" in top.inner_text()
        assert "gg-row-overdue" in (top.get_attribute("class") or "")
        assert "超期" not in page.inner_text(f"#case-table tr:has-text('{first['code']}')")
        colours = page.evaluate(
            """() => Object.fromEntries(CaseDeskMap.markers.getLayers().map(m =>
                   [m.getTooltip().getContent().split(' ')[0], m.options.fillColor]))"""
        )
        assert colours[late["code"]] == svc.OVERDUE_COLOR == "#d32f2f"  # overdue in red
        assert colours[first["code"]] == svc.STATUS_COLORS[first["status"]]
        # The badge takes its state's colour from the same definition.
        badge = page.locator(f"#case-table tr:has-text('{first['code']}') .gg-status")
        background = badge.evaluate("b => getComputedStyle(b).backgroundColor")
        hex_colour = svc.STATUS_COLORS[first["status"]]
        rgb = tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
        assert background == f"rgb({rgb[0]}, {rgb[1]}, {rgb[2]})"

        # The later garbage report is offered as a duplicate of the first and merged into it.
        page.click(f"#case-table tr:has-text('{again['code']}')")
        page.wait_for_selector(f"#dups:has-text('{first['code']}')", timeout=10000)
        page.fill("#act-form input[name=into]", first["code"])
        page.fill("#act-form textarea[name=note]", "同一处垃圾")
        page.click("#act-form button[data-action=merge]")
        page.wait_for_function(
            "() => (document.getElementById('act-msg') || {}).textContent === '合并：已完成'",
            timeout=10000,
        )
        assert "已作废" in page.inner_text("#case-detail .gg-status")
        assert again["code"] not in page.inner_text("#case-table")  # open cases only

        # Only the overdue ones.
        page.check("#filters input[name=overdue]")
        page.click("#filters button[type=submit]")
        page.wait_for_function(
            "n => document.querySelectorAll('#case-table tbody tr').length === n", arg=1
        )
        assert late["code"] in page.inner_text("#case-table tbody")
        with Session(engine) as s:
            merged = svc.case_view(s, first["id"])["merged"]
            assert [m["code"] for m in merged] == [again["code"]]
    finally:
        with Session(engine) as s:
            delete_cases(s, ids)
            s.commit()
