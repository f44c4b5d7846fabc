"""Departments' own grids on the unified grid (多网合一).

- **Networks.** A department's grid layer (公安、城管、环保、市场监管 …) is imported as a
  ``network`` with its ``network_grid`` rows (code, name, responsible person, geometry), kept
  apart from the unified hierarchy. A re-import of the same department and name is the
  network's next version: the grids before it get ``valid_to`` (history), the new ones start.
  An import is all or nothing; each bad row is named with the reason in Chinese.
- **Mismatch.** For each departmental grid, the unified grids of one level (网格 by default,
  or 微网格) it crosses, with the geodesic area (m², PostGIS geography on the WGS84 spheroid) and
  the households in the crossing; a crossing smaller than ``sliver_m2`` or than ``sliver_pct`` %
  of the departmental grid is boundary noise (边界误差). A departmental grid **nests cleanly**
  when exactly one crossing is more than noise and its area outside every unified grid of that
  level is noise too. For each unified grid, the departmental grids that split it.
- **Alignment.** A proposal replaces a departmental grid by the union of the unified
  micro-grids it mostly covers (more than half of each); it is within tolerance when no point
  of the boundary moves further than ``tolerance_m`` (Hausdorff distance, local metric CRS).
  Committing it writes the grid's next version.
- **Routing.** A case category may name a network (``case_category.network_id``); the
  departmental grid covering the point then names who handles the case: its linked worker, or
  else the department itself; the micro-grid's owner heads the fallback.

Why one module of this size: import, mismatch, alignment and routing all read the versioned
``network_grid`` rows the same way (the current version, the unified level it is set against,
the noise thresholds above); kept together, those definitions are written once.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely
from geoalchemy2.shape import from_shape, to_shape
from psycopg.rows import namedtuple_row
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.errors import BadParameter, Conflict, ImportRejected, NotFound, ValidationFailed
from app.models import Department, Network, NetworkGrid, Worker
from app.models.network import NETWORK_KINDS
from app.privacy import mask_phone
from app.services import csv_safe, tables
from gis.assign import PolygonIndex
from gis.crs import geodesic_area_m2, parse_crs, to_wgs84
from gis.errors import GisError
from gis.metric import centre_of, to_metric

SLIVER_M2 = 50.0
SLIVER_PCT = 1.0
TOLERANCE_M = 50.0
# Overlap of two grids of one network (m²) tolerated as digitising noise.
OVERLAP_NOISE_M2 = 1.0
# Area (m²) below which a crossing is not a crossing at all (shared edges, float noise).
TOUCH_M2 = 0.01
LEVEL_NAMES = {3: "网格", 4: "微网格"}
WKT_COLUMNS = ("wkt", "geometry", "geom")


# --------------------------------------------------------------------------------- import


def _where(i: int, csv: bool) -> str:
    return f"第 {i + 2} 行" if csv else f"第 {i + 1} 个要素"


def _str(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value).strip()


def _read(path: Path, crs: str | None, mapping: dict[str, str]) -> tuple[pd.DataFrame, list, bool]:
    """Read a layer: geometry for spatial files, a WKT column for CSV (in ``crs``)."""
    if path.suffix.lower() != ".csv":
        frame = tables.read_records(path, crs=crs, mapping=mapping, need_geometry=True)
        return frame, list(frame.geometry.values), False
    frame = tables.read_records(path, crs=crs, mapping=mapping, need_geometry=False)
    column = next((c for c in WKT_COLUMNS if c in frame.columns), None)
    if column is None:
        raise BadParameter(
            "columns",
            f"{path.name}：CSV 需要一列 WKT 面（wkt / geometry）/ a CSV layer needs a wkt column "
            f"(found {', '.join(map(str, frame.columns))})",
        )
    spec = parse_crs(crs)
    geoms: list = []
    problems = []
    for i, value in enumerate(frame[column]):
        try:
            g = shapely.from_wkt(_str(value)) if _str(value) else None
        except shapely.errors.GEOSException:
            problems.append(
                {
                    "where": _where(i, True),
                    "field": column,
                    "reason": f"无法解析的 WKT：'{_str(value)[:40]}'",
                }
            )
            g = None
        if g is not None and spec.epsg not in (4326, 4490):

            def fwd(xy: np.ndarray) -> np.ndarray:
                lon, lat = to_wgs84(xy[:, 0], xy[:, 1], spec, what=path.name)
                return np.column_stack([lon, lat])

            try:
                g = shapely.transform(g, fwd)
            except GisError as exc:
                problems.append(
                    {
                        "where": _where(i, True),
                        "field": column,
                        "reason": f"坐标超出范围：{exc.message}",
                    }
                )
                g = None
        geoms.append(g)
    if problems:
        raise ImportRejected(path.name, problems)
    return frame, geoms, True


def import_network(
    session: Session,
    path: str | Path,
    *,
    department: str,
    name: str,
    kind: str = "other",
    crs: str | None = None,
    mapping: dict[str, str] | None = None,
    street_id: int | None = None,
    within: Any = None,
) -> dict[str, Any]:
    """Import a departmental grid layer as network ``name`` of ``department`` (its code or name).

    Columns: ``code``, ``name``, optional ``person`` (the responsible person), ``phone``,
    ``worker_code`` (a worker of the platform who handles its cases). ``street_id`` is the
    unified grid the network belongs to; ``within`` (a lon/lat geometry, a centre's street)
    refuses grids lying outside it. Returns the network's summary.
    """
    path = Path(path)
    name = (name or "").strip()
    if not name:
        raise BadParameter("name", "请给出网格图层名称 / name is required")
    if kind not in NETWORK_KINDS:
        raise BadParameter(
            "kind", f"未知的专业网格类别 '{kind}'（可用 {', '.join(NETWORK_KINDS)}）"
        )
    dept = session.scalar(
        select(Department).where((Department.code == department) | (Department.name == department))
    )
    if dept is None:
        raise BadParameter("department", f"职能部门 '{department}' 不存在 / unknown department")
    frame, geoms, csv = _read(path, crs, dict(mapping or {}))
    missing = [c for c in ("code", "name") if c not in frame.columns]
    if missing:
        raise BadParameter(
            "columns",
            f"{path.name}：缺少列 {', '.join(missing)}（现有 {', '.join(map(str, frame.columns))}），"
            "可用字段映射指定 / use the field mapping",
        )
    workers = dict(
        session.execute(select(Worker.code, Worker.id).where(Worker.code.is_not(None))).all()
    )
    problems: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    col = {
        c: [_str(v) for v in frame[c]] if c in frame.columns else [""] * len(frame)
        for c in ("code", "name", "person", "phone", "worker_code")
    }
    for i, g in enumerate(geoms):
        where = _where(i, csv)
        code, gname = col["code"][i], col["name"][i]
        reason = None
        if not code or not gname:
            reason = ("code", "编码和名称必填")
        elif len(code) > 40:
            reason = ("code", f"编码 '{code}' 超过 40 个字符")
        elif len(gname) > 120:
            reason = ("name", "名称超过 120 个字符")
        elif len(col["person"][i]) > 60:
            reason = ("person", "责任人超过 60 个字符")
        elif code in seen:
            reason = ("code", f"编码 '{code}' 重复")
        elif g is None or g.is_empty:
            reason = ("geometry", "没有几何图形")
        elif g.geom_type not in ("Polygon", "MultiPolygon"):
            reason = ("geometry", f"{g.geom_type} 不是面（Polygon / MultiPolygon）")
        elif not g.is_valid:
            reason = ("geometry", f"几何图形无效：{shapely.is_valid_reason(g)}")
        elif col["worker_code"][i] and col["worker_code"][i] not in workers:
            reason = ("worker_code", f"人员编码 '{col['worker_code'][i]}' 不存在")
        elif len(col["phone"][i]) > 20:
            reason = ("phone", f"电话 '{col['phone'][i]}' 过长")
        seen.add(code)
        if reason:
            problems.append({"where": where, "field": reason[0], "reason": reason[1], "code": code})
            continue
        if g.geom_type == "Polygon":
            g = shapely.MultiPolygon([g])
        rows.append(
            {
                "where": where,
                "code": code,
                "name": gname,
                "person_name": col["person"][i] or None,
                "person_phone": col["phone"][i] or None,
                "worker_id": workers.get(col["worker_code"][i]) if col["worker_code"][i] else None,
                "geom": g,
            }
        )
    if not rows and not problems:
        problems.append({"where": path.name, "reason": "文件中没有网格"})
    if within is not None:
        for r in rows:
            outside = geodesic_area_m2(r["geom"].difference(within))
            if outside > max(OVERLAP_NOISE_M2, 0.01 * geodesic_area_m2(r["geom"])):
                problems.append(
                    {
                        "where": r["where"],
                        "field": "geometry",
                        "code": r["code"],
                        "reason": f"有 {outside:.0f} m² 在您负责的街道之外",
                    }
                )
    tree = shapely.STRtree([r["geom"] for r in rows])
    left, right = tree.query([r["geom"] for r in rows], predicate="intersects")
    for a, b in zip(left, right, strict=True):
        if a < b:
            overlap = geodesic_area_m2(rows[a]["geom"].intersection(rows[b]["geom"]))
            if overlap > OVERLAP_NOISE_M2:
                problems.append(
                    {
                        "where": rows[b]["where"],
                        "field": "geometry",
                        "code": rows[b]["code"],
                        "reason": f"与 {rows[a]['code']} 重叠 {overlap:.0f} m²",
                    }
                )
    if problems:
        raise ImportRejected(path.name, problems)
    network = session.scalar(
        select(Network)
        .where(Network.department_id == dept.id, Network.name == name)
        .with_for_update()
    )
    now = datetime.now(UTC)
    if network is None:
        network = Network(department_id=dept.id, name=name, kind=kind, grid_id=street_id, version=1)
        session.add(network)
        session.flush()
    else:
        network.version += 1
        network.kind = kind
        network.updated_at = now
        session.execute(
            text(
                "UPDATE network_grid SET valid_to = :now WHERE network_id = :n AND valid_to IS NULL"
            ),
            {"now": now, "n": network.id},
        )
    session.add_all(
        NetworkGrid(
            network_id=network.id,
            code=r["code"],
            name=r["name"],
            person_name=r["person_name"],
            person_phone=r["person_phone"],
            worker_id=r["worker_id"],
            geom=from_shape(r["geom"], srid=4326),
            area_m2=geodesic_area_m2(r["geom"]),
            valid_from=now,
        )
        for r in rows
    )
    session.flush()
    return network_summary(session, network.id) | {"imported": len(rows)}


# --------------------------------------------------------------------------------- reading


def network_summary(session: Session, network_id: int) -> dict[str, Any]:
    row = session.execute(
        text(
            """SELECT n.id, n.name, n.kind, n.version, n.grid_id, n.updated_at,
                      d.id AS department_id, d.code AS department_code, d.name AS department_name,
                      (SELECT count(*) FROM network_grid g
                        WHERE g.network_id = n.id AND g.valid_to IS NULL) AS grids
               FROM network n JOIN department d ON d.id = n.department_id WHERE n.id = :n"""
        ),
        {"n": network_id},
    ).one_or_none()
    if row is None:
        raise NotFound(f"专业网格图层 {network_id} 不存在 / network {network_id} not found")
    return {
        "id": row.id,
        "name": row.name,
        "kind": row.kind,
        "kind_name": NETWORK_KINDS.get(row.kind, row.kind),
        "version": row.version,
        "street_id": row.grid_id,
        "updated_at": row.updated_at.isoformat(),
        "department": {
            "id": row.department_id,
            "code": row.department_code,
            "name": row.department_name,
        },
        "grids": row.grids,
    }


def visible_network_ids(
    session: Session, role: str, department_id: int | None, scope: frozenset[int] | None
) -> list[int]:
    """The networks a caller sees: all (administrator, a city-wide centre), a centre's street's,
    a department's own."""
    if role == "department":
        sql, params = "department_id = :d", {"d": department_id or -1}
    elif scope is None:
        sql, params = "TRUE", {}
    else:
        sql, params = "grid_id = ANY(CAST(:s AS integer[]))", {"s": sorted(scope)}
    return list(session.scalars(text(f"SELECT id FROM network WHERE {sql} ORDER BY id"), params))


def list_networks(
    session: Session,
    ids: list[int],
    *,
    sliver_m2: float = SLIVER_M2,
    sliver_pct: float = SLIVER_PCT,
    level: int = 3,
) -> dict[str, Any]:
    """The networks ``ids`` with their nesting summary, and the summary per department."""
    networks = []
    departments: dict[int, dict[str, Any]] = {}
    for nid in ids:
        item = network_summary(session, nid)
        report = mismatch(session, nid, level=level, sliver_m2=sliver_m2, sliver_pct=sliver_pct)
        item["summary"] = report["summary"]
        networks.append(item)
        d = departments.setdefault(
            item["department"]["id"],
            {"department": item["department"], "networks": 0, "grids": 0, "clean": 0},
        )
        d["networks"] += 1
        d["grids"] += report["summary"]["grids"]
        d["clean"] += report["summary"]["clean"]
    for d in departments.values():
        d["clean_share"] = round(d["clean"] / d["grids"], 4) if d["grids"] else None
    return {"networks": networks, "departments": list(departments.values()), "level": level}


def network_features(
    session: Session, network_id: int, *, personal: bool = False
) -> dict[str, Any]:
    """The current grids of a network as a GeoJSON FeatureCollection (phones masked unless
    ``personal``)."""
    summary = network_summary(session, network_id)
    rows = session.execute(
        text(
            """SELECT g.id, g.code, g.name, g.person_name, g.person_phone, g.worker_id, g.area_m2,
                      g.version, ST_AsGeoJSON(g.geom, 7) AS geojson
               FROM network_grid g WHERE g.network_id = :n AND g.valid_to IS NULL ORDER BY g.code"""
        ),
        {"n": network_id},
    ).all()
    return {
        "type": "FeatureCollection",
        "network": summary,
        "features": [
            {
                "type": "Feature",
                "id": r.id,
                "geometry": json.loads(r.geojson),
                "properties": {
                    "id": r.id,
                    "code": r.code,
                    "name": r.name,
                    "person": r.person_name,
                    "phone": r.person_phone if personal else mask_phone(r.person_phone),
                    "worker_id": r.worker_id,
                    "area_m2": round(r.area_m2, 1),
                    "version": r.version,
                },
            }
            for r in rows
        ],
    }


# --------------------------------------------------------------------------------- mismatch

_CROSSINGS_SQL = text(
    """
    WITH n AS (
        SELECT id, code, name, geom, ST_Area(geom::geography) AS area
        FROM network_grid WHERE network_id = :n AND valid_to IS NULL
    ), x AS (
        SELECT n.id AS nid, u.id AS uid, u.code AS ucode, u.name AS uname,
               ST_Area(u.geom::geography) AS uarea,
               ST_Intersection(n.geom, u.geom) AS part
        FROM n JOIN grid u ON u.valid_to IS NULL AND u.level = :level
                          AND ST_Intersects(n.geom, u.geom)
    )
    SELECT x.nid, x.uid, x.ucode, x.uname, x.uarea, ST_Area(x.part::geography) AS area,
           (SELECT count(*) FROM household h
             WHERE ST_Intersects(h.geom, n.geom) AND ST_Intersects(h.geom, u.geom)) AS households
    FROM x JOIN n ON n.id = x.nid JOIN grid u ON u.id = x.uid
    ORDER BY x.nid, x.ucode
    """
)


def _is_sliver(area: float, whole: float, sliver_m2: float, sliver_pct: float) -> bool:
    return area < sliver_m2 or area < whole * sliver_pct / 100.0


def mismatch(
    session: Session,
    network_id: int,
    *,
    level: int = 3,
    sliver_m2: float = SLIVER_M2,
    sliver_pct: float = SLIVER_PCT,
) -> dict[str, Any]:
    """The mismatch report of a network against the unified grids of ``level`` (see the module)."""
    if level not in LEVEL_NAMES:
        raise BadParameter("level", f"层级 {level} 不可用（3 网格，4 微网格）")
    if sliver_m2 < 0 or not 0 <= sliver_pct <= 100:
        raise BadParameter("sliver_m2", "边界误差阈值须为非负数，百分比在 0–100 之间")
    network = network_summary(session, network_id)
    grids = session.execute(
        text(
            """SELECT id, code, name, person_name, ST_Area(geom::geography) AS area,
                      (SELECT count(*) FROM household h WHERE ST_Intersects(h.geom, g.geom)) AS households
               FROM network_grid g WHERE network_id = :n AND valid_to IS NULL ORDER BY code"""
        ),
        {"n": network_id},
    ).all()
    crossings: dict[int, list[dict[str, Any]]] = {}
    unified: dict[int, dict[str, Any]] = {}
    for r in session.execute(_CROSSINGS_SQL, {"n": network_id, "level": level}):
        if r.area < TOUCH_M2:
            continue
        crossings.setdefault(r.nid, []).append(
            {
                "grid": {"id": r.uid, "code": r.ucode, "name": r.uname},
                "area_m2": float(r.area),
                "households": int(r.households),
                "unified_area_m2": float(r.uarea),
            }
        )
    out_grids = []
    clean = 0
    slivers = 0
    for g in grids:
        items = crossings.get(g.id, [])
        for c in items:
            c["share"] = round(c["area_m2"] / g.area, 6) if g.area else 0.0
            c["sliver"] = _is_sliver(c["area_m2"], g.area, sliver_m2, sliver_pct)
            c["area_m2"] = round(c["area_m2"], 2)
            slivers += c["sliver"]
            if not c["sliver"]:
                u = unified.setdefault(
                    c["grid"]["id"],
                    {
                        "grid": c["grid"],
                        "area_m2": round(c.pop("unified_area_m2"), 2),
                        "pieces": [],
                    },
                )
                u["pieces"].append(
                    {
                        "network_grid": {"id": g.id, "code": g.code, "name": g.name},
                        "area_m2": c["area_m2"],
                        "households": c["households"],
                        "share": round(c["area_m2"] / u["area_m2"], 6) if u["area_m2"] else 0.0,
                    }
                )
            else:
                c.pop("unified_area_m2", None)
        outside = max(0.0, float(g.area) - sum(c["area_m2"] for c in items))
        real = [c for c in items if not c["sliver"]]
        nests = len(real) == 1 and _is_sliver(outside, g.area, sliver_m2, sliver_pct)
        clean += nests
        out_grids.append(
            {
                "id": g.id,
                "code": g.code,
                "name": g.name,
                "person": g.person_name,
                "area_m2": round(float(g.area), 2),
                "households": int(g.households),
                "outside_m2": round(outside, 2),
                "nests": nests,
                "crossings": items,
                "noise": [c["grid"]["code"] for c in items if c["sliver"]],
            }
        )
    split = []
    for u in sorted(unified.values(), key=lambda u: u["grid"]["code"]):
        u["split"] = len(u["pieces"]) > 1
        split.append(u)
    return {
        "network": network,
        "level": level,
        "level_name": LEVEL_NAMES[level],
        "sliver_m2": sliver_m2,
        "sliver_pct": sliver_pct,
        "grids": out_grids,
        "unified": split,
        "summary": {
            "grids": len(out_grids),
            "clean": clean,
            "clean_share": round(clean / len(out_grids), 4) if out_grids else None,
            "noise_crossings": slivers,
            "split_unified": sum(1 for u in split if u["split"]),
        },
    }


EXPORT_COLUMNS = [
    ("department", "部门"),
    ("network", "专业网格图层"),
    ("code", "专业网格编码"),
    ("name", "专业网格名称"),
    ("person", "责任人"),
    ("area_m2", "面积(m²)"),
    ("nests", "是否完整嵌套"),
    ("unified_code", "统一网格编码"),
    ("unified_name", "统一网格名称"),
    ("cross_m2", "交叉面积(m²)"),
    ("share", "占比"),
    ("households", "交叉户数"),
    ("noise", "边界误差"),
]


def mismatch_frame(report: dict[str, Any]) -> pd.DataFrame:
    """One row per crossing (and one per grid crossing nothing), Chinese column names."""
    rows = []
    for g in report["grids"]:
        base = {
            "department": report["network"]["department"]["name"],
            "network": report["network"]["name"],
            "code": g["code"],
            "name": g["name"],
            "person": g["person"] or "",
            "area_m2": g["area_m2"],
            "nests": "是" if g["nests"] else "否",
        }
        for c in g["crossings"] or [None]:
            rows.append(
                base
                | {
                    "unified_code": c["grid"]["code"] if c else "",
                    "unified_name": c["grid"]["name"] if c else "",
                    "cross_m2": c["area_m2"] if c else 0,
                    "share": c["share"] if c else 0,
                    "households": c["households"] if c else 0,
                    "noise": ("是" if c["sliver"] else "否") if c else "",
                }
            )
    frame = pd.DataFrame(rows, columns=[k for k, _ in EXPORT_COLUMNS])
    return frame.rename(columns=dict(EXPORT_COLUMNS))


def mismatch_export(report: dict[str, Any], fmt: str) -> tuple[bytes, str, str]:
    """The report as CSV or XLSX: (bytes, media type, file suffix)."""
    frame = mismatch_frame(report)
    if fmt == "csv":
        text_out = io.StringIO()
        csv_safe.frame_to_csv(frame, text_out, index=False)
        return text_out.getvalue().encode("utf-8-sig"), csv_safe.CSV_TYPE, ".csv"
    if fmt == "xlsx":
        rows = frame.itertuples(index=False)
        return (
            csv_safe.xlsx_bytes(frame.columns, rows, title="多网合一比对"),
            csv_safe.XLSX_TYPE,
            ".xlsx",
        )
    raise BadParameter("format", f"'{fmt}' 不可用（csv 或 xlsx）")


# --------------------------------------------------------------------------------- alignment


def _current(session: Session, network_id: int, grid_id: int, *, lock: bool = False) -> NetworkGrid:
    stmt = select(NetworkGrid).where(
        NetworkGrid.id == grid_id,
        NetworkGrid.network_id == network_id,
        NetworkGrid.valid_to.is_(None),
    )
    row = session.scalar(stmt.with_for_update() if lock else stmt)
    if row is None:
        raise NotFound(f"专业网格 {grid_id} 不存在或已有新版本 / network grid {grid_id} not found")
    return row


def _households_in(session: Session, geom: Any) -> int:
    if geom.is_empty:
        return 0
    return int(
        session.scalar(
            text(
                "SELECT count(*) FROM household WHERE ST_Intersects(geom, ST_GeomFromWKB(:w, 4326))"
            ),
            {"w": shapely.to_wkb(geom)},
        )
    )


def propose_alignment(
    session: Session, network_id: int, grid_id: int, *, tolerance_m: float = TOLERANCE_M
) -> dict[str, Any]:
    """The alignment of a departmental grid to the unified micro-grids it mostly covers."""
    if not 0 < tolerance_m <= 5000:
        raise BadParameter("tolerance_m", "容差须在 0–5000 米之间")
    row = _current(session, network_id, grid_id)
    before = to_shape(row.geom)
    leaves = session.execute(
        text(
            """SELECT u.id, u.code, u.name, ST_AsBinary(u.geom) AS wkb
               FROM grid u
               WHERE u.valid_to IS NULL AND ST_Intersects(u.geom, ST_GeomFromWKB(:w, 4326))
                 AND NOT EXISTS (SELECT 1 FROM grid c WHERE c.parent_id = u.id AND c.valid_to IS NULL)
               ORDER BY u.code"""
        ),
        {"w": shapely.to_wkb(before)},
    ).all()
    taken = []
    for u in leaves:
        shape = shapely.from_wkb(u.wkb)
        area = geodesic_area_m2(shape)
        share = geodesic_area_m2(shape.intersection(before)) / area if area else 0.0
        if share > 0.5:
            taken.append(
                ({"id": u.id, "code": u.code, "name": u.name, "share": round(share, 4)}, shape)
            )
    if not taken:
        raise ValidationFailed(
            f"专业网格 {row.code} 没有大半落在其内的统一微网格，无法对齐 / nothing to align to"
        )
    after = shapely.union_all([s for _, s in taken])
    after = shapely.make_valid(after)
    polys = [p for p in shapely.get_parts(after) if p.geom_type == "Polygon"]
    after = shapely.MultiPolygon(polys)
    centre = centre_of(before, after)
    mb, ma = to_metric(before, centre), to_metric(after, centre)
    distance = float(shapely.hausdorff_distance(mb.boundary, ma.boundary))
    added = after.difference(before)
    removed = before.difference(after)
    return {
        "network_id": network_id,
        "grid": {"id": row.id, "code": row.code, "name": row.name, "version": row.version},
        "tolerance_m": tolerance_m,
        "max_shift_m": round(distance, 2),
        "within_tolerance": distance <= tolerance_m,
        "micro_grids": [t for t, _ in taken],
        "before": {
            "geometry": shapely.geometry.mapping(before),
            "area_m2": round(geodesic_area_m2(before), 2),
        },
        "after": {
            "geometry": shapely.geometry.mapping(after),
            "area_m2": round(geodesic_area_m2(after), 2),
        },
        "moves": {
            "added_m2": round(geodesic_area_m2(added), 2),
            "removed_m2": round(geodesic_area_m2(removed), 2),
            "households_in": _households_in(session, added),
            "households_out": _households_in(session, removed),
        },
        "_after": after,
    }


def commit_alignment(
    session: Session,
    network_id: int,
    grid_id: int,
    *,
    version: int | None,
    tolerance_m: float = TOLERANCE_M,
) -> dict[str, Any]:
    """Write the proposal as the departmental grid's next version (the old one becomes history)."""
    row = _current(session, network_id, grid_id, lock=True)
    if version is not None and version != row.version:
        raise Conflict(
            f"专业网格 {row.code} 已是第 {row.version} 版，您看到的是第 {version} 版 / stale version"
        )
    proposal = propose_alignment(session, network_id, grid_id, tolerance_m=tolerance_m)
    if not proposal["within_tolerance"]:
        raise ValidationFailed(
            f"边界最大移动 {proposal['max_shift_m']:.1f} 米，超过容差 {tolerance_m:.0f} 米 / beyond tolerance"
        )
    after = proposal.pop("_after")
    now = datetime.now(UTC)
    row.valid_to = now
    session.flush()
    new = NetworkGrid(
        network_id=row.network_id,
        code=row.code,
        name=row.name,
        person_name=row.person_name,
        person_phone=row.person_phone,
        worker_id=row.worker_id,
        geom=from_shape(after, srid=4326),
        area_m2=geodesic_area_m2(after),
        version=row.version + 1,
        note=f"对齐统一网格：{', '.join(t['code'] for t in proposal['micro_grids'])}",
        valid_from=now,
    )
    session.add(new)
    session.execute(
        text("UPDATE network SET updated_at = :now WHERE id = :n"), {"now": now, "n": network_id}
    )
    session.flush()
    proposal["committed"] = {"id": new.id, "version": new.version}
    return proposal


def history(session: Session, network_id: int, code: str) -> list[dict[str, Any]]:
    """Every version of one departmental grid, oldest first."""
    rows = session.execute(
        text(
            """SELECT id, version, area_m2, valid_from, valid_to, note FROM network_grid
               WHERE network_id = :n AND code = :c ORDER BY valid_from, id"""
        ),
        {"n": network_id, "c": code},
    ).all()
    return [
        {
            "id": r.id,
            "version": r.version,
            "area_m2": round(r.area_m2, 2),
            "valid_from": r.valid_from.isoformat(),
            "valid_to": r.valid_to.isoformat() if r.valid_to else None,
            "note": r.note,
        }
        for r in rows
    ]


# --------------------------------------------------------------------------------- routing

_ROUTE_SQL = """
SELECT n.id AS network_id, n.name AS network_name, d.id AS department_id, d.name AS department_name,
       d.phone AS department_phone, g.id, g.code, g.name, g.person_name, g.person_phone,
       w.id AS worker_id, w.name AS worker_name, w.phone AS worker_phone, w.on_duty
FROM case_category cc
JOIN network n ON n.id = cc.network_id
JOIN department d ON d.id = n.department_id
JOIN network_grid g ON g.network_id = n.id AND g.valid_to IS NULL
     AND ST_Covers(g.geom, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326))
LEFT JOIN worker w ON w.id = g.worker_id
WHERE (cc.code = %(category)s OR cc.name = %(category)s)
ORDER BY g.code COLLATE "C" LIMIT 1
"""


def _rows(db: Any, sql: str, params: dict[str, Any]) -> list[Any]:
    if isinstance(db, Session):
        return list(db.connection().exec_driver_sql(sql, params).all())
    cur = db.cursor(row_factory=namedtuple_row)
    try:
        cur.execute(sql, params)
        return cur.fetchall()
    finally:
        cur.close()


def route_by_network(
    db: Any,
    lon: float,
    lat: float,
    category: str,
    owner: dict[str, Any] | None,
    fallback: list[dict[str, Any]],
) -> tuple[dict[str, Any] | None, list[dict[str, Any]], dict[str, Any] | None]:
    """When ``category`` names a network and one of its grids covers the point: its person (a
    worker on duty, else the department) owns it, the micro-grid's owner heads the fallback.
    ``db`` is a Session or a DBAPI connection. Returns (owner, fallback, network or None)."""
    found = _rows(db, _ROUTE_SQL, {"lon": lon, "lat": lat, "category": category})
    if not found:
        return owner, fallback, None
    keeper, info = network_keeper(found[0])
    behind = [p for p in ([owner] if owner else []) + fallback if p != keeper]
    return keeper, behind, info


def network_keeper(r: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The owner a network grid row names (its person: a worker on duty, else the department)
    and the ``network`` part of a locate answer."""
    info = {
        "id": r.network_id,
        "name": r.network_name,
        "department": {"id": r.department_id, "name": r.department_name},
        "grid": {"id": r.id, "code": r.code, "name": r.name},
        "person": {"name": r.person_name, "phone": r.person_phone} if r.person_name else None,
    }
    if r.worker_id is not None and r.on_duty:
        keeper = {
            "kind": "worker",
            "worker_id": r.worker_id,
            "name": r.worker_name,
            "role": "network_keeper",
            "role_name": f"{r.department_name}网格责任人",
            "phone": r.worker_phone,
            "grid_id": None,
            "grid_name": r.name,
            "department_id": r.department_id,
        }
    else:
        keeper = {
            "kind": "department",
            "department_id": r.department_id,
            "worker_id": None,
            "name": r.department_name,
            "role": "department",
            "role_name": "职能部门",
            "phone": r.department_phone,
            "person": r.person_name,
        }
    return keeper, info


_BATCH_ROUTE_SQL = text(
    """
    SELECT n.id AS network_id, n.name AS network_name, d.id AS department_id,
           d.name AS department_name, d.phone AS department_phone, g.id, g.code, g.name,
           g.person_name, g.person_phone, w.id AS worker_id, w.name AS worker_name,
           w.phone AS worker_phone, w.on_duty, ST_AsBinary(g.geom) AS wkb
    FROM case_category cc
    JOIN network n ON n.id = cc.network_id
    JOIN department d ON d.id = n.department_id
    JOIN network_grid g ON g.network_id = n.id AND g.valid_to IS NULL
    LEFT JOIN worker w ON w.id = g.worker_id
    WHERE (cc.code = :category OR cc.name = :category)
    ORDER BY g.code COLLATE "C"
    """
)


def batch_network_routes(
    session: Session, lon: np.ndarray, lat: np.ndarray, category: str
) -> tuple[np.ndarray, list[tuple[dict[str, Any], dict[str, Any]]]]:
    """For many WGS84 points (NaN: skipped): the row of the network grid routing each (-1:
    none) and per row its (owner, network info) — the batch form of ``route_by_network``, with
    the same choice of the smallest code where a category's network grids overlap."""
    hit = np.full(lon.shape[0], -1, dtype=np.int64)
    rows = session.execute(_BATCH_ROUTE_SQL, {"category": category}).all()
    ok = np.flatnonzero(np.isfinite(lon) & np.isfinite(lat))
    if not rows or not ok.size:
        return hit, []
    shapes = shapely.from_wkb([bytes(r.wkb) for r in rows])
    index = PolygonIndex(shapes, [f"{i:09d}" for i in range(len(rows))])
    hit[ok] = index.assign(lon[ok], lat[ok])
    return hit, [network_keeper(r) for r in rows]


def set_category_network(session: Session, category: str, network_id: int | None) -> dict[str, Any]:
    """Name the network (or none) that routes a case category."""
    if network_id is not None:
        network_summary(session, network_id)
    row = session.execute(
        text(
            "UPDATE case_category SET network_id = :n WHERE code = :c RETURNING code, name, network_id"
        ),
        {"n": network_id, "c": category},
    ).one_or_none()
    if row is None:
        raise NotFound(f"事件类别 '{category}' 不存在 / category not found")
    return {"code": row.code, "name": row.name, "network_id": row.network_id}


_TILE_SQL = text(
    """
    WITH bounds AS (SELECT ST_TileEnvelope(:z, :x, :y) AS env),
    rows AS (
        SELECT g.id, g.code, g.name, n.id AS network_id, n.name AS network, n.kind,
               d.name AS department,
               ST_AsMVTGeom(ST_Transform(g.geom, 3857), bounds.env, 4096, 64, true) AS geom
        FROM network_grid g
        JOIN network n ON n.id = g.network_id
        JOIN department d ON d.id = n.department_id
        CROSS JOIN bounds
        WHERE g.valid_to IS NULL AND g.network_id = ANY(CAST(:ids AS integer[]))
          AND g.geom && ST_Transform(bounds.env, 4326)
    )
    SELECT ST_AsMVT(rows.*, 'networks', 4096, 'geom') FROM rows WHERE geom IS NOT NULL
    """
)


def network_tile(session: Session, ids: list[int], z: int, x: int, y: int) -> bytes:
    """One vector tile (layer ``networks``) of the current grids of the networks ``ids``: each
    grid's code, name, network, kind and department (the e-map's 多网合一 layer)."""
    if not ids:
        return b""
    data = session.scalar(_TILE_SQL, {"z": z, "x": x, "y": y, "ids": ids})
    return bytes(data or b"")
