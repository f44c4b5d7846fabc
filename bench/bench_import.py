"""Benchmark the bulk household import against a raw ``COPY`` of the same rows.

1,000,000 synthetic households over the sample street (a CSV of lon/lat, building, unit, room,
people, head name and phone). Each round, in alternating order, times:

- the project: ``importer.import_file(session, "households", csv)`` as ``gridgov import`` runs
  it, stage by stage: ``read`` (parse the CSV, coordinates to points), ``validated`` (people,
  linked members, tags), ``located`` (each point's leaf grid), ``formatted`` (the rows to COPY),
  ``copied`` (the COPY with its index and trigger work), ``counted`` (the household counts of
  the grids touched);
- the strongest simple baseline: a raw ``COPY household (…) FROM STDIN`` of the very rows the
  project loaded (taken from the table after the first project round, geometry as EWKB hex, grid
  already known), into the same table with the same indexes and triggers;

each once with every trigger of ``household`` and once with the ``search_place`` trigger
(revision 0023) disabled, so its share shows. Every load runs in a transaction that is rolled
back (then ``VACUUM``), so each starts from the same table. The answers are checked against the
baseline's: the same households per grid, the same ``search_place`` and ``household_cell`` sums,
and the household counts the project wrote equal to a recount. Ends with a ``bench.report.row``.

    python bench/bench_import.py [--households 1000000] [--rounds 2]

Runs against a scratch database ``gridgov_bench`` of the private cluster (or the server in
GRIDGOV_BENCH_DATABASE_URL with GRIDGOV_BENCH_OWNER_URL), which it recreates.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import report  # noqa: E402

from app import migrate as mig  # noqa: E402
from app.embedded_pg import default_cluster  # noqa: E402
from app.services import grid_tree, importer  # noqa: E402
from app.services.importer.points import HOUSEHOLD_COPY_COLUMNS  # noqa: E402

# The columns the import writes (and the raw COPY copies back in), in its order.
COLUMNS = HOUSEHOLD_COPY_COLUMNS
SEARCH_TRIGGER = "trg_search_places_insert"
STAGES = ("read", "validated", "located", "formatted", "copied", "counted")


def synthetic_households(n: int, seed: int = 7) -> pd.DataFrame:
    """Return n households at random building points inside the sample street's micro-grids."""
    import geopandas as gpd

    grids = gpd.read_file(importer.SAMPLE_DIR / "grids.geojson")
    micro = grids[(grids["level"] == 4) & grids["code"].str.startswith("340188001")]
    rng = np.random.default_rng(seed)
    inner = (
        micro.to_crs(4548).buffer(-2).to_crs(4326)
    )  # 2 m inside: rounding never moves a point out
    buildings = shapely.get_coordinates(
        inner.sample_points(size=max(1, n // (20 * len(micro))) + 1, rng=rng).explode()
    )
    pick = rng.integers(0, len(buildings), n)
    return pd.DataFrame(
        {
            "lon": buildings[pick, 0].round(7),
            "lat": buildings[pick, 1].round(7),
            "building": [f"{k}栋" for k in pick],
            "unit": rng.integers(1, 6, n),
            "room": rng.integers(101, 3300, n),
            "people": rng.integers(1, 6, n),
            "head_name": "测试",
            "head_phone": "13900000000",
            "tags": "",
        }
    )


def fingerprint(session: Session) -> tuple:
    """What a load left in the tables, to compare the project's with the baseline's."""
    return tuple(
        session.execute(
            text(
                """SELECT (SELECT count(*) FROM household),
                          (SELECT sum(grid_id::bigint * people) FROM household),
                          (SELECT count(DISTINCT grid_id) FROM household),
                          (SELECT coalesce(sum(households), 0) FROM search_place),
                          (SELECT count(*) FROM search_place),
                          (SELECT coalesce(sum(households), 0) FROM household_cell)"""
            )
        ).one()
    )


def counts_right(session: Session) -> bool:
    """The household counts the import wrote equal a recount of every grid."""
    kept = dict(session.execute(text("SELECT id, household_count FROM grid")).all())
    grid_tree.recount(session)
    counted = dict(session.execute(text("SELECT id, household_count FROM grid")).all())
    return kept == counted


def set_search_trigger(session: Session, on: bool) -> None:
    verb = "ENABLE" if on else "DISABLE"
    session.execute(text(f"ALTER TABLE household {verb} TRIGGER {SEARCH_TRIGGER}"))


def run_project(engine, path: Path, trigger: bool, dump: list[bytes] | None):  # type: ignore[no-untyped-def]
    """One project load, rolled back; its time, stages, fingerprint and counts check."""
    stages: dict[str, float] = {}
    with Session(engine) as session:
        session.begin()
        set_search_trigger(session, trigger)
        session.flush()
        last = [time.perf_counter()]

        def progress(stage: str, done: int, total: int) -> None:
            now = time.perf_counter()
            stages[stage] = stages.get(stage, 0.0) + now - last[0]
            last[0] = now

        started = time.perf_counter()
        last[0] = started
        n = importer.import_file(session, "households", path, progress=progress)
        elapsed = time.perf_counter() - started
        fp = fingerprint(session)
        ok = counts_right(session)
        if dump is not None:  # the rows as loaded, for the raw COPY
            raw = session.connection().connection.driver_connection
            cols = ", ".join(COLUMNS)
            with raw.cursor() as cur, cur.copy(f"COPY household ({cols}) TO STDOUT") as copy:
                dump.extend(bytes(block) for block in copy)
        session.rollback()
    return n, elapsed, stages, fp, ok


def run_raw(engine, dump: list[bytes], trigger: bool):  # type: ignore[no-untyped-def]
    """One raw COPY of the same rows, rolled back."""
    with Session(engine) as session:
        session.begin()
        set_search_trigger(session, trigger)
        session.flush()
        raw = session.connection().connection.driver_connection
        cols = ", ".join(COLUMNS)
        started = time.perf_counter()
        with raw.cursor() as cur, cur.copy(f"COPY household ({cols}) FROM STDIN") as copy:
            for block in dump:
                copy.write(block)
        elapsed = time.perf_counter() - started
        fp = fingerprint(session)
        session.rollback()
    return elapsed, fp


def vacuum(owner_url: str) -> None:
    engine = create_engine(owner_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for table in ("household", "household_cell", "search_place", "grid"):
            conn.execute(text(f"VACUUM {table}"))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(f"load average at start: {report.load_text()}", flush=True)

    url = os.environ.get("GRIDGOV_BENCH_DATABASE_URL")
    owner_url = os.environ.get("GRIDGOV_BENCH_OWNER_URL", url)
    if not url:
        cluster = default_cluster()
        cluster.start()
        url = cluster.recreate_database("gridgov_bench")
        owner_url = cluster.owner_url("gridgov_bench")
    mig.upgrade(owner_url, app_url=url)
    # The owner's connection: the bench switches a trigger off, which the app's role may not.
    engine = create_engine(owner_url)
    with Session(engine) as session, session.begin():
        importer.import_file(session, "grids", importer.SAMPLE_DIR / "grids.geojson")
        importer.refresh_household_counts(session)
    vacuum(owner_url)

    results: dict[str, list[float]] = {}
    stage_times: dict[str, dict[str, list[float]]] = {}
    checks: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "households.csv"
        t0 = time.perf_counter()
        synthetic_households(args.households).to_csv(path, index=False)
        print(
            f"generated {args.households:,} households ({path.stat().st_size / 1e6:.0f} MB CSV) "
            f"in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        dump: list[bytes] = []
        n, _elapsed, _stages, want, ok = run_project(engine, path, True, dump)
        vacuum(owner_url)
        print(f"warm-up load: {n:,} households; rows kept for the raw COPY", flush=True)
        ways = [("project", True), ("raw COPY", True), ("project", False), ("raw COPY", False)]
        for rnd in range(args.rounds):
            order = ways if rnd % 2 == 0 else list(reversed(ways))
            for way, trigger in order:
                label = f"{way}{'' if trigger else ', no search_place trigger'}"
                if way == "project":
                    _n, elapsed, stages, fp, ok = run_project(engine, path, trigger, None)
                    for k, v in stages.items():
                        stage_times.setdefault(label, {}).setdefault(k, []).append(v)
                    if not ok:
                        checks.append(f"round {rnd + 1} {label}: counts differ from a recount")
                else:
                    elapsed, fp = run_raw(engine, dump, trigger)
                expect = want if trigger else want[:3] + fp[3:5] + want[5:]
                if fp != expect:
                    checks.append(f"round {rnd + 1} {label}: {fp} != {expect}")
                if not trigger and fp[3:5] != (0, 0):
                    checks.append(f"round {rnd + 1} {label}: search_place filled without trigger")
                results.setdefault(label, []).append(elapsed)
                print(
                    f"round {rnd + 1}/{args.rounds} {label}: {elapsed:.1f} s "
                    f"(load {report.load_text()})",
                    flush=True,
                )
                vacuum(owner_url)
    engine.dispose()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n{args.households:,} households, {args.rounds} rounds; load {report.load_text()}")
    for label, values in results.items():
        print(f"  {label}: {report.summary(values)} s")
        for stage in STAGES:
            if stage in stage_times.get(label, {}):
                print(f"      {stage}: {report.summary(stage_times[label][stage])} s")
    print(f"peak memory of this process: {peak_mb:,.0f} MB")
    print(
        "answers: "
        + ("the same as the raw COPY's, counts exact" if not checks else "; ".join(checks))
    )
    project = statistics.median(results["project"])
    raw = statistics.median(results["raw COPY"])
    report.row(
        f"import {args.households // 1000}k households",
        project=project,
        baseline=raw,
        unit="s",
        target="within 1.3× of raw COPY",
        holds=project <= 1.3 * raw and not checks,
        baseline_name="raw COPY of the same rows, same table, indexes and triggers",
        note=(
            f"no search_place trigger: {statistics.median(results['project, no search_place trigger']):.1f} s "
            f"vs {statistics.median(results['raw COPY, no search_place trigger']):.1f} s"
        ),
    )


if __name__ == "__main__":
    main()
