"""A generated city for scale tests: one street of 10 km x 10 km cut into 4 communities, 100
grids and 10,000 micro-grids of 100 m, with households in rows inside each micro-grid."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely

#: Far from the sample street: the map must open on the city's own place.
CENTRE = (113.30, 23.12)
SIDE_M = 10_000.0
LEVELS = ((1, 10_000.0), (2, 5_000.0), (3, 1_000.0), (4, 100.0))


def to_lonlat(centre: tuple[float, float]):  # type: ignore[no-untyped-def]
    """Metres east and north of the city's south-west corner to lon/lat on a lattice in degrees
    (so that a child's edges lie exactly on its parent's: every vertex is a lattice point)."""
    lon0, lat0 = centre
    dlat = 1.0 / 110_574.0
    dlon = 1.0 / (111_320.0 * np.cos(np.radians(lat0)))
    fine = 100.0 / 4  # metres between lattice points (a quarter of a micro-grid)

    def convert(xy: np.ndarray) -> np.ndarray:
        k = np.round(xy / fine)
        return np.column_stack(
            [
                lon0 - SIDE_M / 2 * dlon + k[:, 0] * fine * dlon,
                lat0 - SIDE_M / 2 * dlat + k[:, 1] * fine * dlat,
            ]
        )

    return convert


def city_grids(centre: tuple[float, float] = CENTRE) -> gpd.GeoDataFrame:
    """The grids of the city (code, name, level, parent_code, geometry), parents first."""
    convert = to_lonlat(centre)
    rows: list[dict] = []
    names = {1: "街道", 2: "社区", 3: "网格", 4: "微网格"}
    codes: dict[tuple[int, int, int], str] = {}
    for level, size in LEVELS:
        n = int(round(SIDE_M / size))
        for i in range(n):
            for j in range(n):
                if level == 1:
                    parent, code = None, "C44"
                else:
                    psize = dict(LEVELS)[level - 1]
                    ratio = int(round(psize / size))
                    parent = codes[(level - 1, i // ratio, j // ratio)]
                    code = f"{parent}{(i % ratio) * ratio + (j % ratio) + 1:03d}"
                codes[(level, i, j)] = code
                x0, y0 = j * size, i * size
                ring = np.array(
                    [[x0, y0], [x0 + size, y0], [x0 + size, y0 + size], [x0, y0 + size], [x0, y0]]
                )
                rows.append(
                    {
                        "code": code,
                        "name": f"城{names[level]}{code[3:] or '一'}",
                        "level": level,
                        "parent_code": parent or "",
                        "geometry": shapely.Polygon(convert(ring)),
                    }
                )
    return gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326")


def city_households(per_micro: int = 4, centre: tuple[float, float] = CENTRE) -> gpd.GeoDataFrame:
    """Households on a lattice, ``per_micro`` in each micro-grid, away from its edges."""
    lon0, lat0 = centre
    side = int(round(np.sqrt(per_micro)))
    step = 100.0 / side
    axis = np.arange(0, SIDE_M, step) + step / 2
    xx, yy = np.meshgrid(axis, axis)
    dlat = 1.0 / 110_574.0
    dlon = 1.0 / (111_320.0 * np.cos(np.radians(lat0)))
    pts = np.column_stack(
        [
            lon0 - SIDE_M / 2 * dlon + xx.ravel() * dlon,
            lat0 - SIDE_M / 2 * dlat + yy.ravel() * dlat,
        ]
    )
    return gpd.GeoDataFrame(
        {"people": np.full(len(pts), 3), "address": [f"楼{k}" for k in range(len(pts))]},
        geometry=gpd.points_from_xy(pts[:, 0], pts[:, 1]),
        crs="EPSG:4326",
    )
