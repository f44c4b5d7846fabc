"""Household counts of the grids after an import."""

from __future__ import annotations

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.services import grid_tree


def refresh_household_counts(session: Session) -> None:
    """Recount households of every current grid (a grid counts those of all its descendants)."""
    grid_tree.recount(session)


def add_household_counts(session: Session, grid_ids: np.ndarray) -> int:
    """Add households just loaded into the leaf grids ``grid_ids`` (one entry a household) to
    the counts of those grids and of every grid above them, in one statement: the work grows
    with the grids touched, not with the households already there. Returns the grids changed."""
    ids, counts = np.unique(np.asarray(grid_ids, dtype=np.int64), return_counts=True)
    if not len(ids):
        return 0
    up = grid_tree.ancestors_cte(
        "up",
        "SELECT d.n, g.id, g.parent_id, 0 AS depth FROM grid g "
        "JOIN unnest(CAST(:ids AS integer[]), CAST(:ns AS integer[])) AS d(id, n) ON d.id = g.id",
        carry=("n",),
    )
    result = session.execute(
        text(
            f"""WITH RECURSIVE {up}
                UPDATE grid g SET household_count = g.household_count + s.n
                FROM (SELECT id, sum(n) AS n FROM up GROUP BY id) s WHERE g.id = s.id"""
        ),
        {"ids": ids.tolist(), "ns": counts.tolist()},
    )
    return int(result.rowcount or 0)
