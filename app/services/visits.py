"""Field work: visits to households, the visit plan's coverage, and duty check-ins.

Definitions (every period in China time, the ``timezone`` setting of the case loop):

- A **key household** carries one of the tags of the ``key_tags`` setting (独居老人、低保户 …); it is
  due once a month (月走访). **Every household** is due once a quarter (季遍访).
- A household is **visited** in a period when any visit to it (any kind, by anyone) falls in the
  period up to the moment asked for; **pending** when it is due and not visited yet; **overdue**
  when it has had no visit since the start of the period before (it missed the last period and
  is still waiting). The **on-time share** is visited / due.
- A visit's **place check**: the phone's position against the household's; beyond
  ``max_distance_m`` plus the reported accuracy the visit is kept and flagged (``place_flag``
  with the distance), never refused.
- A **check-in** is inside when the position lies in one of the grids the worker is assigned
  to (PostGIS ``ST_Covers``); outside it is kept with ``inside = false`` and the distance to the
  nearest of them.

Why one module of this size: visits, coverage of the visit plan and check-ins share the period
arithmetic and the definitions above, which every query here restates in SQL; kept together,
a change to a definition is made in one file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.errors import BadParameter, Conflict, NotFound
from app.models.field import VISIT_KINDS, VisitSetting
from app.models.people import SENSITIVE_TAGS
from app.privacy import mask_name
from app.services import cases as case_svc
from app.services import csv_safe, grid_tree, settings_store
from gis.crs import parse_crs, to_wgs84_point
from gis.errors import GisError

TZ = ZoneInfo("Asia/Shanghai")

DEFAULTS: dict[str, Any] = {
    # Tags that put a household in a key group, visited every month.
    "key_tags": ["elderly_alone", "low_income", "disability", "left_behind_child"],
    # How far (m) the phone may be from the household, besides the reported accuracy.
    "max_distance_m": 100,
    # Accuracy (m) above which the reported accuracy no longer widens the limit.
    "max_accuracy_m": 200,
    # Patrols: how near (m) a track must pass for a road or area to count as patrolled.
    "patrol_buffer_m": 30,
    # Patrols: a position reached faster than this (m/s) from the one before is a jump, dropped.
    "patrol_max_speed_mps": 40,
    # Patrols: a position less accurate than this (m) is dropped.
    "patrol_max_accuracy_m": 200,
    # Retention (days): patrol points and tracks; positions of visits and check-ins.
    "track_days": 180,
    "visit_position_days": 365,
}
#: The settings counted in days, and their bounds.
DAY_SETTINGS = ("track_days", "visit_position_days")
MAX_TEXT = 2000


# ---------------------------------------------------------------- settings


def get_settings(session: Session) -> dict[str, Any]:
    return settings_store.read(session, VisitSetting, DEFAULTS)


def update_settings(session: Session, changes: dict[str, Any]) -> dict[str, Any]:
    """Check and store settings; return them all."""
    for key, value in changes.items():
        if key not in DEFAULTS:
            raise BadParameter(key, f"未知设置 '{key}'，可选：{'、'.join(DEFAULTS)}")
        if key == "key_tags":
            if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
                raise BadParameter(key, "key_tags 须为标签代码列表")
            unknown = [t for t in value if t not in SENSITIVE_TAGS]
            if unknown:
                raise BadParameter(
                    key, f"未知标签 {'、'.join(unknown)}，可选：{'、'.join(SENSITIVE_TAGS)}"
                )
        elif key in DAY_SETTINGS:
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 3650:
                raise BadParameter(key, f"{key} 须为 1 到 3650 之间的天数")
        elif isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 5000:
            raise BadParameter(key, f"{key} 须为 0 到 5000 之间的米数")
    settings_store.write(session, VisitSetting, changes)
    return get_settings(session)


def settings_view(settings: dict[str, Any]) -> dict[str, Any]:
    return {
        **settings,
        "key_tag_names": [SENSITIVE_TAGS.get(t, t) for t in settings["key_tags"]],
        "kinds": VISIT_KINDS,
        "periods": {"key": "month", "all": "quarter"},
    }


# ---------------------------------------------------------------- times and periods


def parse_time(value: Any, name: str, now: datetime, *, window: bool = True) -> datetime:
    """Parse a client time with its zone (ISO 8601); none given: now. A time without a zone is
    refused; so (``window``) is a time more than five minutes ahead or 400 days back, and any
    time outside the years 1900–2999."""
    if value is None:
        return now
    if not isinstance(value, str) or not value.strip():
        raise BadParameter(name, f"{name} 须为带时区的 ISO 8601 时间")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadParameter(
            name, f"{name} '{value[:40]}' 不是有效时间（例：2026-12-04T09:30:00+08:00）"
        ) from exc
    if parsed.tzinfo is None:
        raise BadParameter(name, f"{name} 须带时区（例：2026-12-04T09:30:00+08:00）")
    if not 1900 <= parsed.year <= 2999:
        raise BadParameter(name, f"时间超出范围：{name} 须在 1900 年到 2999 年之间")
    parsed = parsed.astimezone(UTC)
    if window and parsed > now + timedelta(minutes=5):
        raise BadParameter(name, f"时间超出范围：{name} 不能晚于当前时间")
    if window and parsed < now - timedelta(days=400):
        raise BadParameter(name, f"时间超出范围：{name} 早于 400 天前")
    return parsed


def local_text(value: datetime | None) -> str | None:
    return value.astimezone(TZ).strftime("%Y-%m-%d %H:%M") if value else None


@dataclass(frozen=True)
class Periods:
    at: datetime
    month: datetime
    prev_month: datetime
    quarter: datetime
    prev_quarter: datetime
    month_label: str
    quarter_label: str


def periods(at: datetime) -> Periods:
    """The current and previous month and quarter (China time) of ``at``, as UTC instants."""
    local = at.astimezone(TZ)
    m0 = datetime(local.year, local.month, 1, tzinfo=TZ)
    pm = datetime(local.year - (local.month == 1), (local.month - 2) % 12 + 1, 1, tzinfo=TZ)
    qm = (local.month - 1) // 3 * 3 + 1
    q0 = datetime(local.year, qm, 1, tzinfo=TZ)
    pq = datetime(local.year - (qm == 1), (qm - 4) % 12 + 1, 1, tzinfo=TZ)
    return Periods(
        at.astimezone(UTC),
        m0.astimezone(UTC),
        pm.astimezone(UTC),
        q0.astimezone(UTC),
        pq.astimezone(UTC),
        f"{local.year}-{local.month:02d}",
        f"{local.year}-Q{(qm - 1) // 3 + 1}",
    )


# ---------------------------------------------------------------- visits


def point_of(x: Any, y: Any, crs: Any, name: str = "lon") -> tuple[float, float, str]:
    """Turn a reported position into WGS84 lon/lat (GCJ-02/BD-09 accepted as locate takes them)."""
    for label, v in (("lon", x), ("lat", y)):
        if v in (None, "") or isinstance(v, bool):
            raise BadParameter(label, f"缺少位置 {label}")
    try:
        fx, fy = float(x), float(y)
    except (TypeError, ValueError) as exc:
        raise BadParameter(name, "位置须为数字") from exc
    if crs is not None and not isinstance(crs, str):
        raise BadParameter("crs", "crs 须为文字")
    # Errors of the CRS helpers keep their words (as locate says them) and name the field.
    try:
        spec = parse_crs(crs)
    except GisError as exc:
        raise type(exc)(exc.message, **{**exc.details, "param": "crs"}) from exc
    try:
        lon, lat = to_wgs84_point(fx, fy, spec)
    except GisError as exc:
        bad = "lat" if spec.kind != "projected" and math.isfinite(fy) and abs(fy) > 90 else "lon"
        raise type(exc)(exc.message, **{**exc.details, "param": bad}) from exc
    return lon, lat, spec.name


def accuracy_of(value: Any) -> float | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        raise BadParameter("accuracy", "accuracy 须为米数")
    try:
        acc = float(value)
    except (TypeError, ValueError) as exc:
        raise BadParameter("accuracy", "accuracy 须为米数") from exc
    if not 0 <= acc <= 100000:
        raise BadParameter("accuracy", "accuracy 须在 0 到 100000 米之间")
    return acc


def text_of(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise BadParameter(name, f"{name} 须为文字")
    if len(value) > MAX_TEXT:
        raise BadParameter(name, f"{name} 超过 {MAX_TEXT} 字")
    if "\x00" in value:
        raise BadParameter(name, f"{name} 含有 NUL 字符 / must not contain NUL characters")
    return value


def key_of(value: Any) -> str | None:
    key = (str(value) if value is not None else "").strip() or None
    if key is not None and len(key) > 80:
        raise BadParameter("idempotency_key", "幂等键超过 80 个字符")
    if key is not None and "\x00" in key:
        raise BadParameter(
            "idempotency_key", "幂等键含有 NUL 字符 / must not contain NUL characters"
        )
    return key


_VISIT_SQL = """
SELECT v.id, v.worker_id, w.name AS worker_name, v.household_id, h.address, h.head_name,
       v.grid_id, g.code AS grid_code, g.name AS grid_name, v.kind, v.visited_at, v.recorded_at,
       ST_X(v.geom) AS lon, ST_Y(v.geom) AS lat, v.accuracy_m, v.distance_m, v.place_flag,
       v.note, v.problems, v.case_id, c.code AS case_code,
       ST_X(h.geom) AS h_lon, ST_Y(h.geom) AS h_lat
FROM visit v JOIN worker w ON w.id = v.worker_id JOIN household h ON h.id = v.household_id
LEFT JOIN grid g ON g.id = v.grid_id LEFT JOIN "case" c ON c.id = v.case_id
"""


def visit_view(r: Any, limit_m: float | None = None) -> dict[str, Any]:
    return {
        "id": r.id,
        "worker": {"id": r.worker_id, "name": r.worker_name},
        "household": {
            "id": r.household_id,
            "address": r.address,
            "head_name": mask_name(r.head_name),
            "lon": r.h_lon,
            "lat": r.h_lat,
        },
        "grid": {"id": r.grid_id, "code": r.grid_code, "name": r.grid_name} if r.grid_id else None,
        "kind": r.kind,
        "kind_name": VISIT_KINDS.get(r.kind, r.kind),
        "visited_at": r.visited_at.isoformat(),
        "visited_at_local": local_text(r.visited_at),
        "recorded_at": r.recorded_at.isoformat() if r.recorded_at else None,
        "position": {"lon": r.lon, "lat": r.lat} if r.lon is not None else None,
        "accuracy_m": r.accuracy_m,
        "distance_m": round(r.distance_m, 1) if r.distance_m is not None else None,
        "place_flag": r.place_flag,
        "place_message": (
            f"距住户 {r.distance_m:.0f} 米，超出允许范围"
            if r.place_flag and r.distance_m is not None
            else None
        ),
        "note": r.note,
        "problems": r.problems,
        "case": {"id": r.case_id, "code": r.case_code} if r.case_id else None,
    }


def get_visit(session: Session, visit_id: int) -> dict[str, Any]:
    row = session.execute(text(_VISIT_SQL + " WHERE v.id = :id"), {"id": visit_id}).first()
    if row is None:
        raise NotFound(f"走访记录 {visit_id} 不存在 / visit {visit_id} not found")
    return visit_view(row)


_INSERT_VISIT = text(
    """
    INSERT INTO visit (worker_id, user_id, household_id, grid_id, kind, visited_at, geom,
                       reported_x, reported_y, reported_crs, accuracy_m, distance_m, place_flag,
                       note, problems, idempotency_key)
    SELECT :worker, :user, h.id, h.grid_id, :kind, :at, p.pt, :rx, :ry, :rcrs, CAST(:acc AS double precision), d.m,
           d.m > :limit + least(coalesce(CAST(:acc AS double precision), 0), :max_acc), :note, :problems, :key
    FROM household h,
         LATERAL (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS pt) p,
         LATERAL (SELECT ST_Distance(p.pt::geography, h.geom::geography) AS m) d
    WHERE h.id = :household
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id
    """
)


def record_visit(
    session: Session,
    data: dict[str, Any],
    *,
    worker_id: int,
    user_id: int | None,
    now: datetime | None = None,
) -> tuple[dict[str, Any], bool]:
    """Store a visit (or, for an idempotency key seen before, answer with the stored one).

    Returns (visit, created). The household's visibility is the caller's check."""
    now = now or datetime.now(UTC)
    key = key_of(data.get("idempotency_key"))
    if key is not None:
        found = session.scalar(text("SELECT id FROM visit WHERE idempotency_key = :k"), {"k": key})
        if found is not None:
            return _own_replay(session, found, worker_id), False
    kind = data.get("kind") or "adhoc"
    if not isinstance(kind, str) or kind not in VISIT_KINDS:
        raise BadParameter(
            "kind", f"走访类型 '{str(kind)[:20]}' 无效，可选：{'、'.join(VISIT_KINDS)}"
        )
    household = data.get("household_id")
    if isinstance(household, bool) or not isinstance(household, int) or not 0 < household < 2**31:
        raise BadParameter("household_id", "须指明住户 household_id（正整数）")
    lon, lat, crs = point_of(data.get("lon"), data.get("lat"), data.get("crs"))
    settings = get_settings(session)
    params = {
        "worker": worker_id,
        "user": user_id,
        "household": household,
        "kind": kind,
        "at": parse_time(data.get("visited_at"), "visited_at", now),
        "lon": lon,
        "lat": lat,
        "rx": float(data["lon"]),
        "ry": float(data["lat"]),
        "rcrs": crs,
        "acc": accuracy_of(data.get("accuracy")),
        "limit": float(settings["max_distance_m"]),
        "max_acc": float(settings["max_accuracy_m"]),
        "note": text_of(data, "note"),
        "problems": text_of(data, "problems"),
        "key": key,
    }
    new_id = session.scalar(_INSERT_VISIT, params)
    if new_id is None:
        if key is None:
            raise NotFound(f"住户 {household} 不存在 / household {household} not found")
        found = session.scalar(text("SELECT id FROM visit WHERE idempotency_key = :k"), {"k": key})
        return _own_replay(session, found, worker_id), False
    return get_visit(session, new_id), True


def _own_replay(session: Session, visit_id: int, worker_id: int) -> dict[str, Any]:
    owner = session.scalar(text("SELECT worker_id FROM visit WHERE id = :id"), {"id": visit_id})
    if owner != worker_id:
        raise Conflict("幂等键已被另一条记录使用 / the idempotency key belongs to another record")
    return get_visit(session, visit_id)


def report_case(
    session: Session,
    visit_id: int,
    data: dict[str, Any],
    *,
    actor: case_svc.Actor,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Report a case at the visited household through the case service; the visit keeps its id
    and the case's description says which visit it came from. A second report is a 409."""
    row = session.execute(
        text(
            """SELECT v.id, v.case_id, v.problems, ST_X(h.geom) AS lon, ST_Y(h.geom) AS lat,
                      h.address FROM visit v JOIN household h ON h.id = v.household_id
               WHERE v.id = :id FOR UPDATE OF v"""
        ),
        {"id": visit_id},
    ).first()
    if row is None:
        raise NotFound(f"走访记录 {visit_id} 不存在 / visit {visit_id} not found")
    if row.case_id is not None:
        raise Conflict(
            f"该走访已上报事件 {row.case_id} / a case was reported from this visit already"
        )
    category = data.get("category")
    if not isinstance(category, str) or not category or len(category) > 40 or "\x00" in category:
        raise BadParameter("category", "须选择事件类别 category")
    described = text_of(data, "description") or row.problems or "走访发现问题"
    description = f"【走访发现 · 走访记录 {visit_id}】{described}"
    result = case_svc.create_case(
        session,
        case_svc.Report(
            x=row.lon,
            y=row.lat,
            category=category,
            source="patrol",
            description=description,
            address=row.address,
            idempotency_key=f"visit-{visit_id}",
        ),
        actor=actor,
        now=now,
    )
    session.execute(
        text("UPDATE visit SET case_id = :c WHERE id = :id"),
        {"c": result["case"]["id"], "id": visit_id},
    )
    return {"visit": get_visit(session, visit_id), "case": result["case"]}


@dataclass(frozen=True)
class VisitFilter:
    worker_id: int | None = None
    household_id: int | None = None
    grid_id: int | None = None
    flagged: bool | None = None
    start: datetime | None = None
    end: datetime | None = None


def list_visits(
    session: Session, scope: tuple[str, dict[str, Any]], f: VisitFilter, *, limit: int, offset: int
) -> dict[str, Any]:
    cond, params = scope
    parts = [cond]
    if f.worker_id is not None:
        parts.append("v.worker_id = :f_worker")
        params["f_worker"] = f.worker_id
    if f.household_id is not None:
        parts.append("v.household_id = :f_household")
        params["f_household"] = f.household_id
    if f.grid_id is not None:
        parts.append("v.grid_id IN " + grid_tree.subtree_in("id = :f_grid"))
        params["f_grid"] = f.grid_id
    if f.flagged is not None:
        parts.append("v.place_flag = :f_flag")
        params["f_flag"] = f.flagged
    if f.start is not None:
        parts.append("v.visited_at >= :f_start")
        params["f_start"] = f.start
    if f.end is not None:
        parts.append("v.visited_at < :f_end")
        params["f_end"] = f.end
    total, rows = page_of(
        session, _VISIT_SQL, "visit v", parts, "v.visited_at DESC, v.id DESC", params, limit, offset
    )
    return {"total": total, "visits": [visit_view(r) for r in rows]}


def page_of(
    session: Session,
    select_sql: str,
    table: str,
    parts: list[str],
    order: str,
    params: dict[str, Any],
    limit: int,
    offset: int,
) -> tuple[int, list[Any]]:
    """One page of a list (``select_sql`` filtered by every condition of ``parts``, in
    ``order``) and how many rows the whole list has (counted over ``table``)."""
    where = " AND ".join(parts)
    total = session.scalar(text(f"SELECT count(*) FROM {table} WHERE {where}"), params)
    rows = session.execute(
        text(f"{select_sql} WHERE {where} ORDER BY {order} LIMIT :lim OFFSET :off"),
        {**params, "lim": limit, "off": offset},
    ).all()
    return int(total or 0), list(rows)


# ---------------------------------------------------------------- plans and coverage


# Each field worker (专职/兼职网格员) of the grids in bounds, with every current grid below them.
_WORKER_GRIDS = grid_tree.descendants_cte(
    "wg",
    """SELECT a.worker_id, g.id FROM grid_assignment a JOIN grid g ON g.id = a.grid_id
       WHERE g.valid_to IS NULL AND a.role IN ('worker_full', 'worker_part')
         AND (:all_w OR a.worker_id = ANY(CAST(:wids AS integer[])))
         AND (:all_g OR a.worker_id = ANY(CAST(:wids AS integer[])) OR g.id = ANY(CAST(:gids AS integer[])))""",
    key="worker_id",
)
_HOUSEHOLD_STATE = """
hs AS (
  SELECT h.id, h.grid_id, (h.tags && CAST(:key_tags AS varchar[])) AS key,
         bool_or(v.visited_at >= :m0) AS in_month,
         bool_or(v.visited_at >= :q0) AS in_quarter,
         bool_or(v.visited_at >= :pm0) AS since_prev_month,
         bool_or(v.visited_at >= :pq0) AS since_prev_quarter,
         max(v.visited_at) AS last_visit
  FROM household h
  LEFT JOIN visit v ON v.household_id = h.id AND v.visited_at >= :pq0 AND v.visited_at <= :at
  WHERE {households}
  GROUP BY h.id
)"""

_FIGURES = """
  count(*) FILTER (WHERE hs.key) AS key_due,
  count(*) FILTER (WHERE hs.key AND hs.in_month) AS key_visited,
  count(*) FILTER (WHERE hs.key AND NOT coalesce(hs.since_prev_month, false)) AS key_overdue,
  count(hs.id) AS all_due,
  count(*) FILTER (WHERE hs.in_quarter) AS all_visited,
  count(*) FILTER (WHERE hs.id IS NOT NULL AND NOT coalesce(hs.since_prev_quarter, false)) AS all_overdue
"""


def _period_params(session: Session, at: datetime) -> tuple[Periods, dict[str, Any]]:
    p = periods(at)
    return p, {
        "at": p.at,
        "m0": p.month,
        "pm0": p.prev_month,
        "q0": p.quarter,
        "pq0": p.prev_quarter,
        "key_tags": list(get_settings(session)["key_tags"]),
    }


def _share(done: int, due: int) -> float | None:
    return round(done / due, 4) if due else None


def _figures(r: Any) -> dict[str, Any]:
    return {
        "key": {
            "due": r.key_due,
            "visited": r.key_visited,
            "pending": r.key_due - r.key_visited,
            "overdue": r.key_overdue,
            "on_time_share": _share(r.key_visited, r.key_due),
        },
        "all": {
            "due": r.all_due,
            "visited": r.all_visited,
            "pending": r.all_due - r.all_visited,
            "overdue": r.all_overdue,
            "on_time_share": _share(r.all_visited, r.all_due),
        },
    }


def coverage(
    session: Session,
    *,
    group: str,
    level: int | None,
    grid_ids: frozenset[int] | None,
    worker_ids: frozenset[int] | None,
    at: datetime,
) -> dict[str, Any]:
    """Visit coverage of the month (key households) and quarter (all households) of ``at``, per
    worker (the households of the grids they work in: 专职/兼职网格员) or per grid of a level.

    ``grid_ids`` (None: every grid) bounds the grids, ``worker_ids`` (None: anyone) the workers.
    """
    per, params = _period_params(session, at)
    if group == "worker":
        params.update({"wids": sorted(worker_ids or []), "all_w": worker_ids is None})
        params.update({"gids": sorted(grid_ids or []), "all_g": grid_ids is None})
        sql = f"""
        WITH {_WORKER_GRIDS},
        {_HOUSEHOLD_STATE.format(households="h.grid_id IN (SELECT id FROM wg)")}
        SELECT w.id, w.code, w.name, {_FIGURES}
        FROM (SELECT DISTINCT worker_id FROM wg) ws JOIN worker w ON w.id = ws.worker_id
        LEFT JOIN (SELECT DISTINCT wg.worker_id, hs.* FROM wg JOIN hs ON hs.grid_id = wg.id) hs
               ON hs.worker_id = w.id
        GROUP BY w.id ORDER BY w.code NULLS LAST, w.id
        """
        rows = session.execute(text(sql), params).all()
        out = [
            {"worker": {"id": r.id, "code": r.code, "name": r.name}, **_figures(r)} for r in rows
        ]
    elif group == "grid":
        if level is None:
            raise BadParameter("level", "按网格统计须给出层级 level（1–5）")
        params.update({"level": level, "gids": sorted(grid_ids or []), "all_g": grid_ids is None})
        sql = f"""
        WITH tops AS (
            SELECT id FROM grid WHERE level = :level AND valid_to IS NULL
              AND (:all_g OR id = ANY(CAST(:gids AS integer[])))),
        {grid_tree.descendants_cte("sub", "SELECT id AS top, id FROM tops", key="top")},
        {_HOUSEHOLD_STATE.format(households="h.grid_id IN (SELECT id FROM sub)")}
        SELECT g.id, g.code, g.name, {_FIGURES}
        FROM tops JOIN grid g ON g.id = tops.id
        LEFT JOIN (SELECT sub.top, hs.* FROM sub JOIN hs ON hs.grid_id = sub.id) hs ON hs.top = g.id
        GROUP BY g.id ORDER BY g.code
        """
        rows = session.execute(text(sql), params).all()
        out = [{"grid": {"id": r.id, "code": r.code, "name": r.name}, **_figures(r)} for r in rows]
    else:
        raise BadParameter("group", f"group '{group[:20]}' 无效，可选：worker、grid")
    return {
        "group": group,
        "level": level,
        "at": per.at.isoformat(),
        "at_local": local_text(per.at),
        "month": per.month_label,
        "quarter": per.quarter_label,
        "rows": out,
    }


def due(
    session: Session,
    *,
    grid_ids: frozenset[int] | None,
    linked_member: int | None,
    at: datetime,
    limit: int = 500,
) -> dict[str, Any]:
    """The households still due this period for a worker: key households not visited this
    month, the others not visited this quarter; overdue first."""
    per, params = _period_params(session, at)
    if linked_member is not None:
        households = "h.linked_member_id = :member"
        params["member"] = linked_member
    elif grid_ids is None:
        households = "TRUE"
    else:
        households = "h.grid_id = ANY(CAST(:gids AS integer[]))"
        params["gids"] = sorted(grid_ids)
    sql = f"""
    WITH {_HOUSEHOLD_STATE.format(households=households)}
    SELECT hs.*, h.address, h.head_name, h.tags, ST_X(h.geom) AS lon, ST_Y(h.geom) AS lat,
           g.code AS grid_code, g.name AS grid_name,
           CASE WHEN hs.key THEN NOT coalesce(hs.since_prev_month, false)
                ELSE NOT coalesce(hs.since_prev_quarter, false) END AS overdue
    FROM hs JOIN household h ON h.id = hs.id JOIN grid g ON g.id = h.grid_id
    WHERE (hs.key AND NOT coalesce(hs.in_month, false)) OR (NOT hs.key AND NOT coalesce(hs.in_quarter, false))
    ORDER BY overdue DESC, hs.key DESC, g.code, h.address NULLS LAST, h.id
    LIMIT :lim
    """
    rows = session.execute(text(sql), {**params, "lim": limit}).all()
    items = [
        {
            "household": {
                "id": r.id,
                "address": r.address,
                "head_name": mask_name(r.head_name),
                "lon": r.lon,
                "lat": r.lat,
                "key_tags": [
                    SENSITIVE_TAGS.get(t, t) for t in (r.tags or []) if t in params["key_tags"]
                ],
            },
            "grid": {"id": r.grid_id, "code": r.grid_code, "name": r.grid_name},
            "kind": "monthly" if r.key else "quarterly",
            "kind_name": VISIT_KINDS["monthly" if r.key else "quarterly"],
            "overdue": r.overdue,
            "last_visit_local": local_text(r.last_visit),
        }
        for r in rows
    ]
    return {
        "month": per.month_label,
        "quarter": per.quarter_label,
        "count": len(items),
        "overdue": sum(1 for i in items if i["overdue"]),
        "items": items,
    }


# ---------------------------------------------------------------- check-ins


_INSERT_CHECKIN = text(
    """
    WITH p AS (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS pt),
    own AS (SELECT g.id, g.geom FROM grid_assignment a JOIN grid g ON g.id = a.grid_id
            WHERE a.worker_id = :worker AND g.valid_to IS NULL),
    hit AS (SELECT own.id FROM own, p WHERE ST_Covers(own.geom, p.pt) ORDER BY own.id LIMIT 1),
    near AS (SELECT min(ST_Distance(own.geom::geography, p.pt::geography)) AS m FROM own, p)
    INSERT INTO checkin (worker_id, user_id, checked_at, geom, accuracy_m, inside, grid_id,
                         distance_m, idempotency_key)
    SELECT :worker, :user, :at, p.pt, CAST(:acc AS double precision), (SELECT id FROM hit) IS NOT NULL, (SELECT id FROM hit),
           CASE WHEN (SELECT id FROM hit) IS NULL THEN (SELECT m FROM near) END, :key
    FROM p
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id
    """
)

_CHECKIN_SQL = """
SELECT k.id, k.worker_id, w.name AS worker_name, k.checked_at, ST_X(k.geom) AS lon,
       ST_Y(k.geom) AS lat, k.accuracy_m, k.inside, k.grid_id, g.code AS grid_code,
       g.name AS grid_name, k.distance_m
FROM checkin k JOIN worker w ON w.id = k.worker_id LEFT JOIN grid g ON g.id = k.grid_id
"""


def checkin_view(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "worker": {"id": r.worker_id, "name": r.worker_name},
        "checked_at": r.checked_at.isoformat(),
        "checked_at_local": local_text(r.checked_at),
        "position": {"lon": r.lon, "lat": r.lat} if r.lon is not None else None,
        "accuracy_m": r.accuracy_m,
        "inside": r.inside,
        "grid": {"id": r.grid_id, "code": r.grid_code, "name": r.grid_name} if r.grid_id else None,
        "distance_m": round(r.distance_m, 1) if r.distance_m is not None else None,
        "message": (
            f"已在 {r.grid_name} 内打卡"
            if r.inside
            else (
                f"不在本人网格内（距最近网格 {r.distance_m:.0f} 米），已记录并标记"
                if r.distance_m is not None
                else "本人没有负责的网格，已记录并标记"
            )
        ),
    }


def check_in(
    session: Session,
    data: dict[str, Any],
    *,
    worker_id: int,
    user_id: int | None,
    now: datetime | None = None,
) -> tuple[dict[str, Any], bool]:
    now = now or datetime.now(UTC)
    key = key_of(data.get("idempotency_key"))
    lon, lat, _crs = point_of(data.get("lon"), data.get("lat"), data.get("crs"))
    params = {
        "worker": worker_id,
        "user": user_id,
        "at": parse_time(data.get("checked_at"), "checked_at", now),
        "lon": lon,
        "lat": lat,
        "acc": accuracy_of(data.get("accuracy")),
        "key": key,
    }
    new_id = session.scalar(_INSERT_CHECKIN, params)
    created = new_id is not None
    if new_id is None:
        new_id = session.scalar(
            text("SELECT id FROM checkin WHERE idempotency_key = :k"), {"k": key}
        )
        owner = session.scalar(text("SELECT worker_id FROM checkin WHERE id = :id"), {"id": new_id})
        if owner != worker_id:
            raise Conflict(
                "幂等键已被另一条记录使用 / the idempotency key belongs to another record"
            )
    row = session.execute(text(_CHECKIN_SQL + " WHERE k.id = :id"), {"id": new_id}).one()
    return checkin_view(row), created


def attendance(
    session: Session, scope: tuple[str, dict[str, Any]], day: date, workers: frozenset[int] | None
) -> dict[str, Any]:
    """The check-ins of one China-time day, and the attendance of every worker in scope (those
    assigned to a grid in it, on duty; ``workers`` None: all): first and last check-in, how many
    were outside their grids, and who did not check in at all."""
    cond, params = scope
    start = datetime(day.year, day.month, day.day, tzinfo=TZ).astimezone(UTC)
    params = {**params, "d0": start, "d1": start + timedelta(days=1)}
    rows = session.execute(
        text(
            _CHECKIN_SQL
            + f" WHERE {cond} AND k.checked_at >= :d0 AND k.checked_at < :d1 ORDER BY k.checked_at, k.id"
        ),
        params,
    ).all()
    roster = session.execute(
        text(
            """SELECT w.id, w.code, w.name FROM worker w
               WHERE w.on_duty AND EXISTS (SELECT 1 FROM grid_assignment a WHERE a.worker_id = w.id)
                 AND (CAST(:all AS boolean) OR w.id = ANY(CAST(:ids AS integer[])))
               ORDER BY w.code NULLS LAST, w.id"""
        ),
        {"all": workers is None, "ids": sorted(workers or [])},
    ).all()
    table: dict[int, dict[str, Any]] = {
        r.id: {
            "worker": {"id": r.id, "code": r.code, "name": r.name},
            "count": 0,
            "first_local": None,
            "last_local": None,
            "outside": 0,
            "present": False,
        }
        for r in roster
    }
    for r in rows:
        w = table.setdefault(
            r.worker_id,
            {
                "worker": {"id": r.worker_id, "code": None, "name": r.worker_name},
                "count": 0,
                "first_local": None,
                "last_local": None,
                "outside": 0,
                "present": False,
            },
        )
        w["count"] += 1
        w["present"] = True
        w["first_local"] = w["first_local"] or local_text(r.checked_at)
        w["last_local"] = local_text(r.checked_at)
        w["outside"] += 0 if r.inside else 1
    return {
        "date": day.isoformat(),
        "present": sum(1 for w in table.values() if w["present"]),
        "absent": sum(1 for w in table.values() if not w["present"]),
        "workers": list(table.values()),
        "checkins": [checkin_view(r) for r in rows],
    }


ATTENDANCE_COLUMNS = (
    "日期",
    "工号",
    "姓名",
    "出勤",
    "打卡次数",
    "首次打卡",
    "末次打卡",
    "网格外打卡",
)


def attendance_export(result: dict[str, Any], fmt: str) -> tuple[bytes, str, str]:
    """One day's attendance per worker as CSV or XLSX (times in China time)."""
    rows = [
        [
            result["date"],
            w["worker"]["code"] or "",
            w["worker"]["name"] or "",
            "是" if w["present"] else "否",
            w["count"],
            w["first_local"] or "",
            w["last_local"] or "",
            w["outside"],
        ]
        for w in result["workers"]
    ]
    if fmt == "csv":
        return csv_safe.csv_bytes(ATTENDANCE_COLUMNS, rows), csv_safe.CSV_TYPE, ".csv"
    if fmt == "xlsx":
        book = csv_safe.xlsx_bytes(ATTENDANCE_COLUMNS, rows, title=f"出勤 {result['date']}")
        return book, csv_safe.XLSX_TYPE, ".xlsx"
    raise BadParameter("format", f"format '{fmt[:10]}' 无效，可选：json、csv、xlsx")


def overdue_features(
    session: Session,
    *,
    grid_ids: frozenset[int] | None,
    linked_member: int | None,
    at: datetime,
    bbox: tuple[float, float, float, float] | None,
    with_kind: bool,
    limit: int = 5000,
) -> dict[str, Any]:
    """The overdue households (definition above) in the caller's households and the view, as
    GeoJSON points for the e-map: the place and the grid's code only — no address, no name, and
    whether it is a key household (a tag) only ``with_kind``."""
    per, params = _period_params(session, at)
    conds = []
    if linked_member is not None:
        conds.append("h.linked_member_id = :member")
        params["member"] = linked_member
    elif grid_ids is not None:
        conds.append("h.grid_id = ANY(CAST(:gids AS integer[]))")
        params["gids"] = sorted(grid_ids)
    if bbox is not None:
        conds.append("h.geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)")
        params.update(dict(zip(("x0", "y0", "x1", "y1"), bbox, strict=True)))
    households = " AND ".join(conds) or "TRUE"
    sql = f"""
    WITH {_HOUSEHOLD_STATE.format(households=households)}
    SELECT hs.id, hs.key, ST_X(h.geom) AS lon, ST_Y(h.geom) AS lat, g.code AS grid_code
    FROM hs JOIN household h ON h.id = hs.id JOIN grid g ON g.id = h.grid_id
    WHERE CASE WHEN hs.key THEN NOT coalesce(hs.since_prev_month, false)
               ELSE NOT coalesce(hs.since_prev_quarter, false) END
    ORDER BY hs.key DESC, h.id
    LIMIT :lim
    """
    rows = session.execute(text(sql), {**params, "lim": limit + 1}).all()
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [round(r.lon, 6), round(r.lat, 6)]},
            "properties": {
                "grid_code": r.grid_code,
                **({"kind": "monthly" if r.key else "quarterly"} if with_kind else {}),
            },
        }
        for r in rows[:limit]
    ]
    return {
        "type": "FeatureCollection",
        "features": features,
        "properties": {
            "month": per.month_label,
            "quarter": per.quarter_label,
            "count": len(features),
            "truncated": len(rows) > limit,
        },
    }
