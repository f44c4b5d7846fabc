"""Stored XSS: a corpus of payloads in every free-text field, every page opened as every role.

The payloads go in through the JSON API (grid names, override areas, cases, notes, accounts) and
through the importer's upload (households, workers, departments, service points, cameras), into
a database of this test's own (the sample, then the payloads; dropped afterwards). Every page is
then opened in Chromium as each role, under the real CSP (not bypassed), with a dialog listener
and a CSP-violation listener: no dialog may open, no violation may happen, no element of the
payloads may exist in the DOM, and the payloads are shown as literal text where they are shown.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from app import create_app
from app.db import get_db
from app.services import users as user_svc
from tests.conftest import LIVE_SETTINGS, TEST_PASSWORD, copy_database, own_database
from tests.own_server import own_server
from tests.web.waits import Quiet, until

pytestmark = pytest.mark.browser

# Every payload carries the class or the call that would prove it ran: an element of class
# ``ggxss`` in the DOM, or a dialog.
PAYLOADS = [
    "${alert('tpl')}",
    "`+alert('bt')+`",
    "</script><script>alert('sc')</script>",
    "<img src=x class=ggxss onerror=alert('img')>",
    "{{constructor.constructor('alert(1)')()}}",
    "javascript:alert('js')",
    "\"'><b class=ggxss>q</b>‘’“”＂",
    "\u202eevil\u202c bidi \u200f<svg class=ggxss onload=alert(2)>",
]
OWN_STREET = "340188001"
OWN_MICRO = "3401880010010101"
OWN_GRID = "34018800100101"  # level 3, parent of OWN_MICRO
OWN_COMMUNITY = "340188001001"  # level 2
ROLE_LINKS = {
    "centre": {"grid_code": OWN_STREET},
    "grid_chief": {"worker_code": "W00003"},
    "micro_chief": {"worker_code": "W00009"},
    "worker": {"worker_code": "W00005"},
    "party_member": {"worker_code": "W00010"},
    "department": {"department_code": "CG-AH"},
}
WATCH = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', e => window.__violations.push(
    e.violatedDirective + ' ' + (e.blockedURI || '') + ' ' + (e.sourceFile || '') + ':' + e.lineNumber));
"""


class Corpus:
    """The server on the corpus database, the accounts, and what was stored where."""

    def __init__(self, base: str, app: Any) -> None:
        self.base = base
        self.app = app
        self.tokens: dict[str, str] = {}
        self.cookies: dict[str, str] = {}
        self.grid_ids: dict[str, int] = {}
        self.party_member_id: int | None = None
        self.case_codes: list[str] = []
        self.case_ids: list[int] = []
        self.stored: dict[str, list[str]] = {}
        self.inside: tuple[float, float] = (0.0, 0.0)
        self.grid_points: list[tuple[float, float]] = []  # a point inside each renamed grid
        self.spots: list[tuple[float, float]] = []  # where the service points and cameras are

    def api(self, role: str, method: str, path: str, **kw: Any) -> Any:
        client = self.app.test_client()
        res = client.open(
            path, method=method, headers={"Authorization": f"Bearer {self.tokens[role]}"}, **kw
        )
        assert res.status_code < 300, (method, path, res.status_code, res.get_data(as_text=True))
        return res.get_json()


def _csv(rows: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def _points(center: tuple[float, float], n: int) -> list[tuple[float, float]]:
    lon, lat = center
    return [(lon + 0.00004 * (i % 4), lat + 0.00004 * (i // 4)) for i in range(n)]


def _store(c: Corpus) -> None:
    """Put every payload in every free-text field, through the API and the importer."""
    with c.app.app_context():
        session = get_db().session()
        gid = {
            code: session.scalar(
                text("SELECT id FROM grid WHERE code = :c AND valid_to IS NULL"), {"c": code}
            )
            for code in (OWN_MICRO, OWN_GRID, OWN_COMMUNITY)
        }
        micro_ids = list(
            session.scalars(
                text("SELECT id FROM grid WHERE parent_id = :p AND valid_to IS NULL ORDER BY code"),
                {"p": gid[OWN_GRID]},
            )
        )
        inside = session.execute(
            text(
                "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM grid WHERE id = :g) s"
            ),
            {"g": gid[OWN_MICRO]},
        ).one()
        grid_points = session.execute(
            text(
                "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM grid"
                " WHERE id = ANY(:ids)) s"
            ),
            {"ids": micro_ids},
        ).all()
        session.close()
    c.grid_ids = gid
    c.inside = (inside[0], inside[1])
    c.grid_points = [(x, y) for x, y in grid_points]
    # Grids: the community and the grid (labelled on the map) and the micro-grids (tooltips).
    renamed = [gid[OWN_COMMUNITY], gid[OWN_GRID], *micro_ids]
    names = []
    for i, grid_id in enumerate(renamed):
        name = PAYLOADS[i % len(PAYLOADS)]
        feat = c.api("admin", "GET", f"/api/grids/{grid_id}")
        c.api(
            "admin",
            "PATCH",
            f"/api/grids/{grid_id}",
            json={
                "type": "Feature",
                "geometry": None,
                "properties": {"name": name, "version": feat["properties"]["version"]},
            },
        )
        names.append(name)
    c.stored["grid names"] = names
    # Through the importer: departments, workers (assigned to the micro-grid), households,
    # service points, cameras.
    depts = [
        {"code": f"XD{i}", "name": p[:60], "phone": "0551-1", "duties": p}
        for i, p in enumerate(PAYLOADS)
    ]
    c.api(
        "admin",
        "POST",
        "/api/import/departments",
        data={"file": (io.BytesIO(_csv(depts)), "d.csv")},
    )
    workers = [
        {"code": f"XW{i}", "name": p[:60], "phone": f"1390000000{i}", "on_duty": "true"}
        for i, p in enumerate(PAYLOADS)
    ]
    c.api(
        "admin", "POST", "/api/import/workers", data={"file": (io.BytesIO(_csv(workers)), "w.csv")}
    )
    assign = [
        {"worker_code": f"XW{i}", "grid_code": OWN_MICRO, "role": "worker_part"}
        for i in range(len(PAYLOADS))
    ]
    c.api(
        "admin",
        "POST",
        "/api/import/assignments",
        data={"file": (io.BytesIO(_csv(assign)), "a.csv")},
    )
    c.stored["worker names"] = [p[:60] for p in PAYLOADS]
    c.stored["household addresses"] = list(PAYLOADS)
    spots = _points((inside[0], inside[1]), len(PAYLOADS))
    c.spots = spots
    households = [
        {
            "lon": x,
            "lat": y,
            "building": p[:80],
            "unit": "1",
            "room": "1",
            "address": p,
            "people": 1,
            "grid_code": OWN_MICRO,
            "head_name": p[:60],
            "head_phone": "13900000000",
            "tags": "",
            "linked_member_code": "W00010",
        }
        for (x, y), p in zip(spots, PAYLOADS, strict=True)
    ]
    c.api(
        "admin",
        "POST",
        "/api/import/households",
        data={"file": (io.BytesIO(_csv(households)), "h.csv")},
    )
    points = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [x, y]},
                "properties": {"name": p, "kind": "point", "radius_m": 300},
            }
            for (x, y), p in zip(spots, PAYLOADS, strict=True)
        ],
    }
    c.api(
        "admin",
        "POST",
        "/api/import/service_points",
        data={"file": (io.BytesIO(json.dumps(points).encode()), "sp.geojson")},
    )
    c.stored["service point names"] = list(PAYLOADS)
    cams = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [x, y]},
                "properties": {
                    "code": f"XC{i}-{p[:20]}",
                    "name": p,
                    "kind": "fixed",
                    "analytics": "true",
                },
            }
            for i, ((x, y), p) in enumerate(zip(spots, PAYLOADS, strict=True))
        ],
    }
    c.api(
        "admin",
        "POST",
        "/api/import/cameras",
        data={"file": (io.BytesIO(json.dumps(cams).encode()), "cam.geojson")},
    )
    c.stored["camera names"] = list(PAYLOADS)
    # Through the API: override areas, cases and their notes, accounts.
    x, y = inside
    for i, p in enumerate(PAYLOADS):
        d = 0.00002 * (i + 1)
        ring = [[x - d, y - d], [x + d, y - d], [x + d, y + d], [x - d, y + d], [x - d, y - d]]
        c.api(
            "admin",
            "POST",
            "/api/override-areas",
            json={
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {"name": p, "category": "垃圾暴露堆放", "department_code": f"XD{i}"},
            },
        )
    for i, p in enumerate(PAYLOADS):
        # The reporter's name is another payload: public answers mask a name their text quotes.
        case = c.api(
            "admin",
            "POST",
            "/api/cases",
            json={
                "x": x,
                "y": y,
                "category": "road_occupation",
                "description": p,
                "address": p[:200],
                "reporter_name": PAYLOADS[(i + 1) % len(PAYLOADS)][:60],
                "reporter_contact": "13900000001",
                "source": "patrol",
            },
        )
        cid = case.get("id") or case.get("case", {}).get("id")
        c.case_ids.append(cid)
        detail = c.api("admin", "GET", f"/api/cases/{cid}")
        c.case_codes.append(detail["public_code"])
        c.api(
            "admin",
            "POST",
            f"/api/cases/{cid}/actions/accept",
            json={
                "note": p,
                "version": detail["version"],
                "actor": {"role": "worker", "worker_id": detail["assignee"]["id"]},
            },
        )
    c.stored["case descriptions"] = list(PAYLOADS)
    # Visits by the worker to the payload-addressed households, with payload notes and problems.
    due = c.api("worker", "GET", "/api/visits/due?limit=2000")["items"]
    targets = {
        i["household"]["address"]: i["household"]
        for i in due
        if i["household"]["address"] in PAYLOADS
    }
    for p in PAYLOADS:
        h = targets[p]
        c.api(
            "worker",
            "POST",
            "/api/visits",
            json={
                "household_id": h["id"],
                "lon": h["lon"],
                "lat": h["lat"],
                "note": p,
                "problems": p,
            },
        )
    c.stored["visit problems"] = list(PAYLOADS)
    # Points proposals with payload notes (the chief's review list) and star adjustments with
    # payload reasons (the star page shows the latest).
    for p in PAYLOADS:
        c.api(
            "party_member",
            "POST",
            "/api/points/entries",
            json={"member_id": c.party_member_id, "rule_code": "DY-JL-02", "note": p},
        )
    c.stored["point notes"] = list(PAYLOADS)
    for p in PAYLOADS:
        c.api(
            "grid_chief",
            "POST",
            f"/api/stars/grids/{c.grid_ids[OWN_MICRO]}/adjust",
            json={"delta": 1, "reason": p[:500]},
        )
    c.stored["star reason"] = [PAYLOADS[-1][:500]]
    for i, p in enumerate(PAYLOADS):
        c.api(
            "admin",
            "POST",
            "/api/users",
            json={
                "username": f"xss-{i}",
                "role": "worker",
                "password": TEST_PASSWORD,
                "display_name": p[:60],
                "worker_code": f"XW{i}",
            },
        )
    c.stored["account names"] = [p[:60] for p in PAYLOADS]
    # A departmental network (多网合一) of the street whose grids and people are payloads.
    with c.app.app_context():
        session = get_db().session()
        street = session.scalar(
            text("SELECT id FROM grid WHERE code = :c AND valid_to IS NULL"), {"c": OWN_STREET}
        )
        session.close()
    squares = []
    for i, p in enumerate(PAYLOADS):
        x0, y0, d = x + 0.0002 * i, y - 0.0001, 0.00008
        ring = [[x0, y0], [x0 + d, y0], [x0 + d, y0 + d], [x0, y0 + d], [x0, y0]]
        squares.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {"code": f"XN{i}", "name": p[:120], "person": p[:60]},
            }
        )
    c.api(
        "admin",
        "POST",
        "/api/networks/import",
        data={
            "file": (
                io.BytesIO(json.dumps({"type": "FeatureCollection", "features": squares}).encode()),
                "n.geojson",
            ),
            "department": "CG-AH",
            "name": PAYLOADS[0][:120],
            "street_id": str(street),
        },
    )
    c.stored["network grid names"] = [p[:120] for p in PAYLOADS]


@pytest.fixture(scope="module")
def corpus(cluster, sample_template: str) -> Iterator[Corpus]:  # type: ignore[no-untyped-def]
    name = own_database("gridgov_xss")
    # Migrated by the owner, the sample loaded by the app's role: a copy of the run's template.
    url = copy_database(cluster, sample_template, name)  # the app's role
    app = create_app({"DATABASE_URL": url, "TESTING": True, "SESSION_IDLE_MINUTES": 600})
    engine = create_engine(url)
    c = Corpus("", app)  # the server's address comes once it runs
    with Session(engine) as s, s.begin():
        for role, links in {"admin": {}, **ROLE_LINKS}.items():
            user = user_svc.create_user(
                s, f"x-{role}", role, TEST_PASSWORD, display_name=f"测试{role}", **links
            )  # type: ignore[arg-type]
            limits = dict(user_svc.DEFAULT_LIMITS, SESSION_IDLE_MINUTES=600)
            c.tokens[role] = user_svc.start_session(s, user, None, limits, kind="token").token
            c.cookies[role] = user_svc.start_session(s, user, None, limits).token
            if role == "party_member":
                c.party_member_id = user.worker_id
    _store(c)
    # Pages are served by gunicorn, as in production (the in-process app above stores the data).
    try:
        with own_server(
            url, threads=8, workers=2, app_spec="tests.own_server:testing_app()", **LIVE_SETTINGS
        ) as server:
            c.base = server.base
            yield c
    finally:
        app.extensions["gridgov_db"].dispose()
        engine.dispose()
        cluster.psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _settle(page, predicate: str, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    until(page, predicate, timeout=timeout)


# What each page shows once its data has come (the checks read it).
READY = {
    "/cases/desk": "#case-table tbody tr",
    "/cases/kpi": "#kpi-table tbody tr",
    "/cases/worker": "#my-cases > *",
    "/admin/users": "table tbody tr",
    "/cases/track": "#lookup",
    "/login": "form",
    "/overview": "html[data-overview-ready='1']",
    "/ledgers/households": "html[data-ledger-ready='1']",
    "/ledgers/workers": "html[data-ledger-ready='1']",
    "/ledgers/points": "html[data-ledger-ready='1']",
    "/ledgers/cameras": "html[data-ledger-ready='1']",
    "/report": "html[data-report-ready='1']",
    "/visits": "html[data-visits-ready='1']",
    "/points": "html[data-points-ready='1']",
    "/stars": "html[data-stars-ready='1']",
    "/networks": "html[data-networks-ready='1']",
}
# The ledgers (opened filtered to the micro-grid holding the corpus) and what each shows.
LEDGERS = {
    "/ledgers/households": "household addresses",
    "/ledgers/workers": "worker names",
    "/ledgers/points": "service point names",
    "/ledgers/cameras": "camera names",
}


class Visit:
    """One role's browser, watching for dialogs, CSP violations and page errors."""

    def __init__(self, browser, corpus: Corpus, role: str | None) -> None:  # type: ignore[no-untyped-def]
        self.ctx = browser.new_context(viewport={"width": 1400, "height": 900}, locale="zh-CN")
        self.ctx.add_init_script(WATCH)
        if role:
            self.ctx.add_cookies(
                [
                    {
                        "name": "gridgov_session",
                        "value": corpus.cookies[role],
                        "url": corpus.base,
                        "httpOnly": True,
                        "secure": True,
                        "sameSite": "Lax",
                    }
                ]
            )
        self.page = self.ctx.new_page()
        self.quiet = Quiet(self.page)
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.base = corpus.base
        self.role = role

    def open(self, path: str) -> None:
        res = self.page.goto(self.base + path)
        assert res is not None and res.status == 200, (self.role, path, res and res.status)
        # Wait for what the page fills in from its data, then until every request the page
        # made has been answered (no fixed pause: the map's tiles count as requests too).
        ready = READY.get(path.split("?")[0])
        if ready:
            self.page.wait_for_selector(ready, state="attached", timeout=20000)
        self.quiet.wait()

    def check(self, where: str) -> None:
        page = self.page
        # The page has fetched all it asked for, its images have loaded or failed, and the
        # events that follows have fired: an onerror / onload of an injected element would have run.
        self.quiet.wait()
        assert self.dialogs == [], (self.role, where, self.dialogs)
        assert page.evaluate("() => window.__violations") == [], (self.role, where)
        assert page.evaluate("() => document.querySelectorAll('.ggxss').length") == 0, (
            self.role,
            where,
        )
        assert self.errors == [], (self.role, where, self.errors)

    def close(self) -> None:
        self.ctx.close()


NEXT_FRAMES = "() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"


def _emap_texts(page, corpus: Corpus) -> str:  # type: ignore[no-untyped-def]
    """Read what the e-map shows as text: the grid names written on the map at several zooms,
    the panel of each grid picked by a click (the notice board with its chain, or an
    ancestor's outline), and the hover tooltips of the service points and cameras."""
    out: list[str] = []
    lon, lat = corpus.inside
    for zoom in (13, 15, 17):
        # In braces: setView returns the map, which Playwright would copy whole (MapLibre's
        # buffers and all) back to the test, seconds of each call.
        page.evaluate(
            "([lon, lat, z]) => { GridGov.map.setView([lat, lon], z, {animate: false}); }",
            [lon, lat, zoom],
        )
        page.evaluate("() => GridGov.refreshLabels()")
        out.append(
            page.evaluate(
                "() => Array.from(document.querySelectorAll('.gg-label')).map(el => el.textContent).join('\\n')"
            )
        )
    for x, y in [corpus.inside, *corpus.grid_points]:
        out.append(
            page.evaluate(
                """async ([lon, lat]) => {
                 GridGov.map.setView([lat, lon], 17, {animate: false});
                 const f = await GridGov.pickAt(L.latLng(lat, lon));
                 if (!f) return '';
                 await GridGov.openGrid(f);
                 return document.getElementById('gg-panel').textContent;
               }""",
                [x, y],
            )
        )
    page.evaluate(
        "([lon, lat]) => { GridGov.map.setView([lat, lon], 19, {animate: false}); }", [lon, lat]
    )
    page.evaluate("() => GridGov.tilesIdle()")
    for x, y in corpus.spots:
        p = page.evaluate(
            """([lon, lat]) => { const p = GridGov.map.latLngToContainerPoint([lat, lon]);
                                 const r = GridGov.map.getContainer().getBoundingClientRect();
                                 return {x: r.left + p.x, y: r.top + p.y}; }""",
            [x, y],
        )
        page.mouse.move(p["x"], p["y"])
        # The map answers a pointer move in its next animation frame (a tooltip, or none where
        # this role is shown nothing): two frames later it has.
        page.evaluate(NEXT_FRAMES)
        out.append(
            page.evaluate(
                "() => Array.from(document.querySelectorAll('.leaflet-tooltip.gg-hover')).map(el => el.textContent).join('\\n')"
            )
        )
        page.mouse.move(5, 890)
        page.evaluate(NEXT_FRAMES)
    return "\n".join(out)


def _emap_panels(v: Visit, corpus: Corpus) -> None:
    """The e-map's panels that show stored names: locate, coverage per grid, override areas."""
    page = v.page
    lon, lat = corpus.inside
    page.fill("#gg-locate-input", f"{lon:.7f}, {lat:.7f}")
    page.select_option("#gg-locate-crs", "wgs84")
    page.click("#gg-locate-go")
    page.wait_for_selector("html[data-locate-done]", timeout=10000)
    located = page.evaluate("() => document.getElementById('gg-panel').textContent")
    assert corpus.stored["grid names"][2] in located  # the payload-named micro-grid, as text
    v.check("locate")
    page.click("#gg-cov-toggle")
    page.wait_for_selector("html[data-coverage='ready']", timeout=30000)
    v.check("coverage")
    page.click("#gg-cov-toggle")
    page.click("#gg-ov-toggle")
    page.wait_for_selector("#gg-ov-category option[value='garbage']", state="attached")
    page.select_option("#gg-ov-category", "garbage")
    page.wait_for_selector("#gg-ov-list table", timeout=10000)
    listed = page.evaluate("() => document.getElementById('gg-ov-list').textContent")
    for name in PAYLOADS:
        assert name in listed, name
    v.check("override areas")


def _search_box(v: Visit, corpus: Corpus) -> None:
    """The search box's suggestions show payload-named grids and workers as text."""
    box = v.page.locator("#gg-search input")
    for name in corpus.stored["grid names"][:3] + corpus.stored["worker names"][:3]:
        box.fill(name)
        want = " ".join(name.split())
        # The suggestions of this query, not the last one's, show the name as text.
        until(
            v.page,
            "(want) => document.querySelector('#gg-search .gg-search-list').textContent.includes(want)",
            want,
            timeout=10,
        )
    box.fill("")
    v.check("search box")


PAGES = {
    "admin": [
        "/emap",
        "/cases/desk",
        "/cases/worker",
        "/cases/kpi",
        "/admin/users",
        "/admin/audit",
        "/overview",
        *LEDGERS,
        "/points",
        "/stars",
        "/networks",
    ],
    "centre": [
        "/emap",
        "/cases/desk",
        "/cases/worker",
        "/cases/kpi",
        "/overview",
        *LEDGERS,
        "/points",
        "/stars",
        "/networks",
    ],
    "grid_chief": [
        "/emap",
        "/cases/desk",
        "/cases/worker",
        "/cases/kpi",
        "/overview",
        *LEDGERS,
        "/points",
        "/stars",
    ],
    "micro_chief": [
        "/emap",
        "/cases/desk",
        "/cases/worker",
        "/cases/kpi",
        "/overview",
        *LEDGERS,
        "/points",
        "/stars",
    ],
    "worker": [
        "/emap",
        "/cases/worker",
        "/ledgers/households",
        "/ledgers/points",
        "/ledgers/cameras",
        "/visits",
        "/points",
        "/stars",
    ],
    "party_member": ["/emap", "/cases/worker", "/visits", "/points", "/stars"],
    "department": ["/emap", "/cases/desk", "/cases/worker"],
}


@pytest.mark.parametrize("role", list(PAGES))
def test_every_page_shows_the_payloads_as_text(browser, corpus: Corpus, role: str) -> None:  # type: ignore[no-untyped-def]
    v = Visit(browser, corpus, role)
    try:
        for path in PAGES[role]:
            v.open(path)
            if path == "/emap":
                _settle(v.page, "() => document.documentElement.dataset.emapReady === '1'")
                shown = _emap_texts(v.page, corpus)
                if role != "department":
                    for name in corpus.stored["grid names"]:
                        assert name in shown, (role, name)
                # The notice board of the micro-grid lists the payload-named workers as text.
                if role in ("admin", "centre", "grid_chief", "micro_chief", "worker"):
                    v.page.evaluate(f"() => GridGov.showNoticeBoard({corpus.grid_ids[OWN_MICRO]})")
                    v.page.wait_for_selector(".gg-board .gg-people", timeout=10000)
                    board = v.page.evaluate("() => document.querySelector('.gg-board').textContent")
                    for name in corpus.stored["worker names"]:
                        assert name in board, (role, name)
                if role in ("admin", "centre", "grid_chief", "micro_chief"):
                    for name in (
                        corpus.stored["service point names"] + corpus.stored["camera names"]
                    ):
                        assert name in shown, (role, name)
                if role in ("admin", "centre"):
                    _search_box(v, corpus)
                    _emap_panels(v, corpus)
            elif path == "/cases/desk":
                v.page.wait_for_selector("#case-table tbody tr", timeout=10000)
                if role != "department":
                    v.page.click(f"#case-table tr[data-id='{corpus.case_ids[0]}']")
                    v.page.wait_for_selector(".gg-case", timeout=10000)
                    detail = v.page.evaluate(
                        "() => document.querySelector('#case-detail').textContent"
                    )
                    assert PAYLOADS[0] in detail
            elif path == "/cases/worker" and role in ("admin", "centre", "worker"):
                if role != "worker":  # the centre opens the assignee's page
                    assignee = corpus.api("admin", "GET", f"/api/cases/{corpus.case_ids[1]}")[
                        "assignee"
                    ]["id"]
                    v.open(f"/cases/worker?worker={assignee}")
                v.page.wait_for_selector(".gg-card", timeout=10000)
                cards = v.page.evaluate("() => document.querySelector('#my-cases').textContent")
                assert PAYLOADS[1] in cards
            elif path in LEDGERS:
                v.open(f"{path}?grid={corpus.grid_ids[OWN_MICRO]}&limit=200")
                listed = v.page.evaluate(
                    "() => document.getElementById('ledger-table').textContent"
                )
                for name in corpus.stored[LEDGERS[path]]:
                    assert name in listed, (role, path, name)
            elif path == "/visits" and role == "worker":
                listed = v.page.evaluate("() => document.getElementById('recent-list').textContent")
                for p in corpus.stored["visit problems"]:
                    assert p in listed, p
            elif path == "/points" and role in ("grid_chief", "micro_chief"):
                v.page.wait_for_selector("html[data-review-ready='1']", timeout=10000)
                listed = v.page.evaluate("() => document.getElementById('review-body').textContent")
                for p in corpus.stored["point notes"]:
                    assert p in listed, (role, p)
            elif path == "/stars":
                listed = v.page.evaluate("() => document.getElementById('stars-body').textContent")
                for p in corpus.stored["star reason"]:
                    assert p in listed, (role, p)
            elif path == "/networks":
                listed = v.page.evaluate(
                    "() => document.getElementById('networks-body').textContent"
                )
                for name in corpus.stored["network grid names"]:
                    assert name in listed, (role, name)
            elif path == "/admin/users":
                v.page.wait_for_selector("table tbody tr", timeout=10000)
                listed = v.page.evaluate("() => document.body.textContent")
                for name in corpus.stored["account names"]:
                    assert name in listed, name
            v.check(path)
    finally:
        v.close()


def test_a_resident_sees_the_payloads_as_text(browser, corpus: Corpus) -> None:  # type: ignore[no-untyped-def]
    v = Visit(browser, corpus, None)
    try:
        for path in ("/login", "/cases/track", "/report"):
            v.open(path)
            v.check(path)
        # A resident follows each case by its public code: the description shows as text.
        for code, payload in zip(corpus.case_codes, PAYLOADS, strict=True):
            v.open(f"/cases/track?code={code}")
            v.page.wait_for_selector("#case-status .gg-case", timeout=10000)
            shown = v.page.evaluate("() => document.getElementById('case-status').textContent")
            assert payload in shown, payload
            v.check(f"track {code}")
    finally:
        v.close()
