"""Benchmark service-circle coverage: 1,000,000 households x 2,000 service points.

Prints the time of the full computation in ``gis.coverage`` next to a geopandas baseline (buffer
each point in the local Gauss-Kruger zone, then a spatial join), how far the two agree, and the
time to update coverage after moving, adding or removing one service point.

Run: python bench/bench_coverage.py [--households N] [--points M] [--moves K]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
from pyproj import Geod

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gis.coverage import CoverageModel, geodesic_m  # noqa: E402
from gis.crs import gk_zone_epsg  # noqa: E402
from gis.mclp import candidates_from_households, recommend_sites  # noqa: E402

GEOD = Geod(ellps="WGS84")
CENTRE = (116.40, 39.90)  # a city district; its 3-degree Gauss-Kruger zone has CM 117E


def make_city(n_households: int, n_points: int, seed: int = 42):
    """Households in dense clumps over a 40 x 30 km district, service points among them."""
    rng = np.random.default_rng(seed)
    lon0, lat0 = CENTRE
    n_clumps = 400
    c_lon = lon0 + rng.uniform(-0.23, 0.23, n_clumps)
    c_lat = lat0 + rng.uniform(-0.135, 0.135, n_clumps)
    clump = rng.integers(0, n_clumps, n_households)
    az = rng.uniform(0, 360, n_households)
    dist = np.abs(rng.normal(0, 900, n_households))
    hh_lon, hh_lat, _ = GEOD.fwd(c_lon[clump], c_lat[clump], az, dist)
    pick = rng.integers(0, n_households, n_points)
    p_az = rng.uniform(0, 360, n_points)
    p_dist = rng.uniform(0, 400, n_points)
    sp_lon, sp_lat, _ = GEOD.fwd(hh_lon[pick], hh_lat[pick], p_az, p_dist)
    radius = np.where(rng.random(n_points) < 0.8, 1000.0, 400.0)  # 1 km and five-minute circles
    return np.asarray(hh_lon), np.asarray(hh_lat), np.asarray(sp_lon), np.asarray(sp_lat), radius


def baseline(hh_lon, hh_lat, sp_lon, sp_lat, radius) -> tuple[np.ndarray, dict[str, float]]:
    """Buffer service points in the Gauss-Kruger zone and spatially join the households."""
    times: dict[str, float] = {}
    epsg = gk_zone_epsg(CENTRE[0])
    t = time.perf_counter()
    hh = gpd.GeoDataFrame(geometry=gpd.points_from_xy(hh_lon, hh_lat), crs=4326).to_crs(epsg)
    sp = gpd.GeoDataFrame(
        {"radius": radius}, geometry=gpd.points_from_xy(sp_lon, sp_lat), crs=4326
    ).to_crs(epsg)
    times["project"] = time.perf_counter() - t
    t = time.perf_counter()
    circles = sp.set_geometry(sp.buffer(sp["radius"], quad_segs=16))
    times["buffer"] = time.perf_counter() - t
    t = time.perf_counter()
    joined = gpd.sjoin(hh, circles[["geometry"]], how="inner", predicate="within")
    covered = np.zeros(len(hh), dtype=bool)
    covered[joined.index.unique()] = True
    times["sjoin"] = time.perf_counter() - t
    times["total"] = times["project"] + times["buffer"] + times["sjoin"]
    return covered, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=1_000_000)
    parser.add_argument("--points", type=int, default=2_000)
    parser.add_argument("--moves", type=int, default=50)
    args = parser.parse_args()

    hh_lon, hh_lat, sp_lon, sp_lat, radius = make_city(args.households, args.points)
    print(
        f"{args.households:,} households x {args.points:,} service points "
        f"({int((radius == 1000).sum())} of 1,000 m, {int((radius == 400).sum())} of 400 m)"
    )

    t = time.perf_counter()
    model = CoverageModel(hh_lon, hh_lat, sp_lon, sp_lat, radius)
    full = time.perf_counter() - t
    covered = model.covered.copy()
    print(
        f"gis.coverage full computation:        {full:6.2f} s   "
        f"covered {covered.mean():.2%}, median nearest {np.median(model.nearest_m):.0f} m, "
        f"{model.edge_checks} households settled by Geod at a circle's edge"
    )
    t = time.perf_counter()
    CoverageModel(hh_lon, hh_lat, sp_lon, sp_lat, radius, editable=False)
    print(
        f"  (one-off, without indexing households for later edits: {time.perf_counter() - t:.2f} s)"
    )

    base_cov, times = baseline(hh_lon, hh_lat, sp_lon, sp_lat, radius)
    print(
        f"geopandas buffer + sjoin baseline:    {times['total']:6.2f} s   "
        f"(project {times['project']:.2f} s, buffer {times['buffer']:.2f} s, "
        f"sjoin {times['sjoin']:.2f} s)"
    )
    print(f"speed-up over the baseline:           {times['total'] / full:6.1f} x")
    differ = np.flatnonzero(base_cov != covered)
    if differ.size:
        # How far from an edge are the households the baseline gets wrong?
        m = sp_lon.size
        d = geodesic_m(
            np.repeat(hh_lon[differ], m),
            np.repeat(hh_lat[differ], m),
            np.tile(sp_lon, differ.size),
            np.tile(sp_lat, differ.size),
        ).reshape(differ.size, m)
        gap = np.abs(d - radius[None, :]).min(axis=1)
        print(
            f"baseline disagrees on {differ.size:,} households "
            f"(16-segment-per-quarter polygons, projection scale); their distance to the "
            f"nearest circle edge: median {np.median(gap):.2f} m, max {gap.max():.2f} m"
        )
    else:
        print("baseline agrees on every household")

    del base_cov
    gc.collect()  # the baseline's garbage is not the updates' cost
    rng = np.random.default_rng(1)
    ids = model.service_ids
    move_ms, examined = [], []
    for _ in range(args.moves):
        sp_id = ids[int(rng.integers(len(ids)))]
        lon, lat, _ = model.service_point(sp_id)
        new_lon, new_lat, _ = GEOD.fwd(lon, lat, rng.uniform(0, 360), rng.uniform(50, 800))
        t = time.perf_counter()
        delta = model.move(sp_id, new_lon, new_lat)
        move_ms.append((time.perf_counter() - t) * 1000)
        examined.append(delta.examined)
    t = time.perf_counter()
    model.add("new", *CENTRE, 1000.0)
    add_ms = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    model.remove("new")
    remove_ms = (time.perf_counter() - t) * 1000
    print(
        f"update after moving one point:        median {statistics.median(move_ms):.1f} ms, "
        f"95th percentile {np.percentile(move_ms, 95):.1f} ms, "
        f"max {max(move_ms):.1f} ms over {args.moves} moves "
        f"(median {int(statistics.median(examined)):,} households examined)"
    )
    print(f"add one point: {add_ms:.1f} ms; remove one point: {remove_ms:.1f} ms")

    t = time.perf_counter()
    points = np.array([model.service_point(i) for i in model.service_ids])
    check = CoverageModel(hh_lon, hh_lat, points[:, 0], points[:, 1], points[:, 2])
    again = time.perf_counter() - t
    same = bool((check.covered == model.covered).all())
    print(f"incremental state equals a fresh computation: {same} (fresh run {again:.2f} s)")

    grid = (np.floor((hh_lon - 116.0) / 0.01) * 1000 + np.floor((hh_lat - 39.0) / 0.01)).astype(int)
    t = time.perf_counter()
    summary = model.summary(grid=grid)
    print(f"per-grid figures for {len(summary.grids):,} grids: {time.perf_counter() - t:.2f} s")

    t = time.perf_counter()
    open_mask = ~model.covered
    c_lon, c_lat, _ = candidates_from_households(hh_lon, hh_lat, open_mask, spacing_m=250.0)
    rec = recommend_sites(hh_lon, hh_lat, model.covered, c_lon, c_lat, 10, radius_m=1000.0)
    print(
        f"recommend 10 new 1,000 m sites among {c_lon.size:,} candidates for "
        f"{int(open_mask.sum()):,} uncovered households: {time.perf_counter() - t:.2f} s, "
        f"{rec.total_gain:,.0f} newly covered; {rec.describe()}"
    )


if __name__ == "__main__":
    main()
