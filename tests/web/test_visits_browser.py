"""A grid worker's phone page at phone size with the browser's geolocation: check in, visit a
household on the spot and one from far away (flagged), report a case from a visit, record a
visit offline and see it sent once back online, and the coverage figures move."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from tests.cleanup import delete_cases
from tests.web.emap_page import sign_in


def _api(page, path: str):  # type: ignore[no-untyped-def]
    return page.evaluate(
        "p => fetch(p, {headers: {Accept: 'application/json'}}).then(r => r.json())", path
    )


def _visit(page, item: dict, lon: float, lat: float) -> None:  # type: ignore[no-untyped-def]
    page.context.set_geolocation({"longitude": lon, "latitude": lat, "accuracy": 10})
    page.click(f"#due-list [data-household='{item['household']['id']}'] .gg-visit-btn")
    page.fill("#visit-problems", "楼道堆放杂物")
    page.click("#visit-submit")


def test_worker_checks_in_visits_reports_and_works_offline(
    browser, live_server, database_url, accounts
) -> None:  # type: ignore[no-untyped-def]
    started = datetime.now(UTC)
    wid = accounts["worker"].worker_id
    engine = create_engine(database_url)
    context = browser.new_context(
        viewport={"width": 390, "height": 844},
        locale="zh-CN",
        bypass_csp=True,
        is_mobile=True,
        has_touch=True,
    )
    context.grant_permissions(["geolocation"], origin=live_server)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        sign_in(page, live_server, accounts["worker"].username)
        page.goto(f"{live_server}/cases/worker")
        page.click("#visits-link")
        page.wait_for_selector("html[data-visits-ready='1']")
        before = _api(page, "/api/visits/coverage?group=worker")["rows"][0]
        assert page.get_attribute("#coverage-all", "data-visited") == str(before["all"]["visited"])
        items = _api(page, "/api/visits/due?limit=200")["items"]
        assert len(items) >= 3
        first, second, third = items[:3]

        # Check in on one's own grid.
        page.context.set_geolocation(
            {"longitude": first["household"]["lon"], "latitude": first["household"]["lat"]}
        )
        page.click("#checkin-btn")
        page.wait_for_selector("#checkin-msg[data-inside='1']")
        assert "打卡" in page.text_content("#checkin-msg")

        # A visit at the door: saved, no flag.
        _visit(page, first, first["household"]["lon"] + 0.0001, first["household"]["lat"])
        page.wait_for_function(
            "document.getElementById('visit-msg').textContent.indexOf('已保存') >= 0"
        )
        assert page.is_hidden("#visit-flag")
        page.wait_for_selector(
            f"#due-list [data-household='{first['household']['id']}']", state="detached"
        )

        # A visit about 500 m away: saved too, and flagged on the page.
        lat = second["household"]["lat"]
        _visit(
            page,
            second,
            second["household"]["lon"] + 500 / (111320 * math.cos(math.radians(lat))),
            lat,
        )
        page.wait_for_selector("#visit-flag:not([hidden])")
        flag = page.text_content("#visit-flag")
        assert "位置异常" in flag and "米" in flag
        page.wait_for_selector(".gg-visit-item .gg-flag")

        # Report a case from the latest visit.
        page.click("#recent-list .gg-visit-item .gg-report-btn")
        page.wait_for_function(
            "Array.from(document.querySelectorAll('#recent-list .gg-msg')).some(e => e.textContent.indexOf('已上报事件') >= 0)"
        )

        # Offline: the visit waits in the page, and goes once the network is back.
        page.context.set_offline(True)
        _visit(page, third, third["household"]["lon"], third["household"]["lat"])
        page.wait_for_function(
            "document.getElementById('queue-state').textContent.indexOf('1 条') >= 0"
        )
        assert "暂存" in page.text_content("#visit-msg")
        page.context.set_offline(False)
        page.wait_for_function(
            "document.getElementById('visit-msg').textContent.indexOf('全部发送') >= 0"
        )
        assert page.text_content("#queue-state") == ""

        after = _api(page, "/api/visits/coverage?group=worker")["rows"][0]
        assert after["all"]["visited"] == before["all"]["visited"] + 3
        # The page's own figures moved with them.
        page.wait_for_selector(f"#coverage-all[data-visited='{after['all']['visited']}']")
        assert f"已访 {after['all']['visited']} 户" in page.text_content("#coverage-all")
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT household_id, place_flag, case_id FROM visit WHERE worker_id = :w AND recorded_at >= :t ORDER BY id"
                ),
                {"w": wid, "t": started},
            ).all()
            assert [r.household_id for r in rows] == [
                i["household"]["id"] for i in (first, second, third)
            ]
            assert [r.place_flag for r in rows] == [False, True, False]
            assert rows[1].case_id is not None  # the case reported from the far visit
            description = conn.scalar(
                text('SELECT description FROM "case" WHERE id = :c'), {"c": rows[1].case_id}
            )
            assert "走访" in description
            inside = conn.scalar(
                text("SELECT inside FROM checkin WHERE worker_id = :w AND recorded_at >= :t"),
                {"w": wid, "t": started},
            )
            assert inside is True
        assert not errors, json.dumps(errors, ensure_ascii=False)
    finally:
        context.close()
        with Session(engine) as s:
            cases = s.scalars(
                text(
                    "SELECT case_id FROM visit WHERE worker_id = :w AND recorded_at >= :t AND case_id IS NOT NULL"
                ),
                {"w": wid, "t": started},
            ).all()
            s.execute(
                text("DELETE FROM visit WHERE worker_id = :w AND recorded_at >= :t"),
                {"w": wid, "t": started},
            )
            s.execute(
                text("DELETE FROM checkin WHERE worker_id = :w AND recorded_at >= :t"),
                {"w": wid, "t": started},
            )
            delete_cases(s, list(cases))
            s.commit()
        engine.dispose()


PAYLOAD = '<img src=x onerror="window.__xss=1">"><script>window.__xss=2</script>'


def test_the_visits_page_runs_under_its_csp_and_shows_what_was_written_as_text(
    browser, live_server, database_url, accounts
) -> None:  # type: ignore[no-untyped-def]
    from tests.web.test_auth_browser import WATCH_CSP, _settle

    engine = create_engine(database_url)
    wid = accounts["worker"].worker_id
    with engine.begin() as conn:
        hid = conn.scalar(
            text(
                "SELECT h.id FROM household h JOIN grid_assignment a ON a.grid_id = h.grid_id "
                "OR h.grid_id IN (SELECT id FROM grid WHERE parent_id = a.grid_id) WHERE a.worker_id = :w "
                "ORDER BY h.id LIMIT 1"
            ),
            {"w": wid},
        )
        vid = conn.scalar(
            text(
                "INSERT INTO visit (worker_id, household_id, grid_id, kind, visited_at, problems, note) "
                "SELECT :w, id, grid_id, 'adhoc', now(), :p, :p FROM household WHERE id = :h RETURNING id"
            ),
            {"w": wid, "h": hid, "p": PAYLOAD},
        )
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN")
    context.add_init_script(WATCH_CSP)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        sign_in(page, live_server, accounts["worker"].username)
        res = page.goto(f"{live_server}/visits")
        assert res.status == 200
        assert "script-src 'self' 'nonce-" in res.headers["content-security-policy"]
        _settle(page, "() => document.documentElement.dataset.visitsReady === '1'")
        item = page.locator(f"#recent-list [data-visit='{vid}']")
        assert PAYLOAD in item.text_content()
        assert page.evaluate("() => window.__xss === undefined")
        assert page.evaluate("() => window.__cspViolations") == []
        assert errors == []
    finally:
        context.close()
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM visit WHERE id = :v"), {"v": vid})
        engine.dispose()


def _road_walk(engine, worker_id: int, n: int) -> list[tuple[float, float]]:  # type: ignore[no-untyped-def]
    """``n`` positions along the longest road piece in the worker's grids, 15 m apart (or evenly
    spread over a shorter piece): a walk, never a jump."""
    with engine.connect() as conn:
        return [
            (x, y)
            for x, y in conn.execute(
                text(
                    """WITH area AS (SELECT ST_Union(g.geom) AS geom FROM grid_assignment a
                                     JOIN grid g ON g.id = a.grid_id
                                     WHERE a.worker_id = :w AND g.valid_to IS NULL),
                       r AS (SELECT (ST_Dump(ST_Intersection(b.geom, area.geom))).geom AS part
                             FROM basemap_feature b, area
                             WHERE b.kind = 'road' AND ST_Intersects(b.geom, area.geom)),
                       l AS (SELECT part FROM r WHERE GeometryType(part) = 'LINESTRING'
                             ORDER BY ST_Length(part::geography) DESC LIMIT 1)
                       SELECT ST_X(p), ST_Y(p) FROM l, LATERAL (
                           SELECT ST_LineInterpolatePoint(l.part, i * least(1.0 / (:n - 1),
                                      15 / ST_Length(l.part::geography))) AS p
                           FROM generate_series(0, :n - 1) i) s"""
                ),
                {"w": worker_id, "n": n},
            )
        ]


def test_worker_patrols_along_a_road_and_the_coverage_moves(
    browser, live_server, database_url, accounts
) -> None:  # type: ignore[no-untyped-def]
    started = datetime.now(UTC)
    wid = accounts["worker"].worker_id
    engine = create_engine(database_url)
    walk = _road_walk(engine, wid, 18)
    assert len(walk) == 18
    context = browser.new_context(
        viewport={"width": 390, "height": 844},
        locale="zh-CN",
        is_mobile=True,
        has_touch=True,
    )
    context.grant_permissions(["geolocation"], origin=live_server)
    context.set_geolocation({"longitude": walk[0][0], "latitude": walk[0][1], "accuracy": 5})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        sign_in(page, live_server, accounts["worker"].username)
        page.goto(f"{live_server}/visits")
        page.wait_for_selector("html[data-patrol-ready='1']")
        before = _api(page, "/api/patrols/coverage?group=worker")["rows"][0]
        assert page.get_attribute("#patrol-coverage", "data-patrols") == str(before["patrols"])

        page.click("#patrol-start")
        page.wait_for_selector("#patrol[data-open='1']")
        # The phone walks the road: each new position reaches the page through the browser's
        # geolocation, and every sixth goes to the server as a batch.
        for i, (x, y) in enumerate(walk[1:12], start=1):
            page.wait_for_timeout(1100)  # distinct moments, at walking speed
            context.set_geolocation({"longitude": x, "latitude": y, "accuracy": 5})
            page.wait_for_function(
                "n => { const s = JSON.parse(localStorage.getItem('gridgov.patrol'));"
                " return s.points.length + s.batches.reduce((a, b) => a + b.points.length, 0)"
                " + (s.sent || 0) >= n; }",
                arg=i + 1,
            )
        page.wait_for_selector("#patrol[data-sent='12']")
        # Offline: the next batch waits in the page, and goes (with its key) once back online.
        context.set_offline(True)
        for x, y in walk[12:]:
            page.wait_for_timeout(1100)
            context.set_geolocation({"longitude": x, "latitude": y, "accuracy": 5})
        page.wait_for_selector("#patrol-queue[data-waiting='6']")
        context.set_offline(False)
        page.wait_for_selector("#patrol[data-sent='18']")
        page.click("#patrol-stop")
        page.wait_for_selector("#patrol[data-open='0']")
        page.wait_for_function(
            "n => document.getElementById('patrol-coverage').dataset.patrols === String(n)",
            arg=before["patrols"] + 1,
        )
        after = _api(page, "/api/patrols/coverage?group=worker")["rows"][0]
        assert after["road_covered_m"] > before["road_covered_m"]
        assert (
            float(page.get_attribute("#patrol-coverage", "data-road-share")) == after["road_share"]
        )
        assert "道路覆盖率" in page.text_content("#patrol-coverage")
        with engine.connect() as conn:
            counts = conn.execute(
                text(
                    """SELECT count(*), count(DISTINCT (pp.patrol_id, pp.t)),
                              GeometryType(max(p.track)::geometry)
                       FROM patrol p JOIN patrol_point pp ON pp.patrol_id = p.id
                       WHERE p.worker_id = :w AND p.started_at >= :t"""
                ),
                {"w": wid, "t": started - timedelta(minutes=1)},
            ).one()
        assert counts[0] == counts[1] == 18 and counts[2] == "MULTILINESTRINGM"
        assert not errors, json.dumps(errors, ensure_ascii=False)
    finally:
        context.close()
        with engine.begin() as conn:
            conn.execute(
                text("DELETE FROM patrol WHERE worker_id = :w AND started_at >= :t"),
                {"w": wid, "t": started - timedelta(minutes=1)},
            )
        engine.dispose()


def test_a_chief_sees_field_kpis_and_a_workers_day_on_the_emap(
    browser, live_server, database_url, accounts
) -> None:  # type: ignore[no-untyped-def]
    wid = accounts["worker"].worker_id
    engine = create_engine(database_url)
    walk = _road_walk(engine, wid, 10)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        pid = conn.scalar(
            text(
                "INSERT INTO patrol (worker_id, started_at, ended_at) VALUES (:w, :a, :b) RETURNING id"
            ),
            {"w": wid, "a": now - timedelta(minutes=5), "b": now - timedelta(minutes=2)},
        )
        for i, (x, y) in enumerate(walk):
            conn.execute(
                text(
                    "INSERT INTO patrol_point (patrol_id, t, geom) VALUES (:p, :t, ST_SetSRID(ST_MakePoint(:x, :y), 4326))"
                ),
                {
                    "p": pid,
                    "t": now - timedelta(minutes=5) + timedelta(seconds=10 * i),
                    "x": x,
                    "y": y,
                },
            )
        conn.execute(
            text(
                # the stopped patrol's track, as the stop builds it (no gap in a walk every 10 s)
                "UPDATE patrol SET track = gridgov_patrol_line(:p, 300) WHERE id = :p"
            ),
            {"p": pid},
        )
        checkin = conn.scalar(
            text(
                """INSERT INTO checkin (worker_id, checked_at, inside, geom)
                   VALUES (:w, :t, false, ST_SetSRID(ST_MakePoint(:x, :y), 4326)) RETURNING id"""
            ),
            {"w": wid, "t": now - timedelta(minutes=1), "x": walk[0][0], "y": walk[0][1]},
        )
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="zh-CN")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        sign_in(page, live_server, accounts["grid_chief"].username)
        page.goto(f"{live_server}/cases/kpi")
        page.wait_for_selector("html[data-field-kpi-ready='1']")
        row = page.locator(f"#field-kpi-table tbody tr[data-id='{wid}']")
        cells = row.locator("td").all_text_contents()
        assert cells[9] != "0" and cells[10].endswith("%")  # patrols this week, road coverage
        assert page.evaluate("() => Object.keys(window.FieldKpiCharts).sort()") == [
            "chart-field-rates",
            "chart-field-visits",
        ]
        page.select_option("#field-kpi-form select", "grid:4")
        page.click("#field-kpi-form button[type=submit]")
        page.wait_for_function(
            "() => document.getElementById('field-kpi-xlsx').getAttribute('href').indexOf('level=4') >= 0"
        )
        with page.expect_download() as dl:
            page.click("#field-kpi-csv")
        data = open(dl.value.path(), encoding="utf-8-sig").read()
        assert data.splitlines()[0].startswith("代码,名称,重点户应访")

        # the day's attendance: the worker's check-ins of the China day, as the database has them
        with engine.begin() as conn:
            code, n, outside = conn.execute(
                text(
                    """SELECT w.code, count(k.id), count(k.id) FILTER (WHERE NOT k.inside)
                         FROM worker w JOIN checkin k ON k.worker_id = w.id
                        WHERE w.id = :w AND (k.checked_at AT TIME ZONE 'Asia/Shanghai')::date
                              = (now() AT TIME ZONE 'Asia/Shanghai')::date
                        GROUP BY w.code"""
                ),
                {"w": wid},
            ).one()
        assert n >= 1 and outside >= 1
        page.wait_for_selector("html[data-attendance-ready='1']")
        att = page.locator(f"#attendance-table tbody tr[data-worker='{wid}']").locator("td")
        texts = att.all_text_contents()
        assert texts[2:4] == ["是", str(n)] and texts[6] == str(outside)
        assert "出勤" in page.inner_text("#attendance-summary")
        with page.expect_download() as dl:
            page.click("#attendance-csv")
        lines = open(dl.value.path(), encoding="utf-8-sig").read().splitlines()
        assert lines[0].startswith("日期,工号,姓名,出勤,打卡次数")
        mine = [line.split(",") for line in lines[1:] if line.split(",")[1] == code]
        assert len(mine) == 1 and mine[0][3:5] == ["是", str(n)] and mine[0][7] == str(outside)

        page.goto(f"{live_server}/emap")
        page.wait_for_selector("html[data-emap-ready='1']")
        page.check("#gg-overdue-toggle")
        page.wait_for_selector("html[data-overdue-drawn]")
        page.focus("#gg-tracks-worker")
        page.wait_for_selector("html[data-field-workers]")
        page.select_option("#gg-tracks-worker", str(wid))
        page.wait_for_selector("html[data-tracks-drawn]")
        assert int(page.get_attribute("html", "data-tracks-drawn")) >= 2  # a track and a road
        assert not errors, json.dumps(errors, ensure_ascii=False)
    finally:
        context.close()
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM patrol WHERE id = :p"), {"p": pid})
            conn.execute(text("DELETE FROM checkin WHERE id = :c"), {"c": checkin})
        engine.dispose()
