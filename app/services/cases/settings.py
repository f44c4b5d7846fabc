"""Case-loop settings (stored over ``SETTINGS_DEFAULTS``) and the case categories."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import BadParameter, ValidationFailed
from app.models import (
    CaseCategory,
    CaseSetting,
    Department,
)
from app.services import settings_store
from app.services.calendar import DEFAULT_PERIODS, DEFAULT_TIMEZONE, WorkCalendar

LOGGER = logging.getLogger(__name__)

SETTINGS_DEFAULTS: dict[str, Any] = {
    # Camera cases wait in 'reported' for the centre to review them before dispatch.
    "camera_review_required": False,
    # The same camera and event type firing again within this window joins the open case.
    "camera_dedup_minutes": 30,
    # Open cases of the same category within this distance are offered as likely duplicates.
    "duplicate_radius_m": 50,
    # A verified case the resident does not rate is closed after this many hours.
    "rating_timeout_hours": 72,
    "work_periods": [list(p) for p in DEFAULT_PERIODS],
    "timezone": DEFAULT_TIMEZONE,
}
_SETTING_TYPES: dict[str, type | tuple[type, ...]] = {
    "camera_review_required": bool,
    "camera_dedup_minutes": (int, float),
    "duplicate_radius_m": (int, float),
    "rating_timeout_hours": (int, float),
    "work_periods": list,
    "timezone": str,
}


def get_settings(session: Session) -> dict[str, Any]:
    """Return the case-loop settings: stored values over the defaults."""
    return settings_store.read(session, CaseSetting, SETTINGS_DEFAULTS)


def merge_settings(stored: dict[str, Any]) -> dict[str, Any]:
    """Return the defaults overlaid with the known keys of ``stored``."""
    return settings_store.merge(SETTINGS_DEFAULTS, stored)


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
            probe = {**get_settings(session), key: value}
            try:
                WorkCalendar.build({}, probe["work_periods"], probe["timezone"]).tz  # noqa: B018
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                raise BadParameter(key, f"{value!r} is not usable: {exc}") from exc
    settings_store.write(session, CaseSetting, changes)
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
