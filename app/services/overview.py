"""The 一张图 overview: the figures a centre puts on its big screen, for the caller's grids.

Definitions (``scope``: the caller's grids and everything below them, None: every grid; cases
by the caller's case scope):

- grids by level: current grids of the scope per level;
- households, people: households in the scope and the sum of their head counts;
- workers: distinct people with a chief or worker assignment (not a party member's) in the
  scope, those on duty among them, and the full-time grid workers (``worker_full``) on duty;
  the staffing ratio is full-time workers on duty per 100 households;
- party members: distinct people with a ``party_member`` assignment in the scope, and the
  households of the scope linked to a party member;
- service points: active points in the scope; the 1-km coverage share is the share of the
  scope's households within 1 km (geodesic) of any active point, wherever that point lies;
- cameras: cameras in the scope (and those with video analytics);
- cases: reported today (China time), open (not closed or cancelled), overdue (still waiting
  for handling past the deadline, now), closed this month and closed on time this month
  (reported back by the deadline); satisfaction: the mean rating and the share of 4–5 of the
  cases rated this month;
- the worst five grids: the grids holding the most overdue cases (the case's own grid).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.models.case import CASE_FINAL_STATUSES, sql_list
from app.models.case import CASE_PENDING_STATUSES as PENDING_STATES
from app.models.grid import LEVEL_NAMES
from app.services import coverage

LOCAL_TZ = ZoneInfo("Asia/Shanghai")
COVERAGE_RADIUS_M = 1000.0
TREND_DAYS = 14


def _grid_cond(column: str, scope: frozenset[int] | None) -> tuple[str, dict[str, Any]]:
    if scope is None:
        return "TRUE", {}
    return f"{column} = ANY(CAST(:scope AS integer[]))", {"scope": sorted(scope)}


def _share(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def month_start(now: datetime) -> datetime:
    """The first moment of ``now``'s month in China time."""
    local = now.astimezone(LOCAL_TZ)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def day_start(now: datetime) -> datetime:
    """Midnight of ``now``'s day in China time."""
    return now.astimezone(LOCAL_TZ).replace(hour=0, minute=0, second=0, microsecond=0)


def overview(
    session: Session,
    scope: frozenset[int] | None,
    case_scope: Any,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Return the overview of the grids ``scope`` and the cases ``case_scope`` (a
    ``policy.CaseScope``)."""
    now = now or datetime.now(UTC)
    out: dict[str, Any] = {
        "generated_at": now.isoformat(),
        "scope": "all" if scope is None else "grids",
    }
    out["grids"] = _grids(session, scope)
    out.update(_people(session, scope))
    out["service_points"] = _points(session, scope)
    out["cameras"] = _cameras(session, scope)
    out["cases"] = _cases(session, case_scope, now)
    out["worst_grids"] = _worst(session, case_scope, now)
    out["trend"] = _trend(session, case_scope, now)
    return out


def _grids(session: Session, scope: frozenset[int] | None) -> dict[str, Any]:
    cond, params = _grid_cond("g.id", scope)
    rows = session.execute(
        text(
            f"SELECT g.level, count(*) AS n FROM grid g WHERE g.valid_to IS NULL AND {cond} "
            "GROUP BY g.level ORDER BY g.level"
        ),
        params,
    ).all()
    by_level = [
        {"level": r.level, "name": LEVEL_NAMES.get(r.level, str(r.level)), "count": r.n}
        for r in rows
    ]
    return {"by_level": by_level, "total": sum(r["count"] for r in by_level)}


def _people(session: Session, scope: frozenset[int] | None) -> dict[str, Any]:
    cond, params = _grid_cond("h.grid_id", scope)
    hh = session.execute(
        text(
            "SELECT count(*) AS households, coalesce(sum(h.people), 0) AS people,"
            " count(*) FILTER (WHERE h.linked_member_id IS NOT NULL) AS linked"
            f" FROM household h WHERE {cond}"
        ),
        params,
    ).one()
    acond, aparams = _grid_cond("a.grid_id", scope)
    staff = session.execute(
        text(
            f"""SELECT count(DISTINCT w.id) FILTER (WHERE a.role <> 'party_member') AS workers,
                      count(DISTINCT w.id) FILTER (WHERE a.role <> 'party_member' AND w.on_duty)
                          AS on_duty,
                      count(DISTINCT w.id) FILTER (WHERE a.role = 'worker_full' AND w.on_duty)
                          AS full_time,
                      count(DISTINCT w.id) FILTER (WHERE a.role = 'party_member') AS members
               FROM grid_assignment a JOIN worker w ON w.id = a.worker_id
               JOIN grid g ON g.id = a.grid_id AND g.valid_to IS NULL
               WHERE {acond}"""
        ),
        aparams,
    ).one()
    return {
        "households": {"count": hh.households, "people": int(hh.people)},
        "workers": {
            "count": staff.workers,
            "on_duty": staff.on_duty,
            "full_time_on_duty": staff.full_time,
            # full-time workers on duty per 100 households
            "per_100_households": (
                round(staff.full_time * 100 / hh.households, 2) if hh.households else None
            ),
        },
        "party_members": {"count": staff.members, "linked_households": hh.linked},
    }


def _points(session: Session, scope: frozenset[int] | None) -> dict[str, Any]:
    cond, params = _grid_cond("s.grid_id", scope)
    row = session.execute(
        text(
            "SELECT count(*) FILTER (WHERE s.status = 'active') AS active,"
            " count(*) FILTER (WHERE s.status = 'planned') AS planned"
            f" FROM service_point s WHERE {cond}"
        ),
        params,
    ).one()
    with coverage.CACHE.use(session, radius_m=COVERAGE_RADIUS_M, include_planned=False) as kept:
        hh, model, _stats = kept
        mask = (
            np.ones(hh.ids.size, dtype=bool)
            if scope is None
            else np.isin(hh.grid_id, np.fromiter(scope, dtype=np.int64, count=len(scope)))
        )
        total = int(mask.sum())
        covered = int(model.covered[mask].sum()) if total else 0
    return {
        "active": row.active,
        "planned": row.planned,
        "radius_m": COVERAGE_RADIUS_M,
        "households_covered": covered,
        "covered_share": _share(covered, total),
    }


def _cameras(session: Session, scope: frozenset[int] | None) -> dict[str, Any]:
    cond, params = _grid_cond("c.grid_id", scope)
    row = session.execute(
        text(
            "SELECT count(*) AS n, count(*) FILTER (WHERE c.analytics) AS analytics"
            f" FROM camera c WHERE {cond}"
        ),
        params,
    ).one()
    return {"count": row.n, "analytics": row.analytics}


_PENDING = f"c.status IN {sql_list(PENDING_STATES)}"
_FINAL = sql_list(CASE_FINAL_STATUSES)


def _cases(session: Session, case_scope: Any, now: datetime) -> dict[str, Any]:
    cond, params = case_scope.sql("c")
    row = session.execute(
        text(
            f"""SELECT count(*) FILTER (WHERE c.created_at >= :today) AS today,
                      count(*) FILTER (WHERE c.status NOT IN {_FINAL}) AS open,
                      count(*) FILTER (WHERE {_PENDING} AND c.deadline < :now) AS overdue,
                      count(*) FILTER (WHERE c.status = 'closed' AND c.closed_at >= :month)
                          AS closed_month,
                      count(*) FILTER (WHERE c.status = 'closed' AND c.closed_at >= :month
                                         AND c.resolved_at <= c.deadline) AS closed_on_time_month,
                      avg(c.satisfaction) FILTER (WHERE c.rated_at >= :month) AS satisfaction,
                      count(*) FILTER (WHERE c.satisfaction IS NOT NULL AND c.rated_at >= :month)
                          AS rated,
                      count(*) FILTER (WHERE c.satisfaction >= 4 AND c.rated_at >= :month)
                          AS satisfied
               FROM "case" c WHERE {cond}"""
        ),
        {**params, "now": now, "today": day_start(now), "month": month_start(now)},
    ).one()
    return {
        "today": row.today,
        "open": row.open,
        "overdue": row.overdue,
        "closed_this_month": row.closed_month,
        "closed_on_time_this_month": row.closed_on_time_month,
        "on_time_share_this_month": _share(row.closed_on_time_month, row.closed_month),
        "satisfaction": round(float(row.satisfaction), 2) if row.satisfaction is not None else None,
        "rated_this_month": row.rated,
        "satisfied_share": _share(row.satisfied, row.rated),
    }


def _worst(session: Session, case_scope: Any, now: datetime, n: int = 5) -> list[dict[str, Any]]:
    cond, params = case_scope.sql("c")
    rows = session.execute(
        text(
            f"""SELECT g.id, g.code, g.name, g.level, count(*) AS overdue
                FROM "case" c JOIN grid g ON g.id = c.grid_id
                WHERE {cond} AND {_PENDING} AND c.deadline < :now
                GROUP BY g.id, g.code, g.name, g.level
                ORDER BY count(*) DESC, g.code LIMIT :n"""
        ),
        {**params, "now": now, "n": n},
    ).all()
    return [
        {
            "id": r.id,
            "code": r.code,
            "name": r.name,
            "level": r.level,
            "level_name": LEVEL_NAMES.get(r.level, str(r.level)),
            "overdue": r.overdue,
        }
        for r in rows
    ]


def _trend(session: Session, case_scope: Any, now: datetime) -> list[dict[str, Any]]:
    """Cases reported per day (China time) over the last ``TREND_DAYS`` days, today included."""
    cond, params = case_scope.sql("c")
    first = day_start(now) - timedelta(days=TREND_DAYS - 1)
    rows = session.execute(
        text(
            f"""SELECT (c.created_at AT TIME ZONE 'Asia/Shanghai')::date AS day, count(*) AS n
                FROM "case" c WHERE {cond} AND c.created_at >= :first GROUP BY 1"""
        ),
        {**params, "first": first},
    ).all()
    counts = {r.day: r.n for r in rows}
    days = [(first + timedelta(days=i)).date() for i in range(TREND_DAYS)]
    return [{"day": d.isoformat(), "reported": counts.get(d, 0)} for d in days]
