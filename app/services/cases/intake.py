"""Taking a report in: one statement writes the case with its first events and answers with
the case as listed; an idempotency key replays the first answer. Photos of a case."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

from geoalchemy2.shape import from_shape
from shapely.geometry import Point
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.errors import BadParameter, Conflict, NotFound, ValidationFailed
from app.models import (
    Case,
    CaseEvent,
    CasePhoto,
)
from app.models.case import CASE_SOURCES
from app.services import locate, public_cases
from app.services.calendar import CALENDAR_STAMP_SQL, CALENDARS, WorkCalendar
from app.services.cases.queries import (
    DUPLICATES_SQL,
    LIST_SQL,
    duplicate_view,
    resolve_now,
    row_view,
)
from app.services.cases.settings import get_category, merge_settings
from app.services.cases.states import SYSTEM, TRANSITIONS, Actor, IdempotencyMismatch
from app.services.photos import check_count as check_photo_count
from app.services.photos import clean_image

LOGGER = logging.getLogger(__name__)


def _request_hash(fields: dict[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(fields, sort_keys=True, ensure_ascii=False, default=str).encode()
    ).hexdigest()


@dataclass
class Report:
    """A case report as received: coordinates in their CRS, what, who, and the idempotency key."""

    x: float
    y: float
    category: str
    source: str = "resident"
    crs: str | None = None
    description: str | None = None
    reporter_contact: str | None = None
    reporter_name: str | None = None
    address: str | None = None
    idempotency_key: str | None = None
    photos: list[bytes] = field(default_factory=list)
    camera_id: int | None = None
    camera_event_type: str | None = None
    camera_event_at: datetime | None = None


# What a report needs besides the place, in one round trip: whether its idempotency key is
# stored already, the category, the settings and a fingerprint of the calendar (the calendar
# itself is kept per process, keyed by that fingerprint).
_REPORT_CONTEXT_SQL = text(
    f"""
    SELECT (SELECT id FROM "case" WHERE idempotency_key = :key) AS existing,
           (SELECT row_to_json(cc) FROM case_category cc WHERE cc.code = :category) AS category,
           (SELECT json_object_agg(s.key, s.value) FROM case_setting s) AS settings,
           ({CALENDAR_STAMP_SQL}) AS calendar_stamp,
           -- The category when some override area names it (by code: a foreign key since
           -- 0012); none: the locate need not look for override areas at all.
           (SELECT o.category FROM override_area o
            WHERE o.category = :category LIMIT 1) AS override_category
    """
)


@dataclass
class _ReportContext:
    existing: int | None
    category: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    calendar: WorkCalendar | None = None
    override_category: str | None = None


def _report_context(session: Session, category_code: str, key: str | None) -> _ReportContext:
    """Return the case stored under ``key`` if any, else the active category, the settings, the
    work calendar and whether override areas name the category, for a report."""
    existing, category, stored, stamp, override_category = session.execute(
        _REPORT_CONTEXT_SQL, {"category": category_code, "key": key}
    ).one()
    if existing is not None:
        return _ReportContext(existing)
    if category is None or not category["active"]:
        get_category(session, category_code)  # raises, naming the known categories
    settings = merge_settings(stored or {})
    calendar = CALENDARS.get(session, stamp, settings["work_periods"], settings["timezone"])
    return _ReportContext(None, category, settings, calendar, override_category)


# The report's answer reads the new row through the list query (the write's own rows are not
# visible to the rest of its statement, so the list query runs over what the INSERT returned).
assert LIST_SQL.count('FROM "case" c') == 1, "the report write reuses the list query"

# One statement writes a new case with its first events and answers with the case as listed,
# the ids of the events and the likely duplicates. A report whose idempotency key is already
# stored inserts nothing (a concurrent one with the same key waits for the first to commit).
_INSERT_REPORT_SQL = text(
    """
    WITH new_case AS (
        INSERT INTO "case" (
            code, category, description, source, reported_x, reported_y, reported_crs, geom,
            grid_id, assignee_id, department_id, escalation_level, camera_id, status, deadline,
            reporter_contact, reporter_name, address, idempotency_key, idempotency_hash, routing,
            camera_event_type, camera_event_count, last_camera_event_at, created_at, updated_at,
            version, reporter_secret_hash)
        SELECT 'SJ' || :day || lpad(s.n::text, greatest(6, length(s.n::text)), '0'),
               :category, :description, :source, :rx, :ry, :rcrs,
               ST_SetSRID(ST_MakePoint(:lon, :lat), 4326),
               :grid_id, :assignee_id, :department_id, :escalation_level, :camera_id, :status,
               :deadline, :contact, :name, :address, :key, :hash, CAST(:routing AS jsonb),
               :camera_event_type, :camera_event_count, :last_camera_event_at, :now, :now, 1,
               :secret_hash
        FROM (SELECT nextval('case_code_seq') AS n) s
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING *
    ),
    ev AS (
        INSERT INTO case_event (case_id, action, from_status, to_status, actor, actor_role,
                                actor_worker_id, at, note, geom, details)
        SELECT c.id, e.j ->> 'action', e.j ->> 'from_status', e.j ->> 'to_status',
               e.j ->> 'actor', e.j ->> 'actor_role', (e.j ->> 'actor_worker_id')::int, :now,
               e.j ->> 'note', c.geom, nullif(e.j -> 'details', 'null'::jsonb)
        FROM new_case c,
             jsonb_array_elements(CAST(:events AS jsonb)) WITH ORDINALITY AS e(j, n)
        ORDER BY e.n
        RETURNING id, action
    )
    SELECT v.*,
           (SELECT json_agg(ev.id ORDER BY ev.id) FROM ev) AS event_ids,
           (SELECT json_agg(dup ORDER BY dup.d, dup.id) FROM (__DUPLICATES__) dup)
               AS duplicates
    FROM (__LIST__) v
    """.replace("__LIST__", LIST_SQL.replace('FROM "case" c', "FROM new_case c")).replace(
        "__DUPLICATES__", DUPLICATES_SQL.replace(":exclude", "CAST(NULL AS int)")
    )
)


def _event_row(
    action: str,
    from_status: str | None,
    to_status: str,
    actor: Actor,
    note: str | None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "action": action,
        "from_status": from_status,
        "to_status": to_status,
        "actor": actor.label,
        "actor_role": actor.role,
        "actor_worker_id": actor.worker_id,
        "note": note,
        "details": details,
    }


def create_case(
    session: Session,
    report: Report,
    *,
    actor: Actor | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Store a report, route it, dispatch it to the owner and set its deadline.

    Returns ``{"case": view, "created": bool, "routing": …, "duplicates": […]}``. A report with
    an idempotency key seen before returns the stored case and creates nothing (a different
    report under the same key is a 409).

    One transaction of three or four statements: the key, category, settings and whether the
    category has override areas; the locate (grid and owner, then the override areas when there
    are any); one write of the case with its report and dispatch events that answers with the
    case and its likely duplicates. A retry is two: the first, then the stored case.
    """
    now = resolve_now(now)
    if report.source not in CASE_SOURCES:
        raise ValidationFailed(
            f"source '{report.source}' is not one of {', '.join(CASE_SOURCES)}", field="source"
        )
    if report.description and len(report.description) > 4000:
        raise ValidationFailed("description is longer than 4000 characters", field="description")
    fingerprint = _request_hash(
        {
            "x": report.x,
            "y": report.y,
            "crs": report.crs,
            "category": report.category,
            "source": report.source,
            "description": report.description,
            "contact": report.reporter_contact,
        }
    )
    key = (report.idempotency_key or "").strip() or None
    if key is not None and len(key) > 80:
        raise BadParameter("idempotency_key", "is longer than 80 characters")
    check_photo_count(len(report.photos))
    photos = [clean_image(blob) for blob in report.photos]  # a bad photo refuses the report
    context = _report_context(session, report.category, key)
    if context.existing is not None:  # a retry: answer with the stored case
        return _replay(session, key, fingerprint, now)
    category, settings, calendar = context.category, context.settings, context.calendar
    assert calendar is not None
    routing = locate.locate_point(
        session,
        report.x,
        report.y,
        report.crs,
        # A category routed by a departmental network (多网合一) is looked up like an override.
        category=context.override_category
        or (category["code"] if category and category.get("network_id") else None),
    )
    lon, lat = routing["point"]["lon"], routing["point"]["lat"]
    actor = actor or Actor("resident" if report.source == "resident" else "system")
    review = report.source == "camera" and bool(settings["camera_review_required"])
    assignment: dict[str, Any] = {
        "grid_id": routing["grid"]["id"] if routing["grid"] else None,
        "assignee_id": None,
        "department_id": None,
        "escalation_level": 0,
    }
    events = [_event_row("report", None, "reported", actor, report.description)]
    status = "reported"
    if routing.get("owner") and not review:
        # The automatic dispatch, written with the report: the same step as perform() takes.
        step = TRANSITIONS[("reported", "dispatch")]
        assert SYSTEM.role in step.who
        fields, details = assignment_from_routing(routing, assignment["grid_id"], None)
        assignment.update(fields)
        status = step.to
        events.append(_event_row("dispatch", "reported", status, SYSTEM, "按网格自动派单", details))
    tz = settings["timezone"]
    # The reporter's proof, given once in this answer; only its hash is kept.
    secret, secret_hash = public_cases.new_secret()
    row = (
        session.execute(
            _INSERT_REPORT_SQL,
            {
                "day": f"{now.astimezone(ZoneInfo(tz)):%Y%m%d}",
                "category": category["code"],
                "description": report.description,
                "source": report.source,
                "rx": report.x,
                "ry": report.y,
                "rcrs": routing["crs"],
                "lon": lon,
                "lat": lat,
                **assignment,
                "camera_id": report.camera_id,
                "status": status,
                "deadline": calendar.add_time_limit(now, hours=category["time_limit_hours"]),
                "contact": report.reporter_contact or None,
                "name": report.reporter_name or None,
                "address": report.address,
                "key": key,
                "hash": fingerprint,
                "routing": json.dumps(routing, ensure_ascii=False),
                "camera_event_type": report.camera_event_type,
                "camera_event_count": 1 if report.camera_id else 0,
                "last_camera_event_at": (
                    (report.camera_event_at or now) if report.camera_id else None
                ),
                "now": now,
                "events": json.dumps(events, ensure_ascii=False),
                "r": float(settings["duplicate_radius_m"]),
                "secret_hash": secret_hash,
            },
        )
        .mappings()
        .first()
    )
    if row is None:  # a concurrent report with the same key was stored first
        return _replay(session, key, fingerprint, now)
    for content, mime, width, height in photos:
        session.add(
            CasePhoto(
                case_id=row["id"],
                event_id=row["event_ids"][0],
                content=content,
                mime=mime,
                width=width,
                height=height,
            )
        )
    if photos:
        session.flush()
    return {
        "case": row_view(SimpleNamespace(**row)),
        "created": True,
        "routing": routing,
        "duplicates": [duplicate_view(d) for d in row["duplicates"] or []],
        "review_required": review,
        "secret": secret,
    }


_REPLAY_SQL = text(
    "SELECT v.*, k.idempotency_hash, k.routing FROM ("
    + LIST_SQL
    + ' WHERE c.idempotency_key = :key) v JOIN "case" k ON k.id = v.id'
)


def _replay(session: Session, key: str | None, fingerprint: str, now: datetime) -> dict[str, Any]:
    """Answer a retry with the case stored under its key (one statement)."""
    row = session.execute(_REPLAY_SQL, {"key": key, "now": now}).mappings().one()
    if row["idempotency_hash"] and row["idempotency_hash"] != fingerprint:
        raise IdempotencyMismatch(
            f"idempotency key '{key}' was used for a different report ({row['code']})",
            case=row["code"],
        )
    return {
        "case": row_view(SimpleNamespace(**row)),
        "created": False,
        "routing": row["routing"],
        "duplicates": [],
        # Only a hash of the secret is stored: a retry cannot give it again (the reporter's
        # phone still proves the report).
        "secret": None,
    }


def assignment_from_routing(
    routing: dict[str, Any], grid_id: int | None, code: str | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return who holds a case routed by ``routing`` (grid, assignee or department, level) and
    what the dispatch event records; a place nobody owns is a conflict."""
    owner = routing.get("owner")
    if not owner:
        raise Conflict(
            f"nobody owns the place of case {code} "
            f"({routing['point']['lon']:.6f}, {routing['point']['lat']:.6f}): "
            "dispatch it to a worker by worker_id",
            case=code,
            location={
                "type": "Point",
                "coordinates": [routing["point"]["lon"], routing["point"]["lat"]],
            },
        )
    fields: dict[str, Any] = {
        "grid_id": routing["grid"]["id"] if routing.get("grid") else grid_id,
    }
    if owner.get("kind") == "department":
        fields.update(assignee_id=None, department_id=owner["department_id"], escalation_level=2)
    else:
        fields.update(assignee_id=owner["worker_id"], department_id=None, escalation_level=0)
    details = {"assignee": owner, "grid": routing.get("grid"), "method": routing.get("method")}
    return fields, details


def record_event(
    session: Session,
    case: Case,
    action: str,
    from_status: str | None,
    to_status: str,
    actor: Actor,
    now: datetime,
    note: str | None,
    where: tuple[float, float] | None,
    details: dict[str, Any] | None = None,
) -> CaseEvent:
    """Add the ``case_event`` of one transition (who, when, where, what) and flush it."""
    event = CaseEvent(
        case_id=case.id,
        action=action,
        from_status=from_status,
        to_status=to_status,
        actor=actor.label,
        actor_role=actor.role,
        actor_worker_id=actor.worker_id,
        at=now,
        note=note,
        geom=from_shape(Point(*where), srid=4326) if where else None,
        details=details,
    )
    session.add(event)
    session.flush()
    return event


def photo_count(session: Session, case_id: int) -> int:
    """Return how many photos the case holds."""
    return int(
        session.scalar(
            select(func.count()).select_from(CasePhoto).where(CasePhoto.case_id == case_id)
        )
        or 0
    )


def store_photo(session: Session, case: Case, event: CaseEvent | None, data: bytes) -> CasePhoto:
    """Clean ``data`` (an image) and store it as a photo of the case (and of ``event``)."""
    content, mime, width, height = clean_image(data)
    photo = CasePhoto(
        case_id=case.id,
        event_id=event.id if event else None,
        content=content,
        mime=mime,
        width=width,
        height=height,
    )
    session.add(photo)
    session.flush()
    return photo


def photo(session: Session, photo_id: int) -> CasePhoto:
    """Return a stored photo or raise NotFound."""
    p = session.get(CasePhoto, photo_id)
    if p is None:
        raise NotFound(f"photo {photo_id} does not exist", photo_id=photo_id)
    return p
