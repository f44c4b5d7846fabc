"""Acting on a case: who plays which part, ``perform`` of one action through its handler, and
the automatic close of unrated cases."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from geoalchemy2.shape import from_shape
from shapely.geometry import Point
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from app.errors import BadParameter, Conflict, NotFound, ValidationFailed
from app.models import (
    Case,
    CaseCategory,
    CaseEvent,
    CaseMerge,
    Department,
    Worker,
)
from app.services import grid_tree, locate, points_auto
from app.services.cases.intake import (
    assignment_from_routing,
    photo_count,
    record_event,
    store_photo,
)
from app.services.cases.queries import allowed_actions, case_view, get_case, resolve_now
from app.services.cases.settings import get_settings
from app.services.cases.states import (
    ACTIONS,
    CANCEL_REASONS,
    NOTE_REQUIRED,
    STATUS_NAMES,
    SYSTEM,
    TRANSITIONS,
    ActionForbidden,
    ActionInput,
    Actor,
    IllegalTransition,
    StaleVersion,
)
from app.services.photos import check_count as check_photo_count

LOGGER = logging.getLogger(__name__)


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
    return grid_tree.ancestor_ids(session, [grid_id], include_self=True)


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
    now = resolve_now(now)
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
    if case.status == "closed":
        # A reporter who is a party member earns the rulebook's points as the case closes.
        points_auto.case_closed(session, case.id)
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
        check_photo_count(len(data.photos), photo_count(session, case.id))
    event = record_event(session, case, action, state, to_state, actor, now, note, where, details)
    for blob in data.photos:
        store_photo(session, case, event, blob)
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
            text(
                "SELECT 1 FROM grid_assignment WHERE worker_id = :w AND grid_id = ANY(CAST(:ids AS integer[])) LIMIT 1"
            ),
            {"w": worker_id, "ids": sorted(actor.scope)},
        )
        is not None
    )


# How far from a case its new grid may lie: a transfer or a manual dispatch names the grid
# containing the case, or a real neighbour this close to it (metres).
MAX_TRANSFER_M = 200.0


def _target_grid(session: Session, case: Case, actor: Actor, grid_id: Any, within_m: float) -> int:
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
    fields, details = assignment_from_routing(routing, case.grid_id, case.code)
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
    now = resolve_now(now)
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
