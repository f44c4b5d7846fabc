"""Visits, their place check, cases reported from them, coverage against hand-worked figures,
the due list, check-ins inside and outside one's grids, and who sees which of them."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from gis.crs import wgs84_to_bd09, wgs84_to_gcj02
from tests.auth.conftest import bearer

OWN_GRID = "34018800100101"  # W00005's grid (tests/accounts.py)


def _as(app, account):  # type: ignore[no-untyped-def]
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = bearer(account)["Authorization"]
    return c


def _households(db_session, worker_id: int) -> list[tuple[int, float, float]]:  # type: ignore[no-untyped-def]
    """The households of the grids a worker works in (as 专职/兼职网格员), by id."""
    return [
        (r.id, r.lon, r.lat)
        for r in db_session.execute(
            text(
                """WITH RECURSIVE t AS (
                       SELECT g.id FROM grid_assignment a JOIN grid g ON g.id = a.grid_id
                       WHERE a.worker_id = :w AND a.role IN ('worker_full', 'worker_part')
                         AND g.valid_to IS NULL
                       UNION SELECT c.id FROM grid c JOIN t ON c.parent_id = t.id WHERE c.valid_to IS NULL)
                   SELECT h.id, ST_X(h.geom) lon, ST_Y(h.geom) lat FROM household h
                   WHERE h.grid_id IN (SELECT id FROM t) ORDER BY h.id"""
            ),
            {"w": worker_id},
        )
    ]


def _metres(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    return 6371008.8 * math.hypot(
        math.radians(lon2 - lon1) * math.cos(math.radians((lat1 + lat2) / 2)),
        math.radians(lat2 - lat1),
    )


def test_a_visit_at_the_household_passes_and_a_retry_is_not_a_duplicate(
    app, db_session, accounts
) -> None:  # type: ignore[no-untyped-def]
    worker = _as(app, accounts["worker"])
    hid, lon, lat = _households(db_session, accounts["worker"].worker_id)[0]
    body = {
        "household_id": hid,
        "kind": "monthly",
        "lon": lon + 0.0002,  # about 20 m east
        "lat": lat,
        "accuracy": 15,
        "visited_at": "2026-12-01T09:30:00+08:00",
        "note": "老人身体尚好",
        "problems": "楼道灯不亮",
        "idempotency_key": "visit-test-1",
    }
    first = worker.post("/api/visits", json=body)
    assert first.status_code == 201, first.get_json()
    visit = first.get_json()["visit"]
    assert visit["place_flag"] is False
    assert 15 < visit["distance_m"] < 25
    assert visit["visited_at"] == "2026-12-01T01:30:00+00:00"  # stored in UTC
    assert visit["visited_at_local"] == "2026-12-01 09:30"
    assert visit["kind_name"] == "月走访"
    again = worker.post("/api/visits", json=body)
    assert again.status_code == 200
    assert again.get_json()["visit"]["id"] == visit["id"]
    count = db_session.scalar(
        text("SELECT count(*) FROM visit WHERE idempotency_key = 'visit-test-1'")
    )
    assert count == 1


def test_a_far_visit_is_kept_and_flagged_with_its_distance(app, db_session, accounts) -> None:  # type: ignore[no-untyped-def]
    worker = _as(app, accounts["worker"])
    hid, lon, lat = _households(db_session, accounts["worker"].worker_id)[0]
    res = worker.post(
        "/api/visits",
        json={
            "household_id": hid,
            "kind": "quarterly",
            "lon": lon + 0.004,
            "lat": lat,
            "accuracy": 30,
        },
    )
    assert res.status_code == 201, res.get_json()
    visit = res.get_json()["visit"]
    expected = _metres(lon, lat, lon + 0.004, lat)
    assert visit["place_flag"] is True
    assert abs(visit["distance_m"] - expected) < 2
    assert "米" in visit["place_message"]
    # Within the limit only thanks to the reported accuracy: 120 m away, ±40 m.
    near = worker.post(
        "/api/visits",
        json={
            "household_id": hid,
            "lon": lon + 120 / (111320 * math.cos(math.radians(lat))),
            "lat": lat,
            "accuracy": 40,
        },
    ).get_json()["visit"]
    assert 115 < near["distance_m"] < 125 and near["place_flag"] is False
    assert near["kind"] == "adhoc"


def test_gcj02_and_bd09_positions_are_taken_as_locate_takes_them(app, db_session, accounts) -> None:  # type: ignore[no-untyped-def]
    worker = _as(app, accounts["worker"])
    hid, lon, lat = _households(db_session, accounts["worker"].worker_id)[1]
    gx, gy = wgs84_to_gcj02(lon, lat)
    assert _metres(lon, lat, float(gx), float(gy)) > 100  # taken as WGS84 it would be flagged
    res = worker.post(
        "/api/visits",
        json={"household_id": hid, "lon": float(gx), "lat": float(gy), "crs": "gcj02"},
    )
    assert res.status_code == 201, res.get_json()
    assert res.get_json()["visit"]["distance_m"] < 1
    assert res.get_json()["visit"]["place_flag"] is False
    bx, by = wgs84_to_bd09(lon, lat)
    res = worker.post(
        "/api/visits", json={"household_id": hid, "lon": float(bx), "lat": float(by), "crs": "bd09"}
    )
    assert res.status_code == 201, res.get_json()
    assert res.get_json()["visit"]["distance_m"] < 1


def test_settings_change_the_key_groups_and_the_distance_limit(
    app, client, db_session, accounts
) -> None:  # type: ignore[no-untyped-def]
    worker = _as(app, accounts["worker"])
    hid, lon, lat = _households(db_session, accounts["worker"].worker_id)[0]
    step = 150 / (111320 * math.cos(math.radians(lat)))  # 150 m east
    assert (
        worker.post(
            "/api/visits", json={"household_id": hid, "lon": lon + step, "lat": lat}
        ).get_json()["visit"]["place_flag"]
        is True
    )
    assert worker.put("/api/visit-settings", json={"max_distance_m": 200}).status_code == 403
    res = client.put("/api/visit-settings", json={"max_distance_m": 200, "key_tags": ["veteran"]})
    assert res.status_code == 200, res.get_json()
    assert res.get_json()["key_tag_names"] == ["退役军人"]
    assert (
        worker.post(
            "/api/visits", json={"household_id": hid, "lon": lon + step, "lat": lat}
        ).get_json()["visit"]["place_flag"]
        is False
    )
    homes = [h for h, _, _ in _households(db_session, accounts["worker"].worker_id)]
    db_session.execute(
        text("UPDATE household SET tags = '{}' WHERE id = ANY(:ids)"), {"ids": homes}
    )
    db_session.execute(
        text("UPDATE household SET tags = ARRAY['veteran'] WHERE id = ANY(:ids)"),
        {"ids": homes[:3]},
    )
    [row] = worker.get("/api/visits/coverage?group=worker").get_json()["rows"]
    assert row["key"]["due"] == 3
    bad = client.put("/api/visit-settings", json={"key_tags": ["vip"]})
    assert bad.status_code == 400 and bad.get_json()["error"]["param"] == "key_tags"
    assert client.put("/api/visit-settings", json={"max_distance_m": -5}).status_code == 400


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"visited_at": "2026-12-01T09:30:00"}, "visited_at"),  # no zone
        ({"kind": "weekly"}, "kind"),
        ({"lon": None}, "lon"),
        ({"accuracy": -3}, "accuracy"),
        ({"household_id": "abc"}, "household_id"),
        ({"household_id": 2**40}, "household_id"),
        ({"kind": ["monthly"]}, "kind"),
        ({"note": "门\x00口"}, "note"),
        ({"lat": 95}, "lat"),
    ],
)
def test_bad_visits_are_refused_naming_the_field(app, db_session, accounts, change, field) -> None:  # type: ignore[no-untyped-def]
    worker = _as(app, accounts["worker"])
    hid, lon, lat = _households(db_session, accounts["worker"].worker_id)[0]
    res = worker.post("/api/visits", json={"household_id": hid, "lon": lon, "lat": lat, **change})
    assert res.status_code == 400, res.get_json()
    assert res.get_json()["error"]["param"] == field


def test_a_household_outside_ones_grids_is_not_found(app, db_session, accounts) -> None:  # type: ignore[no-untyped-def]
    other = db_session.scalar(
        text(
            "SELECT h.id FROM household h JOIN grid g ON g.id = h.grid_id WHERE g.code LIKE '3401881012%' LIMIT 1"
        )
    )
    res = _as(app, accounts["worker"]).post(
        "/api/visits", json={"household_id": other, "lon": 117.2, "lat": 31.8}
    )
    assert res.status_code == 404
    assert (
        db_session.scalar(text("SELECT count(*) FROM visit WHERE household_id = :h"), {"h": other})
        == 0
    )


def test_a_case_reported_from_a_visit_records_its_origin(app, db_session, accounts) -> None:  # type: ignore[no-untyped-def]
    worker = _as(app, accounts["worker"])
    hid, lon, lat = _households(db_session, accounts["worker"].worker_id)[2]
    visit = worker.post(
        "/api/visits",
        json={"household_id": hid, "lon": lon, "lat": lat, "problems": "门前垃圾堆放"},
    ).get_json()["visit"]
    res = worker.post(f"/api/visits/{visit['id']}/case", json={"category": "garbage"})
    assert res.status_code == 201, res.get_json()
    case_id = res.get_json()["case"]["id"]
    assert res.get_json()["visit"]["case"]["id"] == case_id
    row = db_session.execute(
        text('SELECT description, source, ST_X(geom) x, ST_Y(geom) y FROM "case" WHERE id = :c'),
        {"c": case_id},
    ).one()
    assert f"走访记录 {visit['id']}" in row.description and "门前垃圾堆放" in row.description
    assert row.source == "patrol"
    assert abs(row.x - lon) < 1e-6 and abs(row.y - lat) < 1e-6
    again = worker.post(f"/api/visits/{visit['id']}/case", json={"category": "garbage"})
    assert again.status_code == 409
    # In one call with the visit.
    both = worker.post(
        "/api/visits",
        json={
            "household_id": hid,
            "lon": lon,
            "lat": lat,
            "case": {"category": "garbage", "description": "楼道堆物"},
        },
    )
    assert both.status_code == 201, both.get_json()
    assert both.get_json()["visit"]["case"]["id"] == both.get_json()["case"]["id"]


def test_visits_are_seen_by_the_worker_the_chiefs_and_the_centre_only(
    app, db_session, accounts
) -> None:  # type: ignore[no-untyped-def]
    hid, lon, lat = _households(db_session, accounts["worker"].worker_id)[0]
    visit = (
        _as(app, accounts["worker"])
        .post("/api/visits", json={"household_id": hid, "lon": lon, "lat": lat})
        .get_json()["visit"]
    )
    for role, status in [
        ("worker", 200),
        ("micro_chief", 200),
        ("grid_chief", 200),
        ("centre", 200),
        ("admin", 200),
        ("party_member", 404),
        ("department", 403),
    ]:
        res = _as(app, accounts[role]).get(f"/api/visits/{visit['id']}")
        assert res.status_code == status, (role, res.get_json())
        listed = _as(app, accounts[role]).get("/api/visits?limit=1000")
        ids = [v["id"] for v in listed.get_json()["visits"]] if listed.status_code == 200 else []
        assert (visit["id"] in ids) == (status == 200), role
    logged = db_session.scalar(
        text(
            "SELECT count(*) FROM audit_log WHERE kind = 'read_personal' AND object_type = 'visit'"
        )
    )
    assert logged >= 1


AT = "2026-11-20T10:00:00+08:00"


def test_coverage_against_hand_worked_figures(app, db_session, accounts) -> None:  # type: ignore[no-untyped-def]
    wid = accounts["worker"].worker_id
    homes = [h for h, _, _ in _households(db_session, wid)]
    assert len(homes) >= 8
    a, b, c, d, e, f, g = homes[:7]
    db_session.execute(
        text("UPDATE household SET tags = '{}' WHERE id = ANY(:ids)"), {"ids": homes}
    )
    db_session.execute(
        text("UPDATE household SET tags = ARRAY['elderly_alone'] WHERE id = ANY(:ids)"),
        {"ids": [a, b, c, f, g]},
    )
    db_session.execute(text("DELETE FROM visit WHERE household_id = ANY(:ids)"), {"ids": homes})
    for household, at in [
        (a, "2026-11-05T02:00"),  # key, this month
        (b, "2026-10-15T02:00"),  # key, last month: pending, not overdue
        (d, "2026-08-10T02:00"),  # not key, last quarter: pending, not overdue
        (e, "2026-11-25T02:00"),  # after the moment asked for: not counted
        (f, "2026-10-31T16:30"),  # 2026-11-01 00:30 in China: this month
        (g, "2026-10-31T15:30"),  # 2026-10-31 23:30 in China: last month
    ]:
        db_session.execute(
            text(
                "INSERT INTO visit (worker_id, household_id, grid_id, kind, visited_at) "
                "SELECT :w, id, grid_id, 'adhoc', :at FROM household WHERE id = :h"
            ),
            {"w": wid, "h": household, "at": datetime.fromisoformat(at).replace(tzinfo=UTC)},
        )
    n = len(homes)
    res = _as(app, accounts["worker"]).get(
        f"/api/visits/coverage?group=worker&at={AT.replace('+', '%2B')}"
    )
    assert res.status_code == 200, res.get_json()
    body = res.get_json()
    assert (body["month"], body["quarter"]) == ("2026-11", "2026-Q4")
    [row] = body["rows"]  # a worker sees his own row only
    assert row["worker"]["id"] == wid
    assert row["key"] == {"due": 5, "visited": 2, "pending": 3, "overdue": 1, "on_time_share": 0.4}
    assert row["all"] == {
        "due": n,
        "visited": 4,  # a, b, f, g
        "pending": n - 4,
        "overdue": n - 5,  # all but a, b, d, f, g
        "on_time_share": round(4 / n, 4),
    }
    # Per grid of the worker's grid's level, as the centre sees it: the same households.
    level = db_session.scalar(
        text("SELECT level FROM grid WHERE code = :c AND valid_to IS NULL"), {"c": OWN_GRID}
    )
    res = _as(app, accounts["centre"]).get(
        f"/api/visits/coverage?group=grid&level={level}&at={AT.replace('+', '%2B')}"
    )
    rows = {r["grid"]["code"]: r for r in res.get_json()["rows"]}
    assert rows[OWN_GRID]["key"]["visited"] == 2 and rows[OWN_GRID]["all"]["visited"] == 4
    # The due list of the worker at the same moment: c (overdue), b and g (pending) among the key ones.
    due = (
        _as(app, accounts["worker"])
        .get(f"/api/visits/due?at={AT.replace('+', '%2B')}&limit=2000")
        .get_json()
    )
    listed = {i["household"]["id"]: i for i in due["items"]}
    assert a not in listed and f not in listed
    assert listed[c]["overdue"] is True and listed[c]["kind"] == "monthly"
    assert listed[b]["overdue"] is False and listed[g]["overdue"] is False
    assert listed[d]["overdue"] is False and listed[d]["kind"] == "quarterly"
    assert listed[e]["overdue"] is True
    assert list(listed)[0] == c  # overdue key households first
    # A department has no coverage; a grid group needs a level.
    assert _as(app, accounts["department"]).get("/api/visits/coverage").status_code == 403
    assert _as(app, accounts["centre"]).get("/api/visits/coverage?group=grid").status_code == 400


def test_check_in_inside_and_outside_ones_grids(app, db_session, accounts) -> None:  # type: ignore[no-untyped-def]
    worker = _as(app, accounts["worker"])
    _, lon, lat = _households(db_session, accounts["worker"].worker_id)[0]
    inside = worker.post(
        "/api/checkins", json={"lon": lon, "lat": lat, "accuracy": 10, "idempotency_key": "ck-1"}
    )
    assert inside.status_code == 201, inside.get_json()
    assert inside.get_json()["checkin"]["inside"] is True
    assert (
        worker.post(
            "/api/checkins", json={"lon": lon, "lat": lat, "idempotency_key": "ck-1"}
        ).status_code
        == 200
    )
    outside = worker.post("/api/checkins", json={"lon": lon + 0.3, "lat": lat})
    assert outside.status_code == 201
    ck = outside.get_json()["checkin"]
    assert ck["inside"] is False and ck["distance_m"] > 1000 and "已记录" in ck["message"]
    today = datetime.now(UTC).astimezone().date().isoformat()
    day = _as(app, accounts["micro_chief"]).get("/api/checkins").get_json()
    mine = [w for w in day["workers"] if w["worker"]["id"] == accounts["worker"].worker_id]
    assert mine and mine[0]["count"] == 2 and mine[0]["outside"] == 1 and mine[0]["present"] is True
    # The micro-grid chief did not check in: listed as absent.
    chief = [w for w in day["workers"] if w["worker"]["id"] == accounts["micro_chief"].worker_id]
    assert chief and chief[0]["present"] is False and chief[0]["count"] == 0
    assert day["absent"] >= 1 and day["present"] >= 1
    assert _as(app, accounts["party_member"]).get("/api/checkins").get_json()["checkins"] == []
    assert _as(app, accounts["department"]).get("/api/checkins").status_code == 403
    assert (
        _as(app, accounts["admin"]).post("/api/checkins", json={"lon": lon, "lat": lat}).status_code
        == 403
    )
    assert _as(app, accounts["worker"]).get("/api/checkins?date=2026-13-01").status_code == 400
    assert today
