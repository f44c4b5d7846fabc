"""Check a grid boundary before it is saved, and say what is wrong and where.

Every rule a boundary breaks is its own exception class. Each carries ``http_status`` (422),
a machine ``code``, a message in plain words (Chinese first, then English, with the
coordinates of the problem) and ``location``: a geometry to show on the map at the place the
problem is. ``to_dict()`` gives the JSON body an API answers with.

Checks, in this order (cheap ones first, so a 2,000-vertex edit is judged in milliseconds):
GeoJSON readable, Polygon/MultiPolygon, not empty, coordinates in lon/lat range, vertex count,
valid (simple rings, holes inside shells ...), minimum geodesic area, inside the parent
(or clipped to it), no overlap with siblings (or clipped away from them).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from scipy.spatial import cKDTree
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from gis.errors import GisError
from gis.metric import polygon_area_m2, polygons

LOGGER = logging.getLogger(__name__)


#: The hierarchy rule's one tolerance, for drawing and for import alike: a child may stick out
#: of its parent, or overlap a sibling, by at most this much (m²) — floating-point noise, not a
#: real overlap.
HIERARCHY_TOLERANCE_M2 = 0.01


@dataclass(frozen=True)
class BoundaryLimits:
    """The limits a grid boundary must respect.

    ``tolerance_m2`` is the overlap (or overhang over the parent) that is taken for
    floating-point noise rather than a real overlap: a vertex snapped onto a neighbour's edge
    is off that edge by about 1e-15 degrees, which makes overlaps far below a square centimetre.
    """

    max_vertices: int = 20_000
    min_area_m2: float = 100.0
    tolerance_m2: float = HIERARCHY_TOLERANCE_M2


DEFAULT_LIMITS = BoundaryLimits()


def fmt_point(x: float, y: float) -> str:
    """Format a lon/lat position the way messages show it (six decimals, about 0.1 m)."""
    return f"{x:.6f},{y:.6f}"


def _area_text(area_m2: float) -> str:
    return f"{area_m2:,.1f} m²" if area_m2 < 1e6 else f"{area_m2 / 1e6:,.3f} km²"


class GeometryRejected(GisError):
    """A geometry breaks a rule; the message says which and where.

    ``location`` is a shapely geometry marking the place; ``to_dict()`` sends it as GeoJSON.
    """

    http_status = 422
    code = "geometry_rejected"

    def __init__(
        self, message: str, *, location: BaseGeometry | None = None, **details: Any
    ) -> None:
        super().__init__(message, **details)
        self.location = location

    def location_geojson(self) -> dict[str, Any] | None:
        """Return the location as a GeoJSON geometry, or None when there is none."""
        if self.location is None or self.location.is_empty:
            return None
        return mapping(self.location)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON error body: code, message, location (GeoJSON) and details."""
        return {**super().to_dict(), "location": self.location_geojson()}


class MalformedGeometry(GeometryRejected):
    """The input is not a readable GeoJSON geometry."""

    code = "malformed_geometry"


class WrongGeometryType(GeometryRejected):
    """The geometry is not of an accepted type (a boundary must be a Polygon or MultiPolygon)."""

    code = "wrong_geometry_type"


class EmptyGeometry(GeometryRejected):
    """The geometry has no coordinates (or nothing is left of it after clipping)."""

    code = "empty_geometry"


class CoordinatesOutOfRange(GeometryRejected):
    """A coordinate is not a finite lon/lat within -180..180, -90..90."""

    code = "coordinates_out_of_range"


class TooManyVertices(GeometryRejected):
    """The boundary has more vertices than the limit."""

    code = "too_many_vertices"


class InvalidGeometry(GeometryRejected):
    """The geometry is not valid (OGC simple features rules)."""

    code = "invalid_geometry"


class SelfIntersection(InvalidGeometry):
    """A ring crosses or touches itself or another ring of the same boundary."""

    code = "self_intersection"


class AreaTooSmall(GeometryRejected):
    """The boundary encloses less than the minimum area."""

    code = "area_too_small"


class OutsideParent(GeometryRejected):
    """Part of the boundary lies outside the parent grid."""

    code = "outside_parent"


class OverlapsSibling(GeometryRejected):
    """The boundary overlaps one or more sibling grids."""

    code = "overlaps_sibling"


@dataclass
class ValidatedBoundary:
    """A boundary that passed every check, as it should be stored.

    ``geometry`` is a MultiPolygon with counter-clockwise shells (RFC 7946). The ``clipped_*``
    fields say how much was cut off when the request asked for clipping.
    """

    geometry: shapely.MultiPolygon
    area_m2: float
    vertex_count: int
    clipped_parent_m2: float = 0.0
    clipped_siblings_m2: dict[Hashable, float] = field(default_factory=dict)


def as_geometry(obj: Any) -> BaseGeometry:
    """Read a shapely geometry, a GeoJSON geometry or a GeoJSON Feature; drop Z values."""
    if isinstance(obj, BaseGeometry):
        geom = obj
    elif isinstance(obj, Mapping):
        if obj.get("type") == "Feature":
            obj = obj.get("geometry")
            if obj is None:
                raise MalformedGeometry("要素没有几何 / the Feature has no geometry")
        try:
            geom = shape(obj)
        except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
            raise MalformedGeometry(
                f"无法读取几何 / not a readable GeoJSON geometry ({exc})"
            ) from exc
        except (shapely.errors.GEOSException, shapely.errors.GeometryTypeError) as exc:
            raise MalformedGeometry(
                f"无法读取几何 / not a readable GeoJSON geometry ({exc})"
            ) from exc
    else:
        raise MalformedGeometry(
            f"无法读取几何 / expected a GeoJSON geometry, got {type(obj).__name__}"
        )
    if shapely.get_coordinate_dimension(geom) > 2:
        geom = shapely.force_2d(geom)
    return geom


def check_coordinates(geom: BaseGeometry) -> None:
    """Refuse non-finite coordinates and those outside lon -180..180 / lat -90..90."""
    coords = shapely.get_coordinates(geom)
    if len(coords) == 0:
        return
    x, y = coords[:, 0], coords[:, 1]
    finite = np.isfinite(x) & np.isfinite(y)
    bad = ~finite | (np.abs(x) > 180.0) | (np.abs(y) > 90.0)
    if not bad.any():
        return
    i = int(np.flatnonzero(bad)[0])
    bx, by = float(x[i]), float(y[i])
    if not finite[i]:
        raise CoordinatesOutOfRange(
            f"坐标不是有限数 / vertex {i} is not a finite number ({bx}, {by})",
            vertex=i,
        )
    swapped = abs(bx) <= 90.0 and abs(by) <= 180.0
    hint = (
        "；经纬度可能写反了 / looks like lat/lon were swapped: we expect lon,lat" if swapped else ""
    )
    # A location outside the valid range cannot be drawn; show the swapped position if it
    # is plausible, else no location.
    location = shapely.Point(by, bx) if swapped else None
    raise CoordinatesOutOfRange(
        f"坐标超出经纬度范围 / coordinate {bx},{by} (vertex {i}) is outside "
        f"lon -180..180, lat -90..90{hint}",
        location=location,
        vertex=i,
        coordinate=[bx, by],
        likely_swapped=swapped,
    )


def check_polygonal(geom: BaseGeometry, what: str = "网格边界 / a grid boundary") -> None:
    """Refuse anything but a non-empty Polygon or MultiPolygon."""
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise WrongGeometryType(
            f"几何类型错误 / {what} must be a Polygon or MultiPolygon, got {geom.geom_type}",
            geometry_type=geom.geom_type,
        )
    if geom.is_empty:
        raise EmptyGeometry(f"几何为空 / {what} has no coordinates")


def check_valid(geom: BaseGeometry) -> None:
    """Refuse an invalid geometry, with the reason and the place it goes wrong."""
    if shapely.is_valid(geom):
        return
    # The reason text from GEOS is shown as it is; the location is found geometrically.
    reason = shapely.is_valid_reason(geom)
    crossings = find_self_intersections(geom)
    if crossings:
        first = crossings[0]
        extra = len(crossings) - 1
        more = f"（另有 {extra} 处 / and {extra} more）" if extra else ""
        raise SelfIntersection(
            f"边界自相交 / self-intersection at {fmt_point(first.x, first.y)}{more}",
            location=shapely.MultiPoint(crossings) if len(crossings) > 1 else first,
            reason=reason,
            points=[[p.x, p.y] for p in crossings],
        )
    location, label = _locate_other_invalidity(geom)
    where = f" at {fmt_point(location.x, location.y)}" if location is not None else ""
    raise InvalidGeometry(
        f"边界无效（{label[0]}）/ invalid boundary: {label[1]}{where}",
        location=location,
        reason=reason,
    )


def find_self_intersections(geom: BaseGeometry, limit: int = 50) -> list[shapely.Point]:
    """Return where the rings of a (Multi)Polygon cross or touch in a way that makes it invalid.

    Looks at every pair of ring segments that meet: two segments of the same ring may share
    only the vertex between them; segments of different rings may touch but not cross or
    run along each other. Returns at most ``limit`` points, sorted by lon then lat.
    """
    rings: list[np.ndarray] = []
    for poly in _polygon_list(geom):
        for ring in (poly.exterior, *poly.interiors):
            coords = np.asarray(ring.coords, dtype=float)
            if len(coords) < 2:
                continue
            keep = np.ones(len(coords), dtype=bool)
            keep[1:] = np.any(coords[1:] != coords[:-1], axis=1)
            coords = coords[keep]
            if len(coords) >= 2:
                rings.append(coords)
    if not rings:
        return []
    starts, ends, ring_id, seg_idx, ring_n = [], [], [], [], []
    for r, coords in enumerate(rings):
        n = len(coords) - 1
        starts.append(coords[:-1])
        ends.append(coords[1:])
        ring_id.append(np.full(n, r))
        seg_idx.append(np.arange(n))
        ring_n.append(np.full(n, n))
    a, b = np.concatenate(starts), np.concatenate(ends)
    rid, sid, rn = np.concatenate(ring_id), np.concatenate(seg_idx), np.concatenate(ring_n)
    lines = shapely.linestrings(np.stack([a, b], axis=1))
    tree = shapely.STRtree(lines)
    i, j = tree.query(lines, predicate="intersects")
    keep = i < j
    i, j = i[keep], j[keep]
    same = rid[i] == rid[j]
    step = sid[j] - sid[i]
    adjacent = same & ((step == 1) | (step == rn[i] - 1))
    inter = shapely.intersection(lines[i], lines[j])
    dims = shapely.get_dimensions(inter)
    # Same ring: any contact of non-adjacent segments is a self-touch or crossing; adjacent
    # segments that overlap along a stretch form a spike.
    bad_same = same & (~adjacent | (dims >= 1))
    # Different rings: segments may touch at a vertex, but not cross in their interiors or
    # run along each other.
    diff = ~same
    bad_diff = np.zeros(len(i), dtype=bool)
    if diff.any():
        bad_diff[diff] = shapely.relate_pattern(lines[i[diff]], lines[j[diff]], "T********")
    bad = bad_same | bad_diff
    points: set[tuple[float, float]] = set()
    for g in inter[bad]:
        if g.geom_type == "Point":
            points.add((g.x, g.y))
        else:
            c = shapely.line_interpolate_point(g, 0.5, normalized=True) if g.length else g
            pts = shapely.get_coordinates(c)
            if len(pts):
                points.add((float(pts[0, 0]), float(pts[0, 1])))
    return [shapely.Point(p) for p in sorted(points)[:limit]]


def _polygon_list(geom: BaseGeometry) -> list[shapely.Polygon]:
    if geom.geom_type == "Polygon":
        return [geom]
    return [g for g in getattr(geom, "geoms", []) if g.geom_type == "Polygon"]


def _locate_other_invalidity(
    geom: BaseGeometry,
) -> tuple[shapely.Point | None, tuple[str, str]]:
    """Find a place to show for invalidity that is not a ring crossing."""
    polys = _polygon_list(geom)
    for poly in polys:
        shell = shapely.Polygon(poly.exterior)
        if not shell.is_valid or shell.area == 0:
            return _first_point(poly.exterior), ("外边界退化", "the outer ring encloses no area")
        for hole in poly.interiors:
            hole_poly = shapely.Polygon(hole)
            if hole_poly.area == 0:
                return _first_point(hole), ("内洞退化", "a hole encloses no area")
            if not shell.covers(hole_poly):
                return _first_point(hole), ("内洞在外边界之外", "a hole lies outside its shell")
    for k, p in enumerate(polys):
        for q in polys[k + 1 :]:
            if shapely.Polygon(p.exterior).covers(q) or shapely.Polygon(q.exterior).covers(p):
                inner = q if shapely.Polygon(p.exterior).covers(q) else p
                return _first_point(inner.exterior), ("多边形嵌套", "one part lies inside another")
    # Rings that touch in several places cut the interior into pieces: show the contacts.
    for poly in polys:
        rings = [poly.exterior, *poly.interiors]
        contacts = [
            pt
            for k, a in enumerate(rings)
            for b in rings[k + 1 :]
            for pt in shapely.get_coordinates(a.intersection(b))
        ]
        if contacts:
            x, y = sorted(map(tuple, contacts))[0]
            return shapely.Point(x, y), (
                "内部不连通",
                "rings touch so that its interior falls apart",
            )
    pts = shapely.get_coordinates(geom)
    location = shapely.Point(pts[0]) if len(pts) else None
    return location, ("内部不连通或其他", "its interior is disconnected or otherwise broken")


def _first_point(ring: BaseGeometry) -> shapely.Point:
    return shapely.Point(ring.coords[0])


def to_multipolygon(geom: BaseGeometry) -> shapely.MultiPolygon:
    """Return the polygons of ``geom`` as one MultiPolygon with counter-clockwise shells."""
    polys = [p for p in polygons(geom) if not p.is_empty]
    multi = shapely.MultiPolygon(polys)
    return shapely.orient_polygons(multi)


def check_area(geom: BaseGeometry, limits: BoundaryLimits = DEFAULT_LIMITS) -> float:
    """Return the geodesic area in m²; refuse it when under the minimum."""
    area = polygon_area_m2(geom)
    if area < limits.min_area_m2:
        at = geom.representative_point()
        raise AreaTooSmall(
            f"面积过小 / the boundary at {fmt_point(at.x, at.y)} encloses {_area_text(area)}, "
            f"less than the minimum of {_area_text(limits.min_area_m2)}",
            location=at,
            area_m2=area,
            min_area_m2=limits.min_area_m2,
        )
    return area


#: Vertices this close (in degrees, about 1 cm) to a vertex of the parent, a sibling or a child
#: are moved onto it: coordinates that went through a map client rounded to 7 decimals then
#: meet their neighbours exactly again instead of leaving hair-thin overlaps and gaps. This is
#: a tolerance on the representation of numbers, not a measurement.
SNAP_TOLERANCE_DEG = 1e-7


def snap_to_neighbours(
    geom: BaseGeometry,
    references: Sequence[BaseGeometry],
    tolerance_deg: float = SNAP_TOLERANCE_DEG,
) -> BaseGeometry:
    """Move the vertices of ``geom`` that lie within the tolerance of a reference vertex onto it.

    Returns ``geom`` unchanged when nothing is that close, or when snapping would make it
    invalid.
    """
    refs = [r for r in references if r is not None and not r.is_empty]
    if tolerance_deg <= 0 or not refs:
        return geom
    targets = np.unique(shapely.get_coordinates(np.array(refs, dtype=object)), axis=0)
    tree = cKDTree(targets)
    coords = shapely.get_coordinates(geom)
    dist, idx = tree.query(coords, distance_upper_bound=tolerance_deg)
    near = np.isfinite(dist) & (dist > 0)
    if not near.any():
        return geom
    coords[near] = targets[idx[near]]
    snapped = shapely.remove_repeated_points(shapely.set_coordinates(geom, coords))
    if snapped.geom_type != geom.geom_type or not shapely.is_valid(snapped):
        return geom
    return snapped


def validate_boundary(
    geom: Any,
    *,
    parent: BaseGeometry | None = None,
    siblings: Mapping[Hashable, BaseGeometry] | None = None,
    clip_to_parent: bool = False,
    fit_to_siblings: bool = False,
    limits: BoundaryLimits = DEFAULT_LIMITS,
    snap_to: Sequence[BaseGeometry] = (),
    snap_tolerance_deg: float = SNAP_TOLERANCE_DEG,
) -> ValidatedBoundary:
    """Check a grid boundary against every rule and return it as it should be stored.

    ``geom`` is a shapely geometry, a GeoJSON geometry or a Feature. ``parent`` is the parent
    grid's boundary (None for a top-level grid); ``siblings`` maps each other child of the same
    parent (keyed by id or code) to its boundary. With ``clip_to_parent`` the part outside the
    parent is cut off instead of refused; with ``fit_to_siblings`` the parts overlapping
    siblings are cut away instead of refused. Vertices within ``snap_tolerance_deg`` of a
    vertex of the parent, a sibling or ``snap_to`` (e.g. the grid's children) are first moved
    onto it. Raises a :class:`GeometryRejected` subclass.
    """
    g = as_geometry(geom)
    check_polygonal(g)
    check_coordinates(g)
    n_vertices = int(shapely.get_num_coordinates(g))
    if n_vertices > limits.max_vertices:
        at = g.envelope.centroid
        raise TooManyVertices(
            f"顶点过多 / the boundary has {n_vertices} vertices, more than the limit of "
            f"{limits.max_vertices}; simplify it",
            location=at,
            vertices=n_vertices,
            max_vertices=limits.max_vertices,
        )
    g = snap_to_neighbours(g, [parent, *(siblings or {}).values(), *snap_to], snap_tolerance_deg)
    check_valid(g)
    check_area(g, limits)

    clipped_parent = 0.0
    if parent is not None:
        g, clipped_parent = _enforce_inside_parent(g, parent, clip_to_parent, limits)

    clipped_siblings: dict[Hashable, float] = {}
    if siblings:
        g, clipped_siblings = _enforce_no_overlap(g, siblings, fit_to_siblings, limits)

    if clipped_parent or clipped_siblings:
        # Clipping may leave slivers, lines or points from the overlay: keep polygons only and
        # judge the result by the same rules.
        g = _polygonal_part(g)
        if g.is_empty:
            raise EmptyGeometry("裁剪后没有剩余 / nothing is left after clipping")
        check_valid(g)
        check_area(g, limits)

    multi = to_multipolygon(g)
    return ValidatedBoundary(
        geometry=multi,
        area_m2=polygon_area_m2(multi),
        vertex_count=int(shapely.get_num_coordinates(multi)),
        clipped_parent_m2=clipped_parent,
        clipped_siblings_m2=clipped_siblings,
    )


def _polygonal_part(geom: BaseGeometry) -> BaseGeometry:
    polys = polygons(geom)
    if not polys:
        return shapely.MultiPolygon()
    if len(polys) == 1:
        return polys[0]
    return shapely.MultiPolygon(polys)


# The hierarchy rule, one definition for drawing, editing and import: a child may lie outside
# its parent, and two siblings may share interior, by at most ``tolerance_m2``, measured by
# ``polygon_area_m2`` on the polygonal part of the difference / intersection. The importer
# (``app.services.importer.topology``) only finds candidates in SQL and judges them here.


def outside_parent(
    child: BaseGeometry, parent: BaseGeometry, limits: BoundaryLimits = DEFAULT_LIMITS
) -> tuple[BaseGeometry, float] | None:
    """Return the part of ``child`` outside ``parent`` and its area (m²) when it breaks the
    hierarchy rule (more than ``limits.tolerance_m2``), else None."""
    shapely.prepare(parent)
    if parent.contains(child):
        return None
    outside = _polygonal_part(child.difference(parent))
    area = polygon_area_m2(outside)
    return (outside, area) if area > limits.tolerance_m2 else None


def sibling_overlap(
    geom: BaseGeometry, sibling: BaseGeometry, limits: BoundaryLimits = DEFAULT_LIMITS
) -> tuple[BaseGeometry, float] | None:
    """Return the overlap of two siblings and its area (m²) when it breaks the hierarchy rule
    (more than ``limits.tolerance_m2``), else None."""
    # Neighbours share edges, so "intersects" is almost always true; only a shared interior
    # can overlap.
    if not shapely.relate_pattern(geom, sibling, "T********"):
        return None
    inter = _polygonal_part(geom.intersection(sibling))
    area = polygon_area_m2(inter)
    return (inter, area) if area > limits.tolerance_m2 else None


def _enforce_inside_parent(
    g: BaseGeometry, parent: BaseGeometry, clip: bool, limits: BoundaryLimits
) -> tuple[BaseGeometry, float]:
    found = outside_parent(g, parent, limits)
    if found is None:
        return g, 0.0
    outside, area = found
    if clip:
        LOGGER.debug("clipping %.1f m² outside the parent", area)
        return g.intersection(parent), area
    at = outside.representative_point()
    raise OutsideParent(
        f"超出上级网格 / {_area_text(area)} of the boundary lies outside its parent grid, "
        f"near {fmt_point(at.x, at.y)}",
        location=outside,
        area_m2=area,
    )


def _enforce_no_overlap(
    g: BaseGeometry,
    siblings: Mapping[Hashable, BaseGeometry],
    fit: bool,
    limits: BoundaryLimits,
) -> tuple[BaseGeometry, dict[Hashable, float]]:
    keys = list(siblings.keys())
    geoms = np.array([siblings[k] for k in keys], dtype=object)
    tree = shapely.STRtree(geoms)
    shapely.prepare(g)
    candidates = sorted(tree.query(g), key=lambda idx: str(keys[idx]))
    overlaps: list[tuple[Hashable, BaseGeometry, float]] = []
    for idx in candidates:
        found = sibling_overlap(g, geoms[idx], limits)
        if found is not None:
            overlaps.append((keys[idx], *found))
    if not overlaps:
        return g, {}
    if fit:
        cut = shapely.union_all([geoms[keys.index(k)] for k, _, _ in overlaps])
        return g.difference(cut), {k: a for k, _, a in overlaps}
    overlaps.sort(key=lambda t: -t[2])
    names = ", ".join(str(k) for k, _, _ in overlaps)
    first_key, first_geom, first_area = overlaps[0]
    at = first_geom.representative_point()
    location = shapely.union_all([o for _, o, _ in overlaps])
    raise OverlapsSibling(
        f"与相邻网格重叠 / the boundary overlaps sibling grid {names}: "
        f"{_area_text(first_area)} with {first_key} near {fmt_point(at.x, at.y)}",
        location=location,
        overlaps=[{"sibling": k, "area_m2": a} for k, _, a in overlaps],
    )
