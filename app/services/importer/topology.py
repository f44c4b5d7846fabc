"""The hierarchy check of imported grids: inside the parent, no overlap between siblings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.validate import HIERARCHY_TOLERANCE_M2

# Area (m²) of a child outside its parent, or of two siblings' overlap, tolerated as rounding noise.
TOPOLOGY_TOLERANCE_M2 = HIERARCHY_TOLERANCE_M2


def sibling_overlaps(parents: Sequence[Any], geoms: Sequence[Any]) -> list[tuple[int, int]]:
    """Pairs (i, j), i < j, of the given shapes that share a parent and whose interiors meet
    (in memory: candidates by an STRtree of boxes, then one vectorised DE-9IM test; siblings
    that only touch are not a pair)."""
    shapes = np.asarray(geoms, dtype=object)
    if len(shapes) < 2:
        return []
    keys = np.asarray([p if p is not None else "" for p in parents], dtype=object)
    i, j = shapely.STRtree(shapes).query(shapes)
    keep = (i < j) & (keys[i] == keys[j])
    i, j = i[keep], j[keep]
    hit = shapely.relate_pattern(shapes[i], shapes[j], "2********")
    return [(int(a), int(b)) for a, b in zip(i[hit], j[hit], strict=True)]


def check_topology(
    session: Session,
    grid_ids: list[int],
    new_pairs: list[tuple[int, int]] | None = None,
) -> list[dict[str, Any]]:
    """Return the hierarchy rules the given grids break: outside the parent, overlapping a sibling.

    ``new_pairs``: when the caller has already found the overlapping pairs among the given
    grids themselves (``sibling_overlaps``, ids), PostGIS looks only for overlaps with the
    grids that were there before, and measures the pairs given."""
    if not grid_ids:
        return []
    problems: list[dict[str, Any]] = []
    outside = session.execute(
        text(
            """
            SELECT c.code, p.code AS parent, ST_Area(ST_Difference(c.geom, p.geom)::geography) AS a,
                   ST_AsGeoJSON(ST_PointOnSurface(ST_Difference(c.geom, p.geom)), 7) AS loc
            FROM unnest(CAST(:ids AS integer[])) AS n(id)
            JOIN grid c ON c.id = n.id JOIN grid p ON p.id = c.parent_id
            WHERE NOT ST_CoveredBy(c.geom, p.geom)
            """
        ),
        {"ids": grid_ids},
    )
    for code, parent, area, loc in outside:
        if area > TOPOLOGY_TOLERANCE_M2:
            problems.append(
                {
                    "code": code,
                    "field": "geometry",
                    "reason": f"{area:.2f} m² lies outside its parent {parent}",
                    "location": loc,
                }
            )
    if new_pairs is None:
        overlaps = session.execute(
            text(
                """
                SELECT a.code, b.code, ST_Area(ST_Intersection(a.geom, b.geom)::geography) AS a,
                       ST_AsGeoJSON(ST_PointOnSurface(ST_Intersection(a.geom, b.geom)), 7) AS loc
                FROM unnest(CAST(:ids AS integer[])) AS n(id)
                JOIN grid a ON a.id = n.id
                -- Candidates by the spatial index alone (OFFSET 0 keeps the other conditions out
                -- of this scan: the planner, without statistics for rows just loaded, would
                -- otherwise AND the partial code index into every probe, reading it whole).
                CROSS JOIN LATERAL (
                    SELECT g.id, g.code, g.geom, g.parent_id, g.valid_to FROM grid g
                    WHERE g.geom && a.geom OFFSET 0
                ) b
                LEFT JOIN unnest(CAST(:ids AS integer[])) AS nb(id) ON nb.id = b.id
                WHERE a.valid_to IS NULL AND b.valid_to IS NULL AND a.id <> b.id
                  AND a.parent_id IS NOT DISTINCT FROM b.parent_id
                  AND (nb.id IS NULL OR a.id < b.id) AND ST_Intersects(a.geom, b.geom)
                  AND ST_Relate(a.geom, b.geom, '2********')
                """
            ),
            {"ids": grid_ids},
        ).all()
    else:
        # Only the grids that were there before can still overlap a new one: the new grids
        # under a parent that already had current children (none at all in a first import),
        # probed against those children alone, the costly tests on the pairs left.
        overlaps = session.execute(
            text(
                """
                WITH old AS MATERIALIZED (
                    SELECT g.id, coalesce(g.parent_id, 0) AS parent FROM grid g
                    LEFT JOIN unnest(CAST(:ids AS integer[])) AS n(id) ON n.id = g.id
                    WHERE n.id IS NULL AND g.valid_to IS NULL
                ), pairs AS MATERIALIZED (
                    SELECT a.id AS a, b.id AS b
                    FROM unnest(CAST(:ids AS integer[])) AS n(id)
                    JOIN grid a ON a.id = n.id
                    CROSS JOIN LATERAL (
                        SELECT g.id FROM grid g WHERE g.geom && a.geom OFFSET 0
                    ) b
                    JOIN old o ON o.id = b.id
                    WHERE a.valid_to IS NULL AND o.parent = coalesce(a.parent_id, 0)
                      AND coalesce(a.parent_id, 0) IN (SELECT parent FROM old)
                )
                SELECT a.code, b.code, ST_Area(ST_Intersection(a.geom, b.geom)::geography) AS a,
                       ST_AsGeoJSON(ST_PointOnSurface(ST_Intersection(a.geom, b.geom)), 7) AS loc
                FROM pairs p JOIN grid a ON a.id = p.a JOIN grid b ON b.id = p.b
                WHERE ST_Intersects(a.geom, b.geom) AND ST_Relate(a.geom, b.geom, '2********')
                """
            ),
            {"ids": grid_ids},
        ).all()
    if new_pairs:
        overlaps += session.execute(
            text(
                """
                SELECT a.code, b.code, ST_Area(ST_Intersection(a.geom, b.geom)::geography) AS a,
                       ST_AsGeoJSON(ST_PointOnSurface(ST_Intersection(a.geom, b.geom)), 7) AS loc
                FROM unnest(CAST(:a AS integer[]), CAST(:b AS integer[])) AS p(a, b)
                JOIN grid a ON a.id = p.a JOIN grid b ON b.id = p.b
                """
            ),
            {"a": [p[0] for p in new_pairs], "b": [p[1] for p in new_pairs]},
        ).all()
    for code, other, area, loc in overlaps:
        if area > TOPOLOGY_TOLERANCE_M2:
            problems.append(
                {
                    "code": code,
                    "field": "geometry",
                    "reason": f"overlaps sibling {other} by {area:.2f} m²",
                    "location": loc,
                }
            )
    return problems
