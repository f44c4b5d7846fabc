"""Case API: report, act on, list, export and measure cases; camera events; settings; calendar."""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, current_app, g, jsonify, request

from app.auth import client_ip, current_principal, record_personal_read
from app.auth.actors import case_actor
from app.auth.policy import (
    STAFF,
    case_scope,
    check_report_source,
    grid_scope,
    need_camera,
)
from app.db import get_session, transaction
from app.errors import BadParameter
from app.params import MAX_INT, bbox_arg, body_fields, bool_field, int_arg, int_field, moment
from app.services import calendar as cal
from app.services import case_reports as reports
from app.services import cases as svc
from app.services import photos, public_cases, ratelimit

bp = Blueprint("cases_api", __name__, url_prefix="/api")

LOCAL_TZ = ZoneInfo("Asia/Shanghai")


# ---------------------------------------------------------------- request parsing


body = body_fields


def _float(data: dict[str, Any], name: str, *, required: bool = False) -> float | None:
    raw = data.get(name)
    if raw in (None, ""):
        if required:
            raise BadParameter(name, "is required")
        return None
    if isinstance(raw, bool):
        raise BadParameter(name, f"{raw!r} is not a number")
    try:
        value = float(raw)
    except (TypeError, ValueError) as exc:
        raise BadParameter(name, f"'{raw}' is not a number") from exc
    if not math.isfinite(value):
        raise BadParameter(name, f"'{raw}' is not a finite number")
    return value


def uploaded_photos(data: dict[str, Any], *names: str) -> list[bytes]:
    """Collect uploaded files and base64 fields named ``names`` (photo, photo_base64 …).

    At most ``photos.MAX_PHOTOS_PER_REQUEST`` of them, each at most ``photos.MAX_BYTES``."""
    files = [f for name in names for f in request.files.getlist(name)]
    encoded_fields = [data.get(f"{name}_base64") for name in names]
    photos.check_count(len(files) + sum(1 for e in encoded_fields if e))
    blobs: list[bytes] = []
    for name in names:
        for f in request.files.getlist(name):
            content = f.read(photos.MAX_BYTES + 1)
            if content:
                blobs.append(content)
        encoded = data.get(f"{name}_base64")
        if encoded not in (None, "") and not isinstance(encoded, str):
            raise BadParameter(f"{name}_base64", "must be a base64 text")
        if encoded:
            if isinstance(encoded, str) and encoded.startswith("data:"):
                encoded = encoded.split(",", 1)[-1]
            if isinstance(encoded, str) and len(encoded) > photos.MAX_BYTES * 4 // 3 + 4:
                raise BadParameter(f"{name}_base64", f"is larger than {photos.MAX_BYTES} bytes")
            try:
                blobs.append(base64.b64decode(encoded, validate=True))
            except (binascii.Error, TypeError) as exc:
                raise BadParameter(f"{name}_base64", "is not valid base64") from exc
    return blobs


def _moment(name: str, raw: str | None, *, end: bool = False) -> datetime | None:
    """An ISO date or date-time; a bare date is China midnight (the next one for ``end``)."""
    return moment(name, raw, day="next" if end else "start")


def _filters() -> svc.CaseFilter:
    args = request.args
    status = [s for s in (args.get("status") or "").split(",") if s]
    for s in status:
        if s not in svc.STATES:
            raise BadParameter("status", f"'{s}' is not one of {', '.join(svc.STATES)}")
    if args.get("source") and args["source"] not in svc.CASE_SOURCES:
        raise BadParameter(
            "source", f"'{args['source']}' is not one of {', '.join(svc.CASE_SOURCES)}"
        )
    overdue = bool_field(dict(args), "overdue")
    return svc.CaseFilter(
        status=status or None,
        category=args.get("category") or None,
        source=args.get("source") or None,
        grid_id=int_arg("grid", minimum=1),
        assignee_id=int_arg("assignee", minimum=1),
        department_id=int_arg("department", minimum=1),
        overdue=overdue,
        open_only=bool(bool_field(dict(args), "open")),
        code=args.get("code") or None,
        created_from=_moment("from", args.get("from")),
        created_to=_moment("to", args.get("to"), end=True),
        bbox=bbox_arg(),
        scope=case_scope(get_session(), current_principal()),
    )


def actor_from(data: dict[str, Any]) -> svc.Actor:
    """Read the acting person: ``actor: {role, worker_id, department_id, name}`` or flat fields."""
    raw = data.get("actor")
    if isinstance(raw, dict):
        fields = raw
    else:
        fields = {
            "role": data.get("actor_role"),
            "worker_id": data.get("actor_worker_id"),
            "department_id": data.get("actor_department_id"),
            "name": data.get("actor_name"),
        }
    role = fields.get("role")
    if not role:
        raise BadParameter("actor.role", f"is required ({', '.join(svc.ACTOR_ROLES)})")
    return svc.Actor(
        role=str(role),
        worker_id=int_field(fields, "worker_id", minimum=-MAX_INT),
        department_id=int_field(fields, "department_id", minimum=-MAX_INT),
        name=(str(fields["name"])[:40] if fields.get("name") else None),
    )


def limit_anonymous_photos(session: Any, count: int) -> None:
    """Count photos sent without an account against the address's allowance (429 past it)."""
    if not count or current_principal().authenticated:
        return
    cfg = current_app.config
    ratelimit.hit(
        session,
        "anon_photo",
        client_ip() or "unknown",
        weight=count,
        limit=int(cfg.get("ANON_PHOTO_LIMIT") or 20),
        window=timedelta(minutes=float(cfg.get("ANON_PHOTO_WINDOW_MINUTES") or 10)),
        what="photos",
    )


# ---------------------------------------------------------------- cases


#: The report's fields that are text (a JSON number, list or object there is refused).
REPORT_TEXT_FIELDS = (
    "crs",
    "category",
    "source",
    "description",
    "reporter_contact",
    "reporter_name",
    "address",
    "idempotency_key",
)


@bp.post("/cases")
def create_case():  # type: ignore[no-untyped-def]
    """Report a case: coordinates + CRS, category, description, source, contact, photo, key."""
    data = body()
    for name in REPORT_TEXT_FIELDS:
        if data.get(name) is not None and not isinstance(data[name], str):
            raise BadParameter(name, "must be text")
    x = _float(data, "x") if data.get("x") not in (None, "") else _float(data, "lon")
    y = _float(data, "y") if data.get("y") not in (None, "") else _float(data, "lat")
    if x is None or y is None:
        raise BadParameter("x", "coordinates are required: x and y (or lon and lat)")
    category = data.get("category")
    if not category:
        raise BadParameter("category", "is required")
    report = svc.Report(
        x=x,
        y=y,
        crs=data.get("crs") or None,
        category=str(category),
        source=str(data.get("source") or "resident"),
        description=(str(data["description"]) if data.get("description") else None),
        reporter_contact=(
            str(data["reporter_contact"])[:60] if data.get("reporter_contact") else None
        ),
        reporter_name=(str(data["reporter_name"])[:60] if data.get("reporter_name") else None),
        address=(str(data["address"])[:200] if data.get("address") else None),
        idempotency_key=request.headers.get("Idempotency-Key") or data.get("idempotency_key"),
        photos=uploaded_photos(data, "photo"),
    )
    p = current_principal()
    check_report_source(p, report.source)
    session = get_session()
    limit_anonymous_photos(session, len(report.photos))
    with transaction(session):
        result = svc.create_case(session, report)
    status = 201 if result["created"] else 200
    if p.role not in STAFF:
        # A resident gets the public code, the state, the secret and who is responsible: no
        # routing chain, no names or phones, no other cases.
        return jsonify(svc.public_report_answer(result)), status
    return jsonify(result), status


@bp.get("/cases")
def list_cases():  # type: ignore[no-untyped-def]
    """List cases (filters: status, category, source, grid, assignee, overdue, open, from, to, bbox)."""
    limit = int_arg("limit", minimum=1, maximum=5000, default=200)
    offset = int_arg("offset", minimum=0, default=0)
    if request.args.get("format") not in (None, "", "json", "geojson"):
        raise BadParameter("format", f"'{request.args['format']}' is not json or geojson")
    result = svc.list_cases(get_session(), _filters(), limit=limit, offset=offset)
    if request.args.get("format") == "geojson":
        return jsonify(
            {
                "type": "FeatureCollection",
                "total": result["total"],
                "features": [
                    {
                        "type": "Feature",
                        "id": c["id"],
                        "geometry": {
                            "type": "Point",
                            "coordinates": [c["point"]["lon"], c["point"]["lat"]],
                        },
                        "properties": c,
                    }
                    for c in result["items"]
                ],
            }
        )
    return jsonify(result)


@bp.get("/cases/workflow")
def workflow():  # type: ignore[no-untyped-def]
    """The state machine: every (state, action) -> next state and who may take it."""
    return jsonify(
        {
            "states": [{"code": s, "name": svc.STATUS_NAMES[s]} for s in svc.STATES],
            "actions": [{"code": a, "name": svc.ACTION_NAMES[a]} for a in svc.ACTIONS],
            "transitions": [
                {"from": s, "action": a, "to": t.to, "who": sorted(t.who)}
                for (s, a), t in svc.TRANSITIONS.items()
            ],
        }
    )


@bp.get("/cases/<ref>")
def get_case(ref: str):  # type: ignore[no-untyped-def]
    """One case with its events, photos, routing and merged duplicates (contact masked)."""
    return jsonify(svc.case_view(get_session(), ref))


# Duplicates are looked for nearby: a wider search is a way to browse other grids' cases.
MAX_DUPLICATE_RADIUS_M = 500


@bp.get("/cases/<ref>/duplicates")
def duplicates(ref: str):  # type: ignore[no-untyped-def]
    """Open cases of the same category near this one."""
    session = get_session()
    case = svc.case_view(session, ref, with_events=False)
    radius = int_arg("radius", minimum=1, maximum=MAX_DUPLICATE_RADIUS_M)
    return jsonify(
        svc.find_duplicates(
            session,
            case["point"]["lon"],
            case["point"]["lat"],
            case["category"],
            radius_m=radius,
            exclude_id=case["id"],
            scope=case_scope(session, current_principal()),
        )
    )


PARAM_FIELDS = (
    "worker_id",
    "grid_id",
    "into",
    "satisfaction",
    "reason",
    "x",
    "y",
    "crs",
    "within_m",
)


@bp.post("/cases/<ref>/actions/<action>")
def act(ref: str, action: str):  # type: ignore[no-untyped-def]
    """Take an action on a case; 409 lists the allowed ones when the state forbids it."""
    data = body()
    params = {k: data[k] for k in PARAM_FIELDS if data.get(k) not in (None, "")}
    if "solved" in data:
        params["solved"] = bool_field(data, "solved")
    for key in ("worker_id", "grid_id"):
        if key in params:
            params[key] = int_field(params, key, minimum=-MAX_INT)
    for key in ("x", "y", "within_m"):
        if key in params:
            params[key] = _float(params, key)
    for key in ("crs", "reason", "into"):
        if key in params and not isinstance(params[key], str | int):
            raise BadParameter(key, "must be a single value, not a list or an object")
    action_input = svc.ActionInput(
        note=(str(data["note"]) if data.get("note") else None),
        lon=_float(data, "lon"),
        lat=_float(data, "lat"),
        crs=data.get("where_crs") or None,
        photos=uploaded_photos(data, "photo"),
        params=params,
        version=int_field(data, "version", minimum=-MAX_INT),
    )
    requested = actor_from(data) if (data.get("actor") or data.get("actor_role")) else None
    session = get_session()
    p = current_principal()
    actor = replace(case_actor(p, requested), scope=grid_scope(session, p))
    with transaction(session):
        result = svc.perform(session, ref, action, actor, action_input)
    return jsonify(result)


@bp.get("/cases/photos/<int:photo_id>")
def photo(photo_id: int):  # type: ignore[no-untyped-def]
    """A case photo (re-encoded JPEG, no metadata)."""
    p = svc.photo(get_session(), photo_id)
    return Response(p.content, mimetype=p.mime, headers={"Cache-Control": "private, max-age=3600"})


@bp.get("/cases/export.<fmt>")
def export(fmt: str):  # type: ignore[no-untyped-def]
    """The case ledger as CSV or Excel, a timestamp column for every state (contacts masked)."""
    session = get_session()
    settings = svc.get_settings(session)
    content, mime, ext = reports.export_cases(
        session, fmt, _filters(), timezone_name=settings["timezone"]
    )
    record_personal_read(f"export cases.{fmt}", "case", None, ["masked"], kind="export")
    stamp = datetime.now(LOCAL_TZ).strftime("%Y%m%d-%H%M")
    return Response(
        content,
        mimetype=mime,
        headers={"Content-Disposition": f'attachment; filename="cases-{stamp}.{ext}"'},
    )


@bp.get("/cases/kpis")
def kpis():  # type: ignore[no-untyped-def]
    """KPIs per grid (level=), per worker, per category or overall, for cases created in from..to."""
    return jsonify(
        reports.kpis(
            get_session(),
            group=request.args.get("group", "grid"),
            level=int_arg("level", minimum=1, maximum=5, default=3) or 3,
            date_from=_moment("from", request.args.get("from")),
            date_to=_moment("to", request.args.get("to"), end=True),
            scope=case_scope(get_session(), current_principal()),
        )
    )


@bp.post("/cases/sweep")
def sweep():  # type: ignore[no-untyped-def]
    """Close verified cases whose rating window has passed."""
    session = get_session()
    with transaction(session):
        closed = svc.close_unrated(session)
    return jsonify({"closed": closed})


# ---------------------------------------------------------------- residents


def public_limits() -> dict[str, Any]:
    """The limits on public case endpoints: the configuration's, else the defaults."""
    cfg = current_app.config
    return {k: v if cfg.get(k) is None else cfg[k] for k, v in public_cases.DEFAULT_LIMITS.items()}


def count_public_try() -> Any:
    """Count a try on a public case endpoint against the caller's address (429 past the limit),
    committed at once so that it stays when the request then fails. Returns the function that
    gives the try back once it succeeded (in the caller's transaction)."""
    session = get_session()
    ip, limits, now = client_ip(), public_limits(), datetime.now(LOCAL_TZ)
    g.audit_skip = True  # the count is bookkeeping, not a change to audit
    public_cases.reserve(session, ip, limits, now=now)
    session.commit()
    g.audit_skip = False
    return lambda: public_cases.refund(session, ip, limits, now=now)


def public_lookup(code: str) -> tuple[Any, Any]:
    """Count the try, then find the case by its public code (404 the same way for anything
    else). Returns (the case, a function giving the try back once it succeeded)."""
    refund = count_public_try()
    case = public_cases.find(get_session(), code)
    if case is None:
        raise public_cases.not_found()
    return case, refund


@bp.get("/public/cases/<code>")
def public_case(code: str):  # type: ignore[no-untyped-def]
    """What a resident sees of a case by its public code (no personal data)."""
    case, refund = public_lookup(code)
    session = get_session()
    refund()
    g.audit_skip = True
    session.commit()
    return jsonify(svc.public_view(session, case))


@bp.get("/public/cases/<code>/photos/<int:photo_id>")
def public_photo(code: str, photo_id: int):  # type: ignore[no-untyped-def]
    """A photo of a case, by the case's public code (re-encoded JPEG, no metadata)."""
    case, refund = public_lookup(code)
    session = get_session()
    p = public_cases.photo(session, case, photo_id)
    refund()
    g.audit_skip = True
    session.commit()
    return Response(p.content, mimetype=p.mime, headers={"Cache-Control": "private, max-age=3600"})


@bp.post("/public/cases/<code>/rate")
def rate(code: str):  # type: ignore[no-untyped-def]
    """The reporter rates a verified case 1–5 and says whether the problem was solved; the
    secret from the report's answer (``secret`` or the ``X-Case-Secret`` header) or the phone
    given with the report (``phone``) proves who is rating."""
    data = body()
    case, refund = public_lookup(code)
    secret = data.get("secret") or request.headers.get("X-Case-Secret")
    if not public_cases.proves_reporter(case, secret, data.get("phone")):
        raise public_cases.ProofRequired(
            "评价需要上报时获得的凭证或上报时留的电话 / rating needs the secret given in the "
            "report's answer or the phone number given with the report"
        )
    params: dict[str, Any] = {"satisfaction": data.get("satisfaction")}
    if "solved" in data:
        params["solved"] = bool_field(data, "solved")
    session = get_session()
    with transaction(session):
        refund()
        svc.perform(
            session,
            case.id,
            "rate",
            svc.Actor("resident", name="居民"),
            svc.ActionInput(
                note=(str(data["note"]) if data.get("note") else None),
                params=params,
                version=int_field(data, "version", minimum=-MAX_INT),
            ),
        )
    return jsonify(svc.public_view(session, case))


# ---------------------------------------------------------------- cameras, categories, settings


@bp.post("/camera-events")
def camera_event():  # type: ignore[no-untyped-def]
    """A camera's analytics event: a case at the camera, or merged into the open one."""
    data = body()
    for name in ("camera", "camera_code", "event_type", "time", "description", "snapshot_base64"):
        if data.get(name) is not None and not isinstance(data[name], str | int | float):
            raise BadParameter(name, "must be a single value, not a list or an object")
    camera = data.get("camera") or data.get("camera_code")
    if not camera:
        raise BadParameter("camera", "is required (the camera code)")
    occurred = _moment("time", data.get("time"))
    snaps = uploaded_photos(data, "snapshot")
    session = get_session()
    need_camera(session, current_principal(), str(camera))
    with transaction(session):
        result = svc.camera_event(
            session,
            str(camera),
            str(data.get("event_type") or ""),
            occurred_at=occurred,
            snapshot=snaps[0] if snaps else None,
            description=(str(data["description"]) if data.get("description") else None),
        )
    return jsonify(result), 200 if result["merged"] else 201


@bp.get("/case-categories")
def case_categories():  # type: ignore[no-untyped-def]
    """Case categories with time limits (working hours) and escalation departments."""
    return jsonify(svc.categories(get_session()))


@bp.get("/case-settings")
def get_settings():  # type: ignore[no-untyped-def]
    """The case-loop settings."""
    return jsonify(svc.get_settings(get_session()))


@bp.put("/case-settings")
def put_settings():  # type: ignore[no-untyped-def]
    """Change settings (e.g. ``{"camera_review_required": true}``)."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadParameter("body", "must be a JSON object of settings")
    session = get_session()
    with transaction(session):
        result = svc.update_settings(session, data)
    return jsonify(result)


@bp.get("/calendar")
def calendar_days():  # type: ignore[no-untyped-def]
    """Holidays and make-up working days (year=)."""
    return jsonify(cal.calendar_rows(get_session(), int_arg("year", minimum=1900, maximum=2200)))


@bp.get("/calendar/deadline")
def deadline():  # type: ignore[no-untyped-def]
    """The deadline of ``days`` working days and ``hours`` working hours after ``start`` on the
    configured calendar (holidays skipped, make-up working days counted)."""
    start = _moment("start", request.args.get("start")) or datetime.now(LOCAL_TZ)
    args = dict(request.args)
    days = _float(args, "days") or 0.0
    hours = _float(args, "hours") or 0.0
    if "days" not in args and "hours" not in args:
        raise BadParameter("hours", "give hours and/or days (working time to add)")
    for name, value, most in (("days", days, 3650), ("hours", hours, 10000)):
        if value < 0:
            raise BadParameter(name, f"{value} is negative")
        if value > most:
            raise BadParameter(name, f"{value} is more than {most}")
    calendar = cal.load_calendar(get_session())
    end = calendar.add_time_limit(start, days=days, hours=hours)
    return jsonify(
        {
            "start": start.isoformat(),
            "days": days,
            "hours": hours,
            "hours_per_day": calendar.hours_per_day,
            "deadline": end.isoformat(),
        }
    )
