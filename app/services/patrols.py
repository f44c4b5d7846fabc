"""Patrols (巡查) and their tracks, patrol coverage and the day's map of a worker.

Definitions (periods in China time, like the visits in ``app.services.visits``):

- A **patrol** is the signed-in worker's, from start to stop. Its positions come in batches;
  a position is stored once per patrol and moment (``patrol_point`` keyed by both), so a batch
  sent again — by its ``batch_key`` or not — adds nothing. A batch seen before by its key
  answers what it answered the first time.
- A position is **dropped**, with its reason kept in ``patrol_drop``, when its accuracy is worse
  than ``patrol_max_accuracy_m``, its time lies outside the patrol (before its start, after its
  stop, ahead of the server's clock), or it was reached from the position before it (in time) at
  more than ``patrol_max_speed_mps`` — a jump of the phone's location, not a walk.
- The **track** is a ``LINESTRING M`` of the points in time order (measure: seconds since the
  epoch), built when the patrol stops; an open patrol's line is built from its points on read.
- **Patrol coverage** of a unit (a worker: the grids they are assigned to as 专职/兼职网格员; or
  a grid of a level) over the China-time week (Monday 00:00) of the moment asked for: the share
  of the unit's roads (the ``road`` features of the basemap layer, clipped to the unit) within
  ``patrol_buffer_m`` of a track of the week, and the share of the unit's area within it. For a
  worker the tracks are their own; for a grid, every track that crosses it. Lengths and areas
  are measured in the local Gauss-Krüger zone (UTM outside China).
- **Retention** (``app.services.retention``): points, refused points and tracks of patrols begun more than ``track_days``
  ago are deleted (the patrol keeps its times, counts and length); positions of visits and
  check-ins older than ``visit_position_days`` are cleared (their distance and flag stay).

Why one module of this size: taking positions, building the track and its trace, and measuring
coverage share the definitions above (what is stored, what the coverage buffers); kept together,
a change to one is made beside the others. Retention and the KPIs live in their own modules.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.errors import BadParameter, Conflict, NotFound
from app.models.patrol import DROP_REASONS
from app.services import visits as visit_svc
from app.services.visits import TZ, key_of, local_text

MAX_BATCH = 2000

# The metric SRID for a geometry: the CGCS2000 3-degree Gauss-Krüger zone in China (as
# gis.crs.gk_zone_epsg), else the UTM zone.
_SRID = """(CASE WHEN ST_X(ST_Centroid({g})) BETWEEN 73 AND 136 AND ST_Y(ST_Centroid({g})) BETWEEN 17 AND 54
     THEN 4534 + (least(greatest(round(ST_X(ST_Centroid({g})) / 3) * 3, 75), 135)::int - 75) / 3
     ELSE (CASE WHEN ST_Y(ST_Centroid({g})) < 0 THEN 32700 ELSE 32600 END)
          + least(60, floor((ST_X(ST_Centroid({g})) + 180) / 6)::int + 1) END)"""

# A patrol's line in two dimensions: the stored track, or (open patrol) the line of its points.
_LINE = """coalesce(ST_Force2D(p.track), (
    SELECT ST_SetSRID(CASE WHEN count(*) > 1 THEN ST_MakeLine(pp.geom ORDER BY pp.t)
                           ELSE ST_Collect(pp.geom) END, 4326)
    FROM patrol_point pp WHERE pp.patrol_id = p.id))"""
# What coverage buffers: the trace (the track's distinct segments, ``build_track``) when built.
_FOOTPRINT = f"coalesce(p.trace, {_LINE})"


def _haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371008.8 * math.asin(min(1.0, math.sqrt(a)))


# ---------------------------------------------------------------- one patrol


_PATROL_SQL = """
SELECT p.id, p.worker_id, w.name AS worker_name, p.started_at, p.ended_at, p.point_count,
       p.dropped_count, p.length_m, p.purged_at
FROM patrol p JOIN worker w ON w.id = p.worker_id
"""


def patrol_view(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "worker": {"id": r.worker_id, "name": r.worker_name},
        "started_at": r.started_at.isoformat(),
        "started_at_local": local_text(r.started_at),
        "ended_at": r.ended_at.isoformat() if r.ended_at else None,
        "ended_at_local": local_text(r.ended_at),
        "open": r.ended_at is None,
        "point_count": r.point_count,
        "dropped_count": r.dropped_count,
        "length_m": round(r.length_m, 1) if r.length_m is not None else None,
        "purged": r.purged_at is not None,
    }


def get_patrol(session: Session, patrol_id: int, *, track: bool = False) -> dict[str, Any]:
    row = session.execute(text(_PATROL_SQL + " WHERE p.id = :id"), {"id": patrol_id}).first()
    if row is None:
        raise NotFound(f"巡查 {patrol_id} 不存在 / patrol {patrol_id} not found")
    out = patrol_view(row)
    if track:
        out["track"] = _track_geojson(session, patrol_id)
        drops = session.execute(
            text(
                """SELECT t AS at, reason, speed_mps FROM patrol_drop WHERE patrol_id = :id
                   ORDER BY t LIMIT 500"""
            ),
            {"id": patrol_id},
        ).all()
        out["dropped"] = [_drop_view(d.at, d.reason, d.speed_mps) for d in drops]
    return out


def _track_geojson(session: Session, patrol_id: int) -> dict[str, Any] | None:
    """The patrol's line as GeoJSON with a time (China time) per vertex."""
    rows = session.execute(
        text(
            "SELECT t AS at, ST_X(geom) AS x, ST_Y(geom) AS y FROM patrol_point WHERE patrol_id = :id ORDER BY t"
        ),
        {"id": patrol_id},
    ).all()
    if not rows:
        return None
    return {
        "type": "LineString" if len(rows) > 1 else "Point",
        "coordinates": ([[r.x, r.y] for r in rows] if len(rows) > 1 else [rows[0].x, rows[0].y]),
        "times": [r.at.isoformat() for r in rows],
    }


def _drop_view(t: datetime, reason: str, speed: float | None) -> dict[str, Any]:
    return {
        "t": t.isoformat(),
        "t_local": local_text(t),
        "reason": reason,
        "reason_name": DROP_REASONS.get(reason, reason),
        "speed_mps": round(speed, 1) if speed is not None else None,
    }


def start_patrol(
    session: Session,
    data: dict[str, Any],
    *,
    worker_id: int,
    user_id: int | None,
    now: datetime | None = None,
) -> tuple[dict[str, Any], bool]:
    """Start a patrol of the worker; a worker with one open already gets that one back (as does a
    retry with the same ``idempotency_key``). Returns (patrol, created)."""
    now = now or datetime.now(UTC)
    # The request is checked whole before anything is answered, a retry included.
    started = visit_svc.parse_time(data.get("started_at"), "started_at", now)
    key = key_of(data.get("idempotency_key"))
    if key is not None:
        found = session.execute(
            text("SELECT id, worker_id FROM patrol WHERE idempotency_key = :k"), {"k": key}
        ).first()
        if found is not None:
            if found.worker_id != worker_id:
                raise Conflict(
                    "幂等键已被另一条记录使用 / the idempotency key belongs to another record"
                )
            return get_patrol(session, found.id), False
    # One open patrol per worker: serialise starts of the same worker.
    session.execute(text("SELECT pg_advisory_xact_lock(7317, :w)"), {"w": worker_id})
    open_id = session.scalar(
        text("SELECT id FROM patrol WHERE worker_id = :w AND ended_at IS NULL ORDER BY id LIMIT 1"),
        {"w": worker_id},
    )
    if open_id is not None:
        return get_patrol(session, open_id), False
    new_id = session.scalar(
        text(
            """INSERT INTO patrol (worker_id, user_id, started_at, idempotency_key)
               VALUES (:w, :u, :at, :k) RETURNING id"""
        ),
        {"w": worker_id, "u": user_id, "at": started, "k": key},
    )
    return get_patrol(session, new_id), True


def _lock(session: Session, patrol_id: int, worker_id: int | None) -> Any:
    row = session.execute(
        text("SELECT id, worker_id, started_at, ended_at FROM patrol WHERE id = :id FOR UPDATE"),
        {"id": patrol_id},
    ).first()
    if row is None or (worker_id is not None and row.worker_id != worker_id):
        raise NotFound(f"巡查 {patrol_id} 不存在 / patrol {patrol_id} not found")
    return row


def build_track(session: Session, patrol_id: int) -> None:
    """Build the patrol's LINESTRING M from its points (none, or one point: no line), and its
    trace: the distinct segments of the line simplified by 2 m and snapped to a 1 m grid in the
    metric CRS, merged back into lines. A walk up and down the same street is then one line,
    which is what the coverage buffers: a day's line of thousands of overlapping vertices
    buffers a hundred times slower, to the same area within a metre or two."""
    session.execute(
        text(
            """UPDATE patrol p SET track = s.line,
                   length_m = coalesce(ST_Length(ST_Force2D(s.line)::geography), 0)
               FROM (SELECT CASE WHEN count(*) > 1 THEN ST_SetSRID(ST_MakeLine(
                            ST_MakePointM(ST_X(geom), ST_Y(geom), extract(epoch FROM t)) ORDER BY t),
                            4326) END AS line
                     FROM patrol_point WHERE patrol_id = :id) s
               WHERE p.id = :id"""
        ),
        {"id": patrol_id},
    )
    session.execute(
        text(
            f"""UPDATE patrol p SET trace = (
                   SELECT ST_Multi(ST_Transform(ST_LineMerge(ST_SetSRID(ST_Collect(ST_GeomFromWKB(x.b)), m.srid)), 4326))
                   FROM (SELECT ST_Force2D(p.track) AS g,
                                {_SRID.format(g="ST_Force2D(p.track)")} AS srid) m,
                        LATERAL (SELECT DISTINCT ST_AsBinary(ST_Normalize((d).geom)) AS b
                                 FROM ST_DumpSegments(ST_SnapToGrid(ST_Simplify(
                                          ST_Transform(m.g, m.srid), 2), 1)) d
                                 WHERE ST_Length((d).geom) > 0) x
                   GROUP BY m.srid)
               WHERE p.id = :id"""
        ),
        {"id": patrol_id},
    )


def stop_patrol(
    session: Session,
    patrol_id: int,
    data: dict[str, Any],
    *,
    worker_id: int,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Stop the worker's patrol and build its track; stopping a stopped patrol changes nothing."""
    now = now or datetime.now(UTC)
    row = _lock(session, patrol_id, worker_id)
    if row.ended_at is None:
        ended = visit_svc.parse_time(data.get("ended_at"), "ended_at", now)
        last = session.scalar(
            text("SELECT max(t) FROM patrol_point WHERE patrol_id = :id"), {"id": patrol_id}
        )
        ended = max(x for x in (ended, last, row.started_at) if x is not None)
        session.execute(
            text("UPDATE patrol SET ended_at = :e WHERE id = :id"), {"e": ended, "id": patrol_id}
        )
    build_track(session, patrol_id)
    return get_patrol(session, patrol_id)


# ---------------------------------------------------------------- positions


def _parse_points(
    raw: Any, crs: Any, now: datetime
) -> list[tuple[datetime | None, float, float, float | None, str | None]]:
    """(time or None when out of range, lon, lat, accuracy, raw time text) per posted point."""
    if not isinstance(raw, list) or not raw:
        raise BadParameter("points", "points 须为非空的位置列表 [{lon, lat, t, accuracy}]")
    if len(raw) > MAX_BATCH:
        raise BadParameter("points", f"一批最多 {MAX_BATCH} 个位置 / at most {MAX_BATCH} points")
    out = []
    for i, item in enumerate(raw):
        name = f"points[{i}]"
        if not isinstance(item, dict):
            raise BadParameter(name, f"{name} 须为对象 {{lon, lat, t, accuracy}}")
        try:
            lon, lat, _ = visit_svc.point_of(item.get("lon"), item.get("lat"), crs)
            acc = visit_svc.accuracy_of(item.get("accuracy"))
        except BadParameter as exc:
            raise BadParameter(
                f"{name}.{exc.details.get('param', 'lon')}", f"第 {i + 1} 个位置：{exc.message}"
            ) from exc
        t_raw = item.get("t")
        if t_raw is None:
            raise BadParameter(f"{name}.t", f"{name} 缺少时间 t（带时区的 ISO 8601）")
        try:
            t: datetime | None = visit_svc.parse_time(t_raw, f"{name}.t", now)
        except BadParameter as exc:
            if "时间超出范围" not in exc.message:
                raise
            t = None
        out.append((t, lon, lat, acc, str(t_raw)[:40]))
    return out


def post_positions(
    session: Session,
    patrol_id: int,
    data: dict[str, Any],
    *,
    worker_id: int | None,
    now: datetime | None = None,
) -> tuple[dict[str, Any], bool]:
    """Take a batch of positions into the worker's patrol. Returns (answer, new batch).

    Three statements: the patrol locked, with the batch seen before (if any) and the settings;
    the moments already stored with the point before the batch; one statement storing the
    points, counting them on the patrol and recording the batch."""
    now = now or datetime.now(UTC)
    batch_key = key_of(data.get("batch_key"))
    row = session.execute(
        text(
            """SELECT p.id, p.worker_id, p.started_at, p.ended_at,
                      b.accepted, b.duplicate, b.dropped,
                      (SELECT jsonb_object_agg(key, value) FROM visit_setting) AS settings
               FROM patrol p LEFT JOIN patrol_batch b ON b.patrol_id = p.id AND b.key = :k
               WHERE p.id = :id FOR UPDATE OF p"""
        ),
        {"id": patrol_id, "k": batch_key},
    ).first()
    if row is None or (worker_id is not None and row.worker_id != worker_id):
        raise NotFound(f"巡查 {patrol_id} 不存在 / patrol {patrol_id} not found")
    if batch_key is not None and row.accepted is not None:
        return {
            "patrol_id": patrol_id,
            "batch_key": batch_key,
            "replay": True,
            "accepted": row.accepted,
            "duplicate": row.duplicate,
            "dropped": [],
            "dropped_count": row.dropped,
        }, False
    points = _parse_points(data.get("points"), data.get("crs"), now)
    settings = {**visit_svc.DEFAULTS, **(row.settings or {})}
    max_speed = float(settings["patrol_max_speed_mps"])
    max_acc = float(settings["patrol_max_accuracy_m"])
    lo = row.started_at - timedelta(minutes=5)
    hi = (row.ended_at or now) + timedelta(minutes=5)

    unusable = 0  # times out of range: no moment to key them by (counted, answered, not stored)
    timed: dict[datetime, tuple[float, float, float | None]] = {}
    answer_drops: list[dict[str, Any]] = []
    for t, lon, lat, acc, raw in points:
        if t is None:
            unusable += 1
            answer_drops.append(
                {
                    "t": raw,
                    "t_local": None,
                    "reason": "time",
                    "reason_name": DROP_REASONS["time"],
                    "speed_mps": None,
                }
            )
            continue
        timed.setdefault(t, (lon, lat, acc))
    times = sorted(timed)
    known: set[datetime] = set()
    stored_before: list[tuple[datetime, float, float]] = []  # points stored, to find "before"
    if times:
        for r in session.execute(
            text(
                """SELECT t AS at, ST_X(geom) AS x, ST_Y(geom) AS y, true AS kept FROM patrol_point
                   WHERE patrol_id = :p AND t = ANY(:ts)
                   UNION ALL
                   SELECT t, NULL, NULL, false FROM patrol_drop WHERE patrol_id = :p AND t = ANY(:ts)
                   UNION ALL
                   (SELECT t, ST_X(geom), ST_Y(geom), NULL FROM patrol_point
                    WHERE patrol_id = :p AND t < :t0 ORDER BY t DESC LIMIT 1)"""
            ),
            {"p": patrol_id, "ts": times, "t0": times[0]},
        ):
            if r.kept is not None:
                known.add(r.at)
            if r.kept is not False:
                stored_before.append((r.at, r.x, r.y))
    fresh = [t for t in times if t not in known]
    last = None
    if fresh:
        earlier = [c for c in stored_before if c[0] < fresh[0]]
        last = max(earlier) if earlier else None
    dropped: list[tuple[datetime, float, float, float | None, str, float | None]] = []
    accepted: list[tuple[datetime, float, float, float | None]] = []
    for t in fresh:
        lon, lat, acc = timed[t]
        if not lo <= t <= hi:
            dropped.append((t, lon, lat, acc, "time", None))
            continue
        if acc is not None and acc > max_acc:
            dropped.append((t, lon, lat, acc, "accuracy", None))
            continue
        if last is not None:
            dt = (t - last[0]).total_seconds()
            speed = _haversine_m(last[1], last[2], lon, lat) / dt if dt > 0 else math.inf
            if speed > max_speed:
                dropped.append((t, lon, lat, acc, "speed", speed if math.isfinite(speed) else None))
                continue
        accepted.append((t, lon, lat, acc))
        last = (t, lon, lat)
    if dropped:
        session.execute(
            text(
                """INSERT INTO patrol_drop (patrol_id, t, geom, accuracy_m, reason, speed_mps)
                   SELECT :p, u.t, ST_SetSRID(ST_MakePoint(u.x, u.y), 4326), u.a, u.r, u.s
                   FROM unnest(CAST(:ts AS timestamptz[]), CAST(:xs AS float8[]),
                               CAST(:ys AS float8[]), CAST(:acs AS float8[]),
                               CAST(:rs AS varchar[]), CAST(:ss AS float8[])) AS u(t, x, y, a, r, s)
                   ON CONFLICT DO NOTHING"""
            ),
            {
                "p": patrol_id,
                "ts": [d[0] for d in dropped],
                "xs": [d[1] for d in dropped],
                "ys": [d[2] for d in dropped],
                "acs": [d[3] for d in dropped],
                "rs": [d[4] for d in dropped],
                "ss": [d[5] for d in dropped],
            },
        )
    n_dropped = len(dropped) + unusable
    checked = len(points) - unusable - len(dropped)  # stored now, or stored before
    stored = session.scalar(
        text(
            """WITH ins AS (
                   INSERT INTO patrol_point (patrol_id, t, geom, accuracy_m)
                   SELECT :p, u.t, ST_SetSRID(ST_MakePoint(u.x, u.y), 4326), u.a
                   FROM unnest(CAST(:ts AS timestamptz[]), CAST(:xs AS float8[]),
                               CAST(:ys AS float8[]), CAST(:acs AS float8[])) AS u(t, x, y, a)
                   ON CONFLICT DO NOTHING RETURNING 1),
               n AS (SELECT count(*)::int AS c FROM ins),
               counted AS (UPDATE patrol SET point_count = point_count + (SELECT c FROM n),
                                             dropped_count = dropped_count + :d
                           WHERE id = :p RETURNING id),
               batch AS (INSERT INTO patrol_batch (patrol_id, key, accepted, duplicate, dropped)
                         SELECT :p, CAST(:k AS varchar), n.c, :checked - n.c, :nd FROM n
                         WHERE CAST(:k AS varchar) IS NOT NULL RETURNING 1)
               SELECT c FROM n, counted"""
        ),
        {
            "p": patrol_id,
            "ts": [a[0] for a in accepted],
            "xs": [a[1] for a in accepted],
            "ys": [a[2] for a in accepted],
            "acs": [a[3] for a in accepted],
            "d": len(dropped),
            "k": batch_key,
            "checked": checked,
            "nd": n_dropped,
        },
    )
    if row.ended_at is not None and (stored or dropped):
        build_track(session, patrol_id)  # late points of a stopped patrol (an offline queue)
    answer_drops += [_drop_view(d[0], d[4], d[5]) for d in dropped]
    return {
        "patrol_id": patrol_id,
        "batch_key": batch_key,
        "replay": False,
        "accepted": stored,
        "duplicate": checked - stored,
        "dropped": answer_drops,
        "dropped_count": n_dropped,
    }, True


# ---------------------------------------------------------------- lists


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=TZ).astimezone(UTC)
    return start, start + timedelta(days=1)


def week_bounds(at: datetime) -> tuple[datetime, datetime, str]:
    local = at.astimezone(TZ)
    monday = local.date() - timedelta(days=local.weekday())
    w0 = datetime(monday.year, monday.month, monday.day, tzinfo=TZ)
    iso = monday.isocalendar()
    return w0.astimezone(UTC), (w0 + timedelta(days=7)).astimezone(UTC), f"{iso[0]}-W{iso[1]:02d}"


def list_patrols(
    session: Session,
    scope: tuple[str, dict[str, Any]],
    *,
    worker_id: int | None,
    day: date | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    cond, params = scope
    parts = [cond]
    params = dict(params)
    if worker_id is not None:
        parts.append("p.worker_id = :f_worker")
        params["f_worker"] = worker_id
    if day is not None:
        d0, d1 = day_bounds(day)
        parts.append("p.started_at < :d1 AND coalesce(p.ended_at, now()) >= :d0")
        params.update({"d0": d0, "d1": d1})
    total, rows = visit_svc.page_of(
        session,
        _PATROL_SQL,
        "patrol p",
        parts,
        "p.started_at DESC, p.id DESC",
        params,
        limit,
        offset,
    )
    return {"total": total, "patrols": [patrol_view(r) for r in rows]}


# ---------------------------------------------------------------- coverage


def _coverage_sql(units: str, match: str) -> str:
    """Coverage per unit: ``units`` a query of (key, name, code, geom); ``match`` joins a unit
    ``u`` to a patrol ``tk`` (with its ``line``)."""
    return f"""
    WITH units AS MATERIALIZED ({units}),
    u AS MATERIALIZED (SELECT key, code, name, geom, srid, ST_Transform(geom, srid) AS mgeom
          FROM (SELECT units.*, {_SRID.format(g="units.geom")} AS srid FROM units) x),
    tracks AS MATERIALIZED (SELECT p.id, p.worker_id, {_FOOTPRINT} AS line FROM patrol p
               WHERE p.started_at < :w1 AND coalesce(p.ended_at, :at) >= :w0 AND p.started_at <= :at
                 AND p.purged_at IS NULL AND (:all_w OR p.worker_id = ANY(CAST(:wids AS integer[])))),
    tr AS MATERIALIZED (SELECT u.key, ST_Union(ST_Buffer(ST_Transform(tk.line, u.srid), :buf, 4)) AS b,
                  count(DISTINCT tk.id) AS patrols
           FROM u JOIN tracks tk ON tk.line IS NOT NULL AND {match} GROUP BY u.key),
    rc AS MATERIALIZED (SELECT u.key, ST_Intersection(ST_Transform(bf.geom, u.srid), u.mgeom) AS g
           FROM u JOIN basemap_feature bf ON bf.kind = 'road' AND bf.geom && u.geom
                AND ST_Intersects(bf.geom, u.geom)),
    roads AS MATERIALIZED (SELECT rc.key, sum(ST_Length(rc.g)) AS road_m,
                     sum(CASE WHEN tr.b IS NULL THEN 0 ELSE ST_Length(ST_Intersection(rc.g, tr.b)) END) AS covered_m
              FROM rc LEFT JOIN tr ON tr.key = rc.key GROUP BY rc.key)
    SELECT u.key, u.code, u.name, ST_Area(u.mgeom) AS area_m2,
           CASE WHEN tr.b IS NULL THEN 0 ELSE ST_Area(ST_Intersection(u.mgeom, tr.b)) END AS covered_m2,
           coalesce(roads.road_m, 0) AS road_m, coalesce(roads.covered_m, 0) AS covered_m,
           coalesce(tr.patrols, 0) AS patrols
    FROM u LEFT JOIN tr ON tr.key = u.key LEFT JOIN roads ON roads.key = u.key
    ORDER BY u.code NULLS LAST, u.key
    """


def _share(part: float, whole: float) -> float | None:
    return round(min(1.0, part / whole), 4) if whole > 0 else None


def coverage(
    session: Session,
    *,
    group: str,
    level: int | None,
    grid_ids: frozenset[int] | None,
    worker_ids: frozenset[int] | None,
    at: datetime,
) -> dict[str, Any]:
    """Patrol coverage of the week of ``at`` per worker or per grid of a level (definitions in
    the module's docstring). ``grid_ids`` / ``worker_ids`` bound the units (None: all)."""
    w0, w1, label = week_bounds(at)
    settings = visit_svc.get_settings(session)
    params: dict[str, Any] = {
        "w0": w0,
        "w1": w1,
        "at": at,
        "buf": float(settings["patrol_buffer_m"]),
        "all_w": worker_ids is None,
        "wids": sorted(worker_ids or []),
        "all_g": grid_ids is None,
        "gids": sorted(grid_ids or []),
    }
    if group == "worker":
        units = """SELECT w.id AS key, w.code, w.name, ST_Union(g.geom) AS geom
                   FROM grid_assignment a JOIN grid g ON g.id = a.grid_id JOIN worker w ON w.id = a.worker_id
                   WHERE g.valid_to IS NULL AND a.role IN ('worker_full', 'worker_part')
                     AND (:all_w OR a.worker_id = ANY(CAST(:wids AS integer[])))
                   GROUP BY w.id"""
        match = "tk.worker_id = u.key"
    elif group == "grid":
        if level is None:
            raise BadParameter("level", "按网格统计须给出层级 level（1–5）")
        params["level"] = level
        units = """SELECT g.id AS key, g.code, g.name, g.geom FROM grid g
                   WHERE g.valid_to IS NULL AND g.level = :level AND (:all_g OR g.id = ANY(CAST(:gids AS integer[])))"""
        match = "tk.line && u.geom AND ST_Intersects(tk.line, u.geom)"
        params["all_w"], params["wids"] = True, []
    else:
        raise BadParameter("group", f"group '{group[:20]}' 无效，可选：worker、grid")
    rows = session.execute(text(_coverage_sql(units, match)), params).all()
    out = []
    for r in rows:
        unit = {"id": r.key, "code": r.code, "name": r.name}
        out.append(
            {
                group: unit,
                "patrols": r.patrols,
                "road_m": round(r.road_m, 1),
                "road_covered_m": round(r.covered_m, 1),
                "road_share": _share(r.covered_m, r.road_m),
                "area_m2": round(r.area_m2, 1),
                "area_covered_m2": round(r.covered_m2, 1),
                "area_share": _share(r.covered_m2, r.area_m2),
            }
        )
    return {
        "group": group,
        "level": level,
        "week": label,
        "week_start_local": local_text(w0),
        "at_local": local_text(at),
        "buffer_m": params["buf"],
        "rows": out,
    }


def day_map(session: Session, worker_id: int, day: date) -> dict[str, Any]:
    """A worker's tracks of one China-time day and the roads of their grids that no track of the
    day passed within the buffer, as one GeoJSON FeatureCollection (no personal data of anyone
    else: lines and figures only)."""
    d0, d1 = day_bounds(day)
    buf = float(visit_svc.get_settings(session)["patrol_buffer_m"])
    params = {"w": worker_id, "d0": d0, "d1": d1, "buf": buf}
    tracks = session.execute(
        text(
            f"""SELECT p.id, p.started_at, p.ended_at, p.point_count, p.dropped_count,
                       ST_AsGeoJSON({_LINE}, 7)::json AS g
                FROM patrol p WHERE p.worker_id = :w AND p.started_at < :d1
                  AND coalesce(p.ended_at, now()) >= :d0 AND p.purged_at IS NULL
                ORDER BY p.started_at"""
        ),
        params,
    ).all()
    roads = session.execute(
        text(
            f"""WITH area AS (SELECT ST_Union(g.geom) AS geom FROM grid_assignment a
                              JOIN grid g ON g.id = a.grid_id
                              WHERE a.worker_id = :w AND g.valid_to IS NULL
                                AND a.role IN ('worker_full', 'worker_part')),
                m AS (SELECT geom, {_SRID.format(g="geom")} AS srid FROM area WHERE geom IS NOT NULL),
                day AS (SELECT ST_Union(ST_Buffer(ST_Transform(ln, m.srid), :buf, 4)) AS b
                        FROM m, (SELECT {_FOOTPRINT} AS ln FROM patrol p WHERE p.worker_id = :w
                                   AND p.started_at < :d1 AND coalesce(p.ended_at, now()) >= :d0
                                   AND p.purged_at IS NULL) t WHERE ln IS NOT NULL),
                rc AS (SELECT bf.id, bf.name, m.srid,
                              ST_Intersection(ST_Transform(bf.geom, m.srid), ST_Transform(m.geom, m.srid)) AS g
                       FROM m JOIN basemap_feature bf ON bf.kind = 'road' AND bf.geom && m.geom
                            AND ST_Intersects(bf.geom, m.geom)),
                left_over AS (SELECT rc.id, rc.name, rc.srid, ST_Length(rc.g) AS road_m,
                                     CASE WHEN day.b IS NULL THEN rc.g ELSE ST_Difference(rc.g, day.b) END AS g
                              FROM rc LEFT JOIN day ON TRUE)
                SELECT id, name, road_m, ST_Length(g) AS open_m,
                       ST_AsGeoJSON(ST_Transform(ST_CollectionExtract(g, 2), 4326), 7)::json AS gj
                FROM left_over WHERE NOT ST_IsEmpty(g) AND ST_Length(g) > 1 ORDER BY id"""
        ),
        params,
    ).all()
    features = [
        {
            "type": "Feature",
            "geometry": r.g,
            "properties": {
                "layer": "track",
                "patrol_id": r.id,
                "started_local": local_text(r.started_at),
                "ended_local": local_text(r.ended_at),
                "points": r.point_count,
                "dropped": r.dropped_count,
            },
        }
        for r in tracks
        if r.g is not None
    ] + [
        {
            "type": "Feature",
            "geometry": r.gj,
            "properties": {
                "layer": "road_unpatrolled",
                "road_id": r.id,
                "name": r.name,
                "unpatrolled_m": round(r.open_m, 1),
                "road_m": round(r.road_m, 1),
            },
        }
        for r in roads
    ]
    return {
        "type": "FeatureCollection",
        "features": features,
        "properties": {
            "worker_id": worker_id,
            "date": day.isoformat(),
            "buffer_m": buf,
            "tracks": sum(1 for f in features if f["properties"]["layer"] == "track"),
            "unpatrolled_m": round(sum(r.open_m for r in roads), 1),
        },
    }
