"""The hierarchy check of imported grids: inside the parent, no overlap between siblings.

The rule is ``gis.validate``'s, the one the editor applies (``outside_parent``,
``sibling_overlap``: the same measure, the same ``HIERARCHY_TOLERANCE_M2``). SQL only finds the
candidates, set-based: a child not covered by its parent, two current siblings sharing interior,
each whose geodesic area there is above a tenth of the tolerance (the two measures of a
centimetre-sized sliver differ far less than tenfold, so nothing the rule refuses is left out;
clean shared edges are left out). Each candidate is then judged by the rule itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
# Each check: its candidates, the rule that judges them, what a breach says.
_CHECKS: tuple[tuple[str, Callable[[Any, Any], Any], str], ...] = (
    (_OUTSIDE_SQL, outside_parent, "{area} m² lies outside its parent {other}"),
    (_OVERLAP_SQL, sibling_overlap, "overlaps sibling {other} by {area} m²"),
)


def check_topology(session: Session, grid_ids: list[int]) -> list[dict[str, Any]]:
    """Return the hierarchy rules the given grids break: outside the parent, overlapping a sibling."""
    if not grid_ids:
        return []
    problems: list[dict[str, Any]] = []
    params = {"ids": grid_ids, "floor": _CANDIDATE_FLOOR_M2}
    for sql, judge, reason in _CHECKS:
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
