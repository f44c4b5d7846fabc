"""The planner's statistics after an import.

An import runs as the app's role, which may not ``ANALYZE`` the tables (it owns none); until
autovacuum came round, up to a minute later, the planner went on with the statistics from before
the import (on a new database: empty tables) and chose nested loops over a million households.
``analyze_imported`` has the tables an import wrote analysed at once, through
``gridgov_analyze`` (revision 0039), when the import changed the kind's table as much as would
make autovacuum analyse it: at least ``CHANGED_SHARE`` of its rows, or any rows into a table
that has never been analysed.
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.orm import Session

LOGGER = logging.getLogger(__name__)

#: The tables an import of each kind writes, its own first, then those its triggers keep.
WRITTEN_TABLES: dict[str, tuple[str, ...]] = {
    "departments": ("department",),
    "grids": ("grid", "grid_tile", "locate_card"),
    "workers": ("worker", "locate_card"),
    "assignments": ("grid_assignment", "locate_card"),
    "households": (
        "household",
        "household_cell",
        "household_subtree_cell",
        "search_place",
        "search_term",
        "import_held",
    ),
    "service_points": ("service_point",),
    "cameras": ("camera", "import_held"),
    "basemap": ("basemap_feature",),
}

#: PostgreSQL's default ``autovacuum_analyze_scale_factor``: autovacuum analyses a table once
#: this share of its rows has changed since the last time.
CHANGED_SHARE = 0.1


def analyze_imported(session: Session, kind: str, created: int) -> list[str]:
    """After a committed import of ``created`` rows of ``kind``, analyse the tables it wrote when
    the change is large enough (module docstring); answer the tables analysed. Runs and commits
    its own short transaction on ``session``; a failure is logged, never raised (the import
    stands, and autovacuum still comes)."""
    tables = WRITTEN_TABLES.get(kind)
    if not tables or created <= 0:
        return []
    try:
        # reltuples: the rows at the table's last analysis (before this import), -1 if never.
        known = session.execute(
            text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t)"), {"t": tables[0]}
        ).scalar()
        if known is not None and known >= 0 and created < CHANGED_SHARE * known:
            session.rollback()
            return []
        session.execute(text("SELECT gridgov_analyze(:tables)"), {"tables": list(tables)})
        session.commit()
    except Exception:  # statistics are an optimisation: the import is committed already
        session.rollback()
        LOGGER.exception("gathering statistics after the %s import failed", kind)
        return []
    return list(tables)
