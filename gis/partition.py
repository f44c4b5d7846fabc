"""Propose a division of a grid into balanced, contiguous parts (地域相连、居住相邻、户数相近).

The grid polygon is cut into *units*: the Voronoi cells of the building points (households at one
building point are one unit, so they are never split apart), clipped to the grid and cut further
by the road layer when there is one. Units that share an edge are neighbours. The unit graph is
split by recursive bisection: each step draws a few random spanning trees (road-crossing edges
cost more, so a tree spans whole blocks before it crosses a road) and cuts the tree edge that
balances household counts best while keeping both sides compact, preferring edges that cross a
road. Both sides of a tree cut are connected, so every part is contiguous. A refinement then
moves single units between neighbouring parts, never breaking a part's connectivity, first to
bring every part within the balance tolerance and then to smooth ragged boundaries. Parts are
unions of units, so they tile the grid exactly.

All metric work happens in the CGCS2000 3-degree Gauss-Krueger zone of the grid (an azimuthal
equidistant projection centred on the grid outside China); inputs and outputs are lon/lat.

Balance guarantee. Let ``H`` be the number of households, ``k`` the number of parts,
``m = H / k`` the mean, ``tolerance`` the allowed relative deviation (default 0.05) and
``w_max`` the largest number of households at one building point. When

* the grid is a single polygon (one piece; holes are fine),
* every building point lies inside the grid, and
* ``w_max <= tolerance * m`` (no building point holds more households than the tolerance itself),

the proposal puts every part within ``[m * (1 - tolerance), m * (1 + tolerance)]``. This is the
condition the tests check. Outside it the tolerance may be impossible to meet (a single building
larger than the slack, or whole-number counts that cannot come closer, e.g. 7.25 households per
patch); the partitioner then minimises the excess over the tolerance and the report's
``balance_condition_met`` is false.

Why one module of this size: units, the bisection and the refinement share the unit graph and
the balance argument above, which holds only for the three steps together.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Transformer
from scipy.sparse import coo_matrix, csr_matrix, identity
from scipy.sparse.csgraph import (
    breadth_first_order,
    connected_components,
    dijkstra,
    minimum_spanning_tree,
)
from scipy.sparse.linalg import spsolve_triangular
from scipy.spatial import cKDTree
from shapely.geometry import MultiPolygon, Polygon, mapping
from shapely.geometry.base import BaseGeometry

from gis.crs import local_metric_crs
from gis.errors import GisError

LOGGER = logging.getLogger(__name__)

DEFAULT_TOLERANCE = 0.05
#: Households closer than this (metres) count as one building point.
BUILDING_SNAP_M = 0.001
#: Households may lie this far (metres) outside the grid boundary (digitising noise).
OUTSIDE_TOLERANCE_M = 0.5

# Spanning-tree edge costs: random in [1, 2) inside a block, [ROAD_COST, ROAD_COST + 1) across a
# road, so a minimum spanning tree connects each block before it crosses any road.
_ROAD_COST = 10.0
_BRIDGE_COST = 100.0
# Cut-length weight of a boundary running along a road (1.0 elsewhere): refinement prefers roads.
_ROAD_CUT_WEIGHT = 0.25
# Score penalty of a tree cut that does not follow a road (compactness scores are about 2-4).
_NON_ROAD_CUT_PENALTY = 1.0
# Random spanning trees drawn per bisection (more for small sets, where each is cheap).
_TRIALS_SMALL = 6
_TRIALS_MEDIUM = 3
# Further whole draws on small grids whose first proposal misses the tolerance.
_RETRY_UNITS = 3_000
_RETRIES = 8


class PartitionError(GisError):
    """A partition request that cannot be carried out; says what is wrong and where."""

    http_status = 422
    code = "partition_impossible"

    def __init__(self, message: str, *, where: tuple[float, float] | None = None) -> None:
        details = {}
        if where is not None:
            details["location"] = {"type": "Point", "coordinates": [where[0], where[1]]}
        super().__init__(message, **details)
        self.where = where


@dataclass(frozen=True)
class Part:
    """One proposed part: its polygon (lon/lat) and the households it takes."""

    index: int
    geometry: BaseGeometry
    household_indices: np.ndarray
    households: int
    polsby_popper: float
    contiguous: bool
    area_m2: float


@dataclass(frozen=True)
class PartitionReport:
    """Quality figures of a proposal."""

    k: int
    seed: int
    tolerance: float
    total_households: int
    building_points: int
    largest_building_point: int
    households_per_part: list[int]
    mean: float
    max_deviation: float
    max_deviation_ratio: float
    coefficient_of_variation: float
    polsby_popper: list[float]
    polsby_popper_mean: float
    contiguous: bool
    non_contiguous_parts: list[int]
    exact_tiling: bool
    gap_or_overlap_m2: float
    road_boundary_share: float | None
    balance_condition_met: bool
    within_tolerance: bool

    def as_dict(self) -> dict[str, Any]:
        """Return the report as plain JSON-ready values."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class Proposal:
    """A proposed division of a grid: the parts and the quality report."""

    parts: list[Part]
    report: PartitionReport

    def to_geojson(self) -> dict[str, Any]:
        """Return the parts as a GeoJSON FeatureCollection (lon/lat) with the report attached."""
        mean = self.report.mean
        features = [
            {
                "type": "Feature",
                "geometry": mapping(part.geometry),
                "properties": {
                    "index": part.index,
                    "households": part.households,
                    "deviation": part.households - mean,
                    "polsby_popper": part.polsby_popper,
                    "contiguous": part.contiguous,
                    "area_m2": part.area_m2,
                },
            }
            for part in self.parts
        ]
        return {"type": "FeatureCollection", "features": features, "report": self.report.as_dict()}


@dataclass(frozen=True)
class PatchProposal:
    """A micro-grid cut into 片区 patches with one party member per patch."""

    proposal: Proposal
    members: list[Any | None]
    households_per_member: dict[Any, int]
    unassigned_members: list[Any]


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def choose_part_count(
    total_households: int,
    *,
    k: int | None = None,
    target_size: float | None = None,
    size_range: tuple[float, float] | None = None,
) -> int:
    """Return the number of parts asked for by ``k``, a target size, or a size range.

    A target size gives the k whose mean is nearest to it; a range ``(low, high)`` gives the k
    whose mean lies in the range and nearest its middle (or nearest the range when none does).
    """
    given = [x is not None for x in (k, target_size, size_range)]
    if sum(given) != 1:
        raise PartitionError("give exactly one of k, target_size or size_range")
    if total_households <= 0:
        raise PartitionError("the grid holds no households, so there is nothing to balance")
    if k is not None:
        if int(k) != k or k < 1:
            raise PartitionError(f"k must be a whole number of at least 1, got {k!r}")
        return int(k)
    if target_size is not None:
        if not target_size > 0:
            raise PartitionError(f"target_size must be positive, got {target_size!r}")
        low = high = float(target_size)
    else:
        assert size_range is not None
        low, high = (float(v) for v in size_range)
        if not 0 < low <= high:
            raise PartitionError(f"size_range must be 0 < low <= high, got {size_range!r}")
    middle = (low + high) / 2.0
    if not all(math.isfinite(v) for v in (total_households / low, total_households / middle)):
        raise PartitionError(
            f"the sizes {low:g}..{high:g} are too small for {total_households} households"
        )
    k_lo = max(1, math.floor(total_households / high))
    k_hi = max(1, math.ceil(total_households / low))
    # The best count, by (distance of the mean from the range, distance from its middle), then
    # the smallest: the mean falls as the count grows, so the best lies next to the count whose
    # mean is the middle, or at an end of the range of counts. Only those are weighed (a scan of
    # every count took minutes for a range like 0.000001..1000).
    at_middle = total_households / middle
    near = {k_lo, k_hi, math.floor(at_middle), math.ceil(at_middle)}
    candidates = {c + d for c in near for d in (-1, 0, 1)}
    best_k, best_key = 1, (math.inf, math.inf, 0)
    for cand in sorted(c for c in candidates if k_lo <= c <= k_hi):
        mean = total_households / cand
        outside = max(0.0, low - mean, mean - high)
        key = (outside, abs(mean - middle), cand)
        if key < best_key:
            best_k, best_key = cand, key
    return best_k


def partition_grid(
    grid: BaseGeometry,
    households: Any,
    *,
    k: int | None = None,
    target_size: float | None = None,
    size_range: tuple[float, float] | None = None,
    roads: Sequence[BaseGeometry] | BaseGeometry | None = None,
    seed: int = 0,
    tolerance: float = DEFAULT_TOLERANCE,
) -> Proposal:
    """Propose a division of ``grid`` into contiguous parts with similar household counts.

    ``grid`` is a (Multi)Polygon in lon/lat; ``households`` an (n, 2) array of lon/lat (or a
    sequence of shapely Points), one row per household; ``roads`` optional LineStrings in lon/lat.
    Give exactly one of ``k``, ``target_size`` (e.g. 25) or ``size_range`` (e.g. (50, 80)).
    The same input and seed give the same proposal. See the module docstring for the balance
    guarantee and its condition.
    """
    if not 0 < tolerance < 1:
        raise PartitionError(f"tolerance must lie between 0 and 1, got {tolerance!r}")
    grid = _check_grid(grid)
    coords = _household_coords(households)
    n_households = len(coords)
    k = choose_part_count(n_households, k=k, target_size=target_size, size_range=size_range)

    frame = _MetricFrame.for_geometry(grid)
    grid_m = frame.to_metric(grid)
    frame.keep_boundary(grid, grid_m)
    pts_m = frame.forward_points(coords)

    # Households at the same building point form one indivisible group.
    snapped = np.round(pts_m / BUILDING_SNAP_M) * BUILDING_SNAP_M
    bpts, building_of_household, counts = np.unique(
        snapped, axis=0, return_inverse=True, return_counts=True
    )
    building_of_household = building_of_household.ravel()
    _check_inside(grid_m, bpts, coords, building_of_household)
    if k > len(bpts):
        raise PartitionError(
            f"cannot make {k} parts from {len(bpts)} building points: households at one "
            "building point are never split apart"
        )

    roads_m = _clip_roads(roads, frame, grid_m)
    rng = np.random.default_rng(seed)
    units = _build_units(grid_m, bpts, counts.astype(np.float64), roads_m)
    # Seed 0 cuts along the long axis and its 30° turns; another seed turns that fan by a part
    # of 30° of its own (the golden ratio spreads successive seeds evenly).
    turn = ((seed * 0.6180339887498949) % 1.0) * (math.pi / 6) if seed else 0.0
    labels = _partition_units(units, k, tolerance, rng, turn=turn)
    # Coarse households (big buildings) can leave a part outside the tolerance; on small grids
    # a few more draws from the same seed's stream are cheap, and the most even one is kept.
    if len(units.polys) <= _RETRY_UNITS:
        spread = _spread(units.weight, labels, k)
        for _ in range(_RETRIES):
            if spread[0] <= tolerance * units.weight.sum() / k + 1e-9:
                break
            other = _partition_units(units, k, tolerance, rng, explore=True, turn=turn)
            other_spread = _spread(units.weight, other, k)
            if other_spread < spread:
                labels, spread = other, other_spread

    return _make_proposal(
        grid=grid,
        grid_m=grid_m,
        frame=frame,
        units=units,
        labels=labels,
        k=k,
        seed=seed,
        tolerance=tolerance,
        household_unit=units.home_unit[building_of_household],
        max_building=int(counts.max()),
        n_buildings=len(bpts),
        has_roads=roads_m is not None,
    )


def _spread(weight: np.ndarray, labels: np.ndarray, k: int) -> tuple[float, float]:
    """Largest deviation from the mean and the standard deviation of part weights."""
    pw = np.bincount(labels, weights=weight, minlength=k)
    return float(np.abs(pw - pw.mean()).max()), float(pw.std())


def split_into_patches(
    grid: BaseGeometry,
    households: Any,
    member_ids: Sequence[Any],
    *,
    size_range: tuple[float, float] = (5, 10),
    roads: Sequence[BaseGeometry] | BaseGeometry | None = None,
    seed: int = 0,
) -> PatchProposal:
    """Cut a micro-grid into 片区 patches of about ``size_range`` households, one member each.

    The patch count follows the members when it can: with as many patches as members each member
    takes one; with too few members some take several patches (largest patch first to the member
    with the fewest households so far); with too many, the later members stay unassigned.
    """
    coords = _household_coords(households)
    members = list(member_ids)
    if not members:
        raise PartitionError("give at least one party member to assign to the patches")
    if len(set(map(repr, members))) != len(members):
        raise PartitionError("party member ids must be unique")
    low, high = (float(v) for v in size_range)
    if not 0 < low <= high:
        raise PartitionError(f"size_range must be 0 < low <= high, got {size_range!r}")
    total = len(coords)
    if total == 0:
        raise PartitionError("the micro-grid holds no households, so there is nothing to split")
    k_min = max(1, math.ceil(total / high))
    k_max = max(k_min, math.floor(total / low))
    k = min(max(len(members), k_min), k_max)
    n_buildings = len(np.unique(coords, axis=0))
    k = max(1, min(k, n_buildings))
    proposal = partition_grid(grid, coords, k=k, roads=roads, seed=seed)

    counts = [p.households for p in proposal.parts]
    assigned: list[Any | None] = [None] * k
    per_member: dict[Any, int] = {m: 0 for m in members}
    if k <= len(members):
        for i in range(k):
            assigned[i] = members[i]
            per_member[members[i]] += counts[i]
    else:
        # Longest-processing-time rule: it keeps households per member close.
        for i in sorted(range(k), key=lambda j: (-counts[j], j)):
            member = min(members, key=lambda m: (per_member[m], members.index(m)))
            assigned[i] = member
            per_member[member] += counts[i]
    unassigned = [m for m in members if m not in set(a for a in assigned if a is not None)]
    return PatchProposal(proposal, assigned, per_member, unassigned)


# --------------------------------------------------------------------------------------------
# Input checks and projection
# --------------------------------------------------------------------------------------------


def _check_grid(grid: BaseGeometry) -> Polygon | MultiPolygon:
    if not isinstance(grid, Polygon | MultiPolygon):
        raise PartitionError(f"the grid must be a Polygon or MultiPolygon, got {grid.geom_type}")
    if grid.is_empty or grid.area <= 0:
        raise PartitionError("the grid polygon is empty")
    if not grid.is_valid:
        reason = shapely.is_valid_reason(grid)
        raise PartitionError(f"the grid polygon is not valid: {reason}")
    minx, miny, maxx, maxy = grid.bounds
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise PartitionError(
            f"the grid is not in lon/lat: its bounds {grid.bounds} leave [-180, 180] x [-90, 90]"
        )
    return grid


def _household_coords(households: Any) -> np.ndarray:
    if isinstance(households, np.ndarray) and households.dtype != object:
        coords = np.asarray(households, dtype=np.float64)
    else:
        items = list(households)
        if items and isinstance(items[0], BaseGeometry):
            coords = shapely.get_coordinates(np.asarray(items, dtype=object))
        else:
            coords = np.asarray(items, dtype=np.float64)
    if coords.size == 0:
        return np.zeros((0, 2))
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise PartitionError(f"households must be (lon, lat) pairs, got shape {coords.shape}")
    bad = ~np.isfinite(coords).all(axis=1)
    bad |= (np.abs(coords[:, 0]) > 180) | (np.abs(coords[:, 1]) > 90)
    if bad.any():
        i = int(np.nonzero(bad)[0][0])
        raise PartitionError(
            f"household {i} has coordinates {tuple(coords[i])} outside lon/lat range",
            where=(float(coords[i, 0]), float(coords[i, 1])),
        )
    return coords


class _MetricFrame:
    """A local metric projection and its inverse, with the grid's own vertices kept exact."""

    def __init__(self, crs: CRS, origin: tuple[float, float]) -> None:
        self.crs = crs
        self._fwd = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
        self._inv = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        self.origin = np.asarray(origin)
        self._exact: dict[tuple[float, float], tuple[float, float]] = {}
        self._seg_tree: shapely.STRtree | None = None

    @classmethod
    def for_geometry(cls, geom: BaseGeometry) -> _MetricFrame:
        lon, lat = geom.centroid.x, geom.centroid.y
        crs = CRS.from_user_input(local_metric_crs(lon, lat))
        tr = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
        # Work near the origin so squared coordinates keep their precision.
        ox, oy = tr.transform(lon, lat)
        return cls(crs, (round(ox), round(oy)))

    def forward_points(self, xy: np.ndarray) -> np.ndarray:
        x, y = self._fwd.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y]) - self.origin

    def inverse_points(self, xy: np.ndarray) -> np.ndarray:
        x, y = self._inv.transform(xy[:, 0] + self.origin[0], xy[:, 1] + self.origin[1])
        return np.column_stack([x, y])

    def to_metric(self, geom: BaseGeometry) -> BaseGeometry:
        """Project a geometry; remember its vertices so they come back bit for bit."""
        lonlat = shapely.get_coordinates(geom)
        metric = self.forward_points(lonlat)
        for (mx, my), (lx, ly) in zip(metric.tolist(), lonlat.tolist(), strict=True):
            self._exact[(mx, my)] = (lx, ly)
        return shapely.transform(geom, self.forward_points)

    def keep_boundary(self, lonlat: BaseGeometry, metric: BaseGeometry) -> None:
        """Put points that lie on this boundary back on its straight lon/lat edges.

        A straight edge in lon/lat is slightly curved in the projection, so a point cut on the
        projected edge would land a fraction of a millimetre off the lon/lat edge; instead it
        takes the same fraction of the way along the lon/lat edge, and the tiling stays exact.
        """
        segs_ll, segs_m = [], []
        for ring_ll, ring_m in zip(
            shapely.get_rings(shapely.get_parts(lonlat)),
            shapely.get_rings(shapely.get_parts(metric)),
            strict=True,
        ):
            c_ll, c_m = shapely.get_coordinates(ring_ll), shapely.get_coordinates(ring_m)
            segs_ll.append(np.stack([c_ll[:-1], c_ll[1:]], axis=1))
            segs_m.append(np.stack([c_m[:-1], c_m[1:]], axis=1))
        self._seg_ll = np.concatenate(segs_ll)
        self._seg_m = np.concatenate(segs_m)
        self._seg_tree = shapely.STRtree(shapely.linestrings(self._seg_m))

    def to_lonlat(self, geom: BaseGeometry) -> BaseGeometry:
        def back(metric: np.ndarray) -> np.ndarray:
            out = self.inverse_points(metric)
            if self._seg_tree is not None:
                pi, si = self._seg_tree.query_nearest(
                    shapely.points(metric), max_distance=1e-6, all_matches=False
                )
                a, b = self._seg_m[si, 0], self._seg_m[si, 1]
                d = b - a
                t = np.einsum("ij,ij->i", metric[pi] - a, d) / np.einsum("ij,ij->i", d, d)
                t = np.clip(t, 0.0, 1.0)[:, None]
                la, lb = self._seg_ll[si, 0], self._seg_ll[si, 1]
                out[pi] = la + t * (lb - la)
            for i, key in enumerate(map(tuple, metric.tolist())):
                hit = self._exact.get(key)
                if hit is not None:
                    out[i] = hit
            return out

        return shapely.transform(geom, back)


def _check_inside(
    grid_m: BaseGeometry, bpts: np.ndarray, coords: np.ndarray, building_of_household: np.ndarray
) -> None:
    shapely.prepare(grid_m)
    inside = shapely.covers(grid_m, shapely.points(bpts))
    if inside.all():
        return
    out = np.nonzero(~inside)[0]
    dist = shapely.distance(grid_m, shapely.points(bpts[out]))
    far = out[dist > OUTSIDE_TOLERANCE_M]
    if len(far):
        hh = int(np.nonzero(building_of_household == far[0])[0][0])
        lon, lat = coords[hh]
        raise PartitionError(
            f"household {hh} at ({lon:.7f}, {lat:.7f}) lies outside the grid",
            where=(float(lon), float(lat)),
        )


def _clip_roads(
    roads: Sequence[BaseGeometry] | BaseGeometry | None, frame: _MetricFrame, grid_m: BaseGeometry
) -> BaseGeometry | None:
    if roads is None:
        return None
    geoms = [roads] if isinstance(roads, BaseGeometry) else list(roads)
    lines = [g for g in geoms if g is not None and not g.is_empty]
    if not lines:
        return None
    for g in lines:
        if g.geom_type not in ("LineString", "MultiLineString"):
            raise PartitionError(f"roads must be LineStrings, got a {g.geom_type}")
    metric = [shapely.transform(g, frame.forward_points) for g in lines]
    merged = shapely.union_all(metric)
    if shapely.intersection(merged, grid_m).length == 0:
        return None
    # Keep the roads a little beyond the grid: cut at the boundary here, their ends would sit a
    # hair off it and never meet it in the noding.
    minx, miny, maxx, maxy = grid_m.bounds
    pad = 0.05 * math.hypot(maxx - minx, maxy - miny) + 1.0
    near = shapely.box(minx - pad, miny - pad, maxx + pad, maxy + pad)
    return shapely.line_merge(shapely.intersection(merged, near))


# --------------------------------------------------------------------------------------------
# Units: Voronoi cells of building points, clipped to the grid and cut by roads
# --------------------------------------------------------------------------------------------


@dataclass
class _Units:
    polys: np.ndarray  # shapely polygons (metric)
    weight: np.ndarray  # households per unit
    cx: np.ndarray
    cy: np.ndarray
    area: np.ndarray
    eu: np.ndarray  # edges u < v
    ev: np.ndarray
    elen: np.ndarray
    eroad: np.ndarray
    ebridge: np.ndarray
    home_unit: np.ndarray  # unit holding each building point
    extra: dict[str, Any] = field(default_factory=dict)


def _build_units(
    grid_m: BaseGeometry, bpts: np.ndarray, counts: np.ndarray, roads_m: BaseGeometry | None
) -> _Units:
    n = len(bpts)
    minx, miny, maxx, maxy = grid_m.bounds
    pad = 0.1 * math.hypot(maxx - minx, maxy - miny) + 1.0
    envelope = shapely.box(minx - pad, miny - pad, maxx + pad, maxy + pad)
    if n == 1:
        cells = np.array([envelope], dtype=object)
    else:
        cells = shapely.get_parts(
            shapely.voronoi_polygons(shapely.multipoints(bpts), extend_to=envelope, ordered=True)
        )
    shapely.prepare(grid_m)
    plain = shapely.contains_properly(grid_m, cells)
    if roads_m is not None:
        shapely.prepare(roads_m)
        plain &= ~shapely.intersects(roads_m, cells)
    plain_idx = np.nonzero(plain)[0]
    special_idx = np.nonzero(~plain)[0]

    faces = np.zeros(0, dtype=object)
    face_owner = np.zeros(0, dtype=np.int64)
    if len(special_idx):
        faces, face_owner = _special_faces(grid_m, bpts, cells, plain, special_idx, roads_m)

    polys = np.concatenate([cells[plain_idx], faces])
    owner = np.concatenate([plain_idx, face_owner])
    n_units = len(polys)

    # Home unit of each building point: its own cell, or the piece of it that holds the point.
    home = np.full(n, -1, dtype=np.int64)
    home[plain_idx] = np.arange(len(plain_idx))
    if len(special_idx):
        face_base = len(plain_idx)
        tree = shapely.STRtree(faces)
        pi, fi = tree.query(shapely.points(bpts[special_idx]), predicate="intersects")
        own = face_owner[fi] == special_idx[pi]
        pi, fi = pi[own], fi[own]
        first = np.full(len(special_idx), -1, dtype=np.int64)
        # Reverse so the lowest face index wins when a point sits on an edge between two pieces.
        first[pi[::-1]] = fi[::-1]
        missing = np.nonzero(first < 0)[0]
        if len(missing):
            near = tree.query_nearest(shapely.points(bpts[special_idx[missing]]), all_matches=False)
            first[missing[near[0]]] = near[1]
        home[special_idx] = face_base + first
    weight = np.bincount(home, weights=counts, minlength=n_units)

    cent = shapely.get_coordinates(shapely.centroid(polys))
    area = shapely.area(polys)
    eu, ev, elen, edge_info = _shared_edges(polys)
    eroad = np.zeros(len(eu), dtype=bool)
    if roads_m is not None and len(eu):
        touches_special = (eu >= len(plain_idx)) | (ev >= len(plain_idx))
        cand = np.nonzero(touches_special)[0]
        if len(cand):
            mids = edge_info["mid"][cand]
            eroad[cand] = shapely.dwithin(roads_m, shapely.points(mids), 1e-6)
    units = _Units(
        polys=polys,
        weight=weight,
        cx=cent[:, 0],
        cy=cent[:, 1],
        area=area,
        eu=eu,
        ev=ev,
        elen=elen,
        eroad=eroad,
        ebridge=np.zeros(len(eu), dtype=bool),
        home_unit=home,
        extra={"owner": owner},
    )
    _bridge_components(units)
    return units


def _special_faces(
    grid_m: BaseGeometry,
    bpts: np.ndarray,
    cells: np.ndarray,
    plain: np.ndarray,
    special_idx: np.ndarray,
    roads_m: BaseGeometry | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Cut the cells that cross the grid boundary or a road into faces (pieces inside the grid)."""
    # Whole ridges (not clipped) go into one noding with the grid boundary and the roads, so
    # each crossing is computed once and every line ends exactly on a node; faces outside the
    # grid are dropped below.
    segs = _unique_segments(cells[special_idx])
    pieces = [shapely.linestrings(segs.reshape(-1, 2, 2))]
    pieces.append(shapely.get_parts(shapely.boundary(grid_m)))
    if roads_m is not None:
        pieces.append(shapely.get_parts(roads_m))
    work = np.concatenate(pieces)
    work = work[~shapely.is_empty(work)]
    noded = shapely.get_parts(shapely.union_all(work))
    faces = shapely.get_parts(shapely.polygonize(noded))
    faces = faces[shapely.area(faces) > 0]
    rep = shapely.point_on_surface(faces)
    keep = shapely.contains(grid_m, rep)
    faces, rep = faces[keep], rep[keep]
    _, owner = cKDTree(bpts).query(shapely.get_coordinates(rep))
    # Faces whose owner is a plain cell are plain cells (or groups of them) ringed by special
    # cells; those already are units.
    keep = ~plain[owner]
    return faces[keep], owner[keep].astype(np.int64)


def _unique_segments(polys: np.ndarray) -> np.ndarray:
    """Return each ring segment of the polygons once, as rows (x1, y1, x2, y2)."""
    rings = shapely.get_rings(polys)
    xy, ring_i = shapely.get_coordinates(rings, return_index=True)
    same = ring_i[1:] == ring_i[:-1]
    a, b = xy[:-1][same], xy[1:][same]
    swap = (a[:, 0] > b[:, 0]) | ((a[:, 0] == b[:, 0]) & (a[:, 1] > b[:, 1]))
    p = np.where(swap[:, None], b, a)
    q = np.where(swap[:, None], a, b)
    seg = np.column_stack([p, q])
    seg = seg[~(p == q).all(axis=1)]
    return np.unique(seg, axis=0)


def _shared_edges(
    polys: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Find the neighbouring units: ring segments that two units share exactly."""
    rings, ring_owner = shapely.get_rings(polys, return_index=True)
    xy, ring_i = shapely.get_coordinates(rings, return_index=True)
    # Vertex ids by exact coordinates: shared edges of units carry bit-identical vertices.
    vid = np.unique(xy[:, 0] + 1j * xy[:, 1], return_inverse=True)[1].ravel()
    same = ring_i[1:] == ring_i[:-1]
    va, vb = vid[:-1][same], vid[1:][same]
    seg_owner = ring_owner[ring_i[:-1][same]]
    pa, pb = xy[:-1][same], xy[1:][same]
    lo, hi = np.minimum(va, vb), np.maximum(va, vb)
    nonzero = lo != hi
    lo, hi, seg_owner, pa, pb = (
        lo[nonzero],
        hi[nonzero],
        seg_owner[nonzero],
        pa[nonzero],
        pb[nonzero],
    )
    key = lo.astype(np.int64) * (int(vid.max()) + 1) + hi
    order = np.argsort(key, kind="stable")
    ks = key[order]
    pair = np.nonzero(ks[1:] == ks[:-1])[0]
    s1, s2 = order[pair], order[pair + 1]
    u, v = seg_owner[s1], seg_owner[s2]
    ok = u != v
    s1, u, v = s1[ok], u[ok], v[ok]
    seglen = np.hypot(*(pb[s1] - pa[s1]).T)
    mids = (pa[s1] + pb[s1]) / 2.0
    eu, ev = np.minimum(u, v), np.maximum(u, v)
    # Sum the segments of each unit pair into one edge.
    ekey = eu.astype(np.int64) * len(polys) + ev
    uniq, inv = np.unique(ekey, return_inverse=True)
    inv = inv.ravel()
    elen = np.bincount(inv, weights=seglen, minlength=len(uniq))
    # Road flag of an edge: decided on its longest segment.
    longest = np.full(len(uniq), -1, dtype=np.int64)
    order2 = np.lexsort((seglen, inv))
    longest[inv[order2]] = order2
    return (
        (uniq // len(polys)).astype(np.int64),
        (uniq % len(polys)).astype(np.int64),
        elen,
        {"mid": mids[longest]},
    )


def _bridge_components(units: _Units) -> None:
    """Link the pieces of a disconnected unit graph (a grid in pieces) at their nearest units."""
    n = len(units.polys)
    while True:
        adj = coo_matrix((np.ones(len(units.eu)), (units.eu, units.ev)), shape=(n, n))
        ncomp, comp = connected_components(adj, directed=False)
        if ncomp <= 1:
            return
        sizes = np.bincount(comp)
        c = int(np.argmin(sizes))
        mine = np.nonzero(comp == c)[0]
        other = np.nonzero(comp != c)[0]
        xy = np.column_stack([units.cx, units.cy])
        dist, j = cKDTree(xy[other]).query(xy[mine])
        i = int(np.argmin(dist))
        a, b = int(mine[i]), int(other[j[i]])
        LOGGER.info("grid in %d pieces: linking units %d and %d across a gap", ncomp, a, b)
        units.eu = np.append(units.eu, min(a, b))
        units.ev = np.append(units.ev, max(a, b))
        units.elen = np.append(units.elen, 0.0)
        units.eroad = np.append(units.eroad, False)
        units.ebridge = np.append(units.ebridge, True)


# --------------------------------------------------------------------------------------------
# Graph partition: recursive spanning-tree bisection, then refinement by single-unit moves
# --------------------------------------------------------------------------------------------


class _Graph:
    """The unit graph the partitioner works on: weights, area moments, edges and their costs."""

    def __init__(
        self,
        w: np.ndarray,
        moments: np.ndarray,
        eu: np.ndarray,
        ev: np.ndarray,
        elen: np.ndarray,
        road_len: np.ndarray,
        bridge: np.ndarray,
    ) -> None:
        self.n = len(w)
        self.w = w
        self.moments = moments
        self.eu, self.ev = eu, ev
        # An edge counts as a road when most of its length runs along one.
        self.road = road_len >= 0.5 * elen
        self.bridge = bridge
        self.cutcost = (elen - road_len) + _ROAD_CUT_WEIGHT * road_len
        ne = len(eu)
        both_u = np.concatenate([eu, ev])
        both_v = np.concatenate([ev, eu])
        both_e = np.concatenate([np.arange(ne), np.arange(ne)])
        adj = csr_matrix((both_e + 1, (both_u, both_v)), shape=(self.n, self.n))
        adj.sort_indices()
        self.indptr = adj.indptr
        self.indices = adj.indices
        self.adj_edge = adj.data - 1
        self.nbrs: list[list[int]] = [
            self.indices[self.indptr[i] : self.indptr[i + 1]].tolist() for i in range(self.n)
        ]


def _unit_moments(units: _Units) -> np.ndarray:
    """Households and area moments of each unit (centroid as a point mass plus a disc's own)."""
    a = units.area
    x = units.cx - np.average(units.cx, weights=a)
    y = units.cy - np.average(units.cy, weights=a)
    moments = np.column_stack([units.weight, a, a * x, a * y, a * (x * x + y * y)])
    moments[:, 4] += a * a / (2 * math.pi)
    return moments


def _contract(units: _Units) -> tuple[_Graph, np.ndarray]:
    """Join every unit without households to the nearest unit with some, within its block.

    Pieces of cells cut off by a road or the grid boundary, and empty land, would otherwise be
    weightless nodes that can neither fix balance nor be moved usefully. Each joins the household
    unit nearest to it along the unit graph, where crossing a road costs far more than any
    distance inside a block. Shortest-path trees keep each group connected.
    Returns the contracted graph and the group of each unit.
    """
    n = len(units.polys)
    moments = _unit_moments(units)
    road_len = np.where(units.eroad, units.elen, 0.0)
    weighted = np.nonzero(units.weight > 0)[0]
    if len(weighted) == n:
        g = _Graph(units.weight, moments, units.eu, units.ev, units.elen, road_len, units.ebridge)
        return g, np.arange(n)
    step = np.hypot(
        units.cx[units.eu] - units.cx[units.ev], units.cy[units.eu] - units.cy[units.ev]
    )
    cost = step + 1e-6 + np.where(units.eroad, 1e7, 0.0) + np.where(units.ebridge, 1e9, 0.0)
    graph = coo_matrix((cost, (units.eu, units.ev)), shape=(n, n)).tocsr()
    _, _, source = dijkstra(
        graph, directed=False, indices=weighted, min_only=True, return_predecessors=True
    )
    group_of_weighted = np.full(n, -1, dtype=np.int64)
    group_of_weighted[weighted] = np.arange(len(weighted))
    group = group_of_weighted[source]
    m = len(weighted)
    gm = np.zeros((m, moments.shape[1]))
    np.add.at(gm, group, moments)
    gu, gv = group[units.eu], group[units.ev]
    cross = gu != gv
    lo, hi = np.minimum(gu[cross], gv[cross]), np.maximum(gu[cross], gv[cross])
    key, inv = np.unique(lo * m + hi, return_inverse=True)
    inv = inv.ravel()
    elen = np.bincount(inv, weights=units.elen[cross], minlength=len(key))
    rlen = np.bincount(inv, weights=road_len[cross], minlength=len(key))
    bridge = np.bincount(inv, weights=units.ebridge[cross].astype(float), minlength=len(key)) > 0
    g = _Graph(gm[:, 0].copy(), gm, key // m, key % m, elen, rlen, bridge)
    return g, group


def _partition_units(
    units: _Units,
    k: int,
    tol: float,
    rng: np.random.Generator,
    *,
    explore: bool = False,
    turn: float = 0.0,
) -> np.ndarray:
    g, group = _contract(units)
    labels = np.zeros(g.n, dtype=np.int64)
    if k == 1:
        return labels[group]
    mean = float(g.w.sum()) / k
    stack = [(np.arange(g.n), k, 0)]
    while stack:
        nodes, kk, offset = stack.pop()
        if kk == 1:
            labels[nodes] = offset
            continue
        k1 = kk // 2
        side1 = _bisect(g, nodes, k1, kk - k1, mean, tol, rng, explore=explore, turn=turn)
        stack.append((nodes[~side1], kk - k1, offset + k1))
        stack.append((nodes[side1], k1, offset))
    _rebalance(g, labels, k, mean, tol)
    _smooth(g, labels, k, mean, tol)
    return labels[group]


def _bisect(
    g: _Graph,
    nodes: np.ndarray,
    k1: int,
    k2: int,
    mean: float,
    tol: float,
    rng: np.random.Generator,
    *,
    explore: bool = False,
    turn: float = 0.0,
) -> np.ndarray:
    """Split ``nodes`` (connected) into a side for k1 parts and one for k2; return side 1's mask.

    ``turn`` turns every trial's cut line by that angle (radians): another seed tries another
    fan of directions, so "another proposal" is another cut, not the same one again."""
    nn = len(nodes)
    local = np.full(g.n, -1, dtype=np.int64)
    local[nodes] = np.arange(nn)
    lu, lv = local[g.eu], local[g.ev]
    inner = (lu >= 0) & (lv >= 0)
    lu, lv = lu[inner], lv[inner]
    base = np.where(g.bridge[inner], _BRIDGE_COST, np.where(g.road[inner], _ROAD_COST, 1.0))
    mom = g.moments[nodes]
    total = mom.sum(axis=0)
    weight_total = total[0]

    # Acceptable weight of side 1: a finished part may deviate by most of the tolerance, a side
    # still to be split by less, to keep slack for the later cuts.
    d1 = tol * (0.8 if k1 == 1 else 0.4)
    d2 = tol * (0.8 if k2 == 1 else 0.4)
    lo1 = max(k1 * mean * (1 - d1), weight_total - k2 * mean * (1 + d2))
    hi1 = min(k1 * mean * (1 + d1), weight_total - k2 * mean * (1 - d2))
    ideal = weight_total * k1 / (k1 + k2)

    # Each trial guides its spanning tree by a straight cut line across the set's long axis
    # (turned a little differently each time): edges near the line are the dearest, so the tree
    # spans each side before crossing it and its balanced cuts run close to the line.
    area = np.maximum(mom[:, 1], 1e-12)
    x, y = mom[:, 2] / area, mom[:, 3] / area
    cx, cy = np.average(x, weights=area), np.average(y, weights=area)
    cov = np.cov(np.vstack([x - cx, y - cy]), aweights=area) if nn > 2 else np.eye(2)
    evals, evecs = np.linalg.eigh(np.atleast_2d(cov))
    long_axis = math.atan2(evecs[1, -1], evecs[0, -1])
    spacing = 3.0 * math.sqrt(total[1] / nn)
    trials = _TRIALS_SMALL if nn < 300 else _TRIALS_MEDIUM if nn < 5_000 else 2
    turns = [0.0, math.pi / 6, -math.pi / 6, math.pi / 3, -math.pi / 3, math.pi / 2]
    w_nodes = mom[:, 0]
    best: tuple[float, float] | None = None
    best_tree: tuple[csr_matrix, np.ndarray, int, bool] | None = None
    eye = identity(nn, format="csr")
    for trial in range(trials):
        theta = long_axis + turn + turns[trial % len(turns)] + rng.normal(0.0, 0.05)
        if explore:
            # A retry looks further afield: any direction, and the other side of the cut.
            theta = rng.uniform(0.0, math.pi)
        proj = math.cos(theta) * x + math.sin(theta) * y
        by_proj = np.argsort(proj, kind="stable")
        cum = np.cumsum(w_nodes[by_proj])
        at = int(np.searchsorted(cum, ideal))
        line = proj[by_proj[min(at, nn - 1)]]
        dist = np.abs((proj[lu] + proj[lv]) / 2.0 - line)
        cost = base + 1.0 / (1.0 + dist / spacing) + 0.05 * rng.random(len(lu))
        tree = minimum_spanning_tree(coo_matrix((cost, (lu, lv)), shape=(nn, nn)).tocsr())
        order, pred = breadth_first_order(tree, 0, directed=False, return_predecessors=True)
        if len(order) < nn:
            raise RuntimeError("unit graph is not connected")  # bridged before, cannot happen
        # Subtree sums in one sparse triangular solve: in breadth-first order every parent comes
        # before its children, so S = X + (sum of the children's S) is upper triangular.
        pos = np.empty(nn, dtype=np.int64)
        pos[order] = np.arange(nn)
        child_nodes = order[1:]
        up = csr_matrix(
            (np.ones(nn - 1), (pos[pred[child_nodes]], pos[child_nodes])), shape=(nn, nn)
        )
        sub = np.empty_like(mom)
        sub[order] = spsolve_triangular(eye - up, mom[order], lower=False)
        tc = tree.tocoo()
        child = np.where(pred[tc.row] == tc.col, tc.row, tc.col)
        edge_cost = np.zeros(nn)
        edge_cost[child] = tc.data
        s = sub[child_nodes]
        c = total - s
        road_cut = (edge_cost[child_nodes] >= _ROAD_COST) & (edge_cost[child_nodes] < _BRIDGE_COST)
        shape = _inertia_ratio(s) + _inertia_ratio(c)
        options = [(s[:, 0], True)]
        if k1 != k2:
            options.append((c[:, 0], False))
        for side_w, sub_is_side1 in options:
            violation = np.maximum(0.0, np.maximum(lo1 - side_w, side_w - hi1)) / mean
            score = (
                shape
                + np.where(road_cut, 0.0, _NON_ROAD_CUT_PENALTY)
                + 4.0 * np.abs(side_w - ideal) / (mean * min(k1, k2))
            )
            key_v = violation.min()
            cand = np.nonzero(violation <= key_v + 1e-12)[0]
            j = cand[np.argmin(score[cand])]
            key = (float(key_v), float(score[j]))
            if best is None or key < best:
                best = key
                best_tree = (tree, pred, int(child_nodes[j]), sub_is_side1)
    assert best_tree is not None
    tree, pred, top, sub_is_side1 = best_tree
    in_sub = _subtree_mask(tree, pred, top, nn)
    return in_sub if sub_is_side1 else ~in_sub


def _inertia_ratio(m: np.ndarray) -> np.ndarray:
    """Polar moment of area over that of a disc of the same area (1 for a disc, more otherwise)."""
    a = np.maximum(m[:, 1], 1e-12)
    j = m[:, 4] - (m[:, 2] ** 2 + m[:, 3] ** 2) / a
    return 2 * math.pi * np.maximum(j, 0.0) / (a * a)


def _subtree_mask(tree: csr_matrix, pred: np.ndarray, top: int, nn: int) -> np.ndarray:
    """Return the nodes below ``top`` in the tree rooted at node 0."""
    pruned = tree.tocoo()
    parent = int(pred[top])
    keep = ~(
        ((pruned.row == top) & (pruned.col == parent))
        | ((pruned.row == parent) & (pruned.col == top))
    )
    cut = csr_matrix((pruned.data[keep], (pruned.row[keep], pruned.col[keep])), shape=(nn, nn))
    reach = breadth_first_order(cut, top, directed=False, return_predecessors=False)
    mask = np.zeros(nn, dtype=bool)
    mask[reach] = True
    return mask


def _part_weights(g: _Graph, labels: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(labels, weights=g.w, minlength=k)


def _can_give(g: _Graph, labels: np.ndarray, v: int, members: int) -> bool:
    """Whether unit v can leave its part without disconnecting the rest of it."""
    part = labels[v]
    if members <= 1:
        return False
    same = [u for u in g.nbrs[v] if labels[u] == part]
    if len(same) <= 1:
        return len(same) == 1
    # The rest stays connected iff v's neighbours in the part reach each other without v.
    targets = set(same)
    start = same[0]
    seen = {start, v}
    queue = deque([start])
    targets.discard(start)
    while queue and targets:
        x = queue.popleft()
        for y in g.nbrs[x]:
            if y not in seen and labels[y] == part:
                seen.add(y)
                targets.discard(y)
                queue.append(y)
    return not targets


def _rebalance(g: _Graph, labels: np.ndarray, k: int, mean: float, tol: float) -> None:
    """Move units between neighbouring parts until every part is within the tolerance.

    The worst part sends (or receives) a unit along a chain of neighbouring parts that ends at
    one with room; a chain that does not lower the total excess over the tolerance is undone and
    the next chain or part is tried.
    """
    lo, hi = mean * (1 - tol), mean * (1 + tol)
    pw = _part_weights(g, labels, k)
    size = np.bincount(labels, minlength=k)

    def excess(weights: np.ndarray) -> float:
        return float(np.maximum(0.0, np.maximum(lo - weights, weights - hi)).sum())

    for _ in range(50 * k + 200):
        bad = np.maximum(lo - pw, pw - hi)
        if bad.max() <= 1e-9:
            return
        before = excess(pw)
        improved = False
        for p in np.argsort(-bad, kind="stable")[: max(1, int((bad > 1e-9).sum()))].tolist():
            heavy = pw[p] > hi
            amount = (pw[p] - mean) if heavy else (mean - pw[p])
            for path in _part_paths(g, labels, k, p, pw, mean, heavy):
                moved = _push_along(g, labels, pw, size, path, amount, heavy)
                if excess(pw) < before - 1e-9:
                    improved = True
                    break
                for v, old in reversed(moved):
                    new = labels[v]
                    labels[v] = old
                    pw[new] -= g.w[v]
                    pw[old] += g.w[v]
                    size[new] -= 1
                    size[old] += 1
            if improved:
                break
        if not improved:
            LOGGER.debug("no move brings the parts closer to the tolerance")
            return


def _part_paths(
    g: _Graph,
    labels: np.ndarray,
    k: int,
    p: int,
    pw: np.ndarray,
    mean: float,
    heavy: bool,
    limit: int = 8,
) -> list[list[int]]:
    """Chains of neighbouring parts from part p to the nearest parts that can absorb (or give)."""
    lu, lv = labels[g.eu], labels[g.ev]
    cross = lu != lv
    pa = coo_matrix((np.ones(int(cross.sum())), (lu[cross], lv[cross])), shape=(k, k)).tocsr()
    order, pred = breadth_first_order(pa, p, directed=False, return_predecessors=True)
    paths = []
    for q in order[1:]:
        if (heavy and pw[q] < mean) or (not heavy and pw[q] > mean):
            path = [int(q)]
            while path[-1] != p:
                path.append(int(pred[path[-1]]))
            paths.append(path[::-1])
            if len(paths) >= limit:
                break
    return paths


def _push_along(
    g: _Graph,
    labels: np.ndarray,
    pw: np.ndarray,
    size: np.ndarray,
    path: list[int],
    amount: float,
    heavy: bool,
) -> list[tuple[int, int]]:
    """Move about ``amount`` households along the chain of parts, one unit per step."""
    moved: list[tuple[int, int]] = []
    steps = list(zip(path[:-1], path[1:], strict=True))
    if not heavy:
        steps = [(b, a) for a, b in reversed(steps)]
    for giver, taker in steps:
        v = _best_unit(g, labels, size, giver, taker, amount)
        if v is None:
            break
        labels[v] = taker
        pw[giver] -= g.w[v]
        pw[taker] += g.w[v]
        size[giver] -= 1
        size[taker] += 1
        moved.append((v, giver))
    return moved


def _best_unit(
    g: _Graph, labels: np.ndarray, size: np.ndarray, giver: int, taker: int, amount: float
) -> int | None:
    """The unit of ``giver`` on its border with ``taker`` that best moves ``amount`` households."""
    lu, lv = labels[g.eu], labels[g.ev]
    a = (lu == giver) & (lv == taker)
    b = (lv == giver) & (lu == taker)
    cand = np.unique(np.concatenate([g.eu[a], g.ev[b]]))
    cand = cand[g.w[cand] > 0]
    if not len(cand):
        return None
    # Prefer the unit whose weight is nearest the amount, then the smallest new boundary.
    gain = _move_gain(g, labels, cand, taker)
    order = np.lexsort((-gain, np.abs(g.w[cand] - min(amount, g.w[cand].max()))))
    for i in order[:64]:
        v = int(cand[i])
        if _can_give(g, labels, v, int(size[giver])):
            return v
    return None


def _move_gain(g: _Graph, labels: np.ndarray, cand: np.ndarray, target: int) -> np.ndarray:
    """Boundary cost saved by moving each candidate unit into part ``target``."""
    gains = np.zeros(len(cand))
    for i, v in enumerate(cand.tolist()):
        lo, hi = g.indptr[v], g.indptr[v + 1]
        nb = g.indices[lo:hi]
        cost = g.cutcost[g.adj_edge[lo:hi]]
        gains[i] = cost[labels[nb] == target].sum() - cost[labels[nb] == labels[v]].sum()
    return gains


def _smooth(
    g: _Graph, labels: np.ndarray, k: int, mean: float, tol: float, passes: int = 4
) -> None:
    """Move border units to the neighbouring part they share most boundary with, within balance."""
    lo, hi = mean * (1 - tol), mean * (1 + tol)
    pw = _part_weights(g, labels, k)
    size = np.bincount(labels, minlength=k)
    for _ in range(passes):
        lu, lv = labels[g.eu], labels[g.ev]
        cross = lu != lv
        if not cross.any():
            return
        # For every (unit, neighbouring part): shared boundary cost with that part.
        units = np.concatenate([g.eu[cross], g.ev[cross]])
        other = np.concatenate([lv[cross], lu[cross]])
        cost = np.concatenate([g.cutcost[cross], g.cutcost[cross]])
        key = units.astype(np.int64) * k + other
        uk, inv = np.unique(key, return_inverse=True)
        shared = np.bincount(inv.ravel(), weights=cost)
        cu, cq = uk // k, uk % k
        inside = np.bincount(
            np.concatenate([g.eu[~cross], g.ev[~cross]]),
            weights=np.concatenate([g.cutcost[~cross], g.cutcost[~cross]]),
            minlength=g.n,
        )
        gain = shared - inside[cu]
        order = np.nonzero(gain > 1e-9)[0]
        order = order[np.argsort(-gain[order], kind="stable")]
        moved = 0
        for i in order.tolist():
            v, q = int(cu[i]), int(cq[i])
            p = int(labels[v])
            if p == q:
                continue
            wv = g.w[v]
            if wv > 0 and (pw[p] - wv < lo - 1e-9 or pw[q] + wv > hi + 1e-9):
                continue
            if _move_gain(g, labels, np.array([v]), q)[0] <= 1e-9:
                continue
            if not _can_give(g, labels, v, int(size[p])):
                continue
            labels[v] = q
            pw[p] -= wv
            pw[q] += wv
            size[p] -= 1
            size[q] += 1
            moved += 1
        if moved == 0:
            return


# --------------------------------------------------------------------------------------------
# Parts and report
# --------------------------------------------------------------------------------------------


def _make_proposal(
    *,
    grid: BaseGeometry,
    grid_m: BaseGeometry,
    frame: _MetricFrame,
    units: _Units,
    labels: np.ndarray,
    k: int,
    seed: int,
    tolerance: float,
    household_unit: np.ndarray,
    max_building: int,
    n_buildings: int,
    has_roads: bool,
) -> Proposal:
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(k + 1))
    geoms_m = []
    for p in range(k):
        members = units.polys[order[bounds[p] : bounds[p + 1]]]
        merged = shapely.coverage_union_all(members)
        if not merged.is_valid:
            merged = shapely.union_all(members)
        geoms_m.append(merged)
    geoms_m = np.array(geoms_m, dtype=object)

    # Number parts in reading order: rows from north to south, west to east within a row.
    cent = shapely.get_coordinates(shapely.centroid(geoms_m))
    band = math.sqrt(grid_m.area / k)
    top = grid_m.bounds[3]
    reading = np.lexsort((cent[:, 0], np.floor((top - cent[:, 1]) / band)))
    rank = np.empty(k, dtype=np.int64)
    rank[reading] = np.arange(k)

    household_part = rank[labels[household_unit]]
    counts = np.bincount(household_part, minlength=k)
    area = shapely.area(geoms_m)
    perimeter = shapely.length(geoms_m)
    pp = np.where(perimeter > 0, 4 * math.pi * area / np.maximum(perimeter, 1e-12) ** 2, 0.0)
    single = np.array([g.geom_type == "Polygon" for g in geoms_m])

    hh_order = np.argsort(household_part, kind="stable")
    hh_bounds = np.searchsorted(household_part[hh_order], np.arange(k + 1))
    parts: list[Part] = []
    for new in range(k):
        old = int(reading[new])
        parts.append(
            Part(
                index=new,
                geometry=frame.to_lonlat(geoms_m[old]),
                household_indices=hh_order[hh_bounds[new] : hh_bounds[new + 1]],
                households=int(counts[new]),
                polsby_popper=float(pp[old]),
                contiguous=bool(single[old]),
                area_m2=float(area[old]),
            )
        )

    union = shapely.coverage_union_all(geoms_m)
    gap_overlap = float(
        abs(area.sum() - grid_m.area) + shapely.area(shapely.symmetric_difference(union, grid_m))
    )
    exact = gap_overlap <= 1e-6 * max(grid_m.area, 1.0)

    total = int(counts.sum())
    mean = total / k
    dev = counts - mean
    max_dev = float(np.abs(dev).max())
    road_share: float | None = None
    if has_roads:
        cut = labels[units.eu] != labels[units.ev]
        cut_len = float(units.elen[cut].sum())
        road_share = float(units.elen[cut & units.eroad].sum() / cut_len) if cut_len > 0 else 1.0
    grid_pieces = len(shapely.get_parts(grid_m))
    condition = grid_pieces == 1 and max_building <= tolerance * mean + 1e-9
    report = PartitionReport(
        k=k,
        seed=seed,
        tolerance=tolerance,
        total_households=total,
        building_points=n_buildings,
        largest_building_point=max_building,
        households_per_part=[int(c) for c in counts],
        mean=mean,
        max_deviation=max_dev,
        max_deviation_ratio=max_dev / mean if mean else 0.0,
        coefficient_of_variation=float(counts.std() / mean) if mean else 0.0,
        polsby_popper=[parts[i].polsby_popper for i in range(k)],
        polsby_popper_mean=float(pp.mean()),
        contiguous=bool(single.all()),
        non_contiguous_parts=[p.index for p in parts if not p.contiguous],
        exact_tiling=bool(exact),
        gap_or_overlap_m2=gap_overlap,
        road_boundary_share=road_share,
        balance_condition_met=bool(condition),
        within_tolerance=bool(max_dev <= tolerance * mean + 1e-9),
    )
    return Proposal(parts=parts, report=report)
