"""The page shell: one header and menu on every page, built from the access rules; Chinese
error pages; panels that never push a button off the window; a phone layout.

Every role signs in (a browser session of the ``accounts`` fixture), walks its menu to every
module, and finds on those pages no link it may not open and no message in Latin letters only,
no time in ISO form.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from app.models.auth import USER_ROLE_NAMES, AppUser
from app.services import users as user_svc
from app.web.menu import MODULES, may_open, menu_for
from tests.accounts import bearer
from tests.web.waits import until

ROLES = ["admin", "centre", "grid_chief", "micro_chief", "worker", "party_member", "department"]
ISO_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}|\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[+-]\d{2}:?\d{2}|Z)"
)
# Two or more words of Latin letters in a row: an English message (codes such as SJ…, grid
# codes, CRS names and units are single tokens with digits or capitals and pass).
LATIN_PHRASE = re.compile(r"\b[A-Za-z]{2,}[a-z]*(?:[ ,'’-]+[A-Za-z]{2,}){2,}\b")
ALLOWED_LATIN = re.compile(
    r"^(?:OpenStreetMap|Leaflet|MapLibre|GeoJSON|Excel|CSV|WGS84|GPS|CGCS2000|GCJ-02|BD-09|EPSG|[A-Z0-9:.\-]+)$"
)


@pytest.fixture(scope="module")
def cookies(database_url: str, accounts) -> Iterator[dict[str, str]]:  # type: ignore[no-untyped-def]
    """A browser session (cookie) for every role's account; ended afterwards."""
    engine = create_engine(database_url)
    out: dict[str, str] = {}
    ids: list[int] = []
    limits = dict(user_svc.DEFAULT_LIMITS, SESSION_IDLE_MINUTES=600)
    with Session(engine) as s, s.begin():
        for role in ROLES:
            user = s.get(AppUser, accounts[role].user_id)
            new = user_svc.start_session(s, user, None, limits)
            out[role] = new.token
            s.flush()
            ids.append(new.session.id)
    yield out
    with engine.begin() as conn:  # only the sessions made here (other tests keep theirs)
        conn.execute(text("DELETE FROM user_session WHERE id = ANY(:ids)"), {"ids": ids})
    engine.dispose()


def _context(browser, live_server: str, cookie: str, width: int = 1400, height: int = 900):  # type: ignore[no-untyped-def]
    ctx = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN")
    ctx.add_cookies(
        [
            {
                "name": "gridgov_session",
                "value": cookie,
                "url": live_server,
                "httpOnly": True,
                "secure": True,
                "sameSite": "Lax",
            }
        ]
    )
    return ctx


# ---------------------------------------------------------------- the menu and the rules


@pytest.mark.parametrize("role", ROLES)
def test_every_menu_link_opens_for_its_role(role: str, app, accounts) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    menu = menu_for(role, app)
    assert menu, f"{role} has no menu"
    for module in menu:
        res = client.get(module.path, headers=bearer(accounts[role]))
        assert res.status_code == 200, (role, module.path, res.status_code)
    # A module the rules refuse is never in the menu, and answers the role 403.
    for module in MODULES:
        if module in menu:
            continue
        res = client.get(module.path, headers=bearer(accounts[role]))
        if res.status_code == 200:
            assert module.roles is not None and role not in module.roles, (role, module.path)
        else:
            assert res.status_code in (403, 404), (role, module.path, res.status_code)


def test_menus_by_role(app) -> None:  # type: ignore[no-untyped-def]
    labels = {role: [m.label for m in menu_for(role, app)] for role in ROLES}
    assert {"账号管理", "审计日志", "电子地图", "受理台", "考核指标"} <= set(labels["admin"])
    assert "账号管理" not in labels["centre"] and "受理台" in labels["centre"]
    assert labels["worker"][:2] == ["电子地图", "我的事件"] and "受理台" not in labels["worker"]
    assert "考核指标" not in labels["department"] and "受理台" in labels["department"]
    assert [m.path for m in menu_for("anonymous", app)] == [
        "/report",
        "/cases/track",
    ]  # a resident reports and follows
    # A module whose page the app does not serve is in no menu.
    from app.web.menu import Module

    assert not may_open(app, Module("/no-such-module", "无"), "admin")


# ---------------------------------------------------------------- error pages


def test_pages_answer_chinese_error_pages_and_the_api_keeps_json(app, accounts) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    worker = bearer(accounts["worker"])
    res = client.get("/admin/users", headers=worker)
    assert res.status_code == 403 and res.mimetype == "text/html"
    page = res.get_data(as_text=True)
    assert "无权访问" in page and 'id="gg-error-back"' in page and "网格化服务管理平台" in page
    assert "网格员" in page  # the shell says who is signed in
    res = client.get("/no/such/page", headers=worker)
    assert res.status_code == 404 and res.mimetype == "text/html"
    page = res.get_data(as_text=True)
    assert "页面不存在" in page and 'href="/emap"' in page and "网格员" in page
    res = client.post("/emap", headers=worker)
    assert res.status_code == 405 and res.mimetype == "text/html" and "GET" in res.headers["Allow"]
    # The API answers machines: JSON, as before.
    res = client.get("/api/no-such-thing", headers=worker)
    assert res.status_code == 404 and res.get_json()["error"]["code"] == "not_found"
    res = client.get("/api/audit", headers=worker)
    assert res.status_code == 403 and res.get_json()["error"]["code"] == "forbidden"
    assert "网格员" in res.get_json()["error"]["message"]
    res = client.get("/api/cases/SJ000000000000", headers=bearer(accounts["admin"]))
    assert res.status_code == 404 and res.get_json()["error"]["message"].startswith(
        "事件 SJ000000000000"
    )
    # Nobody signed in is still sent to the sign-in page.
    res = client.get("/cases/desk")
    assert res.status_code == 302 and res.headers["Location"].startswith("/login")


# ---------------------------------------------------------------- walking the menu


# Lower-case Latin words that are not messages: units and names of formats.
ALLOWED_WORDS = frozenset({"km", "m", "mvt", "csv", "xlsx", "pmtiles"})


def _visible_problems(text_: str) -> list[str]:
    found = [m.group(0) for m in ISO_TIME.finditer(text_)]
    found.extend(
        w
        for w in re.findall(r"(?<![A-Za-z0-9_@.-])[a-z]{3,}(?![A-Za-z0-9_@.-])", text_)
        if w not in ALLOWED_WORDS
    )
    for m in LATIN_PHRASE.finditer(text_):
        words = re.split(r"[ ,'’-]+", m.group(0))
        if not all(ALLOWED_LATIN.match(w) for w in words):
            found.append(m.group(0))
    return found


def _settled(page) -> None:  # type: ignore[no-untyped-def]
    try:
        page.wait_for_load_state("networkidle", timeout=8000)
    except Exception:  # noqa: BLE001 - a map may keep fetching tiles: what is there is enough
        pass
    if page.locator("#gg-map").count():
        page.wait_for_selector("html[data-emap-ready='1']", timeout=20000)


@pytest.mark.browser
@pytest.mark.parametrize("role", ROLES)
def test_each_role_walks_its_menu(role: str, browser, live_server, cookies, app, accounts) -> None:  # type: ignore[no-untyped-def]
    ctx = _context(browser, live_server, cookies[role])
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"{page.url}: {e}"))
    page.on(
        "response",
        lambda r: (
            errors.append(f"{r.status} {r.url}")
            if r.status >= 400
            and urlsplit(r.url).path.startswith(("/api/", "/cases", "/admin", "/emap"))
            else None
        ),
    )
    client = app.test_client()
    try:
        page.goto(f"{live_server}/")
        _settled(page)
        labels = page.locator("#gg-nav a").all_inner_texts()
        hrefs = page.eval_on_selector_all(
            "#gg-nav a", "els => els.map(a => a.getAttribute('href'))"
        )
        assert [m.path for m in menu_for(role, app)] == hrefs
        assert USER_ROLE_NAMES[role] in page.inner_text("#gg-user")
        problems: list[str] = []
        for href, label in zip(hrefs, labels, strict=True):
            page.click(f"#gg-nav a[href='{href}']") if page.is_visible("#gg-nav") else page.goto(
                live_server + href
            )
            page.wait_for_url(f"{live_server}{href}*")
            _settled(page)
            assert "网格化服务管理平台" in page.inner_text("#gg-header")
            assert page.inner_text("#gg-nav a.gg-nav-on").strip().endswith(label.strip()[-2:])
            # Every link on the page is one the role may open.
            for link in page.eval_on_selector_all(
                "a[href]", "els => els.map(a => a.getAttribute('href'))"
            ):
                path = urlsplit(link).path
                if not path.startswith("/") or path.startswith(("/api/", "/static/", "/vendor/")):
                    continue
                status = client.get(link, headers=bearer(accounts[role])).status_code
                problems.extend(
                    [] if status in (200, 302) else [f"{href}: link {link} answers {status}"]
                )
            problems.extend(f"{href}: {p}" for p in _visible_problems(page.inner_text("body")))
        assert not problems, problems
        assert not errors, errors
    finally:
        ctx.close()


# ---------------------------------------------------------------- layout


IN_VIEW = """(sel) => {
  const el = document.querySelector(sel);
  if (!el) return 'missing';
  el.scrollIntoView({block: 'nearest'});
  const r = el.getBoundingClientRect();
  const map = document.getElementById('gg-map').getBoundingClientRect();
  if (Math.abs(map.top - document.getElementById('gg-header').getBoundingClientRect().bottom) > 1) return 'page moved';
  return r.top >= 0 && r.bottom <= window.innerHeight && r.height > 0 ? 'ok' : `at ${r.top}-${r.bottom}`;
}"""


@pytest.mark.browser
def test_panels_keep_their_buttons_on_a_900_px_window(browser, live_server, cookies) -> None:  # type: ignore[no-untyped-def]
    ctx = _context(browser, live_server, cookies["admin"], 1400, 900)
    page = ctx.new_page()
    try:
        page.goto(f"{live_server}/emap")
        page.wait_for_selector("html[data-emap-ready='1']", timeout=20000)
        page.click("#gg-cov-toggle")
        page.wait_for_selector("html[data-coverage='ready']", timeout=30000)
        page.click("#gg-part-toggle")
        page.wait_for_selector("html[data-partition='ready']", timeout=10000)
        # Every tool's button can be reached: in view, or by scrolling the tools' own column.
        for sel in (
            "#gg-edit-toggle",
            "#gg-locate-go",
            "#gg-ov-toggle",
            "#gg-part-propose",
            "#gg-cov-recommend",
        ):
            assert page.evaluate(IN_VIEW, sel) == "ok", sel
        # The wheel over the tools scrolls them and leaves the map's zoom alone.
        zoom = page.evaluate("() => GridGov.map.getZoom()")
        box = page.locator("#gg-part-body").bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 10)
        # Count the wheel events the page gets (first, on the document) and those that reach the
        # map's own container (where Leaflet zooms on them, in the same dispatch).
        page.evaluate(
            """() => { window.__wheels = 0; window.__mapWheels = 0;
                       document.addEventListener('wheel', () => { window.__wheels += 1; }, true);
                       GridGov.map.getContainer().addEventListener('wheel', () => { window.__mapWheels += 1; }); }"""
        )
        page.mouse.wheel(0, 400)
        until(page, "() => window.__wheels > 0", timeout=5)  # the page has handled the wheel
        assert page.evaluate("() => window.__mapWheels") == 0
        assert page.evaluate("() => GridGov.map.getZoom()") == zoom
        # The division's 提交划分 button, once there is a proposal, stays reachable.
        page.evaluate(
            "() => { const b = document.getElementById('gg-part-commit'); b.hidden = false; b.closest('[hidden]') && (b.closest('[hidden]').hidden = false); }"
        )
        assert page.evaluate(IN_VIEW, "#gg-part-commit") == "ok"
        assert page.evaluate("() => document.scrollingElement.scrollTop") == 0
    finally:
        ctx.close()


@pytest.mark.browser
@pytest.mark.parametrize("role", ["worker", "admin"])
def test_the_map_keeps_the_phone_screen(role: str, browser, live_server, cookies) -> None:  # type: ignore[no-untyped-def]
    ctx = _context(browser, live_server, cookies[role], 390, 844)
    page = ctx.new_page()
    try:
        page.goto(f"{live_server}/emap")
        page.wait_for_selector("html[data-emap-ready='1']", timeout=20000)
        covered = page.evaluate(
            """() => {
              const m = document.getElementById('gg-map').getBoundingClientRect();
              let area = 0;
              document.querySelectorAll('.leaflet-control').forEach(c => {
                const r = c.getBoundingClientRect();
                const w = Math.max(0, Math.min(r.right, m.right) - Math.max(r.left, m.left));
                const h = Math.max(0, Math.min(r.bottom, m.bottom) - Math.max(r.top, m.top));
                area += w * h;
              });
              return {share: area / (m.width * m.height), height: m.height / window.innerHeight};
            }"""
        )
        assert covered["height"] > 0.9 and covered["share"] < 0.2, covered
        # The menu is a drawer: hidden until the menu button opens it.
        assert (
            not page.locator("#gg-nav a").first.is_visible()
            or page.locator("#gg-nav").bounding_box()["x"] < 0
        )
        page.click("#gg-menu-button")
        # The drawer has slid in: in view, and no transition left running on it.
        until(
            page,
            """() => { const n = document.getElementById('gg-nav');
                       return n.getBoundingClientRect().left >= 0 && n.getAnimations().length === 0; }""",
            timeout=5,
        )
        assert page.locator("#gg-nav a[href='/emap']").is_visible()
        assert page.locator("#gg-nav").bounding_box()["x"] >= 0
        # The locate box opens from its title.
        page.click("#gg-scrim")
        page.click(".gg-locate-title")
        assert page.locator("#gg-locate-input").is_visible()
    finally:
        ctx.close()


# ---------------------------------------------------------------- pickers by name


def _picker_workers(html: str) -> list[dict]:
    import json

    block = re.search(
        r'<script type="application/json" id="desk-workers">(.*?)</script>', html, re.S
    )
    assert block, "the desk carries no workers to pick from"
    return json.loads(block.group(1))


def test_the_desk_and_worker_page_pick_workers_by_name_within_the_callers_grids(
    app, accounts, db_session
) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    centre = _picker_workers(
        client.get("/cases/desk", headers=bearer(accounts["centre"])).get_data(as_text=True)
    )
    chief = _picker_workers(
        client.get("/cases/desk", headers=bearer(accounts["grid_chief"])).get_data(as_text=True)
    )
    codes = {w["code"] for w in centre}
    assert {"W00003", "W00005", "W00009"} <= codes and all(w["name"] for w in centre)
    assert {w["code"] for w in chief} < codes  # a grid chief picks among his grid's workers only
    assert "W00005" in {w["code"] for w in chief}
    w5 = next(w for w in centre if w["code"] == "W00005")
    name = db_session.execute(text("SELECT name FROM worker WHERE code = 'W00005'")).scalar()
    assert w5["name"] == name
    # The centre chooses a worker by name on the worker page; a worker sees his own name.
    page = client.get("/cases/worker", headers=bearer(accounts["centre"])).get_data(as_text=True)
    assert 'id="worker-pick"' in page and f">{name}（W00005" in page
    page = client.get("/cases/worker", headers=bearer(accounts["worker"])).get_data(as_text=True)
    assert 'id="worker-pick"' not in page and f"网格员：{name}（W00005）" in page


def test_pages_for_nobody_signed_in_read_as_chinese(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    for path in ("/login", "/cases/track", "/no/such/page"):
        res = client.get(path)
        html = res.get_data(as_text=True)
        assert "网格化服务管理平台" in html
        # Nobody signed in: a resident's menu only (report a case, follow it), no staff module.
        links = re.findall(r'<nav id="gg-nav".*?</nav>', html, flags=re.S)
        assert all(
            set(re.findall(r'href="([^"]+)"', nav)) <= {"/report", "/cases/track"} for nav in links
        )
        visible = re.sub(r"<script.*?</script>|<[^>]+>", " ", html, flags=re.S)
        assert not _visible_problems(visible), (path, _visible_problems(visible))
