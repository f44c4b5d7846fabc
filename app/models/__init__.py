"""The schema as typed SQLAlchemy models; Alembic migrations in ``migrations/`` create it."""

from app.models.auth import AppUser, AuditEntry, LoginAttempt, LoginLock, RateHit, UserSession
from app.models.base import Base
from app.models.case import (
    CameraEvent,
    Case,
    CaseCategory,
    CaseEvent,
    CaseMerge,
    CasePhoto,
    CaseSetting,
    PublicRateLimit,
    WorkCalendarDay,
)
from app.models.field import Checkin, Visit, VisitSetting
from app.models.grid import Grid
from app.models.grid_history import GridChange, GridState
from app.models.imports import ImportHeld, ImportJob
from app.models.maps import BasemapFeature, MapLayerVersion
from app.models.network import Network, NetworkGrid, NoticeSetting, WorkerPhoto
from app.models.override import OverrideArea
from app.models.patrol import Patrol, PatrolBatch, PatrolDrop, PatrolPoint
from app.models.people import GridAssignment, Household, Worker
from app.models.places import Camera, Department, ServicePoint
from app.models.points import (
    HouseholdPointEntry,
    PointEntry,
    PointExchange,
    PointRule,
    PointSetting,
    ServicePointRating,
    ServicePointRatingPhoto,
    StarAdjustment,
    StarQuarter,
    StarRating,
)

__all__ = [
    "BasemapFeature",
    "MapLayerVersion",
    "AppUser",
    "AuditEntry",
    "LoginAttempt",
    "LoginLock",
    "RateHit",
    "UserSession",
    "Base",
    "Camera",
    "CameraEvent",
    "Case",
    "CaseCategory",
    "CaseEvent",
    "CaseMerge",
    "CasePhoto",
    "CaseSetting",
    "Checkin",
    "Department",
    "Grid",
    "GridAssignment",
    "GridChange",
    "GridState",
    "Household",
    "ImportHeld",
    "ImportJob",
    "Patrol",
    "PatrolBatch",
    "PatrolDrop",
    "PatrolPoint",
    "Network",
    "NetworkGrid",
    "NoticeSetting",
    "OverrideArea",
    "HouseholdPointEntry",
    "PointEntry",
    "PointExchange",
    "PointRule",
    "PointSetting",
    "ServicePointRating",
    "ServicePointRatingPhoto",
    "StarAdjustment",
    "StarQuarter",
    "StarRating",
    "PublicRateLimit",
    "ServicePoint",
    "WorkerPhoto",
    "Visit",
    "VisitSetting",
    "Worker",
    "WorkCalendarDay",
]
