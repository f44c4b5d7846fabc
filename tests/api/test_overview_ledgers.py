"""The 一张图 overview and the ledgers (台账): figures held to straight SQL, per role's grids.

Every expected figure is computed here from the tables with its own query (the caller's grids
from ``grid_assignment`` / the centre's street), never through the app's services.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from tests.auth.conftest import bearer

CHINA = ZoneInfo("Asia/Shanghai")
SUPERVISOR_ROLES = ("admin", "centre", "grid_chief", "micro_chief")
CENTRE_STREET = "340188001"
OWN_LEAF, OTHER_LEAF = "3401880010010101", "34018810120101"
SECOND_LEAF = "3401880010020101"  # another community of the same street


def _grid(session, code: str) -> int:  # type: ignore[no-untyped-def]
    return session.scalar(
        text("SELECT id FROM grid WHERE code = :c AND valid_to IS NULL"), {"c": code}
    )


def _scope(session, role: str, account) -> list[int] | None:  # type: ignore[no-untyped-def]
    """The grids a role answers for, straight from the tables (None: every grid)."""
    if role == "admin":
        return None
    if role == "centre":
        roots = [_grid(session, CENTRE_STREET)]
    else:
        roots = list(
            session.scalars(
                text("SELECT grid_id FROM grid_assignment WHERE worker_id = :w"),
                {"w": account.worker_id},
            )
        )
    return list(
        session.scalars(
            text(
                """WITH RECURSIVE t AS (SELECT id FROM grid WHERE id = ANY(:r)
                       UNION SELECT c.id FROM grid c JOIN t ON c.parent_id = t.id) SELECT id FROM t"""
            ),
            {"r": roots},
        )
    )


def _point(session, code: str) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    return session.execute(
        text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM grid WHERE code = :c AND valid_to IS NULL) s"
        ),
        {"c": code},
    ).one()


def _report(client, session, code: str, what: str) -> int:  # type: ignore[no-untyped-def]
    lon, lat = _point(session, code)
    res = client.post(
        "/api/cases", json={"x": lon, "y": lat, "category": "garbage", "description": what}
    )
    assert res.status_code == 201, res.get_json()
    return res.get_json()["case"]["id"]


@pytest.fixture()
def cases(client, db_session) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Cases in several states: overdue, closed on time, closed late, rated, elsewhere."""
    now = datetime.now(UTC)
    ids = {
        "overdue_own": _report(client, db_session, OWN_LEAF, "一览超期一"),
        "overdue_own2": _report(client, db_session, OWN_LEAF, "一览超期二"),
        "overdue_second": _report(client, db_session, SECOND_LEAF, "一览超期三"),
        "on_time": _report(client, db_session, OWN_LEAF, "一览按期"),
        "late": _report(client, db_session, SECOND_LEAF, "一览逾期结案"),
        "other": _report(client, db_session, OTHER_LEAF, "一览外镇"),
    }
    sql = 'UPDATE "case" SET status = :s, deadline = :d, resolved_at = :r, closed_at = :cl, satisfaction = :sat, rated_at = :ra WHERE id = :id'
    hour = timedelta(hours=1)
    for name in ("overdue_own", "overdue_own2", "overdue_second", "other"):
        db_session.execute(
            text(sql),
            {
                "s": "dispatched",
                "d": now - hour,
                "r": None,
                "cl": None,
                "sat": None,
                "ra": None,
                "id": ids[name],
            },
        )
    db_session.execute(
        text(sql),
        {
            "s": "closed",
            "d": now + hour,
            "r": now - hour,
            "cl": now,
            "sat": 5,
            "ra": now,
            "id": ids["on_time"],
        },
    )
    db_session.execute(
        text(sql),
        {
            "s": "closed",
            "d": now - 2 * hour,
            "r": now - hour,
            "cl": now,
            "sat": 2,
            "ra": now,
            "id": ids["late"],
        },
    )
    db_session.flush()
    return ids


def _case_cond(role: str, account, scope: list[int] | None) -> tuple[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    if scope is None:
        return "TRUE", {}
    if role == "centre":
        return "c.grid_id = ANY(:sc)", {"sc": scope}
    return "(c.grid_id = ANY(:sc) OR c.assignee_id = :w)", {"sc": scope, "w": account.worker_id}


def _expected(session, role: str, account) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    scope = _scope(session, role, account)
    g = "TRUE" if scope is None else "{col} = ANY(:sc)"
    p = {} if scope is None else {"sc": scope}

    def one(sql: str, col: str) -> Any:
        return session.execute(text(sql.replace("{scope}", g.format(col=col))), p).one()

    levels = session.execute(
        text(
            f"SELECT level, count(*) FROM grid WHERE valid_to IS NULL AND {g.format(col='id')} GROUP BY level ORDER BY level"
        ),
        p,
    ).all()
    hh = one(
        "SELECT count(*), coalesce(sum(people), 0), count(linked_member_id) FROM household WHERE {scope}",
        "grid_id",
    )
    staff = one(
        """SELECT count(DISTINCT w.id) FILTER (WHERE a.role IN ('grid_chief', 'micro_chief', 'worker_full', 'worker_part')),
                  count(DISTINCT w.id) FILTER (WHERE a.role IN ('grid_chief', 'micro_chief', 'worker_full', 'worker_part') AND w.on_duty),
                  count(DISTINCT w.id) FILTER (WHERE a.role = 'worker_full' AND w.on_duty),
                  count(DISTINCT w.id) FILTER (WHERE a.role = 'party_member')
           FROM grid_assignment a JOIN worker w ON w.id = a.worker_id WHERE {scope}""",
        "a.grid_id",
    )
    covered = one(
        """SELECT count(*) FROM household h WHERE {scope} AND EXISTS (SELECT 1 FROM service_point s
               WHERE s.status = 'active' AND ST_DWithin(s.geom::geography, h.geom::geography, 1000))""",
        "h.grid_id",
    )[0]
    points = one(
        "SELECT count(*) FROM service_point WHERE status = 'active' AND {scope}", "grid_id"
    )[0]
    cams = one(
        "SELECT count(*), count(*) FILTER (WHERE analytics) FROM camera WHERE {scope}", "grid_id"
    )
    cond, cp = _case_cond(role, account, scope)
    now = datetime.now(UTC)
    local = now.astimezone(CHINA)
    today = local.replace(hour=0, minute=0, second=0, microsecond=0)
    month = today.replace(day=1)
    c = session.execute(
        text(
            f"""SELECT count(*) FILTER (WHERE created_at >= :today),
                       count(*) FILTER (WHERE status NOT IN ('closed', 'cancelled')),
                       count(*) FILTER (WHERE status IN ('reported', 'dispatched', 'accepted') AND deadline < :now),
                       count(*) FILTER (WHERE status = 'closed' AND closed_at >= :month),
                       count(*) FILTER (WHERE status = 'closed' AND closed_at >= :month AND resolved_at <= deadline),
                       avg(satisfaction) FILTER (WHERE rated_at >= :month)
                FROM "case" c WHERE {cond}"""
        ),
        {**cp, "today": today, "now": now, "month": month},
    ).one()
    worst = session.execute(
        text(
            f"""SELECT c.grid_id, count(*) FROM "case" c JOIN grid g ON g.id = c.grid_id WHERE {cond}
                AND c.status IN ('reported', 'dispatched', 'accepted') AND c.deadline < :now
                GROUP BY c.grid_id, g.code ORDER BY count(*) DESC, g.code LIMIT 5"""
        ),
        {**cp, "now": now},
    ).all()
    return {
        "levels": [(r[0], r[1]) for r in levels],
        "households": hh[0],
        "people": int(hh[1]),
        "linked": hh[2],
        "workers": staff[0],
        "on_duty": staff[1],
        "full_time": staff[2],
        "members": staff[3],
        "covered": covered,
        "points": points,
        "cameras": (cams[0], cams[1]),
        "cases": (c[0], c[1], c[2], c[3], c[4]),
        "satisfaction": None if c[5] is None else round(float(c[5]), 2),
        "worst": [(r[0], r[1]) for r in worst],
    }


@pytest.mark.parametrize("role", SUPERVISOR_ROLES)
def test_overview_figures_match_the_tables_for_each_role(
    role, app, db_session, cases, accounts
) -> None:  # type: ignore[no-untyped-def]
    res = app.test_client().get("/api/overview", headers=bearer(accounts[role]))
    assert res.status_code == 200, res.get_json()
    o = res.get_json()
    want = _expected(db_session, role, accounts[role])
    assert [(lv["level"], lv["count"]) for lv in o["grids"]["by_level"]] == want["levels"]
    assert o["households"] == {"count": want["households"], "people": want["people"]}
    assert o["workers"]["count"] == want["workers"]
    assert o["workers"]["on_duty"] == want["on_duty"]
    assert o["workers"]["full_time_on_duty"] == want["full_time"]
    assert o["workers"]["per_100_households"] == pytest.approx(
        want["full_time"] * 100 / want["households"], abs=0.005
    )
    assert o["party_members"] == {"count": want["members"], "linked_households": want["linked"]}
    assert o["service_points"]["active"] == want["points"]
    assert o["service_points"]["households_covered"] == want["covered"]
    assert o["service_points"]["covered_share"] == pytest.approx(
        want["covered"] / want["households"], abs=1e-4
    )
    assert (o["cameras"]["count"], o["cameras"]["analytics"]) == want["cameras"]
    c = o["cases"]
    assert (
        c["today"],
        c["open"],
        c["overdue"],
        c["closed_this_month"],
        c["closed_on_time_this_month"],
    ) == want["cases"]
    assert c["satisfaction"] == want["satisfaction"]
    assert [(g["id"], g["overdue"]) for g in o["worst_grids"]] == want["worst"]
    # The last fourteen days in China time, today last, with today's reports.
    assert len(o["trend"]) == 14 and o["trend"][-1]["day"] == datetime.now(CHINA).date().isoformat()
    assert o["trend"][-1]["reported"] == c["today"] > 0


def test_overview_is_held_to_the_callers_grids(app, db_session, cases, accounts) -> None:  # type: ignore[no-untyped-def]
    def get(role: str) -> dict:
        return app.test_client().get("/api/overview", headers=bearer(accounts[role])).get_json()

    def where(case: int) -> int:
        return db_session.scalar(text('SELECT grid_id FROM "case" WHERE id = :c'), {"c": case})

    admin, centre, micro = get("admin"), get("centre"), get("micro_chief")
    own, other = where(cases["overdue_own"]), where(cases["other"])
    assert own == where(cases["overdue_own2"])
    # The administrator sees the other town's overdue case; the street's centre does not.
    assert admin["cases"]["overdue"] == centre["cases"]["overdue"] + 1
    assert other in [g["id"] for g in admin["worst_grids"]]
    assert other not in [g["id"] for g in centre["worst_grids"]]
    # The micro-grid chief sees his own micro-grid's two overdue cases at the top, nothing else.
    assert micro["worst_grids"][0] == {**micro["worst_grids"][0], "id": own, "overdue": 2}
    assert (
        micro["households"]["count"] < centre["households"]["count"] < admin["households"]["count"]
    )
    assert min(lv["level"] for lv in micro["grids"]["by_level"]) == 4
    # A worker, a party member, a department may not open it; nobody signed in is asked to.
    for role, status in (("worker", 403), ("party_member", 403), ("department", 403)):
        assert (
            app.test_client().get("/api/overview", headers=bearer(accounts[role])).status_code
            == status
        )
    assert app.test_client().get("/api/overview").status_code == 401


# ---------------------------------------------------------------- ledgers


def _all(client, path: str, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    out, offset = [], 0
    while True:
        res = client.get(
            path, query_string={**params, "limit": 200, "offset": offset}, headers=headers
        )
        assert res.status_code == 200, res.get_json()
        body = res.get_json()
        out.extend(body["items"])
        offset += 200
        if offset >= body["total"]:
            assert len(out) == body["total"]
            return out


def test_household_ledger_pages_sorts_masks_and_is_scoped(app, db_session, accounts) -> None:  # type: ignore[no-untyped-def]
    c = app.test_client()
    worker = accounts["worker"]
    scope = _scope(db_session, "worker", worker)
    want = db_session.scalars(
        text("SELECT id FROM household WHERE grid_id = ANY(:s) ORDER BY people DESC, id DESC"),
        {"s": scope},
    ).all()
    got = _all(c, "/api/ledgers/households", bearer(worker), sort="people", order="desc")
    assert [h["id"] for h in got] == list(want)
    # Pages do not overlap and add up to the whole.
    first = c.get("/api/ledgers/households?limit=7&sort=address", headers=bearer(worker)).get_json()
    second = c.get(
        "/api/ledgers/households?limit=7&offset=7&sort=address", headers=bearer(worker)
    ).get_json()
    assert first["total"] == len(want) and not {h["id"] for h in first["items"]} & {
        h["id"] for h in second["items"]
    }
    # Names and phones masked; the full value only through the reveal call.
    sample = next(h for h in got if h["head_phone"])
    full = db_session.execute(
        text("SELECT head_name, head_phone FROM household WHERE id = :h"), {"h": sample["id"]}
    ).one()
    assert "*" in sample["head_phone"] and sample["head_phone"] != full.head_phone
    assert sample["head_name"] != full.head_name
    revealed = c.post(
        f"/api/households/{sample['id']}/reveal",
        json={"fields": ["head_phone"]},
        headers=bearer(worker),
    )
    assert revealed.get_json()["head_phone"] == full.head_phone
    # A grid outside the worker's is as good as absent.
    other = _grid(db_session, OTHER_LEAF)
    assert c.get(f"/api/ledgers/households?grid={other}", headers=bearer(worker)).status_code == 404
    # A party member sees only the households linked to him.
    member = accounts["party_member"]
    linked = db_session.scalars(
        text("SELECT id FROM household WHERE linked_member_id = :m"), {"m": member.worker_id}
    ).all()
    assert sorted(h["id"] for h in _all(c, "/api/ledgers/households", bearer(member))) == sorted(
        linked
    )


def test_household_ledger_filters_by_tag_only_for_those_responsible(
    app, db_session, accounts
) -> None:  # type: ignore[no-untyped-def]
    c = app.test_client()
    centre = accounts["centre"]
    scope = _scope(db_session, "centre", centre)
    want = db_session.scalars(
        text(
            "SELECT id FROM household WHERE grid_id = ANY(:s) AND 'low_income' = ANY(tags) ORDER BY id"
        ),
        {"s": scope},
    ).all()
    got = _all(c, "/api/ledgers/households", bearer(centre), tag="low_income", sort="id")
    assert [h["id"] for h in got] == list(want) and want
    assert all("低保户" in [t["name"] for t in h["tags"]] for h in got)
    # The administrator runs the system, not the grids: no tags shown, no tag filter.
    admin = bearer(accounts["admin"])
    assert (
        "tags" not in c.get("/api/ledgers/households?limit=3", headers=admin).get_json()["items"][0]
    )
    refused = c.get("/api/ledgers/households?tag=low_income", headers=admin)
    assert refused.status_code == 403 and "标签" in refused.get_json()["error"]["message"]
    bad = c.get("/api/ledgers/households?tag=rich", headers=bearer(centre))
    assert bad.status_code == 400 and bad.get_json()["error"]["param"] == "tag"
    assert (
        c.get("/api/ledgers/households?sort=head_phone", headers=bearer(centre)).status_code == 400
    )


def test_population_ledger_adds_up_by_grid(app, db_session, accounts) -> None:  # type: ignore[no-untyped-def]
    c = app.test_client()
    chief = accounts["grid_chief"]
    scope = _scope(db_session, "grid_chief", chief)
    rows = db_session.execute(
        text(
            """SELECT g.id, count(h.id), coalesce(sum(h.people), 0), count(h.id) FILTER (WHERE 'elderly_alone' = ANY(h.tags))
               FROM grid g LEFT JOIN household h ON h.grid_id IN (
                   WITH RECURSIVE t AS (SELECT g.id AS id UNION ALL SELECT c.id FROM grid c JOIN t ON c.parent_id = t.id
                                        WHERE c.valid_to IS NULL) SELECT id FROM t)
               WHERE g.valid_to IS NULL AND g.level = 4 AND g.id = ANY(:s) GROUP BY g.id"""
        ),
        {"s": scope},
    ).all()
    got = {r["id"]: r for r in _all(c, "/api/ledgers/people", bearer(chief), level=4)}
    assert set(got) == {r[0] for r in rows}
    for gid, n, people, alone in rows:
        assert (got[gid]["households"], got[gid]["people"], got[gid]["tags"]["elderly_alone"]) == (
            n,
            people,
            alone,
        )
    by_people = c.get(
        "/api/ledgers/people?level=4&sort=people&order=desc&limit=3", headers=bearer(chief)
    ).get_json()
    assert [r["people"] for r in by_people["items"]] == sorted((r[2] for r in rows), reverse=True)[
        :3
    ]


def test_worker_ledger_lists_assignments_and_linked_households(app, db_session, accounts) -> None:  # type: ignore[no-untyped-def]
    c = app.test_client()
    centre = accounts["centre"]
    scope = _scope(db_session, "centre", centre)
    want = db_session.execute(
        text(
            """SELECT w.id, (SELECT count(*) FROM household h WHERE h.linked_member_id = w.id AND h.grid_id = ANY(:s))
               FROM worker w WHERE EXISTS (SELECT 1 FROM grid_assignment a WHERE a.worker_id = w.id AND a.grid_id = ANY(:s)
                                          AND a.role = 'party_member')"""
        ),
        {"s": scope},
    ).all()
    got = {w["id"]: w for w in _all(c, "/api/ledgers/workers", bearer(centre), role="party_member")}
    assert set(got) == {r[0] for r in want}
    assert all(got[w]["linked_households"] == n for w, n in want)
    some = next(iter(got.values()))
    assert any(a["role_name"] == "党员联户" for a in some["assignments"])
    phone = db_session.scalar(text("SELECT phone FROM worker WHERE id = :w"), {"w": some["id"]})
    assert phone is None or some["phone"] != phone


def test_point_and_camera_ledgers_hold_the_tables(app, db_session, accounts) -> None:  # type: ignore[no-untyped-def]
    c = app.test_client()
    chief = accounts["grid_chief"]
    scope = _scope(db_session, "grid_chief", chief)
    cams = db_session.scalars(
        text("SELECT code FROM camera WHERE grid_id = ANY(:s) ORDER BY code DESC"), {"s": scope}
    ).all()
    got = _all(c, "/api/ledgers/cameras", bearer(chief), sort="code", order="desc")
    assert [x["code"] for x in got] == list(cams) and cams
    points = db_session.scalar(text("SELECT count(*) FROM service_point"))
    assert (
        c.get("/api/ledgers/service-points", headers=bearer(accounts["admin"])).get_json()["total"]
        == points
    )
    assert (
        c.get("/api/ledgers/service-points?kind=castle", headers=bearer(chief)).status_code == 400
    )


def test_export_takes_the_ledgers_grid_filter(app, db_session, accounts) -> None:  # type: ignore[no-untyped-def]
    c = app.test_client()
    centre = bearer(accounts["centre"])
    grid = _grid(db_session, "34018800100101")
    n = db_session.scalar(
        text(
            """WITH RECURSIVE t AS (SELECT CAST(:g AS integer) AS id UNION ALL SELECT c.id FROM grid c JOIN t ON c.parent_id = t.id)
               SELECT count(*) FROM camera WHERE grid_id IN (SELECT id FROM t)"""
        ),
        {"g": grid},
    )
    res = c.get(f"/api/export/cameras?format=csv&grid={grid}", headers=centre)
    assert res.status_code == 200
    lines = [x for x in res.get_data(as_text=True).splitlines() if x.strip()]
    assert len(lines) == n + 1
    other = _grid(db_session, OTHER_LEAF)
    assert c.get(f"/api/export/cameras?format=csv&grid={other}", headers=centre).status_code == 404


def test_ledger_totals_follow_the_households_without_counting_them(
    app, db_session, accounts
) -> None:  # type: ignore[no-untyped-def]
    """The unfiltered totals come from the households kept per grid: exact after an insert, a
    move and a delete, on every page (even past the last), and the population ledger ordered
    by households pages through the same order as the tables give."""
    c = app.test_client()
    admin, worker = bearer(accounts["admin"]), bearer(accounts["worker"])
    scope = _scope(db_session, "worker", accounts["worker"])

    def totals() -> tuple[int, int, int]:
        every = c.get("/api/ledgers/households?limit=5", headers=admin).get_json()["total"]
        past = c.get("/api/ledgers/households?limit=5&offset=100000", headers=admin).get_json()
        assert past["items"] == []
        mine = c.get("/api/ledgers/households?limit=5&offset=5", headers=worker).get_json()["total"]
        return every, past["total"], mine

    def counted() -> tuple[int, int, int]:
        every = db_session.scalar(text("SELECT count(*) FROM household"))
        mine = db_session.scalar(
            text("SELECT count(*) FROM household WHERE grid_id = ANY(:s)"), {"s": scope}
        )
        return every, every, mine

    assert totals() == counted()
    own, other = _grid(db_session, OWN_LEAF), _grid(db_session, OTHER_LEAF)
    hid = db_session.scalar(
        text(
            """INSERT INTO household (geom, address, people, grid_id)
               VALUES (ST_SetSRID(ST_MakePoint(117.2287, 31.8149), 4326), '台账测试1号', 3, :g) RETURNING id"""
        ),
        {"g": own},
    )
    assert totals() == counted()
    db_session.execute(
        text("UPDATE household SET grid_id = :g WHERE id = :h"), {"g": other, "h": hid}
    )
    assert totals() == counted()
    db_session.execute(text("DELETE FROM household WHERE id = :h"), {"h": hid})
    assert totals() == counted()
    # By households, most first, in pages of seven: the order of the tables.
    want = [
        r.id
        for r in db_session.execute(
            text(
                """WITH RECURSIVE d AS (SELECT id AS top, id FROM grid WHERE level = 3 AND valid_to IS NULL
                                        UNION ALL SELECT d.top, c.id FROM grid c JOIN d ON c.parent_id = d.id
                                        WHERE c.valid_to IS NULL)
                   SELECT d.top AS id, count(h.id) AS n FROM d LEFT JOIN household h ON h.grid_id = d.id
                   GROUP BY d.top ORDER BY n DESC, d.top DESC"""
            )
        )
    ]
    got, offset = [], 0
    while True:
        body = c.get(
            f"/api/ledgers/people?level=3&sort=households&order=desc&limit=7&offset={offset}",
            headers=admin,
        ).get_json()
        assert body["total"] == len(want)
        got += [r["id"] for r in body["items"]]
        offset += 7
        if offset >= body["total"]:
            break
    assert got == want
