"""The points page: the centre sees the quarter's ranking in its table, names entered as text,
under the app's own content security policy."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from tests.web.emap_page import sign_in

PAYLOAD = '<img src=x onerror="window.__pwned=1">积分党员'


def test_the_centre_sees_the_ranking_with_names_as_text(
    browser, live_server, database_url, accounts
) -> None:  # type: ignore[no-untyped-def]
    engine = create_engine(database_url)
    with engine.begin() as conn:
        member = conn.scalar(
            text("INSERT INTO worker (code, name) VALUES ('PT-PAGE', :n) RETURNING id"),
            {"n": PAYLOAD},
        )
        conn.execute(
            text(
                "INSERT INTO grid_assignment (worker_id, grid_id, role) SELECT :m, id, 'party_member' FROM grid"
                " WHERE code = '3401880010010101' AND valid_to IS NULL"
            ),
            {"m": member},
        )
        conn.execute(
            text(
                "INSERT INTO point_entry (member_id, rule_id, occurred_on, status) SELECT :m, id, DATE '2026-10-09',"
                " 'approved' FROM point_rule WHERE code IN ('DY-LZ-01', 'DY-JL-01') AND version = 1"
            ),
            {"m": member},
        )
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        sign_in(page, live_server, accounts["centre"].username)
        page.goto(f"{live_server}/points")
        page.fill("#points-quarter", "2026Q4")
        page.click("#points-form button[type=submit]")
        page.wait_for_selector("html[data-points-ready='1']")
        first = page.locator("#points-body tr").first.locator("td")
        assert first.all_text_contents() == ["1", PAYLOAD, "10"]
        assert page.evaluate("window.__pwned") is None
        assert page.locator("a[href='/points']").count() >= 1  # the menu lists the module
        page.select_option("#points-group", "grid")
        page.wait_for_selector("html[data-points-ready='1'] #points-head th:nth-child(5)")
        assert page.locator("#points-head th").all_text_contents() == [
            "名次",
            "微网格",
            "户数",
            "总积分",
            "户均积分",
        ]
        page.fill("#points-quarter", "2026Q9")
        page.click("#points-form button[type=submit]")
        page.wait_for_selector("#points-msg:has-text('季度')")
        assert page.locator("#points-body tr").count() == 0
        assert errors == []
    finally:
        context.close()
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM worker WHERE id = :m"), {"m": member})
        engine.dispose()


MICRO = "3401880010010101"
VILLAGE = "340188001001"
CLOSED_Q = "2026Q3"


def _person(browser, live_server, username):  # type: ignore[no-untyped-def]
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    sign_in(page, live_server, username)
    return context, page, errors


def test_a_proposal_goes_through_review_to_a_closed_quarter_and_the_public_page(
    browser, live_server, database_url, accounts
) -> None:  # type: ignore[no-untyped-def]
    engine = create_engine(database_url)
    tables = ("point_entry", "household_point_entry", "point_exchange", "star_adjustment")
    with engine.begin() as conn:
        marks = {t: conn.scalar(text(f"SELECT COALESCE(max(id), 0) FROM {t}")) for t in tables}
        home, head = conn.execute(
            text(
                "SELECT h.id, h.head_name FROM household h JOIN grid g ON g.id = h.grid_id"
                " WHERE g.code = :c AND h.head_name IS NOT NULL ORDER BY h.id LIMIT 1"
            ),
            {"c": MICRO},
        ).one()
        conn.execute(
            text(
                "INSERT INTO household_point_entry (household_id, rule_id, occurred_on) SELECT :h, id,"
                " DATE '2026-08-08' FROM point_rule WHERE code = 'HH-JL-01' AND version = 1"
            ),
            {"h": home},
        )
    contexts = []
    try:
        # the party member proposes an entry of the quarter
        context, page, errors = _person(browser, live_server, accounts["party_member"].username)
        contexts.append(context)
        page.goto(f"{live_server}/points")
        page.wait_for_selector("#propose-rule option[value='DY-JL-01']", state="attached")
        page.select_option("#propose-rule", "DY-JL-01")
        page.fill("#propose-day", "2026-09-15")
        page.fill("#propose-note", "参加防汛值守")
        page.click("#propose-form button[type=submit]")
        page.wait_for_selector("#propose-msg:has-text('待支部审核')")
        assert page.locator("#points-review").is_hidden()  # a member reviews nothing
        # the micro-grid's chief, then the centre, approve it on their page
        for role, after in (("micro_chief", "待社区审核"), ("centre", "已通过")):
            context, page, errs = _person(browser, live_server, accounts[role].username)
            contexts.append(context)
            errors += errs
            page.goto(f"{live_server}/points")
            row = page.locator("#review-body tr", has_text="参加防汛值守")
            row.locator(".review-approve").click()
            page.wait_for_selector(f"#review-msg:has-text('{after}')")
        # the ranking of the quarter has the member's points
        page.fill("#points-quarter", CLOSED_Q)
        page.click("#points-form button[type=submit]")
        page.wait_for_selector("html[data-points-ready='1'] #points-msg:has-text('2026Q3')")
        names = page.locator("#points-body tr td:nth-child(2)").all_text_contents()
        totals = page.locator("#points-body tr td:nth-child(3)").all_text_contents()
        with engine.begin() as conn:
            member = conn.scalar(
                text("SELECT name FROM worker WHERE id = :w"),
                {"w": accounts["party_member"].worker_id},
            )
        assert totals[names.index(member)] == "5"
        # a household exchange can never overdraw (balance 3)
        page.fill("#exchange-household", str(home))
        page.fill("#exchange-points", "4")
        page.fill("#exchange-item", "洗衣粉")
        page.click("#exchange-form button[type=submit]")
        page.wait_for_selector("#exchange-msg:has-text('积分余额不足')")
        page.fill("#exchange-points", "3")
        page.click("#exchange-form button[type=submit]")
        page.wait_for_selector("#exchange-msg:has-text('余额 0 分')")
        # the administrator closes the quarter on the star page: stars are frozen
        context, page, errs = _person(browser, live_server, "test-admin")
        contexts.append(context)
        errors += errs
        page.goto(f"{live_server}/stars")
        page.fill("#stars-quarter", CLOSED_Q)
        page.click("#stars-form button[type=submit]")
        page.wait_for_selector("html[data-stars-ready='1']")
        assert "实时预览" in page.text_content("#stars-msg")
        page.on("dialog", lambda d: d.accept())
        page.click("#stars-close")
        page.wait_for_selector("#stars-action-msg:has-text('已关闭')")
        page.wait_for_selector("#stars-msg:has-text('已考核关闭')")
        row = page.locator(f"#stars-body tr[data-grid='{MICRO}']")
        cells = row.locator("td").all_text_contents()
        assert float(cells[4]) > 0  # 党员积分: the approved entry counts
        assert cells[7].count("★") + cells[7].count("☆") == 5
        assert (
            page.locator("#stars-adjust").is_hidden() and page.locator("#stars-close").is_hidden()
        )
        assert page.locator("#stars-export").is_visible()
        assert page.locator("a[href='/stars']").count() >= 1
        with engine.begin() as conn:
            frozen = conn.scalar(
                text(
                    "SELECT s.stars FROM star_rating s JOIN grid g ON g.id = s.grid_id"
                    " WHERE g.code = :c AND s.quarter = :q"
                ),
                {"c": MICRO, "q": CLOSED_Q},
            )
        assert cells[7].count("★") == frozen
        # the stars on the e-map: a layer of the caller's micro-grids, and on the notice board
        page.goto(f"{live_server}/emap")
        page.wait_for_selector("html[data-emap-ready='1']")
        page.check("#gg-stars-toggle")
        page.wait_for_selector("html[data-stars-drawn]", state="attached")
        assert int(page.get_attribute("html", "data-stars-drawn")) >= 1
        assert page.locator(".gg-star-label").count() >= 1
        with engine.begin() as conn:
            micro_id = conn.scalar(
                text("SELECT id FROM grid WHERE code = :c AND valid_to IS NULL"), {"c": MICRO}
            )
        page.evaluate("id => GridGov.showNoticeBoard(id)", micro_id)
        page.wait_for_selector(".gg-board .gg-board-stars")
        assert f"{frozen} 星" in page.text_content(".gg-board .gg-board-stars")
        # anyone opens the village's public page: the ranking, no personal data
        anon = browser.new_context(locale="zh-CN")
        contexts.append(anon)
        public = anon.new_page()
        public.goto(f"{live_server}/points/public/{VILLAGE}?quarter={CLOSED_Q}")
        first = public.locator("#public-households tbody tr").first.locator("td")
        assert first.all_text_contents()[0] == "1" and first.all_text_contents()[-1] == "3"
        assert first.all_text_contents()[1] == head[0]
        content = public.content()
        assert head not in content or len(head) == 1
        assert public.locator("#public-groups tbody tr").count() >= 1
        assert errors == []
    finally:
        for c in contexts:
            c.close()
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM star_quarter WHERE quarter = :q"), {"q": CLOSED_Q})
            for t, mark in marks.items():
                conn.execute(text(f"DELETE FROM {t} WHERE id > :m"), {"m": mark})
        engine.dispose()
