"""Field-work KPIs beside the case KPIs: the visit plan's figures, the week's patrol coverage and
the days checked in, per worker or grid, with their CSV and Excel exports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.errors import BadParameter
from app.services import csv_safe
from app.services import visits as visit_svc
from app.services.patrols import coverage, week_bounds
from app.services.visits import TZ, local_text


def attendance_days(
    session: Session, worker_ids: frozenset[int] | None, at: datetime
) -> dict[int, int]:
    """Days of the China-time week of ``at`` (up to it) on which each worker checked in."""
    w0, _w1, _ = week_bounds(at)
    rows = session.execute(
        text(
            """SELECT worker_id, count(DISTINCT (checked_at AT TIME ZONE 'Asia/Shanghai')::date) AS n
               FROM checkin WHERE checked_at >= :w0 AND checked_at <= :at
                 AND (:all OR worker_id = ANY(CAST(:ids AS integer[]))) GROUP BY worker_id"""
        ),
        {"w0": w0, "at": at, "all": worker_ids is None, "ids": sorted(worker_ids or [])},
    ).all()
    return {r.worker_id: r.n for r in rows}


def field_kpis(
    session: Session,
    *,
    group: str,
    level: int | None,
    grid_ids: frozenset[int] | None,
    worker_ids: frozenset[int] | None,
    at: datetime,
) -> dict[str, Any]:
    """One row per worker or grid: the visit plan's figures (``visits.coverage``), the week's
    patrol coverage and (per worker) the days checked in this week."""
    visits = visit_svc.coverage(
        session, group=group, level=level, grid_ids=grid_ids, worker_ids=worker_ids, at=at
    )
    patrols = coverage(
        session, group=group, level=level, grid_ids=grid_ids, worker_ids=worker_ids, at=at
    )
    by_key = {r[group]["id"]: r for r in patrols["rows"]}
    days = attendance_days(session, worker_ids, at) if group == "worker" else {}
    local = at.astimezone(TZ)
    rows = []
    for r in visits["rows"]:
        unit = r[group]
        p = by_key.get(unit["id"], {})
        rows.append(
            {
                group: unit,
                "key": r["key"],
                "all": r["all"],
                "patrol": {
                    "patrols": p.get("patrols", 0),
                    "road_share": p.get("road_share"),
                    "area_share": p.get("area_share"),
                },
                "attendance_days": days.get(unit["id"], 0) if group == "worker" else None,
            }
        )
    return {
        "group": group,
        "level": level,
        "at_local": local_text(at),
        "month": visits["month"],
        "quarter": visits["quarter"],
        "week": patrols["week"],
        "week_days": local.weekday() + 1,
        "rows": rows,
    }


KPI_COLUMNS = (
    "代码",
    "名称",
    "重点户应访",
    "重点户已访",
    "重点户逾期",
    "重点户按时率",
    "全部户应访",
    "全部户已访",
    "全部户逾期",
    "全部户按时率",
    "本周巡查次数",
    "道路巡查覆盖率",
    "面积巡查覆盖率",
    "本周出勤天数",
    "统计时间",
)


def kpi_table(report: dict[str, Any]) -> list[list[Any]]:
    g = report["group"]
    return [
        [
            r[g]["code"],
            r[g]["name"],
            r["key"]["due"],
            r["key"]["visited"],
            r["key"]["overdue"],
            r["key"]["on_time_share"],
            r["all"]["due"],
            r["all"]["visited"],
            r["all"]["overdue"],
            r["all"]["on_time_share"],
            r["patrol"]["patrols"],
            r["patrol"]["road_share"],
            r["patrol"]["area_share"],
            r["attendance_days"],
            report["at_local"],
        ]
        for r in report["rows"]
    ]


def kpi_export(report: dict[str, Any], fmt: str) -> tuple[bytes, str, str]:
    """The KPI rows as CSV (UTF-8 with BOM, text cells neutralised) or XLSX; China-time column."""
    rows = kpi_table(report)
    if fmt == "csv":
        return csv_safe.csv_bytes(KPI_COLUMNS, rows), csv_safe.CSV_TYPE, ".csv"
    if fmt == "xlsx":
        return (
            csv_safe.xlsx_bytes(KPI_COLUMNS, rows, title="走访巡查指标"),
            csv_safe.XLSX_TYPE,
            ".xlsx",
        )
    raise BadParameter("format", f"format '{fmt[:10]}' 无效，可选：json、csv、xlsx")
