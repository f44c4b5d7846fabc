"""Every split and merge conserves households: each stays in exactly one current leaf grid."""

from __future__ import annotations

import math
from collections import Counter

from geoalchemy2.shape import to_shape
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from shapely import LineString
from sqlalchemy import select, text

from app.models import Grid
from app.services import grid_edit as svc
from gis.topology import PartTooSmall

LEAVES_WITH_HOUSEHOLDS = """
    SELECT g.id FROM grid g
    WHERE g.valid_to IS NULL AND g.household_count > 0
      AND NOT EXISTS (SELECT 1 FROM grid c WHERE c.parent_id = g.id AND c.valid_to IS NULL)
    ORDER BY g.code
"""
# Households whose grid is history, has current children, or does not contain them.
MISPLACED = """
    SELECT count(*) FROM household h JOIN grid g ON g.id = h.grid_id
    WHERE g.valid_to IS NOT NULL
       OR EXISTS (SELECT 1 FROM grid c WHERE c.parent_id = g.id AND c.valid_to IS NULL)
       OR NOT ST_Intersects(g.geom, h.geom)
"""


def census(session) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """Return the number of households, and of those not in a current leaf containing them."""
    total = session.execute(text("SELECT count(*) FROM household")).scalar_one()
    return total, session.execute(text(MISPLACED)).scalar_one()


def held(session, grid_ids) -> set[int]:  # type: ignore[no-untyped-def]
    return set(
        session.execute(
            text("SELECT id FROM household WHERE grid_id = ANY(:ids)"), {"ids": list(grid_ids)}
        ).scalars()
    )


#: A run must really split and merge this many times (refused lines do not count).
MIN_SPLITS, MIN_MERGES = 8, 5


def test_households_are_conserved_by_split_and_merge(db_session) -> None:  # type: ignore[no-untyped-def]
    counts: Counter[str] = Counter()

    @settings(
        max_examples=25,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        pick=st.integers(0, 10_000),
        fx=st.floats(0.3, 0.7),
        fy=st.floats(0.3, 0.7),
        angle=st.floats(0, math.pi),
    )
    def one_cut(pick: int, fx: float, fy: float, angle: float) -> None:
        savepoint = db_session.begin_nested()
        try:
            leaves = db_session.execute(text(LEAVES_WITH_HOUSEHOLDS)).scalars().all()
            grid = db_session.get(Grid, leaves[pick % len(leaves)])
            shape = to_shape(grid.geom)
            total, misplaced = census(db_session)
            assert misplaced == 0
            mine = held(db_session, [grid.id])
            minx, miny, maxx, maxy = shape.bounds
            px, py = minx + fx * (maxx - minx), miny + fy * (maxy - miny)
            reach = 2 * max(maxx - minx, maxy - miny)
            dx, dy = reach * math.cos(angle), reach * math.sin(angle)
            line = LineString([(px - dx, py - dy), (px + dx, py + dy)])
            try:
                out = svc.split_grid(
                    db_session, grid.id, line, base_version=grid.version, actor="test"
                )
            except (PartTooSmall, svc.ValidationFailed, svc.topology.LineDoesNotCross):
                event("refused")
                counts["refused"] += 1
                return  # the line would cut off a piece under the minimum area: nothing changed
            counts["split"] += 1
            parts = [f["id"] for f in out["features"]]
            assert census(db_session) == (total, 0)
            assert held(db_session, parts) == mine and not held(db_session, [grid.id])
            assert sum(f["properties"]["household_count"] for f in out["features"]) == len(mine)

            versions = dict(
                db_session.execute(select(Grid.id, Grid.version).where(Grid.id.in_(parts))).all()
            )
            try:
                merged = svc.merge_grids(db_session, parts, base_versions=versions, actor="test")
            except svc.topology.MergeRefused:
                event("split, merge refused")
                return  # a multipart grid cut into pieces that do not all touch
            (whole,) = merged["features"]
            assert census(db_session) == (total, 0)
            assert held(db_session, [whole["id"]]) == mine
            counts["merged"] += 1
            event("split and merged back")
        finally:
            savepoint.rollback()

    one_cut()
    assert counts["split"] >= MIN_SPLITS and counts["merged"] >= MIN_MERGES, dict(counts)
