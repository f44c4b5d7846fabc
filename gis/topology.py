"""Split, merge and check grid boundaries so that the hierarchy never breaks.

- :func:`split_by_line` cuts a (Multi)Polygon along a LineString into parts that tile it
  exactly; :func:`plan_split` also says which part each point and each child grid goes to.
- :func:`merge_grids` unites adjacent siblings into one polygon, or says why it cannot.
- :func:`integrity_report` finds the gaps, overlaps, overhangs and slivers among the children
  of a parent.
- :func:`assign_points` puts points (households, cameras, cases) into parts.

Order of parts: parts are numbered from the left of the cut line as it was drawn to its right
(by the position of each part's centroid across the line's start-to-end direction; ties by
longitude, then latitude). A horizontal line drawn west to east therefore numbers the northern
part first.

Points on a cut: a point goes to the first part in that order whose closed area contains it,
so a point lying exactly on the cut goes to the part on the left of the line. A point outside
every part gets -1, or the nearest part when asked (ties to the lower-numbered part).

Geometry noise: a cut line that runs along an existing edge can leave slivers of almost no area
between the line and the edge. Pieces under ``tolerance_m2`` are joined to the neighbouring
part they share the longest edge with, so they never become grids of their own.

Why one module of this size: split, merge and the integrity report share the part order, the
sliver rule and the point placement above; apart, each would restate them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
import shapely.ops
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from gis.metric import centre_of, distance_m, polygon_area_m2, polygons, to_metric
from gis.validate import (
    DEFAULT_LIMITS,
    SNAP_TOLERANCE_DEG,
    GeometryRejected,
    MalformedGeometry,
    WrongGeometryType,
    as_geometry,
    check_coordinates,
    check_polygonal,
    check_valid,
    fmt_point,
    snap_to_neighbours,
    to_multipolygon,
)

LOGGER = logging.getLogger(__name__)

#: Relative tolerance on area: the parts of a split sum to the original within this.
AREA_REL_TOLERANCE = 1e-9
#: A piece narrower than this everywhere (twice its largest inscribed circle's radius) is a sliver.
DEFAULT_SLIVER_WIDTH_M = 2.0


class LineDoesNotCross(GeometryRejected):
    """The cut line does not divide the grid into two or more parts."""

    code = "line_does_not_cross"


class PartTooSmall(GeometryRejected):
    """A split would leave a part smaller than the minimum grid area."""

    code = "part_too_small"


class SplitNotExact(GeometryRejected):
    """The computed parts do not tile the grid within tolerance; nothing is changed."""

    code = "split_not_exact"


class ChildStraddlesCut(GeometryRejected):
    """A child grid lies on both sides of the cut line, so it cannot follow one part."""

    code = "child_straddles_cut"


class MergeRefused(GeometryRejected):
    """The grids cannot be merged (too few, or their union falls apart)."""

    code = "merge_refused"


# --------------------------------------------------------------------------------------------
# split


def split_by_line(
    grid: Any,
    line: Any,
    *,
    min_part_area_m2: float = 0.0,
    tolerance_m2: float = DEFAULT_LIMITS.tolerance_m2,
) -> list[shapely.MultiPolygon]:
    """Cut a grid boundary along a line into parts that tile it exactly.

    ``grid`` is a valid Polygon or MultiPolygon (shapely or GeoJSON), ``line`` a LineString.
    The line must cross the grid: run through its interior from edge to edge so that at least
    two parts result; otherwise :class:`LineDoesNotCross` says why (misses the grid, only runs
    along its edge, stops inside it). Holes are kept in the part they fall in. A polygon of a
    MultiPolygon that the line does not cut joins the part nearest to it. Parts come back as
    MultiPolygons in the documented order (left of the line first).
    """
    poly = as_geometry(grid)
    check_polygonal(poly, "被切割的网格 / the grid to split")
    check_valid(poly)
    cut = _as_cut_line(line)

    components = list(poly.geoms) if poly.geom_type == "MultiPolygon" else [poly]
    pieces: list[shapely.Polygon] = []
    untouched: list[shapely.Polygon] = []
    for comp in components:
        if not shapely.relate_pattern(cut, comp, "T********"):
            untouched.append(comp)
            continue
        result = [g for g in shapely.ops.split(comp, cut).geoms if g.geom_type == "Polygon"]
        result = _absorb_noise(result, tolerance_m2)
        if len(result) < 2:
            untouched.append(comp)
        else:
            pieces.extend(result)
    if len(pieces) < 2:
        raise _why_not_crossing(poly, cut)

    pieces = _order_parts(pieces, cut)
    groups: list[list[shapely.Polygon]] = [[p] for p in pieces]
    if untouched:
        nearest = _nearest_index(pieces, untouched)
        for comp, k in zip(untouched, nearest, strict=True):
            groups[k].append(comp)
    parts = [to_multipolygon(shapely.MultiPolygon(group)) for group in groups]

    _check_tiling(poly, parts)
    if min_part_area_m2 > 0:
        for k, part in enumerate(parts):
            area = polygon_area_m2(part)
            if area < min_part_area_m2:
                at = part.representative_point()
                raise PartTooSmall(
                    f"切出的部分过小 / part {k + 1} near {fmt_point(at.x, at.y)} would have "
                    f"{area:,.1f} m², less than the minimum of {min_part_area_m2:,.1f} m²",
                    location=part,
                    part=k,
                    area_m2=area,
                    min_area_m2=min_part_area_m2,
                )
    return parts


def _as_cut_line(line: Any) -> shapely.LineString:
    g = as_geometry(line)
    if g.geom_type != "LineString":
        raise WrongGeometryType(
            f"切割线类型错误 / the cut must be a LineString, got {g.geom_type}",
            geometry_type=g.geom_type,
        )
    check_coordinates(g)
    if g.is_empty or g.length == 0:
        raise MalformedGeometry("切割线长度为零 / the cut line has no length")
    return g


def _why_not_crossing(poly: BaseGeometry, cut: shapely.LineString) -> LineDoesNotCross:
    """Explain why the line leaves the grid in one piece."""
    if not cut.intersects(poly):
        gap = distance_m(poly, cut)
        return LineDoesNotCross(
            f"切割线没有经过网格 / the line does not reach the grid: it passes {gap:,.1f} m "
            "away from it",
            location=cut,
            distance_m=gap,
        )
    inside = poly.intersection(cut)
    if not shapely.relate_pattern(cut, poly, "T********"):
        at = inside.representative_point()
        return LineDoesNotCross(
            "切割线只沿网格边界经过 / the line only touches the grid's edge near "
            f"{fmt_point(at.x, at.y)}; it must run through the grid",
            location=inside,
        )
    interior = [
        p for p in (shapely.Point(cut.coords[0]), shapely.Point(cut.coords[-1])) if poly.contains(p)
    ]
    if interior:
        p = interior[0]
        return LineDoesNotCross(
            f"切割线止于网格内部 / the line stops inside the grid at {fmt_point(p.x, p.y)}; "
            "draw it across the grid from edge to edge",
            location=shapely.MultiPoint(interior) if len(interior) > 1 else p,
        )
    at = inside.representative_point()
    return LineDoesNotCross(
        "切割线没有把网格分开 / the line does not divide the grid into parts "
        f"(near {fmt_point(at.x, at.y)}); draw it across the grid from edge to edge",
        location=inside,
    )


def _absorb_noise(pieces: list[shapely.Polygon], tolerance_m2: float) -> list[BaseGeometry]:
    """Join pieces below the noise area to the neighbour they share the longest edge with."""
    if len(pieces) < 2:
        return pieces
    areas = [polygon_area_m2(p) for p in pieces]
    keep = [i for i, a in enumerate(areas) if a > tolerance_m2]
    noise = [i for i, a in enumerate(areas) if a <= tolerance_m2]
    if not noise:
        return pieces
    if not keep:
        return [shapely.union_all(pieces)]
    merged: dict[int, list[BaseGeometry]] = {i: [pieces[i]] for i in keep}
    for i in noise:
        shared = [pieces[i].boundary.intersection(pieces[k].boundary).length for k in keep]
        if max(shared) > 0:
            target = keep[int(np.argmax(shared))]
        else:
            target = keep[int(np.argmin([pieces[i].distance(pieces[k]) for k in keep]))]
        merged[target].append(pieces[i])
    out: list[BaseGeometry] = []
    for i in keep:
        group = merged[i]
        out.append(group[0] if len(group) == 1 else shapely.union_all(group))
    return out


def _order_parts(pieces: list[BaseGeometry], cut: shapely.LineString) -> list[BaseGeometry]:
    """Sort parts from the left of the cut line to its right (see the module docstring)."""
    (x0, y0), (x1, y1) = cut.coords[0], cut.coords[-1]
    # Scale longitude so that "left" is judged on the ground, not in stretched degrees.
    kx = math.cos(math.radians((y0 + y1) / 2.0))
    dx, dy = (x1 - x0) * kx, y1 - y0
    centroids = [p.centroid for p in pieces]
    if dx == 0 and dy == 0:
        keys = [(0.0, round(c.x, 12), round(c.y, 12)) for c in centroids]
    else:
        norm = math.hypot(dx, dy)
        # Left normal of the direction (dx, dy) is (-dy, dx); larger = further left = first.
        keys = [
            (
                -round((-dy * (c.x - x0) * kx + dx * (c.y - y0)) / norm, 12),
                round(c.x, 12),
                round(c.y, 12),
            )
            for c in centroids
        ]
    order = sorted(range(len(pieces)), key=lambda i: keys[i])
    return [pieces[i] for i in order]


def _nearest_index(targets: Sequence[BaseGeometry], geoms: Sequence[BaseGeometry]) -> list[int]:
    """Return, for each geometry, the index of the nearest target (ties to the lowest index)."""
    centre = centre_of(*targets, *geoms)
    tm = to_metric(np.array(targets, dtype=object), centre)
    gm = to_metric(np.array(geoms, dtype=object), centre)
    out = []
    for g in gm:
        d = shapely.distance(tm, g)
        out.append(int(np.flatnonzero(d == d.min())[0]))
    return out


def _check_tiling(poly: BaseGeometry, parts: Sequence[BaseGeometry]) -> None:
    """Refuse a result whose parts do not add up to the original area."""
    total = sum(p.area for p in parts)
    if abs(total - poly.area) > AREA_REL_TOLERANCE * poly.area:
        at = poly.representative_point()
        LOGGER.warning("split parts sum to %r, grid has %r", total, poly.area)
        raise SplitNotExact(
            "切割结果不精确，未保存 / the parts of this cut do not add up to the grid "
            f"(near {fmt_point(at.x, at.y)}); move the line slightly and try again",
            location=poly,
        )


# --------------------------------------------------------------------------------------------
# points and children


def _point_arrays(points: Any) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(points, np.ndarray) and points.dtype != object:
        xy = np.asarray(points, dtype=float).reshape(-1, 2)
    else:
        seq = list(points)
        if seq and isinstance(seq[0], BaseGeometry):
            xy = shapely.get_coordinates(np.array(seq, dtype=object))
        else:
            xy = np.asarray(seq, dtype=float).reshape(-1, 2)
    return xy[:, 0], xy[:, 1]


def assign_points(
    parts: Sequence[BaseGeometry], points: Any, *, outside: str = "none"
) -> np.ndarray:
    """Return, for each point, the index of the part that contains it.

    ``points`` is an (n, 2) array of lon/lat, a sequence of (lon, lat) pairs or of shapely
    Points. A point goes to the first part (in the given order) whose closed area contains it,
    so a point on a shared edge goes to the lower-numbered part. A point outside every part
    gets -1 when ``outside="none"``, the nearest part (in metres; ties to the lower index) when
    ``outside="nearest"``.
    """
    if outside not in ("none", "nearest"):
        raise ValueError("outside must be 'none' or 'nearest'")
    x, y = _point_arrays(points)
    result = np.full(len(x), -1, dtype=np.int64)
    todo = np.arange(len(x))
    for k, part in enumerate(parts):
        if len(todo) == 0:
            break
        shapely.prepare(part)
        hit = shapely.intersects_xy(part, x[todo], y[todo])
        result[todo[hit]] = k
        todo = todo[~hit]
    if outside == "nearest" and len(todo) and len(parts):
        pts = shapely.points(x[todo], y[todo])
        result[todo] = _nearest_index(list(parts), list(pts))
    return result


def assign_children(
    parts: Sequence[BaseGeometry],
    children: Mapping[Hashable, BaseGeometry],
    *,
    tolerance_m2: float = DEFAULT_LIMITS.tolerance_m2,
) -> dict[Hashable, int]:
    """Return the part each child grid falls in; refuse when a child lies across a cut.

    A child counts as lying in a part when more than ``tolerance_m2`` of it is inside that
    part. A child in two or more parts raises :class:`ChildStraddlesCut`, naming every such
    child, with the stretch of cut that runs through it as the location. A child in no part
    (which a consistent hierarchy never has) follows the nearest part.
    """
    out: dict[Hashable, int] = {}
    straddling: list[tuple[Hashable, list[int]]] = []
    for key in sorted(children, key=str):
        child = children[key]
        inside = []
        for k, part in enumerate(parts):
            if not shapely.relate_pattern(child, part, "T********"):
                continue
            if polygon_area_m2(child.intersection(part)) > tolerance_m2:
                inside.append(k)
        if len(inside) == 1:
            out[key] = inside[0]
        elif not inside:
            out[key] = _nearest_index(list(parts), [child])[0]
        else:
            straddling.append((key, inside))
    if straddling:
        locations = []
        for key, inside in straddling:
            child = children[key]
            edges = [
                parts[a].boundary.intersection(parts[b].boundary)
                for i, a in enumerate(inside)
                for b in inside[i + 1 :]
            ]
            cut = shapely.union_all(edges).intersection(child)
            locations.append(cut if not cut.is_empty else child.boundary)
        names = ", ".join(str(k) for k, _ in straddling)
        at = locations[0].representative_point()
        raise ChildStraddlesCut(
            f"下级网格跨越切割线 / child grid {names} lies on both sides of the cut "
            f"(near {fmt_point(at.x, at.y)}); move the line onto its edge or split it first",
            location=shapely.union_all(locations),
            children=[k for k, _ in straddling],
        )
    return out


@dataclass
class SplitPlan:
    """What a split would do: the parts, their areas, and where each point and child goes."""

    parts: list[shapely.MultiPolygon]
    areas_m2: list[float]
    points: dict[str, np.ndarray] = field(default_factory=dict)
    children: dict[Hashable, int] = field(default_factory=dict)

    def counts(self) -> list[dict[str, int]]:
        """Return, per part, how many points of each kind and how many children it gets."""
        out = []
        for k in range(len(self.parts)):
            row = {kind: int(np.count_nonzero(idx == k)) for kind, idx in self.points.items()}
            row["children"] = sum(1 for v in self.children.values() if v == k)
            out.append(row)
        return out


def plan_split(
    grid: Any,
    line: Any,
    *,
    points: Mapping[str, Any] | None = None,
    children: Mapping[Hashable, BaseGeometry] | None = None,
    min_part_area_m2: float = 0.0,
    tolerance_m2: float = DEFAULT_LIMITS.tolerance_m2,
    snap_tolerance_deg: float = SNAP_TOLERANCE_DEG,
) -> SplitPlan:
    """Work out a split without saving anything: parts, areas, and where everything goes.

    ``points`` maps a kind ("households", "cameras", "cases") to that kind's points; points
    outside the grid follow the nearest part, so every point of the grid stays in exactly one
    part. ``children`` maps child ids to their boundaries. Vertices of the line within
    ``snap_tolerance_deg`` of a vertex of the grid or a child are moved onto it first.
    """
    grid_g = as_geometry(grid)
    cut = as_geometry(line)
    # A line drawn along children's edges in a map client comes back rounded; put its vertices
    # back onto the children's own so that no child seems to straddle it by a hair.
    cut = snap_to_neighbours(cut, [grid_g, *(children or {}).values()], snap_tolerance_deg)
    parts = split_by_line(grid_g, cut, min_part_area_m2=min_part_area_m2, tolerance_m2=tolerance_m2)
    plan = SplitPlan(parts=parts, areas_m2=[polygon_area_m2(p) for p in parts])
    for kind, pts in (points or {}).items():
        plan.points[kind] = assign_points(parts, pts, outside="nearest")
    if children:
        plan.children = assign_children(parts, children, tolerance_m2=tolerance_m2)
    return plan


# --------------------------------------------------------------------------------------------
# merge


def merge_grids(
    grids: Mapping[Hashable, Any], *, tolerance_m2: float = DEFAULT_LIMITS.tolerance_m2
) -> shapely.MultiPolygon:
    """Unite adjacent grids into one polygon; refuse when the union would fall apart.

    ``grids`` maps ids (or codes) to boundaries. Grids must share edges (touching at a corner
    is not enough) so that their union is a single polygon. Holes under ``tolerance_m2`` in the
    union come from floating-point mismatch between neighbours' edges and are closed. Returns a
    MultiPolygon holding that one polygon (the stored column type).
    """
    if len(grids) < 2:
        raise MergeRefused(
            "至少需要两个网格才能合并 / merging needs at least two grids",
            count=len(grids),
        )
    keys = sorted(grids, key=str)
    geoms = []
    for key in keys:
        g = as_geometry(grids[key])
        check_polygonal(g, f"网格 {key} / grid {key}")
        geoms.append(g)
    union = shapely.union_all(geoms)
    polys = [p for p in polygons(union) if polygon_area_m2(p) > tolerance_m2]
    if len(polys) != 1:
        raise _why_not_one_polygon(keys, geoms, polys)
    poly = polys[0]
    holes = [h for h in poly.interiors if polygon_area_m2(shapely.Polygon(h)) > tolerance_m2]
    if len(holes) != len(poly.interiors):
        poly = shapely.Polygon(poly.exterior, holes)
    return to_multipolygon(poly)


def _why_not_one_polygon(
    keys: list[Hashable], geoms: list[BaseGeometry], pieces: list[shapely.Polygon]
) -> MergeRefused:
    groups = []
    for piece in pieces:
        shapely.prepare(piece)
        members = [
            k
            for k, g in zip(keys, geoms, strict=True)
            if piece.intersects(g.representative_point())
        ]
        groups.append(members)
    text = " | ".join("{" + ", ".join(str(k) for k in g) + "}" for g in groups)
    first, second = pieces[0], pieces[1]
    contact = first.intersection(second)
    gap = distance_m(first, second)
    if not contact.is_empty:
        at = contact.representative_point()
        why = f"they only touch at a corner, {fmt_point(at.x, at.y)}"
        location: BaseGeometry = contact
    else:
        a, b = shapely.ops.nearest_points(first, second)
        why = f"they are {gap:,.2f} m apart near {fmt_point(a.x, a.y)}"
        location = shapely.LineString([a, b]) if a != b else a
    return MergeRefused(
        f"网格不相邻，合并后不是一个多边形 / the merged area would fall apart into "
        f"{len(pieces)} pieces ({text}): {why}",
        location=location,
        groups=groups,
        distance_m=gap,
    )


# --------------------------------------------------------------------------------------------
# integrity


@dataclass
class Issue:
    """One problem in a parent's coverage: a gap, an overlap, an overhang or a sliver."""

    kind: str
    geometry: BaseGeometry
    area_m2: float
    width_m: float
    grids: tuple[Hashable, ...] = ()
    is_sliver: bool = False

    def to_feature(self) -> dict[str, Any]:
        """Return the issue as a GeoJSON Feature."""
        at = self.geometry.representative_point()
        return {
            "type": "Feature",
            "geometry": mapping(self.geometry),
            "properties": {
                "kind": self.kind,
                "area_m2": round(self.area_m2, 3),
                "width_m": round(self.width_m, 3),
                "grids": list(self.grids),
                "sliver": self.is_sliver,
                "at": [at.x, at.y],
            },
        }


@dataclass
class IntegrityReport:
    """Gaps, overlaps, overhangs and slivers among the children of one parent.

    Rules: a *gap* is part of the parent covered by no child; an *overlap* is area shared by
    two children; *outside* is a child's area beyond the parent; all three are reported when
    larger than ``noise_m2``. A *sliver* is a piece narrower than ``sliver_width_m`` everywhere:
    twice the radius of its largest inscribed circle, measured in metres. Gaps and overlaps
    carry the sliver flag; ``slivers`` lists the children's own thin polygons.
    """

    parent_area_m2: float
    children_area_m2: float
    gaps: list[Issue] = field(default_factory=list)
    overlaps: list[Issue] = field(default_factory=list)
    outside: list[Issue] = field(default_factory=list)
    slivers: list[Issue] = field(default_factory=list)
    noise_m2: float = DEFAULT_LIMITS.tolerance_m2
    sliver_width_m: float = DEFAULT_SLIVER_WIDTH_M

    @property
    def ok(self) -> bool:
        """Whether the children cover the parent exactly, without slivers."""
        return not (self.gaps or self.overlaps or self.outside or self.slivers)

    def issues(self) -> list[Issue]:
        """Return every issue, gaps first, then overlaps, overhangs and slivers."""
        return [*self.gaps, *self.overlaps, *self.outside, *self.slivers]

    def summary(self) -> dict[str, Any]:
        """Return the counts and areas as plain numbers."""
        return {
            "ok": self.ok,
            "parent_area_m2": round(self.parent_area_m2, 3),
            "children_area_m2": round(self.children_area_m2, 3),
            "gap_count": len(self.gaps),
            "gap_area_m2": round(sum(i.area_m2 for i in self.gaps), 3),
            "overlap_count": len(self.overlaps),
            "overlap_area_m2": round(sum(i.area_m2 for i in self.overlaps), 3),
            "outside_count": len(self.outside),
            "outside_area_m2": round(sum(i.area_m2 for i in self.outside), 3),
            "sliver_count": len(self.slivers),
            "rules": {"noise_m2": self.noise_m2, "sliver_width_m": self.sliver_width_m},
        }

    def to_geojson(self) -> dict[str, Any]:
        """Return a FeatureCollection of the issues with the summary as a foreign member."""
        return {
            "type": "FeatureCollection",
            "features": [i.to_feature() for i in self.issues()],
            "summary": self.summary(),
        }


def integrity_report(
    parent: Any,
    children: Mapping[Hashable, Any],
    *,
    noise_m2: float = DEFAULT_LIMITS.tolerance_m2,
    sliver_width_m: float = DEFAULT_SLIVER_WIDTH_M,
) -> IntegrityReport:
    """Check that the children of a parent cover it exactly once, and list what is wrong."""
    parent_g = as_geometry(parent)
    keys = sorted(children, key=str)
    geoms = [as_geometry(children[k]) for k in keys]
    centre = centre_of(parent_g, *geoms)
    report = IntegrityReport(
        parent_area_m2=polygon_area_m2(parent_g),
        children_area_m2=sum(polygon_area_m2(g) for g in geoms),
        noise_m2=noise_m2,
        sliver_width_m=sliver_width_m,
    )

    def issues(kind: str, geom: BaseGeometry, grids: tuple[Hashable, ...]) -> list[Issue]:
        found = []
        for piece in polygons(geom):
            area = polygon_area_m2(piece)
            if area <= noise_m2:
                continue
            width = _width_m(piece, centre)
            found.append(Issue(kind, piece, area, width, grids, width < sliver_width_m))
        return found

    covered = shapely.union_all(geoms) if geoms else shapely.Polygon()
    report.gaps = issues("gap", parent_g.difference(covered), ())
    if geoms:
        arr = np.array(geoms, dtype=object)
        tree = shapely.STRtree(arr)
        left, right = tree.query(arr, predicate="intersects")
        for i, j in sorted(zip(left.tolist(), right.tolist(), strict=True)):
            if i >= j or not shapely.relate_pattern(geoms[i], geoms[j], "T********"):
                continue
            inter = geoms[i].intersection(geoms[j])
            report.overlaps += issues("overlap", inter, (keys[i], keys[j]))
        shapely.prepare(parent_g)
        for key, g in zip(keys, geoms, strict=True):
            if not parent_g.contains(g):
                report.outside += issues("outside", g.difference(parent_g), (key,))
            for piece in issues("sliver", g, (key,)):
                if piece.is_sliver:
                    report.slivers.append(piece)
    for bucket in (report.gaps, report.overlaps, report.outside, report.slivers):
        bucket.sort(key=lambda i: (-i.area_m2, i.geometry.representative_point().x))
    return report


def _width_m(piece: BaseGeometry, centre: tuple[float, float]) -> float:
    """Return twice the radius of the largest circle inside ``piece``, in metres."""
    metric = to_metric(piece, centre)
    tolerance = max(0.01, min(1.0, math.sqrt(metric.area) / 1000.0))
    radius_line = shapely.maximum_inscribed_circle(metric, tolerance)
    return 2.0 * radius_line.length
