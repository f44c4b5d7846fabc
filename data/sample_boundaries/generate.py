"""Generate the sample street and village (deterministic: run it again, get the same files).

The street (安和街道, about 5 km²) is cut by two main roads (和平路 N–S, 建设大道 E–W) into four
areas; each area holds two communities, each community four grids of 300–500 households, each grid
about six micro-grids of 50–80 households — the urban hierarchy of the field reports. The village
(桃园村 of 青山镇) has 85 households / 256 people in three micro-grids (村民组) of 28–29 households, each
cut into 片区 (patches) of 5–10 households with one party member each.

Every polygon is a union of cells of one jittered lattice, so neighbours share exactly the same
vertices: siblings never overlap, children tile their parent, and there is no gap.

Usage: python data/sample_boundaries/generate.py  (writes the files beside this script)

Why one script of this size: the street, the village and their people are drawn from one seeded
random sequence in a fixed order (what keeps the files the same run after run); cut into
modules, that order would be spread over them.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
from pyproj import Transformer
from shapely import geometry

HERE = Path(__file__).resolve().parent
SEED = 20240521
GK_ZONE = "EPSG:4548"  # CGCS2000 3-degree Gauss-Krüger zone, central meridian 117°E

SURNAMES = list(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛阎段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = list(
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国志红玉兰海燕春梅文凤云晨宇浩然子涵欣怡雨轩博文思远俊杰"
)
COMMUNITIES = [
    "爱辉社区",
    "长江社区",
    "和平社区",
    "建设社区",
    "文昌社区",
    "明珠社区",
    "丰乐社区",
    "锦绣社区",
]
ESTATES = [
    "春晖",
    "锦绣",
    "阳光",
    "翠竹",
    "金桂",
    "玉兰",
    "华府",
    "和园",
    "滨湖",
    "怡景",
    "丽景",
    "馨苑",
]
ORDINAL = ["一", "二", "三", "四", "五", "六", "七", "八", "九", "十"]
TAGS = ["elderly_alone", "disability", "low_income", "left_behind_child", "veteran"]


@dataclass
class Lattice:
    """A jittered lattice of nodes in metres; cell (i, j) spans nodes i..i+1, j..j+1."""

    x0: float
    y0: float
    dx: float
    dy: float
    nx: int
    ny: int
    rng: np.random.Generator
    jitter: float
    nodes: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        ii, jj = np.meshgrid(np.arange(self.nx + 1), np.arange(self.ny + 1), indexing="ij")
        xs = self.x0 + ii * self.dx + self.rng.uniform(-self.jitter, self.jitter, ii.shape)
        ys = self.y0 + jj * self.dy + self.rng.uniform(-self.jitter, self.jitter, jj.shape)
        self.nodes = np.stack([xs, ys], axis=-1).round(2)

    def rect(self, i0: int, j0: int, i1: int, j1: int) -> geometry.Polygon:
        """Return the polygon of cells [i0, i1) × [j0, j1), using every lattice node on its edge."""
        ring = [tuple(self.nodes[i, j0]) for i in range(i0, i1 + 1)]
        ring += [tuple(self.nodes[i1, j]) for j in range(j0 + 1, j1 + 1)]
        ring += [tuple(self.nodes[i, j1]) for i in range(i1 - 1, i0 - 1, -1)]
        ring += [tuple(self.nodes[i0, j]) for j in range(j1 - 1, j0, -1)]
        return geometry.Polygon(ring)

    def line(self, *, i: int | None = None, j: int | None = None, span: tuple[int, int]) -> list:
        a, b = span
        if i is not None:
            return [tuple(self.nodes[i, jj]) for jj in range(a, b + 1)]
        return [tuple(self.nodes[ii, j]) for ii in range(a, b + 1)]

    def point_in_cell(self, i: int, j: int, margin: float = 0.2) -> tuple[float, float]:
        """Return a random point well inside cell (i, j) (bilinear, away from its edges)."""
        u, v = self.rng.uniform(margin, 1 - margin, 2)
        p00, p10 = self.nodes[i, j], self.nodes[i + 1, j]
        p01, p11 = self.nodes[i, j + 1], self.nodes[i + 1, j + 1]
        p = (1 - u) * (1 - v) * p00 + u * (1 - v) * p10 + (1 - u) * v * p01 + u * v * p11
        return float(p[0]), float(p[1])


Rect = tuple[int, int, int, int]


def guillotine(rect: Rect, n: int) -> list[Rect]:
    """Cut a cell rectangle into n near-equal rectangles along lattice lines."""
    i0, j0, i1, j1 = rect
    if n == 1:
        return [rect]
    n1 = n // 2
    w, h = i1 - i0, j1 - j0
    if w >= h:
        cut = i0 + max(1, min(w - 1, round(w * n1 / n)))
        return guillotine((i0, j0, cut, j1), n1) + guillotine((cut, j0, i1, j1), n - n1)
    cut = j0 + max(1, min(h - 1, round(h * n1 / n)))
    return guillotine((i0, j0, i1, cut), n1) + guillotine((i0, cut, i1, j1), n - n1)


def cells(rect: Rect) -> list[tuple[int, int]]:
    i0, j0, i1, j1 = rect
    return [(i, j) for i in range(i0, i1) for j in range(j0, j1)]


class Generator:
    def __init__(self) -> None:
        self.rng = np.random.default_rng(SEED)
        self.to_lonlat = Transformer.from_crs(GK_ZONE, "EPSG:4326", always_xy=True)
        self.grids: list[dict] = []
        self.roads: list[dict] = []
        self.households: list[dict] = []
        self.workers: list[dict] = []
        self.assignments: list[dict] = []
        self.service_points: list[dict] = []
        self.cameras: list[dict] = []
        self.buildings: list[tuple[float, float, str]] = []  # metres, for the basemap
        self.basemap: list[dict] = []
        self._phones: set[str] = set()

    # -- helpers ------------------------------------------------------------------------------
    def lonlat(self, x: float, y: float) -> tuple[float, float]:
        lon, lat = self.to_lonlat.transform(x, y)
        return round(lon, 7), round(lat, 7)

    def geo(self, geom):  # type: ignore[no-untyped-def]
        def fwd(xy: np.ndarray) -> np.ndarray:
            return np.column_stack(self.to_lonlat.transform(xy[:, 0], xy[:, 1]))

        return shapely.transform(geom, fwd)

    def name(self) -> str:
        s = SURNAMES[self.rng.integers(len(SURNAMES))]
        g = "".join(GIVEN[k] for k in self.rng.integers(len(GIVEN), size=self.rng.integers(1, 3)))
        return s + g

    def phone(self) -> str:
        while True:
            p = (
                "1"
                + str(self.rng.choice([33, 35, 37, 38, 39, 58, 59, 77, 80, 86, 89]))
                + "".join(str(d) for d in self.rng.integers(0, 10, 8))
            )
            if p not in self._phones:
                self._phones.add(p)
                return p

    def worker(self, grid_code: str, role: str) -> str:
        code = f"W{len(self.workers) + 1:05d}"
        self.workers.append(
            {"code": code, "name": self.name(), "phone": self.phone(), "on_duty": "true"}
        )
        self.assignments.append({"worker_code": code, "grid_code": grid_code, "role": role})
        return code

    def add_grid(self, code, name, level, parent, poly, kind="comprehensive") -> None:  # type: ignore[no-untyped-def]
        mp = geometry.MultiPolygon([self.geo(poly)])
        self.grids.append(
            {
                "code": code,
                "name": name,
                "level": level,
                "kind": kind,
                "parent_code": parent,
                "geom": mp,
            }
        )

    def add_households(
        self, lat: Lattice, rect_cells, n, grid_code, addr_prefix, estate
    ) -> list[int]:  # type: ignore[no-untyped-def]
        """Place n households in a few buildings inside the given cells; return their indexes."""
        n_buildings = max(1, min(len(rect_cells) * 2, int(math.ceil(n / 18))))
        chosen = [
            rect_cells[k % len(rect_cells)]
            for k in self.rng.permutation(len(rect_cells) * 2)[:n_buildings]
        ]
        start = len(self.households)
        per = np.full(n_buildings, n // n_buildings)
        per[: n % n_buildings] += 1
        for b, (cell, count) in enumerate(zip(chosen, per, strict=True)):
            x, y = lat.point_in_cell(*cell)
            lon, la = self.lonlat(x, y)
            bno = f"{estate}{b + 1}栋"
            self.buildings.append((x, y, bno))
            for k in range(int(count)):
                unit = str(k % 3 + 1)
                room = f"{k // 6 + 1}0{k % 2 + 1}"
                tags = [t for t in TAGS if self.rng.random() < 0.03]
                self.households.append(
                    {
                        "lon": lon,
                        "lat": la,
                        "building": bno,
                        "unit": unit,
                        "room": room,
                        "address": f"{addr_prefix}{bno}{unit}单元{room}室",
                        "people": int(self.rng.choice([1, 2, 2, 3, 3, 3, 4, 4, 5])),
                        "grid_code": grid_code,
                        "head_name": self.name(),
                        "head_phone": self.phone(),
                        "tags": ";".join(tags),
                        "linked_member_code": "",
                    }
                )
        return list(range(start, len(self.households)))

    def link_members(self, idx: list[int], grid_code: str, per_member: tuple[int, int]) -> None:
        """Link households to party members in consecutive runs of even size (10–20 each)."""
        lo, hi = per_member
        members = max(1, math.ceil(len(idx) / hi))
        sizes = [len(idx) // members + (1 if k < len(idx) % members else 0) for k in range(members)]
        start = 0
        for size in sizes:
            member = self.worker(grid_code, "party_member")
            for h in idx[start : start + size]:
                self.households[h]["linked_member_code"] = member
            start += size

    # -- the street ----------------------------------------------------------------------------
    def street(self) -> None:
        lat = Lattice(
            x0=521500.0, y0=3521300.0, dx=100.0, dy=97.5, nx=26, ny=20, rng=self.rng, jitter=14.0
        )
        code = "340188001"
        self.add_grid(code, "安和街道", 1, None, lat.rect(0, 0, 26, 20))
        self.worker(code, "grid_chief")
        road_i, road_j = 14, 9
        self.road("和平路", "main", lat.line(i=road_i, span=(0, 20)))
        self.road("建设大道", "main", lat.line(j=road_j, span=(0, 26)))
        areas = [
            (0, 0, road_i, road_j),
            (road_i, 0, 26, road_j),
            (0, road_j, road_i, 20),
            (road_i, road_j, 26, 20),
        ]
        cno = 0
        dedicated_left = {3: "农贸市场", 6: "科技园"}
        for area in areas:
            for crect in guillotine(area, 2):
                cno += 1
                ccode = f"{code}{cno:03d}"
                cname = COMMUNITIES[cno - 1]
                self.add_grid(ccode, cname, 2, code, lat.rect(*crect))
                self.worker(ccode, "grid_chief")
                self.secondary_roads(lat, crect, cname)
                for gno, grect in enumerate(guillotine(crect, 4), start=1):
                    gcode = f"{ccode}{gno:02d}"
                    dedicated = dedicated_left.get(cno) if gno == 4 else None
                    gname = (
                        f"{cname}{dedicated}专属网格"
                        if dedicated
                        else f"{cname}第{ORDINAL[gno - 1]}网格"
                    )
                    self.add_grid(
                        gcode,
                        gname,
                        3,
                        ccode,
                        lat.rect(*grect),
                        "dedicated" if dedicated else "comprehensive",
                    )
                    self.worker(gcode, "grid_chief")
                    self.worker(gcode, "worker_part")
                    n_micro = 2 if dedicated else 6
                    micro = guillotine(grect, n_micro)
                    counts = [
                        int(self.rng.integers(8, 20))
                        if dedicated
                        else int(self.rng.integers(50, 81))
                        for _ in micro
                    ]
                    n_full = max(1, round(sum(counts) / 100))
                    full = [self.worker(gcode, "worker_full") for _ in range(n_full)]
                    for mno, (mrect, n) in enumerate(zip(micro, counts, strict=True), start=1):
                        mcode = f"{gcode}{mno:02d}"
                        self.add_grid(
                            mcode,
                            f"{gname}第{mno}微网格",
                            4,
                            gcode,
                            lat.rect(*mrect),
                            "dedicated" if dedicated else "comprehensive",
                        )
                        self.worker(mcode, "micro_chief")
                        # the full-time workers of the grid share its micro-grids
                        self.assignments.append(
                            {
                                "worker_code": full[(mno - 1) % n_full],
                                "grid_code": mcode,
                                "role": "worker_full",
                            }
                        )
                        estate = ESTATES[(cno * 7 + gno * 3 + mno) % len(ESTATES)] + (
                            "商户" if dedicated else "小区"
                        )
                        idx = self.add_households(
                            lat, cells(mrect), n, mcode, f"安和街道{cname}", estate
                        )
                        self.link_members(idx, mcode, (10, 20))
        self.street_places(lat, areas)
        self.street_basemap(lat, road_i, road_j)

    def street_basemap(self, lat: Lattice, road_i: int, road_j: int) -> None:
        """Minor roads, a river, a lake and parks of the street for the basemap (no random draws,
        so the other files stay as they were)."""
        for i in range(2, 26, 2):
            if i != road_i:
                self.basemap_feature(
                    "road", "minor", "", geometry.LineString(lat.line(i=i, span=(0, 20)))
                )
        for j in range(2, 20, 3):
            if j != road_j:
                self.basemap_feature(
                    "road", "minor", "", geometry.LineString(lat.line(j=j, span=(0, 26)))
                )
        x0, x1 = lat.nodes[0, 0][0] - 300.0, lat.nodes[26, 0][0] + 300.0
        xs = np.linspace(x0, x1, 40)
        south = lat.nodes[0, 0][1] - 60.0
        bank = south - 25.0 * np.sin(xs / 180.0)
        river = geometry.Polygon(
            list(zip(xs, bank, strict=True)) + list(zip(xs[::-1], bank[::-1] - 70.0, strict=True))
        )
        self.basemap_feature("water", "river", "南淝河", river)
        self.basemap_feature("green", "park", "滨河公园", river.buffer(45.0).difference(river))
        park = geometry.Polygon(
            [
                tuple(lat.nodes[19, 14]),
                tuple(lat.nodes[21, 14]),
                tuple(lat.nodes[21, 16]),
                tuple(lat.nodes[19, 16]),
            ]
        ).buffer(-12.0)
        self.basemap_feature("green", "park", "安和公园", park)
        self.basemap_feature("water", "lake", "镜湖", park.centroid.buffer(35.0, quad_segs=8))

    def basemap_feature(self, kind: str, cls: str, name: str, geom) -> None:  # type: ignore[no-untyped-def]
        self.basemap.append({"kind": kind, "class": cls, "name": name, "geom": self.geo(geom)})

    def secondary_roads(self, lat: Lattice, crect: Rect, cname: str) -> None:
        i0, j0, i1, j1 = crect
        mid_i = (i0 + i1) // 2
        self.road(f"{cname[:2]}路", "secondary", lat.line(i=mid_i, span=(j0, j1)))

    def road(self, name: str, kind: str, pts: list) -> None:
        self.roads.append({"name": name, "kind": kind, "geom": self.geo(geometry.LineString(pts))})

    def street_places(self, lat: Lattice, areas: list[Rect]) -> None:
        x, y = lat.point_in_cell(13, 9, margin=0.45)
        self.service_point("安和街道党群服务中心", "centre", x, y, 1000)
        for cno in range(8):
            ccode = f"340188001{cno + 1:03d}"
            grid = next(g for g in self.grids if g["code"] == f"{ccode}01")
            c = grid["geom"].representative_point()
            self.service_points.append(
                {
                    "name": f"{COMMUNITIES[cno]}党群服务站",
                    "kind": "station",
                    "lon": round(c.x, 7),
                    "lat": round(c.y, 7),
                    "radius_m": 500,
                }
            )
        for k in range(10):
            i, j = int(self.rng.integers(0, 26)), int(self.rng.integers(0, 20))
            x, y = lat.point_in_cell(i, j)
            kind = "civilisation" if k < 3 else "point"
            label = "新时代文明实践站" if kind == "civilisation" else "党群服务点"
            self.service_point(f"安和街道第{k + 1}{label}", kind, x, y, 300)
        kinds = ["fixed", "fixed", "dome", "panoramic"]
        for k in range(320):
            i, j = int(self.rng.integers(0, 26)), int(self.rng.integers(0, 20))
            x, y = lat.point_in_cell(i, j, margin=0.05)
            lon, la = self.lonlat(x, y)
            self.cameras.append(
                {
                    "code": f"CAM-AH-{k + 1:04d}",
                    "name": f"安和街道监控{k + 1:04d}",
                    "kind": kinds[k % 4],
                    "analytics": "true" if k % 5 == 0 else "false",
                    "lon": lon,
                    "lat": la,
                }
            )

    def service_point(self, name: str, kind: str, x: float, y: float, radius: float) -> None:
        lon, la = self.lonlat(x, y)
        self.service_points.append(
            {"name": name, "kind": kind, "lon": lon, "lat": la, "radius_m": radius}
        )

    # -- the village ---------------------------------------------------------------------------
    def village(self) -> None:
        lat = Lattice(
            x0=502000.0, y0=3507600.0, dx=150.0, dy=150.0, nx=9, ny=6, rng=self.rng, jitter=25.0
        )
        town, vcode = "340188101", "340188101201"
        whole = lat.rect(0, 0, 9, 6)
        self.add_grid(town, "青山镇", 1, None, whole)
        self.worker(town, "grid_chief")
        self.add_grid(vcode, "桃园村", 2, town, whole)
        self.worker(vcode, "grid_chief")
        self.road("桃园路", "main", lat.line(j=3, span=(0, 9)))
        groups = guillotine((0, 0, 9, 6), 3)
        counts = [28, 28, 29]
        people_left = 256
        for gno, (grect, n) in enumerate(zip(groups, counts, strict=True), start=1):
            gcode = f"{vcode}{gno:02d}"
            gname = f"桃园村第{ORDINAL[gno - 1]}村民组"
            self.add_grid(gcode, gname, 4, vcode, lat.rect(*grect))
            self.worker(gcode, "micro_chief")
            self.worker(gcode, "worker_part")
            patches = guillotine(grect, 4)
            sizes = [n // 4 + (1 if k < n % 4 else 0) for k in range(4)]
            for pno, (prect, size) in enumerate(zip(patches, sizes, strict=True), start=1):
                pcode = f"{gcode}{pno:02d}"
                self.add_grid(pcode, f"{gname}第{pno}片区", 5, gcode, lat.rect(*prect))
                idx = self.add_households(
                    lat, cells(prect), size, pcode, "青山镇桃园村", f"{gname[3:6]}"
                )
                member = self.worker(pcode, "party_member")
                for h in idx:
                    self.households[h]["linked_member_code"] = member
                    self.households[h]["building"] = self.households[h]["building"].replace(
                        "栋", "号院"
                    )
                    self.households[h]["unit"] = ""
                    self.households[h]["room"] = ""
                    self.households[h]["address"] = (
                        f"青山镇桃园村{gname[3:]}{self.households[h]['building']}"
                    )
        # 85 households, 256 people: rebalance household sizes to the reported total.
        village = [h for h in self.households if h["grid_code"].startswith(vcode)]
        base = [3] * len(village)
        extra = people_left - sum(base)
        for k in range(abs(extra)):
            base[k * 7 % len(village)] += 1 if extra > 0 else -1
        for h, p in zip(village, base, strict=True):
            h["people"] = p
        c = whole.centroid
        self.service_point("桃园村党群服务站", "station", c.x, c.y, 1000)

    # -- output --------------------------------------------------------------------------------
    def write(self) -> None:
        def fc(features):  # type: ignore[no-untyped-def]
            return {"type": "FeatureCollection", "features": features}

        grids = [
            {
                "type": "Feature",
                "properties": {k: v for k, v in g.items() if k != "geom"},
                "geometry": _rounded(g["geom"]),
            }
            for g in self.grids
        ]
        (HERE / "grids.geojson").write_text(
            json.dumps(fc(grids), ensure_ascii=False, indent=0) + "\n", encoding="utf-8"
        )
        roads = [
            {
                "type": "Feature",
                "properties": {"name": r["name"], "kind": r["kind"]},
                "geometry": _rounded(r["geom"]),
            }
            for r in self.roads
        ]
        (HERE / "roads.geojson").write_text(
            json.dumps(fc(roads), ensure_ascii=False, indent=0) + "\n", encoding="utf-8"
        )
        points = [
            {
                "type": "Feature",
                "properties": {k: v for k, v in p.items() if k not in ("lon", "lat")},
                "geometry": {"type": "Point", "coordinates": [p["lon"], p["lat"]]},
            }
            for p in self.service_points
        ]
        (HERE / "service_points.geojson").write_text(
            json.dumps(fc(points), ensure_ascii=False, indent=0) + "\n", encoding="utf-8"
        )
        cams = [
            {
                "type": "Feature",
                "properties": {k: v for k, v in c.items() if k not in ("lon", "lat")},
                "geometry": {"type": "Point", "coordinates": [c["lon"], c["lat"]]},
            }
            for c in self.cameras
        ]
        (HERE / "cameras.geojson").write_text(
            json.dumps(fc(cams), ensure_ascii=False, indent=0) + "\n", encoding="utf-8"
        )
        buildings = [
            {
                "kind": "building",
                "class": "residential",
                "name": name,
                "geom": self.geo(geometry.box(x - 14.0, y - 5.5, x + 14.0, y + 5.5)),
            }
            for x, y, name in self.buildings
        ]
        features = [
            {
                "type": "Feature",
                "properties": {"kind": f["kind"], "class": f["class"], "name": f["name"]},
                "geometry": _rounded(f["geom"]),
            }
            for f in self.basemap + buildings
        ]
        (HERE / "basemap.geojson").write_text(
            json.dumps(fc(features), ensure_ascii=False, indent=0) + "\n", encoding="utf-8"
        )
        _csv(HERE / "households.csv", self.households)
        _csv(HERE / "workers.csv", self.workers)
        _csv(HERE / "assignments.csv", self.assignments)
        _csv(HERE / "departments.csv", DEPARTMENTS)


DEPARTMENTS = [
    {
        "code": "PCS-AH",
        "name": "安和派出所",
        "phone": "0551-65000110",
        "duties": "治安、矛盾纠纷、人口管理",
    },
    {
        "code": "CG-AH",
        "name": "安和城管中队",
        "phone": "0551-65000319",
        "duties": "占道经营、违章搭建、市容环境",
    },
    {
        "code": "SJ-AH",
        "name": "安和市场监管所",
        "phone": "0551-65000315",
        "duties": "食品安全、无证经营、价格投诉",
    },
    {
        "code": "HB-AH",
        "name": "安和生态环境所",
        "phone": "0551-65000369",
        "duties": "噪声、油烟、污水",
    },
    {
        "code": "WY-AH",
        "name": "安和街道物业办",
        "phone": "0551-65000200",
        "duties": "物业纠纷、设施维修",
    },
]


def _rounded(geom) -> dict:  # type: ignore[no-untyped-def]
    """Return GeoJSON with 7-decimal coordinates (about 1 cm), the same for shared vertices."""

    def r(coords):  # type: ignore[no-untyped-def]
        if isinstance(coords[0], (int, float)):
            return [round(coords[0], 7), round(coords[1], 7)]
        return [r(c) for c in coords]

    g = geometry.mapping(geom)
    return {"type": g["type"], "coordinates": r(g["coordinates"])}


def _csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    gen = Generator()
    gen.street()
    gen.village()
    gen.write()
    print(
        f"{len(gen.grids)} grids, {len(gen.households)} households, {len(gen.workers)} workers, "
        f"{len(gen.service_points)} service points, {len(gen.cameras)} cameras, {len(gen.roads)} roads"
    )


if __name__ == "__main__":
    main()
