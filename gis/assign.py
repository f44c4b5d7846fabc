"""Assign points to the polygons that contain them, in bulk.

Rule for points on a shared boundary or vertex: a point that lies in (or on the edge of) several
polygons goes to the one whose key sorts first (grid codes, so the choice survives re-imports).
The same rule holds in ``assign_points`` (one STRtree pass), in ``PolygonIndex`` (a cell index
for millions of points) and in the single-point locate that PostGIS answers; the tests hold
them to it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely
from shapely import STRtree

from gis.crs import degree_span, metric_transformers

# Cells are grown by this much (degrees, ~0.1 mm) before they are tested, so a point that
# rounding puts in a neighbouring cell still lies inside the box that was tested.
_CELL_MARGIN = 1e-9


def _ranks(keys: Sequence[str]) -> np.ndarray:
    """Return each key's position in sorted order (0 = sorts first)."""
    return np.argsort(np.argsort(np.asarray(keys, dtype=object), kind="stable"), kind="stable")


def _first_by_rank(
    pt_idx: np.ndarray, poly_idx: np.ndarray, rank: np.ndarray, n: int
) -> np.ndarray:
    """For each point take the matching polygon of lowest rank; -1 where none matched."""
    result = np.full(n, -1, dtype=np.int64)
    if pt_idx.size == 0:
        return result
    order = np.lexsort((rank[poly_idx], pt_idx))
    pt_sorted, poly_sorted = pt_idx[order], poly_idx[order]
    first = np.ones(pt_sorted.size, dtype=bool)
    first[1:] = pt_sorted[1:] != pt_sorted[:-1]
    result[pt_sorted[first]] = poly_sorted[first]
    return result


def assign_points(
    lon: np.ndarray, lat: np.ndarray, polygons: Sequence, keys: Sequence[str]
) -> np.ndarray:
    """Return, for each point, the index of the polygon that contains it, or -1 when none does.

    ``polygons`` and ``keys`` run in parallel; ties on shared edges go to the smallest key.
    """
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    if lon.size == 0 or len(polygons) == 0:
        return np.full(lon.shape[0], -1, dtype=np.int64)
    points = shapely.points(lon, lat)
    tree = STRtree(list(polygons))
    pt_idx, poly_idx = tree.query(points, predicate="intersects")
    return _first_by_rank(pt_idx, poly_idx, _ranks(keys), lon.shape[0])


class PolygonIndex:
    """Polygons prepared for assigning many points at once, by the rule of ``assign_points``.

    A uniform grid of cells covers the polygons' extent. A cell lying strictly inside one polygon
    and touching no other answers for every point in it by a table look-up; a cell touching no
    polygon answers "none"; only points in cells crossed by an edge are tested exactly (GEOS,
    prepared polygons), against that cell's candidates in key order. The answer is the same as
    ``assign_points`` gives, point for point, at a fraction of the cost.
    """

    def __init__(
        self, polygons: Sequence, keys: Sequence[str], *, cells: int | None = None
    ) -> None:
        self.polygons = np.asarray(list(polygons), dtype=object)
        self.keys = list(keys)
        if len(self.polygons) != len(self.keys):
            raise ValueError("polygons and keys differ in length")
        self.rank = _ranks(self.keys) if self.keys else np.zeros(0, dtype=np.int64)
        self.tree = STRtree(self.polygons) if len(self.polygons) else None
        self._near_cache: dict[float, np.ndarray] = {}
        if self.tree is None:
            return
        shapely.prepare(self.polygons)
        x0, y0, x1, y1 = shapely.total_bounds(self.polygons)
        width, height = max(x1 - x0, 1e-9), max(y1 - y0, 1e-9)
        if cells is None:  # enough cells that few points need an exact test, cheap to build
            cells = int(min(max(256 * len(self.polygons), 1024), 65536))
        # Square-ish cells, about ``cells`` of them over the extent.
        side = max(np.sqrt(width * height / max(cells, 1)), 1e-7)
        self.nx = max(int(np.ceil(width / side)), 1)
        self.ny = max(int(np.ceil(height / side)), 1)
        self.x0, self.y0, self.x1, self.y1 = x0, y0, x1, y1
        self.dx, self.dy = width / self.nx, height / self.ny
        self._build_cells()

    def _build_cells(self) -> None:
        ix, iy = np.meshgrid(np.arange(self.nx), np.arange(self.ny))
        ix, iy = ix.ravel(), iy.ravel()
        bx0 = self.x0 + ix * self.dx - _CELL_MARGIN
        by0 = self.y0 + iy * self.dy - _CELL_MARGIN
        boxes = shapely.box(
            bx0, by0, bx0 + self.dx + 2 * _CELL_MARGIN, by0 + self.dy + 2 * _CELL_MARGIN
        )
        assert self.tree is not None
        cell_idx, poly_idx = self.tree.query(boxes, predicate="intersects")
        ncell = self.nx * self.ny
        counts = np.bincount(cell_idx, minlength=ncell)
        # Candidates of each cell in key order, so the first polygon that holds a point wins.
        order = np.lexsort((self.rank[poly_idx], cell_idx))
        self.cand_poly = poly_idx[order]
        self.cand_start = np.zeros(ncell + 1, dtype=np.int64)
        np.cumsum(counts, out=self.cand_start[1:])
        self.cand_count = counts
        # -1: no polygon; -2: test exactly; >= 0: every point of the cell is in that polygon only.
        answer = np.full(ncell, -1, dtype=np.int64)
        answer[counts > 0] = -2
        single = np.flatnonzero(counts == 1)
        if single.size:
            poly = self.cand_poly[self.cand_start[single]]
            inside = shapely.contains_properly(self.polygons[poly], boxes[single])
            answer[single[inside]] = poly[inside]
        self.cell_answer = answer

    def assign(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Return, for each point, the index of the polygon holding it (smallest key on shared
        edges), or -1."""
        return self.assign_with_interior(lon, lat)[0]

    def assign_with_interior(
        self, lon: np.ndarray, lat: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return (polygon index or -1, whether the point lies in that polygon's interior and in
        no other polygon) for each point; False marks a point on an edge or vertex."""
        lon = np.asarray(lon, dtype=float)
        lat = np.asarray(lat, dtype=float)
        n = lon.shape[0]
        result = np.full(n, -1, dtype=np.int64)
        interior = np.zeros(n, dtype=bool)
        if n == 0 or self.tree is None:
            return result, interior
        valid = (lon >= self.x0) & (lon <= self.x1) & (lat >= self.y0) & (lat <= self.y1)
        idx = np.flatnonzero(valid)
        cx = np.minimum(((lon[idx] - self.x0) / self.dx).astype(np.int64), self.nx - 1)
        cy = np.minimum(((lat[idx] - self.y0) / self.dy).astype(np.int64), self.ny - 1)
        cell = cy * self.nx + cx
        ans = self.cell_answer[cell]
        result[idx] = np.where(ans >= 0, ans, -1)
        interior[idx] = ans >= 0
        mixed = ans == -2
        if mixed.any():
            pts = idx[mixed]
            cells = cell[mixed]
            counts = self.cand_count[cells]
            pair_pt = np.repeat(np.arange(pts.size), counts)
            starts = np.repeat(self.cand_start[cells], counts)
            offsets = np.arange(pair_pt.size) - np.repeat(np.cumsum(counts) - counts, counts)
            pair_poly = self.cand_poly[starts + offsets]
            hit = shapely.intersects_xy(
                self.polygons[pair_poly], lon[pts[pair_pt]], lat[pts[pair_pt]]
            )
            # Candidates run in key order within each point's block: the first hit wins.
            big = np.iinfo(np.int64).max
            score = np.where(hit, offsets, big)
            block = np.cumsum(counts) - counts
            best = np.minimum.reduceat(score, block)
            found = best != big
            chosen = self.cand_poly[self.cand_start[cells[found]] + best[found]]
            result[pts[found]] = chosen
            alone = np.add.reduceat(hit.astype(np.int64), block)[found] == 1
            got = pts[found]
            interior[got] = alone & shapely.contains_xy(self.polygons[chosen], lon[got], lat[got])
        return result, interior

    def _near_cells(self, reach: float) -> np.ndarray:
        """Return, per cell, whether some polygon lies within ``reach`` degrees of it."""
        cached = self._near_cache.get(reach)
        if cached is None:
            ix, iy = np.meshgrid(np.arange(self.nx), np.arange(self.ny))
            bx0 = self.x0 + ix.ravel() * self.dx - reach
            by0 = self.y0 + iy.ravel() * self.dy - reach
            boxes = shapely.box(bx0, by0, bx0 + self.dx + 2 * reach, by0 + self.dy + 2 * reach)
            assert self.tree is not None
            cell_idx, _ = self.tree.query(boxes)
            cached = np.zeros(self.nx * self.ny, dtype=bool)
            cached[cell_idx] = True
            self._near_cache[reach] = cached
        return cached

    def nearest(
        self, lon: np.ndarray, lat: np.ndarray, tolerance_m: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return (index, distance in metres) of the nearest polygon within ``tolerance_m`` of
        each point; -1 / NaN where none is that close.

        Distances are measured in the local Gauss-Krüger zone (an azimuthal equidistant
        projection outside China) around the points; equal distances go to the smallest key.
        """
        lon = np.asarray(lon, dtype=float)
        lat = np.asarray(lat, dtype=float)
        n = lon.shape[0]
        best = np.full(n, -1, dtype=np.int64)
        dist = np.full(n, np.nan)
        if n == 0 or self.tree is None or tolerance_m <= 0:
            return best, dist
        # A degree radius that surely spans the tolerance: a degree of longitude is the shorter
        # one on the ground, so its span is the larger number. Rounded up so the cache is reused.
        dlon, _ = degree_span(lat, tolerance_m)
        reach = float(np.ceil(np.max(dlon) * 1e6) / 1e6)
        inside = (lon >= self.x0) & (lon <= self.x1) & (lat >= self.y0) & (lat <= self.y1)
        margin = (
            ~inside
            & (lon >= self.x0 - reach)
            & (lon <= self.x1 + reach)
            & (lat >= self.y0 - reach)
            & (lat <= self.y1 + reach)
        )
        cand = np.flatnonzero(inside)
        cx = np.minimum(((lon[cand] - self.x0) / self.dx).astype(np.int64), self.nx - 1)
        cy = np.minimum(((lat[cand] - self.y0) / self.dy).astype(np.int64), self.ny - 1)
        cand = np.concatenate(
            [cand[self._near_cells(reach)[cy * self.nx + cx]], np.flatnonzero(margin)]
        )
        if cand.size == 0:
            return best, dist
        pt_near, poly_idx = self.tree.query(
            shapely.points(lon[cand], lat[cand]), predicate="dwithin", distance=reach
        )
        if pt_near.size == 0:
            return best, dist
        pt_idx = cand[pt_near]
        to_metric, _ = metric_transformers(float(np.mean(lon[cand])), float(np.mean(lat[cand])))

        def project(coords: np.ndarray) -> np.ndarray:
            x, y = to_metric.transform(coords[:, 0], coords[:, 1])
            return np.column_stack([x, y])

        used = np.unique(poly_idx)
        metric = np.empty(len(self.polygons), dtype=object)
        metric[used] = shapely.transform(self.polygons[used], project)
        px, py = to_metric.transform(lon[pt_idx], lat[pt_idx])
        d = shapely.distance(metric[poly_idx], shapely.points(px, py))
        keep = d <= tolerance_m
        pt_idx, poly_idx, d = pt_idx[keep], poly_idx[keep], d[keep]
        if pt_idx.size == 0:
            return best, dist
        order = np.lexsort((self.rank[poly_idx], d, pt_idx))
        pt_sorted = pt_idx[order]
        first = np.ones(pt_sorted.size, dtype=bool)
        first[1:] = pt_sorted[1:] != pt_sorted[:-1]
        best[pt_sorted[first]] = poly_idx[order][first]
        dist[pt_sorted[first]] = d[order][first]
        return best, dist


def nearest_within(
    lon: np.ndarray,
    lat: np.ndarray,
    polygons: Sequence,
    keys: Sequence[str],
    tolerance_m: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (index, distance in metres) of the nearest polygon within ``tolerance_m`` of each
    point; -1 / NaN where none is that close. See ``PolygonIndex.nearest``."""
    return PolygonIndex(polygons, keys).nearest(lon, lat, tolerance_m)
