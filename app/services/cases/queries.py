"""Reading cases: one case, the filtered list (``CaseFilter`` and its SQL ``where_clause``), the
views of a case for staff and for the public, its events and likely duplicates."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.errors import BadParameter, NotFound, ValidationFailed
from app.models import (
    Case,
    CaseMerge,
    CasePhoto,
)
from app.models.case import CASE_STATUSES
from app.privacy import mask_name, mask_phone
from app.services import grid_tree, locate, public_cases
from app.services.cases.settings import get_settings
from app.services.cases.states import (
    ACTION_NAMES,
    ESCALATION_NAMES,
    FINAL_SQL,
    MAX_ID,
    OVERDUE_SQL,
    SOURCE_NAMES,
    STATUS_NAMES,
    TRANSITIONS,
)

LOGGER = logging.getLogger(__name__)


def resolve_now(now: datetime | None) -> datetime:
    """Return ``now`` (the current time when None), refusing a time without a zone."""
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


LIST_SQL = f"""
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
           {OVERDUE_SQL} AS overdue,
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


def row_view(r: Any, *, personal: bool = False) -> dict[str, Any]:
    """Return the list view of a row of ``LIST_SQL`` (personal values masked unless asked)."""
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


def where_clause(f: CaseFilter) -> tuple[str, dict[str, Any]]:
    where: list[str] = []
    params: dict[str, Any] = {}
    if f.status:
        unknown = [s for s in f.status if s not in CASE_STATUSES]
        if unknown:
            raise BadParameter("status", f"unknown state(s) {', '.join(unknown)}")
        where.append("c.status = ANY(:status)")
        params["status"] = f.status
    if f.open_only:
        where.append(f"c.status NOT IN {FINAL_SQL}")
    if f.category:
        where.append("c.category = :category")
        params["category"] = f.category
    if f.source:
        where.append("c.source = :source")
        params["source"] = f.source
    if f.grid_id is not None:
        # A grid filter covers the grid and everything below it.
        where.append("c.grid_id IN " + grid_tree.subtree_in("id = :grid"))
        params["grid"] = f.grid_id
    if f.assignee_id is not None:
        where.append("c.assignee_id = :assignee")
        params["assignee"] = f.assignee_id
    if f.department_id is not None:
        where.append("c.department_id = :department")
        params["department"] = f.department_id
    if f.overdue is not None:
        cond = OVERDUE_SQL
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
    now = resolve_now(now)
    where, params = where_clause(filters or CaseFilter())
    rows = session.execute(
        text(
            LIST_SQL + where + " ORDER BY overdue DESC, "
            f"(c.status IN {FINAL_SQL}) ASC, c.deadline ASC NULLS LAST, c.id DESC "
            "LIMIT :limit OFFSET :offset"
        ),
        {**params, "now": now, "limit": limit, "offset": offset},
    ).all()
    return {
        "items": [row_view(r, personal=personal) for r in rows],
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
    now = resolve_now(now)
    row = session.execute(text(LIST_SQL + " WHERE c.id = :id"), {"id": case.id, "now": now}).one()
    view = row_view(row, personal=personal)
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
DUPLICATES_SQL = f"""
    SELECT c.id, c.code, c.status, c.description, c.created_at,
           ST_Distance(c.geom::geography, p.pt::geography) AS d
    FROM "case" c, (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS pt) p
    WHERE c.category = :category AND c.status NOT IN {FINAL_SQL}
      AND (CAST(:exclude AS int) IS NULL OR c.id <> :exclude)
      AND ST_DWithin(c.geom::geography, p.pt::geography, :r)
    ORDER BY d, c.id
    LIMIT 20
"""


def duplicate_view(r: Any) -> dict[str, Any]:
    """Return the view of a possible duplicate found by ``DUPLICATES_SQL``."""
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
    sql, extra = DUPLICATES_SQL, {}
    if scope is not None:
        cond, extra = scope.sql("c")
        sql = sql.replace(
            "WHERE c.category = :category", f"WHERE {cond} AND c.category = :category"
        )
    rows = session.execute(
        text(sql),
        {"lon": lon, "lat": lat, "category": category, "exclude": exclude_id, "r": radius_m}
        | extra,
    ).mappings()
    return [duplicate_view(r) for r in rows]
