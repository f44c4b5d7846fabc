"""Sign in and out in a real Chromium, and every page obeys its Content Security Policy.

These pages are opened without Playwright's CSP bypass (the ``page`` fixture has it for
``wait_for_function``): a script the CSP blocks, inline code without the nonce or an ``eval``,
shows up as a ``securitypolicyviolation`` event and fails the test.
"""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Error as PlaywrightError
from sqlalchemy import create_engine, text

from app.services import users as user_svc
from tests.cleanup import delete_cases
from tests.web.waits import Quiet, until

PASSWORD = "Browser-pass-2026"
WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', e => window.__cspViolations.push(
    e.violatedDirective + ' ' + (e.blockedURI || '') + ' ' + (e.sourceFile || '') + ':' + e.lineNumber));
"""


@pytest.fixture(scope="module")
def centre_account(database_url: str):  # type: ignore[no-untyped-def]
    """A committed centre account for signing in through the form; removed afterwards."""
    engine = create_engine(database_url)
    from sqlalchemy.orm import Session

    with Session(engine) as s, s.begin():
        user_svc.create_user(
            s, "browser-centre", "centre", PASSWORD, display_name="值班长", grid_code="340188001"
        )
    yield "browser-centre"
    with engine.begin() as conn:
        uid = conn.execute(
            text("SELECT id FROM app_user WHERE username = 'browser-centre'")
        ).scalar()
        conn.execute(text("DELETE FROM user_session WHERE user_id = :u"), {"u": uid})
        conn.execute(text("DELETE FROM login_attempt WHERE username = 'browser-centre'"))
        conn.execute(text("DELETE FROM app_user WHERE id = :u"), {"u": uid})
    engine.dispose()


def _context(browser):  # type: ignore[no-untyped-def]
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    ctx.add_init_script(WATCH_CSP)
    return ctx


def _settle(page, predicate: str, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    """Wait for a condition of the page (polled: wait_for_function needs eval)."""
    until(page, predicate, timeout=timeout)


@pytest.mark.browser
def test_sign_in_use_the_emap_sign_out_and_the_old_cookie_is_dead(
    browser, live_server, centre_account
) -> None:  # type: ignore[no-untyped-def]
    ctx = _context(browser)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{live_server}/emap")
        assert "/login" in page.url  # signed out: sent to the sign-in page
        page.fill("#username", centre_account)
        page.fill("#password", "Wrong-password-9")
        page.click("#login-submit")
        assert "用户名或密码错误" in page.inner_text("#login-error")
        page.fill("#username", centre_account)
        page.fill("#password", PASSWORD)
        page.click("#login-submit")
        page.wait_for_url(f"{live_server}/emap")
        _settle(page, "() => document.documentElement.dataset.emapReady === '1'")
        assert "值班长（指挥中心）" in page.inner_text("#gg-user")
        cookie = next(c for c in ctx.cookies() if c["name"] == "gridgov_session")
        assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax"
        assert page.evaluate("() => document.cookie").find("gridgov_session") == -1
        # A change from the page carries the CSRF token (the fetch wrapper adds it).
        # (A batch locate: a POST the centre may make that changes nothing.)
        points = (
            '{"type": "FeatureCollection", "features": [{"type": "Feature", "id": 1, "properties": {},'
            ' "geometry": {"type": "Point", "coordinates": [117.2287, 31.8149]}}]}'
        )
        status = page.evaluate(
            """(body) => fetch('/api/locate/batch', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                                     body}).then(r => r.status)""",
            points,
        )
        assert status == 200
        by_xhr = page.evaluate(
            """(body) => new Promise(res => {
                  const x = new XMLHttpRequest(); x.open('POST', '/api/locate/batch');
                  x.setRequestHeader('Content-Type', 'application/json');
                  x.onload = () => res(x.status); x.send(body); })""",
            points,
        )
        assert by_xhr == 200  # XHR gets the token too
        page.click("#gg-logout")
        page.wait_for_url(f"{live_server}/login")
        assert page.evaluate("() => window.__cspViolations") == []
        assert errors == []
    finally:
        ctx.close()
    # The cookie of the ended session, replayed in a fresh browser, is refused.
    again = browser.new_context()
    try:
        again.add_cookies([{**cookie, "expires": -1}])
        p2 = again.new_page()
        res = p2.goto(f"{live_server}/api/grids?level=1")
        assert res.status == 401
        p2.goto(f"{live_server}/emap")
        assert "/login" in p2.url
    finally:
        again.close()


@pytest.mark.browser
@pytest.mark.parametrize(
    "path, ready",
    [
        ("/emap", "() => document.documentElement.dataset.emapReady === '1'"),
        (
            "/cases/desk",
            "() => document.querySelectorAll('#case-list tr, #case-list li, .gg-case').length > 0 || document.readyState === 'complete'",
        ),
        ("/cases/worker?worker=5", "() => document.readyState === 'complete'"),
        ("/cases/kpi", "() => document.querySelector('canvas') !== null"),
        ("/cases/track", "() => document.readyState === 'complete'"),
        ("/admin/users", "() => document.querySelector('#users') !== null"),
        ("/admin/audit", "() => document.querySelector('#audit') !== null"),
        ("/login", "() => document.querySelector('#login-form') !== null"),
        ("/overview", "() => document.documentElement.dataset.overviewReady === '1'"),
        ("/ledgers/households", "() => document.documentElement.dataset.ledgerReady === '1'"),
        ("/ledgers/workers", "() => document.documentElement.dataset.ledgerReady === '1'"),
        ("/report", "() => document.documentElement.dataset.reportReady === '1'"),
    ],
)
def test_pages_run_under_their_content_security_policy(
    browser, live_server, admin_auth, path, ready
) -> None:  # type: ignore[no-untyped-def]
    ctx = _context(browser)
    ctx.add_cookies(
        [
            {
                "name": "gridgov_session",
                "value": admin_auth["cookie"],
                "url": live_server,
                "httpOnly": True,
                "secure": True,
            }
        ]
    )
    page = ctx.new_page()
    quiet = Quiet(page)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        res = page.goto(f"{live_server}{path}")
        assert res.status == 200
        assert "script-src 'self' 'nonce-" in res.headers["content-security-policy"]
        _settle(page, ready)
        quiet.wait()  # late scripts (charts, layers) and what they fetch have run too
        assert page.evaluate("() => window.__cspViolations") == []
        assert errors == []
    finally:
        ctx.close()


@pytest.mark.browser
def test_an_administrator_creates_and_disables_an_account(
    browser, live_server, admin_auth, database_url
) -> None:  # type: ignore[no-untyped-def]
    ctx = _context(browser)
    ctx.add_cookies(
        [
            {
                "name": "gridgov_session",
                "value": admin_auth["cookie"],
                "url": live_server,
                "httpOnly": True,
                "secure": True,
            }
        ]
    )
    page = ctx.new_page()
    engine = create_engine(database_url)
    try:
        page.goto(f"{live_server}/admin/users")
        page.fill("#user-form input[name=username]", "new-worker")
        page.fill("#user-form input[name=display_name]", "周网格员")
        page.select_option("#user-form select[name=role]", "worker")
        page.fill("#user-form input[name=password]", "short")
        page.fill("#user-form input[name=worker_code]", "W00006")
        page.click("#user-create")
        page.wait_for_selector("#users-msg.gg-error")
        assert "至少 10 位" in page.inner_text("#users-msg")  # the server's reason, shown
        page.fill("#user-form input[name=password]", "Zhou-2026-grid")
        page.click("#user-create")
        page.wait_for_selector("tr[data-username='new-worker']")
        row = "tr[data-username='new-worker']"
        assert "网格员" in page.inner_text(row) and "正常" in page.inner_text(row)
        page.click(f"{row} button[data-act=disable]")
        _settle(
            page, f"() => (document.querySelector(\"{row} .state\") || {{}}).textContent === '停用'"
        )
        with engine.connect() as conn:
            active = conn.execute(
                text("SELECT active FROM app_user WHERE username = 'new-worker'")
            ).scalar()
        assert active is False
        assert page.evaluate("() => window.__cspViolations") == []
    finally:
        ctx.close()
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM app_user WHERE username = 'new-worker'"))
        engine.dispose()


@pytest.mark.browser
def test_a_page_whose_session_ran_out_goes_to_the_sign_in_page(
    browser, live_server, centre_account, database_url
) -> None:  # type: ignore[no-untyped-def]
    ctx = _context(browser)
    page = ctx.new_page()
    try:
        page.goto(f"{live_server}/login?next=/cases/desk")
        page.fill("#username", centre_account)
        page.fill("#password", PASSWORD)
        page.click("#login-submit")
        page.wait_for_url(f"{live_server}/cases/desk")
        engine = create_engine(database_url)
        with engine.begin() as conn:  # the idle timeout, as the server sees it
            conn.execute(
                text(
                    "UPDATE user_session SET last_seen_at = now() - interval '1 day' "
                    "WHERE user_id = (SELECT id FROM app_user WHERE username = :u)"
                ),
                {"u": centre_account},
            )
        engine.dispose()
        # Each navigation to the sign-in page: one, however many requests meet the ended session
        # (each starting it again cut off the one before).
        logins: list[str] = []
        page.on(
            "request",
            lambda r: (
                logins.append(r.url)
                if r.resource_type == "document" and "/login?" in r.url
                else None
            ),
        )
        try:
            page.evaluate(
                "() => { fetch('/api/cases?limit=1'); fetch('/api/cases?limit=2');"
                " fetch('/api/cases?limit=3'); }"
            )
        except PlaywrightError as exc:
            # The desk's own next request can meet the ended session first and take the page
            # to the sign-in page before this one runs: the same path, taken sooner.
            if "context was destroyed" not in str(exc):
                raise
        target = f"{live_server}/login?next=%2Fcases%2Fdesk"
        end = time.monotonic() + 20
        while page.url != target:  # not wait_for_url, which fails on a navigation cut off
            assert time.monotonic() < end, f"still on {page.url}"
            page.wait_for_timeout(50)  # the interval between two looks
        page.wait_for_selector("#login-form", state="attached")
        assert logins == [target]
    finally:
        ctx.close()


@pytest.mark.browser
def test_the_desk_shows_a_full_number_only_when_asked_and_logs_it(page, live_server, app) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy.orm import Session

    from app.services import cases as svc

    engine = app.extensions["gridgov_db"].engine
    with Session(engine) as s:
        case = svc.create_case(
            s,
            svc.Report(
                x=117.2287344,
                y=31.8149002,
                category="garbage",
                description="号码查看测试",
                reporter_contact="13611112222",
                reporter_name="吴九",
            ),
        )["case"]
        s.commit()
    try:
        page.goto(f"{live_server}/cases/desk")
        page.wait_for_selector("html[data-desk-ready='1']", timeout=20000)
        row = f"#case-table tr:has-text('{case['code']}')"
        assert "13611112222" not in page.inner_text(row) and "136****2222" in page.inner_text(row)
        page.click(row)
        page.wait_for_selector("#reveal-reporter")
        assert "136****2222" in page.inner_text("#reporter")
        page.click("#reveal-reporter")
        page.wait_for_selector("#reporter:has-text('13611112222')")
        assert "吴九" in page.inner_text("#reporter")
        with engine.connect() as conn:
            logged = conn.execute(
                text(
                    "SELECT count(*) FROM audit_log WHERE kind = 'read_personal' AND object_type = 'case' AND object_id = :i"
                ),
                {"i": str(case["id"])},
            ).scalar()
        assert logged == 1
    finally:
        with Session(engine) as s:
            delete_cases(s, [case["id"]])
            s.commit()
