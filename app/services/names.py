"""Names for pickers: the people a page lets its user choose, by name, within the user's grids."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session


def workers(
    session: Session, scope: frozenset[int] | None, limit: int = 2000
) -> list[dict[str, Any]]:
    """Workers assigned to grids in ``scope`` (None: every worker), with their grids, by name."""
    rows = session.execute(
        text(
            """SELECT w.id, w.code, w.name, string_agg(DISTINCT g.name, '、') AS grids
               FROM worker w
               JOIN grid_assignment a ON a.worker_id = w.id
               JOIN grid g ON g.id = a.grid_id
               WHERE (CAST(:all AS boolean) OR a.grid_id = ANY(CAST(:ids AS integer[])))
               GROUP BY w.id, w.code, w.name ORDER BY w.name, w.id LIMIT :limit"""
        ),
        {"all": scope is None, "ids": sorted(scope or ()), "limit": limit},
    ).all()
    return [{"id": r.id, "code": r.code, "name": r.name, "grids": r.grids} for r in rows]


def worker_name(session: Session, worker_id: int | None) -> str:
    """A worker's name and number ("张三（W00005）"), or empty."""
    if worker_id is None:
        return ""
    row = session.execute(
        text("SELECT name, code FROM worker WHERE id = :id"), {"id": worker_id}
    ).first()
    if row is None:
        return ""
    return f"{row.name}（{row.code}）" if row.code else row.name
