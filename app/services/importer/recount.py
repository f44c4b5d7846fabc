"""Recount the households of every current grid after an import."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.services import grid_tree


def refresh_household_counts(session: Session) -> None:
    """Recount households of every current grid (a grid counts those of all its descendants)."""
    grid_tree.recount(session)
