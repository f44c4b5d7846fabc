"""Measure how service circles cover households and territory, true to the ground anywhere on Earth.

A household is covered when the geodesic (WGS84 ellipsoid) distance to some service point is at most
that point's radius. Degrees are never used as distances: points are placed in 3-D Earth-centred
(ECEF) coordinates and searched with a k-d tree by straight-line chord, which is exact as a filter
because chord and geodesic length are tied by two rigorous bounds:

* a chord is never longer than the geodesic between the same two points (a straight line is
  the shortest path), so a chord longer than the radius means "not covered";
* the curvature of a geodesic on the ellipsoid never exceeds ``1 / R_MIN`` (``R_MIN`` is the
  smallest radius of curvature, the meridian radius at the equator), so by Schur's comparison
  theorem a geodesic of length ``s`` has a chord of at least ``2 R_MIN sin(s / 2 R_MIN)``.

Only the households in the thin band between those bounds (about a micrometre wide for a 1 km
circle, widened by a millimetre for rounding) are re-checked with ``pyproj.Geod``, so the covered
set equals the one from geodesic distances to every service point.

Distances to the nearest service point are geodesic: up to 10 km they come from the chord by the
series ``s = c + c^3 / (24 R^2)`` (error below 0.02 mm at 10 km for any curvature radius on the
ellipsoid), beyond that from ``pyproj.Geod`` over every service point that could be nearer.

Areas are measured in a Lambert azimuthal equal-area projection centred on the data, which keeps
areas exact on the ellipsoid; circles are drawn from points ``pyproj.Geod`` places at the radius.

Why one module of this size: the bounds above tie the chord search, the distances and the
incremental model together; each part relies on the others' exactness argument.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer
from scipy.spatial import cKDTree
from shapely.geometry.base import BaseGeometry

from gis.crs import GEOD, equal_area_transformers
from gis.errors import GisError
from gis.geodesy import unwrap_lon

LOGGER = logging.getLogger(__name__)

DEFAULT_RADIUS_M = 1000.0
"""The "1 km party-mass service circle"."""
FIVE_MINUTE_WALK_M = 400.0
"""The "five-minute service circle": five minutes at an unhurried 80 m per minute."""
MAX_RADIUS_M = 1_000_000.0
"""Radii beyond this are certainly input mistakes; the chord bounds hold far past it."""

_A = 6378137.0
_F = 1.0 / 298.257223563
_E2 = _F * (2.0 - _F)
R_MIN = _A * (1.0 - _E2)
"""Smallest radius of curvature of the WGS84 ellipsoid (meridian radius at the equator), m."""
R_MAX = _A / math.sqrt(1.0 - _E2)
"""Largest radius of curvature of the WGS84 ellipsoid (at the poles), m."""
_INV_R2 = 0.5 * (1.0 / R_MIN**2 + 1.0 / R_MAX**2)
SERIES_MAX_CHORD_M = 10_000.0
"""Chords up to this length are turned into geodesic lengths by the series, longer ones by Geod."""
EDGE_MARGIN_M = 1e-3
"""Households this close to a chord bound are re-checked with Geod (covers rounding in ECEF)."""


class CoverageInputError(GisError):
    """Inputs to a coverage computation are inconsistent or out of range."""

    http_status = 422
    code = "bad_coverage_input"


# --------------------------------------------------------------------------- geometry helpers


def ecef(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Return Earth-centred x, y, z (m, shape (n, 3)) of points on the WGS84 ellipsoid.

    Large inputs are split between threads (numpy leaves the interpreter lock while it works).
    """
    lon_a = np.asarray(lon, dtype=np.float64).reshape(-1)
    lat_a = np.asarray(lat, dtype=np.float64).reshape(-1)
    out = np.empty((lon_a.size, 3), dtype=np.float64)
    _in_parts(lon_a.size, lambda sl: _ecef_into(lon_a[sl], lat_a[sl], out[sl]))
    return out


def _in_parts(n: int, work: Any) -> None:
    """Call ``work(slice)`` over ``range(n)``: in one piece for small ``n``, else in one slice
    per thread of the pool (numpy leaves the interpreter lock while it works). The slices are
    disjoint, so ``work`` may write its slice of an output (or scatter through it) freely."""
    parts = _THREADS if n >= 200_000 else 1
    if parts == 1:
        work(slice(0, n))
        return
    bounds = np.linspace(0, n, parts + 1).astype(np.int64)
    slices = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    list(_pool().map(work, slices))


def _ecef_into(lon: np.ndarray, lat: np.ndarray, out: np.ndarray) -> None:
    lam = np.radians(lon)
    phi = np.radians(lat)
    sin_phi = np.sin(phi)
    cos_phi = np.cos(phi)
    n = _A / np.sqrt(1.0 - _E2 * sin_phi * sin_phi)
    ncos = n * cos_phi
    np.multiply(ncos, np.cos(lam), out=out[:, 0])
    np.multiply(ncos, np.sin(lam), out=out[:, 1])
    np.multiply(n * (1.0 - _E2), sin_phi, out=out[:, 2])


_THREADS = max(1, min(os.cpu_count() or 1, 4))
_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="gridgov-ecef")
    return _POOL


def sure_chord(radius_m: np.ndarray | float) -> np.ndarray | float:
    """Return the chord below which every geodesic is certainly no longer than ``radius_m``."""
    return 2.0 * R_MIN * np.sin(np.asarray(radius_m, dtype=np.float64) / (2.0 * R_MIN))


def chord_to_ground(chord_m: np.ndarray) -> np.ndarray:
    """Return the geodesic length for short chords (valid up to ``SERIES_MAX_CHORD_M``)."""
    c = np.asarray(chord_m, dtype=np.float64)
    return c + c * c * c * (_INV_R2 / 24.0)


def geodesic_m(
    lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray
) -> np.ndarray:
    """Return WGS84 geodesic distances in metres between paired points."""
    if np.size(lon1) == 0:
        return np.zeros(0)
    _, _, dist = GEOD.inv(
        np.asarray(lon1, dtype=np.float64),
        np.asarray(lat1, dtype=np.float64),
        np.asarray(lon2, dtype=np.float64),
        np.asarray(lat2, dtype=np.float64),
    )
    return np.asarray(dist, dtype=np.float64)


def _as_lonlat(lon: Any, lat: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    lon_a = np.ascontiguousarray(lon, dtype=np.float64).reshape(-1)
    lat_a = np.ascontiguousarray(lat, dtype=np.float64).reshape(-1)
    if lon_a.shape != lat_a.shape:
        raise CoverageInputError(
            f"{what}: {lon_a.size} longitudes but {lat_a.size} latitudes", what=what
        )
    bad = ~(np.isfinite(lon_a) & np.isfinite(lat_a) & (np.abs(lat_a) <= 90.0))
    bad |= np.abs(lon_a) > 540.0
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise CoverageInputError(
            f"{what}: point {i} has impossible coordinates lon={lon_a[i]!r}, lat={lat_a[i]!r}",
            what=what,
            index=i,
        )
    return lon_a, lat_a


def _as_radii(radius_m: Any, n: int, what: str) -> np.ndarray:
    r = np.asarray(radius_m, dtype=np.float64)
    r = np.full(n, float(r)) if r.ndim == 0 else np.ascontiguousarray(r).reshape(-1)
    if r.size != n:
        raise CoverageInputError(f"{what}: {r.size} radii for {n} service points", what=what)
    bad = ~(np.isfinite(r) & (r > 0.0) & (r <= MAX_RADIUS_M))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise CoverageInputError(
            f"{what}: radius {r[i]!r} m of service point {i} is not in (0, {MAX_RADIUS_M:.0f}]",
            what=what,
            index=i,
        )
    return r


def _radius_buckets(radius_m: np.ndarray) -> list[np.ndarray]:
    """Group indices so that radii within a group differ by at most a factor 1.25."""
    if radius_m.size == 0:
        return []
    key = np.floor(np.log(radius_m) / math.log(1.25)).astype(np.int64)
    order = np.argsort(key, kind="stable")
    cuts = np.flatnonzero(np.diff(key[order])) + 1
    return np.split(order, cuts)


def pairs_within(
    hh_lon: np.ndarray,
    hh_lat: np.ndarray,
    sp_lon: np.ndarray,
    sp_lat: np.ndarray,
    radius_m: np.ndarray | float,
    *,
    hh_xyz: np.ndarray | None = None,
    hh_tree: cKDTree | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Return (household index, service index, edge checks) of every pair within the radius.

    The radius may differ per service point. The pairs are exactly those whose WGS84 geodesic
    distance is at most the service point's radius; "edge checks" counts the pairs that had to
    be settled by ``pyproj.Geod`` because the chord alone could not decide.
    """
    hh_lon, hh_lat = _as_lonlat(hh_lon, hh_lat, "households")
    sp_lon, sp_lat = _as_lonlat(sp_lon, sp_lat, "service points")
    radius = _as_radii(radius_m, sp_lon.size, "service points")
    empty = np.zeros(0, dtype=np.int64)
    if hh_lon.size == 0 or sp_lon.size == 0:
        return empty, empty, 0
    if hh_tree is None:
        hh_xyz = ecef(hh_lon, hh_lat) if hh_xyz is None else hh_xyz
        hh_tree = cKDTree(hh_xyz, balanced_tree=False, compact_nodes=False)
    sp_xyz = ecef(sp_lon, sp_lat)
    hh_parts: list[np.ndarray] = []
    sp_parts: list[np.ndarray] = []
    checked = 0
    for bucket in _radius_buckets(radius):
        tree = cKDTree(sp_xyz[bucket])
        r = radius[bucket]
        found = hh_tree.sparse_distance_matrix(
            tree, float(r.max()) + EDGE_MARGIN_M, output_type="ndarray"
        )
        if found.size == 0:
            continue
        i = found["i"].astype(np.int64)
        j = bucket[found["j"]]
        chord = found["v"]
        keep = chord <= radius[j] + EDGE_MARGIN_M
        i, j, chord = i[keep], j[keep], chord[keep]
        edge = chord > sure_chord(radius[j]) - EDGE_MARGIN_M
        if edge.any():
            checked += int(edge.sum())
            ie, je = i[edge], j[edge]
            inside = geodesic_m(hh_lon[ie], hh_lat[ie], sp_lon[je], sp_lat[je]) <= radius[je]
            sure = ~edge
            sure[np.flatnonzero(edge)[inside]] = True
            i, j = i[sure], j[sure]
        hh_parts.append(i)
        sp_parts.append(j)
    if not hh_parts:
        return empty, empty, checked
    return np.concatenate(hh_parts), np.concatenate(sp_parts), checked


# --------------------------------------------------------------------------- households

_EMPTY = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class CoverageDelta:
    """What one change to the service points did to the households."""

    newly_covered: np.ndarray
    """Indices of households covered now and not before."""
    newly_uncovered: np.ndarray
    """Indices of households covered before and not now."""
    nearest_changed: np.ndarray
    """Indices of households whose nearest service point or distance changed."""
    examined: int
    """How many households the update looked at (the rest were not touched)."""


def _sort_order(key: np.ndarray) -> np.ndarray:
    """The order that sorts non-negative integer ``key``. Keys are first ranked among the
    occupied cells; up to 65,536 of them sort as 16-bit numbers (a radix sort, linear)."""
    if key.size == 0:
        return np.zeros(0, dtype=np.int64)
    top = int(key.max())
    if top < 4 * key.size + (1 << 20):
        used = np.bincount(key, minlength=top + 1) > 0
        if int(used.sum()) <= 1 << 16:
            dense = (np.cumsum(used) - 1).astype(np.uint16)
            return np.argsort(dense[key], kind="stable")
    return np.argsort(key, kind="stable")


class HouseholdCells:
    """Households sorted into cubes of ``size_m`` in Earth-centred coordinates, for the ball
    queries of edits: built with one sort (much cheaper than a k-d tree over a million
    households), a ball is the households of the cube columns it spans, each column one
    contiguous run of the sorted order, then filtered by chord."""

    def __init__(self, xyz: np.ndarray, size_m: float) -> None:
        self.size = float(size_m)
        # Column by column: a reduction along the short axis of an (n, 3) array is many times
        # slower than three reductions over contiguous columns.
        cols = [np.ascontiguousarray(xyz[:, k]) for k in range(3)] if xyz.size else []
        self.lo = np.array([c.min() for c in cols]) if cols else np.zeros(3)
        # Offsets from the minimum are never negative: truncation is the floor. Truncation is
        # monotonic, so the largest cell is the cell of the largest coordinate.
        scale = 1.0 / self.size
        self.dims = (
            np.array([int((c.max() - lo) * scale) + 1 for c, lo in zip(cols, self.lo, strict=True)])
            if cols
            else np.ones(3, dtype=np.int64)
        )
        n = xyz.shape[0] if cols else 0
        key = np.empty(n, dtype=np.int64)
        if cols:
            dy, dz = int(self.dims[1]), int(self.dims[2])
            x0, y0, z0 = (float(v) for v in self.lo)

            def keys_of(sl: slice) -> None:
                cx = ((cols[0][sl] - x0) * scale).astype(np.int64)
                cy = ((cols[1][sl] - y0) * scale).astype(np.int64)
                cz = ((cols[2][sl] - z0) * scale).astype(np.int64)
                np.add((cx * dy + cy) * dz, cz, out=key[sl])

            _in_parts(n, keys_of)
        self.order = _sort_order(key)
        self.keys = key[self.order]
        # The coordinates in sorted order: a ball reads short runs of them, and the full
        # computation queries them in this order (``take`` gathers rows several times faster
        # than fancy indexing; each thread gathers its part).
        self.sorted_xyz = np.empty((n, 3), dtype=np.float64)
        order, out = self.order, self.sorted_xyz
        _in_parts(n, lambda sl: np.take(xyz, order[sl], axis=0, out=out[sl]))

    def ball(self, centre: np.ndarray, radius_m: float) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the households within ``radius_m`` (chord) of ``centre``, and their
        chords."""
        if self.keys.size == 0:
            return _EMPTY, np.zeros(0)
        lo = np.floor((centre - radius_m - self.lo) * (1.0 / self.size)).astype(np.int64)
        hi = np.floor((centre + radius_m - self.lo) * (1.0 / self.size)).astype(np.int64)
        lo = np.maximum(lo, 0)
        hi = np.minimum(hi, self.dims - 1)
        if (hi < lo).any():
            return _EMPTY, np.zeros(0)
        nx, ny = int(hi[0] - lo[0] + 1), int(hi[1] - lo[1] + 1)
        if nx * ny > 20_000:  # a ball wider than most of the data: look at every household
            run = np.arange(self.keys.size)
        else:
            ix = np.repeat(np.arange(lo[0], hi[0] + 1), ny)
            iy = np.tile(np.arange(lo[1], hi[1] + 1), nx)
            base = (ix * self.dims[1] + iy) * self.dims[2]
            start = np.searchsorted(self.keys, base + lo[2], side="left")
            stop = np.searchsorted(self.keys, base + hi[2], side="right")
            n = stop - start
            total = int(n.sum())
            if total == 0:
                return _EMPTY, np.zeros(0)
            run = np.repeat(start - np.cumsum(n) + n, n) + np.arange(total)
        d = self.sorted_xyz[run] - centre
        d2 = np.einsum("ij,ij->i", d, d)
        keep = d2 <= radius_m * radius_m
        return self.order[run[keep]], np.sqrt(d2[keep])


class CoverageModel:
    """Hold household coverage by service circles and keep it current under point edits.

    Households are fixed; service points carry an id (a database id, say), a position and a
    radius. The full computation runs once; ``move``, ``add``, ``remove`` and ``set_radius``
    then touch only the households within reach of the edited point (and the few whose nearest
    point was the edited one). Households are indexed by sorting them into cubes of
    Earth-centred space (``HouseholdCells``: one sort, no tree), which also orders the full
    computation's queries; ``editable=False`` skips that index when there is no full computation
    to share it (no households or no service points); the first edit then builds it.

    Public state after every call, one value per household: ``covered`` (bool), ``nearest_m``
    (geodesic metres to the nearest service point, ``inf`` when there is none) and
    ``nearest_id`` (that point's id, or None).
    """

    def __init__(
        self,
        hh_lon: Any,
        hh_lat: Any,
        sp_lon: Any,
        sp_lat: Any,
        sp_radius_m: Any = DEFAULT_RADIUS_M,
        *,
        sp_ids: Sequence[Any] | None = None,
        editable: bool = True,
    ) -> None:
        self.hh_lon, self.hh_lat = _as_lonlat(hh_lon, hh_lat, "households")
        sp_lon_a, sp_lat_a = _as_lonlat(sp_lon, sp_lat, "service points")
        radius = _as_radii(sp_radius_m, sp_lon_a.size, "service points")
        ids = list(range(sp_lon_a.size)) if sp_ids is None else list(sp_ids)
        if len(ids) != sp_lon_a.size:
            raise CoverageInputError(
                f"service points: {len(ids)} ids for {sp_lon_a.size} points", what="ids"
            )
        if len(set(ids)) != len(ids):
            raise CoverageInputError("service points: ids are not unique", what="ids")
        n = self.hh_lon.size
        self._hh_xyz = ecef(self.hh_lon, self.hh_lat)
        self._hh_tree_cache: cKDTree | None = None
        self._hh_cells_cache: HouseholdCells | None = None
        # Service points live in slots; a removed point's slot stays, marked inactive.
        self._sp_lon = sp_lon_a.copy()
        self._sp_lat = sp_lat_a.copy()
        self._sp_radius = radius.copy()
        self._sp_xyz = ecef(sp_lon_a, sp_lat_a)
        self._sp_active = np.ones(sp_lon_a.size, dtype=bool)
        self._slot_ids: list[Any] = ids
        self._slot_of: dict[Any, int] = {pid: s for s, pid in enumerate(ids)}
        self._rebuild_sp_tree()

        self.covered = np.zeros(n, dtype=bool)
        """True for each household inside at least one service circle."""
        self.nearest_m = np.full(n, np.inf)
        """Geodesic metres from each household to its nearest service point (inf if none)."""
        self._nearest_slot = np.full(n, -1, dtype=np.int64)
        self.edge_checks = 0
        """Households settled by Geod in the full computation (right at a circle's edge)."""
        if n and self._tree_slots.size:
            self._full_computation()
        self._reset_far_set()
        if editable:
            # Index the households now (if the full computation did not) so that the first edit
            # is as quick as the others.
            _ = self._hh_cells

    def _full_computation(self) -> None:
        n = self.hh_lon.size
        radii = np.unique(self._sp_radius[self._tree_slots])
        if radii.size > 16:
            # Many different radii: enumerate household-point pairs instead.
            hh_i, _, checked = pairs_within(
                self.hh_lon,
                self.hh_lat,
                self._sp_lon,
                self._sp_lat,
                self._sp_radius,
                hh_tree=self._hh_tree,
            )
            self.covered[hh_i] = True
            self.edge_checks = checked
            d, s = self._nearest(np.arange(n))
            self.nearest_m[:] = d
            self._nearest_slot[:] = s
            return
        # One nearest-point query over every point (both cores): the nearest point covers most
        # households. Only the rest, within reach of some larger circle, are asked again, of the
        # points of each radius that could reach them (a bounded query), and the thin band at
        # a circle's edge is settled by Geod. Households are queried in the order of their cells
        # (neighbours one after another walk the same branches of the tree: faster).
        assert self._sp_tree is not None
        order = self._hh_cells.order
        xyz = self._hh_cells.sorted_xyz
        # Bounded by the largest circle first (the search prunes more), then the few
        # households farther than that from every point are asked without a bound.
        reach = float(radii.max()) + EDGE_MARGIN_M
        best_s, t = self._sp_tree.query(xyz, k=1, distance_upper_bound=reach, workers=-1)
        miss = np.flatnonzero(~np.isfinite(best_s))
        if miss.size:
            best_s[miss], t[miss] = self._sp_tree.query(
                np.take(xyz, miss, axis=0), k=1, workers=-1 if miss.size > 50_000 else 1
            )
        slot_s = self._tree_slots[t]
        sure_by_slot = sure_chord(self._sp_radius) - EDGE_MARGIN_M
        covered_s = best_s <= sure_by_slot[slot_s]
        open_ = np.flatnonzero(~covered_s & (best_s <= float(radii.max()) + EDGE_MARGIN_M))
        for r in radii[::-1]:
            cand = open_[~covered_s[open_] & (best_s[open_] <= r + EDGE_MARGIN_M)]
            if cand.size == 0:
                continue
            slots = self._tree_slots[self._sp_radius[self._tree_slots] == r]
            tree = cKDTree(self._sp_xyz[slots])
            chord, _ = tree.query(
                xyz[cand],
                k=1,
                distance_upper_bound=r + EDGE_MARGIN_M,
                workers=-1 if cand.size > 50_000 else 1,
            )
            sure = chord <= sure_chord(r) - EDGE_MARGIN_M
            covered_s[cand[sure]] = True
            band = cand[~sure & (chord <= r + EDGE_MARGIN_M)]
            if band.size:
                # Right at the edge another point of the group may be nearer on the ground.
                self.edge_checks += int(band.size)
                covered_s[band] = self._covered_by(order[band], slots)
        # Back from the cells' order to the households', each thread scattering its part (the
        # targets of different parts differ: ``order`` is a permutation).
        best = np.empty(n)

        def scatter(sl: slice) -> None:
            to = order[sl]
            best[to] = best_s[sl]
            self._nearest_slot[to] = slot_s[sl]
            self.covered[to] = covered_s[sl]
            self.nearest_m[to] = chord_to_ground(best_s[sl])

        _in_parts(n, scatter)
        far = np.flatnonzero(best > SERIES_MAX_CHORD_M)
        if far.size:
            d, s = self._nearest(far)
            self.nearest_m[far] = d
            self._nearest_slot[far] = s

    # ------------------------------------------------------------------ public views

    @property
    def nearest_id(self) -> list[Any]:
        """Return the id of each household's nearest service point (None when there is none)."""
        ids = self._slot_ids
        return [ids[s] if s >= 0 else None for s in self._nearest_slot.tolist()]

    @property
    def nearest_slot(self) -> np.ndarray:
        """Return each household's nearest service point as a slot number (-1 when none)."""
        return self._nearest_slot

    @property
    def service_ids(self) -> list[Any]:
        """Return the ids of the service points present, in slot order."""
        return [self._slot_ids[s] for s in np.flatnonzero(self._sp_active)]

    def service_point(self, sp_id: Any) -> tuple[float, float, float]:
        """Return (lon, lat, radius_m) of a service point."""
        s = self._slot(sp_id)
        return float(self._sp_lon[s]), float(self._sp_lat[s]), float(self._sp_radius[s])

    def summary(self, people: Any = None, grid: Any = None) -> CoverageSummary:
        """Return the totals and the per-grid figures of the current coverage."""
        return summarize(self.covered, self.nearest_m, people=people, grid=grid)

    # ------------------------------------------------------------------ edits

    def move(self, sp_id: Any, lon: float, lat: float) -> CoverageDelta:
        """Move a service point and update the households it reached or now reaches."""
        s = self._slot(sp_id)
        new_lon, new_lat = _as_lonlat([lon], [lat], "moved service point")
        before_idx = self._members(s)
        self._sp_lon[s] = new_lon[0]
        self._sp_lat[s] = new_lat[0]
        self._sp_xyz[s] = ecef(new_lon, new_lat)[0]
        self._rebuild_sp_tree()
        after_idx = self._members(s)
        cov = self._update_covered(before_idx, after_idx)
        near, examined = self._refresh_nearest(s, lost=True)
        return self._delta(cov, near, examined + before_idx.size + after_idx.size)

    def add(
        self, sp_id: Any, lon: float, lat: float, radius_m: float = DEFAULT_RADIUS_M
    ) -> CoverageDelta:
        """Add a service point and update the households it reaches."""
        if sp_id in self._slot_of:
            raise CoverageInputError(f"service point {sp_id!r} is already present", id=sp_id)
        lon_a, lat_a = _as_lonlat([lon], [lat], "added service point")
        r = _as_radii(radius_m, 1, "added service point")
        s = len(self._slot_ids)
        self._slot_ids.append(sp_id)
        self._slot_of[sp_id] = s
        self._sp_lon = np.append(self._sp_lon, lon_a)
        self._sp_lat = np.append(self._sp_lat, lat_a)
        self._sp_radius = np.append(self._sp_radius, r)
        self._sp_xyz = np.vstack([self._sp_xyz, ecef(lon_a, lat_a)])
        self._sp_active = np.append(self._sp_active, True)
        self._rebuild_sp_tree()
        after_idx = self._members(s)
        cov = self._update_covered(_EMPTY, after_idx)
        near, examined = self._refresh_nearest(s, lost=False)
        return self._delta(cov, near, examined + after_idx.size)

    def remove(self, sp_id: Any) -> CoverageDelta:
        """Remove a service point and update the households it reached."""
        s = self._slot(sp_id)
        before_idx = self._members(s)
        self._sp_active[s] = False
        del self._slot_of[sp_id]
        self._rebuild_sp_tree()
        cov = self._update_covered(before_idx, _EMPTY)
        near, examined = self._refresh_nearest(s, lost=True, gained=False)
        return self._delta(cov, near, examined + before_idx.size)

    def set_radius(self, sp_id: Any, radius_m: float) -> CoverageDelta:
        """Change one service point's radius and update the households between the circles."""
        s = self._slot(sp_id)
        r = _as_radii(radius_m, 1, "service point radius")
        before_idx = self._members(s)
        self._sp_radius[s] = r[0]
        after_idx = self._members(s)
        cov = self._update_covered(before_idx, after_idx)
        return self._delta(cov, _EMPTY, before_idx.size + after_idx.size)

    # ------------------------------------------------------------------ internals

    @property
    def _hh_cells(self) -> HouseholdCells:
        if self._hh_cells_cache is None:
            reach = float(self._sp_radius.max()) if self._sp_radius.size else DEFAULT_RADIUS_M
            self._hh_cells_cache = HouseholdCells(
                self._hh_xyz, min(max(reach / 2.0, 125.0), 5000.0)
            )
        return self._hh_cells_cache

    @property
    def _hh_tree(self) -> cKDTree:
        if self._hh_tree_cache is None:
            self._hh_tree_cache = cKDTree(self._hh_xyz, balanced_tree=False, compact_nodes=False)
        return self._hh_tree_cache

    def _slot(self, sp_id: Any) -> int:
        try:
            return self._slot_of[sp_id]
        except KeyError:
            raise CoverageInputError(f"no service point with id {sp_id!r}", id=sp_id) from None

    def _rebuild_sp_tree(self) -> None:
        # A few thousand points: rebuilding costs well under a millisecond.
        self._tree_slots = np.flatnonzero(self._sp_active)
        self._sp_tree = cKDTree(self._sp_xyz[self._tree_slots]) if self._tree_slots.size else None

    def _members(self, s: int) -> np.ndarray:
        """Return the households within service point ``s``'s circle (exactly, by Geod)."""
        r = float(self._sp_radius[s])
        idx, chord = self._hh_cells.ball(self._sp_xyz[s], r + EDGE_MARGIN_M)
        if idx.size == 0:
            return idx
        edge = chord > sure_chord(r) - EDGE_MARGIN_M
        if edge.any():
            ie = idx[edge]
            ok = geodesic_m(
                self.hh_lon[ie],
                self.hh_lat[ie],
                np.full(ie.size, self._sp_lon[s]),
                np.full(ie.size, self._sp_lat[s]),
            )
            keep = ~edge
            keep[np.flatnonzero(edge)[ok <= r]] = True
            idx = idx[keep]
        return idx

    def _covered_by(self, idx: np.ndarray, slots: np.ndarray | None = None) -> np.ndarray:
        """Return whether each household ``idx`` lies in a circle of ``slots`` (default: all)."""
        if slots is None:
            slots = self._tree_slots
        if idx.size == 0 or slots.size == 0:
            return np.zeros(idx.size, dtype=bool)
        hit, _, _ = pairs_within(
            self.hh_lon[idx],
            self.hh_lat[idx],
            self._sp_lon[slots],
            self._sp_lat[slots],
            self._sp_radius[slots],
            hh_xyz=self._hh_xyz[idx],
        )
        out = np.zeros(idx.size, dtype=bool)
        out[hit] = True
        return out

    def _update_covered(
        self, before_idx: np.ndarray, after_idx: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        """Apply an edit that took circle ``before_idx`` and gave circle ``after_idx``."""
        gained = after_idx[~self.covered[after_idx]]
        self.covered[after_idx] = True
        # Households left by the edited circle stay covered only if another circle holds them.
        left = np.setdiff1d(before_idx, after_idx, assume_unique=True)
        left = left[self.covered[left]]
        lost = left[~self._covered_by(left)]
        self.covered[lost] = False
        return gained, lost

    def _ground_to_slot(self, idx: np.ndarray, chord: np.ndarray, s: int) -> np.ndarray:
        """Return geodesic metres from households ``idx`` (at ``chord``) to service slot ``s``."""
        dist = chord_to_ground(chord)
        far = chord > SERIES_MAX_CHORD_M
        if far.any():
            fi = idx[far]
            dist[far] = geodesic_m(
                self.hh_lon[fi],
                self.hh_lat[fi],
                np.full(fi.size, self._sp_lon[s]),
                np.full(fi.size, self._sp_lat[s]),
            )
        return dist

    def _nearest(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return geodesic distance to, and slot of, the nearest active service point."""
        if self._sp_tree is None or idx.size == 0:
            return np.full(idx.size, np.inf), np.full(idx.size, -1, dtype=np.int64)
        # Threads pay off only for big batches; small ones would mostly wait for start-up.
        workers = -1 if idx.size > 50_000 else 1
        chord, t = self._sp_tree.query(self._hh_xyz[idx], k=1, workers=workers)
        slots = self._tree_slots[t]
        dist = chord_to_ground(chord)
        far = np.flatnonzero(chord > SERIES_MAX_CHORD_M)
        if far.size:
            # Far away the nearest by chord may not be the nearest on the ground: every point
            # whose chord is shorter than the chord-nearest's geodesic length is a contender.
            fi = idx[far]
            s1 = geodesic_m(
                self.hh_lon[fi], self.hh_lat[fi], self._sp_lon[slots[far]], self._sp_lat[slots[far]]
            )
            lists = self._sp_tree.query_ball_point(self._hh_xyz[fi], s1 + EDGE_MARGIN_M)
            lengths = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
            owner = np.repeat(np.arange(fi.size), lengths)
            cand = self._tree_slots[np.fromiter((t for x in lists for t in x), dtype=np.int64)]
            d = geodesic_m(
                self.hh_lon[fi[owner]],
                self.hh_lat[fi[owner]],
                self._sp_lon[cand],
                self._sp_lat[cand],
            )
            order = np.lexsort((d, owner))
            first = order[np.r_[0, np.flatnonzero(np.diff(owner[order])) + 1]]
            dist[far] = d[first]
            slots[far] = cand[first]
        return dist, slots

    def _reset_far_set(self) -> None:
        # Households farther than ``_far_m`` from every service point are listed in
        # ``_far_idx``; everyone else lies within ``_far_m`` of the nearest point, so a new or
        # moved point can only become the nearest for households within ``_far_m`` of it or
        # listed. That keeps the nearest-point update local. Checking a listed household is
        # cheap (plain arrays), so the list may hold a good many.
        n = self.nearest_m.size
        finite = self.nearest_m[np.isfinite(self.nearest_m)]
        if finite.size == 0:
            self._far_m = 0.0
        else:
            keep = max(256, n // 100)
            q = 1.0 - min(1.0, keep / finite.size)
            self._far_m = float(np.quantile(finite, q))
        self._far_idx = np.flatnonzero(self.nearest_m > self._far_m)
        self._far_limit = max(1024, 2 * self._far_idx.size)

    def _refresh_nearest(
        self, s: int, *, lost: bool, gained: bool = True
    ) -> tuple[np.ndarray, int]:
        changed: list[np.ndarray] = []
        examined = 0
        if lost:
            # Households whose nearest point was the edited one: ask the tree again.
            orphans = np.flatnonzero(self._nearest_slot == s)
            examined += orphans.size
            if orphans.size:
                d, sl = self._nearest(orphans)
                self.nearest_m[orphans] = d
                self._nearest_slot[orphans] = sl
                changed.append(orphans)
                beyond = orphans[d > self._far_m]
                if beyond.size:
                    self._far_idx = np.union1d(self._far_idx, beyond)
        if gained and self._sp_active[s]:
            near = self._hh_cells.ball(self._sp_xyz[s], self._far_m + EDGE_MARGIN_M)
            far = self._far_idx
            for cand, chord in (near, (far, None)):
                examined += cand.size
                if cand.size == 0:
                    continue
                if chord is None:
                    chord = np.linalg.norm(self._hh_xyz[cand] - self._sp_xyz[s], axis=1)
                # A chord is never longer than the geodesic: a cheap first filter.
                maybe = (chord < self.nearest_m[cand]) & (self._nearest_slot[cand] != s)
                cand, chord = cand[maybe], chord[maybe]
                if cand.size == 0:
                    continue
                d = self._ground_to_slot(cand, chord, s)
                better = d < self.nearest_m[cand]
                hit = cand[better]
                if hit.size:
                    self.nearest_m[hit] = d[better]
                    self._nearest_slot[hit] = s
                    changed.append(hit)
        if self._far_idx.size > self._far_limit:
            self._reset_far_set()
        out = np.unique(np.concatenate(changed)) if changed else _EMPTY
        return out, examined

    def _delta(self, cov: tuple[np.ndarray, ...], near: np.ndarray, examined: int) -> CoverageDelta:
        return CoverageDelta(
            newly_covered=np.sort(cov[0]),
            newly_uncovered=np.sort(cov[1]),
            nearest_changed=near,
            examined=int(examined),
        )


def compute_coverage(
    hh_lon: Any,
    hh_lat: Any,
    sp_lon: Any,
    sp_lat: Any,
    sp_radius_m: Any = DEFAULT_RADIUS_M,
) -> CoverageModel:
    """Compute which households lie inside some service circle, and how far the nearest point is."""
    return CoverageModel(hh_lon, hh_lat, sp_lon, sp_lat, sp_radius_m, editable=False)


# --------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class CoverageSummary:
    """Totals of a coverage computation, overall and per grid."""

    totals: dict[str, Any]
    grids: pd.DataFrame
    """One row per grid id (index), with the same columns as ``totals``."""


def _figures(
    households: int,
    hh_covered: int,
    people: float,
    people_covered: float,
    median: float,
    maximum: float,
) -> dict[str, Any]:
    return {
        "households": households,
        "households_covered": hh_covered,
        "households_uncovered": households - hh_covered,
        "households_covered_share": (hh_covered / households) if households else None,
        "people": people,
        "people_covered": people_covered,
        "people_uncovered": people - people_covered,
        "people_covered_share": (people_covered / people) if people else None,
        "nearest_median_m": median if math.isfinite(median) else None,
        "nearest_max_m": maximum if math.isfinite(maximum) else None,
    }


def summarize(
    covered: np.ndarray,
    nearest_m: np.ndarray,
    *,
    people: Any = None,
    grid: Any = None,
) -> CoverageSummary:
    """Return households and people total / covered / uncovered, shares and nearest distances.

    ``people`` gives each household's head count (1 each when omitted); ``grid`` gives each
    household's grid id, and the per-grid table has one row per distinct id. Distances of
    households without any service point are ``inf`` and make medians/maxima None.
    """
    covered = np.asarray(covered, dtype=bool)
    nearest_m = np.asarray(nearest_m, dtype=np.float64)
    n = covered.size
    ppl = np.ones(n) if people is None else np.asarray(people, dtype=np.float64)
    if ppl.size != n or nearest_m.size != n:
        raise CoverageInputError("summary: arrays of different lengths", what="summary")
    totals = _figures(
        n,
        int(covered.sum()),
        float(ppl.sum()),
        float(ppl[covered].sum()),
        float(np.median(nearest_m)) if n else math.nan,
        float(nearest_m.max()) if n else math.nan,
    )
    columns = list(totals)
    if grid is None:
        return CoverageSummary(totals, pd.DataFrame(columns=columns))
    frame = pd.DataFrame(
        {"grid": np.asarray(grid), "covered": covered, "people": ppl, "nearest": nearest_m}
    )
    if len(frame) != n:
        raise CoverageInputError("summary: grid ids and households differ in length")
    frame["people_covered"] = np.where(covered, ppl, 0.0)
    g = frame.groupby("grid", sort=True, dropna=False)
    agg = g.agg(
        households=("covered", "size"),
        households_covered=("covered", "sum"),
        people=("people", "sum"),
        people_covered=("people_covered", "sum"),
        nearest_median_m=("nearest", "median"),
        nearest_max_m=("nearest", "max"),
    )
    agg["households_covered"] = agg["households_covered"].astype(np.int64)
    agg["households_uncovered"] = agg["households"] - agg["households_covered"]
    agg["households_covered_share"] = agg["households_covered"] / agg["households"]
    agg["people_uncovered"] = agg["people"] - agg["people_covered"]
    with np.errstate(invalid="ignore", divide="ignore"):
        agg["people_covered_share"] = agg["people_covered"] / agg["people"].where(agg["people"] > 0)
    for col in ("nearest_median_m", "nearest_max_m"):
        agg[col] = agg[col].where(np.isfinite(agg[col]))
    return CoverageSummary(totals, agg[columns])


# --------------------------------------------------------------------------- areas and circles


def _centre_of(lon: np.ndarray, lat: np.ndarray) -> tuple[float, float]:
    """Return the lon/lat of the mean of points taken in 3-D (fine across the antimeridian)."""
    v = ecef(lon, lat).mean(axis=0)
    clon = math.degrees(math.atan2(v[1], v[0]))
    clat = math.degrees(math.atan2(v[2], math.hypot(v[0], v[1]) * (1.0 - _E2)))
    return clon, clat


@dataclass(frozen=True)
class AreaCoverage:
    """How much of one polygon the service circles cover."""

    area_m2: float
    covered_m2: float
    uncovered: BaseGeometry
    """The part outside every circle, in lon/lat (EPSG:4326)."""

    @property
    def share(self) -> float | None:
        """Return the covered share of the area (None for an empty polygon)."""
        return self.covered_m2 / self.area_m2 if self.area_m2 > 0 else None


def area_coverage(
    polygons: Sequence[BaseGeometry],
    sp_lon: Any,
    sp_lat: Any,
    sp_radius_m: Any = DEFAULT_RADIUS_M,
    *,
    segments: int = 128,
    max_segment_deg: float = 0.001,
) -> list[AreaCoverage]:
    """Return, per lon/lat polygon, its ground area, the area inside service circles and the rest.

    Everything is measured in one Lambert azimuthal equal-area projection centred on the
    polygons, so areas are true on the ellipsoid. Polygon edges are taken as straight in lon/lat
    (as PostGIS geometry does) and densified to ``max_segment_deg`` before projecting. Each circle
    is a ``segments``-gon whose vertices ``pyproj.Geod`` places a little beyond the radius, so
    that the polygon has the circle's area (a 128-gon through the circle would miss 0.04 %).
    """
    sp_lon_a, sp_lat_a = _as_lonlat(sp_lon, sp_lat, "service points")
    radius = _as_radii(sp_radius_m, sp_lon_a.size, "service points")
    polys = list(polygons)
    if not polys:
        return []
    coords = np.concatenate(
        [shapely.get_coordinates(p) for p in polys if not p.is_empty] or [np.zeros((0, 2))]
    )
    if coords.size == 0:
        return [AreaCoverage(0.0, 0.0, p) for p in polys]
    clon, clat = _centre_of(coords[:, 0], coords[:, 1])
    # Give results the longitudes the input used (e.g. 179.9 .. 180.1 stays so).
    clon = float(unwrap_lon(np.array([clon]), float(coords[0, 0]))[0])
    fwd, inv = equal_area_transformers(clon, clat)

    def to_metres(g: BaseGeometry) -> BaseGeometry:
        g = shapely.segmentize(g, max_segment_deg)
        return shapely.transform(g, lambda xy: np.column_stack(fwd.transform(xy[:, 0], xy[:, 1])))

    def to_lonlat(g: BaseGeometry) -> BaseGeometry:
        def back(xy: np.ndarray) -> np.ndarray:
            x, y = inv.transform(xy[:, 0], xy[:, 1])
            return np.column_stack([unwrap_lon(np.asarray(x), clon), y])

        return _polygonal(shapely.transform(g, back))

    projected = [to_metres(p) for p in polys]
    circles = _projected_circles(sp_lon_a, sp_lat_a, radius, segments, fwd)
    tree = shapely.STRtree(circles)
    out: list[AreaCoverage] = []
    for poly in projected:
        area = float(poly.area)
        hits = tree.query(poly, predicate="intersects") if len(circles) else []
        if len(hits):
            covered_shape = shapely.intersection(poly, shapely.union_all(circles[hits]))
            rest = shapely.difference(poly, covered_shape)
            covered = float(covered_shape.area)
        else:
            rest = poly
            covered = 0.0
        uncovered = to_lonlat(rest) if not rest.is_empty else shapely.Polygon()
        out.append(AreaCoverage(area, min(covered, area), uncovered))
    return out


def _polygonal(g: BaseGeometry) -> BaseGeometry:
    """Return the areal part of ``g``, repaired if rounding left a degenerate sliver."""
    if not g.is_valid:
        g = shapely.make_valid(g)
    polys: list[shapely.Polygon] = []
    for part in shapely.get_parts(g):
        if isinstance(part, shapely.MultiPolygon):
            polys.extend(part.geoms)
        elif isinstance(part, shapely.Polygon) and part.area > 0:
            polys.append(part)
    if not polys:
        return shapely.Polygon()
    return polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)


def _projected_circles(
    lon: np.ndarray,
    lat: np.ndarray,
    radius: np.ndarray,
    segments: int,
    fwd: Transformer,
) -> np.ndarray:
    """Return circle polygons in the projection, area-matched to the ground circles."""
    m = lon.size
    if m == 0:
        return np.array([], dtype=object)
    theta = 2.0 * math.pi / segments
    grow = math.sqrt(theta / math.sin(theta))
    az = np.tile(np.linspace(0.0, 360.0, segments, endpoint=False), m)
    lons, lats, _ = GEOD.fwd(
        np.repeat(lon, segments), np.repeat(lat, segments), az, np.repeat(radius * grow, segments)
    )
    x, y = fwd.transform(lons, lats)
    ring = np.stack([np.asarray(x), np.asarray(y)], axis=-1).reshape(m, segments, 2)
    ring = np.concatenate([ring, ring[:, :1]], axis=1)
    return shapely.polygons(shapely.linearrings(ring))
