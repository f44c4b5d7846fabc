"""The plain single locate answered below Flask (app/api/locate_fast.py) gives exactly Flask's
answer: a table of requests — every role, nobody, bad and ended and idle sessions, cookies,
each CRS, points in, between and outside the grids, override areas and departmental networks,
bad, unusual and extra parameters, HEAD, a read-your-writes position — each sent to the app
with the fast path on and off, the status, the body and every header compared (the CSP's
per-request nonce aside). The table also says which requests the fast path must answer itself,
so that the comparison is not won by passing everything to Flask. Then the same comparison
over points all over the sample (inside, on vertices and edges, a lattice in and around the
grids, beyond the tolerance) for every caller, every CRS under each of its names, and bad or
unusual parameters; the session's last use committed on both paths; replicas and trusted
hosts left to Flask; and more server threads than the read pool holds."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from app import create_app
from app.api.locate_fast import FastLocate
from app.db import get_db, transaction
from app.services import users as user_svc
from gis.crs import from_wgs84, gk_zone_epsg, wgs84_to_bd09, wgs84_to_gcj02

INSIDE = (117.23, 31.82)  # a micro-grid of the sample street (爱辉社区)
VILLAGE = (117.2269175, 31.7007770)  # the sample village: not the street workers' grids
OUTSIDE = (100.0, 20.0)  # no grid anywhere near
OWN_MICRO_GRID = "3401880010010101"  # the accounts' worker, micro-grid chief and party member's
AREA_CATEGORY = "road_occupation"  # 占道经营: an override area of CG-AH is put at INSIDE
NETWORK_CATEGORY = "fire_hazard"  # 消防安全隐患: routed by a departmental network at VILLAGE
NONCE = re.compile(r"'nonce-[^']*'")


def _config(database_url: str, fast: bool) -> dict[str, Any]:
    return {
        "DATABASE_URL": database_url,
        "TESTING": True,
        "SESSION_IDLE_MINUTES": 600,
        "LOCATE_FAST_PATH": fast,
    }


class Counting(FastLocate):
    """The fast path, counting the requests it answered itself."""

    served = 0

    def answer(self, environ):  # type: ignore[no-untyped-def]
        out = super().answer(environ)
        if out is not None:
            type(self).served += 1
        return out


@pytest.fixture(scope="module")
def apps(database_url: str) -> Iterator[tuple[Any, Any]]:
    fast = create_app(_config(database_url, True))
    fast.wsgi_app = Counting(fast, fast.wsgi_app.inner)  # type: ignore[attr-defined]
    slow = create_app(_config(database_url, False))
    yield fast, slow
    fast.wsgi_app.close()  # type: ignore[attr-defined]
    for a in (fast, slow):
        a.extensions["gridgov_db"].dispose()


@pytest.fixture(scope="module")
def world(database_url: str, accounts, admin_auth) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Committed for the module, removed after it: an override area at INSIDE, a departmental
    network at VILLAGE, and sessions that ended, expired, went idle or need a keep-alive."""
    app = create_app({"DATABASE_URL": database_url, "TESTING": True})
    engine = create_engine(database_url)
    made: dict[str, Any] = {}
    with app.app_context():
        session = get_db().session()
        with transaction(session):
            centre = session.get(user_svc.AppUser, accounts["centre"].user_id)
            admin = session.get(user_svc.AppUser, accounts["admin"].user_id)
            worker = session.get(user_svc.AppUser, accounts["worker"].user_id)
            limits = dict(user_svc.DEFAULT_LIMITS, SESSION_IDLE_MINUTES=600)
            for name, user, kind in (
                ("ended", centre, "token"),
                ("expired", centre, "token"),
                ("idle", admin, "browser"),
                ("stale_touch", admin, "browser"),
                ("token_as_cookie", admin, "token"),
                ("centre_cookie", centre, "browser"),
                ("worker_cookie", worker, "browser"),
            ):
                new = user_svc.start_session(session, user, None, limits, kind=kind)
                made[name] = (new.token, new.session.id)
        session.close()
    app.extensions["gridgov_db"].dispose()
    ids = {k: v[1] for k, v in made.items()}
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE user_session SET ended_at = now() WHERE id = :i"), {"i": ids["ended"]}
        )
        conn.execute(
            text("UPDATE user_session SET expires_at = now() - interval '1 hour' WHERE id = :i"),
            {"i": ids["expired"]},
        )
        conn.execute(
            text(
                "UPDATE user_session SET last_seen_at = now() - interval '11 hours' WHERE id = :i"
            ),
            {"i": ids["idle"]},
        )
        dept = conn.execute(text("SELECT id FROM department WHERE code = 'CG-AH'")).scalar_one()
        area = conn.execute(
            text(
                """INSERT INTO override_area (name, category, geom, area_m2, department_id)
                   SELECT '长江路（快速定位测试）', :cat, g, ST_Area(g::geography), :d
                   FROM (SELECT ST_Multi(ST_Buffer(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326),
                                                   0.0005, 2)) AS g) s RETURNING id"""
            ),
            {"cat": AREA_CATEGORY, "d": dept, "lon": INSIDE[0], "lat": INSIDE[1]},
        ).scalar_one()
        network = conn.execute(
            text(
                "INSERT INTO network (department_id, name, kind) VALUES (:d, '消防网格（测试）', "
                "'other') RETURNING id"
            ),
            {"d": dept},
        ).scalar_one()
        conn.execute(
            text(
                """INSERT INTO network_grid (network_id, code, name, person_name, person_phone,
                                             geom, area_m2)
                   SELECT :n, 'XF-01', '消防一格', '消防员甲', '13800001111', g,
                          ST_Area(g::geography)
                   FROM (SELECT ST_Multi(ST_Buffer(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326),
                                                   0.001, 2)) AS g) s"""
            ),
            {"n": network, "lon": VILLAGE[0], "lat": VILLAGE[1]},
        )
        before = conn.execute(
            text("SELECT network_id FROM case_category WHERE code = :c"), {"c": NETWORK_CATEGORY}
        ).scalar_one()
        conn.execute(
            text("UPDATE case_category SET network_id = :n WHERE code = :c"),
            {"n": network, "c": NETWORK_CATEGORY},
        )
        own = conn.execute(
            text(
                "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p FROM grid "
                "WHERE code = :c AND valid_to IS NULL) s"
            ),
            {"c": OWN_MICRO_GRID},
        ).one()
        # About 9 m west of the westernmost vertex of all grids: outside every grid, within
        # the nearest-grid tolerance of one.
        edge = conn.execute(
            text(
                "SELECT ST_X(p) - 0.0001, ST_Y(p) FROM (SELECT (ST_DumpPoints(geom)).geom AS p "
                "FROM grid WHERE valid_to IS NULL) s ORDER BY ST_X(p) LIMIT 1"
            )
        ).one()
    try:
        yield {
            "tokens": {k: v[0] for k, v in made.items()},
            "ids": ids,
            "engine": engine,
            "own": (float(own[0]), float(own[1])),
            "edge": (float(edge[0]), float(edge[1])),
        }
    finally:
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE case_category SET network_id = :b WHERE code = :c"),
                {"b": before, "c": NETWORK_CATEGORY},
            )
            conn.execute(text("DELETE FROM network WHERE id = :n"), {"n": network})
            conn.execute(text("DELETE FROM override_area WHERE id = :a"), {"a": area})
            conn.execute(
                text("UPDATE user_session SET ended_at = now() WHERE id = ANY(:i)"),
                {"i": list(ids.values())},
            )
        engine.dispose()


def get_pool_capacity(app: Any) -> int:
    """How many connections the driver-level read pool of ``app`` holds at most."""
    pool = app.extensions["gridgov_db"].dbapi_engine.pool
    return pool.size() + pool._max_overflow  # type: ignore[attr-defined]


def _q(point: tuple[float, float], extra: str = "") -> str:
    return f"/api/locate?lon={point[0]:.7f}&lat={point[1]:.7f}{extra}"


def _requests(
    accounts, admin_auth, world
) -> list[tuple[str, str, str, dict[str, str], bool | None]]:  # type: ignore[no-untyped-def]
    """(what, method, url, headers, answered by the fast path: True / False / None either)."""
    tok = world["tokens"]

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    admin = bearer(accounts["admin"].token)
    cookie = {"Cookie": f"gridgov_session={admin_auth['cookie']}"}
    gx, gy = (float(v[0]) for v in wgs84_to_gcj02([INSIDE[0]], [INSIDE[1]]))
    bx, by = (float(v[0]) for v in wgs84_to_bd09([INSIDE[0]], [INSIDE[1]]))
    epsg = gk_zone_epsg(INSIDE[0])
    px, py = (float(v[0]) for v in from_wgs84([INSIDE[0]], [INSIDE[1]], f"EPSG:{epsg}"))
    rows: list[tuple[str, str, str, dict[str, str], bool | None]] = []
    for role, acc in sorted(accounts.items()):
        for where, point in (
            ("own micro-grid", world["own"]),
            ("inside", INSIDE),
            ("village", VILLAGE),
            ("outside", OUTSIDE),
        ):
            # Only roles that may locate, in grids they answer for, are answered below Flask.
            expected: bool | None
            if role in ("department", "camera_feed"):
                expected = False
            elif role == "admin" or where == "own micro-grid":
                expected = True
            elif where in ("village", "outside"):
                expected = False  # not theirs: Flask answers 404
            else:
                expected = None  # the centre's street: both ways are compared all the same
            rows.append((f"{role} {where}", "GET", _q(point), bearer(acc.token), expected))
    rows += [
        ("admin cookie", "GET", _q(INSIDE), cookie, True),
        ("admin cookie and token", "GET", _q(INSIDE), {**admin, **cookie}, True),
        ("nobody", "GET", _q(INSIDE), {}, False),
        ("unknown token", "GET", _q(INSIDE), bearer("not-a-token-of-anyone"), False),
        ("long token", "GET", _q(INSIDE), bearer("x" * 201), False),
        ("empty bearer", "GET", _q(INSIDE), {"Authorization": "Bearer "}, False),
        ("basic auth", "GET", _q(INSIDE), {"Authorization": "Basic YTpi"}, False),
        (
            "basic auth and cookie",
            "GET",
            _q(INSIDE),
            {"Authorization": "Basic YTpi", **cookie},
            False,
        ),
        (
            "lowercase bearer",
            "GET",
            _q(INSIDE),
            {"Authorization": f"bearer {accounts['admin'].token}"},
            True,
        ),
        ("ended token", "GET", _q(INSIDE), bearer(tok["ended"]), False),
        ("expired token", "GET", _q(INSIDE), bearer(tok["expired"]), False),
        ("idle cookie", "GET", _q(INSIDE), {"Cookie": f"gridgov_session={tok['idle']}"}, False),
        (
            "token sent as a cookie",
            "GET",
            _q(INSIDE),
            {"Cookie": f"gridgov_session={tok['token_as_cookie']}"},
            False,
        ),
        ("cookie sent as a token", "GET", _q(INSIDE), bearer(admin_auth["cookie"]), False),
        (
            "read-your-writes cookie",
            "GET",
            _q(INSIDE),
            {**cookie, "Cookie": f"gridgov_session={admin_auth['cookie']}; gg_after_lsn=0/1"},
            False,
        ),
        ("read-your-writes header", "GET", _q(INSIDE), {**admin, "X-After-LSN": "0/1"}, False),
        ("crs wgs84", "GET", _q(INSIDE, "&crs=wgs84"), admin, True),
        ("crs cgcs2000", "GET", _q(INSIDE, "&crs=cgcs2000"), admin, True),
        ("crs EPSG:4490", "GET", _q(INSIDE, "&crs=EPSG:4490"), admin, True),
        ("crs gcj02", "GET", f"/api/locate?lon={gx:.7f}&lat={gy:.7f}&crs=gcj02", admin, True),
        ("crs bd09", "GET", f"/api/locate?lon={bx:.7f}&lat={by:.7f}&crs=bd09", admin, True),
        (
            "crs projected x/y",
            "GET",
            f"/api/locate?x={px:.3f}&y={py:.3f}&crs=EPSG:{epsg}",
            admin,
            True,
        ),
        (
            "crs projected lon/lat names",
            "GET",
            f"/api/locate?lon={px:.3f}&lat={py:.3f}&crs=EPSG:{epsg}",
            admin,
            True,
        ),
        ("unknown crs", "GET", _q(INSIDE, "&crs=EPSG:99999"), admin, False),
        ("crs with a blank", "GET", _q(INSIDE, "&crs=%20wgs84"), admin, False),
        ("lon out of range", "GET", "/api/locate?lon=500&lat=31", admin, False),
        ("lat out of range", "GET", "/api/locate?lon=117&lat=-91", admin, False),
        (
            "projected point out of range",
            "GET",
            f"/api/locate?x=1&y=1&crs=EPSG:{epsg}",
            admin,
            None,
        ),
        ("outside every grid", "GET", _q(OUTSIDE), admin, True),
        ("between grids, tolerance 0", "GET", _q((117.2303, 31.8465), "&tolerance=0"), admin, True),
        ("tolerance 500", "GET", _q(INSIDE, "&tolerance=500"), admin, True),
        ("just outside the grids", "GET", _q(world["edge"]), admin, True),
        ("just outside, tolerance 0", "GET", _q(world["edge"], "&tolerance=0"), admin, True),
        ("just outside, tolerance 5", "GET", _q(world["edge"], "&tolerance=5"), admin, True),
        ("just outside, worker", "GET", _q(world["edge"]), bearer(accounts["worker"].token), None),
        ("tolerance too large", "GET", _q(INSIDE, "&tolerance=501"), admin, False),
        ("tolerance negative", "GET", _q(INSIDE, "&tolerance=-1"), admin, False),
        ("override area by code", "GET", _q(INSIDE, f"&category={AREA_CATEGORY}"), admin, True),
        (
            "override area by name",
            "GET",
            _q(INSIDE, "&category=%E5%8D%A0%E9%81%93%E7%BB%8F%E8%90%A5"),
            admin,
            False,
        ),
        (
            "override area, worker",
            "GET",
            _q(INSIDE, f"&category={AREA_CATEGORY}"),
            bearer(accounts["worker"].token),
            None,
        ),
        ("network category", "GET", _q(VILLAGE, f"&category={NETWORK_CATEGORY}"), admin, True),
        (
            "network category, centre",
            "GET",
            _q(VILLAGE, f"&category={NETWORK_CATEGORY}"),
            bearer(accounts["centre"].token),
            None,
        ),
        ("unknown category", "GET", _q(INSIDE, "&category=nothing"), admin, True),
        ("HEAD", "HEAD", _q(INSIDE), admin, False),
        ("POST", "POST", _q(INSIDE), admin, False),
        ("extra parameter", "GET", _q(INSIDE, "&foo=1"), admin, False),
        ("repeated lon", "GET", _q(INSIDE, "&lon=1"), admin, False),
        ("lon and x", "GET", _q(INSIDE, "&x=1"), admin, False),
        ("lat missing", "GET", "/api/locate?lon=117.23", admin, False),
        ("nothing", "GET", "/api/locate", admin, False),
        ("trailing ampersand", "GET", _q(INSIDE, "&"), admin, False),
        ("exponent", "GET", "/api/locate?lon=1.1723e2&lat=31.82", admin, False),
        ("plus sign", "GET", "/api/locate?lon=%2B117.23&lat=31.82", admin, False),
        ("blank value", "GET", "/api/locate?lon=&lat=31.82", admin, False),
        ("nan", "GET", "/api/locate?lon=nan&lat=31.82", admin, False),
        ("NUL", "GET", "/api/locate?lon=117.23%00&lat=31.82", admin, False),
        ("integers", "GET", "/api/locate?lon=117&lat=32", admin, True),
        ("trailing slash", "GET", "/api/locate/?lon=117.23&lat=31.82", admin, False),
        ("https", "GET", _q(INSIDE), {**admin, "X-Scheme": "https"}, True),
    ]
    return rows


def _normalised(res: Any) -> tuple[int, bytes, list[tuple[str, str]]]:
    headers = [(k, NONCE.sub("'nonce-*'", v)) for k, v in res.headers.items()]
    return res.status_code, res.get_data(), headers


def differences(
    fast_app: Any, slow_app: Any, method: str, url: str, headers: dict[str, str]
) -> list[str]:
    """What differs between the two apps' answers to one request (empty: nothing)."""
    scheme = "https" if headers.pop("X-Scheme", None) == "https" else "http"
    answers = []
    for a in (fast_app, slow_app):
        res = a.test_client(use_cookies=False).open(
            url, method=method, headers=headers, base_url=f"{scheme}://localhost"
        )
        answers.append(_normalised(res))
    (s1, b1, h1), (s2, b2, h2) = answers
    out = []
    if s1 != s2:
        out.append(f"status {s1} != {s2}")
    if b1 != b2:
        out.append(f"body {b1[:300]!r} != {b2[:300]!r}")
    if h1 != h2:
        out.append(f"headers {h1} != {h2}")
    return out


def test_fast_path_answers_exactly_as_flask(apps, world, accounts, admin_auth) -> None:  # type: ignore[no-untyped-def]
    fast, slow = apps
    wrong = []
    answered_fast = 0
    for what, method, url, headers, expected in _requests(accounts, admin_auth, world):
        before = Counting.served
        diff = differences(fast, slow, method, url, dict(headers))
        served = Counting.served > before
        answered_fast += served
        if diff:
            wrong.append(f"{what}: {'; '.join(diff)}")
        if expected is not None and served != expected:
            wrong.append(
                f"{what}: answered {'below' if served else 'by'} Flask, expected otherwise"
            )
    assert not wrong, "\n".join(wrong)
    assert answered_fast >= 20


def test_workers_are_answered_fast_in_their_own_grids_only(apps, accounts, world) -> None:  # type: ignore[no-untyped-def]
    """A worker's point in its own grid is answered below Flask; elsewhere Flask says 404."""
    fast, _ = apps
    client = fast.test_client(use_cookies=False)
    auth = {"Authorization": f"Bearer {accounts['worker'].token}"}
    before = Counting.served
    own = client.get(_q(world["own"]), headers=auth)
    assert own.status_code == 200 and Counting.served == before + 1
    other = client.get(_q(VILLAGE), headers=auth)
    assert other.status_code == 404 and Counting.served == before + 1


def _last_seen_age(engine: Any, session_id: int) -> timedelta:
    """How long ago a session was last used, as a new connection reads it (committed only)."""
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT now() - last_seen_at FROM user_session WHERE id = :i"), {"i": session_id}
        ).scalar_one()


@pytest.mark.parametrize("which", ["fast", "flask"])
def test_a_browser_sessions_last_use_is_committed(apps, world, which) -> None:  # type: ignore[no-untyped-def]
    """A locate from a browser whose last use is over a minute old records its use, below
    Flask and through Flask alike, and the write is committed: it is still there after every
    connection of the app has been closed (an update left in an open transaction, or rolled
    back when its connection goes back to a pool, is lost there, and the session would
    time out while in use)."""
    fast, slow = apps
    app = fast if which == "fast" else slow
    engine, sid = world["engine"], world["ids"]["stale_touch"]
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE user_session SET last_seen_at = now() - interval '5 minutes' WHERE id = :i"
            ),
            {"i": sid},
        )
    assert _last_seen_age(engine, sid) > timedelta(minutes=4)
    before = Counting.served
    res = app.test_client(use_cookies=False).get(
        _q(INSIDE), headers={"Cookie": f"gridgov_session={world['tokens']['stale_touch']}"}
    )
    assert res.status_code == 200
    assert Counting.served == before + (1 if which == "fast" else 0)
    if which == "fast":
        app.wsgi_app.close()  # the server thread's own connection
    app.extensions["gridgov_db"].dispose()  # and every pooled one
    assert _last_seen_age(engine, sid) < timedelta(seconds=30)


def test_with_read_replicas_flask_answers_and_keeps_the_session_alive(  # type: ignore[no-untyped-def]
    database_url, world
) -> None:
    """With read replicas the locate reads where app/replicas.py routes it and the last-use
    update goes to the primary (skipped while it is down): the fast path leaves all of it to
    Flask. The cluster itself stands in for its replica here; tests/test_replicas.py runs a
    real one, primary down included."""
    app = create_app({**_config(database_url, True), "DATABASE_READ_URL": database_url})
    app.wsgi_app = Counting(app, app.wsgi_app.inner)  # type: ignore[attr-defined]
    engine, sid = world["engine"], world["ids"]["stale_touch"]
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE user_session SET last_seen_at = now() - interval '5 minutes' "
                    "WHERE id = :i"
                ),
                {"i": sid},
            )
        before = Counting.served
        res = app.test_client(use_cookies=False).get(
            _q(INSIDE), headers={"Cookie": f"gridgov_session={world['tokens']['stale_touch']}"}
        )
        assert res.status_code == 200 and res.headers["X-Read-From"] == "replica-1"
        assert Counting.served == before
        assert _last_seen_age(engine, sid) < timedelta(seconds=30)
    finally:
        app.wsgi_app.close()  # type: ignore[attr-defined]
        app.extensions["gridgov_db"].dispose()


def test_the_comparison_catches_a_drifting_fast_path(apps, accounts, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The differential check is not blind: a fast path that drops one header, or writes its
    JSON another way, is caught."""
    fast, slow = apps
    from app.api import locate_fast

    auth = {"Authorization": f"Bearer {accounts['admin'].token}"}
    assert differences(fast, slow, "GET", _q(INSIDE), dict(auth)) == []
    real = locate_fast.auth
    dropping = SimpleNamespace(
        SESSION_COOKIE=real.SESSION_COOKIE,
        principal_of_row=real.principal_of_row,
        security_headers=lambda *a: [
            h for h in real.security_headers(*a) if h[0] != "X-Frame-Options"
        ],
    )
    monkeypatch.setattr(locate_fast, "auth", dropping)  # the fast path's headers alone
    assert any("headers" in d for d in differences(fast, slow, "GET", _q(INSIDE), dict(auth)))
    monkeypatch.undo()
    monkeypatch.setattr(fast.json, "sort_keys", False)
    assert any("body" in d for d in differences(fast, slow, "GET", _q(INSIDE), dict(auth)))


def test_the_answers_differ_where_the_table_says_they_should(apps, world, accounts) -> None:  # type: ignore[no-untyped-def]
    """The table's points are where they are meant to be: just outside the grids the nearest
    grid is found within the tolerance and not without it (so a fast path ignoring the
    tolerance would be caught by the comparison)."""
    fast, _ = apps
    client = fast.test_client(use_cookies=False)
    auth = {"Authorization": f"Bearer {accounts['admin'].token}"}
    near = client.get(_q(world["edge"]), headers=auth).get_json()
    none = client.get(_q(world["edge"], "&tolerance=0"), headers=auth).get_json()
    assert near["method"] == "nearest" and none["method"] in ("ancestor", "unassigned")


def test_more_server_threads_than_the_pool_holds_are_all_answered(apps, accounts, world) -> None:  # type: ignore[no-untyped-def]
    """Each server thread keeps a connection for its locates. More threads than the read pool
    holds, each answering a fast locate and then a request Flask answers (which checks out a
    pooled connection of its own), are all answered at once: no thread waits for a connection
    that another thread keeps."""
    fast, _ = apps
    pool = get_pool_capacity(fast)
    count = pool + 2
    gate = threading.Barrier(count, timeout=60)
    auth = {"Authorization": f"Bearer {accounts['admin'].token}"}
    answers: list[tuple[int, int, float]] = []
    failures: list[BaseException] = []

    def one() -> None:
        try:
            client = fast.test_client(use_cookies=False)
            started = time.monotonic()
            before = Counting.served
            mine = client.get(_q(INSIDE), headers=auth)  # below Flask: the thread's connection
            gate.wait()  # every thread now keeps one
            flask = client.get(_q(INSIDE, "&foo=1"), headers=auth)  # Flask: a pooled one
            answers.append((mine.status_code, flask.status_code, time.monotonic() - started))
            assert Counting.served > before
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, failures
    assert [(a, b) for a, b, _ in answers] == [(200, 200)] * count
    slowest = max(s for _, _, s in answers)
    assert slowest < 20, f"a thread waited {slowest:.1f} s for a connection"


@pytest.fixture(scope="module")
def spread(world) -> list[tuple[str, float, float]]:  # type: ignore[no-untyped-def]
    """Points all over the sample, each named: inside a dozen leaf grids and the callers' own,
    on a vertex and in the middle of an edge of each (on the boundary, often shared by two
    grids), a 7 × 7 lattice over all the grids and a margin round them (inside, between and
    outside), and points west of the westernmost vertex at 3, 9, 30 and 300 m (within the
    nearest-grid tolerance and beyond it)."""
    with world["engine"].connect() as conn:
        points = [
            (name, float(x), float(y))
            for name, x, y in conn.execute(
                text("SELECT n, ST_X(p), ST_Y(p) FROM (" + _spread_sql() + ") s"),
                {"own": OWN_MICRO_GRID},
            )
        ]
        box = conn.execute(
            text(
                "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
                "(SELECT ST_Extent(geom) AS e FROM grid WHERE valid_to IS NULL) s"
            )
        ).one()
    x0, y0, x1, y1 = (float(v) for v in box)
    dx, dy = (x1 - x0) * 0.05, (y1 - y0) * 0.05
    for i in range(7):
        for j in range(7):
            x = x0 - dx + (x1 - x0 + 2 * dx) * i / 6
            y = y0 - dy + (y1 - y0 + 2 * dy) * j / 6
            points.append((f"lattice {i},{j}", round(x, 7), round(y, 7)))
    ex, ey = world["edge"]
    for metres in (3, 9, 30, 300):
        # world["edge"] is 0.0001° (about 9 m) west of the westernmost vertex.
        points.append((f"{metres} m west", round(ex + 0.0001 - metres / 94_600, 7), ey))
    return points


def _spread_sql() -> str:
    return """WITH leaves AS (
                  SELECT g.code, ST_GeometryN(g.geom, 1) AS geom FROM grid g
                  WHERE g.valid_to IS NULL AND NOT EXISTS (
                      SELECT 1 FROM grid c WHERE c.parent_id = g.id AND c.valid_to IS NULL)
                  ORDER BY g.code = :own DESC, md5(g.code) LIMIT 13),
              rings AS (SELECT code, ST_ExteriorRing(geom) AS r FROM leaves)
              SELECT 'inside ' || code AS n, ST_PointOnSurface(geom) AS p FROM leaves
              UNION ALL SELECT 'vertex of ' || code, ST_PointN(r, 1) FROM rings
              UNION ALL SELECT 'edge of ' || code, ST_LineInterpolatePoint(
                  ST_MakeLine(ST_PointN(r, 2), ST_PointN(r, 3)), 0.5) FROM rings"""


def _callers(accounts, admin_auth, world) -> dict[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    """Every role's bearer token, and browser cookies of the administrator, the centre and a
    worker."""
    out = {role: {"Authorization": f"Bearer {acc.token}"} for role, acc in accounts.items()}
    out["admin cookie"] = {"Cookie": f"gridgov_session={admin_auth['cookie']}"}
    for role in ("centre", "worker"):
        out[f"{role} cookie"] = {"Cookie": f"gridgov_session={world['tokens'][role + '_cookie']}"}
    return out


def _compare_all(fast, slow, requests) -> tuple[list[str], dict[str, int]]:  # type: ignore[no-untyped-def]
    """Send each (what, caller, url, headers) to both apps: what differed, and how many of
    each caller's requests the fast path answered."""
    wrong: list[str] = []
    served: dict[str, int] = {}
    for what, caller, url, headers in requests:
        before = Counting.served
        diff = differences(fast, slow, "GET", url, dict(headers))
        served[caller] = served.get(caller, 0) + (Counting.served > before)
        if diff:
            wrong.append(f"{what} as {caller}: {'; '.join(diff)}")
    return wrong, served


def test_every_caller_at_points_all_over_the_sample(
    apps, world, accounts, admin_auth, spread
) -> None:  # type: ignore[no-untyped-def]
    fast, slow = apps
    callers = _callers(accounts, admin_auth, world)
    requests = [
        (name, caller, f"/api/locate?lon={x!r}&lat={y!r}", headers)
        for name, x, y in spread
        for caller, headers in callers.items()
    ]
    wrong, served = _compare_all(fast, slow, requests)
    assert not wrong, "\n".join(wrong[:40])
    # Not won by passing everything to Flask: every caller that may locate was answered below
    # it somewhere (in its own grids), the administrator nearly everywhere; the roles that may
    # not locate never were.
    assert served["department"] == served["camera_feed"] == 0
    for caller in callers:
        if caller not in ("department", "camera_feed"):
            assert served[caller] > 0, caller
    assert served["admin"] >= len(spread) * 0.9


def _in_crs(lon: float, lat: float) -> list[tuple[str, str]]:
    """The point in every CRS the locate takes, each under each of its names:
    (crs parameter, query string without it)."""
    wgs = f"lon={lon!r}&lat={lat!r}"
    gx, gy = (float(v[0]) for v in wgs84_to_gcj02([lon], [lat]))
    bx, by = (float(v[0]) for v in wgs84_to_bd09([lon], [lat]))
    out = [
        (name, wgs)
        for name in (
            "wgs84",
            "WGS84",
            "4326",
            "EPSG:4326",
            "epsg:4326",
            "urn:ogc:def:crs:OGC:1.3:CRS84",
            "urn:ogc:def:crs:EPSG::4326",
            "cgcs2000",
            "4490",
            "EPSG:4490",
        )
    ]
    out += [(n, f"lon={gx!r}&lat={gy!r}") for n in ("gcj02", "GCJ-02", "gcj", "amap", "tencent")]
    out += [(n, f"lon={bx!r}&lat={by!r}") for n in ("bd09", "BD-09", "bd09ll", "baidu")]
    for code in (gk_zone_epsg(lon), 3857, 32650):
        px, py = (float(v[0]) for v in from_wgs84([lon], [lat], f"EPSG:{code}"))
        out.append((f"EPSG:{code}", f"x={px:.3f}&y={py:.3f}"))
        out.append((f"EPSG:{code}", f"lon={px:.3f}&lat={py:.3f}"))
    return out


def test_every_crs_under_every_name(apps, world, accounts, admin_auth, spread) -> None:  # type: ignore[no-untyped-def]
    fast, slow = apps
    callers = _callers(accounts, admin_auth, world)
    chosen = {k: callers[k] for k in ("admin", "centre", "worker", "worker cookie", "department")}
    named = {name: (x, y) for name, x, y in spread}
    points = {
        "own micro-grid": world["own"],
        "inside": INSIDE,
        "village": VILLAGE,
        "own vertex": named[f"vertex of {OWN_MICRO_GRID}"],
        "just outside": world["edge"],
    }
    requests = [
        (f"{where} in {crs}", caller, f"/api/locate?{query}&crs={crs}", headers)
        for where, (lon, lat) in points.items()
        for crs, query in _in_crs(lon, lat)
        for caller, headers in chosen.items()
    ]
    wrong, served = _compare_all(fast, slow, requests)
    assert not wrong, "\n".join(wrong[:40])
    assert served["admin"] >= len(requests) / len(chosen) * 0.9
    assert served["worker"] > 0 and served["department"] == 0


BAD_QUERIES = (
    "lon=abc&lat=31.82",
    "lon=117.23.4&lat=31.82",
    "lon=117,23&lat=31.82",
    "lon=%20117.23&lat=31.82",
    "lon=117.23%20&lat=31.82",
    "lon=%EF%BC%91%EF%BC%91%EF%BC%97&lat=31.82",  # full-width digits
    "lon=117.23;lat=31.82",
    "lon=1234567890123&lat=31.82",
    "lon=123456789012&lat=31.82",
    "lon=117.230000000000000001&lat=31.82",
    "lon=-0&lat=-0",
    "lon=180&lat=90",
    "lon=-180&lat=-90",
    "lon=180.0000001&lat=31.82",
    "lon=117.23&lat=90.0000001",
    "lon=inf&lat=31.82",
    "lon=1e400&lat=31.82",
    "lon=117.23&lat=31.82&tolerance=0.0",
    "lon=117.23&lat=31.82&tolerance=500.0",
    "lon=117.23&lat=31.82&tolerance=500.0001",
    "lon=117.23&lat=31.82&tolerance=abc",
    "lon=117.23&lat=31.82&tolerance=",
    "lon=117.23&lat=31.82&crs=",
    "lon=117.23&lat=31.82&crs=EPSG:0",
    "lon=117.23&lat=31.82&crs=EPSG:4326x",
    "lon=117.23&lat=31.82&crs=EPSG:3857",  # degrees read as metres: nowhere
    "lon=117.23&lat=31.82&crs=EPSG:4547",  # likewise, in a Gauss-Krüger zone
    "x=117.23&y=31.82&crs=wgs84",
    "x=500000&y=3500000",
    "lon=117.23&lat=31.82&category=" + "a" * 40,
    "lon=117.23&lat=31.82&category=" + "a" * 41,
    "lon=117.23&lat=31.82&category=%E5%9E%83%E5%9C%BE",
    "lon=117.23&lat=31.82&category=garbage&category=garbage",
    "lon=117.23&lat=31.82&Lon=1",
    "LON=117.23&LAT=31.82",
    "lon=117.23",
    "lat=31.82",
    "x=1",
    "lon=117.23&lat=31.82&x=1&y=2",
    "&lon=117.23&lat=31.82",
    "lon=117.23&&lat=31.82",
    "lon&lat=31.82",
    "=1&lon=117.23&lat=31.82",
)


def test_bad_and_unusual_input(apps, world, accounts, admin_auth) -> None:  # type: ignore[no-untyped-def]
    """Whatever the parameters, the answer is Flask's: its 4xx with the Chinese message where
    they are wrong, its 200 where they are right but unusual."""
    fast, slow = apps
    callers = _callers(accounts, admin_auth, world)
    chosen = {k: callers[k] for k in ("admin", "worker", "admin cookie")}
    requests = [
        (query, caller, f"/api/locate?{query}", headers)
        for query in BAD_QUERIES
        for caller, headers in chosen.items()
    ]
    wrong, _ = _compare_all(fast, slow, requests)
    assert not wrong, "\n".join(wrong[:40])
    client = slow.test_client(use_cookies=False)
    for query in ("lon=abc&lat=31.82", "lon=117.23&lat=31.82&tolerance=501", "lon=500&lat=31"):
        res = client.get(f"/api/locate?{query}", headers=chosen["admin"])
        assert res.status_code == 400, query
        assert re.search(r"[\u4e00-\u9fff]", res.get_data(as_text=True)), query


def test_a_host_the_app_does_not_trust_is_refused_by_flask(database_url, accounts) -> None:  # type: ignore[no-untyped-def]
    """With ``TRUSTED_HOSTS`` set, Flask refuses any other Host header: the fast path leaves
    such an app's locates to it."""
    app = create_app({**_config(database_url, True), "TRUSTED_HOSTS": ["emap.example.org"]})
    app.wsgi_app = Counting(app, app.wsgi_app.inner)  # type: ignore[attr-defined]
    auth = {"Authorization": f"Bearer {accounts['admin'].token}"}
    try:
        before = Counting.served
        client = app.test_client(use_cookies=False)
        assert client.get(_q(INSIDE), headers=auth).status_code == 400
        trusted = client.get(_q(INSIDE), headers=auth, base_url="http://emap.example.org")
        assert trusted.status_code == 200 and Counting.served == before
    finally:
        app.wsgi_app.close()  # type: ignore[attr-defined]
        app.extensions["gridgov_db"].dispose()


def test_a_dead_connection_is_replaced_and_flask_answers_meanwhile(apps, accounts, world) -> None:  # type: ignore[no-untyped-def]
    """The server thread's connection dies (a database restart, an idle timeout): that
    request is answered by Flask, the next one below Flask again on a new connection."""
    fast, slow = apps
    auth = {"Authorization": f"Bearer {accounts['admin'].token}"}
    client = fast.test_client(use_cookies=False)
    expected = slow.test_client(use_cookies=False).get(_q(INSIDE), headers=auth).get_json()
    assert client.get(_q(INSIDE), headers=auth).status_code == 200
    kept = fast.wsgi_app._local.conn  # type: ignore[attr-defined]
    pid = kept.dbapi_connection.info.backend_pid
    with world["engine"].connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:p, 5000)"), {"p": pid}).scalar_one()
    before = Counting.served
    res = client.get(_q(INSIDE), headers=auth)
    assert res.status_code == 200 and res.get_json() == expected
    assert Counting.served == before  # Flask answered this one
    again = client.get(_q(INSIDE), headers=auth)
    assert again.status_code == 200 and again.get_json() == expected
    assert Counting.served == before + 1
    now = fast.wsgi_app._local.conn  # type: ignore[attr-defined]
    assert now is not kept and now.dbapi_connection.info.backend_pid != pid
