"""Recount the households of every current grid after an import."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session


def refresh_household_counts(session: Session) -> None:
    """Recount households of every current grid (a grid counts those of all its descendants)."""
    session.execute(
        text(
            """
            WITH RECURSIVE tree AS (
                SELECT id, id AS root FROM grid WHERE valid_to IS NULL
                UNION ALL
                SELECT c.id, t.root FROM grid c JOIN tree t ON c.parent_id = t.id WHERE c.valid_to IS NULL
            ), counts AS (
                SELECT t.root, count(h.id) AS n FROM tree t LEFT JOIN household h ON h.grid_id = t.id
                GROUP BY t.root
            )
            UPDATE grid g SET household_count = counts.n FROM counts
            WHERE g.id = counts.root AND g.household_count IS DISTINCT FROM counts.n
            """
        )
    )
