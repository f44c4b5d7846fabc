"""Field work API: visits to households, the visit plan's coverage and due list, check-ins."""

from __future__ import annotations

from datetime import UTC, date, datetime

from flask import Blueprint, Response, jsonify, request

from app.api.params import bbox_arg, body_fields, int_arg, str_arg
from app.auth import current_principal, record_personal_read
from app.auth.actors import case_actor
from app.auth.policy import (
    Forbidden,
    Principal,
    field_scope,
    grid_scope,
    household_visible,
    in_scope,
    sees_tags,
)
from app.db import get_session, transaction
from app.errors import BadParameter, NotFound
from app.services import visits as svc

bp = Blueprint("visits_api", __name__, url_prefix="/api")


def own_worker(p: Principal) -> int:
    if p.worker_id is None:
        raise Forbidden(
            "当前账号未关联网格员，不能记录走访或打卡 / the account is linked to no worker"
        )
    return p.worker_id


def at_arg() -> datetime:
    """The moment figures are computed for: ``at=`` (ISO time with its zone), else now."""
    now = datetime.now(UTC)
    raw = str_arg("at", max_length=40)
    return svc.parse_time(raw, "at", now, window=False) if raw else now


def day_arg(name: str) -> date | None:
    raw = str_arg(name, max_length=20)
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise BadParameter(name, f"{name} '{raw}' 须为日期 YYYY-MM-DD") from exc


def _own_household(session, p: Principal, data: dict) -> None:  # type: ignore[no-untyped-def]
    household = data.get("household_id")
    if isinstance(household, int) and not isinstance(household, bool) and 0 < household < 2**31:
        if not household_visible(session, p, household):
            raise NotFound(
                f"住户 {household} 不存在或不在您的网格内 / household {household} not found"
            )


@bp.post("/visits")
def create_visit():  # type: ignore[no-untyped-def]
    """Record a visit of the signed-in worker (idempotent by ``idempotency_key``); with
    ``case`` (category, description) a case is reported from it in the same call."""
    data = body_fields()
    if request.headers.get("Idempotency-Key") and not data.get("idempotency_key"):
        data = {**data, "idempotency_key": request.headers["Idempotency-Key"]}
    p = current_principal()
    worker = own_worker(p)
    session = get_session()
    case = data.get("case")
    if case is not None and not isinstance(case, dict):
        raise BadParameter("case", "case 须为对象：{category, description}")
    with transaction(session):
        _own_household(session, p, data)
        visit, created = svc.record_visit(session, data, worker_id=worker, user_id=p.user_id)
        answer = {"visit": visit, "created": created}
        if case is not None and created:
            reported = svc.report_case(session, visit["id"], case, actor=case_actor(p, None))
            answer = {"visit": reported["visit"], "case": reported["case"], "created": True}
    return jsonify(answer), 201 if created else 200


@bp.post("/visits/<int:visit_id>/case")
def report_case(visit_id: int):  # type: ignore[no-untyped-def]
    """Report a case from a visit: at the household, through the case loop; the visit keeps
    the case's id."""
    p = current_principal()
    session = get_session()
    with transaction(session):
        result = svc.report_case(session, visit_id, body_fields(), actor=case_actor(p, None))
    return jsonify(result), 201


@bp.get("/visits")
def list_visits():  # type: ignore[no-untyped-def]
    """Visits in the caller's field scope (filters: worker, household, grid, flagged, from, to
    as China-time dates)."""
    limit = int_arg("limit", minimum=1, maximum=1000, default=200)
    offset = int_arg("offset", minimum=0, default=0)
    session = get_session()
    p = current_principal()
    start, end = day_arg("from"), day_arg("to")
    flagged = str_arg("flagged", max_length=5)
    if flagged not in (None, "true", "false"):
        raise BadParameter("flagged", "flagged 须为 true 或 false")
    grid = int_arg("grid", minimum=1)
    if grid is not None and not in_scope(session, p, grid):
        raise NotFound(f"grid {grid} not found")
    tz = svc.TZ
    f = svc.VisitFilter(
        worker_id=int_arg("worker", minimum=1),
        household_id=int_arg("household", minimum=1),
        grid_id=grid,
        flagged=None if flagged is None else flagged == "true",
        start=datetime(start.year, start.month, start.day, tzinfo=tz) if start else None,
        end=(datetime.fromordinal(end.toordinal() + 1).replace(tzinfo=tz) if end else None),
    )
    result = svc.list_visits(
        session, field_scope(session, p).sql("v"), f, limit=limit or 200, offset=offset or 0
    )
    record_personal_read("list visits", "visit", None, ["visits"])
    return jsonify(result)


@bp.get("/visits/<int:visit_id>")
def get_visit(visit_id: int):  # type: ignore[no-untyped-def]
    """One visit."""
    result = svc.get_visit(get_session(), visit_id)
    record_personal_read(f"visit {visit_id}", "visit", visit_id, ["visit"])
    return jsonify(result)


@bp.get("/visits/coverage")
def coverage():  # type: ignore[no-untyped-def]
    """Visit coverage this month (key households) and quarter (all) per worker or grid."""
    group = str_arg("group", max_length=20) or "worker"
    level = int_arg("level", minimum=1, maximum=5)
    session = get_session()
    p = current_principal()
    scope = field_scope(session, p)
    grids = None if scope.everything else (scope.grid_ids or frozenset())
    if group == "grid" and p.role in ("worker", "party_member"):
        grids = grid_scope(session, p) or frozenset()
    result = svc.coverage(
        session,
        group=group,
        level=level,
        grid_ids=grids,
        worker_ids=scope.worker_ids(session),
        at=at_arg(),
    )
    return jsonify(result)


@bp.get("/visits/due")
def due():  # type: ignore[no-untyped-def]
    """The households the signed-in worker still has to visit this period (overdue first)."""
    p = current_principal()
    own_worker(p)
    session = get_session()
    limit = int_arg("limit", minimum=1, maximum=2000, default=500) or 500
    result = svc.due(
        session,
        grid_ids=None if p.role == "party_member" else (grid_scope(session, p) or frozenset()),
        linked_member=p.worker_id if p.role == "party_member" else None,
        at=at_arg(),
        limit=limit,
    )
    record_personal_read("visits due", "household", None, ["address", "head_name masked"])
    return jsonify(result)


@bp.get("/visits/overdue-map")
def overdue_map():  # type: ignore[no-untyped-def]
    """The overdue households in the caller's grids (``bbox`` the view) as GeoJSON points for
    the e-map: place and grid code only; key or not only for a role that sees tags."""
    session = get_session()
    p = current_principal()
    result = svc.overdue_features(
        session,
        grid_ids=None if p.role == "party_member" else grid_scope(session, p),
        linked_member=p.worker_id if p.role == "party_member" else None,
        at=at_arg(),
        bbox=bbox_arg("bbox"),
        with_kind=sees_tags(p),
    )
    return jsonify(result)


@bp.get("/visit-settings")
def get_settings():  # type: ignore[no-untyped-def]
    """The visit plan's settings: key-group tags, distance limit."""
    return jsonify(svc.settings_view(svc.get_settings(get_session())))


@bp.put("/visit-settings")
def put_settings():  # type: ignore[no-untyped-def]
    """Change the visit plan's settings (e.g. ``{"max_distance_m": 150}``)."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadParameter("body", "须为设置的 JSON 对象")
    session = get_session()
    with transaction(session):
        result = svc.update_settings(session, data)
    return jsonify(svc.settings_view(result))


@bp.post("/checkins")
def check_in():  # type: ignore[no-untyped-def]
    """Check in (打卡) at the start of duty: inside one's own grids, or recorded and flagged."""
    data = body_fields()
    if request.headers.get("Idempotency-Key") and not data.get("idempotency_key"):
        data = {**data, "idempotency_key": request.headers["Idempotency-Key"]}
    p = current_principal()
    worker = own_worker(p)
    session = get_session()
    with transaction(session):
        result, created = svc.check_in(session, data, worker_id=worker, user_id=p.user_id)
    return jsonify({"checkin": result, "created": created}), 201 if created else 200


@bp.get("/checkins")
def checkins():  # type: ignore[no-untyped-def]
    """The check-ins of one day (``date=``, China time; default today) in the caller's scope,
    with per-worker attendance."""
    day = day_arg("date") or datetime.now(svc.TZ).date()
    session = get_session()
    p = current_principal()
    scope = field_scope(session, p)
    result = svc.attendance(
        session, scope.sql("k", grid_column=None), day, scope.worker_ids(session)
    )
    fmt = str_arg("format", max_length=10) or "json"
    if fmt == "json":
        record_personal_read(f"checkins {day.isoformat()}", "checkin", None, ["checkins"])
        return jsonify(result)
    body, media, suffix = svc.attendance_export(result, fmt)
    record_personal_read(
        f"attendance export {day.isoformat()}", "checkin", None, ["names"], kind="export"
    )
    return Response(
        body,
        mimetype=media,
        headers={
            "Content-Disposition": f"attachment; filename=attendance-{day.isoformat()}{suffix}"
        },
    )
