"""The authorisation matrix: every role × every endpoint × {own grid, another grid}.

The expectations are written here from the issue's words, not read from ``app.auth.policy``:
who may call what, and that a record outside one's grids is as good as absent (404). Each call
runs inside a savepoint that is rolled back, so one call never changes what the next one sees.
A refusal (401 / 403 / 404) must carry an error and nothing of the record it names.

Own things lie in 爱辉社区第一网格第1微网格 (3401880010010101) of the sample street — in the grids
of every account of tests/auth/conftest.py; the other things lie in 桃园村 of 青山镇, in nobody's
but the administrator's. The department's own case is one escalated to it.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import text

from tests.auth.conftest import bearer
from tests.conftest import TEST_PASSWORD

ROLES = [
    "admin",
    "centre",
    "grid_chief",
    "micro_chief",
    "worker",
    "party_member",
    "department",
    "camera_feed",
    "anonymous",
]
PEOPLE = {"admin", "centre", "grid_chief", "micro_chief", "worker", "party_member", "department"}
GRID_PEOPLE = PEOPLE - {"department"}  # those who answer for grids and their households
SUPERVISORS = {"admin", "centre", "grid_chief", "micro_chief"}
CENTRE = {"admin", "centre"}  # edit grids, dispatch, settings, exports of personal data
ADMIN = {"admin"}
EVERYONE = set(ROLES)
WORKERS = {"grid_chief", "micro_chief", "worker", "party_member"}  # record field work as themselves

OWN_LEAF, OTHER_LEAF = "3401880010010101", "34018810120101"
OWN_PARENT, OTHER_PARENT = "34018800100101", "340188101201"


@dataclass
class Call:
    """One endpoint call; ``{g}`` etc. in the path are filled from the target's objects."""

    name: str
    method: str
    path: str
    roles: set[str]
    ok: set[int]
    body: Any = None
    scoped: bool = False  # names a record: outside one's grids it is 404
    page: bool = False  # an HTML page: nobody signed in is sent to /login
    form: Any = None  # form fields (or a function of the target giving them), files included
    special: dict[tuple[str, str], set[int]] = field(default_factory=dict)


def households_csv(t: dict[str, Any]) -> dict[str, Any]:
    """A one-household CSV placed in the target's micro-grid."""
    data = f"lon,lat,address,people\n{t['lon']},{t['lat']},矩阵导入1号,2\n".encode()
    return {"file": (io.BytesIO(data), "hh.csv")}


def network_geojson(t: dict[str, Any]) -> dict[str, Any]:
    """A one-grid departmental layer inside the target's micro-grid."""
    x, y, d = t["lon"], t["lat"], 0.00005
    ring = [[x - d, y - d], [x + d, y - d], [x + d, y + d], [x - d, y + d], [x - d, y - d]]
    data = json.dumps(
        {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "geometry": {"type": "Polygon", "coordinates": [ring]},
                    "properties": {"code": "MX-1", "name": "矩阵专业网格"},
                }
            ],
        }
    )
    return {
        "file": (io.BytesIO(data.encode()), "net.geojson"),
        "department": "CG-AH",
        "name": "矩阵图层",
    }


def area(t: dict[str, Any], name: str = "矩阵新区") -> dict[str, Any]:
    """A small override area around a point inside the target's micro-grid."""
    x, y, d = t["lon"], t["lat"], 0.00005
    return {
        "type": "Feature",
        "geometry": {
            "type": "Polygon",
            "coordinates": [
                [[x - d, y - d], [x + d, y - d], [x + d, y + d], [x - d, y + d], [x - d, y - d]]
            ],
        },
        "properties": {"name": name, "category": "road_occupation", "department_code": "CG-AH"},
    }


# Roles that may not take a case action refuse it (403), a handler without the centre's part
# finds no such neighbour (409); a record outside one's grids is 404 before either.
NOT_CENTRE_OWN = {
    (r, "own"): {403, 409}
    for r in ("grid_chief", "micro_chief", "worker", "party_member", "department")
}


def tiny_png() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 30, 30)).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


CALLS: list[Call] = [
    # pages and assets
    Call("index", "GET", "/", PEOPLE, {302}, page=True),
    Call("emap", "GET", "/emap", PEOPLE, {200}, page=True),
    Call("login page", "GET", "/login", EVERYONE, {200}),
    Call("login form without its token", "POST", "/login", EVERYONE, {403}, form={"username": "x"}),
    Call("logout page", "POST", "/logout", EVERYONE, {302}, form={}),
    Call("users page", "GET", "/admin/users", ADMIN, {200}, page=True),
    Call("audit page", "GET", "/admin/audit", ADMIN, {200}, page=True),
    Call("desk", "GET", "/cases/desk", SUPERVISORS | {"department"}, {200}, page=True),
    Call("worker page", "GET", "/cases/worker", PEOPLE, {200}, page=True),
    Call("track page", "GET", "/cases/track", EVERYONE, {200}),
    Call("kpi page", "GET", "/cases/kpi", SUPERVISORS, {200}, page=True),
    Call("favicon", "GET", "/favicon.ico", EVERYONE, {204}),
    # the 一张图 overview (supervisors), the ledgers (those who answer for grids; the population
    # ledger not for a party member, the workers' ledger for supervisors), the report page (anyone)
    Call("overview page", "GET", "/overview", SUPERVISORS, {200}, page=True),
    Call("ledgers page", "GET", "/ledgers", GRID_PEOPLE, {200}, page=True),
    Call("household ledger page", "GET", "/ledgers/households", GRID_PEOPLE, {200}, page=True),
    Call(
        "population ledger page",
        "GET",
        "/ledgers/people",
        GRID_PEOPLE - {"party_member"},
        {200},
        page=True,
    ),
    Call("worker ledger page", "GET", "/ledgers/workers", SUPERVISORS, {200}, page=True),
    Call("service-point ledger page", "GET", "/ledgers/points", GRID_PEOPLE, {200}, page=True),
    Call("camera ledger page", "GET", "/ledgers/cameras", GRID_PEOPLE, {200}, page=True),
    Call("report page", "GET", "/report", EVERYONE, {200}),
    Call("report page basemap", "GET", "/report/basemap/14/13528/6652.mvt", EVERYONE, {200}),
    # the e-map's calls: scoped by content (another's grids give no grid, no name), never 404
    Call("emap home", "GET", "/api/emap/home", PEOPLE, {200}),
    Call("emap labels", "GET", "/api/emap/labels?bbox={bbox}&zoom=16", PEOPLE, {200}),
    Call("emap pick", "GET", "/api/emap/pick?lon={lon}&lat={lat}&zoom=17", PEOPLE, {200}),
    Call("static", "GET", "/static/js/auth.js", EVERYONE, {200}),
    Call("vendor", "GET", "/vendor/leaflet/leaflet.js", EVERYONE, {200}),
    # the PMTiles basemap (none configured in the tests: 404 for those who may read it)
    Call("basemap file", "GET", "/basemap/basemap.pmtiles", PEOPLE, {404}),
    Call("basemap tile", "GET", "/basemap/tiles/15/0/0", PEOPLE, {404}),
    # accounts and audit
    Call(
        "login api",
        "POST",
        "/api/auth/login",
        EVERYONE,
        {401},
        body={"username": "nobody", "password": "Wrong-pass-1"},
    ),
    Call("logout api", "POST", "/api/auth/logout", EVERYONE, {200}, body={}),
    Call("me", "GET", "/api/auth/me", EVERYONE, {200}),
    Call(
        "password",
        "POST",
        "/api/auth/password",
        PEOPLE,
        {422},
        body={"old_password": TEST_PASSWORD, "new_password": "short"},
    ),
    Call("users", "GET", "/api/users", ADMIN, {200}),
    Call(
        "create user",
        "POST",
        "/api/users",
        ADMIN,
        {400},
        body={"username": "someone", "role": "mayor"},
    ),
    Call("update user", "PATCH", "/api/users/{u}", ADMIN, {200}, body={}),
    Call("end sessions", "POST", "/api/users/{u}/end-sessions", ADMIN, {200}, body={}),
    Call("audit", "GET", "/api/audit", ADMIN, {200}),
    Call("audit export", "GET", "/api/audit/export.csv", ADMIN, {200}),
    Call("openapi", "GET", "/api/openapi.json", EVERYONE, {200}),
    # grids
    Call("grids", "GET", "/api/grids?level=1", PEOPLE, {200}),
    # a grid with its notice board: one's own grids only (a department answers for none)
    Call(
        "grid",
        "GET",
        "/api/grids/{g}",
        PEOPLE,
        {200},
        scoped=True,
        special={("department", "own"): {404}},
    ),
    # the grid above one's own: a chief's own, a worker's outline (tests/auth/test_scopes.py)
    Call(
        "grid above",
        "GET",
        "/api/grids/{p}",
        PEOPLE,
        {200},
        scoped=True,
        special={("department", "own"): {404}},
    ),
    Call(
        "households of a grid",
        "GET",
        "/api/grids/{g}/households?limit=3",
        GRID_PEOPLE,
        {200},
        scoped=True,
    ),
    Call("household", "GET", "/api/households/{h}", GRID_PEOPLE, {200}, scoped=True),
    Call(
        "reveal household",
        "POST",
        "/api/households/{h}/reveal",
        GRID_PEOPLE,
        {200},
        body={"fields": ["head_phone"]},
        scoped=True,
    ),
    Call(
        "draw grid",
        "POST",
        "/api/grids",
        CENTRE,
        {422},
        body=lambda t: {
            "type": "Feature",
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]],
            },
            "properties": {"parent_id": t["p"], "name": "自交"},
        },
        scoped=True,
    ),
    Call(
        "draw a top-level grid",
        "POST",
        "/api/grids",
        CENTRE,
        {422},
        body={
            "type": "Feature",
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]],
            },
            "properties": {"name": "自交"},
        },
        special={("centre", "own"): {403}},
    ),
    Call(
        "rename grid (dry run)",
        "PATCH",
        "/api/grids/{g}",
        CENTRE,
        {200},
        body=lambda t: {
            "type": "Feature",
            "geometry": None,
            "properties": {"name": "试改名", "version": t["gv"]},
            "dry_run": True,
        },
        scoped=True,
    ),
    Call(
        "delete grid (dry run)",
        "DELETE",
        "/api/grids/{g}?dry_run=true",
        CENTRE,
        {200, 422},
        body=lambda t: {"version": t["gv"]},
        scoped=True,
    ),
    Call(
        "split grid",
        "POST",
        "/api/grids/{g}/split",
        CENTRE,
        {422},
        body=lambda t: {
            "line": {"type": "LineString", "coordinates": [[0, 0], [0.001, 0.001]]},
            "version": t["gv"],
        },
        scoped=True,
    ),
    Call(
        "merge grids",
        "POST",
        "/api/grids/merge",
        CENTRE,
        {400, 422},
        body=lambda t: {"ids": [t["g"]], "versions": [t["gv"]]},
        scoped=True,
    ),
    Call("integrity", "GET", "/api/grids/{g}/integrity", SUPERVISORS, {200}, scoped=True),
    Call("history", "GET", "/api/grids/{g}/history", SUPERVISORS, {200}, scoped=True),
    Call("changes", "GET", "/api/grids/changes?limit=5", SUPERVISORS, {200}),
    Call("changes of a grid", "GET", "/api/grids/changes?grid={g}&limit=5", SUPERVISORS, {200}),
    Call("undo", "POST", "/api/grids/changes/{ch}/undo", CENTRE, {200}, body={}, scoped=True),
    Call(
        "partition (dry run)",
        "POST",
        "/api/grids/{g}/partition",
        CENTRE,
        {200, 422},
        body={"k": 2, "dry_run": True},
        scoped=True,
    ),
    Call(
        "patches (dry run)",
        "POST",
        "/api/grids/{g}/patches",
        CENTRE,
        {200, 422},
        body={"dry_run": True},
        scoped=True,
    ),
    # places, coverage, import / export
    Call("service points", "GET", "/api/service-points", PEOPLE, {200}),
    # Tiles answer every member of staff; what a tile holds is the caller's (tests/web/test_tiles.py).
    Call("grid tile", "GET", "/tiles/grids/14/13528/6652.mvt", PEOPLE, {200}),
    Call("household tile", "GET", "/tiles/households/14/13528/6652.mvt", PEOPLE, {200}),
    Call("case tile", "GET", "/tiles/cases/14/13528/6652.mvt", PEOPLE, {200}),
    Call("cameras", "GET", "/api/cameras", PEOPLE, {200}),
    # the search box: every member of staff; what it finds is the caller's (tests/api/test_search.py)
    Call("search", "GET", "/api/search?q=%E7%88%B1%E8%BE%89", PEOPLE, {200}),
    Call("search too short", "GET", "/api/search?q=a", PEOPLE, {400}),
    # coverage: of one's own grids (a department answers for none)
    Call("coverage", "GET", "/api/coverage?level=2", GRID_PEOPLE, {200}),
    Call(
        "coverage of a grid",
        "GET",
        "/api/coverage?grid={g}&area=false",
        GRID_PEOPLE,
        {200},
        scoped=True,
    ),
    Call("uncovered", "GET", "/api/coverage/uncovered", SUPERVISORS, {200}),
    Call(
        "uncovered in a grid",
        "GET",
        "/api/coverage/uncovered?grid={g}",
        SUPERVISORS,
        {200},
        scoped=True,
    ),
    Call("circles", "GET", "/api/coverage/circles", GRID_PEOPLE, {200}),
    Call("presets", "GET", "/api/coverage/presets", PEOPLE, {200}),
    Call(
        "recommend",
        "POST",
        "/api/coverage/recommend",
        SUPERVISORS,
        {200},
        body={"k": 1, "method": "greedy"},
    ),
    Call(
        "recommend in a grid",
        "POST",
        "/api/coverage/recommend",
        SUPERVISORS,
        {200},
        body=lambda t: {"k": 1, "method": "greedy", "grid": t["g"]},
        scoped=True,
    ),
    Call(
        "accept site",
        "POST",
        "/api/coverage/accept",
        CENTRE,
        {201},
        body=lambda t: {"lon": t["lon"], "lat": t["lat"]},
        scoped=True,
    ),
    # imports: grids, workers and departments the administrator's; the rest held to one's grids
    Call("import", "POST", "/api/import/households", CENTRE, {400}, body={}),
    Call(
        "import households",
        "POST",
        "/api/import/households",
        CENTRE,
        {201},
        form=households_csv,
        scoped=True,
        special={("centre", "other"): {422}},
    ),
    Call(
        "import grids",
        "POST",
        "/api/import/grids",
        CENTRE,
        {400},
        body={},
        special={("centre", "own"): {403}},
    ),
    Call(
        "import workers",
        "POST",
        "/api/import/workers",
        CENTRE,
        {400},
        body={},
        special={("centre", "own"): {403}},
    ),
    Call(
        "import departments",
        "POST",
        "/api/import/departments",
        CENTRE,
        {400},
        body={},
        special={("centre", "own"): {403}},
    ),
    Call(
        "dry-run import households",
        "POST",
        "/api/import/households",
        CENTRE,
        {200},
        form=lambda t: {**households_csv(t), "dry_run": "1"},
        scoped=True,
        special={("centre", "other"): {200}},  # a refusal is part of a dry run's report
    ),
    # an import job: anyone who may import starts one; its status is its creator's (404 else)
    Call("import job", "POST", "/api/import-jobs/households", CENTRE, {202}, form=households_csv),
    Call("import job status", "GET", "/api/import-jobs/{job}", CENTRE, {200}, scoped=True),
    Call("held import records", "GET", "/api/import/held", CENTRE, {200}),
    Call("export grids", "GET", "/api/export/grids?format=csv", SUPERVISORS, {200}),
    Call(
        "export households",
        "GET",
        "/api/export/households?format=csv",
        SUPERVISORS,
        {200},
        special={(r, t): {403} for r in ("grid_chief", "micro_chief") for t in ("own", "other")},
    ),
    Call(
        "export households with personal data",
        "GET",
        "/api/export/households?format=csv&include_personal=true",
        SUPERVISORS,
        {200},
        special={(r, t): {403} for r in ("grid_chief", "micro_chief") for t in ("own", "other")},
    ),
    Call(
        "export workers",
        "GET",
        "/api/export/workers?format=csv",
        SUPERVISORS,
        {200},
        special={(r, t): {403} for r in ("grid_chief", "micro_chief") for t in ("own", "other")},
    ),
    Call("export cameras", "GET", "/api/export/cameras?format=csv", SUPERVISORS, {200}),
    Call(
        "export service points", "GET", "/api/export/service_points?format=csv", SUPERVISORS, {200}
    ),
    # locate and override areas
    # locate and neighbours name owners with phones: a point in one's own grids only
    Call("locate", "GET", "/api/locate?lon={lon}&lat={lat}", GRID_PEOPLE, {200}, scoped=True),
    Call(
        "neighbours",
        "GET",
        "/api/locate/neighbours?lon={lon}&lat={lat}",
        GRID_PEOPLE,
        {200},
        scoped=True,
    ),
    Call(
        "neighbours of a grid",
        "GET",
        "/api/locate/neighbours?lon={lon}&lat={lat}&grid={g}",
        GRID_PEOPLE,
        {200},
        scoped=True,
    ),
    Call(
        "locate batch",
        "POST",
        "/api/locate/batch",
        CENTRE,
        {200},
        body={
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "id": 1,
                    "geometry": {"type": "Point", "coordinates": [117.2287344, 31.8149002]},
                    "properties": {},
                }
            ],
        },
    ),
    Call("override areas", "GET", "/api/override-areas", PEOPLE, {200}),
    Call("override area keepers", "GET", "/api/override-areas/keepers", CENTRE, {200}),
    Call(
        "draw override area",
        "POST",
        "/api/override-areas",
        CENTRE,
        {400, 422},
        body={"type": "Feature", "geometry": None, "properties": {}},
    ),
    # an area is drawn, read, edited and deleted only within one's grids (a department has none)
    Call(
        "draw override area here",
        "POST",
        "/api/override-areas",
        CENTRE,
        {201},
        body=area,
        scoped=True,
        special={("centre", "other"): {422}},
    ),
    Call(
        "override area",
        "GET",
        "/api/override-areas/{a}",
        PEOPLE,
        {200},
        scoped=True,
        special={("department", "own"): {404}},
    ),
    Call(
        "edit override area",
        "PUT",
        "/api/override-areas/{a}",
        CENTRE,
        {200},
        body=lambda t: {
            "type": "Feature",
            "geometry": None,
            "properties": {"name": "矩阵市场乙", "version": t["av"]},
        },
        scoped=True,
    ),
    Call(
        "move override area away",
        "PUT",
        "/api/override-areas/{a}",
        CENTRE,
        {200},
        body=lambda t: {**area(t["away"]), "properties": {"version": t["av"]}},
        scoped=True,
        special={("centre", "own"): {422}},
    ),
    Call(
        "delete override area",
        "DELETE",
        "/api/override-areas/{a}",
        CENTRE,
        {204},
        body=lambda t: {"version": t["av"]},
        scoped=True,
    ),
    # cases
    Call(
        "report case",
        "POST",
        "/api/cases",
        EVERYONE - {"camera_feed"},
        {201},
        body={"x": 117.2287344, "y": 31.8149002, "category": "garbage", "description": "矩阵测试"},
    ),
    Call("cases", "GET", "/api/cases", PEOPLE, {200}),
    Call("workflow", "GET", "/api/cases/workflow", PEOPLE, {200}),
    Call("case", "GET", "/api/cases/{c}", PEOPLE, {200}, scoped=True),
    Call(
        "case duplicates", "GET", "/api/cases/{c}/duplicates?radius=500", PEOPLE, {200}, scoped=True
    ),
    Call(
        "case duplicates far and wide",
        "GET",
        "/api/cases/{c}/duplicates?radius=5000",
        PEOPLE,
        {400},
        scoped=True,
    ),
    # a transfer goes to a grid that contains the case or neighbours it, within one's grids
    Call(
        "transfer to a far grid",
        "POST",
        "/api/cases/{c}/actions/transfer",
        PEOPLE,
        {422},
        body=lambda t: {"note": "转派", "worker_id": t["away"]["w"], "grid_id": t["away"]["g"]},
        scoped=True,
        special=NOT_CENTRE_OWN,
    ),
    # merge only into a case one may see
    Call(
        "merge into another street's case",
        "POST",
        "/api/cases/{c}/actions/merge",
        PEOPLE,
        {200},
        body=lambda t: {"into": t["away"]["c"], "note": "重复"},
        scoped=True,
        special={**NOT_CENTRE_OWN, ("centre", "own"): {404}},
    ),
    Call(
        "case action",
        "POST",
        "/api/cases/{c}/actions/teleport",
        PEOPLE,
        {400},
        body={},
        scoped=True,
    ),
    Call(
        "reveal case",
        "POST",
        "/api/cases/{c}/reveal",
        PEOPLE,
        {200},
        body={"fields": ["reporter_contact"]},
        scoped=True,
        special={("party_member", "own"): {403}},
    ),
    Call("case photo", "GET", "/api/cases/photos/{ph}", PEOPLE, {200}, scoped=True),
    Call("export cases", "GET", "/api/cases/export.csv", SUPERVISORS, {200}),
    Call("kpis", "GET", "/api/cases/kpis?group=grid", SUPERVISORS, {200}),
    Call("sweep", "POST", "/api/cases/sweep", CENTRE, {200}, body={}),
    # the overview and the ledgers: of one's own grids; tags only for those responsible
    Call("overview", "GET", "/api/overview", SUPERVISORS, {200}),
    Call(
        "household ledger",
        "GET",
        "/api/ledgers/households?grid={g}",
        GRID_PEOPLE,
        {200},
        scoped=True,
    ),
    Call(
        "household ledger by tag",
        "GET",
        "/api/ledgers/households?tag=elderly_alone",
        GRID_PEOPLE,
        {200},
        special={("admin", "own"): {403}},
    ),
    Call(
        "population ledger",
        "GET",
        "/api/ledgers/people?grid={g}",
        GRID_PEOPLE - {"party_member"},
        {200},
        scoped=True,
    ),
    Call("worker ledger", "GET", "/api/ledgers/workers?grid={g}", SUPERVISORS, {200}, scoped=True),
    Call(
        "service-point ledger",
        "GET",
        "/api/ledgers/service-points?grid={g}",
        GRID_PEOPLE,
        {200},
        scoped=True,
    ),
    Call("camera ledger", "GET", "/api/ledgers/cameras?grid={g}", GRID_PEOPLE, {200}, scoped=True),
    Call(
        "export of a grid",
        "GET",
        "/api/export/cameras?format=csv&grid={g}",
        SUPERVISORS,
        {200},
        scoped=True,
    ),
    # Public endpoints take only the public code: an id or the internal code is as good as absent.
    Call("public case", "GET", "/api/public/cases/{pcode}", EVERYONE, {200}),
    Call("public case by id", "GET", "/api/public/cases/{c}", EVERYONE, {404}),
    Call("public case by internal code", "GET", "/api/public/cases/{code}", EVERYONE, {404}),
    Call(
        "rate case",
        "POST",
        "/api/public/cases/{pcode}/rate",
        EVERYONE,
        {409},
        body={"satisfaction": 5, "phone": "13912345678"},
    ),
    Call(
        "rate case without proof",
        "POST",
        "/api/public/cases/{pcode}/rate",
        EVERYONE,
        {403},
        body={"satisfaction": 5},
    ),
    Call("public case photo", "GET", "/api/public/cases/{pcode}/photos/{ph}", EVERYONE, {200}),
    Call(
        "public case photo of another case",
        "GET",
        "/api/public/cases/{opcode}/photos/{ph}",
        EVERYONE,
        {404},
    ),
    Call(
        "rate case by id",
        "POST",
        "/api/public/cases/{c}/rate",
        EVERYONE,
        {404},
        body={"satisfaction": 5, "phone": "13912345678"},
    ),
    Call(
        "camera event",
        "POST",
        "/api/camera-events",
        CENTRE | {"camera_feed"},
        {201},
        body={"camera": "CAM-AH-0001", "event_type": "street_vending"},
    ),
    Call("categories", "GET", "/api/case-categories", EVERYONE, {200}),
    Call("settings", "GET", "/api/case-settings", PEOPLE, {200}),
    Call(
        "change settings",
        "PUT",
        "/api/case-settings",
        ADMIN,
        {200},
        body={"duplicate_radius_m": 60},
    ),
    Call("calendar", "GET", "/api/calendar?year=2026", PEOPLE, {200}),
    Call("deadline", "GET", "/api/calendar/deadline?hours=8", PEOPLE, {200}),
    # field work: recorded by those who work in the grids as themselves; a visit is seen by its
    # worker, the chiefs over it and the centre (not by another worker or a party member)
    Call("visits page", "GET", "/visits", WORKERS, {200}, page=True),
    Call(
        "record visit",
        "POST",
        "/api/visits",
        WORKERS,
        {201},
        body=lambda t: {"household_id": t["h"], "lon": t["lon"], "lat": t["lat"]},
        scoped=True,
    ),
    Call("visits", "GET", "/api/visits", GRID_PEOPLE, {200}),
    Call(
        "visit",
        "GET",
        "/api/visits/{v}",
        GRID_PEOPLE,
        {200},
        scoped=True,
        special={("party_member", "own"): {404}},
    ),
    Call(
        "case from visit",
        "POST",
        "/api/visits/{v}/case",
        WORKERS,
        {201},
        body={"category": "garbage"},
        scoped=True,
        special={("party_member", "own"): {404}},
    ),
    Call("visit coverage", "GET", "/api/visits/coverage?group=worker", GRID_PEOPLE, {200}),
    Call(
        "visit coverage by grid",
        "GET",
        "/api/visits/coverage?group=grid&level=3",
        GRID_PEOPLE,
        {200},
    ),
    Call("visits due", "GET", "/api/visits/due", WORKERS, {200}),
    Call("visit settings", "GET", "/api/visit-settings", GRID_PEOPLE, {200}),
    Call(
        "change visit settings",
        "PUT",
        "/api/visit-settings",
        ADMIN,
        {200},
        body={"max_distance_m": 120},
    ),
    Call(
        "check in",
        "POST",
        "/api/checkins",
        WORKERS,
        {201},
        body=lambda t: {"lon": t["lon"], "lat": t["lat"]},
    ),
    Call("check-ins", "GET", "/api/checkins", GRID_PEOPLE, {200}),
    # patrols: a worker starts, feeds and stops their own; the chiefs over the worker and the
    # centre of the street read them; nobody else
    Call("start patrol", "POST", "/api/patrols", WORKERS, {201}, body={}),
    Call(
        "patrol positions",
        "POST",
        "/api/patrols/{pt}/positions",
        WORKERS,
        {201},
        body=lambda t: {"points": [{"lon": t["lon"], "lat": t["lat"], "t": t["pt_t"]}]},
        scoped=True,
        special={
            ("grid_chief", "own"): {404},
            ("micro_chief", "own"): {404},
            ("party_member", "own"): {404},
        },
    ),
    Call(
        "stop patrol",
        "POST",
        "/api/patrols/{pt}/stop",
        WORKERS,
        {200},
        body={},
        scoped=True,
        special={
            ("grid_chief", "own"): {404},
            ("micro_chief", "own"): {404},
            ("party_member", "own"): {404},
        },
    ),
    Call("patrols", "GET", "/api/patrols", GRID_PEOPLE, {200}),
    Call(
        "patrol",
        "GET",
        "/api/patrols/{pt}",
        GRID_PEOPLE,
        {200},
        scoped=True,
        special={("party_member", "own"): {404}},
    ),
    Call("patrol coverage", "GET", "/api/patrols/coverage?group=worker", GRID_PEOPLE, {200}),
    Call(
        "patrol coverage by grid",
        "GET",
        "/api/patrols/coverage?group=grid&level=4",
        GRID_PEOPLE,
        {200},
    ),
    Call(
        "patrol day map",
        "GET",
        "/api/patrols/map?worker={pw}",
        GRID_PEOPLE,
        {200},
        scoped=True,
        special={("party_member", "own"): {404}},
    ),
    Call(
        "overdue households map", "GET", "/api/visits/overdue-map?bbox={bbox}", GRID_PEOPLE, {200}
    ),
    Call("field kpis", "GET", "/api/field-kpis?group=worker", GRID_PEOPLE, {200}),
    Call(
        "field kpis export",
        "GET",
        "/api/field-kpis?group=grid&level=3&format=csv",
        GRID_PEOPLE,
        {200},
    ),
    # points ledgers: a member their own, chiefs their grids', the centre its street's
    Call("point rules", "GET", "/api/points/rules", GRID_PEOPLE, {200}),
    Call(
        "save point rule",
        "POST",
        "/api/points/rules",
        CENTRE,
        {201},
        body={"code": "MX-01", "name": "矩阵规则", "kind": "奖励分", "points": 1},
    ),
    Call(
        "propose point entry",
        "POST",
        "/api/points/entries",
        {"party_member", "grid_chief", "micro_chief"},
        {201},
        body=lambda t: {"member_id": t["m"], "rule_code": "DY-JL-02"},
        scoped=True,
    ),
    Call(
        "review point entry",
        "POST",
        "/api/points/entries/{pe}/review",
        SUPERVISORS,
        {200},
        body={"decision": "approve"},
        scoped=True,
        special={("admin", "own"): {409}, ("admin", "other"): {409}, ("centre", "own"): {409}},
    ),
    Call(
        "member point ledger",
        "GET",
        "/api/points/members/{m}",
        GRID_PEOPLE,
        {200},
        scoped=True,
        special={("worker", "own"): {404}},
    ),
    Call("household points", "GET", "/api/points/households/{h}", GRID_PEOPLE, {200}, scoped=True),
    Call(
        "give household points",
        "POST",
        "/api/points/households/{h}/entries",
        SUPERVISORS,
        {201},
        body={"rule_code": "HH-JL-01"},
        scoped=True,
    ),
    Call(
        "exchange household points",
        "POST",
        "/api/points/households/{h}/exchange",
        SUPERVISORS,
        {201},
        body={"points": 1, "item": "矩阵兑换"},
        scoped=True,
    ),
    Call("points page", "GET", "/points", GRID_PEOPLE, {200}, page=True),
    Call("points ranking", "GET", "/api/points/ranking?group=grid", GRID_PEOPLE, {200}),
    Call("pending point entries", "GET", "/api/points/entries/pending", SUPERVISORS, {200}),
    Call("automatic points", "POST", "/api/points/sync", CENTRE, {200}),
    Call("points settings", "GET", "/api/points/settings", SUPERVISORS, {200}),
    Call(
        "change points settings",
        "PUT",
        "/api/points/settings",
        CENTRE,
        {200},
        body={"events_target": 4},
    ),
    # a village's public ranking: no sign-in
    Call("public points page", "GET", "/points/public/340188001001", EVERYONE, {200}),
    # star ratings (评星定级)
    Call("stars page", "GET", "/stars", GRID_PEOPLE, {200}, page=True),
    Call("star ratings", "GET", "/api/stars?quarter=2026Q3", GRID_PEOPLE, {200}),
    Call(
        "adjust stars",
        "POST",
        "/api/stars/grids/{g}/adjust",
        {"admin", "centre", "grid_chief"},
        {201},
        body={"quarter": "2026Q3", "delta": 1, "reason": "矩阵调整"},
        scoped=True,
        special={("admin", "other"): {201, 404}},
    ),
    Call("star history", "GET", "/api/stars/grids/{g}", GRID_PEOPLE, {200}, scoped=True),
    Call(
        "close a quarter",
        "POST",
        "/api/stars/close",
        CENTRE,
        {201},
        body={"quarter": "2026Q3"},
        special={("centre", "own"): {403}},
    ),
    Call("allowance export", "GET", "/api/stars/export?quarter=2026Q3", CENTRE, {409}),
    Call("stars on the map", "GET", "/api/stars/map", GRID_PEOPLE, {200}),
    Call("service point ratings", "GET", "/api/stars/service-points", GRID_PEOPLE, {200}),
    Call(
        "rate a service point",
        "POST",
        "/api/stars/service-points/{sp}/ratings",
        CENTRE,
        {201},
        body={"hardware": 20, "organisation": 20, "norms": 20, "effect": 20},
        scoped=True,
    ),
    # Open311
    Call("open311 services", "GET", "/open311/v2/services.json", EVERYONE, {200}),
    Call(
        "open311 report",
        "POST",
        "/open311/v2/requests.json",
        EVERYONE,
        {200, 201},
        body={
            "service_code": "garbage",
            "lat": 31.8149002,
            "long": 117.2287344,
            "description": "Open311 矩阵",
        },
    ),
    Call(
        "open311 list",
        "GET",
        "/open311/v2/requests.json",
        EVERYONE,
        {200},
        special={(r, "own"): {403} for r in EVERYONE - CENTRE},
    ),
    Call(
        "open311 list by code",
        "GET",
        "/open311/v2/requests.json?service_request_id={pcode}",
        EVERYONE,
        {200},
    ),
    Call(
        "open311 list by internal code",
        "GET",
        "/open311/v2/requests.json?service_request_id={code}",
        EVERYONE,
        {404},
    ),
    Call("open311 request", "GET", "/open311/v2/requests/{pcode}.json", EVERYONE, {200}),
    Call(
        "open311 request by internal code",
        "GET",
        "/open311/v2/requests/{code}.json",
        EVERYONE,
        {404},
    ),
    Call("open311 discovery", "GET", "/open311/v2/discovery.json", EVERYONE, {200}),
    # departments' own grids (多网合一): a centre its street's networks, a department its own
    Call("networks", "GET", "/api/networks", CENTRE | {"department"}, {200}),
    Call("import network", "POST", "/api/networks/import", CENTRE, {201}, form=network_geojson),
    Call("network", "GET", "/api/networks/{n}", CENTRE | {"department"}, {200}, scoped=True),
    Call(
        "network mismatch",
        "GET",
        "/api/networks/{n}/mismatch",
        CENTRE | {"department"},
        {200},
        scoped=True,
    ),
    Call(
        "network mismatch export",
        "GET",
        "/api/networks/{n}/mismatch?format=csv",
        CENTRE | {"department"},
        {200},
        scoped=True,
    ),
    Call(
        "network alignment",
        "GET",
        "/api/networks/{n}/grids/{ng}/alignment",
        CENTRE | {"department"},
        {200},
        scoped=True,
    ),
    Call(
        "commit network alignment",
        "POST",
        "/api/networks/{n}/grids/{ng}/alignment",
        CENTRE | {"department"},
        {201},
        body={},
        scoped=True,
    ),
    Call(
        "category network",
        "PUT",
        "/api/case-categories/streetlight/network",
        ADMIN,
        {200},
        body=lambda t: {"network_id": t["n"]},
    ),
    Call("networks page", "GET", "/networks", CENTRE, {200}, page=True),
    Call(
        "network tile", "GET", "/tiles/networks/14/13530/6652.mvt", CENTRE | {"department"}, {200}
    ),
    # the notice board (网格公示牌) to print
    Call(
        "worker photo for the notice board",
        "PUT",
        "/api/workers/{w}/photo",
        CENTRE,
        {200},
        form=lambda t: {"photo": (io.BytesIO(base64.b64decode(tiny_png())), "p.png")},
        scoped=True,
    ),
    Call(
        "notice board pdf",
        "GET",
        "/grids/{g}/notice.pdf",
        GRID_PEOPLE,
        {200},
        scoped=True,
        page=True,
    ),
    Call(
        "notice board png",
        "GET",
        "/grids/{g}/notice.png?paper=A3",
        GRID_PEOPLE,
        {200},
        scoped=True,
        page=True,
    ),
    Call(
        "notice settings",
        "PUT",
        "/api/grids/{g}/notice-settings",
        SUPERVISORS,
        {200},
        body={"show_phones": True},
        scoped=True,
    ),
]


def expected(call: Call, role: str, target: str) -> set[int]:
    if role not in call.roles:
        if role == "anonymous":
            return {302} if call.page else {401}
        return {403}
    if (role, target) in call.special:
        return call.special[(role, target)]
    if call.scoped and target == "other" and role != "admin":
        return {404}
    return call.ok


def _grid_id(session, code: str) -> int:  # type: ignore[no-untyped-def]
    return session.scalar(
        text("SELECT id FROM grid WHERE code = :c AND valid_to IS NULL"), {"c": code}
    )


def _report(client, x: float, y: float, what: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    res = client.post(
        "/api/cases",
        json={
            "x": x,
            "y": y,
            "category": "streetlight",
            "description": what,
            "reporter_contact": "13912345678",
            "reporter_name": "赵六",
            "photo_base64": tiny_png(),
        },
    )
    assert res.status_code == 201, res.get_json()
    return client.get(f"/api/cases/{res.get_json()['case']['id']}").get_json()


@pytest.fixture()
def targets(client, db_session, accounts) -> dict[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    """The records each call names: in one's own grids, and in nobody's."""
    out: dict[str, dict[str, Any]] = {}
    member = accounts["party_member"].worker_id
    dept = accounts["department"].department_id
    for target, leaf, parent in (
        ("own", OWN_LEAF, OWN_PARENT),
        ("other", OTHER_LEAF, OTHER_PARENT),
    ):
        g, p = _grid_id(db_session, leaf), _grid_id(db_session, parent)
        lon, lat = db_session.execute(
            text(
                "SELECT ST_X(q), ST_Y(q) FROM (SELECT ST_PointOnSurface(geom) q FROM grid WHERE id = :g) s"
            ),
            {"g": g},
        ).one()
        h = db_session.scalar(
            text(
                """WITH RECURSIVE t AS (SELECT id FROM grid WHERE id = :g
                       UNION ALL SELECT c.id FROM grid c JOIN t ON c.parent_id = t.id)
                   SELECT h.id FROM household h JOIN t ON t.id = h.grid_id
                   ORDER BY (h.linked_member_id = :m) DESC NULLS LAST, h.id LIMIT 1"""
            ),
            {"g": g, "m": member},
        )
        case = _report(client, lon, lat, f"矩阵{target}事件")
        rename = client.patch(
            f"/api/grids/{g}",
            json={"type": "Feature", "geometry": None, "properties": {"name": f"矩阵{target}"}},
            headers={
                "If-Match": f'"{client.get(f"/api/grids/{g}").get_json()["properties"]["version"]}"'
            },
        )
        assert rename.status_code == 200, rename.get_json()
        out[target] = {
            "g": g,
            "p": p,
            "lon": lon,
            "lat": lat,
            "w": db_session.scalar(
                text(
                    "SELECT worker_id FROM grid_assignment WHERE grid_id = :g ORDER BY worker_id LIMIT 1"
                ),
                {"g": g},
            ),
            "h": h,
            "c": case["id"],
            "code": case["code"],
            "pcode": case["public_code"],
            "ph": case["photos"][0]["id"],
            "ch": rename.get_json()["change"]["id"],
            "gv": client.get(f"/api/grids/{g}").get_json()["properties"]["version"],
            "bbox": f"{lon - 0.003:.6f},{lat - 0.002:.6f},{lon + 0.003:.6f},{lat + 0.002:.6f}",
            "secrets": [
                f"矩阵{target}事件",
                "13912345678",
                "赵六",
                db_session.scalar(text("SELECT address FROM household WHERE id = :h"), {"h": h}),
            ],
        }
    # The department's own case is one escalated to it.
    db_session.execute(
        text('UPDATE "case" SET department_id = :d, escalation_level = 2 WHERE id = :c'),
        {"d": dept, "c": out["own"]["c"]},
    )
    out["own"]["opcode"], out["other"]["opcode"] = out["other"]["pcode"], out["own"]["pcode"]
    for t in out.values():
        res = client.post("/api/override-areas", json=area(t, "矩阵市场"))
        assert res.status_code == 201, res.get_json()
        t["a"] = res.get_json()["id"]
        t["av"] = res.get_json()["properties"]["version"]
        t["u"] = accounts["worker"].user_id
    # A visit in each: the worker's own, and one by a worker of 桃园村.
    for t, wid in ((out["own"], accounts["worker"].worker_id), (out["other"], out["other"]["w"])):
        t["v"] = db_session.scalar(
            text(
                "INSERT INTO visit (worker_id, household_id, grid_id, kind, visited_at, note) "
                "SELECT :w, id, grid_id, 'monthly', now(), '矩阵走访' FROM household WHERE id = :h RETURNING id"
            ),
            {"w": wid, "h": t["h"]},
        )
    # A stopped patrol in each: the worker's own, and one by a worker of 桃园村.
    for t, wid in ((out["own"], accounts["worker"].worker_id), (out["other"], out["other"]["w"])):
        t["pw"] = wid
        t["pt"] = db_session.scalar(
            text(
                "INSERT INTO patrol (worker_id, started_at, ended_at)"
                " VALUES (:w, now() - interval '2 hours', now() - interval '1 hour') RETURNING id"
            ),
            {"w": wid},
        )
        t["pt_t"] = db_session.scalar(
            text("SELECT started_at + interval '1 minute' FROM patrol WHERE id = :p"),
            {"p": t["pt"]},
        ).isoformat()
    # A party member in each (the party member's own account in its grid), with a proposed entry,
    # and a household with points to spend.
    out["own"]["m"] = member
    db_session.execute(text("INSERT INTO worker (code, name) VALUES ('MX-PM', '矩阵党员')"))
    out["other"]["m"] = db_session.scalar(
        text(
            "INSERT INTO grid_assignment (worker_id, grid_id, role) SELECT id, :g, 'party_member'"
            " FROM worker WHERE code = 'MX-PM' RETURNING worker_id"
        ),
        {"g": out["other"]["g"]},
    )
    for t in out.values():
        t["pe"] = db_session.scalar(
            text(
                "INSERT INTO point_entry (member_id, rule_id, occurred_on) SELECT :m, id, DATE '2026-11-01'"
                " FROM point_rule WHERE code = 'DY-JL-02' AND version = 1 RETURNING id"
            ),
            {"m": t["m"]},
        )
        db_session.execute(
            text(
                "INSERT INTO household_point_entry (household_id, rule_id, occurred_on) SELECT :h, id, DATE '2026-11-01'"
                " FROM point_rule WHERE code = 'HH-JL-01' AND version = 1"
            ),
            {"h": t["h"]},
        )
    # A party-mass service point in each.
    for t in out.values():
        t["sp"] = db_session.scalar(
            text(
                "INSERT INTO service_point (name, kind, geom, grid_id) VALUES ('矩阵站点', 'station',"
                " ST_SetSRID(ST_MakePoint(:x, :y), 4326), :g) RETURNING id"
            ),
            {"x": t["lon"], "y": t["lat"], "g": t["g"]},
        )
    # A departmental network in each: the department's own in the sample street, another
    # department's in 青山镇; one grid each, the shape of the target's micro-grid.
    streets = {"own": "340188001", "other": "340188101"}
    for key, t in out.items():
        dept = (
            dept
            if key == "own"
            else db_session.scalar(
                text("SELECT id FROM department WHERE id <> :d ORDER BY id LIMIT 1"), {"d": dept}
            )
        )
        t["n"] = db_session.scalar(
            text(
                "INSERT INTO network (department_id, name, kind, grid_id) SELECT :d, :name, 'urban', id"
                " FROM grid WHERE code = :s AND valid_to IS NULL RETURNING id"
            ),
            {"d": dept, "name": f"矩阵{key}网格", "s": streets[key]},
        )
        t["ng"] = db_session.scalar(
            text(
                "INSERT INTO network_grid (network_id, code, name, geom, area_m2) SELECT :n, 'MX-01', '矩阵',"
                " geom, area_m2 FROM grid WHERE id = :g RETURNING id"
            ),
            {"n": t["n"], "g": t["g"]},
        )
    # An import job in each: the centre account's own, and the administrator's.
    for key, creator in (("own", accounts["centre"].user_id), ("other", accounts["admin"].user_id)):
        out[key]["job"] = db_session.scalar(
            text(
                "INSERT INTO import_job (kind, source, status, created_by) "
                "VALUES ('households', 'mx.csv', 'done', :u) RETURNING id"
            ),
            {"u": creator},
        )
    out["own"]["away"], out["other"]["away"] = out["other"], out["own"]
    db_session.flush()
    return out


def _send(app, call: Call, role: str, t: dict[str, Any], accounts):  # type: ignore[no-untyped-def]
    c = app.test_client()
    headers = bearer(accounts.get(role)) if role != "anonymous" else {}
    path = call.path.format(**t)
    kwargs: dict[str, Any] = {"headers": headers}
    if call.form is not None:
        kwargs["data"] = call.form(t) if callable(call.form) else call.form
    elif call.body is not None:
        kwargs["json"] = call.body(t) if callable(call.body) else call.body
    return c.open(path, method=call.method, **kwargs)


def _leaks(res, t: dict[str, Any], target: str) -> list[str]:  # type: ignore[no-untyped-def]
    body = res.get_data(as_text=True)
    found = [s for s in t["secrets"] if s and s in body]
    if res.status_code in (401, 403, 404) and res.mimetype == "application/json":
        data = json.loads(body)
        if (
            target == "own"
            and isinstance(data, dict)
            and data.get("error", {}).get("code") == "forbidden"
        ):
            return found  # one's own case: the refusal may name the action and what it needs
        if isinstance(data, list):  # Open311's error list
            if not all(set(e) <= {"code", "description"} for e in data):
                found.append(f"extra fields {data}")
        elif set(data) != {"error"} or not set(data["error"]) <= {
            "code",
            "message",
            "message_en",
            "reason",
            "param",
        }:
            found.append(f"extra fields {sorted(data)} / {sorted(data.get('error', {}))}")
    return found


@pytest.mark.parametrize("role", ROLES)
def test_authorisation_matrix(role: str, app, db_session, targets, accounts) -> None:  # type: ignore[no-untyped-def]
    problems: list[str] = []
    seen = 0
    for call in CALLS:
        for target in ("own", "other") if call.scoped or "{" in call.path else ("own",):
            want = expected(call, role, target)
            nested = db_session.connection().begin_nested()
            try:
                res = _send(app, call, role, targets[target], accounts)
            finally:
                nested.rollback()
            seen += 1
            if res.status_code not in want:
                problems.append(
                    f"{role} {call.name} ({target}): {res.status_code}, expected {sorted(want)}: "
                    f"{res.get_data(as_text=True)[:160]}"
                )
                continue
            if res.status_code in (401, 403, 404):
                problems.extend(
                    f"{role} {call.name} ({target}) leaks {x}"
                    for x in _leaks(res, targets[target], target)
                )
                if call.page and role == "anonymous":
                    assert res.headers["Location"].startswith("/login")
    assert not problems, "\n".join(problems)
    assert seen >= len(CALLS)
