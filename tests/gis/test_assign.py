"""Bulk point assignment: the cell index gives exactly what a plain STRtree gives, edges included."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from shapely import STRtree

from gis.assign import (
    CELLS_PER_POLYGON,
    MAX_CELLS,
    PolygonIndex,
    assign_points,
    cells_for,
    nearest_within,
)
from gis.crs import GEOD

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample_boundaries" / "grids.geojson"


@pytest.fixture(scope="module")
def leaves():  # type: ignore[no-untyped-def]
    grids = gpd.read_file(SAMPLE)
    leaf = grids[~grids["code"].isin(grids["parent_code"].dropna())]
    # Shuffled, so nothing depends on the input being in code order.
    leaf = leaf.sample(frac=1.0, random_state=3)
    return list(leaf.geometry.values), list(leaf["code"])


def reference(lon: np.ndarray, lat: np.ndarray, polys: list, keys: list[str]) -> np.ndarray:
    """Brute force: every polygon each point intersects; the smallest key wins."""
    tree = STRtree(polys)
    out = np.full(lon.size, -1)
    pts, polys_hit = tree.query(shapely.points(lon, lat), predicate="intersects")
    for p, q in zip(pts, polys_hit, strict=True):
        if out[p] < 0 or keys[q] < keys[out[p]]:
            out[p] = q
    return out


def test_cell_index_equals_strtree_on_random_points(leaves) -> None:  # type: ignore[no-untyped-def]
    polys, keys = leaves
    x0, y0, x1, y1 = shapely.total_bounds(polys)
    rng = np.random.default_rng(7)
    lon = rng.uniform(x0 - 0.001, x1 + 0.001, 200_000)
    lat = rng.uniform(y0 - 0.001, y1 + 0.001, 200_000)
    index = PolygonIndex(polys, keys)
    got = index.assign(lon, lat)
    assert (got == assign_points(lon, lat, polys, keys)).all()
    assert (got >= 0).sum() > 1000 and (got < 0).sum() > 1000


def test_an_index_sized_by_the_points_answers_crowded_points_as_strtree(leaves) -> None:  # type: ignore[no-untyped-def]
    """An import sizes the index by its points too (``cells_for``): households crowd along
    streets, which are grid edges. Points within a few metres of the edges and on the vertices
    get the same answers from the finer index as from a plain STRtree."""
    polys, keys = leaves
    rng = np.random.default_rng(11)
    xy = np.unique(shapely.get_coordinates(polys), axis=0)
    near = xy[rng.integers(0, len(xy), 150_000)] + rng.normal(0, 3e-5, (150_000, 2))
    points = np.vstack([xy, near])
    lon, lat = points[:, 0], points[:, 1]
    cells = cells_for(len(polys), len(lon))
    assert cells >= len(lon) > CELLS_PER_POLYGON * len(polys)
    index = PolygonIndex(polys, keys, cells=cells)
    assert index.nx * index.ny >= 0.9 * cells
    got = index.assign(lon, lat)
    assert (got == reference(lon, lat, polys, keys)).all()
    assert (got >= 0).sum() > 100_000
    # The polygons decide where there are few points; the cap holds.
    assert cells_for(100_000, 10) == CELLS_PER_POLYGON * 100_000
    assert cells_for(10, 10**12) == MAX_CELLS


def test_every_vertex_goes_to_the_smallest_code(leaves) -> None:  # type: ignore[no-untyped-def]
    polys, keys = leaves
    xy = np.unique(shapely.get_coordinates(polys), axis=0)
    lon, lat = xy[:, 0], xy[:, 1]
    expected = reference(lon, lat, polys, keys)
    assert (expected >= 0).all()  # every vertex lies on its own polygon at least
    index = PolygonIndex(polys, keys)
    got, interior = index.assign_with_interior(lon, lat)
    assert (got == expected).all()
    assert (assign_points(lon, lat, polys, keys) == expected).all()
    assert not interior.any()  # a vertex is never in the interior
    # Shared vertices are common in a coverage, and go the same way every time.
    shared = np.bincount(STRtree(polys).query(shapely.points(lon, lat), "intersects")[0])
    assert (shared > 1).sum() > 100
    assert (index.assign(lon, lat) == got).all()


def test_interior_flag(leaves) -> None:  # type: ignore[no-untyped-def]
    polys, keys = leaves
    inner = shapely.point_on_surface(polys)
    lon, lat = shapely.get_x(inner), shapely.get_y(inner)
    got, interior = PolygonIndex(polys, keys).assign_with_interior(lon, lat)
    assert (got == np.arange(len(polys))).all() and interior.all()


@settings(max_examples=25, deadline=None)
@given(
    seeds=st.lists(
        st.tuples(st.integers(1, 99), st.integers(1, 99)), min_size=4, max_size=30, unique=True
    ),
    cells=st.sampled_from([1, 16, 1024, 20000]),
)
def test_voronoi_coverages(seeds, cells) -> None:  # type: ignore[no-untyped-def]
    """Random coverages with shared edges: probe vertices, edge points and random points."""
    frame = shapely.box(0, 0, 100, 100)
    try:
        parts = shapely.get_parts(
            shapely.voronoi_polygons(shapely.multipoints(np.asarray(seeds, float)), extend_to=frame)
        )
        polys = [p for p in shapely.intersection(parts, frame) if p.area > 0]
    except shapely.errors.GEOSException:
        assume(False)  # a degenerate seed set (all on a line): not a coverage to test
    keys = [f"{i:03d}" for i in np.random.default_rng(len(polys)).permutation(len(polys))]
    xy = shapely.get_coordinates(polys)
    rng = np.random.default_rng(1)
    mids = (xy[:-1] + xy[1:]) / 2
    probe = np.vstack([xy, mids, rng.uniform(-10, 110, (3000, 2)), [[0, 0], [100, 100], [50, 0]]])
    index = PolygonIndex(polys, keys, cells=cells)
    expected = reference(probe[:, 0], probe[:, 1], polys, keys)
    assert (index.assign(probe[:, 0], probe[:, 1]) == expected).all()


def test_nearest_within_metres() -> None:
    square = shapely.box(117.20, 31.80, 117.21, 31.81)
    other = shapely.box(117.22, 31.80, 117.23, 31.81)
    # Points due east of the square's east edge at known distances on the ellipsoid.
    lon, lat, _ = GEOD.fwd([117.21] * 3, [31.805] * 3, [90] * 3, [5.0, 29.0, 31.0])
    best, dist = nearest_within(np.array(lon), np.array(lat), [square, other], ["b", "a"], 30.0)
    assert list(best) == [0, 0, -1]
    assert abs(dist[0] - 5.0) < 0.01 and abs(dist[1] - 29.0) < 0.01 and np.isnan(dist[2])


def test_nearest_tie_goes_to_the_smallest_key() -> None:
    left = shapely.box(117.20, 31.80, 117.21, 31.81)
    right = shapely.box(117.2102, 31.80, 117.22, 31.81)
    mid = (117.21 + 117.2102) / 2
    best, _ = nearest_within(np.array([mid]), np.array([31.805]), [left, right], ["z", "y"], 30.0)
    assert best[0] == 1


def test_empty_inputs() -> None:
    assert assign_points(np.array([]), np.array([]), [], []).size == 0
    index = PolygonIndex([], [])
    assert list(index.assign(np.array([1.0]), np.array([2.0]))) == [-1]


@pytest.mark.parametrize("cells", [16, 400, 5000, None])
def test_holes_concave_parts_and_overlaps(cells) -> None:  # type: ignore[no-untyped-def]
    """Rows that cross a polygon four times (holes, a U shape, two parts), a polygon sitting in
    another's hole, and two overlapping polygons: the cell index still answers as GEOS does."""
    ring = shapely.Polygon([(0, 0), (10, 0), (10, 10), (0, 10)], [[(3, 3), (7, 3), (7, 7), (3, 7)]])
    island = shapely.box(4, 4, 6, 6)
    u_shape = shapely.Polygon(
        [(10, 0), (16, 0), (16, 9), (14, 9), (14, 2), (12, 2), (12, 9), (10, 9)]
    )
    parts = shapely.MultiPolygon([shapely.box(0, 11, 4, 14), shapely.box(6, 11, 10, 14)])
    over_a = shapely.box(11, 11, 15, 15)
    over_b = shapely.box(13, 12, 17, 16)
    polys = [ring, island, u_shape, parts, over_a, over_b]
    keys = ["e", "b", "d", "a", "f", "c"]
    xy = shapely.get_coordinates(polys)
    rng = np.random.default_rng(5)
    probe = np.vstack([xy, (xy[:-1] + xy[1:]) / 2, rng.uniform(-1, 18, (20_000, 2))])
    lon, lat = probe[:, 0], probe[:, 1]
    index = PolygonIndex(polys, keys, cells=cells)
    got, interior = index.assign_with_interior(lon, lat)
    expected = reference(lon, lat, polys, keys)
    assert (got == expected).all()
    hits = np.bincount(
        STRtree(polys).query(shapely.points(lon, lat), "intersects")[0], None, lon.size
    )
    inner = np.zeros(lon.size, dtype=bool)
    placed = np.flatnonzero(expected >= 0)
    arr = np.asarray(polys, dtype=object)
    inner[placed] = (hits[placed] == 1) & shapely.contains_xy(
        arr[expected[placed]], lon[placed], lat[placed]
    )
    assert (interior == inner).all()
    assert (got == 1).sum() > 100 and (got == 4).sum() > 100 and (got == 5).sum() > 100
