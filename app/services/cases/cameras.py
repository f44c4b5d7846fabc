"""Camera events become cases: the same camera and event type within the dedup window joins
the open case."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import any_, func, literal, select, text, update
from sqlalchemy.orm import Session

from app.errors import BadParameter, NotFound
from app.models import (
    Camera,
    CameraEvent,
    Case,
    CaseCategory,
    CasePhoto,
)
from app.services.cases.intake import Report, create_case, photo_count, store_photo
from app.services.cases.queries import case_view, get_case, resolve_now
from app.services.cases.settings import get_settings
from app.services.cases.states import FINAL_SQL, Actor
from app.services.photos import MAX_PHOTOS_PER_CASE

LOGGER = logging.getLogger(__name__)


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
    now = resolve_now(now)
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
            f"""SELECT id FROM "case" WHERE camera_id = :cam AND camera_event_type = :type
               AND status NOT IN {FINAL_SQL}
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
        if snapshot and photo_count(session, open_case) < MAX_PHOTOS_PER_CASE:
            photo_id = store_photo(session, get_case(session, open_case), None, snapshot).id
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
