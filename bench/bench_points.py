"""Benchmark: rank 100,000 households and rate 10,000 micro-grids (评星定级) for a quarter.

Run from the repository root: ``python bench/bench_points.py [--rounds 3] [--households 100000]
[--micro 10000]``. It makes a throwaway database on the private cluster (``gridgov_bench_points``),
migrates it, and writes a synthetic city with SQL: one street, 100 communities, 1,000 grids and
``--micro`` micro-grids (squares), ``--households`` households spread over them, a party member
per micro-grid with approved entries, about three household entries per household, a visit for
two households in three, and cases with satisfaction. Then, in rounds (the order alternating):

- the project: ``points.ranking(group="household")`` over every household and
  ``stars.compute`` over every micro-grid (the SQL the API runs);
- the baseline: the same rows read into pandas (``read_sql`` of the raw tables) and ranked and
  scored with ``groupby`` / ``rank``.

The answers are compared (each household's total and rank; each micro-grid's score within 0.15
and its stars) and the figures printed with the load average, then one ``bench.report.row``.
Target: both rankings of a quarter in under 5 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from app import migrate as mig  # noqa: E402
from app.embedded_pg import default_cluster  # noqa: E402
from app.services import points, points_auto, stars  # noqa: E402
from bench import report  # noqa: E402

DB = "gridgov_bench_points"
QUARTER = "2026Q3"


def build(url: str, households: int, micro: int) -> None:
    """The synthetic city, written with set-based SQL."""
    engine = create_engine(url)
    side = int(np.ceil(np.sqrt(micro)))
    d = 0.002  # a micro-grid's side in degrees
    with engine.begin() as conn:
        conn.execute(
            text(
                """INSERT INTO grid (code, name, level, geom, area_m2)
                   VALUES ('B1', '测试街道', 1,
                           ST_Multi(ST_MakeEnvelope(117, 31, 117 + :s * :d, 31 + :s * :d, 4326)), 1e8)"""
            ),
            {"s": side, "d": d},
        )
        # communities and grids: strips of the street; their shapes do not matter here
        conn.execute(
            text(
                """INSERT INTO grid (code, name, level, parent_id, geom, area_m2)
                   SELECT 'B1C' || i, '社区' || i, 2, (SELECT id FROM grid WHERE code = 'B1'),
                          ST_Multi(ST_MakeEnvelope(117, 31, 117 + :s * :d, 31 + :s * :d, 4326)), 1e6
                     FROM generate_series(0, 99) i"""
            ),
            {"s": side, "d": d},
        )
        conn.execute(
            text(
                """INSERT INTO grid (code, name, level, parent_id, geom, area_m2)
                   SELECT 'B1C' || (i / 10) || 'G' || i, '网格' || i, 3, c.id,
                          ST_Multi(ST_MakeEnvelope(117, 31, 117 + :s * :d, 31 + :s * :d, 4326)), 1e5
                     FROM generate_series(0, 999) i JOIN grid c ON c.code = 'B1C' || (i / 10)"""
            ),
            {"s": side, "d": d},
        )
        conn.execute(
            text(
                """INSERT INTO grid (code, name, level, parent_id, geom, area_m2)
                   SELECT 'B1M' || i, '微网格' || i, 4, g.id,
                          ST_Multi(ST_MakeEnvelope(117 + (i % :s) * :d, 31 + (i / :s) * :d,
                                                   117 + (i % :s + 1) * :d, 31 + (i / :s + 1) * :d, 4326)), 4e4
                     FROM generate_series(0, :m - 1) i
                     JOIN grid g ON g.code = 'B1C' || ((i % 1000) / 10) || 'G' || (i % 1000)"""
            ),
            {"s": side, "d": d, "m": micro},
        )
        conn.execute(
            text(
                """INSERT INTO household (geom, grid_id, building, unit, room, head_name, people)
                   SELECT ST_SetSRID(ST_MakePoint(ST_X(c) + (random() - 0.5) * 0.001,
                                                  ST_Y(c) + (random() - 0.5) * 0.001), 4326),
                          m.id, (i % 30)::text, (i % 4)::text, (i % 600)::text, '张' || i, 3
                     FROM generate_series(0, :n - 1) i
                     JOIN grid m ON m.code = 'B1M' || (i % :m)
                     CROSS JOIN LATERAL ST_Centroid(m.geom) c"""
            ),
            {"n": households, "m": micro},
        )
        conn.execute(
            text(
                """INSERT INTO worker (code, name) SELECT 'BP' || i, '党员' || i FROM generate_series(0, :m - 1) i"""
            ),
            {"m": micro},
        )
        conn.execute(
            text(
                """INSERT INTO grid_assignment (worker_id, grid_id, role)
                   SELECT w.id, g.id, 'party_member' FROM worker w JOIN grid g
                       ON g.code = 'B1M' || substr(w.code, 3) WHERE w.code LIKE 'BP%'"""
            )
        )
        conn.execute(
            text(
                """INSERT INTO point_entry (member_id, rule_id, occurred_on, status)
                   SELECT w.id, (SELECT id FROM point_rule WHERE code = (ARRAY['DY-LZ-01','DY-JL-01','DY-JL-02','DY-FM-02'])[1 + (k % 4)] AND version = 1),
                          DATE '2026-07-01' + ((w.id * 7 + k * 13) % 92),
                          CASE WHEN k % 5 = 0 THEN 'proposed' ELSE 'approved' END
                     FROM worker w CROSS JOIN generate_series(0, 4) k WHERE w.code LIKE 'BP%'"""
            )
        )
        conn.execute(
            text(
                """INSERT INTO household_point_entry (household_id, rule_id, occurred_on)
                   SELECT h.id, (SELECT id FROM point_rule WHERE code = (ARRAY['HH-JL-01','HH-JL-02','HH-FM-01'])[1 + ((h.id + k) % 3)] AND version = 1),
                          DATE '2026-06-20' + ((h.id * 11 + k * 17) % 110)
                     FROM household h CROSS JOIN generate_series(0, 1 + (random() * 3)::int) k"""
            )
        )
        conn.execute(
            text(
                """INSERT INTO visit (worker_id, household_id, grid_id, kind, visited_at)
                   SELECT (SELECT min(id) FROM worker WHERE code LIKE 'BP%'), h.id, h.grid_id, 'quarterly',
                          TIMESTAMPTZ '2026-07-01 08:00+08' + (h.id % 95) * interval '1 day'
                     FROM household h WHERE h.id % 3 <> 0"""
            )
        )
        conn.execute(
            text(
                """INSERT INTO "case" (code, category, source, reported_x, reported_y, reported_crs, geom,
                                       grid_id, status, satisfaction, created_at, closed_at)
                   SELECT 'BSJ' || i, 'garbage', 'patrol', ST_X(c), ST_Y(c), 'EPSG:4326',
                          ST_SetSRID(c, 4326), m.id,
                          (ARRAY['closed','closed','dispatched','cancelled','closed'])[1 + i % 5],
                          CASE WHEN i % 5 IN (0, 4) THEN 1 + i % 5 END,
                          TIMESTAMPTZ '2026-07-01 00:00+08' + (i % 90) * interval '1 day' + interval '3 hours',
                          CASE WHEN i % 5 IN (0, 1, 4) THEN TIMESTAMPTZ '2026-07-05 00:00+08' + (i % 80) * interval '1 day' END
                     FROM generate_series(0, :n - 1) i JOIN grid m ON m.code = 'B1M' || (i % :m)
                     CROSS JOIN LATERAL ST_Centroid(m.geom) c"""
            ),
            {"n": households // 5, "m": micro},
        )
        conn.execute(text("ANALYZE"))
    engine.dispose()


# ---------------------------------------------------------------- the baseline


def read_rows(engine) -> dict[str, pd.DataFrame]:  # type: ignore[no-untyped-def]
    q = {
        "grid": "SELECT id, code, level, parent_id FROM grid WHERE valid_to IS NULL",
        "household": "SELECT id, grid_id FROM household",
        "hentry": """SELECT e.household_id, e.occurred_on, r.points, r.code FROM household_point_entry e
                     JOIN point_rule r ON r.id = e.rule_id""",
        "mentry": """SELECT e.member_id, e.occurred_on, e.status, COALESCE(e.points, r.points) AS points
                     FROM point_entry e JOIN point_rule r ON r.id = e.rule_id""",
        "assignment": "SELECT worker_id, grid_id FROM grid_assignment WHERE role = 'party_member'",
        "visit": "SELECT household_id, visited_at FROM visit",
        "case": 'SELECT grid_id, status, satisfaction, created_at FROM "case"',
    }
    with engine.connect() as conn:
        return {k: pd.read_sql(text(v), conn) for k, v in q.items()}


def baseline(
    engine, settings: dict
) -> tuple[list[tuple[int, int, int]], dict[int, tuple[float, int]]]:  # type: ignore[no-untyped-def]
    rows = read_rows(engine)
    label, t0, t1, d0, d1 = points_auto.quarter_bounds_utc(QUARTER)
    d0, d1 = pd.Timestamp(d0), pd.Timestamp(d1)
    he = rows["hentry"]
    he["occurred_on"] = pd.to_datetime(he["occurred_on"])
    inq = he[(he.occurred_on >= d0) & (he.occurred_on < d1)]
    totals = inq.groupby("household_id")["points"].sum()
    hh = rows["household"].set_index("id")
    hh["total"] = totals.reindex(hh.index).fillna(0).astype(int)
    hh["rank"] = hh["total"].rank(method="min", ascending=False).astype(int)
    hh = hh.reset_index().sort_values(["total", "id"], ascending=[False, True])
    ranking = list(zip(hh["id"].tolist(), hh["total"].tolist(), hh["rank"].tolist(), strict=True))
    # micro-grids
    g = rows["grid"].set_index("id")
    micro = g[g.level == 4].index
    mid = pd.Series(np.where(g.level == 5, g.parent_id, g.index), index=g.index)
    mid = mid[g.level >= 4]
    cs = rows["case"]
    cs = cs[(cs.created_at >= t0) & (cs.created_at < t1) & (cs.status != "cancelled")].copy()
    cs["mid"] = cs.grid_id.map(mid)
    cagg = cs.groupby("mid").agg(
        n=("status", "size"),
        closed=("status", lambda s: (s == "closed").sum()),
        sat=("satisfaction", "mean"),
    )
    hv = rows["household"].copy()
    hv["mid"] = hv.grid_id.map(mid)
    vis = rows["visit"]
    visited = set(vis[(vis.visited_at >= t0) & (vis.visited_at < t1)].household_id)
    hv["visited"] = hv.id.isin(visited)
    hagg = hv.groupby("mid").agg(n_h=("id", "size"), visited=("visited", "sum"))
    me = rows["mentry"]
    me["occurred_on"] = pd.to_datetime(me["occurred_on"])
    me = me[(me.status == "approved") & (me.occurred_on >= d0) & (me.occurred_on < d1)]
    mpts = me.groupby("member_id")["points"].sum()
    asg = rows["assignment"].copy()
    asg["mid"] = asg.grid_id.map(mid)
    asg = asg.dropna(subset=["mid"])
    asg["pts"] = asg.worker_id.map(mpts).fillna(0)
    magg = asg.groupby("mid").agg(members=("worker_id", "nunique"), pts=("pts", "sum"))
    part = inq[inq.code.isin(settings["participation_rules"])].copy()
    part["mid"] = part.household_id.map(rows["household"].set_index("id").grid_id).map(mid)
    eagg = part.groupby("mid")["occurred_on"].nunique()
    f = pd.DataFrame(index=micro)
    f = f.join(cagg).join(hagg).join(magg)
    f["days"] = eagg.reindex(f.index).fillna(0)
    f = f.fillna({"n": 0, "closed": 0, "n_h": 0, "visited": 0, "members": 0, "pts": 0})
    closure = np.where(f.n > 0, 100 * f.closed / f.n.where(f.n > 0, 1), 100.0)
    cases = np.where(f.sat.notna() & (f.n > 0), (closure + f.sat.fillna(0) * 20) / 2, closure)
    visits = np.where(f.n_h > 0, 100 * f.visited / f.n_h.where(f.n_h > 0, 1), 100.0)
    avg = f.pts / f.members.where(f.members > 0, 1)
    mp = np.where(f.members > 0, np.clip(100 * avg / settings["member_points_target"], 0, 100), 0.0)
    ev = np.minimum(100.0, 100 * f.days / settings["events_target"])
    w = settings["star_weights"]
    parts = {"cases": cases, "visits": visits, "member_points": mp, "events": ev}
    score = sum(np.round(np.asarray(v, dtype=float), 1) * w[k] for k, v in parts.items()) / sum(
        w.values()
    )
    score = np.round(score, 1)
    th = np.asarray(settings["star_thresholds"])
    star = (score[:, None] >= th[None, :]).sum(axis=1)
    return ranking, dict(
        zip(f.index.tolist(), zip(score.tolist(), star.tolist(), strict=True), strict=True)
    )


def project(
    session: Session, settings: dict
) -> tuple[list[tuple[int, int, int]], dict[int, tuple[float, int]]]:
    res = points.ranking(session, None, quarter=QUARTER, group="household", limit=10_000_000)
    ranking = [(i["id"], i["total"], i["rank"]) for i in res["items"]]
    _, items = stars.compute(session, None, QUARTER, settings)
    return ranking, {i["grid_id"]: (i["score"], i["computed_stars"]) for i in items}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--households", type=int, default=100_000)
    parser.add_argument("--micro", type=int, default=10_000)
    args = parser.parse_args()
    print(f"load at start: {report.load_text()}", flush=True)
    cluster = default_cluster()
    cluster.start()
    url = cluster.recreate_database(DB)
    mig.upgrade(cluster.owner_url(DB), app_url=url)
    started = time.perf_counter()
    build(cluster.owner_url(DB), args.households, args.micro)
    print(
        f"built {args.households:,} households, {args.micro:,} micro-grids in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    engine = create_engine(url)
    session = Session(engine)
    settings = points_auto.get_settings(session)
    session.rollback()
    times: dict[str, list[float]] = {"project": [], "pandas": []}
    answers: dict[str, tuple] = {}
    for rnd in range(args.rounds):
        order = ("project", "pandas") if rnd % 2 == 0 else ("pandas", "project")
        for which in order:
            t = time.perf_counter()
            answers[which] = (
                project(session, settings) if which == "project" else baseline(engine, settings)
            )
            times[which].append(time.perf_counter() - t)
            session.rollback()
        print(
            f"round {rnd + 1}/{args.rounds}: project {times['project'][-1]:.2f} s, pandas {times['pandas'][-1]:.2f} s; load {report.load_text()}",
            flush=True,
        )
    (p_rank, p_stars), (b_rank, b_stars) = answers["project"], answers["pandas"]
    same_rank = p_rank == b_rank
    off = [
        g
        for g, (s, n) in p_stars.items()
        if g not in b_stars
        or abs(s - b_stars[g][0]) > 0.15
        or (n != b_stars[g][1] and abs(s - b_stars[g][0]) > 0.05)
    ]
    print(f"households ranked: {len(p_rank):,}; same totals and ranks as pandas: {same_rank}")
    print(f"micro-grids rated: {len(p_stars):,}; differing from pandas: {len(off)} {off[:5]}")
    print(
        f"stars: {dict(sorted(pd.Series([n for _, n in p_stars.values()]).value_counts().items()))}"
    )
    print(
        f"project {report.summary(times['project'])} s; pandas (read + groupby/rank) {report.summary(times['pandas'])} s; load {report.load_text()}"
    )
    median = statistics.median(times["project"])
    report.row(
        "points: rank 100k households + rate 10k micro-grids",
        project=median,
        baseline=statistics.median(times["pandas"]),
        unit="s",
        target="< 5 s, same answers",
        holds=median < 5 and same_rank and not off,
        baseline_name="pandas read_sql + groupby/rank",
    )
    session.close()
    engine.dispose()


if __name__ == "__main__":
    main()
