"""The case loop (事件闭环): report, dispatch, handle, escalate, verify, rate.

The workflow is the explicit table ``TRANSITIONS``: (state, action) -> next state and who may
act. Every action is one business operation recording a ``case_event`` (actor, time, place,
note); the caller wraps it in ``app.db.transaction``. An action the state does not allow raises
``IllegalTransition`` (409) listing the allowed ones; a stale ``version`` raises ``StaleVersion``
(409). Routing comes from ``app.services.locate``.

Who may act is named by the parts an actor can play on a case:

- ``centre``: the command centre (指挥中心) — dispatches, transfers, cancels, merges, verifies.
- ``handler``: whoever holds the case now — the assigned worker or chief (by worker id), or a
  member of the department the case was escalated to (by department id).
- ``supervisor``: a micro-grid chief or grid chief of the case's grid or one of its ancestors.
- ``resident``: the person who reported it, known by the case code — rates the result.
- ``system``: the platform itself (automatic dispatch, rating timeout, categories without review).

Authentication is not this module's job: the API passes the actor it was given.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

from geoalchemy2.shape import from_shape
from shapely.geometry import Point
from sqlalchemy import any_, func, literal, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from app.errors import AppError, BadParameter, Conflict, NotFound, ValidationFailed
from app.models import (
    Camera,
    CameraEvent,
    Case,
    CaseCategory,
    CaseEvent,
    CaseMerge,
    CasePhoto,
    CaseSetting,
    Department,
    Worker,
)
from app.models.case import CASE_SOURCES, CASE_STATUSES
from app.privacy import mask_name, mask_phone
from app.services import locate, public_cases
from app.services.calendar import WorkCalendar
from app.services.photos import MAX_PHOTOS_PER_CASE, clean_image
from app.services.photos import check_count as check_photo_count

LOGGER = logging.getLogger(__name__)

STATUS_NAMES = {
    "reported": "已上报",
    "dispatched": "已派单",
    "accepted": "处置中",
    "resolved": "已反馈",
    "verified": "已核查",
    "closed": "已结案",
    "cancelled": "已作废",
}
ACTION_NAMES = {
    "report": "上报",
    "dispatch": "派单",
    "accept": "接单",
    "resolve": "处置反馈",
    "verify": "核查通过",
    "reopen": "核查不通过",
    "rate": "评价",
    "close": "结案",
    "escalate": "上报升级",
    "transfer": "转派",
    "return": "退回",
    "cancel": "作废",
    "merge": "合并",
}
SOURCE_NAMES = {
    "resident": "居民上报",
    "patrol": "网格员巡查",
    "camera": "视频智能分析",
    "hotline": "热线",
    "superior": "上级交办",
}
MAX_ID = 2**31 - 1
ACTOR_ROLES = ("centre", "worker", "micro_chief", "department", "resident", "system")
ESCALATION_NAMES = {0: "网格员", 1: "微网格长", 2: "职能部门"}
OPEN_STATES = ("reported", "dispatched", "accepted", "resolved", "verified")
# States in which the case still waits for handling: these can be overdue.
PENDING_STATES = ("reported", "dispatched", "accepted")
CANCEL_REASONS = ("duplicate", "not_a_problem", "false_alarm", "other")

SETTINGS_DEFAULTS: dict[str, Any] = {
    # Camera cases wait in 'reported' for the centre to review them before dispatch.
    "camera_review_required": False,
    # The same camera and event type firing again within this window joins the open case.
    "camera_dedup_minutes": 30,
    # Open cases of the same category within this distance are offered as likely duplicates.
    "duplicate_radius_m": 50,
    # A verified case the resident does not rate is closed after this many hours.
    "rating_timeout_hours": 72,
    "work_periods": [["08:30", "12:00"], ["13:30", "18:00"]],
    "timezone": "Asia/Shanghai",
}
_SETTING_TYPES: dict[str, type | tuple[type, ...]] = {
    "camera_review_required": bool,
    "camera_dedup_minutes": (int, float),
    "duplicate_radius_m": (int, float),
    "rating_timeout_hours": (int, float),
    "work_periods": list,
    "timezone": str,
}


@dataclass(frozen=True)
class Transition:
    """Where an action leads from a state, and which parts may take it."""

    to: str
    who: frozenset[str]


def _t(to: str, *who: str) -> Transition:
    return Transition(to, frozenset(who))


# The workflow. Keys absent from this table are illegal (409).
TRANSITIONS: dict[tuple[str, str], Transition] = {
    ("reported", "dispatch"): _t("dispatched", "centre", "system"),
    ("reported", "cancel"): _t("cancelled", "centre"),
    ("reported", "merge"): _t("cancelled", "centre"),
    ("dispatched", "accept"): _t("accepted", "handler"),
    ("dispatched", "escalate"): _t("dispatched", "handler", "supervisor", "centre"),
    ("dispatched", "transfer"): _t("dispatched", "handler", "centre"),
    ("dispatched", "return"): _t("reported", "handler"),
    ("dispatched", "cancel"): _t("cancelled", "centre"),
    ("dispatched", "merge"): _t("cancelled", "centre"),
    ("accepted", "resolve"): _t("resolved", "handler"),
    ("accepted", "escalate"): _t("dispatched", "handler", "supervisor", "centre"),
    ("accepted", "transfer"): _t("dispatched", "handler", "centre"),
    ("accepted", "return"): _t("reported", "handler"),
    ("accepted", "cancel"): _t("cancelled", "centre"),
    ("accepted", "merge"): _t("cancelled", "centre"),
    ("resolved", "verify"): _t("verified", "supervisor", "centre", "system"),
    ("resolved", "reopen"): _t("dispatched", "supervisor", "centre"),
    ("verified", "rate"): _t("closed", "resident"),
    ("verified", "close"): _t("closed", "centre", "system"),
}
ACTIONS: tuple[str, ...] = tuple(sorted({a for _, a in TRANSITIONS}))
STATES: tuple[str, ...] = CASE_STATUSES
# Actions that must say why.
NOTE_REQUIRED = frozenset({"escalate", "return", "resolve", "reopen", "cancel", "transfer"})


class IllegalTransition(Conflict):
    """The action is not allowed in the case's state; ``allowed`` lists what is."""

    code = "illegal_transition"


class StaleVersion(Conflict):
    """The case changed since the caller read it."""

    code = "stale_version"


class ActionForbidden(AppError):
    """The actor may not take this action on this case."""

    http_status = 403
    code = "forbidden"


class IdempotencyMismatch(Conflict):
    """An idempotency key was reused for a different report."""

    code = "idempotency_mismatch"


@dataclass(frozen=True)
class Actor:
    """Who acts: a role, and the worker or department behind it when there is one."""

    role: str
    worker_id: int | None = None
    department_id: int | None = None
    name: str | None = None
    # The grids the acting account answers for (from app.auth.policy.grid_scope); None: every
    # grid. Where a case may be dispatched, transferred or merged to is bounded by it.
    scope: frozenset[int] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.role not in ACTOR_ROLES:
            raise BadParameter(
                "actor.role", f"'{self.role}' is not one of {', '.join(ACTOR_ROLES)}"
            )

    @property
    def label(self) -> str:
        parts = [self.role]
        if self.worker_id is not None:
            parts.append(f"worker:{self.worker_id}")
        if self.department_id is not None:
            parts.append(f"department:{self.department_id}")
        if self.name:
            parts.append(self.name)
        return " ".join(parts)[:80]


SYSTEM = Actor("system", name="系统")


@dataclass
class ActionInput:
    """What an action may carry: a note, where it happened, photos and action parameters."""

    note: str | None = None
    lon: float | None = None
    lat: float | None = None
    crs: str | None = None
    photos: list[bytes] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    version: int | None = None


# ---------------------------------------------------------------- settings


def get_settings(session: Session) -> dict[str, Any]:
    """Return the case-loop settings: stored values over the defaults."""
    return _merge_settings(dict(session.execute(select(CaseSetting.key, CaseSetting.value)).all()))


def _merge_settings(stored: dict[str, Any]) -> dict[str, Any]:
    return {**SETTINGS_DEFAULTS, **{k: v for k, v in stored.items() if k in SETTINGS_DEFAULTS}}


def update_settings(session: Session, changes: dict[str, Any]) -> dict[str, Any]:
    """Change settings after checking each key and value; return all settings."""
    for key, value in changes.items():
        if key not in SETTINGS_DEFAULTS:
            raise BadParameter(key, f"unknown setting (known: {', '.join(SETTINGS_DEFAULTS)})")
        kind = _SETTING_TYPES[key]
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise BadParameter(key, f"{value!r} has the wrong type")
        if key in ("camera_dedup_minutes", "duplicate_radius_m", "rating_timeout_hours") and (
            value <= 0
        ):
            raise BadParameter(key, f"{value} must be positive")
        if key in ("work_periods", "timezone"):
            from app.services.calendar import WorkCalendar

            probe = {**get_settings(session), key: value}
            try:
                WorkCalendar.build({}, probe["work_periods"], probe["timezone"]).tz  # noqa: B018
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                raise BadParameter(key, f"{value!r} is not usable: {exc}") from exc
        row = session.get(CaseSetting, key)
        if row is None:
            session.add(CaseSetting(key=key, value=value))
        else:
            row.value = value
            row.updated_at = datetime.now(UTC)
    session.flush()
    return get_settings(session)


# ---------------------------------------------------------------- categories


def categories(session: Session, *, include_inactive: bool = False) -> list[dict[str, Any]]:
    """Return the case categories with their time limits and escalation departments."""
    stmt = select(CaseCategory).order_by(CaseCategory.id)
    if not include_inactive:
        stmt = stmt.where(CaseCategory.active.is_(True))
    depts = {d.code: d for d in session.scalars(select(Department))}
    settings = get_settings(session)
    per_day = WorkCalendar.build({}, settings["work_periods"], settings["timezone"]).hours_per_day
    out = []
    for c in session.scalars(stmt):
        dept = depts.get(c.escalation_department_code or "")
        days, hours = divmod(c.time_limit_hours, per_day)
        out.append(
            {
                "code": c.code,
                "name": c.name,
                "time_limit_hours": c.time_limit_hours,
                # The same limit in working days and hours (a day is the sum of the work periods).
                "time_limit": {"days": int(days), "hours": round(hours, 2)},
                "time_limit_days": round(c.time_limit_hours / per_day, 3),
                "escalation_department": (
                    {"id": dept.id, "code": dept.code, "name": dept.name} if dept else None
                ),
                "verify_required": c.verify_required,
                "camera_event_types": list(c.camera_event_types or []),
                "description": c.description,
                "active": c.active,
            }
        )
    return out


def get_category(session: Session, code: str) -> CaseCategory:
    """Return the active category with this code or raise 422 naming the known ones."""
    cat = session.scalar(select(CaseCategory).where(CaseCategory.code == code))
    if cat is None or not cat.active:
        known = session.scalars(
            select(CaseCategory.code).where(CaseCategory.active.is_(True)).order_by(CaseCategory.id)
        ).all()
        raise ValidationFailed(
            f"category '{code}' is unknown (known: {', '.join(known)})", field="category"
        )
    return cat


# ---------------------------------------------------------------- reading


def _now(now: datetime | None) -> datetime:
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ValidationFailed(f"{now.isoformat()} has no time zone")
    return now


def get_case(session: Session, ref: int | str, *, lock: bool = False) -> Case:
    """Return the case with this id or code, or raise NotFound."""
    stmt = select(Case)
    if isinstance(ref, str) and ref.isascii() and ref.isdigit():
        ref = int(ref)
    if isinstance(ref, int):
        if not 0 < ref <= MAX_ID:  # ids are PostgreSQL integers
            raise NotFound(f"case {ref} does not exist", case=str(ref))
        stmt = stmt.where(Case.id == ref)
    else:
        stmt = stmt.where(Case.code == ref)
    if lock:
        stmt = stmt.with_for_update()
    case = session.scalar(stmt)
    if case is None:
        raise NotFound(f"case {ref} does not exist", case=str(ref))
    return case


def allowed_actions(state: str) -> list[str]:
    """Return the actions the workflow allows in ``state``."""
    return [a for (s, a) in TRANSITIONS if s == state]


_LIST_SQL = """
    SELECT c.id, c.code, c.public_code, c.category, cat.name AS category_name, c.description,
           c.source, c.status,
           ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat, c.reported_x, c.reported_y, c.reported_crs,
           c.grid_id, g.code AS grid_code, g.name AS grid_name,
           c.assignee_id, w.name AS assignee_name, w.phone AS assignee_phone,
           c.department_id, d.name AS department_name, c.escalation_level,
           c.deadline, c.created_at, c.updated_at, c.resolved_at, c.closed_at,
           c.satisfaction, c.solved, c.reporter_contact, c.reporter_name, c.address,
           c.version, c.merged_into_id, c.camera_id, cam.code AS camera_code,
           c.camera_event_type, c.camera_event_count,
           (c.status IN ('reported', 'dispatched', 'accepted') AND c.deadline < :now) AS overdue,
           count(*) OVER () AS total
    FROM "case" c
    JOIN case_category cat ON cat.code = c.category
    LEFT JOIN grid g ON g.id = c.grid_id
    LEFT JOIN worker w ON w.id = c.assignee_id
    LEFT JOIN department d ON d.id = c.department_id
    LEFT JOIN camera cam ON cam.id = c.camera_id
"""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _row_view(r: Any, *, personal: bool = False) -> dict[str, Any]:
    return {
        "id": r.id,
        "code": r.code,
        "public_code": public_cases.display(r.public_code),
        "category": r.category,
        "category_name": r.category_name,
        "description": r.description,
        "source": r.source,
        "source_name": SOURCE_NAMES.get(r.source, r.source),
        "status": r.status,
        "status_name": STATUS_NAMES[r.status],
        "point": {"lon": round(r.lon, 7), "lat": round(r.lat, 7)},
        "reported": {"x": r.reported_x, "y": r.reported_y, "crs": r.reported_crs},
        "address": r.address,
        "grid": {"id": r.grid_id, "code": r.grid_code, "name": r.grid_name} if r.grid_id else None,
        "assignee": (
            {
                "id": r.assignee_id,
                "name": r.assignee_name,
                "phone": r.assignee_phone,
            }
            if r.assignee_id
            else None
        ),
        "department": (
            {"id": r.department_id, "name": r.department_name} if r.department_id else None
        ),
        "escalation_level": r.escalation_level,
        "escalation_name": ESCALATION_NAMES[r.escalation_level],
        "deadline": _iso(r.deadline),
        "overdue": bool(r.overdue),
        "created_at": _iso(r.created_at),
        "updated_at": _iso(r.updated_at),
        "resolved_at": _iso(r.resolved_at),
        "closed_at": _iso(r.closed_at),
        "satisfaction": r.satisfaction,
        "solved": r.solved,
        "reporter_contact": r.reporter_contact if personal else mask_phone(r.reporter_contact),
        "reporter_name": r.reporter_name if personal else mask_name(r.reporter_name),
        "version": r.version,
        "merged_into_id": r.merged_into_id,
        "camera": (
            {
                "id": r.camera_id,
                "code": r.camera_code,
                "event_type": r.camera_event_type,
                "event_count": r.camera_event_count,
            }
            if r.camera_id
            else None
        ),
        "allowed_actions": allowed_actions(r.status),
    }


@dataclass
class CaseFilter:
    """Filters of a case list; every field is optional."""

    status: list[str] | None = None
    category: str | None = None
    source: str | None = None
    grid_id: int | None = None
    assignee_id: int | None = None
    department_id: int | None = None
    overdue: bool | None = None
    open_only: bool = False
    code: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    bbox: tuple[float, float, float, float] | None = None
    # The cases the caller may see (``app.auth.policy.CaseScope``: anything with ``sql()``).
    scope: Any = None


def _where(f: CaseFilter) -> tuple[str, dict[str, Any]]:
    where: list[str] = []
    params: dict[str, Any] = {}
    if f.status:
        unknown = [s for s in f.status if s not in CASE_STATUSES]
        if unknown:
            raise BadParameter("status", f"unknown state(s) {', '.join(unknown)}")
        where.append("c.status = ANY(:status)")
        params["status"] = f.status
    if f.open_only:
        where.append("c.status NOT IN ('closed', 'cancelled')")
    if f.category:
        where.append("c.category = :category")
        params["category"] = f.category
    if f.source:
        where.append("c.source = :source")
        params["source"] = f.source
    if f.grid_id is not None:
        # A grid filter covers the grid and everything below it.
        where.append(
            """c.grid_id IN (WITH RECURSIVE t AS (SELECT id FROM grid WHERE id = :grid
                  UNION ALL SELECT g2.id FROM grid g2 JOIN t ON g2.parent_id = t.id) SELECT id FROM t)"""
        )
        params["grid"] = f.grid_id
    if f.assignee_id is not None:
        where.append("c.assignee_id = :assignee")
        params["assignee"] = f.assignee_id
    if f.department_id is not None:
        where.append("c.department_id = :department")
        params["department"] = f.department_id
    if f.overdue is not None:
        cond = "(c.status IN ('reported', 'dispatched', 'accepted') AND c.deadline < :now)"
        where.append(cond if f.overdue else f"NOT {cond}")
    if f.code:
        where.append("c.code = :code")
        params["code"] = f.code
    if f.created_from:
        where.append("c.created_at >= :cfrom")
        params["cfrom"] = f.created_from
    if f.created_to:
        where.append("c.created_at < :cto")
        params["cto"] = f.created_to
    if f.bbox:
        where.append("c.geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)")
        params.update(x0=f.bbox[0], y0=f.bbox[1], x1=f.bbox[2], y1=f.bbox[3])
    if f.scope is not None:
        cond, scope_params = f.scope.sql("c")
        where.append(cond)
        params.update(scope_params)
    return (" WHERE " + " AND ".join(where)) if where else "", params


def list_cases(
    session: Session,
    filters: CaseFilter | None = None,
    *,
    limit: int = 200,
    offset: int = 0,
    now: datetime | None = None,
    personal: bool = False,
) -> dict[str, Any]:
    """Return cases matching ``filters``, overdue first, then by deadline; contacts masked."""
    now = _now(now)
    where, params = _where(filters or CaseFilter())
    rows = session.execute(
        text(
            _LIST_SQL + where + " ORDER BY overdue DESC, "
            "(c.status IN ('closed', 'cancelled')) ASC, c.deadline ASC NULLS LAST, c.id DESC "
            "LIMIT :limit OFFSET :offset"
        ),
        {**params, "now": now, "limit": limit, "offset": offset},
    ).all()
    return {
        "items": [_row_view(r, personal=personal) for r in rows],
        "total": rows[0].total if rows else 0,
        "limit": limit,
        "offset": offset,
    }


def case_view(
    session: Session,
    ref: int | str,
    *,
    now: datetime | None = None,
    personal: bool = False,
    with_events: bool = True,
) -> dict[str, Any]:
    """Return one case with its events, photos, routing and merged duplicates."""
    case = get_case(session, ref)
    now = _now(now)
    row = session.execute(text(_LIST_SQL + " WHERE c.id = :id"), {"id": case.id, "now": now}).one()
    view = _row_view(row, personal=personal)
    if with_events:
        view["events"] = events_of(session, case.id)
        view["photos"] = [
            {"id": p.id, "url": f"/api/cases/photos/{p.id}", "event_id": p.event_id}
            for p in session.execute(
                select(CasePhoto.id, CasePhoto.event_id)
                .where(CasePhoto.case_id == case.id)
                .order_by(CasePhoto.id)
            )
        ]
        view["routing"] = case.routing
        view["merged"] = [
            {"id": i, "code": c}
            for i, c in session.execute(
                select(Case.id, Case.code)
                .join(CaseMerge, CaseMerge.case_id == Case.id)
                .where(CaseMerge.into_case_id == case.id)
                .order_by(Case.id)
            )
        ]
    return view


ACTOR_ROLE_NAMES = {
    "centre": "指挥中心",
    "worker": "网格员",
    "micro_chief": "网格长",
    "department": "职能部门",
    "resident": "居民",
    "system": "系统",
}


def actor_name(label: str | None, role: str | None, worker_name: str | None = None) -> str:
    """Who acted, in words: the role in Chinese and the person's name ("网格员 张三"), from the
    recorded actor label ("worker worker:5 张三") and the worker's name when there is one."""
    role = role or (label or "").split(" ", 1)[0]
    role_name = ACTOR_ROLE_NAMES.get(role, "")
    words = [
        w for w in (label or "").split(" ")[1:] if not w.startswith(("worker:", "department:"))
    ]
    name = worker_name or " ".join(words).strip()
    if not role_name:
        return name or "—"
    if not name or name == role_name or role in ("resident", "system"):
        return role_name
    return f"{role_name} {name}"


def events_of(session: Session, case_id: int) -> list[dict[str, Any]]:
    """Return the recorded transitions of a case, oldest first."""
    rows = session.execute(
        text(
            """SELECT e.id, e.action, e.from_status, e.to_status, e.actor, e.actor_role,
                      e.actor_worker_id, e.at, e.note, e.details, w.name AS worker_name,
                      ST_X(e.geom) AS lon, ST_Y(e.geom) AS lat
               FROM case_event e LEFT JOIN worker w ON w.id = e.actor_worker_id
               WHERE e.case_id = :id ORDER BY e.at, e.id"""
        ),
        {"id": case_id},
    ).all()
    return [
        {
            "id": r.id,
            "action": r.action,
            "action_name": ACTION_NAMES.get(r.action, r.action),
            "from_status": r.from_status,
            "to_status": r.to_status,
            "actor": r.actor,
            "actor_name": actor_name(r.actor, r.actor_role, r.worker_name),
            "actor_role": r.actor_role,
            "actor_worker_id": r.actor_worker_id,
            "at": _iso(r.at),
            "note": r.note,
            "details": r.details,
            "point": {"lon": r.lon, "lat": r.lat} if r.lon is not None else None,
        }
        for r in rows
    ]


def public_view(session: Session, case: Case, *, now: datetime | None = None) -> dict[str, Any]:
    """Return what a resident sees of a case (found by its public code): state and timeline.

    No personal data: no reporter's name or phone, no worker's name or phone, no internal code,
    id or other case."""
    view = case_view(session, case.id, now=now)
    scrub = personal_scrubber(
        [case.reporter_name, (view["assignee"] or {}).get("name"), *routing_names(case.routing)]
    )
    return {
        "code": view["public_code"],
        "category_name": view["category_name"],
        "description": scrub(view["description"]),
        "status": view["status"],
        "status_name": view["status_name"],
        "point": view["point"],
        "grid": {"name": view["grid"]["name"]} if view["grid"] else None,
        "created_at": view["created_at"],
        "deadline": view["deadline"],
        "overdue": view["overdue"],
        "resolved_at": view["resolved_at"],
        "closed_at": view["closed_at"],
        "satisfaction": view["satisfaction"],
        "solved": view["solved"],
        "can_rate": view["status"] == "verified",
        "version": view["version"],
        "timeline": [
            {
                "action_name": e["action_name"],
                "status_name": STATUS_NAMES[e["to_status"]],
                "at": e["at"],
                # Handling notes are the feedback residents wait for; internal notes stay inside.
                "note": scrub(e["note"]) if e["action"] in ("resolve", "rate", "cancel") else None,
            }
            for e in view["events"]
        ],
        "photos": [
            f"/api/public/cases/{view['public_code']}/photos/{p['id']}" for p in view["photos"]
        ],
    }


def routing_names(routing: dict[str, Any] | None) -> list[str]:
    """The names of the workers in a case's routing (owner and fallback ladder)."""
    routing = routing or {}
    people = [routing.get("owner") or {}, *(routing.get("fallback") or [])]
    return [p.get("name") or "" for p in people if p.get("kind") == "worker"]


def personal_scrubber(names: list[str | None]) -> Any:
    """Return a function masking phone and ID numbers, and the given people's names, in a text
    a resident will read (a description or note may quote them)."""
    from app.logmask import mask_text

    known = sorted({n for n in names if n and len(n) >= 2}, key=len, reverse=True)

    def scrub(text_: str | None) -> str | None:
        if not text_:
            return text_
        out = mask_text(text_)
        for name in known:
            out = out.replace(name, mask_name(name) or "")
        return out

    return scrub


def public_report_answer(result: dict[str, Any]) -> dict[str, Any]:
    """The answer to a resident's report: the public code, the state, the reporter's secret and
    who is responsible (the grid, and the handler's role with a masked name) — nothing else."""
    case = result["case"]
    routing = result.get("routing") or {}
    owner = routing.get("owner") or locate.COMMAND_CENTRE
    grid = routing.get("grid") or {}
    worker = owner.get("kind") == "worker"
    return {
        "created": result["created"],
        "code": case["public_code"],
        "status": case["status"],
        "status_name": case["status_name"],
        "secret": result.get("secret"),
        "responsible": {
            "grid": grid.get("name"),
            # A worker's role and masked name; a department or the centre by its own name.
            "role_name": owner.get("role_name") if worker else None,
            "name": mask_name(owner.get("name")) if worker else owner.get("name"),
        },
    }


# Open cases of a category near a point (the new case of a report is not yet visible to it).
_DUPLICATES_SQL = """
    SELECT c.id, c.code, c.status, c.description, c.created_at,
           ST_Distance(c.geom::geography, p.pt::geography) AS d
    FROM "case" c, (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS pt) p
    WHERE c.category = :category AND c.status NOT IN ('closed', 'cancelled')
      AND (CAST(:exclude AS int) IS NULL OR c.id <> :exclude)
      AND ST_DWithin(c.geom::geography, p.pt::geography, :r)
    ORDER BY d, c.id
    LIMIT 20
"""


def _duplicate_view(r: Any) -> dict[str, Any]:
    created = r["created_at"]
    if isinstance(created, str):  # from a JSON aggregate
        created = datetime.fromisoformat(created)
    return {
        "id": r["id"],
        "code": r["code"],
        "status": r["status"],
        "status_name": STATUS_NAMES[r["status"]],
        "description": r["description"],
        "created_at": _iso(created),
        "distance_m": round(float(r["d"]), 1),
    }


def find_duplicates(
    session: Session,
    lon: float,
    lat: float,
    category: str,
    *,
    radius_m: float | None = None,
    exclude_id: int | None = None,
    scope: Any = None,
) -> list[dict[str, Any]]:
    """Return open cases of ``category`` within ``radius_m`` metres of a point, nearest first
    (``scope``, an ``app.auth.policy.CaseScope``: only the cases it lets one see)."""
    if radius_m is None:
        radius_m = float(get_settings(session)["duplicate_radius_m"])
    sql, extra = _DUPLICATES_SQL, {}
    if scope is not None:
        cond, extra = scope.sql("c")
        sql = sql.replace("WHERE c.category = :category", f"WHERE {cond} AND c.category = :category")
    rows = session.execute(
        text(sql),
        {"lon": lon, "lat": lat, "category": category, "exclude": exclude_id, "r": radius_m}
        | extra,
    ).mappings()
    return [_duplicate_view(r) for r in rows]


# ---------------------------------------------------------------- creating


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
_CALENDAR_STAMP = (
    "SELECT count(*) || ':' || coalesce(sum(hashtextextended(w.day::text || w.is_workday::text,"
    " 0)), 0) FROM work_calendar w"
)
_REPORT_CONTEXT_SQL = text(
    f"""
    SELECT (SELECT id FROM "case" WHERE idempotency_key = :key) AS existing,
           (SELECT row_to_json(cc) FROM case_category cc WHERE cc.code = :category) AS category,
           (SELECT json_object_agg(s.key, s.value) FROM case_setting s) AS settings,
           ({_CALENDAR_STAMP}) AS calendar_stamp,
           -- The category as override areas name it (by code, or by its Chinese name as drawn
           -- on the e-map); none: the locate need not look for override areas at all.
           (SELECT o.category FROM override_area o
            WHERE o.category = :category
               OR o.category = (SELECT cc.name FROM case_category cc WHERE cc.code = :category)
            ORDER BY o.category = :category DESC LIMIT 1) AS override_category
    """
)
_CALENDAR_ROWS_SQL = text(
    f"""
    SELECT coalesce(json_agg(json_build_array(w.day, w.is_workday) ORDER BY w.day), '[]'),
           ({_CALENDAR_STAMP})
    FROM work_calendar w
    """
)


class _CalendarCache:
    """Work calendars by (calendar fingerprint, work periods, time zone).

    The fingerprint is read with every report (a digest of the few dozen override rows), so a
    calendar loaded or edited by any process is seen by the next report; nothing goes stale.
    """

    def __init__(self, size: int = 8) -> None:
        self._items: dict[tuple[str, str, str], WorkCalendar] = {}
        self._size = size
        self._lock = threading.Lock()

    def get(
        self, session: Session, stamp: str, periods: list[list[str]], timezone: str
    ) -> WorkCalendar:
        shape = json.dumps(periods)
        found = self._items.get((stamp, shape, timezone))
        if found is not None:
            return found
        rows, current = session.execute(_CALENDAR_ROWS_SQL).one()
        calendar = WorkCalendar.build(
            {date.fromisoformat(d): bool(w) for d, w in rows}, periods, timezone
        )
        with self._lock:
            if len(self._items) >= self._size:
                self._items.pop(next(iter(self._items)))
            # Keyed by the fingerprint of what was read, which may be newer than ``stamp``.
            self._items[(current, shape, timezone)] = calendar
        return calendar


CALENDARS = _CalendarCache()


@dataclass
class _ReportContext:
    existing: int | None
    category: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    calendar: WorkCalendar | None = None
    override_category: str | None = None


def _report_context(session: Session, category_code: str, key: str | None) -> _ReportContext:
    """Return the case stored under ``key`` if any, else the active category, the settings, the
    work calendar and the category's name among override areas, for a report."""
    existing, category, stored, stamp, override_category = session.execute(
        _REPORT_CONTEXT_SQL, {"category": category_code, "key": key}
    ).one()
    if existing is not None:
        return _ReportContext(existing)
    if category is None or not category["active"]:
        get_category(session, category_code)  # raises, naming the known categories
    settings = _merge_settings(stored or {})
    calendar = CALENDARS.get(session, stamp, settings["work_periods"], settings["timezone"])
    return _ReportContext(None, category, settings, calendar, override_category)


# The report's answer reads the new row through the list query (the write's own rows are not
# visible to the rest of its statement, so the list query runs over what the INSERT returned).
assert _LIST_SQL.count('FROM "case" c') == 1, "the report write reuses the list query"

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
    """.replace("__LIST__", _LIST_SQL.replace('FROM "case" c', "FROM new_case c")).replace(
        "__DUPLICATES__", _DUPLICATES_SQL.replace(":exclude", "CAST(NULL AS int)")
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
    now = _now(now)
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
        fields, details = _assignment_from_routing(routing, assignment["grid_id"], None)
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
        "case": _row_view(SimpleNamespace(**row)),
        "created": True,
        "routing": routing,
        "duplicates": [_duplicate_view(d) for d in row["duplicates"] or []],
        "review_required": review,
        "secret": secret,
    }


_REPLAY_SQL = text(
    "SELECT v.*, k.idempotency_hash, k.routing FROM ("
    + _LIST_SQL
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
        "case": _row_view(SimpleNamespace(**row)),
        "created": False,
        "routing": row["routing"],
        "duplicates": [],
        # Only a hash of the secret is stored: a retry cannot give it again (the reporter's
        # phone still proves the report).
        "secret": None,
    }


def _record(
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


def _photo_count(session: Session, case_id: int) -> int:
    return int(
        session.scalar(select(func.count()).select_from(CasePhoto).where(CasePhoto.case_id == case_id))
        or 0
    )


def _store_photo(session: Session, case: Case, event: CaseEvent | None, data: bytes) -> CasePhoto:
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


# ---------------------------------------------------------------- acting


def _chief_grids(session: Session, worker_id: int) -> set[int]:
    return set(
        session.scalars(
            text(
                "SELECT grid_id FROM grid_assignment WHERE worker_id = :w "
                "AND role IN ('micro_chief', 'grid_chief')"
            ),
            {"w": worker_id},
        ).all()
    )


def _grid_chain_ids(session: Session, grid_id: int | None) -> set[int]:
    if grid_id is None:
        return set()
    return set(
        session.scalars(
            text(
                """WITH RECURSIVE up AS (SELECT id, parent_id FROM grid WHERE id = :id
                   UNION ALL SELECT p.id, p.parent_id FROM grid p JOIN up ON p.id = up.parent_id)
                   SELECT id FROM up"""
            ),
            {"id": grid_id},
        ).all()
    )


def parts_of(session: Session, case: Case, actor: Actor) -> set[str]:
    """Return the parts (centre, handler, supervisor, resident, system) ``actor`` plays on ``case``."""
    if actor.role in ("centre", "system", "resident"):
        return {actor.role}
    parts: set[str] = set()
    if actor.role in ("worker", "micro_chief") and actor.worker_id is not None:
        if case.escalation_level < 2 and case.assignee_id == actor.worker_id:
            parts.add("handler")
        if actor.role == "micro_chief" and _chief_grids(session, actor.worker_id) & _grid_chain_ids(
            session, case.grid_id
        ):
            parts.add("supervisor")
    if actor.role == "department" and actor.department_id is not None:
        if case.escalation_level == 2 and case.department_id == actor.department_id:
            parts.add("handler")
    return parts


def perform(
    session: Session,
    ref: int | str,
    action: str,
    actor: Actor,
    data: ActionInput | None = None,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Take ``action`` on a case as ``actor``; return the case and the recorded event(s).

    Raises ``IllegalTransition`` (409, with ``allowed``) when the state does not allow the action,
    ``StaleVersion`` (409) when ``data.version`` is not the case's version, ``ActionForbidden``
    (403) when the actor may not take it.
    """
    if action not in ACTIONS:
        raise BadParameter("action", f"unknown action '{action}' (known: {', '.join(ACTIONS)})")
    data = data or ActionInput()
    now = _now(now)
    case = get_case(session, ref)
    if data.version is not None and data.version != case.version:
        raise StaleVersion(
            f"case {case.code} is at version {case.version}, not {data.version}: reload it",
            case=case.code,
            version=case.version,
        )
    events = _apply(session, case, action, actor, data, now)
    try:
        session.flush()
    except StaleDataError as exc:
        raise StaleVersion(
            f"case {case.code} was changed by someone else meanwhile: reload it", case=case.code
        ) from exc
    return {
        "case": case_view(session, case.id, now=now, with_events=False),
        "events": [{"id": e.id, "action": e.action, "to_status": e.to_status} for e in events],
    }


def _apply(
    session: Session, case: Case, action: str, actor: Actor, data: ActionInput, now: datetime
) -> list[CaseEvent]:
    state = case.status
    step = TRANSITIONS.get((state, action))
    if step is None:
        allowed = allowed_actions(state)
        raise IllegalTransition(
            f"case {case.code} is {state} ({STATUS_NAMES[state]}): '{action}' is not allowed; "
            f"allowed: {', '.join(allowed) or 'none'}",
            case=case.code,
            state=state,
            action=action,
            allowed=allowed,
        )
    parts = parts_of(session, case, actor)
    if not parts & step.who:
        raise ActionForbidden(
            f"{actor.label} may not {action} case {case.code} "
            f"(needs one of: {', '.join(sorted(step.who))})",
            case=case.code,
            action=action,
            needs=sorted(step.who),
        )
    note = (data.note or "").strip() or None
    if action in NOTE_REQUIRED and not note:
        raise ValidationFailed(f"'{action}' needs a note saying why or what was done", field="note")
    where = _where_point(data) or _case_point(session, case)
    details = HANDLERS[action](session, case, actor, data, now) or {}
    to_state = details.pop("_to", step.to)
    case.status = to_state
    case.updated_at = now
    if data.photos:
        check_photo_count(len(data.photos), _photo_count(session, case.id))
    event = _record(session, case, action, state, to_state, actor, now, note, where, details)
    for blob in data.photos:
        _store_photo(session, case, event, blob)
    events = [event]
    if action == "resolve":
        category = session.scalar(select(CaseCategory).where(CaseCategory.code == case.category))
        if category is not None and not category.verify_required:
            # No review step for this category: the platform verifies at once.
            events += _apply(
                session, case, "verify", SYSTEM, ActionInput(note="该类事件无需核查"), now
            )
    return events


def _where_point(data: ActionInput) -> tuple[float, float] | None:
    if data.lon is None or data.lat is None:
        return None
    from gis.crs import to_wgs84

    lon, lat = to_wgs84([data.lon], [data.lat], data.crs, what="where")
    return float(lon[0]), float(lat[0])


def _case_point(session: Session, case: Case) -> tuple[float, float]:
    row = session.execute(
        select(func.ST_X(Case.geom), func.ST_Y(Case.geom)).where(Case.id == case.id)
    ).one()
    return float(row[0]), float(row[1])


def _assignment_from_routing(
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


def _worker(session: Session, worker_id: Any, actor: Actor | None = None) -> Worker:
    """Return the worker an action names by ``worker_id`` (422 when there is none, or when he
    works in none of the acting account's grids)."""
    worker = session.get(Worker, int(worker_id))
    if worker is None or not _worker_in_scope(session, worker.id, actor):
        raise ValidationFailed(f"worker {worker_id} does not exist", field="worker_id")
    return worker


def _worker_in_scope(session: Session, worker_id: int, actor: Actor | None) -> bool:
    if actor is None or actor.scope is None:
        return True
    return (
        session.scalar(
            text("SELECT 1 FROM grid_assignment WHERE worker_id = :w AND grid_id = ANY(:ids) LIMIT 1"),
            {"w": worker_id, "ids": sorted(actor.scope)},
        )
        is not None
    )


# How far from a case its new grid may lie: a transfer or a manual dispatch names the grid
# containing the case, or a real neighbour this close to it (metres).
MAX_TRANSFER_M = 200.0


def _target_grid(
    session: Session, case: Case, actor: Actor, grid_id: Any, within_m: float
) -> int:
    """Check the grid a case is sent to: a current grid that contains the case's place or lies
    within ``within_m`` of it, in the acting account's grids (422 naming the problem)."""
    try:
        gid = int(grid_id)
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(f"grid_id: '{grid_id}' is not a grid id", field="grid_id") from exc
    if not 0 < gid <= 2**31 - 1:  # grid ids are PostgreSQL integers
        raise ValidationFailed(f"grid {gid} does not exist", field="grid_id")
    lon, lat = _case_point(session, case)
    near = session.scalar(
        text(
            """SELECT ST_DWithin(g.geom::geography,
                                 ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, :d)
               FROM grid g WHERE g.id = :g AND g.valid_to IS NULL"""
        ),
        {"g": gid, "lon": lon, "lat": lat, "d": within_m},
    )
    if near is None or (actor.scope is not None and gid not in actor.scope):
        raise ValidationFailed(f"grid {gid} does not exist", field="grid_id")
    if not near:
        raise ValidationFailed(
            f"grid {gid} neither contains case {case.code} nor lies within {within_m:.0f} m of it",
            field="grid_id",
            location={"type": "Point", "coordinates": [lon, lat]},
        )
    return gid


def _within_m(data: ActionInput) -> float:
    raw = data.params.get("within_m")
    if raw in (None, ""):
        return 50.0
    try:
        value = float(raw)
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(f"within_m: '{raw}' is not a number", field="within_m") from exc
    if not 0 <= value <= MAX_TRANSFER_M:  # also refuses NaN
        raise ValidationFailed(
            f"within_m: {value} is outside 0..{MAX_TRANSFER_M:.0f} m", field="within_m"
        )
    return value


def _h_dispatch(
    session: Session, case: Case, actor: Actor, data: ActionInput, now: datetime
) -> dict[str, Any]:
    params = data.params
    worker_id = params.get("worker_id")
    if worker_id is not None:
        worker = _worker(session, worker_id, actor)
        if params.get("grid_id") is not None:
            case.grid_id = _target_grid(session, case, actor, params["grid_id"], _within_m(data))
        case.assignee_id = worker.id
        case.department_id = None
        case.escalation_level = 0
        return {"assignee": {"worker_id": worker.id, "name": worker.name}, "manual": True}
    routing = params.get("routing")
    if routing is None:
        if params.get("x") is not None and params.get("y") is not None:
            # The desk corrects the place (a case returned for a wrong grid): route it again.
            routing = locate.locate_point(
                session,
                float(params["x"]),
                float(params["y"]),
                params.get("crs"),
                category=case.category,
            )
            p = routing["point"]
            case.geom = from_shape(Point(p["lon"], p["lat"]), srid=4326)
        else:
            lon, lat = _case_point(session, case)
            routing = locate.locate_point(session, lon, lat, None, category=case.category)
        case.routing = routing
    fields, details = _assignment_from_routing(routing, case.grid_id, case.code)
    if actor.scope is not None and fields.get("grid_id") not in actor.scope:
        # A corrected place outside the acting account's grids: not its case to route there.
        raise ValidationFailed(
            "该位置不在您负责的网格内 / the corrected place is not in your grids", field="x"
        )
    for name, value in fields.items():
        setattr(case, name, value)
    return details


def _h_accept(session: Session, case: Case, actor: Actor, data: ActionInput, now: datetime) -> None:
    return None


def _h_resolve(
    session: Session, case: Case, actor: Actor, data: ActionInput, now: datetime
) -> dict[str, Any]:
    case.resolved_at = now
    late = case.deadline is not None and now > case.deadline
    return {"on_time": not late}


def _h_verify(session: Session, case: Case, actor: Actor, data: ActionInput, now: datetime) -> None:
    return None


def _h_reopen(session: Session, case: Case, actor: Actor, data: ActionInput, now: datetime) -> None:
    case.resolved_at = None
    return None


def _h_rate(
    session: Session, case: Case, actor: Actor, data: ActionInput, now: datetime
) -> dict[str, Any]:
    raw = data.params.get("satisfaction")
    try:
        score = int(raw)
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(
            f"satisfaction '{raw}' must be a whole number 1–5", field="satisfaction"
        ) from exc
    if not 1 <= score <= 5:
        raise ValidationFailed(f"satisfaction {score} is outside 1–5", field="satisfaction")
    solved = data.params.get("solved")
    if solved is not None and not isinstance(solved, bool):
        raise ValidationFailed(f"solved '{solved}' must be true or false", field="solved")
    case.satisfaction = score
    case.solved = solved
    case.rating_note = (data.note or "").strip() or None
    case.rated_at = now
    case.closed_at = now
    return {"satisfaction": score, "solved": solved}


def _h_close(
    session: Session, case: Case, actor: Actor, data: ActionInput, now: datetime
) -> dict[str, Any]:
    case.closed_at = now
    return {"reason": data.params.get("reason", "rating_timeout" if actor.role == "system" else "")}


def _chiefs(session: Session, case: Case) -> list[dict[str, Any]]:
    if case.grid_id is None:
        return []
    chain, people = locate.chain_and_people(session, case.grid_id)
    _owner, fallback = locate.route(chain, people)
    return [p for p in fallback if p.get("kind") == "worker"]


def _h_escalate(
    session: Session, case: Case, actor: Actor, data: ActionInput, now: datetime
) -> dict[str, Any]:
    level = case.escalation_level
    if level == 0:
        chief = next(
            (p for p in _chiefs(session, case) if p["worker_id"] != case.assignee_id), None
        )
        if chief is not None:
            case.assignee_id = chief["worker_id"]
            case.escalation_level = 1
            return {"level": 1, "to": chief}
        level = 1  # no chief on duty above the worker: straight to the department
    if level == 1:
        category = session.scalar(select(CaseCategory).where(CaseCategory.code == case.category))
        code = category.escalation_department_code if category else None
        dept = session.scalar(select(Department).where(Department.code == code)) if code else None
        if dept is None:
            raise Conflict(
                f"category '{case.category}' names no escalation department"
                + (f" ('{code}' does not exist)" if code else "")
                + f": case {case.code} cannot be escalated further",
                case=case.code,
            )
        case.assignee_id = None
        case.department_id = dept.id
        case.escalation_level = 2
        return {
            "level": 2,
            "to": {"kind": "department", "department_id": dept.id, "name": dept.name},
        }
    raise Conflict(
        f"case {case.code} is already with a functional department: it cannot be escalated further",
        case=case.code,
        escalation_level=level,
    )


def _h_transfer(
    session: Session, case: Case, actor: Actor, data: ActionInput, now: datetime
) -> dict[str, Any]:
    lon, lat = _case_point(session, case)
    within = _within_m(data)
    worker_id = data.params.get("worker_id")
    centre = "centre" in parts_of(session, case, actor)
    candidates = (
        locate.neighbour_owners(session, case.grid_id, lon, lat, within_m=within)
        if case.grid_id is not None
        else []
    )
    # The real neighbours within the distance. A handler may hand a case across its boundary
    # to one of them; the centre only within its own grids.
    candidates = [
        c
        for c in candidates
        if c.get("owner")
        and c["owner"].get("worker_id")
        and (not centre or actor.scope is None or c["grid"]["id"] in actor.scope)
    ]
    chosen = None
    if worker_id is not None:
        try:
            wanted = int(worker_id)
        except (TypeError, ValueError) as exc:
            raise ValidationFailed(f"worker {worker_id} does not exist", field="worker_id") from exc
        chosen = next((c for c in candidates if c["owner"]["worker_id"] == wanted), None)
        if chosen is None and centre:
            worker = _worker(session, wanted, actor)
            grid_id = data.params.get("grid_id")
            chosen = {
                "grid": (
                    {"id": _target_grid(session, case, actor, grid_id, within)} if grid_id else None
                ),
                "owner": {"worker_id": worker.id, "name": worker.name},
            }
    elif candidates:
        chosen = candidates[0]
    if chosen is None:
        raise Conflict(
            f"no neighbouring grid owner within {within:.0f} m of case {case.code} "
            f"({lon:.6f}, {lat:.6f})"
            + (f" is worker {worker_id}" if worker_id is not None else "")
            + ": return it to the centre instead",
            case=case.code,
            candidates=[
                {"grid": c["grid"], "owner": c["owner"], "distance_m": c["distance_m"]}
                for c in candidates
            ],
            location={"type": "Point", "coordinates": [lon, lat]},
        )
    if chosen.get("grid"):
        case.grid_id = chosen["grid"]["id"]
    case.assignee_id = chosen["owner"]["worker_id"]
    case.department_id = None
    case.escalation_level = 0
    return {"to": chosen["owner"], "grid": chosen.get("grid")}


def _h_return(
    session: Session, case: Case, actor: Actor, data: ActionInput, now: datetime
) -> dict[str, Any]:
    previous = {"assignee_id": case.assignee_id, "department_id": case.department_id}
    case.assignee_id = None
    case.department_id = None
    case.escalation_level = 0
    return {"previous": previous}


def _h_cancel(
    session: Session, case: Case, actor: Actor, data: ActionInput, now: datetime
) -> dict[str, Any]:
    reason = data.params.get("reason") or "other"
    if reason not in CANCEL_REASONS:
        raise ValidationFailed(
            f"reason '{reason}' is not one of {', '.join(CANCEL_REASONS)}", field="reason"
        )
    case.closed_at = now
    return {"reason": reason}


def _h_merge(
    session: Session, case: Case, actor: Actor, data: ActionInput, now: datetime
) -> dict[str, Any]:
    into_ref = data.params.get("into")
    if into_ref in (None, ""):
        raise ValidationFailed("merge needs 'into': the case to merge into", field="into")
    target = get_case(session, into_ref)
    if actor.scope is not None and target.grid_id not in actor.scope:
        raise NotFound(f"case {into_ref} not found")  # another street's case does not exist here
    if target.id == case.id:
        raise ValidationFailed(f"case {case.code} cannot be merged into itself", field="into")
    if target.status in ("closed", "cancelled"):
        raise Conflict(
            f"case {target.code} is {target.status}: merge into an open case", case=target.code
        )
    session.add(
        CaseMerge(
            case_id=case.id,
            into_case_id=target.id,
            actor=actor.label,
            at=now,
            note=(data.note or "").strip() or None,
        )
    )
    case.merged_into_id = target.id
    case.closed_at = now
    return {"into": {"id": target.id, "code": target.code}}


HANDLERS = {
    "dispatch": _h_dispatch,
    "accept": _h_accept,
    "resolve": _h_resolve,
    "verify": _h_verify,
    "reopen": _h_reopen,
    "rate": _h_rate,
    "close": _h_close,
    "escalate": _h_escalate,
    "transfer": _h_transfer,
    "return": _h_return,
    "cancel": _h_cancel,
    "merge": _h_merge,
}
assert set(HANDLERS) == set(ACTIONS), "every action in TRANSITIONS needs a handler"


def close_unrated(session: Session, *, now: datetime | None = None) -> list[str]:
    """Close verified cases whose rating window has passed; return their codes."""
    now = _now(now)
    hours = float(get_settings(session)["rating_timeout_hours"])
    cutoff = now - timedelta(hours=hours)
    ids = session.scalars(
        text(
            """SELECT c.id FROM "case" c WHERE c.status = 'verified' AND
               (SELECT max(e.at) FROM case_event e WHERE e.case_id = c.id AND e.to_status = 'verified')
               < :cutoff ORDER BY c.id"""
        ),
        {"cutoff": cutoff},
    ).all()
    codes = []
    for cid in ids:
        case = get_case(session, cid)
        _apply(
            session,
            case,
            "close",
            SYSTEM,
            ActionInput(note="评价期满未评价，自动结案", params={"reason": "rating_timeout"}),
            now,
        )
        codes.append(case.code)
    session.flush()
    return codes


# ---------------------------------------------------------------- cameras


def camera_event(
    session: Session,
    camera_code: str,
    event_type: str,
    *,
    occurred_at: datetime | None = None,
    snapshot: bytes | None = None,
    description: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Turn a camera's analytics event into a case, or merge it into the open one of its window.

    The same camera and event type firing again within ``camera_dedup_minutes`` of the open
    case's last event joins that case (its event count goes up) instead of opening a new one.
    """
    now = _now(now)
    occurred_at = occurred_at or now
    if occurred_at.tzinfo is None:
        raise BadParameter("time", f"{occurred_at.isoformat()} has no time zone")
    event_type = (event_type or "").strip()
    if not event_type or len(event_type) > 40:
        raise BadParameter("event_type", "must be 1–40 characters")
    camera = session.scalar(select(Camera).where(Camera.code == camera_code))
    if camera is None:
        raise NotFound(f"camera {camera_code} does not exist", camera=camera_code)
    settings = get_settings(session)
    window = timedelta(minutes=float(settings["camera_dedup_minutes"]))
    # One event of a camera and type at a time: a burst of them must not open two cases.
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 7))"),
        {"k": f"camera:{camera.id}:{event_type}"},
    )
    open_case = session.execute(
        text(
            """SELECT id FROM "case" WHERE camera_id = :cam AND camera_event_type = :type
               AND status NOT IN ('closed', 'cancelled')
               AND last_camera_event_at >= :since ORDER BY id DESC LIMIT 1"""
        ),
        {"cam": camera.id, "type": event_type, "since": occurred_at - window},
    ).scalar()
    if open_case is not None:
        # A plain UPDATE: a repeat firing must not bump the version a worker is acting on.
        session.execute(
            update(Case)
            .where(Case.id == open_case)
            .values(
                camera_event_count=Case.camera_event_count + 1,
                last_camera_event_at=func.greatest(Case.last_camera_event_at, occurred_at),
            )
            .execution_options(synchronize_session=False)
        )
        photo_id = None
        # A case full of photos keeps counting the camera's events, without more snapshots.
        if snapshot and _photo_count(session, open_case) < MAX_PHOTOS_PER_CASE:
            photo_id = _store_photo(session, get_case(session, open_case), None, snapshot).id
        view = _log_camera_event(
            session, camera.id, event_type, occurred_at, now, open_case, True, photo_id
        )
        return {"merged": True, "case": view}
    category = session.scalar(
        select(CaseCategory).where(
            CaseCategory.active.is_(True),
            literal(event_type) == any_(CaseCategory.camera_event_types),
        )
    )
    lon, lat = session.execute(
        select(func.ST_X(Camera.geom), func.ST_Y(Camera.geom)).where(Camera.id == camera.id)
    ).one()
    result = create_case(
        session,
        Report(
            x=float(lon),
            y=float(lat),
            category=category.code if category else "other",
            source="camera",
            description=description
            or f"视频智能分析：{event_type}（{camera.name or camera.code}）",
            photos=[snapshot] if snapshot else [],
            camera_id=camera.id,
            camera_event_type=event_type,
            camera_event_at=occurred_at,
        ),
        actor=Actor("system", name=f"camera {camera.code}"),
        now=now,
    )
    case_id = result["case"]["id"]
    first_photo = session.scalar(
        select(CasePhoto.id).where(CasePhoto.case_id == case_id).order_by(CasePhoto.id)
    )
    result["merged"] = False
    result.pop("secret", None)  # nobody reported it: there is nobody to give a secret to
    result["case"] = _log_camera_event(
        session, camera.id, event_type, occurred_at, now, case_id, False, first_photo
    )
    return result


def _log_camera_event(
    session: Session,
    camera_id: int,
    event_type: str,
    occurred_at: datetime,
    now: datetime,
    case_id: int,
    merged: bool,
    photo_id: int | None,
) -> dict[str, Any]:
    """Record a camera's event against the case it opened or joined; return that case."""
    session.add(
        CameraEvent(
            camera_id=camera_id,
            event_type=event_type,
            occurred_at=occurred_at,
            received_at=now,
            case_id=case_id,
            merged=merged,
            photo_id=photo_id,
        )
    )
    session.flush()
    session.expire_all()
    return case_view(session, case_id, now=now, with_events=False)
