"""The sample's case history: every state, category and source, and KPIs that add up.

The KPIs the API serves are recomputed here from the case timelines (``case_event``) alone: a
case's state is that of its last event, its report-back time that of its last ``resolve`` not
undone by a ``reopen``, its rating the one its ``rate`` event recorded.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from app.models.case import CASE_SOURCES, CASE_STATUSES
from app.services import sample_history

TIMELINE_SQL = """
WITH last AS (
    SELECT DISTINCT ON (e.case_id) e.case_id, e.to_status
    FROM case_event e ORDER BY e.case_id, e.at DESC, e.id DESC
),
resolve AS (
    SELECT DISTINCT ON (e.case_id) e.case_id, e.at
    FROM case_event e WHERE e.action = 'resolve' ORDER BY e.case_id, e.at DESC, e.id DESC
),
reopen AS (SELECT case_id, max(at) AS at FROM case_event WHERE action = 'reopen' GROUP BY case_id),
rating AS (
    SELECT e.case_id, (e.details ->> 'satisfaction')::int AS score,
           (e.details ->> 'solved')::boolean AS solved
    FROM case_event e WHERE e.action = 'rate'
)
SELECT c.id, c.category, c.created_at, c.deadline, last.to_status AS state,
       CASE WHEN resolve.at IS NOT NULL AND (reopen.at IS NULL OR reopen.at < resolve.at)
            THEN resolve.at END AS reported_back,
       rating.score, rating.solved
FROM "case" c
JOIN last ON last.case_id = c.id
LEFT JOIN resolve ON resolve.case_id = c.id
LEFT JOIN reopen ON reopen.case_id = c.id
LEFT JOIN rating ON rating.case_id = c.id
"""


def figures(rows, now: datetime) -> dict:  # type: ignore[no-untyped-def]
    rows = [r for r in rows if r.state != "cancelled"]
    closed = [r for r in rows if r.state == "closed"]
    on_time = [r for r in closed if r.reported_back is not None and r.reported_back <= r.deadline]
    hours = [
        (r.reported_back - r.created_at).total_seconds() / 3600 for r in rows if r.reported_back
    ]
    rated = [r for r in rows if r.score is not None]
    answered = [r for r in rows if r.solved is not None]
    return {
        "total": len(rows),
        "closed": len(closed),
        "closed_on_time": len(on_time),
        "avg_handling_hours": round(sum(hours) / len(hours), 2) if hours else None,
        "satisfaction": round(sum(r.score for r in rated) / len(rated), 2) if rated else None,
        "rated": len(rated),
        "satisfied_rate": round(sum(1 for r in rated if r.score >= 4) / len(rated), 4)
        if rated
        else None,
        "solved": sum(1 for r in answered if r.solved),
        "solved_rate": round(sum(1 for r in answered if r.solved) / len(answered), 4)
        if answered
        else None,
        "overdue": sum(
            1
            for r in rows
            if r.state in ("reported", "dispatched", "accepted") and r.deadline < now
        ),
    }


@pytest.fixture()
def history(db_session):  # type: ignore[no-untyped-def]
    before = db_session.scalar(text('SELECT coalesce(max(id), 0) FROM "case"'))
    counts = sample_history.generate(db_session)
    return before, counts


def test_the_history_shows_the_platform_at_work(db_session, history):
    before, _counts = history
    mine = {"first": before}

    def one(sql: str):  # type: ignore[no-untyped-def]
        return db_session.execute(text(sql), mine).all()

    assert {s for (s,) in one('SELECT DISTINCT status FROM "case" WHERE id > :first')} == set(
        CASE_STATUSES
    )
    assert {s for (s,) in one('SELECT DISTINCT source FROM "case" WHERE id > :first')} == set(
        CASE_SOURCES
    )
    categories = {c for (c,) in one("SELECT code FROM case_category WHERE active")}
    assert {
        c for (c,) in one('SELECT DISTINCT category FROM "case" WHERE id > :first')
    } == categories
    (row,) = one(
        """SELECT count(*) FILTER (WHERE status IN ('reported', 'dispatched', 'accepted')
                                  AND deadline < now()) AS overdue,
                  count(*) FILTER (WHERE escalation_level = 1) AS to_chief,
                  count(*) FILTER (WHERE escalation_level = 2) AS to_department,
                  count(*) FILTER (WHERE merged_into_id IS NOT NULL) AS merged,
                  count(*) FILTER (WHERE solved) AS solved,
                  count(*) FILTER (WHERE solved IS FALSE) AS not_solved,
                  min(created_at) AS first, max(created_at) AS last
           FROM "case" WHERE id > :first"""
    )
    assert row.overdue and row.to_chief and row.to_department and row.merged
    assert row.solved and row.not_solved
    assert (row.last - row.first).days >= 60  # a few months of history
    actions = {a for (a,) in one("SELECT DISTINCT action FROM case_event e WHERE case_id > :first")}
    assert {
        "transfer",
        "escalate",
        "return",
        "reopen",
        "merge",
        "rate",
        "close",
        "cancel",
    } <= actions
    # Timelines run forward in time, and nothing happened after now.
    (bad,) = one(
        """SELECT count(*) FROM case_event e JOIN "case" c ON c.id = e.case_id
           WHERE c.id > :first AND (e.at < c.created_at OR e.at > now())"""
    )
    assert bad == (0,)


def test_the_kpis_of_the_history_match_its_timelines(client, db_session, history):
    now = datetime.now(UTC)
    rows = db_session.execute(text(TIMELINE_SQL)).all()
    want = figures(rows, now)
    res = client.get("/api/cases/kpis?group=all")
    assert res.status_code == 200, res.get_json()
    (got,) = res.get_json()["items"]
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=0.011), key
    assert got["closure_rate"] == pytest.approx(want["closed"] / want["total"], abs=1e-4)
    # Per category too.
    per = client.get("/api/cases/kpis?group=category").get_json()["items"]
    assert len(per) == len({r.category for r in rows if r.state != "cancelled"})
    for item in per:
        expected = figures([r for r in rows if r.category == item["key"]], now)
        for key in ("total", "closed", "closed_on_time", "rated", "solved", "overdue"):
            assert item[key] == expected[key], (item["key"], key)


def test_the_history_is_the_same_for_the_same_seed_and_time(db_session):
    now = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    runs = []
    for _ in range(2):
        with db_session.begin_nested() as sp:
            first = db_session.scalar(text('SELECT coalesce(max(id), 0) FROM "case"'))
            sample_history.generate(db_session, now=now, count=30)
            runs.append(
                db_session.execute(
                    text(
                        """SELECT category, source, status, created_at, deadline, satisfaction
                           FROM "case" WHERE id > :f ORDER BY id"""
                    ),
                    {"f": first},
                ).all()
            )
            sp.rollback()
    assert runs[0] == runs[1] and len(runs[0]) == 30
