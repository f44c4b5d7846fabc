"""The schema as typed SQLAlchemy models; Alembic migrations in ``migrations/`` create it."""

from app.models.base import Base
from app.models.case import Case, CaseEvent
from app.models.grid import Grid
from app.models.grid_history import GridChange, GridState
from app.models.override import OverrideArea
from app.models.people import GridAssignment, Household, Worker
from app.models.places import Camera, Department, ServicePoint

__all__ = [
    "Base",
    "Camera",
    "Case",
    "CaseEvent",
    "Department",
    "Grid",
    "GridAssignment",
    "GridChange",
    "GridState",
    "Household",
    "OverrideArea",
    "ServicePoint",
    "Worker",
]
