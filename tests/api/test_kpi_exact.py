"""KPIs with times injected, against figures worked out by hand: per category and overall, the
from/to window read as China dates, cancelled cases left out, overdue counted against the deadline."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text

# (code, category, status, created, resolved, deadline, satisfaction, solved), times in UTC.
CASES = [
    (
        "SJKPI0000001",
        "garbage",
        "closed",
        "2025-03-01T08:00",
        "2025-03-01T12:00",
        "2025-03-01T16:00",
        5,
        True,
    ),
    (
        "SJKPI0000002",
        "garbage",
        "closed",
        "2025-03-02T08:00",
        "2025-03-03T08:00",
        "2025-03-02T16:00",
        3,
        False,
    ),
    (
        "SJKPI0000003",
        "garbage",
        "dispatched",
        "2025-03-05T00:00",
        None,
        "2025-03-05T08:00",
        None,
        None,
    ),
    (
        "SJKPI0000004",
        "streetlight",
        "resolved",
        "2025-03-10T00:00",
        "2025-03-10T02:00",
        "2025-03-11T00:00",
        None,
        None,
    ),
    (
        "SJKPI0000005",
        "garbage",
        "cancelled",
        "2025-03-12T00:00",
        None,
        "2025-03-12T08:00",
        None,
        None,
    ),
    (
        "SJKPI0000006",
        "garbage",
        "closed",
        "2025-02-27T08:00",
        "2025-02-27T09:00",
        "2025-02-27T16:00",
        1,
        False,
    ),
    # 2025-03-31 23:30 in China: inside a window that ends on March 31 …
    ("SJKPI0000007", "garbage", "reported", "2025-03-31T15:30", None, None, None, None),
    # … and 2025-04-01 00:30 in China: outside it.
    ("SJKPI0000008", "garbage", "reported", "2025-03-31T16:30", None, None, None, None),
]


@pytest.fixture()
def kpi_cases(db_session) -> None:  # type: ignore[no-untyped-def]
    grid = db_session.execute(
        text("SELECT id FROM grid WHERE code = '3401880010010101'")
    ).scalar_one()
    for code, cat, status, created, resolved, deadline, sat, solved in CASES:
        db_session.execute(
            text(
                'INSERT INTO "case" (code, category, source, reported_x, reported_y, reported_crs, geom, grid_id, '
                "status, created_at, resolved_at, deadline, satisfaction, solved) VALUES (:code, :cat, 'patrol', "
                "117.2287, 31.8149, 'wgs84', ST_SetSRID(ST_MakePoint(117.2287, 31.8149), 4326), :g, :status, "
                ":created, :resolved, :deadline, :sat, :solved)"
            ),
            {
                "code": code,
                "cat": cat,
                "g": grid,
                "status": status,
                "created": datetime.fromisoformat(created).replace(tzinfo=UTC),
                "resolved": datetime.fromisoformat(resolved).replace(tzinfo=UTC)
                if resolved
                else None,
                "deadline": datetime.fromisoformat(deadline).replace(tzinfo=UTC)
                if deadline
                else None,
                "sat": sat,
                "solved": solved,
            },
        )


GARBAGE = {  # cases 1, 2, 3 and 7
    "total": 4,
    "closed": 2,
    "closure_rate": 0.5,
    "closed_on_time": 1,
    "on_time_closure_rate": 0.5,
    "avg_handling_hours": 14.0,  # (4 h + 24 h) / 2
    "satisfaction": 4.0,
    "rated": 2,
    "satisfied_rate": 0.5,
    "solved": 1,
    "solved_rate": 0.5,
    "overdue": 1,  # case 3: dispatched, its deadline long past
}
STREETLIGHT = {  # case 4
    "total": 1,
    "closed": 0,
    "closure_rate": 0.0,
    "closed_on_time": 0,
    "on_time_closure_rate": None,
    "avg_handling_hours": 2.0,
    "satisfaction": None,
    "rated": 0,
    "satisfied_rate": None,
    "solved": 0,
    "solved_rate": None,
    "overdue": 0,
}
EVERYTHING = {
    "total": 5,
    "closed": 2,
    "closure_rate": 0.4,
    "closed_on_time": 1,
    "on_time_closure_rate": 0.5,
    "avg_handling_hours": 10.0,  # (4 + 24 + 2) / 3
    "satisfaction": 4.0,
    "rated": 2,
    "satisfied_rate": 0.5,
    "solved": 1,
    "solved_rate": 0.5,
    "overdue": 1,
}


def _items(client, group: str) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    res = client.get(f"/api/cases/kpis?group={group}&from=2025-03-01&to=2025-03-31")
    assert res.status_code == 200, res.get_json()
    return {str(i["key"]): i for i in res.get_json()["items"]}


def test_kpis_per_category_and_overall_match_the_hand_worked_figures(client, kpi_cases) -> None:  # type: ignore[no-untyped-def]
    by_category = _items(client, "category")
    assert set(by_category) == {"garbage", "streetlight"}
    for key, want in (("garbage", GARBAGE), ("streetlight", STREETLIGHT)):
        got = {k: by_category[key][k] for k in want}
        assert got == want, key
    overall = _items(client, "all")["all"]
    assert {k: overall[k] for k in EVERYTHING} == EVERYTHING


def test_the_window_is_read_in_china_time(client, kpi_cases) -> None:  # type: ignore[no-untyped-def]
    # The first of April (China) holds only case 8; March 1 alone holds case 1.
    april = client.get("/api/cases/kpis?group=all&from=2025-04-01&to=2025-04-01").get_json()[
        "items"
    ]
    assert [i["total"] for i in april] == [1]
    first = client.get("/api/cases/kpis?group=all&from=2025-03-01&to=2025-03-01").get_json()[
        "items"
    ]
    assert [(i["total"], i["closed_on_time"]) for i in first] == [(1, 1)]
