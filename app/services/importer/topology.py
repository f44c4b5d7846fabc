"""The hierarchy check of imported grids: inside the parent, no overlap between siblings.

The rule is ``gis.validate``'s, the one the editor applies (``outside_parent``,
``sibling_overlap``: the same measure, the same ``HIERARCHY_TOLERANCE_M2``). SQL only finds the
candidates, set-based: a child not covered by its parent, two current siblings sharing interior,
each whose geodesic area there is above a tenth of the tolerance (the two measures of a
centimetre-sized sliver differ far less than tenfold, so nothing the rule refuses is left out;
clean shared edges are left out). Each candidate is then judged by the rule itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.validate import HIERARCHY_TOLERANCE_M2, outside_parent, sibling_overlap

# Area (m²) of a child outside its parent, or of two siblings' overlap, tolerated as rounding noise.
TOPOLOGY_TOLERANCE_M2 = HIERARCHY_TOLERANCE_M2
# Candidates below this geodesic area (m²) cannot break the rule.
_CANDIDATE_FLOOR_M2 = HIERARCHY_TOLERANCE_M2 / 10


# A child not covered by its parent: (code, parent's code, child, parent).
_OUTSIDE_SQL = """
    SELECT c.code, p.code AS other, ST_AsBinary(c.geom) AS a_wkb, ST_AsBinary(p.geom) AS b_wkb
    FROM unnest(CAST(:ids AS integer[])) AS n(id)
    JOIN grid c ON c.id = n.id JOIN grid p ON p.id = c.parent_id
    WHERE NOT ST_CoveredBy(c.geom, p.geom)
      AND ST_Area(ST_Difference(c.geom, p.geom)::geography) > :floor
"""
# Two current siblings sharing interior: (code, the sibling's code, grid, sibling).
_OVERLAP_SQL = """
    SELECT a.code, b.code AS other, ST_AsBinary(a.geom) AS a_wkb, ST_AsBinary(b.geom) AS b_wkb
    FROM unnest(CAST(:ids AS integer[])) AS n(id)
    JOIN grid a ON a.id = n.id
    -- Candidates by the spatial index alone (OFFSET 0 keeps the other conditions out of
    -- this scan: the planner, without statistics for rows just loaded, would otherwise
    -- AND the partial code index into every probe, reading it whole each time).
    CROSS JOIN LATERAL (
        SELECT g.id, g.code, g.geom, g.parent_id, g.valid_to FROM grid g
        WHERE g.geom && a.geom OFFSET 0
    ) b
    LEFT JOIN unnest(CAST(:ids AS integer[])) AS nb(id) ON nb.id = b.id
    WHERE a.valid_to IS NULL AND b.valid_to IS NULL AND a.id <> b.id
      AND a.parent_id IS NOT DISTINCT FROM b.parent_id
      AND (nb.id IS NULL OR a.id < b.id) AND ST_Intersects(a.geom, b.geom)
      AND ST_Relate(a.geom, b.geom, '2********')
      AND ST_Area(ST_Intersection(a.geom, b.geom)::geography) > :floor
"""
# Overlaps with the siblings that were there before (the new grids' own pairs found in
# memory, ``sibling_overlaps``): only new grids under a parent that already had current
# children (none in a first import), probed against those children alone.
_OLD_OVERLAP_SQL = """
    WITH old AS MATERIALIZED (
        SELECT g.id, coalesce(g.parent_id, 0) AS parent FROM grid g
        LEFT JOIN unnest(CAST(:ids AS integer[])) AS n(id) ON n.id = g.id
        WHERE n.id IS NULL AND g.valid_to IS NULL
    ), pairs AS MATERIALIZED (
        SELECT a.id AS a, b.id AS b
        FROM unnest(CAST(:ids AS integer[])) AS n(id)
        JOIN grid a ON a.id = n.id
        CROSS JOIN LATERAL (SELECT g.id FROM grid g WHERE g.geom && a.geom OFFSET 0) b
        JOIN old o ON o.id = b.id
        WHERE a.valid_to IS NULL AND o.parent = coalesce(a.parent_id, 0)
          AND coalesce(a.parent_id, 0) IN (SELECT parent FROM old)
    )
    SELECT a.code, b.code AS other, ST_AsBinary(a.geom) AS a_wkb, ST_AsBinary(b.geom) AS b_wkb
    FROM pairs p JOIN grid a ON a.id = p.a JOIN grid b ON b.id = p.b
    WHERE ST_Intersects(a.geom, b.geom) AND ST_Relate(a.geom, b.geom, '2********')
      AND ST_Area(ST_Intersection(a.geom, b.geom)::geography) > :floor
"""
# Given pairs of grids (found overlapping in memory), measured.
_PAIRS_SQL = """
    SELECT a.code, b.code AS other, ST_AsBinary(a.geom) AS a_wkb, ST_AsBinary(b.geom) AS b_wkb
    FROM unnest(CAST(:a AS integer[]), CAST(:b AS integer[])) AS p(a, b)
    JOIN grid a ON a.id = p.a JOIN grid b ON b.id = p.b
    WHERE ST_Area(ST_Intersection(a.geom, b.geom)::geography) > :floor
"""
# Each check: its candidates, the rule that judges them, what a breach says.
_OUTSIDE = (_OUTSIDE_SQL, outside_parent, "{area} m² lies outside its parent {other}")
_REASON_OVERLAP = "overlaps sibling {other} by {area} m²"
_CHECKS: tuple[tuple[str, Callable[[Any, Any], Any], str], ...] = (
    _OUTSIDE,
    (_OVERLAP_SQL, sibling_overlap, _REASON_OVERLAP),
)


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
    params: dict[str, Any] = {"ids": grid_ids, "floor": _CANDIDATE_FLOOR_M2}
    checks: tuple[tuple[str, Callable[[Any, Any], Any], str], ...] = _CHECKS
    if new_pairs is not None:
        checks = (_OUTSIDE, (_OLD_OVERLAP_SQL, sibling_overlap, _REASON_OVERLAP))
        if new_pairs:
            checks += ((_PAIRS_SQL, sibling_overlap, _REASON_OVERLAP),)
            params |= {"a": [p[0] for p in new_pairs], "b": [p[1] for p in new_pairs]}
    for sql, judge, reason in checks:
        for code, other, a_wkb, b_wkb in session.execute(text(sql), params):
            found = judge(shapely.from_wkb(a_wkb), shapely.from_wkb(b_wkb))
            if found is None:
                continue
            part, area = found
            at = part.representative_point()
            problems.append(
                {
                    "code": code,
                    "field": "geometry",
                    "reason": reason.format(area=f"{area:.2f}", other=other),
                    "location": f'{{"type":"Point","coordinates":[{at.x:.7f},{at.y:.7f}]}}',
                }
            )
    return problems
