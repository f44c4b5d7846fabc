"""Service-circle coverage checked against an independent brute-force geodesic computation.

The reference measures, with its own ``pyproj.Geod``, the distance from every household to every
service point; a household is covered when one distance is at most that point's radius.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Geod
from shapely.geometry.polygon import orient

from gis.coverage import (
    DEFAULT_RADIUS_M,
    CoverageInputError,
    CoverageModel,
    area_coverage,
    compute_coverage,
    summarize,
)
from gis.errors import GisError
from gis.geodesy import geodesic_circle

REF = Geod(ellps="WGS84")
EDGE_BAND_M = 0.05  # "within a few centimetres of the edge"


def geod_matrix(hh_lon, hh_lat, sp_lon, sp_lat) -> np.ndarray:
    """Distances (m) from every household (rows) to every service point (columns)."""
    n, m = len(hh_lon), len(sp_lon)
    if n == 0 or m == 0:
        return np.zeros((n, m))
    _, _, d = REF.inv(
        np.repeat(hh_lon, m), np.repeat(hh_lat, m), np.tile(sp_lon, n), np.tile(sp_lat, n)
    )
    return np.asarray(d).reshape(n, m)


def reference(hh_lon, hh_lat, sp_lon, sp_lat, radius):
    d = geod_matrix(hh_lon, hh_lat, sp_lon, sp_lat)
    radius = np.broadcast_to(np.asarray(radius, dtype=float), (len(sp_lon),))
    if d.shape[1] == 0:
        n = d.shape[0]
        return np.zeros(n, bool), np.full(n, np.inf), np.zeros(n, bool)
    covered = (d <= radius[None, :]).any(axis=1)
    near_edge = (np.abs(d - radius[None, :]) < EDGE_BAND_M).any(axis=1)
    return covered, d.min(axis=1), near_edge


def scatter(rng, lon0, lat0, n, max_m, min_m=0.0):
    """Points spread evenly (by ground area) within ``max_m`` metres of a centre."""
    az = rng.uniform(0, 360, n)
    dist = np.sqrt(rng.uniform((min_m / max_m) ** 2, 1.0, n)) * max_m
    lon, lat, _ = REF.fwd(np.full(n, lon0), np.full(n, lat0), az, dist)
    return np.asarray(lon), np.asarray(lat)


SITES = {
    "beijing_40N": (116.40, 39.90),
    "helsinki_60N": (24.94, 60.17),
    "antimeridian_fiji": (180.0, -16.5),
    "equator_quito": (-78.50, -0.20),
    "antarctic_78S": (166.67, -77.85),
    "arctic_78N": (15.63, 78.22),
}


def make_scene(site: str, seed: int = 7, radii: str = "few"):
    lon0, lat0 = SITES[site]
    rng = np.random.default_rng(seed)
    sp_lon, sp_lat = scatter(rng, lon0, lat0, 40, 5000.0)
    if radii == "few":
        radius = rng.choice([400.0, 1000.0, 1500.0], size=40)
    else:  # every point its own radius
        radius = rng.uniform(300.0, 2000.0, size=40)
    hh_lon, hh_lat = scatter(rng, lon0, lat0, 3000, 6000.0)
    # Households placed on purpose right at circle edges, inside and out.
    deltas = np.array([-0.05, -0.01, -1e-3, -1e-6, 0.0, 1e-6, 1e-3, 0.01, 0.05, 0.2, -0.2])
    picks = rng.choice(40, size=30)
    e_lon, e_lat, _ = REF.fwd(
        np.repeat(sp_lon[picks], deltas.size),
        np.repeat(sp_lat[picks], deltas.size),
        rng.uniform(0, 360, picks.size * deltas.size),
        (radius[picks][:, None] + deltas[None, :]).ravel(),
    )
    # A few far away, beyond the 10 km where distances switch from series to Geod.
    f_lon, f_lat = scatter(rng, lon0, lat0, 40, 60_000.0, min_m=15_000.0)
    hh_lon = np.concatenate([hh_lon, e_lon, f_lon])
    hh_lat = np.concatenate([hh_lat, e_lat, f_lat])
    return hh_lon, hh_lat, sp_lon, sp_lat, radius


@pytest.mark.parametrize("radii", ["few", "many"])
@pytest.mark.parametrize("site", list(SITES))
def test_covered_set_matches_geodesic_reference(site, radii):
    hh_lon, hh_lat, sp_lon, sp_lat, radius = make_scene(site, radii=radii)
    model = compute_coverage(hh_lon, hh_lat, sp_lon, sp_lat, radius)
    covered, nearest, near_edge = reference(hh_lon, hh_lat, sp_lon, sp_lat, radius)

    mismatch = model.covered != covered
    # The issue allows disagreement only within a few centimetres of an edge; count those.
    assert not (mismatch & ~near_edge).any(), np.flatnonzero(mismatch & ~near_edge)
    # The edge band is re-checked with Geod, so there is no disagreement at all.
    assert int(mismatch.sum()) == 0, f"{int(mismatch.sum())} of {int(near_edge.sum())} near-edge"
    assert near_edge.sum() >= 200  # the scene really probes the edge
    assert 0 < covered.sum() < covered.size
    np.testing.assert_allclose(model.nearest_m, nearest, rtol=0, atol=1e-4)


def test_one_km_at_40N_is_not_a_0009_degree_circle():
    lon0, lat0 = 116.4, 40.0
    east, _, _ = REF.fwd(lon0, lat0, 90.0, 990.0)
    _, north, _ = REF.fwd(lon0, lat0, 0.0, 1010.0)
    hh_lon = np.array([east, lon0, lon0 + 0.0089])
    hh_lat = np.array([lat0, north, lat0])
    model = compute_coverage(hh_lon, hh_lat, [lon0], [lat0], 1000.0)
    # 990 m east is 0.0116 degrees of longitude at 40N: covered although farther than 0.009.
    assert east - lon0 > 0.0115
    # 0.0089 degrees of longitude is 760 m, 1010 m north is 0.0091 degrees of latitude.
    assert model.covered.tolist() == [True, False, True]
    np.testing.assert_allclose(model.nearest_m[:2], [990.0, 1010.0], atol=1e-6)


def test_no_service_points_covers_nobody():
    model = compute_coverage([116.4, 116.5], [39.9, 39.8], [], [], [])
    assert not model.covered.any()
    assert np.isinf(model.nearest_m).all()
    assert model.nearest_id == [None, None]
    assert model.summary().totals["nearest_max_m"] is None


@pytest.mark.parametrize(
    "args, where",
    [
        (([116.4], [39.9, 39.8], [116.4], [39.9], 1000.0), "households"),
        (([116.4], [95.0], [116.4], [39.9], 1000.0), "households"),
        (([116.4], [39.9], [116.4], [39.9], -5.0), "service points"),
        (([116.4], [39.9], [116.4, 116.5], [39.9, 39.9], [1000.0]), "service points"),
    ],
)
def test_bad_input_says_what_and_where(args, where):
    with pytest.raises(CoverageInputError) as err:
        compute_coverage(*args)
    assert err.value.http_status == 422
    assert err.value.message.startswith(where)


def test_summary_per_grid_matches_reference():
    hh_lon, hh_lat, sp_lon, sp_lat, radius = make_scene("beijing_40N", seed=3)
    rng = np.random.default_rng(3)
    people = rng.integers(1, 6, hh_lon.size)
    grid = rng.choice(["G01", "G02", "G03", "G04"], size=hh_lon.size)
    model = compute_coverage(hh_lon, hh_lat, sp_lon, sp_lat, radius)
    summary = model.summary(people=people, grid=grid)
    covered, nearest, _ = reference(hh_lon, hh_lat, sp_lon, sp_lat, radius)
    frame = pd.DataFrame({"g": grid, "c": covered, "p": people, "d": nearest})

    t = summary.totals
    assert t["households"] == hh_lon.size
    assert t["households_covered"] == covered.sum()
    assert t["households_uncovered"] == (~covered).sum()
    assert t["people"] == people.sum()
    assert t["people_covered"] == people[covered].sum()
    assert t["people_uncovered"] == people[~covered].sum()
    assert t["households_covered_share"] == pytest.approx(covered.mean())
    assert t["nearest_median_m"] == pytest.approx(np.median(nearest), abs=1e-4)
    assert t["nearest_max_m"] == pytest.approx(nearest.max(), abs=1e-4)
    assert list(summary.grids.index) == ["G01", "G02", "G03", "G04"]
    for g, part in frame.groupby("g"):
        row = summary.grids.loc[g]
        assert row["households"] == len(part)
        assert row["households_covered"] == part["c"].sum()
        assert row["people_uncovered"] == part.loc[~part["c"], "p"].sum()
        assert row["households_covered_share"] == pytest.approx(part["c"].mean())
        assert row["nearest_median_m"] == pytest.approx(part["d"].median(), abs=1e-4)
        assert row["nearest_max_m"] == pytest.approx(part["d"].max(), abs=1e-4)


def test_summarize_without_people_counts_households():
    s = summarize(np.array([True, False, True]), np.array([10.0, 2000.0, 30.0]))
    assert s.totals["people"] == 3
    assert s.totals["households_covered_share"] == pytest.approx(2 / 3)
    assert s.totals["nearest_median_m"] == 30.0


@pytest.mark.parametrize("site", ["beijing_40N", "antimeridian_fiji", "helsinki_60N"])
def test_incremental_edits_equal_a_fresh_computation(site):
    hh_lon, hh_lat, sp_lon, sp_lat, radius = make_scene(site, seed=11)
    ids = [f"sp{i}" for i in range(sp_lon.size)]
    model = CoverageModel(hh_lon, hh_lat, sp_lon, sp_lat, radius, sp_ids=ids)
    present = dict(zip(ids, zip(sp_lon, sp_lat, radius, strict=True), strict=True))
    rng = np.random.default_rng(5)
    lon0, lat0 = SITES[site]
    for step in range(24):
        before = model.covered.copy()
        near_before = model.nearest_m.copy()
        op = step % 4
        target = sorted(present)[rng.integers(len(present))]
        if op == 0:
            x, y = scatter(rng, lon0, lat0, 1, 5000.0)
            delta = model.move(target, float(x[0]), float(y[0]))
            present[target] = (float(x[0]), float(y[0]), present[target][2])
        elif op == 1:
            x, y = scatter(rng, lon0, lat0, 1, 5000.0)
            new_id = f"new{step}"
            delta = model.add(new_id, float(x[0]), float(y[0]), 800.0)
            present[new_id] = (float(x[0]), float(y[0]), 800.0)
        elif op == 2:
            delta = model.remove(target)
            del present[target]
        else:
            delta = model.set_radius(target, 1200.0)
            present[target] = (*present[target][:2], 1200.0)
        p = np.array(list(present.values()))
        covered, nearest, _ = reference(hh_lon, hh_lat, p[:, 0], p[:, 1], p[:, 2])
        assert (model.covered == covered).all(), f"step {step}"
        np.testing.assert_allclose(model.nearest_m, nearest, rtol=0, atol=1e-4)
        assert set(delta.newly_covered) == set(np.flatnonzero(covered & ~before))
        assert set(delta.newly_uncovered) == set(np.flatnonzero(before & ~covered))
        moved = np.flatnonzero(np.abs(nearest - near_before) > 1e-6)
        assert set(moved) <= set(delta.nearest_changed)
        assert sorted(model.service_ids) == sorted(present)


def test_edit_touches_only_nearby_households():
    rng = np.random.default_rng(2)
    hh_lon, hh_lat = scatter(rng, 116.4, 39.9, 60_000, 15_000.0)
    sp_lon, sp_lat = scatter(rng, 116.4, 39.9, 300, 15_000.0)
    model = CoverageModel(hh_lon, hh_lat, sp_lon, sp_lat, DEFAULT_RADIUS_M)
    delta = model.move(7, 116.41, 39.91)
    assert delta.examined < hh_lon.size / 10


def test_unknown_or_duplicate_service_point_ids_are_refused():
    model = CoverageModel([116.4], [39.9], [116.4], [39.9], 1000.0, sp_ids=["a"])
    with pytest.raises(CoverageInputError):
        model.move("b", 116.4, 39.9)
    with pytest.raises(CoverageInputError):
        model.add("a", 116.4, 39.9)
    with pytest.raises(CoverageInputError):
        CoverageModel([116.4], [39.9], [1, 2], [3, 4], 1000.0, sp_ids=["x", "x"])


@pytest.mark.parametrize("site", ["beijing_40N", "helsinki_60N", "antimeridian_fiji"])
@pytest.mark.parametrize("radius", [400.0, 1000.0])
def test_geodesic_circle_vertices_lie_at_the_radius(site, radius):
    lon0, lat0 = SITES[site]
    circle = geodesic_circle(lon0, lat0, radius, segments=64)
    xy = shapely.get_coordinates(circle.exterior)
    _, _, d = REF.inv(np.full(len(xy), lon0), np.full(len(xy), lat0), xy[:, 0], xy[:, 1])
    np.testing.assert_allclose(d, radius, atol=1e-6)
    assert circle.is_valid
    # Longitudes stay continuous next to the antimeridian.
    assert xy[:, 0].max() - xy[:, 0].min() < 1.0
    # The east-west extent in degrees grows with latitude; north-south does not.
    half_width = (xy[:, 0].max() - xy[:, 0].min()) / 2
    expected = math.degrees(radius / (REF.a * math.cos(math.radians(lat0))))
    assert half_width == pytest.approx(expected, rel=0.01)


def test_circle_around_a_pole_is_refused():
    with pytest.raises(GisError):
        geodesic_circle(0.0, 89.995, 1000.0)


def geod_area(geom) -> float:
    if geom.is_empty:
        return 0.0
    parts = getattr(geom, "geoms", [geom])
    return sum(abs(REF.geometry_area_perimeter(orient(p))[0]) for p in parts)


@pytest.mark.parametrize("site", ["beijing_40N", "helsinki_60N", "antimeridian_fiji"])
def test_area_share_matches_geodesic_polygons(site):
    lon0, lat0 = SITES[site]
    rng = np.random.default_rng(4)
    sp_lon, sp_lat = scatter(rng, lon0, lat0, 6, 2500.0)
    sp_lon = (sp_lon - lon0 + 180) % 360 - 180 + lon0  # continuous longitudes for the reference
    dlat = 2000.0 / 111_000
    dlon = dlat / math.cos(math.radians(lat0))
    poly = shapely.box(lon0 - dlon, lat0 - dlat, lon0 + dlon, lat0 + dlat)
    (res,) = area_coverage([poly], sp_lon, sp_lat, 1000.0)

    # Independent: intersect fine geodesic circles with the polygon in lon/lat, Geod areas.
    circles = shapely.union_all(
        [geodesic_circle(x, y, 1000.0, segments=2048) for x, y in zip(sp_lon, sp_lat, strict=True)]
    )
    ref_total = geod_area(poly)
    ref_covered = geod_area(poly.intersection(circles))
    assert res.area_m2 == pytest.approx(ref_total, rel=1e-5)
    assert res.covered_m2 == pytest.approx(ref_covered, rel=1e-4)
    assert res.share == pytest.approx(ref_covered / ref_total, abs=1e-4)
    assert 0.05 < res.share < 0.95
    assert geod_area(res.uncovered) == pytest.approx(ref_total - ref_covered, rel=1e-3)
    # The uncovered part is where no circle is, and uses the input's longitudes.
    assert res.uncovered.intersection(circles).area < 1e-4 * poly.area
    assert poly.buffer(1e-7).contains(res.uncovered)  # within a centimetre


def test_area_fully_covered_and_uncovered():
    poly = shapely.box(116.399, 39.899, 116.401, 39.901)
    full, empty = area_coverage([poly, shapely.box(117, 40, 117.01, 40.01)], [116.4], [39.9], 1000)
    assert full.share == pytest.approx(1.0)
    assert full.uncovered.is_empty
    assert empty.share == 0.0
    assert geod_area(empty.uncovered) == pytest.approx(empty.area_m2, rel=1e-5)
