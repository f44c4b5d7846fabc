"""The report path stays three or four statements, and what it keeps per process never goes stale."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import event, text

from app.services import cases as svc
from tests.api.case_helpers import POINT

BODY = {
    "x": POINT[0],
    "y": POINT[1],
    "category": "streetlight",
    "description": "路灯不亮",
    "reporter_contact": "13912345678",
}


# Every request also looks its session up and every change appends its audit entry: one
# statement each, the same for every endpoint — not the report path's own.
NOT_THE_REPORTS = ("FROM user_session s JOIN app_user u", "INSERT INTO audit_log")


def _statements(db_session, fn):  # type: ignore[no-untyped-def]
    """Run ``fn`` and return its result and the SQL statements it sent (no savepoints, no
    session look-up, no audit entry)."""
    engine = db_session.connection().engine
    seen: list[str] = []

    def before(_c, _cursor, statement, _params, _ctx, _many):  # type: ignore[no-untyped-def]
        flat = " ".join(statement.split())
        if "SAVEPOINT" not in statement and not any(x in flat for x in NOT_THE_REPORTS):
            seen.append(flat)

    event.listen(engine, "before_cursor_execute", before)
    try:
        result = fn()
    finally:
        event.remove(engine, "before_cursor_execute", before)
    return result, seen


def test_a_report_is_three_statements_and_a_retry_two(client, db_session) -> None:  # type: ignore[no-untyped-def]
    client.post("/api/cases", json={**BODY, "idempotency_key": "rt-warm"})
    res, seen = _statements(
        db_session, lambda: client.post("/api/cases", json={**BODY, "idempotency_key": "rt-1"})
    )
    assert res.status_code == 201, res.get_json()
    # The key, category, settings and override check; the locate; the write. (No override
    # area has this category, so the locate does not look for one.)
    assert len(seen) == 3, seen
    assert seen[-1].startswith('WITH new_case AS ( INSERT INTO "case"')
    body = res.get_json()
    assert body["case"]["status"] == "dispatched" and body["case"]["assignee"]["id"]
    # The one write stored the report and the dispatch as events, in that order.
    events = svc.case_view(db_session, body["case"]["id"])["events"]
    assert [(e["action"], e["to_status"]) for e in events] == [
        ("report", "reported"),
        ("dispatch", "dispatched"),
    ]
    assert events[1]["details"]["assignee"]["worker_id"] == body["case"]["assignee"]["id"]
    # Its answer lists the earlier report as a likely duplicate, not the new case itself.
    assert [d["code"] for d in body["duplicates"]][:1] != [body["case"]["code"]]
    assert any(d["distance_m"] < 1 for d in body["duplicates"])
    retry, seen = _statements(
        db_session, lambda: client.post("/api/cases", json={**BODY, "idempotency_key": "rt-1"})
    )
    assert retry.status_code == 200 and retry.get_json()["case"]["id"] == body["case"]["id"]
    assert len(seen) == 2, seen  # the key is found at once, then the stored case


def test_settings_and_calendar_changes_reach_the_next_report(client, db_session) -> None:  # type: ignore[no-untyped-def]
    before = client.post("/api/cases", json=BODY).get_json()["case"]  # the calendar is cached
    tz = ZoneInfo("Asia/Shanghai")
    today = datetime.now(tz).date()
    assert (datetime.fromisoformat(before["deadline"]).astimezone(tz).date() - today).days < 10
    # The next 31 days become days off: the next report's 24 working hours start after them.
    db_session.execute(
        text(
            """INSERT INTO work_calendar (day, is_workday, name)
               SELECT d::date, false, '测试休' FROM generate_series(CAST(:a AS date),
                      CAST(:a AS date) + 30, interval '1 day') d
               ON CONFLICT (day) DO UPDATE SET is_workday = false"""
        ),
        {"a": today},
    )
    moved = client.post("/api/cases", json=BODY).get_json()["case"]
    deadline = datetime.fromisoformat(moved["deadline"]).astimezone(tz)
    assert (deadline.date() - today).days >= 31
    # A setting changed through the API counts at once.
    assert client.put("/api/case-settings", json={"duplicate_radius_m": 1}).status_code == 200
    far = {**BODY, "x": POINT[0] + 0.0001}  # about 10 m east
    assert client.post("/api/cases", json=far).get_json()["duplicates"] == []
    assert client.put("/api/case-settings", json={"duplicate_radius_m": 50}).status_code == 200
    assert client.post("/api/cases", json=far).get_json()["duplicates"]


def test_override_areas_drawn_by_code_or_name_route_the_case(client, db_session) -> None:  # type: ignore[no-untyped-def]
    import shapely
    import shapely.geometry

    box = shapely.geometry.mapping(shapely.Point(POINT).buffer(0.0005, quad_segs=2))
    # Drawn on the e-map with the category's Chinese name.
    area = {
        "type": "Feature",
        "geometry": box,
        "properties": {
            "name": "长江路（主干道）",
            "category": "占道经营",
            "department_code": "CG-AH",
        },
    }
    drawn = client.post("/api/override-areas", json=area)
    assert drawn.status_code == 201
    assert drawn.get_json()["properties"]["category"] == "road_occupation"  # stored as the code
    res, seen = _statements(
        db_session,
        lambda: client.post("/api/cases", json={**BODY, "category": "road_occupation"}),
    )
    case = res.get_json()["case"]
    assert len(seen) == 4, seen  # the override areas are looked at
    assert case["department"]["name"] == "安和城管中队" and case["assignee"] is None
    assert case["escalation_level"] == 2 and case["status"] == "dispatched"
    assert res.get_json()["routing"]["override"]["category"] == "road_occupation"
    # Other categories at the same place stay with the grid's worker.
    other = client.post("/api/cases", json=BODY).get_json()["case"]
    assert other["assignee"] is not None and other["department"] is None
    # Both are stored by code now; of two areas at a place the smaller one keeps the case.
    worker_area = {
        "type": "Feature",
        "geometry": shapely.geometry.mapping(shapely.Point(POINT).buffer(0.0002, quad_segs=2)),
        "properties": {"name": "市场", "category": "road_occupation", "worker_id": 6},
    }
    assert client.post("/api/override-areas", json=worker_area).status_code == 201, "area"
    by_code = client.post("/api/cases", json={**BODY, "category": "road_occupation"}).get_json()
    assert by_code["case"]["assignee"]["id"] == 6
    assert by_code["routing"]["override"]["category"] == "road_occupation"
