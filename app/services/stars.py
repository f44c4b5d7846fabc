"""Star ratings (评星定级) of micro-grids and inspections of party-mass service points.

A micro-grid is a current grid of level 4; records of its 片区 (level 5) count for it. For a
quarter (China time), each criterion scores 0–100 (weights and targets are settings):

- ``cases`` 事件办结与满意度: of the cases created in the quarter in the grid (not cancelled), the
  share closed; when some were rated, the mean of that share and the mean satisfaction / 5. No
  case: 100.
- ``visits`` 走访按时率: households visited in the quarter / households (季遍访). No household: 100.
- ``member_points`` 党员积分: the approved points of the quarter of the grid's party members,
  averaged per member, against ``member_points_target`` (capped at 100). No member: 0.
- ``events`` 活动开展: the days on which the grid's households took part (entries under
  ``participation_rules``), against ``events_target`` (capped at 100).

The score is the weighted mean (one decimal); the computed stars are the number of thresholds
(``star_thresholds``, one to five stars) it reaches. A chief's adjustment (−2…+2, with a reason,
the latest counts) moves the stars within 0–5 while the quarter is open. Closing a quarter
(``close_quarter``) runs the automatic points first, then freezes every micro-grid's rating with
the settings used (``star_quarter``, ``star_rating``): a closed quarter's ratings never change and
no entry dated in it is accepted. The allowance export lists, per micro-grid of a closed quarter,
its chiefs and workers with stars × ``allowance_per_star`` of their role.

A service point's inspection scores 硬件完善、组织健全、工作规范、作用明显 0–25 each; its stars are the
thresholds of ``service_point_thresholds`` the total reaches.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.errors import BadParameter, Conflict, NotFound, ValidationFailed
from app.services import csv_safe, photos
from app.services import points_auto as auto
from app.services.points import china_time, sort_memory, today

ROLE_ZH = {
    "grid_chief": "网格长",
    "micro_chief": "微网格长",
    "worker_full": "专职网格员",
    "worker_part": "兼职网格员",
}
CLOSE_LOCK = 7329  # pg_advisory_xact_lock(CLOSE_LOCK, 0): a quarter close against adjustments
SERVICE_CRITERIA = {
    "hardware": "硬件完善",
    "organisation": "组织健全",
    "norms": "工作规范",
    "effect": "作用明显",
}

_SCORES_SQL = """
WITH micro AS (SELECT id, code, name FROM grid WHERE level = 4 AND valid_to IS NULL
                 AND (:all OR id = ANY(CAST(:scope AS integer[])))),
     cg AS (SELECT g.id, CASE WHEN g.level = 5 THEN g.parent_id ELSE g.id END AS mid
              FROM grid g WHERE g.level >= 4),
     cs AS (SELECT cg.mid, COUNT(*) AS n, COUNT(*) FILTER (WHERE c.status = 'closed') AS closed,
                   AVG(c.satisfaction) AS sat
              FROM "case" c JOIN cg ON cg.id = c.grid_id
             WHERE c.created_at >= :t0 AND c.created_at < :t1 AND c.status <> 'cancelled'
             GROUP BY cg.mid),
     vs AS (SELECT DISTINCT household_id FROM visit WHERE visited_at >= :t0 AND visited_at < :t1),
     hh AS (SELECT cg.mid, COUNT(*) AS n, COUNT(vs.household_id) AS visited
              FROM household h JOIN cg ON cg.id = h.grid_id
              LEFT JOIN vs ON vs.household_id = h.id GROUP BY cg.mid),
     mp AS (SELECT cg.mid, COUNT(DISTINCT a.worker_id) AS members,
                   COALESCE(SUM(t.pts), 0) AS pts
              FROM grid_assignment a JOIN cg ON cg.id = a.grid_id
              LEFT JOIN (SELECT e.member_id, SUM(COALESCE(e.points, r.points)) AS pts
                           FROM point_entry e JOIN point_rule r ON r.id = e.rule_id
                          WHERE e.status = 'approved' AND e.occurred_on >= :d0 AND e.occurred_on < :d1
                          GROUP BY e.member_id) t ON t.member_id = a.worker_id
             WHERE a.role = 'party_member' GROUP BY cg.mid),
     ev AS (SELECT d.mid, COUNT(*) AS days
              FROM (SELECT DISTINCT cg.mid, e.occurred_on
                      FROM household_point_entry e JOIN point_rule r ON r.id = e.rule_id
                      JOIN household h ON h.id = e.household_id JOIN cg ON cg.id = h.grid_id
                     WHERE r.code = ANY(:part) AND e.occurred_on >= :d0 AND e.occurred_on < :d1) d
             GROUP BY d.mid)
SELECT m.id, m.code, m.name,
       COALESCE(cs.n, 0) AS cases, COALESCE(cs.closed, 0) AS closed, cs.sat,
       COALESCE(hh.n, 0) AS households, COALESCE(hh.visited, 0) AS visited,
       COALESCE(mp.members, 0) AS members, COALESCE(mp.pts, 0) AS member_points,
       COALESCE(ev.days, 0) AS event_days
  FROM micro m LEFT JOIN cs ON cs.mid = m.id LEFT JOIN hh ON hh.mid = m.id
  LEFT JOIN mp ON mp.mid = m.id LEFT JOIN ev ON ev.mid = m.id
"""


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def criterion_scores(r: Any, settings: dict[str, Any]) -> dict[str, float]:
    """The four criteria of one grid's figures (definitions in the module's docstring)."""
    if r.cases:
        closure = 100.0 * r.closed / r.cases
        cases = closure if r.sat is None else (closure + float(r.sat) / 5 * 100) / 2
    else:
        cases = 100.0
    visits = 100.0 * r.visited / r.households if r.households else 100.0
    if r.members:
        avg = float(r.member_points) / r.members
        member_points = max(0.0, min(100.0, 100.0 * avg / settings["member_points_target"]))
    else:
        member_points = 0.0
    events = min(100.0, 100.0 * r.event_days / settings["events_target"])
    return {
        "cases": round(cases, 1),
        "visits": round(visits, 1),
        "member_points": round(member_points, 1),
        "events": round(events, 1),
    }


def weighted(scores: dict[str, float], weights: dict[str, float]) -> float:
    total = sum(weights.get(k, 0) for k in scores)
    if total <= 0:
        return 0.0
    return round(sum(scores[k] * weights.get(k, 0) for k in scores) / total, 1)


def stars_of(score: float, thresholds: list[float]) -> int:
    return sum(1 for t in thresholds if score >= t)


def _latest_adjustments(session: Session, quarter: str) -> dict[int, Any]:
    rows = session.execute(
        text(
            """SELECT DISTINCT ON (a.grid_id) a.grid_id, a.delta, a.reason, a.created_at, u.username
                 FROM star_adjustment a LEFT JOIN app_user u ON u.id = a.created_by
                WHERE a.quarter = :q ORDER BY a.grid_id, a.id DESC"""
        ),
        {"q": quarter},
    ).all()
    return {r.grid_id: r for r in rows}


def compute(
    session: Session, scope: frozenset[int] | None, quarter: str | None, settings: dict[str, Any]
) -> tuple[str, list[dict[str, Any]]]:
    """Every micro-grid's live rating of the quarter within ``scope``, best first."""
    label, t0, t1, d0, d1 = auto.quarter_bounds_utc(quarter)
    sort_memory(session)
    rows = session.execute(
        text(_SCORES_SQL),
        {
            "all": scope is None,
            "scope": sorted(scope or ()),
            "t0": t0,
            "t1": t1,
            "d0": d0,
            "d1": d1,
            "part": settings["participation_rules"],
        },
    ).all()
    adjustments = _latest_adjustments(session, label)
    items = []
    for r in rows:
        scores = criterion_scores(r, settings)
        score = weighted(scores, settings["star_weights"])
        computed = stars_of(score, settings["star_thresholds"])
        adj = adjustments.get(r.id)
        delta = adj.delta if adj else 0
        items.append(
            {
                "grid_id": r.id,
                "code": r.code,
                "name": r.name,
                "scores": scores,
                "score": score,
                "computed_stars": computed,
                "adjustment": delta,
                "adjustment_reason": adj.reason if adj else None,
                "stars": max(0, min(5, computed + delta)),
            }
        )
    _rank(items)
    return label, items


def _rank(items: list[dict[str, Any]]) -> None:
    items.sort(key=lambda i: (-i["stars"], -i["score"], i["code"]))
    prev, rank = None, 0
    for n, item in enumerate(items, start=1):
        key = (item["stars"], item["score"])
        if key != prev:
            rank, prev = n, key
        item["rank"] = rank


def closed_quarter(session: Session, quarter: str) -> Any:
    return session.execute(
        text(
            """SELECT q.quarter, q.settings, q.closed_at, u.username FROM star_quarter q
                 LEFT JOIN app_user u ON u.id = q.closed_by WHERE q.quarter = :q"""
        ),
        {"q": quarter},
    ).first()


def ratings(session: Session, scope: frozenset[int] | None, quarter: str | None) -> dict[str, Any]:
    """The quarter's ratings: frozen when it is closed, computed live (a preview) otherwise."""
    label = auto.parse_quarter(quarter)[0]
    closed = closed_quarter(session, label)
    if closed is None:
        settings = auto.get_settings(session)
        _, items = compute(session, scope, label, settings)
    else:
        settings = closed.settings
        rows = session.execute(
            text(
                """SELECT s.grid_id, g.code, g.name, s.scores, s.score, s.computed_stars, s.adjustment,
                          s.adjustment_reason, s.stars
                     FROM star_rating s JOIN grid g ON g.id = s.grid_id
                    WHERE s.quarter = :q AND (:all OR s.grid_id = ANY(CAST(:scope AS integer[])))"""
            ),
            {"q": label, "all": scope is None, "scope": sorted(scope or ())},
        ).mappings()
        items = [dict(r) for r in rows]
        _rank(items)
    return {
        "quarter": label,
        "closed": closed is not None,
        "closed_at": china_time(closed.closed_at) if closed else None,
        "closed_by": closed.username if closed else None,
        "criteria": auto.CRITERIA,
        "weights": settings["star_weights"],
        "thresholds": settings["star_thresholds"],
        "count": len(items),
        "items": items,
    }


def adjust(
    session: Session, grid_id: int, data: dict[str, Any], *, user_id: int | None
) -> dict[str, Any]:
    """A chief's adjustment of a micro-grid's stars in an open quarter; the reason is required."""
    quarter = data.get("quarter")
    if quarter is not None and not isinstance(quarter, str):
        raise BadParameter("quarter", "季度（quarter）须形如 2026Q4")
    label, start, _ = auto.parse_quarter(quarter)
    if start > today():
        raise ValidationFailed(f"{label} 季度尚未开始 / quarter not started", param="quarter")
    delta = data.get("delta")
    if isinstance(delta, bool) or not isinstance(delta, int) or not -2 <= delta <= 2:
        raise BadParameter("delta", "调整星数（delta）须为 -2 到 2 的整数")
    reason = data.get("reason")
    if not isinstance(reason, str) or len(reason.strip()) < 2 or len(reason) > 500:
        raise BadParameter("reason", "调整须写明理由（reason，2–500 个字符）")
    level = session.scalar(
        text("SELECT level FROM grid WHERE id = :g AND valid_to IS NULL"), {"g": grid_id}
    )
    if level != 4:
        raise NotFound(f"微网格 {grid_id} 不存在 / micro-grid {grid_id} not found")
    # shared with other adjustments, exclusive with a quarter close (which takes it alone)
    session.execute(text("SELECT pg_advisory_xact_lock_shared(:k, 0)"), {"k": CLOSE_LOCK})
    if closed_quarter(session, label) is not None:
        raise Conflict(f"{label} 季度已考核关闭，星级不能再调整 / quarter {label} is closed")
    row = session.execute(
        text(
            """INSERT INTO star_adjustment (grid_id, quarter, delta, reason, created_by)
               VALUES (:g, :q, :d, :r, :u) RETURNING id, created_at"""
        ),
        {"g": grid_id, "q": label, "d": delta, "r": reason.strip(), "u": user_id},
    ).one()
    return {
        "id": row.id,
        "grid_id": grid_id,
        "quarter": label,
        "delta": delta,
        "reason": reason.strip(),
        "at": china_time(row.created_at),
    }


def close_quarter(session: Session, quarter: Any, *, user_id: int | None) -> dict[str, Any]:
    """Run the automatic points, then freeze every micro-grid's rating of the quarter."""
    if quarter is not None and not isinstance(quarter, str):
        raise BadParameter("quarter", "季度（quarter）须形如 2026Q4")
    label, start, _ = auto.parse_quarter(quarter)
    if start > today():
        raise ValidationFailed(
            f"{label} 季度尚未开始，不能关闭 / quarter not started", param="quarter"
        )
    session.execute(text("SELECT pg_advisory_xact_lock(:k, 0)"), {"k": CLOSE_LOCK})
    if closed_quarter(session, label) is not None:
        raise Conflict(f"{label} 季度已关闭 / quarter {label} is already closed")
    made = auto.sync(session)
    settings = auto.get_settings(session)
    _, items = compute(session, None, label, settings)
    session.execute(
        text(
            "INSERT INTO star_quarter (quarter, settings, closed_by) VALUES (:q, CAST(:s AS jsonb), :u)"
        ),
        {"q": label, "s": _json(settings), "u": user_id},
    )
    if items:
        session.execute(
            text(
                """INSERT INTO star_rating (grid_id, quarter, scores, score, computed_stars, adjustment,
                                            adjustment_reason, stars)
                   SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x(
                       grid_id int, quarter varchar, scores jsonb, score float, computed_stars smallint,
                       adjustment smallint, adjustment_reason text, stars smallint)"""
            ),
            {
                "rows": _json(
                    [
                        {
                            "grid_id": i["grid_id"],
                            "quarter": label,
                            "scores": i["scores"],
                            "score": i["score"],
                            "computed_stars": i["computed_stars"],
                            "adjustment": i["adjustment"],
                            "adjustment_reason": i["adjustment_reason"],
                            "stars": i["stars"],
                        }
                        for i in items
                    ]
                )
            },
        )
    return {"quarter": label, "grids": len(items), "automatic_entries": made}


def history(session: Session, grid_id: int) -> dict[str, Any]:
    """A micro-grid's frozen ratings, newest quarter first, and every adjustment made."""
    grid = session.execute(
        text("SELECT id, code, name FROM grid WHERE id = :g"), {"g": grid_id}
    ).first()
    if grid is None:
        raise NotFound(f"网格 {grid_id} 不存在 / grid {grid_id} not found")
    rows = session.execute(
        text(
            """SELECT quarter, scores, score, computed_stars, adjustment, adjustment_reason, stars
                 FROM star_rating WHERE grid_id = :g ORDER BY quarter DESC"""
        ),
        {"g": grid_id},
    ).mappings()
    adjustments = session.execute(
        text(
            """SELECT a.quarter, a.delta, a.reason, a.created_at, u.username FROM star_adjustment a
                 LEFT JOIN app_user u ON u.id = a.created_by WHERE a.grid_id = :g ORDER BY a.id DESC"""
        ),
        {"g": grid_id},
    ).all()
    return {
        "grid": {"id": grid.id, "code": grid.code, "name": grid.name},
        "ratings": [dict(r) for r in rows],
        "adjustments": [
            {
                "quarter": a.quarter,
                "delta": a.delta,
                "reason": a.reason,
                "by": a.username,
                "at": china_time(a.created_at),
            }
            for a in adjustments
        ],
    }


def stars_of_grids(session: Session, grid_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The latest closed quarter's stars of these grids (the notice board and the map)."""
    rows = session.execute(
        text(
            """SELECT DISTINCT ON (grid_id) grid_id, quarter, stars FROM star_rating
                WHERE grid_id = ANY(CAST(:ids AS integer[])) ORDER BY grid_id, quarter DESC"""
        ),
        {"ids": grid_ids},
    ).all()
    return {r.grid_id: {"quarter": r.quarter, "stars": r.stars} for r in rows}


def map_features(session: Session, scope: frozenset[int] | None) -> dict[str, Any]:
    """The micro-grids' latest frozen stars at their label points, as GeoJSON (the e-map layer)."""
    rows = session.execute(
        text(
            """SELECT DISTINCT ON (s.grid_id) s.grid_id, s.quarter, s.stars, g.code, g.name,
                      ST_X(ST_PointOnSurface(g.geom)) AS lon, ST_Y(ST_PointOnSurface(g.geom)) AS lat
                 FROM star_rating s JOIN grid g ON g.id = s.grid_id AND g.valid_to IS NULL
                WHERE :all OR s.grid_id = ANY(CAST(:scope AS integer[]))
                ORDER BY s.grid_id, s.quarter DESC"""
        ),
        {"all": scope is None, "scope": sorted(scope or ())},
    ).all()
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [r.lon, r.lat]},
                "properties": {
                    "grid_id": r.grid_id,
                    "code": r.code,
                    "name": r.name,
                    "quarter": r.quarter,
                    "stars": r.stars,
                },
            }
            for r in rows
        ],
    }


# ---------------------------------------------------------------- allowances

EXPORT_COLUMNS = ["季度", "微网格编码", "微网格", "星级", "姓名", "工号", "岗位", "补贴（元）"]


def allowance_rows(
    session: Session, scope: frozenset[int] | None, quarter: str | None
) -> tuple[str, list[list[Any]]]:
    label = auto.parse_quarter(quarter)[0]
    closed = closed_quarter(session, label)
    if closed is None:
        raise Conflict(f"{label} 季度尚未考核关闭，不能导出补贴 / quarter {label} is not closed")
    per_star = closed.settings.get("allowance_per_star") or {}
    rows = session.execute(
        text(
            """SELECT g.code, g.name, s.stars, w.name AS person, w.code AS number, a.role
                 FROM star_rating s JOIN grid g ON g.id = s.grid_id
                 JOIN grid_assignment a ON a.grid_id = s.grid_id AND a.role = ANY(:roles)
                 JOIN worker w ON w.id = a.worker_id
                WHERE s.quarter = :q AND (:all OR s.grid_id = ANY(CAST(:scope AS integer[])))
                ORDER BY g.code, a.role, w.code"""
        ),
        {
            "q": label,
            "roles": list(auto.ALLOWANCE_ROLES),
            "all": scope is None,
            "scope": sorted(scope or ()),
        },
    ).all()
    out = [
        [
            label,
            r.code,
            r.name,
            r.stars,
            r.person,
            r.number,
            ROLE_ZH.get(r.role, r.role),
            r.stars * float(per_star.get(r.role, 0)),
        ]
        for r in rows
    ]
    return label, out


def allowance_csv(rows: list[list[Any]]) -> bytes:
    return csv_safe.csv_bytes(EXPORT_COLUMNS, rows)


def allowance_xlsx(label: str, rows: list[list[Any]]) -> bytes:
    return csv_safe.xlsx_bytes(EXPORT_COLUMNS, rows, title=f"{label} 评星补贴")


# ---------------------------------------------------------------- service points


def _score(data: dict[str, Any], name: str) -> int:
    raw = data.get(name)
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw.strip())
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= 25:
        raise BadParameter(name, f"{SERVICE_CRITERIA[name]}（{name}）须为 0 到 25 的整数")
    return raw


def rate_service_point(
    session: Session,
    point_id: int,
    data: dict[str, Any],
    images: list[bytes],
    *,
    user_id: int | None,
) -> dict[str, Any]:
    """An inspector's rating of a service point for a quarter, with photos re-encoded."""
    if session.scalar(text("SELECT 1 FROM service_point WHERE id = :p"), {"p": point_id}) is None:
        raise NotFound(f"服务点 {point_id} 不存在 / service point {point_id} not found")
    quarter = data.get("quarter")
    if quarter is not None and not isinstance(quarter, str):
        raise BadParameter("quarter", "季度（quarter）须形如 2026Q4")
    label, start, _ = auto.parse_quarter(quarter or None)
    if start > today():
        raise ValidationFailed(f"{label} 季度尚未开始 / quarter not started", param="quarter")
    scores = {k: _score(data, k) for k in SERVICE_CRITERIA}
    note = data.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > 2000):
        raise BadParameter("note", "检查说明（note）须为不超过 2000 字的文本")
    photos.check_count(len(images))
    cleaned = [photos.clean_image(b) for b in images]
    settings = auto.get_settings(session)
    total = sum(scores.values())
    stars = stars_of(total, settings["service_point_thresholds"])
    row = session.execute(
        text(
            """INSERT INTO service_point_rating (service_point_id, quarter, hardware, organisation,
                                                 norms, effect, stars, note, created_by)
               VALUES (:p, :q, :hardware, :organisation, :norms, :effect, :s, :n, :u)
               RETURNING id, created_at"""
        ),
        {"p": point_id, "q": label, **scores, "s": stars, "n": note, "u": user_id},
    ).one()
    for content, mime, width, height in cleaned:
        session.execute(
            text(
                """INSERT INTO service_point_rating_photo (rating_id, content, mime, width, height)
                   VALUES (:r, :c, :m, :w, :h)"""
            ),
            {"r": row.id, "c": content, "m": mime, "w": width, "h": height},
        )
    return {
        "id": row.id,
        "service_point_id": point_id,
        "quarter": label,
        "scores": scores,
        "total": total,
        "stars": stars,
        "note": note,
        "photos": len(cleaned),
        "at": china_time(row.created_at),
    }


def service_point_ratings(
    session: Session, scope: frozenset[int] | None, quarter: str | None
) -> dict[str, Any]:
    """Each service point's latest inspection of the quarter within ``scope``."""
    label = auto.parse_quarter(quarter)[0]
    rows = session.execute(
        text(
            """SELECT p.id, p.name, p.kind, r.id AS rating_id, r.hardware, r.organisation, r.norms,
                      r.effect, r.stars, r.note, r.created_at, u.username,
                      (SELECT COUNT(*) FROM service_point_rating_photo f WHERE f.rating_id = r.id)::int AS photos
                 FROM service_point p
                 LEFT JOIN LATERAL (SELECT * FROM service_point_rating x WHERE x.service_point_id = p.id
                                       AND x.quarter = :q ORDER BY x.id DESC LIMIT 1) r ON true
                 LEFT JOIN app_user u ON u.id = r.created_by
                WHERE :all OR p.grid_id = ANY(CAST(:scope AS integer[]))
                ORDER BY r.stars DESC NULLS LAST, p.name, p.id"""
        ),
        {"q": label, "all": scope is None, "scope": sorted(scope or ())},
    ).all()
    return {
        "quarter": label,
        "criteria": SERVICE_CRITERIA,
        "items": [
            {
                "id": r.id,
                "name": r.name,
                "kind": r.kind,
                "rating": None
                if r.rating_id is None
                else {
                    "id": r.rating_id,
                    "scores": {k: getattr(r, k) for k in SERVICE_CRITERIA},
                    "total": r.hardware + r.organisation + r.norms + r.effect,
                    "stars": r.stars,
                    "note": r.note,
                    "photos": r.photos,
                    "by": r.username,
                    "at": china_time(r.created_at),
                },
            }
            for r in rows
        ],
    }
