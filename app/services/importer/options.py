"""Real data as it comes: value mappings, buildings with a household count, points outside
every leaf grid, columns no field takes, and a dry run that reports without writing.

``run_import`` wraps ``import_file``'s loaders and answers a report instead of a bare count:

- **Columns not used.** Every column of the file that no field of the kind takes is listed in
  ``unused_columns`` (and the CLI prints it as a warning): nothing is dropped silently.
- **Value mapping.** ``values`` ({field: {value in the file: value of the platform}}) rewrites
  values before the checks; a field with a fixed vocabulary (service-point and camera kinds,
  grid kinds, assignment roles) is then checked once per distinct value, and the refusal lists
  each value no word of the vocabulary matches with the number of rows carrying it.
- **Buildings (楼栋).** A households file may give one row per building with ``households``
  (the count), and ``units`` (单元), ``floors`` (层) and ``rooms`` (rooms per floor) when known;
  without ``households`` the count is units × floors × rooms. Such a row becomes that many
  household rows at the building's point, numbered unit by unit and floor by floor (unit ``1``,
  room ``101``, ``102`` … then ``201`` …); ``people`` on a building row is the building's total,
  spread evenly (one person per household when absent). A building row cannot carry a head's
  name, phone, linked member or tags (they belong to one household).
- **Points outside every leaf grid.** ``outside`` = ``refuse`` (the default: the whole file is
  refused, naming each point), ``lowest`` (kept in the lowest current grid that covers the
  point — a community or a street — and listed in ``placed``), or ``hold`` (kept aside in the
  ``import_held`` list with the reason, listed in ``held``, for data still being cleaned).
  A point no grid covers at all is refused under ``lowest`` and held under ``hold``.
- **Dry run.** ``run_import`` writes inside the caller's transaction; the caller rolls it back
  for a dry run (the CLI's ``--dry-run``, the API's ``dry_run``). The report then says what
  would be created, placed, held and refused; a refusal in a dry run is part of the report.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.errors import BadParameter, ImportRejected
from app.models.grid import GRID_KINDS
from app.models.people import ROLES
from app.models.places import CAMERA_KINDS, SERVICE_POINT_KINDS
from app.services import tables
from app.services.importer import load
from app.services.importer.common import BASEMAP_KIND, KINDS, Progress, no_progress, row_where
from app.services.importer.points import leaf_grids
from gis.assign import assign_many

OUTSIDE_CHOICES = ("refuse", "lowest", "hold")

# The columns each kind takes (besides its geometry and lon/lat).
KNOWN_COLUMNS: dict[str, frozenset[str]] = {
    "departments": frozenset({"code", "name", "phone", "duties"}),
    "grids": frozenset({"code", "name", "level", "parent_code", "kind"}),
    "workers": frozenset({"code", "name", "phone", "on_duty"}),
    "assignments": frozenset({"worker_code", "grid_code", "role"}),
    "households": frozenset(
        {
            "building",
            "unit",
            "room",
            "address",
            "people",
            "linked_member_code",
            "tags",
            "head_name",
            "head_phone",
            "grid_code",
            "households",
            "units",
            "floors",
            "rooms",
        }
    ),
    "service_points": frozenset({"name", "kind", "radius_m", "status", "grid_code"}),
    "cameras": frozenset({"code", "name", "kind", "analytics", "grid_code"}),
    BASEMAP_KIND: frozenset({"kind", "class", "name", "min_zoom"}),
}
GEOMETRY_COLUMNS = frozenset({"geometry", "lon", "lat", "x", "y", "wkt"})

# Fields with a fixed vocabulary, checked once per distinct value after the value mapping.
VOCABULARIES: dict[tuple[str, str], tuple[str, ...]] = {
    ("service_points", "kind"): tuple(SERVICE_POINT_KINDS),
    ("cameras", "kind"): tuple(CAMERA_KINDS),
    ("grids", "kind"): tuple(GRID_KINDS),
    ("assignments", "role"): tuple(ROLES),
}

BUILDING_COLUMNS = ("households", "units", "floors", "rooms")
# Fields of one household that a building row of several cannot carry.
ONE_HOUSEHOLD_FIELDS = ("head_name", "head_phone", "linked_member_code", "tags")
MAX_HOUSEHOLDS_PER_BUILDING = 2000
PLACEABLE_KINDS = ("households", "cameras")


@dataclass(frozen=True)
class ImportOptions:
    """How to take a file as it comes (see the module's docstring)."""

    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    outside: str = "refuse"
    dry_run: bool = False

    def __post_init__(self) -> None:
        if self.outside not in OUTSIDE_CHOICES:
            raise BadParameter(
                "outside",
                f"须为 {'、'.join(OUTSIDE_CHOICES)} 之一 / '{self.outside}' is not one of "
                f"{', '.join(OUTSIDE_CHOICES)}",
            )


def parse_value_map(items: list[str] | tuple[str, ...] | None) -> dict[str, dict[str, str]]:
    """Parse ``["kind=toilets:other,library:centre", …]`` into {field: {from: to}}."""
    out: dict[str, dict[str, str]] = {}
    for item in items or ():
        name, sep, pairs = item.partition("=")
        if not sep or not name.strip() or not pairs.strip():
            raise BadParameter(
                "map_value",
                f"'{item}' 应写作 字段=原值:新值,原值:新值 / is not of the form "
                "field=from:to,from:to",
            )
        target = out.setdefault(name.strip(), {})
        for pair in pairs.split(","):
            src, sep2, dst = pair.partition(":")
            if not sep2 or not src.strip():
                raise BadParameter(
                    "map_value",
                    f"'{pair}' 应写作 原值:新值 / is not of the form from:to (in '{item}')",
                )
            target[src.strip()] = dst.strip()
    return out


def read_mapping_file(data: bytes, name: str) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """Read a mapping file (JSON, or YAML for .yaml/.yml): ``{"columns": {field: column},
    "values": {field: {from: to}}}``; a file with neither key is taken as the values alone.
    Returns (columns, values)."""
    try:
        if Path(name).suffix.lower() in (".yaml", ".yml"):
            import yaml

            doc = yaml.safe_load(data.decode("utf-8-sig"))
        else:
            doc = json.loads(data.decode("utf-8-sig"))
    except Exception as exc:  # a YAML or JSON syntax error, or bytes that are not UTF-8
        raise BadParameter("mapping", f"映射文件 {name} 无法读取 / cannot be read ({exc})") from exc
    if not isinstance(doc, dict):
        raise BadParameter("mapping", f"映射文件 {name} 须为对象 / must be an object")
    columns = doc.get("columns", {}) if ("columns" in doc or "values" in doc) else {}
    values = doc.get("values", {}) if ("columns" in doc or "values" in doc) else doc
    if not isinstance(columns, dict) or not all(isinstance(v, str) for v in columns.values()):
        raise BadParameter(
            "mapping", f"{name}: 'columns' 须为 字段: 列名 / must map field to column"
        )
    if not isinstance(values, dict) or not all(isinstance(v, dict) for v in values.values()):
        raise BadParameter(
            "mapping",
            f"{name}: 'values' 须为 字段: {{原值: 新值}} / must map field to {{from: to}}",
        )
    return (
        {str(k): str(v) for k, v in columns.items()},
        {str(f): {str(a): str(b) for a, b in m.items()} for f, m in values.items()},
    )


def unused_columns(kind: str, frame: pd.DataFrame) -> list[str]:
    """The file's columns that no field of ``kind`` takes."""
    known = KNOWN_COLUMNS.get(kind, frozenset()) | GEOMETRY_COLUMNS
    return [str(c) for c in frame.columns if str(c) not in known]


def apply_value_map(
    frame: pd.DataFrame, values: Mapping[str, Mapping[str, str]], source: str
) -> dict[str, dict[str, int]]:
    """Rewrite the values of the mapped fields in place; return {field: {from: rows}}."""
    changed: dict[str, dict[str, int]] = {}
    for name, table in values.items():
        if name not in frame.columns:
            raise BadParameter(
                "map_value",
                f"{source}: 没有字段 {name} 可映射 / no column '{name}' to map values of "
                f"(found {', '.join(map(str, frame.columns))})",
            )
        col = frame[name].map(lambda v: "" if v is None else str(v).strip())
        hits = col[col.isin(list(table))].value_counts()
        changed[name] = {str(k): int(v) for k, v in hits.items()}
        frame[name] = col.map(lambda v, t=table: t.get(v, v))
    return changed


def check_vocabularies(kind: str, frame: pd.DataFrame, source: str) -> None:
    """Refuse once per distinct value outside a field's vocabulary, with its row count."""
    problems = []
    for (k, name), words in VOCABULARIES.items():
        if k != kind or name not in frame.columns:
            continue
        col = frame[name].map(lambda v: "" if v is None else str(v).strip())
        if kind == "grids" and name == "kind":
            col = col[col != ""]  # an empty grid kind is the default (comprehensive)
        unknown = col[~col.isin(words)].value_counts()
        for value, count in unknown.items():
            problems.append(
                {
                    "where": f"{count} 行 / {count} row(s)",
                    "field": name,
                    "value": str(value),
                    "count": int(count),
                    "reason": f"{name} '{value}' 未映射（{count} 行）/ is not one of "
                    f"{', '.join(words)} ({count} rows): map it with "
                    f"--map-value {name}={value}:<{'|'.join(words)}>",
                }
            )
    if problems:
        raise ImportRejected(source, problems)


def _count_col(frame: pd.DataFrame, name: str) -> pd.Series:
    if name not in frame.columns:
        return pd.Series(np.full(len(frame), np.nan), index=frame.index)
    raw = frame[name].map(lambda v: "" if v is None else str(v).strip())
    return pd.to_numeric(raw.where(raw != "", None), errors="coerce").where(raw != "", np.nan)


def expand_buildings(
    frame: gpd.GeoDataFrame, source: str
) -> tuple[gpd.GeoDataFrame, int, np.ndarray]:
    """Turn each building row (``households`` or units × floors × rooms) into that many
    household rows; return the new frame, the number of building rows expanded and, for each
    new row, the file's row it came from."""
    present = [c for c in BUILDING_COLUMNS if c in frame.columns]
    if not present:
        return frame, 0, np.arange(len(frame))
    cols = {c: _count_col(frame, c) for c in BUILDING_COLUMNS}
    problems: list[dict[str, Any]] = []
    for c in present:
        raw = frame[c].map(lambda v: "" if v is None else str(v).strip())
        v = cols[c]
        bad = (raw != "") & ~(v.notna() & (v == v.round()) & (v >= 1))
        for i in np.flatnonzero(bad.to_numpy())[:1000]:
            problems.append(
                {
                    "where": row_where(frame, int(i)),
                    "field": c,
                    "reason": f"{c} '{raw.iat[i]}' 须为正整数 / is not a whole number ≥ 1",
                }
            )
    product = cols["units"].fillna(1) * cols["floors"].fillna(1) * cols["rooms"].fillna(1)
    has_layout = cols["units"].notna() | cols["floors"].notna() | cols["rooms"].notna()
    count = cols["households"].where(cols["households"].notna(), product.where(has_layout, 1))
    count = count.fillna(1)
    too_many = count > MAX_HOUSEHOLDS_PER_BUILDING
    for i in np.flatnonzero(too_many.to_numpy())[:1000]:
        problems.append(
            {
                "where": row_where(frame, int(i)),
                "field": "households",
                "reason": f"一栋楼 {int(count.iat[i])} 户超过上限 {MAX_HOUSEHOLDS_PER_BUILDING} / "
                f"more than {MAX_HOUSEHOLDS_PER_BUILDING} households in one building",
            }
        )
    many = count > 1
    for name in ONE_HOUSEHOLD_FIELDS:
        if name not in frame.columns:
            continue
        filled = frame[name].map(lambda v: "" if v is None else str(v).strip()) != ""
        for i in np.flatnonzero((many & filled).to_numpy())[:1000]:
            problems.append(
                {
                    "where": row_where(frame, int(i)),
                    "field": name,
                    "reason": f"{int(count.iat[i])} 户的楼栋行不能带 {name}（它属于一户）/ "
                    f"a building row of several households cannot carry {name}",
                }
            )
    if problems:
        raise ImportRejected(source, problems)
    n = count.astype(int).to_numpy()
    if "people" in frame.columns:
        people = _count_col(frame, "people")
    else:
        people = pd.Series(np.full(len(frame), np.nan), index=frame.index)
    reps = np.repeat(np.arange(len(frame)), n)
    out = frame.iloc[reps].copy()
    # k: the household's number within its building (0-based)
    starts = np.cumsum(n) - n
    k = np.arange(reps.size) - np.repeat(starts, n)
    units = cols["units"].fillna(1).astype(int).to_numpy()[reps]
    floors = cols["floors"].to_numpy()[reps]
    per_unit = np.ceil(n[reps] / units).astype(int)
    unit_no = k // per_unit + 1
    j = k % per_unit
    with np.errstate(invalid="ignore"):
        per_floor = np.where(
            np.isnan(floors), per_unit, np.ceil(per_unit / np.nan_to_num(floors, nan=1.0))
        ).astype(int)
    floor_no = j // per_floor + 1
    room_no = j % per_floor + 1
    expanded = n[reps] > 1
    if "unit" not in out.columns:
        out["unit"] = ""
    if "room" not in out.columns:
        out["room"] = ""
    has_units = cols["units"].notna().to_numpy()[reps]
    out["unit"] = np.where(expanded & has_units, unit_no.astype(str), out["unit"].astype(object))
    rooms = np.array([f"{f}{r:02d}" for f, r in zip(floor_no, room_no, strict=True)], dtype=object)
    out["room"] = np.where(expanded, rooms, out["room"].astype(object))
    total = people.to_numpy()[reps]
    share = np.where(np.isnan(total), 1.0, np.floor(np.nan_to_num(total) / n[reps]))
    extra = np.where(np.isnan(total), 0.0, np.nan_to_num(total) - share * n[reps])
    out["people"] = (share + (k < extra)).astype(int).astype(str)
    out = out.drop(columns=[c for c in BUILDING_COLUMNS if c in out.columns])
    out.index = pd.RangeIndex(len(out))
    return (
        gpd.GeoDataFrame(out, geometry=frame.geometry.name, crs=frame.crs),
        int((n > 1).sum()),
        reps,
    )


def _lowest_covering(
    session: Session, xs: np.ndarray, ys: np.ndarray
) -> list[tuple[int, str] | None]:
    """For each point, the lowest current grid (deepest level) covering it, or None."""
    if xs.size == 0:
        return []
    rows = session.execute(
        text(
            """
            SELECT p.i, c.id, c.code
            FROM unnest(CAST(:xs AS float8[]), CAST(:ys AS float8[])) WITH ORDINALITY AS p(x, y, i)
            CROSS JOIN LATERAL (
                SELECT g.id, g.code FROM grid g
                WHERE g.valid_to IS NULL
                  AND ST_Covers(g.geom, ST_SetSRID(ST_MakePoint(p.x, p.y), 4326))
                ORDER BY g.level DESC, g.code LIMIT 1
            ) c
            """
        ),
        {"xs": [float(v) for v in xs], "ys": [float(v) for v in ys]},
    ).all()
    found: list[tuple[int, str] | None] = [None] * xs.size
    for i, gid, code in rows:
        found[int(i) - 1] = (int(gid), str(code))
    return found


def _record(frame: pd.DataFrame, i: int) -> dict[str, Any]:
    row = frame.iloc[i]
    out: dict[str, Any] = {}
    for c in frame.columns:
        if c == frame.geometry.name:
            continue
        v = row[c]
        out[str(c)] = None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
    return out


def _outside_rows(
    session: Session, frame: gpd.GeoDataFrame, kind: str, outside: str
) -> tuple[
    gpd.GeoDataFrame, np.ndarray | None, list[dict[str, Any]], list[dict[str, Any]], np.ndarray
]:
    """Split off the points outside every leaf grid as ``outside`` says.

    Returns the frame to load, the covering grid id per row (-1: none; None when nothing is
    placed), the rows placed in a covering grid, the rows held and which rows are kept."""
    everything = np.ones(len(frame), dtype=bool)
    if outside == "refuse" or kind not in PLACEABLE_KINDS or len(frame) == 0:
        return frame, None, [], [], everything
    if frame.geometry.geom_type.ne("Point").any():
        return frame, None, [], [], everything  # the loader names every non-point geometry
    ids, codes, shapes = leaf_grids(session)
    xs = frame.geometry.x.to_numpy()
    ys = frame.geometry.y.to_numpy()
    idx = assign_many(xs, ys, shapes, codes)
    out_rows = np.flatnonzero(idx < 0)
    if out_rows.size == 0:
        return frame, None, [], [], everything
    covering = _lowest_covering(session, xs[out_rows], ys[out_rows])
    placed: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []
    fallback = np.full(len(frame), -1, dtype=np.int64)
    keep = np.ones(len(frame), dtype=bool)
    for i, cov in zip(out_rows, covering, strict=True):
        where = row_where(frame, int(i))
        if outside == "lowest" and cov is not None:
            fallback[i] = cov[0]
            placed.append({"where": where, "grid_id": cov[0], "grid_code": cov[1]})
        elif outside == "hold":
            keep[i] = False
            reason = (
                f"不在任何末级网格内（所在最低网格 {cov[1]}）/ in no leaf grid (lowest covering "
                f"grid {cov[1]})"
                if cov is not None
                else "不在任何网格内 / in no grid at all"
            )
            held.append(
                {
                    "where": where,
                    "lon": float(xs[i]),
                    "lat": float(ys[i]),
                    "reason": reason,
                    "record": _record(frame, int(i)),
                }
            )
    kept = frame.iloc[np.flatnonzero(keep)].copy()
    kept.index = pd.RangeIndex(len(kept))
    return kept, (fallback[keep] if placed else None), placed, held, keep


def _save_held(
    session: Session,
    kind: str,
    source: str,
    held: list[dict[str, Any]],
    user_id: int | None,
    job_id: int | None,
) -> None:
    if not held:
        return
    session.execute(
        text(
            """
            INSERT INTO import_held (kind, source, row_ref, geom, record, reason, created_by, job_id)
            SELECT :kind, :source, r.ref, ST_SetSRID(ST_MakePoint(r.x, r.y), 4326),
                   CAST(r.rec AS jsonb), r.reason, :user_id, :job_id
            FROM unnest(CAST(:refs AS text[]), CAST(:xs AS float8[]), CAST(:ys AS float8[]),
                        CAST(:recs AS text[]), CAST(:reasons AS text[])) AS r(ref, x, y, rec, reason)
            """
        ),
        {
            "kind": kind,
            "source": source[:200],
            "refs": [h["where"] for h in held],
            "xs": [h["lon"] for h in held],
            "ys": [h["lat"] for h in held],
            "recs": [json.dumps(h["record"], ensure_ascii=False) for h in held],
            "reasons": [h["reason"] for h in held],
            "user_id": user_id,
            "job_id": job_id,
        },
    )


class _Referrer:
    """Names a row of the expanded frame by the file's row it came from (a building's 14
    households are all "row 2"), and keeps one entry per file row."""

    PATTERN = re.compile(r"^(row|feature) (\d+)$")

    def __init__(self, frame: pd.DataFrame, origin: np.ndarray) -> None:
        self.origin = origin
        self.expanded = not np.array_equal(origin, np.arange(len(origin)))
        self.offset = 1 if isinstance(frame, gpd.GeoDataFrame) and "lon" not in frame else 2

    def ref(self, where: str) -> str:
        m = self.PATTERN.match(where)
        if not m or not self.expanded:
            return where
        i = int(m.group(2)) - self.offset
        if not 0 <= i < len(self.origin):
            return where
        return f"{m.group(1)} {int(self.origin[i]) + self.offset}"

    def unique(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out, seen = [], set()
        for e in entries:
            e = {**e, "where": self.ref(str(e.get("where", "")))}
            key = (e["where"], e.get("field"), e.get("reason"), e.get("grid_id"))
            if key not in seen:
                seen.add(key)
                out.append(e)
        return out


def _by_grid(session: Session, kind: str, before: int) -> dict[str, int]:
    """Households (or cameras) just loaded, counted per grid code (ids above ``before``)."""
    table = {"households": "household", "cameras": "camera"}[kind]
    rows = session.execute(
        text(
            f"SELECT g.code, count(*) FROM {table} t JOIN grid g ON g.id = t.grid_id "
            "WHERE t.id > :before GROUP BY g.code ORDER BY g.code"
        ),
        {"before": before},
    ).all()
    return {str(code): int(n) for code, n in rows}


def run_import(
    session: Session,
    kind: str,
    path: str | Path,
    *,
    crs: str | None = None,
    mapping: Mapping[str, str] | None = None,
    options: ImportOptions | None = None,
    progress: Progress = no_progress,
    scope: frozenset[int] | None = None,
    feature_kind: str | None = None,
    user_id: int | None = None,
    job_id: int | None = None,
) -> dict[str, Any]:
    """Import one file as ``import_file`` does, with ``options``; answer the report (module
    docstring). Writes in the caller's transaction, which a dry run rolls back; with
    ``options.dry_run`` a refusal comes back in the report's ``refused`` instead of raising."""
    options = options or ImportOptions()
    source = Path(path).name
    report: dict[str, Any] = {
        "kind": kind,
        "source": source,
        "dry_run": options.dry_run,
        "outside": options.outside,
        "read": 0,
        "created": 0,
        "buildings": 0,
        "unused_columns": [],
        "values_mapped": {},
        "placed": [],
        "held": [],
        "by_grid": {},
        "refused": [],
    }
    if kind != BASEMAP_KIND and kind not in KINDS:
        raise BadParameter("kind", f"unknown kind '{kind}' (use {', '.join(KINDS)})")
    if options.outside != "refuse" and kind not in PLACEABLE_KINDS:
        raise BadParameter(
            "outside",
            f"只有 {'、'.join(PLACEABLE_KINDS)} 可保留网格外的点 / only {', '.join(PLACEABLE_KINDS)} "
            "can keep points outside the leaf grids",
        )
    refer: _Referrer | None = None
    try:
        spatial = kind in ("grids", "households", "service_points", "cameras", BASEMAP_KIND)
        frame = tables.read_records(path, crs=crs, mapping=mapping, need_geometry=spatial)
        report["read"] = len(frame)
        progress("read", len(frame), len(frame))
        report["unused_columns"] = unused_columns(kind, frame)
        report["values_mapped"] = apply_value_map(frame, options.values, source)
        check_vocabularies(kind, frame, source)
        origin = np.arange(len(frame))
        if kind == "households":
            frame, report["buildings"], origin = expand_buildings(frame, source)
        refer = _Referrer(frame, origin)
        frame, fallback, placed, held, keep = _outside_rows(session, frame, kind, options.outside)
        report["placed"] = refer.unique(placed)
        held = refer.unique(held)
        report["held"] = [{k: v for k, v in h.items() if k != "record"} for h in held]
        refer = _Referrer(frame, origin[keep])
        before = 0
        if kind in PLACEABLE_KINDS:
            table = {"households": "household", "cameras": "camera"}[kind]
            before = int(session.scalar(text(f"SELECT coalesce(max(id), 0) FROM {table}")))
        report["created"] = (
            0
            if len(frame) == 0 and held
            else load.load_frame(
                session,
                kind,
                frame,
                source=source,
                progress=progress,
                scope=scope,
                feature_kind=feature_kind,
                fallback_grid_ids=fallback,
            )
        )
        _save_held(session, kind, source, held, user_id, job_id)
        if kind in PLACEABLE_KINDS:
            report["by_grid"] = _by_grid(session, kind, before)
    except ImportRejected as exc:
        if refer is not None and refer.expanded:
            exc = ImportRejected(source, refer.unique(exc.problems))
        if not options.dry_run:
            raise exc from None
        report["refused"] = exc.problems
        report["created"] = 0
    return report
