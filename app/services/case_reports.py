"""Case KPIs (closure rate, on-time closure rate, handling time, satisfaction) and ledger exports.

Definitions (cases created in the period, cancelled ones left out):
- closure rate (结案率): closed / all;
- on-time closure rate (按期结案率): closed cases that were reported back (resolved) by their
  deadline / closed cases;
- average handling time: hours from report to the last report-back, over resolved cases;
- satisfaction: the mean rating (1–5) and the share of ratings of 4 or 5, over rated cases;
- solved rate (问题解决率): cases the resident said were solved / cases with that answer —
  a separate fact from closure (a case closes on a rating or a timeout, solved or not);
- overdue: cases still waiting for handling past their deadline, now.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.errors import BadParameter
from app.models.case import sql_list
from app.privacy import mask_name, mask_phone
from app.services import csv_safe, grid_tree
from app.services.cases import (
    ESCALATION_NAMES,
    OVERDUE_SQL,
    PENDING_STATES,
    SOURCE_NAMES,
    STATES,
    STATUS_NAMES,
    CaseFilter,
    where_clause,
)

GROUPS = ("grid", "worker", "category", "all")

# Every grid (``leaf``) with each grid above it: a case counts for its grid's ancestor at the
# asked level.
_UP = grid_tree.ancestors_cte(
    "up",
    "SELECT id AS leaf, id, parent_id, level, 0 AS depth FROM grid",
    carry=("leaf",),
    columns=("level",),
)
_KPI_SQL = (
    "WITH "
    + _UP.replace("{", "{{").replace("}", "}}")
    + """,
    at_level AS (SELECT leaf, id FROM up WHERE level = :level),
    base AS (
        SELECT c.*, {key} AS gkey
        FROM "case" c
        LEFT JOIN at_level al ON al.leaf = c.grid_id
        {where}
    )
    SELECT gkey,
           count(*) AS total,
           count(*) FILTER (WHERE status = 'closed') AS closed,
           count(*) FILTER (WHERE status = 'closed' AND resolved_at <= deadline) AS closed_on_time,
           avg(EXTRACT(EPOCH FROM (resolved_at - created_at)) / 3600.0)
               FILTER (WHERE resolved_at IS NOT NULL) AS avg_handling_hours,
           avg(satisfaction) FILTER (WHERE satisfaction IS NOT NULL) AS satisfaction,
           count(*) FILTER (WHERE satisfaction IS NOT NULL) AS rated,
           count(*) FILTER (WHERE satisfaction >= 4) AS satisfied,
           count(*) FILTER (WHERE solved IS TRUE) AS solved,
           count(*) FILTER (WHERE solved IS NOT NULL) AS solved_answered,
           count(*) FILTER (WHERE status IN {pending} AND deadline < :now) AS overdue
    FROM base
    GROUP BY gkey
"""
)

_KEYS = {
    "grid": "COALESCE(al.id, c.grid_id)",
    "worker": "c.assignee_id",
    "category": "c.category",
    "all": "'all'",
}


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def kpis(
    session: Session,
    *,
    group: str = "grid",
    level: int = 3,
    date_from: datetime | None = None,
    date_to: datetime | None = None,
    now: datetime | None = None,
    scope: Any = None,
) -> dict[str, Any]:
    """Return the KPIs per grid (at ``level``), per worker, per category or overall, over the
    cases of ``scope`` (``app.auth.policy.CaseScope``; None: every case)."""
    if group not in GROUPS:
        raise BadParameter("group", f"'{group}' is not one of {', '.join(GROUPS)}")
    now = now or datetime.now(UTC)
    where, params = where_clause(
        CaseFilter(created_from=date_from, created_to=date_to, scope=scope)
    )
    where = (where + " AND " if where else " WHERE ") + "c.status <> 'cancelled'"
    if group == "worker":
        where += " AND c.assignee_id IS NOT NULL"
    sql = _KPI_SQL.format(key=_KEYS[group], where=where, pending=sql_list(PENDING_STATES))
    rows = session.execute(text(sql), {**params, "level": level, "now": now}).all()
    names = _names(session, group, [r.gkey for r in rows])
    items = []
    for r in rows:
        items.append(
            {
                "key": r.gkey,
                "name": names.get(r.gkey, "未定位" if r.gkey is None else str(r.gkey)),
                "total": r.total,
                "closed": r.closed,
                "closure_rate": _rate(r.closed, r.total),
                "closed_on_time": r.closed_on_time,
                "on_time_closure_rate": _rate(r.closed_on_time, r.closed),
                "avg_handling_hours": (
                    round(float(r.avg_handling_hours), 2)
                    if r.avg_handling_hours is not None
                    else None
                ),
                "satisfaction": round(float(r.satisfaction), 2)
                if r.satisfaction is not None
                else None,
                "rated": r.rated,
                "satisfied_rate": _rate(r.satisfied, r.rated),
                "solved": r.solved,
                "solved_rate": _rate(r.solved, r.solved_answered),
                "overdue": r.overdue,
            }
        )
    items.sort(key=lambda i: (-i["total"], str(i["name"])))
    return {
        "group": group,
        "level": level if group == "grid" else None,
        "from": date_from.isoformat() if date_from else None,
        "to": date_to.isoformat() if date_to else None,
        "items": items,
    }


def _names(session: Session, group: str, keys: list[Any]) -> dict[Any, str]:
    ids = [k for k in keys if k is not None]
    if not ids:
        return {}
    if group == "grid":
        rows = session.execute(
            text("SELECT id, name FROM grid WHERE id = ANY(CAST(:ids AS integer[]))"), {"ids": ids}
        ).all()
    elif group == "worker":
        rows = session.execute(
            text("SELECT id, name FROM worker WHERE id = ANY(CAST(:ids AS integer[]))"),
            {"ids": ids},
        ).all()
    elif group == "category":
        rows = session.execute(
            text("SELECT code, name FROM case_category WHERE code = ANY(:ids)"), {"ids": ids}
        ).all()
    else:
        return {"all": "全部"}
    return {k: v for k, v in rows}


# ---------------------------------------------------------------- export

STATE_COLUMNS = STATES
COLUMNS = [
    ("code", "事件编号"),
    ("category_name", "事件类型"),
    ("source_name", "来源"),
    ("status_name", "状态"),
    ("description", "描述"),
    ("grid_code", "网格编码"),
    ("grid_name", "网格"),
    ("assignee_name", "处置人"),
    ("department_name", "职能部门"),
    ("escalation_name", "处置层级"),
    ("lon", "经度"),
    ("lat", "纬度"),
    ("reported_x", "上报X"),
    ("reported_y", "上报Y"),
    ("reported_crs", "上报坐标系"),
    ("address", "地址"),
    ("reporter_name", "上报人"),
    ("reporter_contact", "联系方式"),
    ("deadline", "处置时限"),
    ("overdue", "是否超期"),
    ("on_time", "是否按期"),
    ("satisfaction", "满意度"),
    ("solved", "问题是否解决"),
] + [(f"{s}_at", f"{STATUS_NAMES[s]}时间") for s in STATE_COLUMNS]

_EXPORT_SQL = """
    SELECT c.code, cat.name AS category_name, c.source, c.status, c.description,
           g.code AS grid_code, g.name AS grid_name, w.name AS assignee_name,
           d.name AS department_name, c.escalation_level,
           ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat, c.reported_x, c.reported_y, c.reported_crs,
           c.address, c.reporter_name, c.reporter_contact, c.deadline, c.resolved_at AS reported_back_at,
           {overdue} AS overdue,
           c.satisfaction, c.solved,
           {state_cols}
    FROM "case" c
    JOIN case_category cat ON cat.code = c.category
    LEFT JOIN grid g ON g.id = c.grid_id
    LEFT JOIN worker w ON w.id = c.assignee_id
    LEFT JOIN department d ON d.id = c.department_id
    LEFT JOIN LATERAL (
        SELECT {pivot} FROM case_event e WHERE e.case_id = c.id
    ) ev ON true
    {where}
    ORDER BY c.created_at, c.id
"""


def ledger_rows(
    session: Session,
    filters: CaseFilter | None = None,
    *,
    personal: bool = False,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Return the case ledger: one row per case with a timestamp for every state it reached.

    A state reached more than once (a reopened case) shows the latest time.
    """
    now = now or datetime.now(UTC)
    where, params = where_clause(filters or CaseFilter())
    pivot = ", ".join(
        f"max(e.at) FILTER (WHERE e.to_status = '{s}') AS {s}_at" for s in STATE_COLUMNS
    )
    state_cols = ", ".join(f"ev.{s}_at" for s in STATE_COLUMNS)
    sql = _EXPORT_SQL.format(pivot=pivot, state_cols=state_cols, where=where, overdue=OVERDUE_SQL)
    out = []
    for r in session.execute(text(sql), {**params, "now": now}).mappings():
        row = dict(r)
        row["source_name"] = SOURCE_NAMES.get(row.pop("source"), "")
        row["status_name"] = STATUS_NAMES[row.pop("status")]
        row["escalation_name"] = ESCALATION_NAMES[row.pop("escalation_level")]
        resolved_at = row.pop("reported_back_at")
        row["on_time"] = (
            None
            if resolved_at is None or row["deadline"] is None
            else resolved_at <= row["deadline"]
        )
        if not personal:
            row["reporter_name"] = mask_name(row["reporter_name"])
            row["reporter_contact"] = mask_phone(row["reporter_contact"])
        out.append(row)
    return out


def _cell(value: Any, tz: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, float):
        return round(value, 7)
    return "" if value is None else value


def export_cases(
    session: Session,
    fmt: str,
    filters: CaseFilter | None = None,
    *,
    personal: bool = False,
    timezone_name: str = "Asia/Shanghai",
    now: datetime | None = None,
) -> tuple[bytes, str, str]:
    """Return (content, mime type, file extension) of the case ledger as CSV or Excel."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(timezone_name)
    rows = ledger_rows(session, filters, personal=personal, now=now)
    header = [title for _, title in COLUMNS]
    table = [[_cell(row[key], tz) for key, _ in COLUMNS] for row in rows]
    if fmt == "csv":
        return csv_safe.csv_bytes(header, table), csv_safe.CSV_TYPE, "csv"
    if fmt == "xlsx":
        # a description '=HYPERLINK(…)' stays text
        book = csv_safe.xlsx_bytes(header, table, title="事件台账", freeze="B2", fit_widths=True)
        return book, csv_safe.XLSX_TYPE, "xlsx"
    raise BadParameter("format", f"'{fmt}' is not csv or xlsx")
