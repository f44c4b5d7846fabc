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
