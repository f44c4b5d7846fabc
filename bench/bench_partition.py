"""Benchmark the grid partitioner against k-means + Voronoi and GerryChain's recursive_tree_part.

Run: python bench/bench_partition.py [--gerrychain-timeout SECONDS] [--skip-large]

Prints, per method and case: seconds, the largest deviation from the mean household count, the
coefficient of variation, the mean Polsby-Popper compactness, and how many parts are one polygon.
Targets (issue 7): 10,000 households into 20 parts under 1 s; 100,000 into 200 under 5 s.
GerryChain runs on the 10,000 case only, in a child process stopped after the timeout.
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np
import shapely
from pyproj import Transformer
from scipy.cluster.vq import kmeans2
from scipy.spatial import Delaunay

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gis.partition import partition_grid  # noqa: E402
from gis.synthetic import urban_grid  # noqa: E402

# The synthetic street lies near 117.3E: CGCS2000 3-degree Gauss-Krueger CM 117E.
TO_METRIC = Transformer.from_crs("EPSG:4326", "EPSG:4548", always_xy=True)


def metric(xy: np.ndarray) -> np.ndarray:
    x, y = TO_METRIC.transform(xy[:, 0], xy[:, 1])
    return np.column_stack([x, y])


def figures(counts: np.ndarray, geoms: list, seconds: float) -> dict:
    mean = counts.sum() / len(counts)
    geoms_m = [shapely.transform(g, metric) for g in geoms]
    area = shapely.area(geoms_m)
    perim = shapely.length(geoms_m)
    pp = 4 * np.pi * area / np.maximum(perim, 1e-9) ** 2
    single = sum(1 for g in geoms_m if g.geom_type == "Polygon")
    return {
        "seconds": seconds,
        "max_dev": float(np.abs(counts - mean).max() / mean),
        "cv": float(counts.std() / mean),
        "pp": float(pp.mean()),
        "one_polygon": f"{single}/{len(counts)}",
        "min": int(counts.min()),
        "max": int(counts.max()),
    }


def run_ours(case, k: int, roads: bool, seed: int = 0) -> dict:
    t = time.perf_counter()
    p = partition_grid(
        case.grid, case.households, k=k, roads=case.roads if roads else None, seed=seed
    )
    seconds = time.perf_counter() - t
    r = p.report
    out = figures(np.array(r.households_per_part), [x.geometry for x in p.parts], seconds)
    out["tiling"] = r.exact_tiling
    out["road_share"] = r.road_boundary_share
    return out


def run_kmeans(case, k: int, seed: int = 0) -> dict:
    t = time.perf_counter()
    xy = metric(case.households)
    centres, labels = kmeans2(xy, k, seed=seed, minit="++")
    grid_m = shapely.transform(case.grid, metric)
    minx, miny, maxx, maxy = grid_m.bounds
    cells = shapely.get_parts(
        shapely.voronoi_polygons(
            shapely.multipoints(centres),
            extend_to=shapely.box(minx - 1e3, miny - 1e3, maxx + 1e3, maxy + 1e3),
            ordered=True,
        )
    )
    parts_m = shapely.intersection(cells, grid_m)
    seconds = time.perf_counter() - t
    to_ll = Transformer.from_crs("EPSG:4548", "EPSG:4326", always_xy=True)
    parts = [
        shapely.transform(g, lambda c: np.column_stack(to_ll.transform(c[:, 0], c[:, 1])))
        for g in parts_m
    ]
    # Households follow the cell that contains them (their nearest centre).
    counts = np.bincount(labels, minlength=k)
    return figures(counts, parts, seconds)


def _gerrychain_worker(pts: np.ndarray, pop: np.ndarray, k: int, seed: int, out) -> None:
    import networkx as nx
    from gerrychain import Graph
    from gerrychain.partition.initial_partition_generators import recursive_tree_part

    t = time.perf_counter()
    tri = Delaunay(pts)
    a = tri.simplices
    edges = np.concatenate([a[:, [0, 1]], a[:, [1, 2]], a[:, [0, 2]]])
    edges = np.unique(np.sort(edges, axis=1), axis=0)
    nxg = nx.Graph()
    nxg.add_nodes_from((i, {"population": int(p)}) for i, p in enumerate(pop))
    nxg.add_edges_from(edges.tolist())
    graph = Graph.from_networkx(nxg)
    assignment = recursive_tree_part(
        graph, range(k), pop_target=pop.sum() / k, pop_col="population", epsilon=0.05, rng=seed
    )
    out.put((time.perf_counter() - t, [assignment[i] for i in range(len(pop))]))


def run_gerrychain(case, k: int, timeout: float, seed: int = 0) -> dict | None:
    if importlib.util.find_spec("gerrychain") is None:
        print("  gerrychain is not installed (pip install '.[test]'); its baseline is skipped")
        return None
    xy = metric(case.households)
    pts, building, pop = np.unique(xy, axis=0, return_inverse=True, return_counts=True)
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    proc = ctx.Process(target=_gerrychain_worker, args=(pts, pop, k, seed, q))
    proc.start()
    try:
        seconds, labels = q.get(timeout=timeout)
    except Exception:
        proc.terminate()
        proc.join()
        return None
    proc.join()
    labels = np.asarray(labels)
    # Parts as unions of the building points' Voronoi cells clipped to the grid.
    grid_m = shapely.transform(case.grid, metric)
    minx, miny, maxx, maxy = grid_m.bounds
    cells = shapely.get_parts(
        shapely.voronoi_polygons(
            shapely.multipoints(pts),
            extend_to=shapely.box(minx - 1e3, miny - 1e3, maxx + 1e3, maxy + 1e3),
            ordered=True,
        )
    )
    cells = shapely.intersection(cells, grid_m)
    to_ll = Transformer.from_crs("EPSG:4548", "EPSG:4326", always_xy=True)
    parts = []
    for p in range(k):
        g = shapely.union_all(cells[labels == p])
        parts.append(
            shapely.transform(g, lambda c: np.column_stack(to_ll.transform(c[:, 0], c[:, 1])))
        )
    counts = np.bincount(labels, weights=pop, minlength=k).astype(int)
    return figures(counts, parts, seconds)


def show(name: str, f: dict | None, note: str = "") -> None:
    if f is None:
        print(f"  {name:<28} {note}")
        return
    extra = ""
    if "tiling" in f:
        extra = f"  exact tiling {f['tiling']}"
        if f.get("road_share") is not None:
            extra += f"  boundary on roads {f['road_share']:.0%}"
    print(
        f"  {name:<28} {f['seconds']:7.2f} s  max dev {f['max_dev']:6.1%}  CV {f['cv']:6.2%}"
        f"  households {f['min']}-{f['max']}  PP {f['pp']:.2f}"
        f"  one polygon {f['one_polygon']}{extra}{note}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gerrychain-timeout", type=float, default=180.0)
    ap.add_argument("--skip-large", action="store_true", help="skip the 100,000 case")
    args = ap.parse_args()

    cases = [(10_000, 20, 1)] + ([] if args.skip_large else [(100_000, 200, 2)])
    for households, k, seed in cases:
        case = urban_grid(households, seed=seed, per_building=(1, 3))
        buildings = len(np.unique(case.households, axis=0))
        target = 1.0 if households == 10_000 else 5.0
        print(
            f"\n{households:,} households at {buildings:,} building points into {k} parts "
            f"(target under {target:g} s)"
        )
        # Warm the imports and caches so the first timing is not the loader's.
        if households == 10_000:
            partition_grid(case.grid, case.households[:500], k=2)
        show("partition_grid, no roads", run_ours(case, k, roads=False))
        show("partition_grid, with roads", run_ours(case, k, roads=True))
        show("k-means + Voronoi", run_kmeans(case, k))
        if households == 10_000:
            f = run_gerrychain(case, k, args.gerrychain_timeout)
            show(
                "gerrychain recursive_tree_part",
                f,
                note=f"stopped after {args.gerrychain_timeout:g} s without an answer"
                if f is None
                else "",
            )


if __name__ == "__main__":
    main()
