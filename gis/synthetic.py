"""Make synthetic grids shaped like a Chinese urban grid: roads, compounds, households.

Used by tests and benchmarks: an irregular grid polygon with a concave notch, a road network of
arterials and lanes (some ending inside the grid), and households at building points laid out in
rows of residential buildings inside the blocks, with empty land (a school, a park) in between.
Everything is made in metres around a centre point and returned in lon/lat.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import LineString, Polygon

#: Centre of the synthetic street (a district of Hefei), lon/lat.
DEFAULT_CENTRE = (117.283, 31.861)


@dataclass(frozen=True)
class SyntheticGrid:
    """A synthetic grid polygon, its roads and its households, all in lon/lat."""

    grid: Polygon
    roads: list[LineString]
    households: np.ndarray  # (n, 2) lon/lat, one row per household


def urban_grid(
    households: int,
    *,
    seed: int = 0,
    size_m: float | None = None,
    per_building: tuple[int, int] = (1, 3),
    centre: tuple[float, float] = DEFAULT_CENTRE,
) -> SyntheticGrid:
    """Make a grid with about ``households`` households in rows of buildings between roads.

    ``per_building`` bounds the households at one building point (drawn uniformly).
    ``size_m`` is the grid's width; by default it grows with the household count so the density
    stays that of a city district (about 8,000 households per km²).
    """
    rng = np.random.default_rng(seed)
    if size_m is None:
        size_m = float(max(300.0, np.sqrt(households / 8000.0) * 1000.0))
    w = size_m
    h = size_m * 0.8
    # Irregular outline with a notch on the north side (a river bend, a campus outside the grid).
    j = 0.04 * w
    outline = [
        (0 + rng.uniform(-j, j), 0 + rng.uniform(-j, j)),
        (0.55 * w, rng.uniform(-j, j)),
        (w + rng.uniform(-j, j), rng.uniform(-j, j)),
        (w + rng.uniform(-j, j), h + rng.uniform(-j, j)),
        (0.62 * w, h + rng.uniform(-j, j)),
        (0.58 * w, 0.72 * h),
        (0.40 * w, 0.70 * h),
        (0.36 * w, h + rng.uniform(-j, j)),
        (rng.uniform(-j, j), h + rng.uniform(-j, j)),
    ]
    grid = Polygon(outline)

    roads: list[LineString] = []
    spacing = max(120.0, w / 6.0)
    xs = np.arange(-0.1 * w, 1.1 * w, spacing) + rng.uniform(0, spacing)
    for x in xs:
        tilt = rng.uniform(-0.06, 0.06) * h
        roads.append(LineString([(x, -0.1 * h), (x + tilt, 1.1 * h)]))
    ys = np.arange(-0.1 * h, 1.1 * h, spacing * 0.9) + rng.uniform(0, spacing)
    for y in ys:
        tilt = rng.uniform(-0.06, 0.06) * w
        if rng.random() < 0.3:
            # A lane that ends inside a block.
            roads.append(LineString([(-0.1 * w, y), (rng.uniform(0.3, 0.7) * w, y + tilt / 2)]))
        else:
            roads.append(LineString([(-0.1 * w, y), (1.1 * w, y + tilt)]))

    # Empty land: a park and a school without households.
    empty = shapely.union_all(
        [
            shapely.Point(rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.5) * h).buffer(0.08 * w),
            shapely.box(0.7 * w, 0.6 * h, 0.85 * w, 0.75 * h),
        ]
    )
    road_zone = shapely.union_all([r.buffer(6.0) for r in roads])
    livable = grid.buffer(-3.0).difference(road_zone).difference(empty)

    # Building points on rows (building rows run east-west, entrances every ~12 m).
    lo, hi = per_building
    mean_per = (lo + hi) / 2.0
    needed = int(np.ceil(households / mean_per))
    step = float(np.sqrt(livable.area / max(needed, 1)))
    gx = np.arange(0, w, step)
    gy = np.arange(0, h, step)
    xx, yy = np.meshgrid(gx, gy)
    cand = np.column_stack([xx.ravel(), yy.ravel()])
    cand += rng.normal(0, step * 0.15, cand.shape)
    shapely.prepare(livable)
    cand = cand[shapely.contains_xy(livable, cand[:, 0], cand[:, 1])]
    rng.shuffle(cand)
    pts: list[np.ndarray] = []
    total = 0
    for p in cand:
        if total >= households:
            break
        c = int(min(rng.integers(lo, hi + 1), households - total))
        pts.append(np.repeat(p[None, :], c, axis=0))
        total += c
    # Dense fallback if the rows ran out: households fill random livable points.
    while total < households:
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        if livable.contains(shapely.Point(x, y)):
            c = int(min(rng.integers(lo, hi + 1), households - total))
            pts.append(np.repeat(np.array([[x, y]]), c, axis=0))
            total += c
    metric = np.concatenate(pts)
    order = rng.permutation(len(metric))
    metric = metric[order]

    to_lonlat = metric_to_lonlat(centre, w, h)
    return SyntheticGrid(
        grid=shapely.transform(grid, to_lonlat),
        roads=[shapely.transform(r, to_lonlat) for r in roads],
        households=to_lonlat(metric),
    )


def random_grid(
    rng: np.random.Generator,
    *,
    households: int,
    buildings: int,
    centre: tuple[float, float] = DEFAULT_CENTRE,
    size_m: float = 400.0,
) -> tuple[Polygon, np.ndarray]:
    """Make a random star-shaped grid with households at random building points inside it.

    Households are spread over the building points as evenly as whole numbers allow, then the
    rest at random, so the largest building point holds ``ceil(households / buildings)`` at most
    plus what chance adds.
    """
    n_vertices = int(rng.integers(5, 14))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n_vertices))
    radii = rng.uniform(0.45, 1.0, n_vertices) * size_m / 2
    poly = Polygon(np.column_stack([np.cos(angles) * radii, np.sin(angles) * radii]))
    if not poly.is_valid or poly.area < 0.05 * size_m**2:
        poly = shapely.convex_hull(poly)
    inner = poly.buffer(-1.0)
    minx, miny, maxx, maxy = inner.bounds
    pts = np.zeros((0, 2))
    shapely.prepare(inner)
    while len(pts) < buildings:
        c = rng.uniform((minx, miny), (maxx, maxy), (buildings * 3, 2))
        c = c[shapely.contains_xy(inner, c[:, 0], c[:, 1])]
        pts = np.unique(np.vstack([pts, c]), axis=0)
    pts = pts[rng.permutation(len(pts))[:buildings]]
    base = households // buildings
    counts = np.full(buildings, base)
    counts[rng.choice(buildings, households - base * buildings, replace=False)] += 1
    metric = np.repeat(pts, counts, axis=0)
    to_lonlat = metric_to_lonlat(centre, size_m, size_m)
    return shapely.transform(poly, to_lonlat), to_lonlat(metric)


def metric_to_lonlat(
    centre: tuple[float, float], w: float, h: float
) -> Callable[[np.ndarray], np.ndarray]:
    """Return a function from local metres (origin at the south-west of a w x h box) to lon/lat."""
    lon0, lat0 = centre
    zone = int(round((lon0 - 75.0) / 3.0))
    tr_fwd = Transformer.from_crs("EPSG:4326", f"EPSG:{4534 + zone}", always_xy=True)
    tr_inv = Transformer.from_crs(f"EPSG:{4534 + zone}", "EPSG:4326", always_xy=True)
    x0, y0 = tr_fwd.transform(lon0, lat0)

    def convert(xy: np.ndarray) -> np.ndarray:
        lon, lat = tr_inv.transform(xy[:, 0] + x0 - w / 2, xy[:, 1] + y0 - h / 2)
        return np.column_stack([lon, lat])

    return convert


@dataclass(frozen=True)
class SyntheticCity:
    """A synthetic city district: a grid hierarchy that tiles exactly, households, roads and
    buildings, all in lon/lat.

    ``grids`` rows are (code, name, level, parent_code, polygon), parents before children;
    levels 1 street, 2 community, 3 grid, 4 micro-grid. Siblings share their edges exactly and
    every child is made of the same vertices as its parent's outline, so the hierarchy rules hold.
    """

    grids: list[tuple[str, str, int, str | None, Polygon]]
    households: np.ndarray  # (n, 2) lon/lat
    household_grid: np.ndarray  # (n,) index into the micro-grids (level-4 rows, in order)
    roads: list[tuple[str, LineString]]  # (class, line)
    buildings: list[Polygon]


def city(
    micro_grids: int,
    households: int,
    *,
    seed: int = 0,
    cell_m: float = 60.0,
    centre: tuple[float, float] = DEFAULT_CENTRE,
    buildings: bool = False,
) -> SyntheticCity:
    """Make a city of about ``micro_grids`` micro-grids (a square lattice of jittered cells,
    4×4 micro-grids a grid, 4×4 grids a community, 5×5 communities a street) and ``households``
    households spread over the micro-grids. Roads run along the grid and community edges.
    ``buildings`` adds one building footprint per micro-grid (for a basemap)."""
    rng = np.random.default_rng(seed)
    n = max(4, int(np.ceil(np.sqrt(micro_grids) / 4.0)) * 4)  # cells a side, a multiple of 4
    # Lattice vertices, jittered by up to 15 % of a cell (quads stay convex).
    jitter = rng.uniform(-0.15, 0.15, (n + 1, n + 1, 2)) * cell_m
    jitter[0, :, :] = jitter[-1, :, :] = jitter[:, 0, :] = jitter[:, -1, :] = 0.0
    ii, jj = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    vx = ii * cell_m + jitter[:, :, 0]
    vy = jj * cell_m + jitter[:, :, 1]
    size = n * cell_m
    to_lonlat = metric_to_lonlat(centre, size, size)
    flat = to_lonlat(np.column_stack([vx.ravel(), vy.ravel()]))
    lon = flat[:, 0].reshape(n + 1, n + 1)
    lat = flat[:, 1].reshape(n + 1, n + 1)

    def block(i0: int, j0: int, k: int) -> Polygon:
        """The polygon of the k×k cells from (i0, j0) (fewer at the city's edge), through every
        lattice vertex on its edge."""
        ki, kj = min(k, n - i0), min(k, n - j0)
        ring = (
            [(i, j0) for i in range(i0, i0 + ki)]
            + [(i0 + ki, j) for j in range(j0, j0 + kj)]
            + [(i, j0 + kj) for i in range(i0 + ki, i0, -1)]
            + [(i0, j) for j in range(j0 + kj, j0, -1)]
        )
        return Polygon([(lon[i, j], lat[i, j]) for i, j in ring])

    grids: list[tuple[str, str, int, str | None, Polygon]] = []
    sizes = {1: 80, 2: 16, 3: 4, 4: 1}  # cells a side of a grid of each level
    micro_index: dict[tuple[int, int], int] = {}
    code_of: dict[tuple[int, int, int], str] = {}
    for level in (1, 2, 3, 4):
        k = min(sizes[level], n)
        counters: dict[str | None, int] = {}
        for i0 in range(0, n, k):
            for j0 in range(0, n, k):
                parent = None
                if level > 1:
                    pk = min(sizes[level - 1], n)
                    parent = code_of[(level - 1, i0 // pk * pk, j0 // pk * pk)]
                counters[parent] = counters.get(parent, 0) + 1
                c = counters[parent]
                code = (
                    f"C{c:03d}"
                    if parent is None
                    else f"{parent}{c:03d}"
                    if level < 4
                    else f"{parent}{c:02d}"
                )
                code_of[(level, i0, j0)] = code
                name = {1: "街道", 2: "社区", 3: "网格", 4: "微网格"}[level]
                grids.append((code, f"{code}{name}", level, parent, block(i0, j0, k)))
                if level == 4:
                    micro_index[(i0, j0)] = len(micro_index)
    # Households: points inside their cell (bilinear in a convex quad, kept off the edges).
    cells = np.array(sorted(micro_index, key=micro_index.get))
    pick = rng.integers(0, len(cells), households)
    u = rng.uniform(0.1, 0.9, households)
    v = rng.uniform(0.1, 0.9, households)
    ci, cj = cells[pick, 0], cells[pick, 1]

    def corner(di: int, dj: int) -> tuple[np.ndarray, np.ndarray]:
        return vx[ci + di, cj + dj], vy[ci + di, cj + dj]

    (x00, y00), (x10, y10), (x01, y01), (x11, y11) = (
        corner(0, 0),
        corner(1, 0),
        corner(0, 1),
        corner(1, 1),
    )
    hx = (1 - u) * (1 - v) * x00 + u * (1 - v) * x10 + (1 - u) * v * x01 + u * v * x11
    hy = (1 - u) * (1 - v) * y00 + u * (1 - v) * y10 + (1 - u) * v * y01 + u * v * y11
    points = to_lonlat(np.column_stack([hx, hy]))
    # Roads along grid (minor) and community (primary) edges, street edges (trunk).
    roads: list[tuple[str, LineString]] = []
    for step, cls in ((4, "minor"), (16, "primary"), (80, "trunk")):
        for i in range(0, n + 1, step):
            if cls == "minor" and i % 16 == 0 or cls == "primary" and i % 80 == 0:
                continue
            roads.append((cls, LineString(np.column_stack([lon[i, :], lat[i, :]]))))
            roads.append((cls, LineString(np.column_stack([lon[:, i], lat[:, i]]))))
    footprints: list[Polygon] = []
    if buildings:
        for i0, j0 in cells:
            cx = (vx[i0, j0] + vx[i0 + 1, j0 + 1]) / 2
            cy = (vy[i0, j0] + vy[i0 + 1, j0 + 1]) / 2
            box = np.array(
                [[cx - 15, cy - 6], [cx + 15, cy - 6], [cx + 15, cy + 6], [cx - 15, cy + 6]]
            )
            footprints.append(Polygon(to_lonlat(box)))
    return SyntheticCity(
        grids=grids,
        households=points,
        household_grid=pick,
        roads=roads,
        buildings=footprints,
    )
